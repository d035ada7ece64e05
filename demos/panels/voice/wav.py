"""16-bit PCM WAV files of generated speech (what every player and OpenAI's ``response_format: wav`` take)."""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np


def pcm16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] as int16 (clipped, rounded): what the WAV holds."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return np.round(clipped * 32767).astype("<i2")


def to_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A mono WAV of ``samples`` at ``rate`` Hz."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(int(rate))
        writer.writeframes(pcm16(samples).tobytes())
    return out.getvalue()


def write(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.write_bytes(to_bytes(samples, rate))
    return path


def read(data: bytes) -> tuple[int, np.ndarray]:
    """(rate, float32 samples) of a mono 16-bit WAV made by ``to_bytes`` (tests and benches read answers back)."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
        return reader.getframerate(), np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32767
