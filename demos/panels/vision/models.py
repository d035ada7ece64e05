"""What a VLM folder tells about its model: how many pixels it looks at and what its pipeline cannot do.

The image budget mirrors how openvino_genai (2026.x) preprocesses each family (``src/cpp/src/visual_language/*``),
read from the same files it reads (``config.json`` and ``preprocessor_config.json``), so scaling an upload down to
the budget never throws away a pixel the model would have used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demos.core.images import Budget

DEFAULT_MAX_PIXELS = 2048 * 2048
"""Budget for a model family not listed here: generous, but a 100 MP upload still shrinks before encoding."""


@dataclass(frozen=True)
class ModelFacts:
    """What the panel needs to know about one VLM folder."""

    model_type: str
    budget: Budget
    notes: tuple[str, ...] = field(default=())
    context_tokens: int | None = None   # the language model's max_position_embeddings, when known
    video: bool = False                 # genai's embedder for this model type takes ``videos=``
    patch: int = 28                     # Qwen-VL: pixels per side of one merged vision token (patch × merge)
    temporal_patch: int = 2             # Qwen-VL: frames encoded together


VIDEO_TYPES = frozenset({"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava_next_video"})
"""Model types whose openvino_genai (2026.x) inputs embedder takes ``videos=`` (the others raise "video input is
not supported"); measured here on Qwen2-VL. A catalog entry's ``video: true|false`` overrides this."""


def takes_video(entry_video: bool | None, model_facts: "ModelFacts | None") -> bool | None:
    """The entry's ``video`` field if set, else the model type's (None: not known until the model is fetched)."""
    if entry_video is not None:
        return entry_video
    return model_facts.video if model_facts is not None else None


def video_tokens(model_facts: ModelFacts, width: int, height: int, frames: int) -> int | None:
    """Roughly how many tokens ``frames`` frames of width×height take (Qwen-VL: genai's smart resize, one token
    per 28×28 px per pair of frames); None for families whose count is not modelled here."""
    if model_facts.model_type not in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl") or not width or not height:
        return None
    width, height = model_facts.budget.target(width, height)
    side = model_facts.patch
    most = model_facts.budget.max_pixels or DEFAULT_MAX_PIXELS
    h, w = max(side, round(height / side) * side), max(side, round(width / side) * side)
    if h * w > most:
        beta = ((height * width) / most) ** 0.5
        h, w = max(side, int(height / beta / side) * side), max(side, int(width / beta / side) * side)
    pairs = -(-frames // model_facts.temporal_patch)
    return pairs * (h // side) * (w // side) + 2  # + the vision start and end tokens


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pixels(value: Any) -> int | None:
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def facts(model_dir: Path | str) -> ModelFacts:
    """Read ``model_dir``'s configs (no network, no compilation)."""
    folder = Path(model_dir)
    config = _json(folder / "config.json")
    pre = _json(folder / "preprocessor_config.json")
    model_type = str(config.get("model_type", ""))
    size = pre.get("size") if isinstance(pre.get("size"), dict) else {}
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    context = _pixels(text.get("max_position_embeddings") or config.get("max_position_embeddings"))
    budget, notes = _family(model_type, config, pre, size)
    patch = (_pixels(pre.get("patch_size")) or 14) * (_pixels(pre.get("merge_size")) or 2)
    return ModelFacts(model_type or "unknown", budget, tuple(notes), context, model_type in VIDEO_TYPES, patch,
                      _pixels(pre.get("temporal_patch_size")) or 2)


def _family(model_type: str, config: dict, pre: dict, size: dict) -> tuple[Budget, list[str]]:
    """(budget, notes) per model family, as openvino_genai preprocesses it."""
    shortest = _pixels(size.get("shortest_edge"))
    if model_type in ("llava", "llava-qwen2", "nanollava"):
        side = shortest or _pixels((pre.get("crop_size") or {}).get("height")) or 336
        return Budget(shortest_side=side), [
            f"Sees each image as one {side}×{side} square: the shortest side is scaled to {side} px and the "
            "longer side is centre-cropped (edges of wide or tall pictures are cut).",
            "Trained on one image per question: several images are accepted, answers about more than one are "
            "unreliable.",
        ]
    if model_type in ("llava_next", "llava_next_video"):
        pinpoints = config.get("image_grid_pinpoints") or pre.get("image_grid_pinpoints") or [[672, 672]]
        most = max(int(w) * int(h) for w, h in pinpoints)
        return Budget(max_pixels=most), [
            f"Tiles each image onto the best-fitting grid (up to {most / 1e6:.1f} MP) plus a 336 px overview.",
        ]
    if model_type == "minicpmv":
        side, slices = int(pre.get("scale_resolution") or 448), int(pre.get("max_slice_nums") or 9)
        return Budget(max_pixels=side * side * slices), [
            f"Slices large images into up to {slices} pieces of about {side} px; several images per message work.",
        ]
    if model_type == "internvl_chat":
        side = shortest or int(config.get("force_image_size") or 448)
        tiles = int(config.get("max_dynamic_patch") or 12)
        return Budget(max_pixels=side * side * tiles), [
            f"Splits each image into up to {tiles} tiles of {side}×{side} px plus a thumbnail "
            f"(256 tokens each): several images per message work but fill the context quickly.",
        ]
    if model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"):
        most = _pixels(pre.get("max_pixels")) or _pixels(size.get("longest_edge")) or 12845056
        return Budget(max_pixels=most), [
            f"Uses images at their own resolution (up to {most / 1e6:.1f} MP): more pixels cost more tokens and "
            "time, so a large photo is slow to encode.",
        ]
    if model_type in ("phi3_v", "phi4mm"):
        crops = int(pre.get("num_crops") or pre.get("dynamic_hd") or 4)
        return Budget(max_pixels=336 * 336 * crops), [
            f"Uses up to {crops} crops of 336 px per image plus an overview.",
        ]
    if model_type in ("gemma3", "gemma3n", "gemma4"):
        width, height = _pixels(size.get("width")) or 896, _pixels(size.get("height")) or 896
        return Budget(fit=(width, height)), [
            f"Resizes every image to {width}×{height} px (the aspect ratio is not kept).",
        ]
    if shortest:
        return Budget(shortest_side=shortest), []
    if size.get("height") and size.get("width"):
        return Budget(fit=(int(size["width"]), int(size["height"]))), []
    return Budget(max_pixels=DEFAULT_MAX_PIXELS), []


def device_notes(device: str) -> list[str]:
    """Pipeline constraints that come with the device rather than the model."""
    if device.split(".")[0] == "NPU":
        return ["On NPU the whole conversation, image tokens included, is sent again every turn and must fit the "
                "prompt length the model was compiled for (`MAX_PROMPT_LEN` in the entry's `properties`, default "
                "1024 tokens); speculative decoding with a draft model is not available for VLMs on NPU."]
    return []
