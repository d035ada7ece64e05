"""The app's temp folder and its file limits (DESIGN §2: "atomic writes and the app's temp folder"). No Gradio here.

Every file the app writes for a request (generated images, transcripts, images sent as data URLs, Gradio's own
upload cache) lives under ONE folder per process, made by ``mkdtemp``: a fresh random name created with mode
0700, so nothing another local user planted (a symlink at a fixed name in ``$TMPDIR``) is ever written into or
deleted through. Each use gets a subfolder; ``run_folder`` sweeps entries older than ``keep_seconds`` before it
makes a new one, never following links; the whole folder is removed at exit.

``Limits`` are the upload sizes from the catalog's ``settings`` (``configure`` is called once at start).
"""
from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

PREFIX = "ov-genai-demos-"
MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Upload sizes in MB (the defaults are those of the catalog's ``settings``) and the age of temp files."""

    upload_mb: float = 200      # Gradio refuses any larger upload (launch(max_file_size=...))
    audio_mb: float = 200       # the Speech panel: audio and video files
    image_mb: float = 20        # the Vision panel: images, uploaded or sent as data URLs
    keep_seconds: int = 3600    # temp files (ours and Gradio's cache) older than this are deleted


_limits = Limits()
_root: Path | None = None
_lock = threading.Lock()
_written: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("written", default=None)


def configure(limits: Limits) -> None:
    """Set the limits for this process (from the catalog's settings, at start)."""
    global _limits
    _limits = limits


def limits() -> Limits:
    return _limits


def megabytes(size: int) -> str:
    """``size`` bytes as the messages say it: '0.61 MB', '12.3 MB'."""
    value = size / MB
    return f"{value:.2f} MB" if value < 10 else f"{value:.1f} MB"


def root() -> Path:
    """This process's private temp folder (created on first use, removed at exit)."""
    global _root
    with _lock:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix=PREFIX))  # random name, mode 0700, fails rather than reuse
            atexit.register(remove_root)
        return _root


def folder(use: str) -> Path:
    """The subfolder for one use ('images', 'speech', ...), private like its parent."""
    path = root() / use
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not stat.S_ISDIR(path.lstat().st_mode):  # a link or a file cannot appear in a 0700 folder, but check
            raise RuntimeError(f"{path} is not a folder the app made") from None
    return path


def run_folder(use: str) -> Path:
    """A fresh folder for one request's files in ``folder(use)``, after sweeping that folder's old entries."""
    parent = folder(use)
    sweep(parent)
    return Path(tempfile.mkdtemp(dir=parent))


def sweep(parent: Path, max_age: float | None = None) -> int:
    """Delete the entries of ``parent`` not modified for ``max_age`` seconds (default ``keep_seconds``); links
    are removed themselves, never followed. Returns how many went."""
    cutoff = time.time() - (_limits.keep_seconds if max_age is None else max_age)
    removed = 0
    with os.scandir(parent) as entries:
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # fd-based on Linux: links inside are unlinked, not followed
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:  # another request's sweep got there first
                continue
            except OSError:
                log.warning("could not remove the old temp entry %s", entry.path, exc_info=True)
    return removed


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees half of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_bytes(data)
    partial.replace(path)


def remove_root() -> None:
    """Remove the whole temp folder (at exit)."""
    global _root
    with _lock:
        path, _root = _root, None
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


# -------------------------------------------------------------------------------------------------------------
# Nothing of a refused request is kept


def note_written(path: Path) -> None:
    """Record that the current request created ``path`` (see ``discarded_on_error``)."""
    written = _written.get()
    if written is not None:
        written.append(path)


class Scratch:
    """The files one request created; ``discard`` removes them when the request is refused.

    ``collecting`` must wrap code that runs without yielding (a context variable does not follow a generator
    from one step to the next); the validation at the start of a request is such code.
    """

    def __init__(self) -> None:
        self.paths: list[Path] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        token = _written.set(self.paths)
        try:
            yield
        finally:
            _written.reset(token)

    def discard(self) -> None:
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.paths.clear()


def remove_inside(path: str | os.PathLike, parent: str | os.PathLike) -> bool:
    """Delete the regular file ``path`` if it lies inside ``parent`` (an upload we refused); never anything else."""
    target = Path(os.path.abspath(path))
    base = Path(os.path.realpath(parent))
    try:
        if Path(os.path.realpath(target.parent)).is_relative_to(base) and stat.S_ISREG(target.lstat().st_mode):
            target.unlink()
            return True
    except OSError:
        pass
    return False
