"""Images on their way into a visual-language model: opened safely, oriented, made RGB, scaled to what the model uses.

A VLM wants a ``uint8`` H×W×3 RGB array. What users upload is anything but: phone photos stored sideways with an
EXIF orientation tag, PNGs with transparency, palette GIFs, CMYK JPEGs from print workflows, 16-bit grayscale
scans, and 12-megapixel photos of which a model looks at a few hundred thousand pixels. Everything here is PIL plus
vectorised numpy (no per-pixel Python), and nothing decodes an image before its header has said how big it is, so
a 20000×20000 "decompression bomb" is refused in microseconds instead of eating the machine's memory.

Large JPEGs are decoded at a reduced DCT scale (``Image.draft``) close to the size the model uses, which is what
keeps a 12-megapixel photo well under 20 ms.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from demos.core.errors import UserError

FAR_ABOVE = 2
"""An image is scaled down only when its sides are more than this many times what the model uses, and then to this
many times the model's size, never to the size itself: genai resizes every picture for its model again, so a PIL
resize before it changes the pixels the model sees (the answer then differs from a direct ``VLMPipeline`` call on
the same picture, DESIGN §10). Pictures near the budget reach genai exactly as uploaded; only photos far above it
(a 12-megapixel photo for a 336 px model) are shrunk, which keeps their decoding and genai's resize fast."""

MAX_MEGAPIXELS = 100
"""Largest image accepted (width × height / 1e6). A 108 MP phone photo is about the largest real photo."""

ImageSource = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90° or 270°


class ImageError(UserError):
    """An image that cannot be used, with a message that says what to do about it."""


@dataclass(frozen=True)
class Budget:
    """How many pixels a model actually uses: images far larger are scaled down (never up) towards it.

    ``shortest_side``: the model resizes the shortest side to this and centre-crops (CLIP/LLaVA);
    ``fit``: the model resizes to exactly this (width, height) (e.g. Gemma 3: 896×896);
    ``max_pixels``: the model keeps at most this many pixels (tiles, slices or native resolution).
    """

    shortest_side: int | None = None
    fit: tuple[int, int] | None = None
    max_pixels: int | None = None

    def describe(self) -> str:
        if self.shortest_side:
            return f"shortest side {self.shortest_side} px"
        if self.fit:
            return f"{self.fit[0]}×{self.fit[1]} px"
        if self.max_pixels:
            return f"{self.max_pixels / 1e6:.1f} megapixels"
        return "full size"

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The size an image of ``width``×``height`` is scaled to: the same size unless its sides are more than
        ``FAR_ABOVE`` times what the model uses, else ``FAR_ABOVE`` times the model's size (genai does the rest)."""
        scale = 1.0
        if self.shortest_side:
            scale = self.shortest_side / min(width, height)
        elif self.fit:
            scale = max(self.fit[0] / width, self.fit[1] / height)
        elif self.max_pixels:
            scale = math.sqrt(self.max_pixels / (width * height))
        if scale * FAR_ABOVE >= 1.0:
            return width, height
        scale *= FAR_ABOVE
        if self.shortest_side:  # land exactly on a whole multiple of the model's side
            side = self.shortest_side * FAR_ABOVE
            if width <= height:
                return side, max(side, round(height * scale))
            return max(side, round(width * scale)), side
        return max(1, round(width * scale)), max(1, round(height * scale))


FULL_SIZE = Budget()


@dataclass(frozen=True)
class Prepared:
    """An image ready for ``ov.Tensor``: RGB ``uint8`` H×W×3, plus where it came from and what was done to it."""

    array: np.ndarray
    original_size: tuple[int, int]  # (width, height) as displayed, after EXIF orientation
    seconds: float                  # time spent opening, decoding and converting

    @property
    def size(self) -> tuple[int, int]:
        return self.array.shape[1], self.array.shape[0]

    @property
    def scaled(self) -> bool:
        return self.size != self.original_size


def prepare(source: ImageSource, budget: Budget = FULL_SIZE, name: str | None = None,
            max_megapixels: float = MAX_MEGAPIXELS) -> Prepared:
    """Open ``source`` and return it as the RGB array a VLM should see.

    Raises ``ImageError`` (a ``ValueError``) naming the file for anything unusable: not an image, truncated,
    too many pixels. ``name`` is how the file is called in messages (defaults to its file name).
    """
    started = time.perf_counter()
    if isinstance(source, np.ndarray):
        opened, name = _from_array(source), name or "the image"
    elif isinstance(source, Image.Image):
        opened, name = source, name or "the image"
    else:
        opened, name = open_image(source, name, max_megapixels)
    try:
        original = _oriented_size(opened)
        target = budget.target(*original)
        _draft(opened, target)
        rgb = _to_rgb(_load_oriented(opened, name))
        if rgb.size != target:
            rgb = rgb.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
        array = np.asarray(rgb)
    finally:
        if opened is not source:  # a caller's PIL image stays open; our own files are closed
            opened.close()
    return Prepared(np.ascontiguousarray(array), original, time.perf_counter() - started)


def open_image(source: str | os.PathLike | bytes, name: str | None = None,
               max_megapixels: float = MAX_MEGAPIXELS) -> tuple[Image.Image, str]:
    """Open (header only, nothing decoded yet) and check the pixel count; returns the image and its display name."""
    if isinstance(source, (bytes, bytearray)):
        name = name or "the image"
        stream: Any = io.BytesIO(source)
        if not source:
            raise ImageError(f"{name} is empty (0 bytes): upload the picture again")
    else:
        path = Path(source)
        name = name or path.name
        try:
            if path.stat().st_size == 0:
                raise ImageError(f"{name} is empty (0 bytes): upload the picture again")
        except FileNotFoundError:
            raise ImageError(f"{name} was not found: upload it again") from None
        stream = path
    with warnings.catch_warnings():
        # Our own limit below is lower and says what to do; PIL's warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(stream)
        except Image.DecompressionBombError as exc:  # PIL's own, far larger limit: the size is in its message
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
            raise ImageError(f"{name} is too large{size}; the limit is {max_megapixels:g} megapixels: scale it "
                             "down and try again") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image this demo can read (JPEG, PNG, GIF, WebP, BMP, TIFF …): "
                             "check the file, or export it as PNG or JPEG") from None
        except OSError as exc:
            raise ImageError(f"{name} could not be read as an image ({exc}): export it again as PNG or JPEG") from None
    width, height = image.size
    if width * height > max_megapixels * 1e6:
        image.close()
        raise ImageError(f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
                         f"{max_megapixels:g} megapixels: scale it down and try again")
    if width < 1 or height < 1:
        image.close()
        raise ImageError(f"{name} has no pixels ({width}×{height})")
    return image, name


def digest(path: str | os.PathLike) -> str:
    """A content hash of a file, so the same picture is recognised whatever its temporary name."""
    hasher = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


# -------------------------------------------------------------------------------------------------------------
# Steps of prepare()


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be H×W, H×W×3 or H×W×4, not {array.shape}")
    if array.dtype == np.uint16:
        array = _sixteen_to_eight(array)
    elif array.dtype != np.uint8:
        raise ImageError(f"an image array must hold uint8 or uint16 values, not {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the picture unusable
        return 1


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    width, height = image.size
    return (height, width) if _orientation(image) in _SWAPS_SIDES else (width, height)


def _draft(image: Image.Image, target: tuple[int, int]) -> None:
    """Ask the JPEG decoder for a smaller DCT scale (1/2, 1/4, 1/8) that is still at least ``target``."""
    if image.format not in ("JPEG", "MPO") or target == _oriented_size(image):
        return
    width, height = target
    if _orientation(image) in _SWAPS_SIDES:  # the decoder works in stored orientation
        width, height = height, width
    image.draft(None, (width, height))


def _load_oriented(image: Image.Image, name: str) -> Image.Image:
    """Decode the first frame and apply the EXIF orientation, so the model sees what a person sees."""
    try:
        image.seek(0)  # animated GIF/WebP, multi-page TIFF: the first frame
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an unrotated picture
        return image
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is damaged or truncated ({exc}): export it again as PNG or JPEG") from None


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 onto 0..255 by rounding (v·255/65535), so v8·257 maps back to v8 exactly."""
    wide = np.clip(values, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto white: transparent areas look as they do in a browser or an image viewer."""
    a = alpha.astype(np.uint16)[..., None]
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → an RGB image (numpy for the conversions PIL gets wrong or lossy)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (and 32-bit integer) grayscale: scale the full 16-bit range down, do not truncate to 8 bits.
        return _rgb_image(_gray_to_rgb(_sixteen_to_eight(np.asarray(image).astype(np.int64))))
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        values = values * 255 if np.nanmax(values, initial=0) <= 1.0 else values
        return _rgb_image(_gray_to_rgb(np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)))
    if mode in ("1", "L"):
        return image.convert("RGB")
    if mode in ("LA", "La"):
        la = np.asarray(image.convert("LA"))
        return _rgb_image(_over_white(_gray_to_rgb(la[..., 0]), la[..., 1]))
    if mode in ("P", "PA"):
        transparent = "transparency" in image.info or mode == "PA"
        return _to_rgb(image.convert("RGBA" if transparent else "RGB"))
    if mode in ("RGBA", "RGBa"):
        rgba = np.asarray(image.convert("RGBA") if mode == "RGBa" else image)
        return _rgb_image(_over_white(rgba[..., :3], rgba[..., 3]))
    # CMYK, YCbCr, LAB, HSV, RGBX and the rest: PIL knows the conversion.
    return image.convert("RGB")


def _rgb_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


# -------------------------------------------------------------------------------------------------------------
# A small cache: earlier turns of a chat are sent again with every question; decode them once.


class PreparedCache:
    """``prepare()`` results by (file, size, mtime, budget), bounded by total bytes. Thread-safe."""

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Prepared] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str | os.PathLike, budget: Budget, name: str | None = None) -> Prepared:
        stat = os.stat(path)
        key = (os.fspath(path), stat.st_size, stat.st_mtime_ns, budget)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        prepared = prepare(path, budget, name)
        with self._lock:
            if key not in self._items:
                self._items[key] = prepared
                self._bytes += prepared.array.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.array.nbytes
        return prepared
