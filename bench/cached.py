"""One place that builds a benchmark model once into the bench cache: into a temporary folder first, renamed into
place when complete, so a killed build leaves nothing that looks finished."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

CACHE = Path.home() / ".cache" / "ov-genai-demos-bench"


def built_once(name: str, marker: str, build: Callable[[Path], None]) -> Path:
    """``CACHE/name/ov``, made by ``build(folder)`` (which writes ``folder/ov``) unless ``ov/marker`` exists."""
    final = CACHE / name
    if not (final / "ov" / marker).is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
        try:
            build(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final / "ov"
