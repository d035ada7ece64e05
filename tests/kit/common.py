"""Cache for the tiny test models: built once, reused by every later test run.

A model folder is keyed by the source of the module that builds it and by the versions of the
libraries that shape the export, so editing a builder or upgrading openvino rebuilds exactly what changed.
Builds go to a temporary folder and are renamed into place under a file lock: a build killed half way
never leaves a folder that looks finished, and two test processes build once.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Callable

from filelock import FileLock

_VERSIONED = ("openvino", "openvino-genai", "openvino-tokenizers", "optimum-intel", "transformers",
              "diffusers", "peft", "torch", "tokenizers")


def cache_root() -> Path:
    """Where tiny models live between runs (``TINY_MODELS_CACHE`` overrides)."""
    root = os.environ.get("TINY_MODELS_CACHE") or Path.home() / ".cache" / "ov-genai-demos-tests"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fingerprint(build: Callable, extra: str) -> str:
    digest = hashlib.sha256()
    digest.update(inspect.getsource(inspect.getmodule(build)).encode())
    digest.update(inspect.getsource(_fingerprint.__module__ and inspect.getmodule(_fingerprint)).encode())
    for name in _VERSIONED:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=absent".encode())
    digest.update(extra.encode())
    return digest.hexdigest()[:12]


def cached(name: str, build: Callable[[Path], None], extra: str = "") -> Path:
    """Return ``cache_root()/name-<hash>``, calling ``build(tmp_dir)`` first if it does not exist yet.

    ``build`` fills the empty folder it is given; everything in it becomes the cached result.
    """
    root = cache_root()
    final = root / f"{name}-{_fingerprint(build, extra)}"
    if final.is_dir():
        return final
    with FileLock(str(final) + ".lock"):
        if final.is_dir():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            build(tmp)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
