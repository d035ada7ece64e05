"""What panels talk to: catalog + loader + runtime behind a few entry-level calls.

A panel asks for "entry X on device D (with draft Y)"; this module turns that into folders (loader) and a
compiled pipeline (runtime), registering every adapter the entry lists so that a per-request adapter switch
never rebuilds anything.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TypeVar

from demos.core.catalog import Catalog, ChatEntry, Entry, ImageEntry
from demos.core import lora_modes, remote
from demos.core.errors import UnknownId, UserError
from demos.core.loader import Loader, ProgressFn, Status, _no_progress, folder_size
from demos.core.runtime import Claim, Loaded, PipelineKey, Runtime

E = TypeVar("E", bound=Entry)

# Panels reach the loader and the runtime only through this module (DESIGN §2): what they need is named here.
no_progress = _no_progress
__all__ = ["Handle", "Loaded", "Prepared", "ProgressFn", "Suite", "no_progress"]
log = logging.getLogger("demos.core.suite")
PROGRESS_POLL_S = 0.25  # how often a request waiting on another's download/export looks at its progress


@dataclass(frozen=True)
class Prepared:
    """Local folders and files for one entry on one device."""

    model_dir: Path
    adapters: dict[str, Path]       # adapter id -> .safetensors GenAI can apply
    drafts: dict[str, Path]         # draft id -> OpenVINO folder


@dataclass(frozen=True)
class _Memo:
    """A ``Prepared`` and the (size, mtime_ns) of its adapter files when it was made."""

    prepared: Prepared
    adapter_stamps: tuple[tuple[int, int], ...]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class Handle:
    """A pipeline ready to use, with what the panel needs to drive it."""

    loaded: Loaded
    prepared: Prepared
    built_now: bool
    # Keeps the pipeline in use (never evicted) for as long as this handle lives: a request keeps its handle.
    claim: Claim | None = field(default=None, repr=False, compare=False)

    @property
    def pipeline(self) -> Any:
        return self.loaded.pipeline

    def adapter(self, adapter_id: str) -> Any:
        """The registered ``openvino_genai.Adapter`` for an adapter id of the entry."""
        return self.loaded.adapters[str(self.prepared.adapters[adapter_id])]


class Suite:
    """Catalog, loader and runtime of one app."""

    def __init__(self, catalog: Catalog, loader: Loader, runtime: Runtime, default_device: str | None = None):
        self.catalog = catalog
        self.loader = loader
        self.runtime = runtime
        self.default_device = default_device or catalog.settings.device
        # Presenter mode (demos.ui.presenter): panels open on the stage entries, with Compare views first.
        self.presenter = False
        self.stage_entries: list[Entry] = []
        # Whether the page may show absolute server paths (cache, model folders): only to a loopback listener.
        self.expose_paths = True
        # prepare() memo: (entry id, device, drafts) -> what it returned; a lock per key so that two requests
        # preparing one entry at once prepare it once.
        self._memo: dict[tuple[str, str, bool], _Memo] = {}
        self._key_locks: dict[tuple[str, str, bool], threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._progress: dict[tuple[str, str, bool], tuple[float | None, str]] = {}  # the latest, per key in progress
        self._sizes: dict[str, tuple[tuple, int]] = {}  # status(): folder -> (its state, its size)

    def stage_first(self, entries: list[E]) -> list[E]:
        """``entries`` with the panel's stage entry first in presenter mode, so its tab opens on the warm model."""
        if not self.presenter:
            return list(entries)
        stage = [e for e in entries if e in self.stage_entries][:1]
        return stage + [e for e in entries if e not in stage]

    @classmethod
    def from_catalog(cls, catalog: Catalog, cache_dir: Path | None = None, offline: bool | None = None,
                     max_pipelines: int | None = None, device: str | None = None) -> "Suite":
        cache = Path(cache_dir or catalog.cache_path()).expanduser()
        return cls(catalog, Loader(catalog, cache, offline),
                   Runtime(cache, max_pipelines or catalog.settings.max_pipelines,
                           kv_cache_gb=catalog.settings.kv_cache_gb), device)

    # ----------------------------------------------------------------------------------------------------

    def prepare(self, entry: Entry, device: str, progress: ProgressFn = _no_progress,
                drafts: bool = True, repair: bool = False) -> Prepared:
        """Fetch (download / export / convert) everything ``entry`` needs on ``device``; with ``repair`` (Fetch,
        ``--prefetch``) damaged exports are exported again instead of refused.

        Memoised per (entry, device, drafts): asking again costs no hub request (so a new commit on the hub is
        seen after a restart or a Fetch, as with any cached download) and no LoRA fit check, only the loader's
        record check (one ``stat`` per file), so a folder damaged or deleted since is still noticed and prepared
        again. ``repair`` always asks the loader.
        """
        if entry.source is None:
            raise UserError(f"{entry.title} is served by {entry.backend.url} and has no source: there is nothing to "  # type: ignore[union-attr]
                            "fetch here (add a source to fetch it for --ovms-config or a local run)")
        key = (entry.id, device, drafts and bool(getattr(entry, "drafts", [])))  # no drafts: the same either way
        with self._turn(key, progress):
            progress = self._shared(key, progress)
            memo = self._memo.pop(key, None)
            if memo is not None and not repair:
                problem = self._memo_problem(memo)
                if problem is None:
                    self._memo[key] = memo
                    return memo.prepared
                log.info("%s on %s: preparing again (%s)", entry.id, device, problem)
            prepared = self._prepare_now(entry, device, progress, drafts, repair)
            if repair:  # a Fetch may have brought a new commit or export: no other memo of the entry may hide it
                for other in [k for k in self._memo if k[0] == entry.id]:
                    self._memo.pop(other, None)
            self._memo[key] = _Memo(prepared, tuple(_stamp(p) or (-1, -1) for p in prepared.adapters.values()))
            return prepared

    def _lock_for(self, key: tuple[str, str, bool]) -> threading.Lock:
        with self._locks_lock:
            return self._key_locks.setdefault(key, threading.Lock())

    @contextmanager
    def _turn(self, key: tuple[str, str, bool], progress: ProgressFn) -> Iterator[None]:
        """Hold ``key``'s lock: one download or export per entry, however many users ask for it at once. While
        another request prepares it, this one shows that request's progress as its own."""
        lock = self._lock_for(key)
        shown = None
        while not lock.acquire(timeout=PROGRESS_POLL_S):
            latest = self._progress.get(key)
            if latest is not None and latest != shown:
                shown = latest
                progress(*latest)
        try:
            yield
        finally:
            self._progress.pop(key, None)
            lock.release()

    def _shared(self, key: tuple[str, str, bool], progress: ProgressFn) -> ProgressFn:
        """``progress``, also recorded for the requests waiting on the same preparation (see ``_turn``)."""
        def report(fraction: float | None, message: str) -> None:
            self._progress[key] = (fraction, message)
            progress(fraction, message)
        return report

    def _memo_problem(self, memo: _Memo) -> str | None:
        """None when every folder and file of a memoised ``Prepared`` is still as the loader left it."""
        prepared = memo.prepared
        for folder in (prepared.model_dir, *prepared.drafts.values()):
            problem = self.loader.problem(folder)
            if problem is not None:
                return problem
        for path, stamp in zip(prepared.adapters.values(), memo.adapter_stamps):
            if _stamp(path) != stamp:  # deleted, replaced or rewritten: convert and fit-check it again
                return f"{path.name} changed"
        return None

    def _prepare_now(self, entry: Entry, device: str, progress: ProgressFn, drafts: bool,
                     repair: bool) -> Prepared:
        model_dir = self.loader.model_dir(entry, device, progress, repair=repair)
        adapters = {a.id: self.loader.adapter_file(a, model_dir, progress, owner=entry.id)
                    for a in getattr(entry, "adapters", [])}
        draft_dirs = {}
        if drafts:
            draft_dirs = {d.id: self.loader.draft_dir(d, progress, owner=entry.id, repair=repair)
                          for d in getattr(entry, "drafts", [])}
        return Prepared(model_dir, adapters, draft_dirs)

    def properties(self, entry: Entry, device: str) -> dict[str, Any]:
        """Device properties fixed at construction: the entry's own, plus NPU prompt bounds for chat."""
        properties: dict[str, Any] = dict(entry.properties)
        if isinstance(entry, ChatEntry) and device.split(".")[0] == "NPU":
            properties.setdefault("MAX_PROMPT_LEN", entry.npu.max_prompt_len)
            properties.setdefault("MIN_RESPONSE_LEN", entry.npu.min_response_len)
        if isinstance(entry, ImageEntry) and device.split(".")[0] == "CPU":
            # Image panel: LoRA styles switch per image, and on CPUs with bf16 the default precision has given
            # black images after a switch; f32 is exact. Measured on the build machine (AMD EPYC, AVX2, no
            # AVX512-BF16/AMX; OPTIMIZATION_CAPABILITIES = FP32, INT8): the CPU plugin's default hint is already
            # f32, hints bf16/f16 fall back to it, and A -> none -> A was bit-exact with the default, f32, bf16 and
            # f16 hints alike; so f32 costs nothing here and is what keeps switching exact where bf16 exists. An
            # entry may still set its own hint. Set here, not in the panel, so the Models tab and --preload build
            # the very pipeline the panel uses.
            properties.setdefault("INFERENCE_PRECISION_HINT", "f32")
        return properties

    def load(self, entry: Entry, device: str | None = None, draft: str | None = None,
             draft_device: str | None = None, extra_properties: dict[str, Any] | None = None,
             progress: ProgressFn = _no_progress, batched: bool | None = None) -> Handle:
        """A compiled pipeline for ``entry`` on ``device`` (built once, then reused); for an entry with a
        ``backend``, a client of its model server shaped as that pipeline (``demos.core.remote``).

        ``batched``: a ``ContinuousBatchingPipeline`` (``demos.core.batching``) where the panel and device allow it
        (``runtime.batchable``); None means the panel's default: chat is batched, vision only when asked (its
        multi-turn chats keep their encoded images in a ``VLMPipeline``)."""
        if entry.backend is not None:
            return self._remote_handle(entry, device, draft)
        device = self.runtime.check_device(device or self.default_device)
        if draft_device:
            self.runtime.check_device(draft_device)
        prepared = self.prepare(entry, device, progress, drafts=bool(draft))
        draft_dir = None
        if draft:
            draft_entry = next((d for d in getattr(entry, "drafts", []) if d.id == draft), None)
            if draft_entry is None:
                valid = ", ".join(d.id for d in getattr(entry, "drafts", [])) or "none"
                raise UnknownId(f"model {entry.id!r} has no draft {draft!r}; its drafts: {valid}", param="draft")
            draft_dir = prepared.drafts[draft]
            draft_device = draft_device or draft_entry.device or device
        properties = {**self.properties(entry, device), **(extra_properties or {})}
        if batched is None:
            batched = entry.panel == "chat"
        key = PipelineKey.make(entry.panel, prepared.model_dir, device, list(prepared.adapters.values()),
                               draft_dir, draft_device, properties, batched=batched,
                               lora_mode=lora_modes.mode_for(entry))
        claim = Claim()
        loaded, built = self.runtime.get(key, on_build=lambda message: progress(None, message), claim=claim)
        return Handle(loaded, prepared, built, claim)

    def _remote_handle(self, entry: Entry, device: str | None, draft: str | None) -> Handle:
        if device and device != self.default_device:
            raise UserError(remote.unavailable(entry, f"the device (asked: {device})"), param="device")
        if draft:
            raise UserError(remote.unavailable(entry, "speculative decoding (a draft model)"), param="draft")
        # No folder: os.devnull is a path under which nothing can be read, so folder-reading helpers get defaults.
        return Handle(remote.loaded(entry), Prepared(Path(os.devnull), {}, {}), False)  # type: ignore[arg-type]

    def locate(self, entry: Entry, device: str | None = None) -> Status:
        """Whether ``entry`` is here, where, and in which state (no network, no size: see ``status``)."""
        if entry.source is None:  # served by its backend only: nothing of it is on this machine
            return Status("remote", False, False, False, None, None)
        source, revision, export = entry.source_for(device or self.default_device)
        return self.loader.locate(source, revision, export, entry.panel)

    def status(self, entry: Entry, device: str | None = None) -> Status:
        """``locate`` plus the size on disk (the Models tab), measured once per folder and state."""
        located = self.locate(entry, device)
        return dataclasses.replace(located, size_bytes=self._size(located))

    def _size(self, located: Status) -> int | None:
        folder = located.measured
        if folder is None:
            return None
        if located.partial or located.damaged:
            return folder_size(folder)  # still changing, or about to be replaced: not worth keeping
        try:
            changed = folder.stat().st_mtime_ns  # a file added to or removed from a local folder
        except OSError:
            return None
        state = (located.downloaded, located.exported, changed)
        known = self._sizes.get(str(folder))
        if known is None or known[0] != state:
            known = self._sizes[str(folder)] = (state, folder_size(folder))
        return known[1]

    def is_loaded(self, entry: Entry, status: Status | None = None) -> list[str]:
        """Devices on which a pipeline of ``entry`` is live (none for an entry served by its backend)."""
        if entry.backend is not None:
            return []
        status = status or self.locate(entry)
        if status.path is None:
            return []
        return sorted({k.device for k in self.runtime.loaded_keys()
                       if k.panel == entry.panel and k.model_dir == str(status.path)})
