"""What a finished download or export wrote, so a later use can tell a whole folder from a damaged one.

A record maps each file (relative path) to its size, ``mtime_ns`` and sha256. Checking it is cheap on every use
(one ``stat`` per file); a file whose size is unchanged but whose mtime moved is hashed again, because flipping
bytes in place keeps the size and changes only the content and the mtime. A file that matches after a re-hash
(touched, copied with new times) gets its new mtime recorded, so the next check is cheap again.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Files = dict[str, dict[str, Any]]
"""relative path -> {"size": int, "mtime_ns": int, "sha256": str}"""


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: ``problem`` is None when every recorded file is there as written."""

    problem: str | None
    bad: tuple[str, ...] = ()       # files that are missing or changed
    refreshed: Files | None = None  # the record with new mtimes, when some file was touched but is unchanged


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: Path, exclude: Collection[str] = (), known: Mapping[str, Mapping[str, Any]] | None = None,
             hint: Callable[[Path], str | None] | None = None) -> Files:
    """Record every file under ``folder`` (symlinks followed). Hashes of ``known`` files whose size and mtime are
    unchanged are reused, and ``hint(path)`` may name a file's sha256 without reading it (a hub LFS blob is
    named by its sha256)."""
    files: Files = {}
    for item in sorted(folder.rglob("*")):
        relative = item.relative_to(folder).as_posix()
        if relative in exclude or not item.is_file():
            continue
        stat = item.stat()
        before = (known or {}).get(relative)
        if before and before.get("size") == stat.st_size and before.get("mtime_ns") == stat.st_mtime_ns:
            digest = before["sha256"]
        else:
            digest = (hint(item) if hint else None) or sha256_of(item)
        files[relative] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    return files


def verify(folder: Path, files: Mapping[str, Mapping[str, Any]]) -> Verdict:
    """Check ``folder`` against a record (see the module docstring for what is compared when)."""
    bad: list[str] = []
    reasons: list[str] = []
    refreshed: Files = {name: dict(info) for name, info in files.items()}
    touched = False
    for name, info in sorted(files.items()):
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            bad.append(name)
            reasons.append(f"{name} is missing")
            continue
        if stat.st_size == info.get("size") and stat.st_mtime_ns == info.get("mtime_ns"):
            continue
        if stat.st_size != info.get("size") or sha256_of(path) != info.get("sha256"):
            bad.append(name)
            reasons.append(f"{name} changed since it was written")
            continue
        refreshed[name]["mtime_ns"] = stat.st_mtime_ns
        touched = True
    if bad:
        more = f" and {len(reasons) - 1} more" if len(reasons) > 1 else ""
        return Verdict(reasons[0] + more, tuple(bad))
    return Verdict(None, (), refreshed if touched else None)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when it is missing or unreadable (a damaged record records nothing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write atomically: readers see the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
