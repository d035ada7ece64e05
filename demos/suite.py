"""What panels talk to: catalog + loader + runtime behind a few entry-level calls.

A panel asks for "entry X on device D (with draft Y)"; this module turns that into folders (loader) and a
compiled pipeline (runtime), registering every adapter the entry lists so that a per-request adapter switch
never rebuilds anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .catalog import Catalog, ChatEntry, Entry, ImageEntry
from .errors import UnknownId
from .loader import Loader, ProgressFn, Status, _no_progress
from .runtime import Loaded, PipelineKey, Runtime

E = TypeVar("E", bound=Entry)


@dataclass(frozen=True)
class Prepared:
    """Local folders and files for one entry on one device."""

    model_dir: Path
    adapters: dict[str, Path]       # adapter id -> .safetensors GenAI can apply
    drafts: dict[str, Path]         # draft id -> OpenVINO folder


@dataclass(frozen=True)
class Handle:
    """A pipeline ready to use, with what the panel needs to drive it."""

    loaded: Loaded
    prepared: Prepared
    built_now: bool

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
        # Presenter mode (demos.presenter): panels open on the stage entries, with Compare views first.
        self.presenter = False
        self.stage_entries: list[Entry] = []

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
                   Runtime(cache, max_pipelines or catalog.settings.max_pipelines), device)

    # ----------------------------------------------------------------------------------------------------

    def prepare(self, entry: Entry, device: str, progress: ProgressFn = _no_progress,
                drafts: bool = True) -> Prepared:
        """Fetch (download / export / convert) everything ``entry`` needs on ``device``."""
        model_dir = self.loader.model_dir(entry, device, progress)
        adapters = {a.id: self.loader.adapter_file(a, model_dir, progress, owner=entry.id)
                    for a in getattr(entry, "adapters", [])}
        draft_dirs = {}
        if drafts:
            draft_dirs = {d.id: self.loader.draft_dir(d, progress, owner=entry.id)
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
             progress: ProgressFn = _no_progress) -> Handle:
        """A compiled pipeline for ``entry`` on ``device`` (built once, then reused)."""
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
        key = PipelineKey.make(entry.panel, prepared.model_dir, device, list(prepared.adapters.values()),
                               draft_dir, draft_device, properties)
        loaded, built = self.runtime.get(key, on_build=lambda message: progress(None, message))
        return Handle(loaded, prepared, built)

    def status(self, entry: Entry, device: str | None = None) -> Status:
        source, revision, export = entry.source_for(device or self.default_device)
        return self.loader.status(source, revision, export, entry.panel)

    def is_loaded(self, entry: Entry, status: Status | None = None) -> list[str]:
        """Devices on which a pipeline of ``entry`` is live."""
        status = status or self.status(entry)
        if status.path is None:
            return []
        return sorted({k.device for k in self.runtime.loaded_keys()
                       if k.panel == entry.panel and k.model_dir == str(status.path)})
