"""The catalog: ``models.yaml`` parsed once into typed, cross-checked entries.

Every panel is built from this file, so a typo must stop the app at start with a message a person can act
on: the file, the entry id, the field and what is wrong, one line per problem, never a validation dump.
"""
from __future__ import annotations

import difflib
import os
import re
import stat
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from demos.core import lora_modes
from demos.core.errors import UnknownId

PANELS = ("chat", "image", "speech", "voice", "vision")
"""Panels in tab order; each is a top-level key of models.yaml."""

DEFAULT_CACHE_DIR = "~/.cache/openvino-genai-demos"
DEVICE_PATTERN = re.compile(r"^(CPU|GPU(\.\d+)?|NPU|AUTO)$")
ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"


class CatalogError(Exception):
    """models.yaml is unusable; ``problems`` holds one readable line per fault."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{self.path}: {len(problems)} problem(s) in the model catalog:\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportOptions(_Strict):
    """How optimum-intel converts a PyTorch checkpoint (NNCF weight compression)."""

    weight_format: Literal["int4", "int8", "fp16", "fp32"] = "int8"
    group_size: int | None = None
    ratio: float | None = Field(default=None, gt=0, le=1)
    sym: bool | None = None
    task: str | None = None
    # Text-to-speech exports (SpeechT5): the HiFi-GAN vocoder to bundle, a hub repo id or a local folder
    # (optimum-cli's --model-kwargs '{"vocoder": ...}').
    vocoder: str | None = None

    @field_validator("group_size")
    @classmethod
    def _group_size(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value <= 0:
            raise ValueError("must be -1 (channel-wise) or a positive number such as 32, 64 or 128")
        return value

    @model_validator(mode="after")
    def _int4_only(self) -> "ExportOptions":
        if self.weight_format != "int4":
            wrong = [name for name in ("group_size", "ratio") if getattr(self, name) is not None]
            if wrong:
                raise ValueError(f"{' and '.join(wrong)} only apply to weight_format: int4")
        return self


class Variant(_Strict):
    """Another source for one device, e.g. a channel-wise int4 export for NPU."""

    source: str
    revision: str | None = None
    export: ExportOptions | None = None


class Adapter(_Strict):
    """A LoRA adapter: a hub repo plus ``file``, or a local ``.safetensors`` file."""

    id: str = Field(pattern=ID_PATTERN)
    label: str = ""
    source: str
    file: str | None = None
    revision: str | None = None
    alpha: float = Field(default=1.0, ge=-4, le=4)

    @model_validator(mode="after")
    def _safetensors_only(self) -> "Adapter":
        name = self.file or self.source
        if not name.endswith(".safetensors"):
            raise ValueError("OpenVINO GenAI reads LoRA adapters only as .safetensors: give a .safetensors "
                             "file as source, or a hub repo as source plus file: <name>.safetensors")
        return self

    @property
    def title(self) -> str:
        return self.label or self.id


class Draft(_Strict):
    """A draft model for speculative decoding; it must share the main model's tokenizer."""

    id: str = Field(pattern=ID_PATTERN)
    label: str = ""
    source: str
    revision: str | None = None
    export: ExportOptions | None = None
    device: str | None = None

    @property
    def title(self) -> str:
        return self.label or self.id


class _Bounded(_Strict):
    """Per-request bounds (demos/bounds.py): the longest prompt (never more than the model's context) and the
    largest max_new_tokens a request may ask for (unset: the model's context length)."""

    max_new_tokens: int = Field(default=256, ge=1, le=32768)
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    max_new_tokens_limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _default_within_limit(self) -> "_Bounded":
        if self.max_new_tokens_limit is not None and self.max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(f"max_new_tokens {self.max_new_tokens} is above max_new_tokens_limit "
                             f"{self.max_new_tokens_limit}: lower the default or raise the limit")
        return self


class ChatGeneration(_Bounded):
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, gt=0)


class ImageGeneration(_Strict):
    width: int = Field(default=512, ge=64, le=4096)
    height: int = Field(default=512, ge=64, le=4096)
    num_inference_steps: int = Field(default=20, ge=1, le=200)
    guidance_scale: float = Field(default=7.5, ge=0, le=30)


class SpeechGeneration(_Strict):
    max_new_tokens: int = Field(default=448, ge=1, le=448)
    language: str = ""
    task: Literal["transcribe", "translate"] = "transcribe"
    max_audio_seconds: float = Field(default=1800, gt=0)


class VoiceGeneration(_Strict):
    # The longest text one request may speak (it is spoken sentence by sentence).
    max_chars: int = Field(default=2000, ge=1, le=100_000)


class Voice(_Strict):
    """A speaker embedding (float32, 512 values: a raw ``.bin`` as genai's samples store them, or a ``.npy``): a
    local file as ``source``, or a hub repo as ``source`` plus ``file``."""

    id: str = Field(pattern=ID_PATTERN)
    label: str = ""
    source: str
    file: str | None = None
    revision: str | None = None
    repo_type: Literal["model", "dataset"] = "model"  # hub voices often live in dataset repos

    @property
    def title(self) -> str:
        return self.label or self.id


class VisionGeneration(_Bounded):
    temperature: float = Field(default=0.0, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)


class NpuOptions(_Strict):
    """NPU pipelines are compiled for a fixed prompt length: the whole chat must fit in it."""

    max_prompt_len: int = Field(default=1024, ge=16)
    min_response_len: int = Field(default=128, ge=1)


class Backend(_Strict):
    """A server that serves this entry (OpenVINO Model Server, or any OpenAI-compatible one) instead of a local
    pipeline: its base URL (``http://ovms:8000/v3``), the model name it serves, and the environment variable
    holding its API key (never the key itself: models.yaml is shared, keys are not)."""

    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = Field(default=120, gt=0, le=3600)  # bound on one read: a stalled server ends the job

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(f"{_shown(value)} is not an http(s) URL: write the server's base URL, e.g. "
                             "http://ovms:8000/v3 (OpenVINO Model Server) or http://host:7860/v1 (this app)")
        return value.rstrip("/")

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: write the name the server serves the model under (its /models list)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(f"{_shown(value)} is not an environment variable name (letters, digits, '_'): name "
                             "the variable that holds the key, e.g. OVMS_API_KEY, not the key itself")
        return value


class Entry(_Strict):
    """Fields shared by every panel's entries."""

    panel: ClassVar[str] = ""
    pipeline: ClassVar[str] = ""

    id: str = Field(pattern=ID_PATTERN)
    label: str = ""
    source: str | None  # required unless ``backend`` serves the entry (then None when left out)
    revision: str | None = None
    export: ExportOptions | None = None
    variants: dict[str, Variant] = {}
    backend: Backend | None = None
    properties: dict[str, str | int | float | bool] = {}
    examples: list[str] = []
    description: str = ""
    presenter: bool = False  # preloaded and warmed up by `python app.py --presenter`

    @field_validator("variants")
    @classmethod
    def _device_names(cls, value: dict[str, Variant]) -> dict[str, Variant]:
        for device in value:
            if not DEVICE_PATTERN.match(device):
                raise ValueError(f"variant key {device!r} is not a device: use CPU, GPU, GPU.<n>, NPU or AUTO")
        return value

    @model_validator(mode="before")
    @classmethod
    def _source_optional_with_backend(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("backend") is not None and "source" not in data:
            return {**data, "source": None}
        return data

    @model_validator(mode="after")
    def _source_or_backend(self) -> "Entry":
        if self.source is None and self.backend is None:
            raise ValueError("source is empty: give a hub repo id or a local folder, or a backend: {url, model}")
        return self

    @property
    def title(self) -> str:
        return self.label or self.id

    @property
    def remote(self) -> bool:
        """Served by ``backend`` (a model server), not by a pipeline of this app."""
        return self.backend is not None

    def source_for(self, device: str) -> tuple[str, str | None, ExportOptions | None]:
        """The (source, revision, export) to use on ``device``: its variant if one is listed."""
        variant = self.variants.get(device) or self.variants.get(device.split(".")[0])
        if variant:
            return variant.source, variant.revision, variant.export
        return self.source, self.revision, self.export


class ChatEntry(Entry):
    panel: ClassVar[str] = "chat"
    pipeline: ClassVar[str] = "LLMPipeline"
    adapters: list[Adapter] = []
    lora_mode: str | None = None  # AdapterConfig.Mode of its pipelines (demos/core/lora_modes.py); None: the default
    drafts: list[Draft] = []
    generation: ChatGeneration = ChatGeneration()
    npu: NpuOptions = NpuOptions()
    system_prompt: str = ""


class ImageEntry(Entry):
    panel: ClassVar[str] = "image"
    pipeline: ClassVar[str] = "Text2ImagePipeline"
    adapters: list[Adapter] = []
    lora_mode: str | None = None  # AdapterConfig.Mode of its pipelines (demos/core/lora_modes.py); None: the default
    generation: ImageGeneration = ImageGeneration()
    negative_prompt: str = ""


class SpeechEntry(Entry):
    panel: ClassVar[str] = "speech"
    pipeline: ClassVar[str] = "WhisperPipeline"
    generation: SpeechGeneration = SpeechGeneration()


class VoiceEntry(Entry):
    panel: ClassVar[str] = "voice"
    pipeline: ClassVar[str] = "Text2SpeechPipeline"
    voices: list[Voice] = []
    generation: VoiceGeneration = VoiceGeneration()


class VisionEntry(Entry):
    panel: ClassVar[str] = "vision"
    pipeline: ClassVar[str] = "VLMPipeline"
    generation: VisionGeneration = VisionGeneration()
    max_images: int = Field(default=8, ge=1)
    # Videos (issue 19): ``video`` says whether the model takes them; unset, the model's type in its config.json
    # decides once the folder is here (demos.panels.vision.models.VIDEO_TYPES). Frames per video are bounded by
    # ``max_frames`` and by the model's context; longer videos than ``max_video_seconds`` are refused.
    video: bool | None = None
    max_frames: int = Field(default=32, ge=2, le=512)
    max_video_seconds: float = Field(default=1800, gt=0)


ENTRY_TYPES: dict[str, type[Entry]] = {"chat": ChatEntry, "image": ImageEntry, "speech": SpeechEntry,
                                       "voice": VoiceEntry, "vision": VisionEntry}


class Settings(_Strict):
    cache_dir: str = DEFAULT_CACHE_DIR
    device: str = "CPU"
    max_pipelines: int = Field(default=2, ge=1, le=64)
    # Requests one visitor (session) may have open at once across panels; past it a request is refused with a message.
    max_requests_per_session: int = Field(default=4, ge=1, le=1000)
    # KV cache (GB) of each continuously batched chat / vision pipeline on CPU and GPU: what concurrent answers
    # share. Requests that would not fit wait for room instead of failing.
    kv_cache_gb: int = Field(default=1, ge=1, le=1024)
    title: str = "OpenVINO GenAI demos"
    # What a visitor can put on the server's disk: Gradio refuses larger uploads, panels their own kinds.
    max_upload_mb: float = Field(default=200, gt=0)
    max_audio_mb: float = Field(default=200, gt=0)     # Speech: audio and video files
    max_image_mb: float = Field(default=20, gt=0)      # Vision: images, uploaded or sent as data URLs
    temp_keep_seconds: int = Field(default=3600, ge=1)  # generated and uploaded files are deleted after this

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a device: use CPU, GPU, GPU.<n>, NPU or AUTO")
        return value

    @model_validator(mode="after")
    def _kinds_within_uploads(self) -> "Settings":
        for name in ("max_audio_mb", "max_image_mb"):
            if getattr(self, name) > self.max_upload_mb:
                raise ValueError(f"{name} ({getattr(self, name):g}) is above max_upload_mb ({self.max_upload_mb:g}),"
                                 " which every upload is held to: raise max_upload_mb or lower it")
        return self


class Catalog(_Strict):
    """The whole of models.yaml. ``path`` is where it was read from (relative sources resolve against it)."""

    path: Path
    settings: Settings = Settings()
    chat: list[ChatEntry] = []
    image: list[ImageEntry] = []
    speech: list[SpeechEntry] = []
    voice: list[VoiceEntry] = []
    vision: list[VisionEntry] = []

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def panels(self) -> list[str]:
        """The panels that have at least one entry, in tab order."""
        return [panel for panel in PANELS if getattr(self, panel)]

    def entries(self, panel: str | None = None) -> list[Entry]:
        panels = [panel] if panel else list(PANELS)
        return [entry for name in panels for entry in getattr(self, name)]

    def entry(self, entry_id: str, panel: str | None = None) -> Entry:
        """The entry with this id; ``UnknownId`` (a ``KeyError``) with the valid ids when there is none."""
        for entry in self.entries(panel):
            if entry.id == entry_id:
                return entry
        valid = ", ".join(e.id for e in self.entries(panel)) or "none"
        where = f" in the {panel} panel" if panel else ""
        raise UnknownId(f"unknown model id {entry_id!r}{where}; valid ids: {valid}", param="model")

    def local_path(self, source: str) -> Path | None:
        """``source`` as a local path if it names an existing file or folder, else ``None`` (a hub repo id)."""
        path = Path(os.path.expanduser(source))
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            return path if path.exists() else None
        except OSError:  # e.g. a name too long for the file system: no such local file, so a (bad) repo id
            return None

    def cache_path(self) -> Path:
        return Path(os.path.expanduser(self.settings.cache_dir))


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting


MAX_CATALOG_BYTES = 1024 * 1024  # a catalog is a few KB; anything near a megabyte is a wrong path
MAX_ALIASES = 100                # YAML aliases used (a catalog may reuse a few property blocks)
MAX_ALIAS_NODES = 10_000         # nodes those aliases expand to: the 'billion laughs' grows this geometrically
MAX_DEPTH = 50                   # nesting levels (models.yaml uses about 5)
MAX_PROBLEMS = 40                # lines listed; the rest are counted


def load_catalog(path: str | os.PathLike) -> Catalog:
    """Read, validate and cross-check ``path``; raise ``CatalogError`` listing every problem found."""
    path = Path(path)
    text = _read_text(path)
    try:
        raw = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Unbounded as exc:
        raise CatalogError(path, [str(exc)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(path, [f"{where}not valid YAML ({_clip(problem, 120)})"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CatalogError(path, ["the top level must be a mapping of panels (chat, image, speech, vision, settings)"])
    problems = _top_level_problems(raw)
    catalog, field_problems = _validate(raw, path)
    # Cross-checks run on every entry that validated, so one run lists the field problems and these together.
    problems += field_problems + _cross_check(catalog)
    if not problems and not catalog.entries():
        problems.append("the catalog lists no models: add entries under " + ", ".join(PANELS) +
                        " (e.g. 'chat:' then '  - id: my-model' and '    source: OpenVINO/<repo>')")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(problems) - MAX_PROBLEMS} more problem(s)")
        raise CatalogError(path, shown)
    return catalog


def _read_text(path: Path) -> str:
    """The file as text, refusing what is not a small regular UTF-8 file (a device or a FIFO would never end)."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before fstat can refuse it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CatalogError(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CatalogError(path, ["not a regular file: give the path of a models.yaml file"])
        if info.st_size > MAX_CATALOG_BYTES:
            raise CatalogError(path, [_too_large(info.st_size)])
        data = _read_at_most(fd, MAX_CATALOG_BYTES + 1)  # the file may have grown after fstat
    except OSError as exc:
        raise CatalogError(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    finally:
        os.close(fd)
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError(path, [_too_large(len(data))])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CatalogError(path, [f"line {line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); save it "
                                  "as UTF-8"]) from None


def _read_at_most(fd: int, limit: int) -> bytes:
    parts, total = [], 0
    while total < limit:
        chunk = os.read(fd, limit - total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _too_large(size: int) -> str:
    return (f"the file is larger than {MAX_CATALOG_BYTES // (1024 * 1024)} MB ({size} bytes or more); a model catalog "
            "is a few KB: check the path")


class _Unbounded(yaml.YAMLError):
    """The file expands far beyond its size through YAML aliases, or nests deeper than any catalog."""


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that counts alias uses and the nodes they expand to, and stops at a small bound.

    Aliases share one parsed node, so a 1 KB 'billion laughs' parses fast, but everything that walks the
    result (validation, an error message quoting it) walks the whole expansion: 226 MB of text for 8 levels.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._expanded = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                self._aliases += 1
                self._expanded += _node_count(node, self._sizes, set())
                if self._aliases > MAX_ALIASES or self._expanded > MAX_ALIAS_NODES:
                    raise _Unbounded(f"line {event.start_mark.line + 1}: too many YAML aliases (more than "
                                          f"{MAX_ALIASES} uses or {MAX_ALIAS_NODES} values expanded); write the "
                                          "values out instead of nesting aliases")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:  # the composer recurses per level: Python's stack would end it raw
                mark = self.peek_event().start_mark
                raise _Unbounded(f"line {mark.line + 1}: values are nested more than {MAX_DEPTH} levels deep; "
                                      "a catalog needs a few")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _node_count(node: yaml.Node, sizes: dict[int, int], path: set[int]) -> int:
    """Scalars in ``node`` with every alias expanded (memoised; a node that contains itself counts once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in path:
        return 0
    if isinstance(node, yaml.ScalarNode):
        return 1
    path.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
    total = 1 + sum(_node_count(child, sizes, path) for child in children)
    path.discard(key)
    sizes[key] = total
    return total


def _clip(text: Any, limit: int = 80) -> str:
    """``text`` as a string of at most ``limit`` characters: messages must stay short whatever the file holds."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _shown(value: Any) -> str:
    """``repr(value)`` of at most 80 characters (an expanded value can be megabytes long)."""
    return _clip(repr(value))


def _validate(raw: dict, path: Path) -> tuple[Catalog, list[str]]:
    """The catalog of every entry that validates, and one line per problem of the others.

    Entries are validated one by one so that a fault in one does not hide the rest from the cross-checks.
    """
    problems: list[str] = []
    values: dict[str, Any] = {"path": path.resolve()}
    if "settings" in raw:
        try:
            values["settings"] = Settings.model_validate(raw["settings"])
        except ValidationError as exc:
            problems += [_describe({**e, "loc": ("settings", *e["loc"])}, raw) for e in exc.errors()]
    for panel in PANELS:
        items = raw.get(panel)
        if not isinstance(items, list):
            continue
        valid = []
        for index, item in enumerate(items):
            try:
                valid.append(ENTRY_TYPES[panel].model_validate(item))
            except ValidationError as exc:
                problems += [_describe({**e, "loc": (panel, index, *e["loc"])}, raw) for e in exc.errors()]
        values[panel] = valid
    return Catalog.model_validate(values), problems


def _top_level_problems(raw: dict) -> list[str]:
    problems = []
    known = (*PANELS, "settings")
    for key in raw:
        if key not in known:
            problems.append(f"unknown panel {_shown(key)}{_did_you_mean(str(key), known)}; panels are "
                            f"{', '.join(PANELS)} (plus settings)")
    for panel in PANELS:
        if panel in raw and raw[panel] is not None and not isinstance(raw[panel], list):
            problems.append(f"{panel}: must be a list of entries (each starting with '- id: ...')")
        if raw.get(panel) is None and panel in raw:
            raw[panel] = []
    return problems


def _entry_label(raw: dict, panel: str, index: int) -> str:
    try:
        entry_id = raw[panel][index].get("id")
    except (AttributeError, IndexError, KeyError, TypeError):
        entry_id = None
    return f"{panel}[{_clip(entry_id, 60)}]" if entry_id else f"{panel}[entry {index + 1}]"


def _describe(error: dict, raw: dict) -> str:
    """One pydantic error as 'chat[tinyllama].adapters[pirate].alpha: message'."""
    loc = list(error["loc"])
    parts: list[str] = []
    node: Any = raw
    i = 0
    while i < len(loc):
        key = loc[i]
        if i == 0 and key in PANELS and len(loc) > 1 and isinstance(loc[1], int):
            parts.append(_entry_label(raw, key, loc[1]))
            node = _child(_child(node, key), loc[1])
            i += 2
            continue
        if isinstance(key, int):
            child = _child(node, key)
            item_id = child.get("id") if isinstance(child, dict) else None
            label = _clip(item_id, 60) if item_id else f"item {key + 1}"
            if parts:
                parts[-1] += f"[{label}]"
            else:
                parts.append(f"[{label}]")
            node = child
        else:
            parts.append(_clip(key, 60))
            node = _child(node, key)
        i += 1
    where = ".".join(parts) or "top level"
    return f"{where}: {_message(error, parts, node)}"


def _child(node: Any, key: Any) -> Any:
    try:
        return node[key]
    except (KeyError, IndexError, TypeError):
        return None


# Fields some panels have and others do not: say which pipelines support them instead of "did you mean".
_PANEL_ONLY_FIELDS = {
    "adapters": "LoRA adapters are supported by the chat (LLMPipeline) and image (Text2ImagePipeline) panels only",
    "lora_mode": "adapter modes apply to the chat and image panels only (the ones with LoRA adapters)",
    "drafts": "draft models (speculative decoding) are supported by the chat panel only",
    "npu": "NPU prompt bounds apply to chat entries only",
    "system_prompt": "only chat entries have a system prompt",
    "negative_prompt": "only image entries have a negative prompt",
    "max_images": "only vision entries take images",
    "voices": "only voice entries (Text2SpeechPipeline) have voices",
}

_FIELDS_BY_CONTAINER = {
    "export": ExportOptions, "generation": None, "npu": NpuOptions, "settings": Settings, "adapters": Adapter,
    "drafts": Draft, "variants": Variant, "backend": Backend, "voices": Voice,
}


def _message(error: dict, parts: list[str], value: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        field = parts[-1] if parts else "?"
        if len(parts) == 2 and field in _PANEL_ONLY_FIELDS:
            return f"unknown field {_shown(field)}: {_PANEL_ONLY_FIELDS[field]}"
        return f"unknown field {_shown(field)}{_did_you_mean(field, _sibling_fields(parts))}"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch":
        return f"{_shown(value)} is not a valid id: use lowercase letters, digits, '.', '_' and '-'"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{_shown(value)} is not one of {expected}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_parsing", "float_parsing",
                "bool_parsing", "string_type", "int_type", "float_type", "list_type", "dict_type", "model_type"}:
        message = f"{message} (got {_shown(value)})"
    return message


def _sibling_fields(parts: list[str]) -> list[str]:
    """Names valid next to a misspelt field, for a 'did you mean' hint."""
    container = parts[-2] if len(parts) >= 2 else ""
    container = re.sub(r"\[.*\]$", "", container)
    model = _FIELDS_BY_CONTAINER.get(container)
    if model is not None:
        return list(model.model_fields)
    panel = re.sub(r"\[.*\]$", "", parts[0]) if parts else ""
    if container == "generation" and panel in ENTRY_TYPES:
        return list(ENTRY_TYPES[panel].model_fields["generation"].annotation.model_fields)
    if panel in ENTRY_TYPES:
        return list(ENTRY_TYPES[panel].model_fields)
    return []


def _did_you_mean(word: str, options) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _cross_check(catalog: Catalog) -> list[str]:
    """Rules that span entries: unique ids, existing local files, drafts and adapters that make sense."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for panel in PANELS:
        for entry in getattr(catalog, panel):
            where = f"{panel}[{_clip(entry.id, 60)}]"
            if entry.id in seen:
                problems.append(f"{where}.id: {_shown(entry.id)} is already used by {seen[entry.id]}; ids must be "
                                "unique")
            seen.setdefault(entry.id, where)
            if entry.source is not None:
                problems += _check_source(catalog, f"{where}.source", entry.source, entry.export)
            for device, variant in entry.variants.items():
                problems += _check_source(catalog, f"{where}.variants[{device}].source", variant.source, variant.export)
            for adapter in getattr(entry, "adapters", []):
                problems += _check_adapter(catalog, f"{where}.adapters[{adapter.id}]", adapter)
            problems += _check_unique([a.id for a in getattr(entry, "adapters", [])], f"{where}.adapters")
            if getattr(entry, "lora_mode", None) is not None:
                problems += filter(None, [lora_modes.problem(where, panel, entry.lora_mode)])
            for draft in getattr(entry, "drafts", []):
                problems += _check_source(catalog, f"{where}.drafts[{draft.id}].source", draft.source, draft.export)
                if draft.device and not DEVICE_PATTERN.match(draft.device):
                    problems.append(f"{where}.drafts[{draft.id}].device: {_shown(draft.device)} is not a device: "
                                    "use CPU, GPU, GPU.<n>, NPU or AUTO")
            problems += _check_unique([d.id for d in getattr(entry, "drafts", [])], f"{where}.drafts")
            for voice in getattr(entry, "voices", []):
                problems += _check_voice(catalog, f"{where}.voices[{voice.id}]", voice)
            problems += _check_unique([v.id for v in getattr(entry, "voices", [])], f"{where}.voices")
            for field_name, export in (("export", entry.export), *((f"variants[{d}].export", v.export)
                                                                   for d, v in entry.variants.items())):
                problems += _check_vocoder(catalog, f"{where}.{field_name}.vocoder", export)
    return problems


def _check_voice(catalog: Catalog, where: str, voice: Voice) -> list[str]:
    local = catalog.local_path(voice.source)
    if voice.file is None:
        if local is None or not local.is_file():
            return [f"{where}.source: local file {_shown(voice.source)} does not exist (for a hub repo, give "
                    "source: <owner/name> and file: <name>.bin)"]
        return []
    if local is not None and not (local / voice.file).is_file():
        return [f"{where}.file: {_shown(voice.file)} is not in {local}"]
    if local is None and _looks_local(voice.source):
        return [f"{where}.source: local folder {_shown(voice.source)} does not exist"]
    return []


def _check_vocoder(catalog: Catalog, where: str, export: ExportOptions | None) -> list[str]:
    if export is None or export.vocoder is None:
        return []
    if catalog.local_path(export.vocoder) is None and (_looks_local(export.vocoder)
                                                       or not re.match(r"^[\w.-]+(/[\w.-]+)?$", export.vocoder)):
        return [f"{where}: {_shown(export.vocoder)} is neither an existing folder nor a hub repo id like "
                "'microsoft/speecht5_hifigan'"]
    return []


def _check_unique(ids: list[str], where: str) -> list[str]:
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    return [f"{where}[{i}].id: {_shown(i)} appears more than once" for i in dupes]


def _looks_local(source: str) -> bool:
    """A hub id is 'owner/name' or 'name'; anything with a path marker is meant to be local."""
    return source.startswith(("/", "./", "../", "~")) or source.endswith(".safetensors") or os.sep + os.sep in source \
        or source.count("/") > 1


def _check_source(catalog: Catalog, where: str, source: str, export: ExportOptions | None) -> list[str]:
    local = catalog.local_path(source)
    if local is None:
        if _looks_local(source):
            return [f"{where}: local folder {_shown(source)} does not exist (relative paths start at "
                    f"{catalog.base_dir})"]
        if not re.match(r"^[\w.-]+(/[\w.-]+)?$", source):
            return [f"{where}: {_shown(source)} is neither an existing folder nor a hub repo id like "
                    "'OpenVINO/model-name'"]
        return []
    if not local.is_dir():
        return [f"{where}: {_shown(source)} is a file; a model source is a folder or a hub repo id"]
    has_ir = any(local.glob("*.xml")) or any(local.glob("*/*.xml"))
    if not has_ir and export is None:
        return [f"{where}: {_shown(source)} holds no OpenVINO model (*.xml); add 'export: {{weight_format: int8}}' "
                "to convert it with optimum-intel"]
    return []


def _check_adapter(catalog: Catalog, where: str, adapter: Adapter) -> list[str]:
    if adapter.file is None:
        if catalog.local_path(adapter.source) is None:
            return [f"{where}.source: local file {_shown(adapter.source)} does not exist (for a hub repo, give "
                    "source: <owner/name> and file: <name>.safetensors)"]
        return []
    local = catalog.local_path(adapter.source)
    if local is not None and not (local / adapter.file).is_file():
        return [f"{where}.file: {_shown(adapter.file)} is not in {local}"]
    if local is None and _looks_local(adapter.source):
        return [f"{where}.source: local folder {_shown(adapter.source)} does not exist"]
    return []
