"""The strip of sampled video frames shown under a question: what the model was actually shown, in order."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from demos.core import files

HEIGHT = 72   # px per frame in the strip: small enough for a phone, large enough to recognise the scene
GAP = 3       # px between frames


def write_strip(frames: np.ndarray, key: str) -> Path:
    """A JPEG of ``frames`` (k×H×W×3 uint8) side by side at ``HEIGHT`` px, in the app's temp folder; named by
    ``key`` (the video's digest and sampled indices), so the same sample is written once."""
    folder = files.folder("vision-strips")
    files.sweep(folder)
    path = folder / f"{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.jpg"
    if path.exists():
        return path
    height, width = frames.shape[1], frames.shape[2]
    shown = max(1, round(width * HEIGHT / height))
    strip = Image.new("RGB", (len(frames) * (shown + GAP) - GAP, HEIGHT), (255, 255, 255))
    for i, frame in enumerate(frames):
        picture = Image.fromarray(frame).resize((shown, HEIGHT), Image.Resampling.BILINEAR)
        strip.paste(picture, (i * (shown + GAP), 0))
    files.write_atomic(path, _jpeg(strip))
    return path


def _jpeg(image: Image.Image) -> bytes:
    import io
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
