"""Audio and video files made at test time for the speech tests (PyAV encoders, the stdlib wave module, espeak-ng).

The signals have spectral detail (a wandering tone plus noise), which the tiny Whisper turns into words;
silence and padding make it stop.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest


def signal(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """float64 mono in [-1, 1]: a tone sweeping 100-500 Hz around 300 Hz, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(t)) * t)
    return np.clip(tone + rng.normal(0, 0.05, t.size), -1, 1)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM wav; ``samples`` float in [-1, 1], shape (n,) or (n, channels)."""
    data = to_int16(samples)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(rate, int16 array (n,) or (n, channels)) with the stdlib only: independent of the app's decoder."""
    with wave.open(str(path), "rb") as src:
        rate, channels = src.getframerate(), src.getnchannels()
        data = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16)
    return rate, data.reshape(-1, channels) if channels > 1 else data


def encode(path: Path, samples: np.ndarray, rate: int, codec: str, container: str | None = None,
           video: bool = False) -> Path:
    """Encode mono float samples with PyAV (mp3: libmp3lame, m4a/mp4: aac, ogg: libopus, flac: flac)."""
    import av

    data = np.asarray(samples, dtype=np.float32)[None, :]
    with av.open(str(path), "w", format=container) as out:
        picture = None
        if video:
            picture = out.add_stream("mpeg4", rate=5)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        stream.codec_context.open()  # frame_size is known only once the encoder is open
        frame_size = stream.codec_context.frame_size or None
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate,
                                      frame_size=frame_size)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
        frame.sample_rate = rate
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
        if picture is not None:
            black = np.zeros((48, 64, 3), np.uint8)
            for _ in range(int(len(samples) / rate * 5)):
                out.mux(picture.encode(av.VideoFrame.from_ndarray(black, format="rgb24")))
            out.mux(picture.encode(None))
    return path


def espeak(path: Path, text: str) -> Path:
    """A real spoken clip (espeak-ng writes 22.05 kHz mono wav)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        # Skipped where the Debian package is missing, but never in CI (.ci/run installs it and sets this).
        message = "espeak-ng is not installed: apt-get install -y espeak-ng"
        if os.environ.get("REQUIRE_ESPEAK") == "1":
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run([binary, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path
