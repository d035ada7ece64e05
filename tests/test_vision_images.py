"""Image normalisation for the Vision panel: every odd format becomes the RGB array a person would expect."""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demos.core import images as images_in
from demos.core.images import Budget, ImageError, prepare
from demos.panels.vision.models import facts

BASE = np.zeros((24, 40, 3), np.uint8)  # a small picture with distinct rows, columns and colours
BASE[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 6
BASE[..., 1] = np.arange(24, dtype=np.uint8)[:, None] * 10
BASE[..., 2] = 200
BASE[4:10, 5:15] = (255, 0, 0)


def _jpeg_with_orientation(path: Path, orientation: int) -> None:
    """Store BASE rotated so that applying EXIF ``orientation`` shows BASE upright (what cameras do)."""
    stored = {3: np.rot90(BASE, 2), 6: np.rot90(BASE, 1), 8: np.rot90(BASE, -1)}[orientation]
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, quality=100, subsampling=0, exif=exif)


@pytest.mark.unit
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, orientation):
    path = tmp_path / f"rotated-{orientation}.jpg"
    _jpeg_with_orientation(path, orientation)
    result = prepare(path).array
    assert result.shape == BASE.shape, "the picture is upright: sides swapped back"
    # JPEG is lossy: the decoded pixels, rotated back, are what must arrive; and they are close to BASE.
    decoded = np.asarray(Image.open(path).convert("RGB"))
    expected = {3: np.rot90(decoded, 2), 6: np.rot90(decoded, -1), 8: np.rot90(decoded, 1)}[orientation]
    np.testing.assert_array_equal(result, expected)
    assert np.abs(result.astype(int) - BASE).mean() < 4


@pytest.mark.unit
def test_rgba_png_is_composited_on_white(tmp_path):
    alpha = np.full(BASE.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0      # transparent strip
    alpha[:, 10:20] = 128  # half transparent strip
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([BASE, alpha]), "RGBA").save(path)
    result = prepare(path).array
    assert result.dtype == np.uint8 and result.shape == BASE.shape
    np.testing.assert_array_equal(result[:, 20:], BASE[:, 20:])
    np.testing.assert_array_equal(result[:, :10], np.full_like(BASE[:, :10], 255))
    half = (BASE[:, 10:20].astype(int) * 128 + 255 * 127 + 127) // 255
    np.testing.assert_array_equal(result[:, 10:20], half)


@pytest.mark.unit
def test_palette_gif_uses_its_palette(tmp_path):
    palette_image = Image.fromarray(BASE).quantize(colors=16)
    path = tmp_path / "palette.gif"
    palette_image.save(path)
    indices = np.asarray(Image.open(path))
    palette = np.array(Image.open(path).getpalette()[:256 * 3], np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(prepare(path).array, palette[indices])


@pytest.mark.unit
def test_palette_transparency_is_white(tmp_path):
    image = Image.fromarray(BASE).quantize(colors=16)
    transparent_index = int(np.asarray(image)[0, 0])
    path = tmp_path / "transparent.gif"
    image.save(path, transparency=transparent_index)
    result = prepare(path).array
    mask = np.asarray(Image.open(path)) == transparent_index
    assert mask.any()
    assert (result[mask] == 255).all()


@pytest.mark.unit
def test_sixteen_bit_grayscale_png_keeps_its_range(tmp_path):
    gray8 = BASE[..., 1]
    path = tmp_path / "gray16.png"
    Image.fromarray(gray8.astype(np.uint16) * 257).save(path)  # full 16-bit range: 0..65535
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(prepare(path).array, np.dstack([gray8] * 3))


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["L", "LA", "1", "CMYK"])
def test_other_modes_become_rgb(tmp_path, mode):
    source = Image.fromarray(BASE)
    image = source.convert(mode)
    path = tmp_path / f"{mode}.{'tiff' if mode == 'CMYK' else 'png'}"
    image.save(path)
    result = prepare(path).array
    assert result.shape == BASE.shape and result.dtype == np.uint8
    expected = np.asarray(Image.open(path).convert("RGBA" if mode == "LA" else "RGB"))[..., :3]
    np.testing.assert_array_equal(result, expected)


@pytest.mark.unit
def test_cmyk_white_and_cyan():
    cmyk = Image.fromarray(np.array([[[0, 0, 0, 0], [255, 0, 0, 0]]], np.uint8), "CMYK")
    np.testing.assert_array_equal(prepare(cmyk).array, [[[255, 255, 255], [0, 255, 255]]])


@pytest.mark.unit
def test_large_images_shrink_to_the_model_budget_keeping_aspect(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (1200, 800), (10, 20, 30)).save(path)
    result = prepare(path, Budget(shortest_side=336))
    assert result.size == (1008, 672) and result.original_size == (1200, 800) and result.scaled, "to twice the model's"
    assert prepare(path, Budget(max_pixels=240_000)).size == (1200, 800), "sides twice the budget's: as uploaded"
    assert prepare(path, Budget(max_pixels=200_000)).size == (1095, 730)
    assert prepare(path, Budget(fit=(300, 300))).size == (900, 600)
    near = prepare(path, Budget(shortest_side=600))
    assert near.size == (1200, 800) and not near.scaled, "within twice the model's size: genai alone resizes it"
    small = prepare(path, Budget(shortest_side=2000))
    assert small.size == (1200, 800) and not small.scaled, "never scaled up"


@pytest.mark.unit
def test_large_jpeg_is_decoded_at_reduced_scale_and_oriented(tmp_path):
    path = tmp_path / "photo.jpg"
    image = Image.new("RGB", (4000, 3000), (200, 100, 50))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    image.save(path, quality=90, exif=exif)
    result = prepare(path, Budget(shortest_side=336))
    assert result.original_size == (3000, 4000)
    assert result.size == (672, 896)
    assert np.abs(result.array.astype(int) - (200, 100, 50)).max() <= 3


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims ``width``×``height`` with almost no data, like a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width * 3 + 1) * 4)  # four rows; the rest would have to be inflated
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.unit
@pytest.mark.parametrize("side", [20000, 11000])
def test_decompression_bomb_sized_images_are_refused_without_decoding(tmp_path, side):
    path = tmp_path / "huge.png"
    _png_header_only(path, side, side)
    started = time.perf_counter()
    with pytest.raises(ImageError, match=r"huge.png is .*megapixels.*limit is 100 megapixels: scale it down"):
        prepare(path)
    assert time.perf_counter() - started < 5, "refused from the header, not after decoding"


@pytest.mark.unit
def test_unreadable_files_say_what_is_wrong(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a picture\n")
    with pytest.raises(ImageError, match="notes.png is not an image"):
        prepare(text)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg is empty"):
        prepare(empty)
    good = tmp_path / "good.png"
    Image.fromarray(BASE).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:80])
    with pytest.raises(ImageError, match="truncated.png is damaged or truncated"):
        prepare(truncated)
    with pytest.raises(ImageError, match="missing.png was not found"):
        prepare(tmp_path / "missing.png")


@pytest.mark.unit
def test_cache_decodes_each_file_once(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(BASE).save(path)
    cache = images_in.PreparedCache()
    first = cache.get(path, Budget(shortest_side=12))
    assert cache.get(path, Budget(shortest_side=12)) is first
    assert cache.get(path, Budget(shortest_side=24)) is not first


def test_budget_follows_the_model_files(kit):
    tiny = facts(kit.vlm.ov)
    assert tiny.model_type == "llava" and tiny.budget == Budget(shortest_side=32)
    assert any("centre-cropped" in note for note in tiny.notes)
