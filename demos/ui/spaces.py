"""Hugging Face Spaces: where the app listens there, and what the README's front matter must preload.

A Space runs ``app_file`` with ``SPACE_ID`` set and expects the server on 0.0.0.0:7860. Its disk is wiped on
restart, so the models the catalog uses on CPU are downloaded at build time (``preload_from_hub`` in the README's
front matter) into the default hub cache, which the loader reads like any other cache.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from demos.core.catalog import Catalog

SPACE_PORT = 7860


def on_space() -> bool:
    """True when running inside a Hugging Face Space."""
    return bool(os.environ.get("SPACE_ID"))


def listen_address(host: str | None, port: int | None) -> tuple[str, int | None]:
    """Where to bind: what the command line says, else 0.0.0.0:7860 on a Space, else localhost (any free port)."""
    if on_space():
        return host or "0.0.0.0", port or SPACE_PORT
    return host or "127.0.0.1", port


def preload_list(catalog: Catalog) -> list[str]:
    """``preload_from_hub`` entries for every hub repo the catalog uses on CPU: models, drafts, adapter files.

    Device variants (NPU exports) are left out: a Space has no NPU. So are entries that need an optimum-intel
    export: a Space installs only requirements.txt, which has no exporter (its torchvision dependency would pull
    a CUDA torch), so their checkpoints would be downloaded for nothing. Adapters list just their file, so a
    Space does not download a whole repository of other weights.
    """
    repos: dict[str, set[str]] = {}
    whole: list[str] = []

    def add(source: str, file: str | None = None) -> None:
        if catalog.local_path(source) is not None:
            return
        if file is None:
            if source not in whole:
                whole.append(source)
        else:
            repos.setdefault(source, set()).add(file)

    for entry in catalog.entries():
        if entry.export is not None or entry.source is None or entry.backend is not None:  # no local pipeline
            continue
        add(entry.source)
        for draft in getattr(entry, "drafts", []):
            if draft.export is None:
                add(draft.source)
        for adapter in getattr(entry, "adapters", []):
            if adapter.file:
                add(adapter.source, adapter.file)
    return whole + [f"{repo} {','.join(sorted(files))}" for repo, files in repos.items() if repo not in whole]


def front_matter(readme: Path) -> dict:
    """The YAML block between the leading ``---`` lines of a Space's README."""
    match = re.match(r"^---\n(.*?)\n---\n", readme.read_text(encoding="utf-8"), re.S)
    if not match:
        raise ValueError(f"{readme} has no front matter (a --- block at the top)")
    return yaml.safe_load(match.group(1))
