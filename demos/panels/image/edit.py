"""Transform and Inpaint requests: the source picture and its mask made into what the pipelines take.

Pictures are opened and normalised by ``demos.core.images`` (the Vision panel's reader: EXIF orientation, CMYK,
16-bit, palette, transparency over white, decompression bombs refused), then sized for the model: at most what
Generate accepts (twice the native side) and in the multiples of the VAE's factor, so the result has the
source's shape instead of genai's silent crop. Every change is a note the user reads; every mistake a
``UserError`` that says what to send instead. No Gradio, no pipeline: the UI and both APIs use it alike.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image

from demos.core import images
from demos.core.catalog import ImageEntry
from demos.core.checks import finite
from demos.core.errors import UserError
from demos.panels.image.settings import Geometry, ImageSettings, defaults, max_side, resolve

DEFAULT_STRENGTH = 0.75
MaskSource = Union[str, os.PathLike, bytes, np.ndarray, None]
MODE_LABELS = {"generate": "Generate", "transform": "Transform", "inpaint": "Inpaint"}


@dataclass(frozen=True)
class Source:
    """The picture (and mask) one edit starts from, at the size the pipeline gets it."""

    image: np.ndarray            # H x W x 3 uint8
    mask: np.ndarray | None      # H x W bool, True = repaint; None for Transform
    sha256: str                  # of ``image``'s pixels: the PNG parameters name the source by it
    notes: tuple[str, ...] = ()

    def tensors(self) -> dict:
        """``generate`` keyword arguments: ``image`` (and ``mask_image``, white = repaint) as NHWC uint8 tensors."""
        import openvino as ov
        found = {"image": ov.Tensor(np.ascontiguousarray(self.image[None]))}
        if self.mask is not None:
            mask = np.repeat((self.mask.astype(np.uint8) * 255)[None, ..., None], 3, axis=3)
            found["mask_image"] = ov.Tensor(np.ascontiguousarray(mask))
        return found


def check_strength(strength: float | int | None, steps: int) -> float:
    """0 < strength <= 1, and enough of it that genai runs at least one of ``steps`` (it runs int(steps x strength))."""
    value = DEFAULT_STRENGTH if strength is None else finite("strength", strength)
    if not 0 < value <= 1:
        raise UserError(f"strength {value:g} is out of range: use a value above 0 and at most 1 (0.3 keeps most of "
                        f"the picture, 1 repaints it all; default {DEFAULT_STRENGTH:g})", param="strength")
    if int(steps * value) < 1:
        raise UserError(f"strength {value:g} with {steps} steps runs no denoising step (the pipeline runs steps × "
                        f"strength = {steps * value:.2f}): raise strength to at least {math.ceil(100 / steps) / 100:g} "
                        "or use more steps", param="strength")
    return value


def steps_run(settings: ImageSettings) -> int:
    """How many denoising steps genai runs for ``settings`` (edits run steps × strength of them)."""
    return settings.steps if settings.mode == "generate" else max(1, int(settings.steps * settings.strength))


def open_source(picture: images.ImageSource | None, entry: ImageEntry, geo: Geometry,
                name: str = "the picture") -> tuple[np.ndarray, list[str]]:
    """The source picture as RGB, scaled to what the model handles; the notes on what was changed."""
    if picture is None or (isinstance(picture, (str, bytes)) and not picture):
        raise UserError("Upload a picture to edit first (or press 'Edit this picture' under a generated one).",
                        param="image")
    notes = _header_notes(picture, name)
    array = images.prepare(picture, name=name).array
    height, width = array.shape[:2]
    limit = max_side(defaults(entry, geo))
    scale = min(1.0, limit / max(width, height))
    new_w = max(geo.factor, int(width * scale) // geo.factor * geo.factor)
    new_h = max(geo.factor, int(height * scale) // geo.factor * geo.factor)
    if min(new_w, new_h) < geo.min_side:
        raise UserError(f"{name} is {width}×{height} pixels: this model needs at least {geo.min_side} pixels a side; "
                        "upload a larger picture", param="image")
    if (new_w, new_h) != (width, height):
        why = (f"this model handles at most {limit} pixels a side" if scale < 1 else
               f"this model needs multiples of {geo.factor}")
        notes.append(f"picture {width}×{height} → {new_w}×{new_h} ({why})")
        array = np.asarray(Image.fromarray(array).resize((new_w, new_h), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(array), notes


def _header_notes(picture: images.ImageSource, name: str) -> list[str]:
    """What the header says will be lost: later frames of an animation, transparency (filled with white)."""
    if not isinstance(picture, (str, os.PathLike, bytes)):
        return []
    opened, _ = images.open_image(picture, name)
    try:
        notes = []
        if getattr(opened, "n_frames", 1) > 1:
            notes.append(f"{name} has {opened.n_frames} frames: its first frame was used")
        if opened.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in opened.info:
            notes.append(f"the transparent parts of {name} were filled with white")
        return notes
    finally:
        opened.close()


def read_mask(mask: MaskSource, size: tuple[int, int], transparent_repaints: bool = False,
              name: str = "the mask") -> tuple[np.ndarray, list[str]]:
    """A boolean H x W mask (True = repaint) from an upload: white = repaint (genai, AUTOMATIC1111), or with
    ``transparent_repaints`` OpenAI's convention (transparent = repaint). Scaled to ``size`` (width, height)."""
    notes: list[str] = []
    if isinstance(mask, np.ndarray):
        picture = Image.fromarray(mask.astype(np.uint8) * 255 if mask.dtype == bool else np.ascontiguousarray(mask))
    else:
        picture, _ = images.open_image(mask, name)
    try:
        if transparent_repaints:
            if "A" not in picture.getbands() and "transparency" not in picture.info:
                raise UserError(f"{name} has no transparency: as in OpenAI's API, send a PNG whose transparent "
                                "pixels mark what to repaint", param="mask")
            alpha = np.asarray(picture.convert("RGBA"))[..., 3]
            gray = Image.fromarray(((alpha < 128) * 255).astype(np.uint8))
        else:
            gray = Image.fromarray(images.prepare(picture, name=name).array).convert("L")
    finally:
        picture.close()
    if gray.size != size:
        notes.append(f"{name} {gray.size[0]}×{gray.size[1]} was scaled to the picture's {size[0]}×{size[1]}")
        gray = gray.resize(size, Image.Resampling.NEAREST)
    return np.asarray(gray) >= 128, notes


def edit_settings(entry: ImageEntry, geo: Geometry, source: np.ndarray, mask: np.ndarray | None,
                  notes: list[str], *, device: str, prompt: str, negative_prompt: str | None = None,
                  styles: dict[str, float] | None = None, strength: float | None = DEFAULT_STRENGTH,
                  steps: int | float | None = 0, guidance_scale: float | None = -1,
                  seed: int | float | None = 42) -> tuple[ImageSettings, Source]:
    """Check and complete one Transform (``mask`` None) or Inpaint request; an empty mask makes it a Transform."""
    height, width = source.shape[:2]
    settings = resolve(entry, geo, device=device, prompt=prompt, negative_prompt=negative_prompt, styles=styles,
                       width=width, height=height, steps=steps, guidance_scale=guidance_scale, seed=seed)
    mode = "inpaint" if mask is not None else "transform"
    if mask is not None and not mask.any():
        notes.append("the mask is empty (nothing painted to repaint): the whole picture was transformed instead")
        mode, mask = "transform", None
    value = check_strength(strength, settings.steps)
    digest = hashlib.sha256(source.tobytes()).hexdigest()
    settings = dataclasses.replace(settings, mode=mode, strength=value, source_sha256=digest,
                                   notes=tuple(notes) + settings.notes)
    return settings, Source(source, mask, digest, tuple(notes))
