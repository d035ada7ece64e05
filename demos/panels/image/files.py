"""Images as lossless PNG files that carry their parameters, so any image can be reproduced from itself.

Two text chunks are written: ``parameters`` in the A1111 "PNG info" layout (readable by the tools people already
use to inspect images) and ``openvino_genai`` with the exact settings as JSON (what this app reads back).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from demos.core import files
from demos.core.image_modes import CLASSES
from demos.panels.image.settings import Geometry, ImageSettings


def parameters(settings: ImageSettings, geo: Geometry | None = None, title: str = "") -> dict[str, Any]:
    """The settings as a plain dict (what the JSON chunk, the download and the API metadata hold)."""
    data = asdict(settings)
    data["styles"] = {name: weight for name, weight in settings.styles}
    data.pop("notes", None)
    if settings.mode == "generate":  # a generated picture's parameters stay as they were before editing existed
        for key in ("mode", "strength", "source_sha256"):
            data.pop(key, None)
    data["pipeline"] = f"openvino_genai.{CLASSES[settings.mode]}"
    if title:
        data["model_label"] = title
    if geo is not None and geo.scheduler:
        data["scheduler"] = geo.scheduler
    return data


def parameters_text(settings: ImageSettings, geo: Geometry | None = None) -> str:
    """A1111-style text: prompt, 'Negative prompt: …', then 'Key: value' pairs on one line."""
    lines = [settings.prompt]
    if settings.negative_prompt:
        lines.append(f"Negative prompt: {settings.negative_prompt}")
    pairs = [f"Steps: {settings.steps}"]
    if geo is not None and geo.scheduler:
        pairs.append(f"Sampler: {geo.scheduler}")
    pairs += [f"CFG scale: {settings.guidance_scale:g}", f"Seed: {settings.seed}",
              f"Size: {settings.width}x{settings.height}", f"Model: {settings.model}"]
    if settings.styles:
        pairs.append("LoRA: " + " ".join(f"{name}:{weight:g}" for name, weight in settings.styles))
    if settings.mode != "generate":  # A1111's name for strength; the source named by its pixels' hash
        pairs += [f"Mode: {settings.mode}", f"Denoising strength: {settings.strength:g}",
                  f"Source sha256: {settings.source_sha256[:16]}"]
    pairs += [f"Device: {settings.device}", f"Pipeline: openvino_genai.{CLASSES[settings.mode]}"]
    lines.append(", ".join(pairs))
    return "\n".join(lines)


def run_folder() -> Path:
    """A fresh folder for one request's files in the app's temp folder (old runs are swept: Gradio copies results
    into its own cache, ours are only needed until then)."""
    return files.run_folder("images")


def save_png(image: np.ndarray, path: Path, settings: ImageSettings | None = None, geo: Geometry | None = None,
             title: str = "") -> Path:
    """Write ``image`` (HxWx3 uint8) as PNG with the parameters embedded when ``settings`` is given."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if settings is not None:
        info.add_text("parameters", parameters_text(settings, geo))
        info.add_text("openvino_genai", json.dumps(parameters(settings, geo, title), ensure_ascii=False))
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG", pnginfo=info)
    return path


def read_parameters(path: Path | str) -> dict[str, Any]:
    """The ``openvino_genai`` JSON chunk of a PNG written by ``save_png`` ({} when absent)."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.info.get("openvino_genai")
    return json.loads(text) if text else {}
