"""Video files made at test time with PyAV's encoders (H.264, VP8, FFV1, GIF …): no binary files in the repository.

Every frame is different (a square that moves and a background whose colour changes with the frame number), so a
test can tell which frames were sampled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# container suffix -> (codec, pixel format)
CODECS = {".mp4": ("libx264", "yuv420p"), ".webm": ("libvpx", "yuv420p"), ".mkv": ("ffv1", "yuv420p"),
          ".mov": ("mpeg4", "yuv420p")}  # .gif: written with PIL


def frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """``count`` distinct RGB frames, count×H×W×3 uint8."""
    out = np.zeros((count, height, width, 3), np.uint8)
    for i in range(count):
        out[i, ..., 0] = (i * 37) % 256
        out[i, ..., 1] = (255 - i * 23) % 256
        out[i, ..., 2] = 90
        top = (i * 5) % max(1, height - 12)
        left = (i * 7) % max(1, width - 12)
        out[i, top:top + 12, left:left + 12] = 255
    return out


def write(path: Path, pictures: np.ndarray, fps: int = 10, keyframe_every: int | None = None) -> Path:
    """Encode ``pictures`` (N×H×W×3 uint8) into ``path``; the codec follows the suffix (``CODECS``)."""
    import av
    if path.suffix.lower() == ".gif":  # FFmpeg's scaler does not make palettes: PIL writes animated GIFs
        from PIL import Image
        images = [Image.fromarray(p) for p in pictures]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return path
    codec, pixel_format = CODECS[path.suffix.lower()]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = pictures.shape[2], pictures.shape[1]
        stream.pix_fmt = pixel_format
        if keyframe_every:
            stream.codec_context.gop_size = keyframe_every
        for picture in pictures:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An .mp4 (AAC) with sound and no pictures."""
    import av
    rate = 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = (0.2 * np.sin(np.arange(int(rate * seconds)) / 10)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
