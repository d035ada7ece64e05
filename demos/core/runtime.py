"""The one place that builds OpenVINO GenAI pipelines, and the bounded pool that keeps them.

A pipeline is keyed by everything fixed when it is constructed: panel, model folder, device, the full set of
LoRA adapters registered with it, draft model and draft device, and device properties. What a request may
change (the active adapters and their alphas, generation settings) is never part of the key, so switching
an adapter or an alpha reuses the compiled pipeline. Pipelines are not safe for concurrent ``generate``
calls, so each carries a lock that every user of it holds while generating.

``max_pipelines`` is a true bound on the unpinned pipelines alive (kept or being built). A pipeline is *in use*
while a caller holds a ``Claim`` on it (``Suite.load`` puts one in every ``Handle``: a request in progress keeps
its handle), while jobs are in its serving lane, or while its lock is held; only pipelines not in use are evicted,
never pinned ones, and only once the new build has passed its checks (device, folders). When every slot is in use
the caller waits for one ("Waiting for a free pipeline slot…") instead of exceeding the bound.
"""
from __future__ import annotations

import functools
import gc
import threading
import time
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from demos.core import batching, checks, image_modes, lora_modes, serving
from demos.core.errors import UserError

PANEL_PIPELINES = {"chat": "LLMPipeline", "image": "Text2ImagePipeline", "speech": "WhisperPipeline",
                   "voice": "Text2SpeechPipeline", "vision": "VLMPipeline"}
BATCHED_PANELS = ("chat", "vision")  # served by a ContinuousBatchingPipeline on CPU and GPU (demos.core.batching)
BATCHED_DEVICES = ("CPU", "GPU")


def batchable(panel: str, device: str) -> bool:
    """Whether ``panel`` on ``device`` runs continuously batched (NPU and AUTO serve one job at a time)."""
    return panel in BATCHED_PANELS and device.split(".")[0] in BATCHED_DEVICES


class DeviceError(UserError):
    """A device that this machine does not have, or a name that the app does not take (see ``check_device``)."""

    kind = "device"


@dataclass(frozen=True)
class PipelineKey:
    """Everything fixed at construction. Paths are strings so keys compare and hash simply."""

    panel: str
    model_dir: str
    device: str
    adapters: tuple[str, ...] = ()
    draft_dir: str | None = None
    draft_device: str | None = None
    properties: tuple[tuple[str, Any], ...] = ()
    batched: bool = False  # a ContinuousBatchingPipeline (demos.core.batching) instead of the panel's pipeline
    lora_mode: str = ""    # the AdapterConfig mode the adapters are registered in (demos.core.lora_modes); "": none

    @staticmethod
    def make(panel: str, model_dir: Path | str, device: str, adapters: list[Path | str] | tuple = (),
             draft_dir: Path | str | None = None, draft_device: str | None = None,
             properties: dict[str, Any] | None = None, batched: bool = False,
             lora_mode: str | None = None) -> "PipelineKey":
        """``lora_mode`` None means the panel's default (``lora_modes.DEFAULTS``); it counts only with adapters."""
        mode = (lora_mode or lora_modes.DEFAULTS.get(panel, "auto")) if adapters else ""
        return PipelineKey(panel, str(model_dir), device, tuple(sorted(str(a) for a in adapters)),
                           str(draft_dir) if draft_dir else None, draft_device if draft_dir else None,
                           tuple(sorted((properties or {}).items())), batched and batchable(panel, device), mode)


class Claim:
    """A caller's hold on a pipeline (see ``Runtime.get``): while it is alive the pipeline is in use.

    Held by a ``Handle``; it ends when the last reference to it goes (a finished request drops its handle), so no
    panel has to remember to give a pipeline back."""

    __slots__ = ("thread", "__weakref__")

    def __init__(self) -> None:
        self.thread = threading.get_ident()  # who claimed: a request waiting on a slot its own claims fill is stuck


@dataclass(eq=False)
class Loaded:
    """A live pipeline with its lock and what it cost to build."""

    key: PipelineKey
    pipeline: Any
    adapters: dict[str, Any]          # adapter path -> openvino_genai.Adapter registered with the pipeline
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    claims: "weakref.WeakSet[Claim]" = field(default_factory=weakref.WeakSet, repr=False)
    kv_tokens: int | None = None      # batched pipelines: the tokens their KV cache holds (an estimate), if known
    modes: Any = None                 # image pipelines: Generate/Transform/Inpaint sharing one model (image_modes)

    def in_use(self) -> int:
        """Requests holding this pipeline: live claims, jobs in its lane (waiting or running), an outside lock (a
        batcher holds it while it has work)."""
        return max(len(self.claims), serving.in_use(self), 1 if self.lock.locked() else 0)


SLOT_POLL_S = 0.1  # how often a request waiting for a build or a free slot looks again (claims end without a signal)
GC_EVERY_S = 2.0   # while waiting, collect garbage this often: a dropped handle caught in a cycle still holds a claim


@functools.lru_cache(maxsize=1)
def available_devices() -> tuple[str, ...]:
    """Devices OpenVINO sees on this machine (asked once: creating a Core probes every plugin)."""
    import openvino as ov
    return tuple(ov.Core().available_devices)


class Runtime:
    """A bounded LRU of compiled pipelines. Thread-safe."""

    def __init__(self, cache_dir: Path | str, max_pipelines: int = 2,
                 devices: Callable[[], tuple[str, ...] | list[str]] = available_devices, kv_cache_gb: int = 1):
        self.compile_cache = Path(cache_dir).expanduser() / "compiled"
        self.max_pipelines = max(1, int(max_pipelines))
        self.kv_cache_gb = max(1, int(kv_cache_gb))  # KV cache of each batched pipeline (SchedulerConfig.cache_size)
        self._devices = devices
        self._pool: OrderedDict[PipelineKey, Loaded] = OrderedDict()
        self._lock = threading.Lock()          # guards _pool and _building
        self._building: set[PipelineKey] = set()  # keys being compiled now: they count against max_pipelines
        self._build_lock = threading.Lock()    # one build at a time: builds are memory-heavy
        self.builds: Counter[PipelineKey] = Counter()
        # Never evicted and not counted against max_pipelines (presenter mode pins its warmed stage pipelines).
        self.pinned: set[PipelineKey] = set()

    # ----------------------------------------------------------------------------------------------------
    # Devices

    def devices(self) -> list[str]:
        """Choosable devices: what OpenVINO reports, plus AUTO."""
        found = list(self._devices())
        return found + (["AUTO"] if "AUTO" not in found else [])

    def check_device(self, device: str) -> str:
        """Return ``device`` if this machine has it; ``DeviceError`` naming the choices otherwise.

        Taken: what OpenVINO reports (CPU, GPU.0, NPU …), a family name (GPU), AUTO and AUTO:<devices>.
        Refused with a message: MULTI, HETERO and BATCH (before this check they reached the pipeline and came back as
        OpenVINO's exception text), lowercase or unknown names, bare lists and non-strings.
        """
        if not isinstance(device, str):
            raise self._device_error(device)
        device = device.strip()
        found = list(self._devices())
        names = set(found) | {d.split(".")[0] for d in found}
        if device.startswith("AUTO:"):
            listed = device[len("AUTO:"):].split(",")
            # A device named twice would make a new pipeline key (a new compile) for the same pipeline.
            distinct = all(listed) and len(set(listed)) == len(listed)
            missing = [d for d in listed if d not in names] if distinct else [device]
        else:
            missing = [device] if device not in names | {"AUTO"} else []
        if missing or not device:
            raise self._device_error(device)
        return device

    def _device_error(self, device: Any) -> DeviceError:
        have = ", ".join(self.devices())
        shown = checks.shown(device) if device != "" else "(none)"
        family = device.split(":")[0] if isinstance(device, str) else ""
        if family in ("MULTI", "HETERO", "BATCH"):
            return DeviceError(f"device {shown}: the app takes no {family} devices; choose one of: {have}",
                               param="device")
        return DeviceError(f"device {shown} is not available on this machine; choose one of: {have}", param="device")

    # ----------------------------------------------------------------------------------------------------
    # Pool

    def get(self, key: PipelineKey, on_build: Callable[[str], None] | None = None,
            claim: Claim | None = None) -> tuple[Loaded, bool]:
        """The live pipeline for ``key`` and whether this call built it (a build can take a while).

        ``claim`` (kept by the caller for as long as it uses the pipeline) marks it in use, atomically with the
        look-up, so no other build can evict it in between. ``on_build`` hears what the call waits for: a build
        of the same key by another caller, a free slot, or its own compile.
        """
        self.check_buildable(key)  # before waiting or evicting anything: a build that cannot work evicts nothing
        said = None

        def say(message: str) -> None:
            nonlocal said
            if on_build and message != said:
                said = message
                on_build(message)

        name = Path(key.model_dir).name
        waited_since = time.monotonic()
        while True:
            with self._lock:
                loaded = self._pool.get(key)
                if loaded is not None:
                    self._pool.move_to_end(key)
                    if claim is not None:
                        loaded.claims.add(claim)
                    return loaded, False
                if key in self._building:
                    message = f"Waiting for {name} on {key.device}: another request is compiling it…"
                elif self._make_room():
                    self._building.add(key)
                    break
                else:
                    self._refuse_if_own_claims_block(claim)
                    busy = sum(1 for k in self._pool if k not in self.pinned)
                    message = (f"Waiting for a free pipeline slot: all {self.max_pipelines} are in use "
                               f"({busy} loaded{', 1 compiling' if self._building else ''}); this request starts "
                               "as soon as one is idle…")
            say(message)
            time.sleep(SLOT_POLL_S)
            if time.monotonic() - waited_since > GC_EVERY_S:  # claims caught in reference cycles end only here
                waited_since = time.monotonic()
                gc.collect()
        try:
            if not self._build_lock.acquire(blocking=False):  # builds are memory-heavy: one at a time
                say("Waiting for another model to finish compiling (one compiles at a time)…")
                self._build_lock.acquire()
            try:
                say(f"Compiling {name} for {key.device}…")
                loaded = self._build(key)
            finally:
                self._build_lock.release()
        finally:
            with self._lock:
                self._building.discard(key)
        with self._lock:
            self._pool[key] = loaded
            if claim is not None:
                loaded.claims.add(claim)
            self.builds[key] += 1
        return loaded, True

    def check_buildable(self, key: PipelineKey) -> None:
        """What can be known before compiling: the devices exist and the folders are there (a ``UserError``)."""
        self.check_device(key.device)
        if key.draft_device:
            self.check_device(key.draft_device)
        for what, folder in (("model", key.model_dir), ("draft", key.draft_dir)):
            if folder is not None and not Path(folder).is_dir():
                raise UserError(f"the {what} folder {Path(folder).name} is missing; fetch the model again "
                                "(Models tab → Fetch, or --prefetch)", param="model")
        missing = [Path(a).name for a in key.adapters if not Path(a).is_file()]
        if missing:
            raise UserError(f"LoRA adapter file(s) {', '.join(missing)} are missing; fetch the model again",
                            param="adapter")

    def in_use(self, key: PipelineKey) -> int:
        """Requests holding the pipeline of ``key`` (0 when it is idle or not loaded)."""
        with self._lock:
            loaded = self._pool.get(key)
        return loaded.in_use() if loaded is not None else 0

    def loaded_keys(self) -> list[PipelineKey]:
        with self._lock:
            return list(self._pool)

    def unload(self, predicate: Callable[[PipelineKey], bool] = lambda key: True) -> int:
        """Drop the pipelines whose key matches; return how many."""
        with self._lock:
            doomed = [k for k in self._pool if predicate(k)]
            for key in doomed:
                del self._pool[key]
                self.pinned.discard(key)  # unloading is explicit: a pin does not outlive it
        gc.collect()
        return len(doomed)

    def _make_room(self) -> bool:
        """Make room for one more unpinned pipeline by releasing idle ones, least recently used first; False when
        every slot is in use (nothing is released then). The caller holds ``_lock``."""
        unpinned = [key for key in self._pool if key not in self.pinned]  # least recently used first
        excess = len(unpinned) + len(self._building) + 1 - self.max_pipelines
        if excess <= 0:
            return True
        idle = [key for key in unpinned if self._pool[key].in_use() == 0]
        if len(idle) < excess:
            return False
        for key in idle[:excess]:
            del self._pool[key]
        gc.collect()  # pipelines hold gigabytes: free them before compiling the next
        return True

    def _refuse_if_own_claims_block(self, claim: Claim | None) -> None:
        """A request that holds every busy slot itself (Compare needs two pipelines, ``max_pipelines`` is 1) would
        wait for itself forever: say so instead. The caller holds ``_lock``."""
        me = claim.thread if claim is not None else threading.get_ident()
        busy = [loaded for key, loaded in self._pool.items() if key not in self.pinned and loaded.in_use()]
        if busy and not self._building and all(serving.in_use(b) == 0 and not b.lock.locked()
                                               and {c.thread for c in list(b.claims)} == {me} for b in busy):
            raise UserError(f"this request needs more pipelines at once than max_pipelines ({self.max_pipelines}) "
                            "allows; raise max_pipelines in models.yaml (or --max-pipelines)", param="model")

    # ----------------------------------------------------------------------------------------------------
    # Building

    def _build(self, key: PipelineKey) -> Loaded:
        import openvino_genai as ov_genai
        started = time.perf_counter()
        properties = dict(key.properties)
        self.compile_cache.mkdir(parents=True, exist_ok=True)
        properties.setdefault("CACHE_DIR", str(self.compile_cache))
        adapters = {path: ov_genai.Adapter(path) for path in key.adapters}
        if adapters:
            # A key made without a mode (built directly, not through make) gets its panel's default.
            mode = key.lora_mode or lora_modes.DEFAULTS.get(key.panel, "auto")
            properties["adapters"] = lora_modes.registration(list(adapters.values()), mode)
        if key.batched:
            pipeline = self._build_batched(key, properties, bool(adapters))
            return Loaded(key, pipeline, adapters, time.perf_counter() - started,
                          kv_tokens=batching.capacity_tokens(key.model_dir, self.kv_cache_gb))
        if key.panel == "chat":
            if key.draft_dir:
                properties["draft_model"] = self._draft(key, properties, bool(adapters))
            if adapters and key.device.split(".")[0] != "NPU":
                # LLMPipeline's default prefix caching reuses prompt KV computed under the previous call's
                # adapter (measured: A then none answers "none" wrongly). SchedulerConfig() has it off. NPU
                # pipelines take no scheduler config.
                properties.setdefault("scheduler_config", ov_genai.SchedulerConfig())
            pipeline = ov_genai.LLMPipeline(key.model_dir, key.device, **properties)
        elif key.panel == "image":
            pipeline, modes = image_modes.build(key.model_dir, key.device, properties)
            return Loaded(key, pipeline, adapters, time.perf_counter() - started, modes=modes)
        elif key.panel == "speech":
            pipeline = ov_genai.WhisperPipeline(key.model_dir, key.device, **properties)
        elif key.panel == "voice":  # one job at a time, in its serving lane, like image and speech
            pipeline = ov_genai.Text2SpeechPipeline(key.model_dir, key.device, **properties)
        elif key.panel == "vision":
            pipeline = ov_genai.VLMPipeline(key.model_dir, key.device, **properties)
        else:
            raise ValueError(f"unknown panel {key.panel!r}; panels are {', '.join(PANEL_PIPELINES)}")
        return Loaded(key, pipeline, adapters, time.perf_counter() - started)

    @staticmethod
    def _draft(key: PipelineKey, properties: dict[str, Any], with_adapters: bool) -> Any:
        import openvino_genai as ov_genai
        draft_props = {k: v for k, v in properties.items() if k not in ("adapters", "scheduler_config")}
        draft_props.pop("MAX_PROMPT_LEN", None)
        draft_props.pop("MIN_RESPONSE_LEN", None)
        if with_adapters:  # a draft must not inherit the main model's adapters
            draft_props["adapters"] = ov_genai.AdapterConfig()
        return ov_genai.draft_model(key.draft_dir, key.draft_device or key.device, **draft_props)

    def _build_batched(self, key: PipelineKey, properties: dict[str, Any], with_adapters: bool) -> Any:
        """A ``ContinuousBatchingPipeline`` with a KV cache of ``kv_cache_gb`` (chat with its draft, or vision)."""
        import openvino_genai as ov_genai
        scheduler = ov_genai.SchedulerConfig()
        scheduler.cache_size = self.kv_cache_gb
        # Prefix caching reuses prompt KV across requests; with adapters it would reuse KV computed under another
        # adapter setting (DESIGN §10), so only plain pipelines have it.
        scheduler.enable_prefix_caching = not with_adapters
        if key.draft_dir:
            properties["draft_model"] = self._draft(key, properties, with_adapters)
        return ov_genai.ContinuousBatchingPipeline(key.model_dir, scheduler, key.device, properties)
