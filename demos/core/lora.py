"""LoRA adapter files: read their tensor table, convert layouts OpenVINO GenAI does not match, check they fit.

Only the JSON header of a ``.safetensors`` file is parsed; tensor bytes are copied untouched, so conversion
works for any dtype (bf16 included) without torch, and costs one sequential copy of the file.
"""
from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from demos.core.errors import UserError

_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight", ".lora.down.weight",
             ".lora.up.weight", ".lora_A.default.weight", ".lora_B.default.weight", ".alpha", ".lora_mid.weight",
             ".dora_scale", ".diff", ".diff_b")
_PREFIXES = ("base_model.model.", "lora_unet_", "lora_te1_", "lora_te2_", "lora_te_", "lora_transformer_",
             "unet.", "text_encoder_2.", "text_encoder.", "transformer.", "model.")
_DIFFUSERS_COMPONENTS = {"unet.": "lora_unet_", "text_encoder.": "lora_te_", "text_encoder_2.": "lora_te2_"}


class AdapterFormatError(UserError):
    """The file is not a readable safetensors LoRA adapter."""


@dataclass(frozen=True)
class TensorTable:
    """The header of a safetensors file: tensor names with dtype, shape and byte range."""

    path: Path
    tensors: dict[str, dict]
    metadata: dict[str, str]
    data_start: int

    @property
    def names(self) -> list[str]:
        return list(self.tensors)


def read_table(path: Path) -> TensorTable:
    """Parse the header of ``path``; ``AdapterFormatError`` if it is not a sane safetensors file."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise AdapterFormatError(f"{path.name} is not a safetensors file (only {size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len <= 1 or header_len > min(size - 8, 100_000_000):
            raise AdapterFormatError(f"{path.name} is not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise AdapterFormatError(f"{path.name} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise AdapterFormatError(f"{path.name} is not a safetensors file (header is not a table)")
    metadata = header.pop("__metadata__", None) or {}
    data_len = size - 8 - header_len
    for name, info in header.items():
        try:
            begin, end = info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise AdapterFormatError(f"{path.name}: tensor {name!r} has no byte range") from None
        if not 0 <= begin <= end <= data_len:
            raise AdapterFormatError(f"{path.name} is truncated or corrupt: tensor {name!r} lies beyond the end "
                                     "of the file")
    if not header:
        raise AdapterFormatError(f"{path.name} holds no tensors")
    return TensorTable(path, header, metadata, 8 + header_len)


def is_lora(table: TensorTable) -> bool:
    return any(re.search(r"lora[._](A|B|up|down)\b", name) for name in table.names)


def needs_conversion(table: TensorTable) -> bool:
    """True for diffusers/peft-style image adapters (``unet.``/``text_encoder.`` prefixed keys)."""
    return any(name.startswith(tuple(_DIFFUSERS_COMPONENTS)) for name in table.names)


def _kohya_name(name: str) -> str | None:
    for prefix, kohya in _DIFFUSERS_COMPONENTS.items():
        if name.startswith(prefix):
            rest = name[len(prefix):]
            break
    else:
        return None
    for old, new in ((".lora_A.weight", ".lora_down.weight"), (".lora_B.weight", ".lora_up.weight"),
                     (".lora.down.weight", ".lora_down.weight"), (".lora.up.weight", ".lora_up.weight"),
                     (".alpha", ".alpha")):
        if rest.endswith(old):
            module = rest[: -len(old)].replace(".processor.", ".")
            return kohya + module.replace(".", "_") + new
    return None


def convert_to_kohya(source: Path, target: Path, lora_alpha: float | None = None) -> int:
    """Write ``source`` with diffusers/peft keys renamed to the kohya layout; return the tensors written.

    peft keeps the scale (``lora_alpha / r``) in adapter_config.json, not in the weights; kohya keeps it as an
    ``.alpha`` tensor per module. When ``lora_alpha`` is known it is written as that tensor so the result scales
    exactly as the original did.
    """
    table = read_table(source)
    renamed: dict[str, dict] = {}
    for name, info in table.tensors.items():
        new = _kohya_name(name)
        renamed[new or name] = info
    extra = b""
    if lora_alpha is not None:
        modules = {n[: -len(".lora_down.weight")] for n in renamed if n.endswith(".lora_down.weight")}
        data_end = max((info["data_offsets"][1] for info in renamed.values()), default=0)
        for module in sorted(modules):
            if f"{module}.alpha" in renamed:
                continue
            renamed[f"{module}.alpha"] = {"dtype": "F32", "shape": [],
                                          "data_offsets": [data_end + len(extra), data_end + len(extra) + 4]}
            extra += struct.pack("<f", float(lora_alpha))
    header = dict(renamed)
    header["__metadata__"] = {**table.metadata, "converted_by": "openvino-genai-demos", "converted_from": "diffusers"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(struct.pack("<Q", len(blob)))
        dst.write(blob)
        src.seek(table.data_start)
        while chunk := src.read(1 << 22):
            dst.write(chunk)
        dst.write(extra)
    return len(renamed)


# ---------------------------------------------------------------------------------------------------------
# Does an adapter touch the model at all?


def _tokens(name: str) -> str:
    return "_".join(t for t in re.split(r"[^0-9A-Za-z]+", name) if t).lower()


def _module_of(name: str) -> str | None:
    """The normalised module an adapter tensor belongs to, or None for tensors that are not LoRA factors."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        return None
    for _ in range(3):  # prefixes stack, e.g. base_model.model.model.layers...
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
    return _tokens(name)


def module_names(table: TensorTable) -> set[str]:
    """The model modules an adapter modifies, normalised to underscore-joined tokens."""
    return {m for m in map(_module_of, table.names) if m}


def module_shapes(table: TensorTable) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each linear module the adapter changes, read off its two LoRA factors.

    down/A is [rank, in] and up/B is [out, rank]; convolution factors (4-D) are left out: their weights are
    laid out differently in the IR and the name check alone judges them.
    """
    down: dict[str, int] = {}
    up: dict[str, int] = {}
    for name, info in table.tensors.items():
        module, shape = _module_of(name), info.get("shape") or []
        if not module or len(shape) != 2:
            continue
        if name.endswith((".lora_A.weight", ".lora_down.weight", ".lora.down.weight", ".lora_A.default.weight")):
            down[module] = shape[1]
        elif name.endswith((".lora_B.weight", ".lora_up.weight", ".lora.up.weight", ".lora_B.default.weight")):
            up[module] = shape[0]
    return {m: (up[m], down[m]) for m in down.keys() & up.keys()}


def model_weights(model_dir: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(normalised name wrapped in ``_``, shape) of every weight (Const) of every IR in ``model_dir``."""
    weights: list[tuple[str, tuple[int, ...]]] = []
    for xml in sorted(model_dir.rglob("*.xml")):
        if "tokenizer" in xml.name:
            continue
        text = xml.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r'<layer\s[^>]*type="Const"[^>]*>\s*<data\s[^>]*>', text):
            tag = match.group(0)
            found = re.search(r'\bname="([^"]+)"', tag)
            shape = re.search(r'\bshape="([^"]*)"', tag)
            if found:
                dims = tuple(int(d) for d in re.findall(r"\d+", shape.group(1))) if shape else ()
                weights.append((f"_{_tokens(found.group(1))}_", dims))
    return weights


def _fits(module_shape: tuple[int, int] | None, weight_shape: tuple[int, ...]) -> bool:
    """Can a LoRA of ``module_shape`` apply to a weight of ``weight_shape``?

    Compressed weights keep their element count but may be split into groups ([out, groups, group_size]), so
    the test is: same number of outputs and same number of elements (in either orientation).
    """
    if module_shape is None or len(weight_shape) < 2:
        return True
    out, inp = module_shape
    count = 1
    for dim in weight_shape:
        count *= dim
    return count == out * inp and weight_shape[0] in (out, inp)


@dataclass(frozen=True)
class Match:
    """How an adapter lines up with a model's weights."""

    found: int        # modules with a weight of that name and a fitting shape
    total: int        # modules in the adapter
    misshapen: int    # modules whose name exists in the model only with another shape


def matched_modules(table: TensorTable, model_dir: Path) -> Match:
    """Compare the modules an adapter changes with the model's weights, by name and by shape.

    SGM-style keys (``input_blocks``) are renumbered by GenAI before matching; they are counted as matched
    because this check cannot rename them faithfully, and a false 'matches nothing' would block a good file.
    """
    modules = module_names(table)
    if any("input_blocks" in m or "output_blocks" in m or "middle_block" in m for m in modules):
        return Match(len(modules), len(modules), 0)
    shapes = module_shapes(table)
    weights = model_weights(model_dir)
    found = misshapen = 0
    for module in filter(None, modules):
        needle = f"_{module}_"
        named = [shape for name, shape in weights if needle in name]
        if any(_fits(shapes.get(module), shape) for shape in named):
            found += 1
        elif named:
            misshapen += 1
    return Match(found, len(modules), misshapen)
