"""Any audio a user hands over -> what Whisper wants: float32, mono, 16 kHz, in [-1, 1].

Files are decoded with PyAV (``av`` on PyPI), which bundles FFmpeg's libraries in its wheels: wav, flac, ogg,
mp3, m4a/aac, opus, webm and the audio track of video files (mp4, mkv, mov …) all work on a fresh machine or a
Hugging Face Space without an ``ffmpeg`` binary. Arrays (Gradio's ``(rate, int16 array)`` tuples, floats,
stereo, any rate) go through the same steps, so every source ends up the same:

1. samples as float in [-1, 1] (integers are scaled by their type's full range, so int16 / 32768 exactly);
2. channels averaged to mono (a plain mean: FFmpeg's own downmix adds 3 dB for stereo and could clip);
3. resampled to 16 kHz by FFmpeg's swresample (a windowed-sinc resampler), skipped when already 16 kHz.

Errors are ``AudioError`` (a ``ValueError``) with a message that says what to do.
"""
from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demos.core.errors import UserError

SAMPLE_RATE = 16000
# Whisper's feature extractor needs more than n_fft / 2 = 200 samples; anything under 0.1 s is no speech anyway.
MIN_SECONDS = 0.1
# Peak below which audio counts as silent (-80 dBFS: below the noise floor of any microphone).
SILENCE_PEAK = 1e-4
_RESAMPLE_BLOCK = SAMPLE_RATE * 10  # samples per frame handed to swresample (bounded memory per call)


class AudioError(UserError):
    """The audio could not be used; the message says why and what to do."""


@dataclass(frozen=True)
class Audio:
    """Samples ready for Whisper, and what they were made from."""

    samples: np.ndarray          # float32, mono, 16 kHz, in [-1, 1]
    source_rate: int
    source_channels: int
    decode_s: float              # decoding + mixing + resampling, seconds
    declared_s: float | None = None  # the duration the file's header declares, if any
    warning: str = ""            # e.g. a file that ends before its declared duration

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------
# Arrays


def to_float(data: np.ndarray) -> np.ndarray:
    """Samples as float32 in [-1, 1]: integers scaled by their full range, floats clipped."""
    data = np.asarray(data)
    if data.dtype.kind == "i":  # int16 / 32768 is exact in float32; wider types go through float64
        scale = float(2 ** (8 * data.dtype.itemsize - 1))
        wide = np.float32 if data.dtype.itemsize <= 2 else np.float64
        return (data.astype(wide) / wide(scale)).astype(np.float32)
    if data.dtype.kind == "u":  # unsigned PCM (8-bit wav) is centred on half its range
        half = float(2 ** (8 * data.dtype.itemsize - 1))
        return ((data.astype(np.float64) - half) / half).astype(np.float32)
    if data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
        if not np.all(np.isfinite(data)):
            raise AudioError("the audio contains NaN or infinite samples; export it again as 16-bit PCM")
        return np.clip(data, -1.0, 1.0)
    raise AudioError(f"audio samples of type {data.dtype} are not supported; use integer or float PCM")


def to_mono(data: np.ndarray, channels_axis: int | None = None) -> np.ndarray:
    """Average the channels. 2-D input is (samples, channels) as Gradio gives it, unless told otherwise."""
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(f"audio must be 1-D (mono) or 2-D (samples, channels), got shape {data.shape}")
    axis = channels_axis if channels_axis is not None else (1 if data.shape[0] >= data.shape[1] else 0)
    return data.mean(axis=axis, dtype=np.float32) if data.shape[axis] > 1 else data.reshape(-1)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 from ``rate`` to ``target`` Hz with FFmpeg's swresample; unchanged if already there."""
    if rate == target:
        return np.ascontiguousarray(samples, dtype=np.float32)
    stream = Resampler(rate, target)
    stream.feed(samples)
    return stream.finish()


class Resampler:
    """Mono float32 at ``rate`` in, piece by piece; ``target`` Hz out. Pieces are handed to swresample in blocks
    of ``_RESAMPLE_BLOCK`` samples counted from the start, so the result is the same however the input was cut
    (a whole array, or a file's frames as they are decoded: memory then holds only the 16 kHz output)."""

    def __init__(self, rate: int, target: int = SAMPLE_RATE):
        if rate <= 0:
            raise AudioError(f"invalid sample rate {rate} Hz")
        import av
        self.rate, self.target = rate, target
        self._swr = None if rate == target else av.AudioResampler(format="flt", layout="mono", rate=target)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._out: list[np.ndarray] = []

    def feed(self, mono: np.ndarray) -> None:
        mono = np.asarray(mono, dtype=np.float32).reshape(-1)
        if self._swr is None:
            self._out.append(mono)
            return
        if self._pending_n + len(mono) < _RESAMPLE_BLOCK:
            self._pending.append(mono)
            self._pending_n += len(mono)
            return
        start = _RESAMPLE_BLOCK - self._pending_n
        self._push(np.concatenate([*self._pending, mono[:start]]))
        while start + _RESAMPLE_BLOCK <= len(mono):
            self._push(mono[start:start + _RESAMPLE_BLOCK])
            start += _RESAMPLE_BLOCK
        rest = mono[start:]
        self._pending, self._pending_n = ([rest] if len(rest) else []), len(rest)

    def _push(self, block: np.ndarray) -> None:
        import av
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = self.rate
        self._out += [f.to_ndarray().reshape(-1) for f in self._swr.resample(frame)]

    def finish(self) -> np.ndarray:
        if self._swr is None:
            return np.concatenate(self._out) if self._out else np.zeros(0, np.float32)
        if self._pending_n:
            self._push(np.concatenate(self._pending))
            self._pending, self._pending_n = [], 0
        self._out += [f.to_ndarray().reshape(-1) for f in self._swr.resample(None)]
        out = np.concatenate(self._out) if self._out else np.zeros(0, np.float32)
        # swresample's filter can overshoot a full-scale input by a hair: keep Whisper's [-1, 1] promise.
        return np.clip(out, -1.0, 1.0)


def from_array(rate: int, data: np.ndarray, max_seconds: float | None = None) -> Audio:
    """Gradio's ``(rate, array)`` (any dtype, mono or (samples, channels), any rate) -> Whisper's samples."""
    started = time.perf_counter()
    data = np.asarray(data)
    if rate <= 0:
        raise AudioError(f"invalid sample rate {rate} Hz")
    channels = 1 if data.ndim == 1 else min(data.shape)
    if max_seconds and data.size / max(channels, 1) / rate > max_seconds + 0.5:
        raise AudioError(_too_long(data.size / channels / rate, max_seconds))
    samples = resample(to_mono(to_float(data)), int(rate))
    return _checked(Audio(samples, int(rate), channels, time.perf_counter() - started), max_seconds)


# ---------------------------------------------------------------------------------------------------------
# Files


def load(path: str | Path, max_seconds: float | None = None) -> Audio:
    """Decode the first audio stream of any media file FFmpeg reads and convert it for Whisper.

    ``max_seconds`` is checked against the declared duration before decoding, so an over-long upload is refused
    at once; files without a declared duration are checked after decoding.
    """
    import av

    started = time.perf_counter()
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise AudioError(f"{name}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{name} is empty (0 bytes); upload the recording again")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(f"{name} is not an audio or video file FFmpeg can read ({_reason(exc)}); "
                         "upload wav, flac, ogg, mp3, m4a/aac or a video with a sound track") from None
    with container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise AudioError(f"{name} has no audio track (it holds {kinds}); upload a file with sound")
        stream = container.streams.audio[0]
        declared = declared_seconds(container, stream)
        claim = wav_claim(path)
        if claim is not None:
            # FFmpeg derives a WAV's duration from the bytes present, so a cut file looks whole: the header's own
            # claim says what was meant; the limit is checked on what is there (a lying header is damage, not
            # length).
            declared = claim.present_s
        if max_seconds and declared and declared > max_seconds + 0.5:
            raise AudioError(_too_long(declared, max_seconds))
        if claim is not None:
            declared = claim.declared_s
        rate, channels, samples, decoded, broken = _decode(container, stream, max_seconds)
    if rate == 0 or decoded == 0:
        if broken:
            raise AudioError(f"{name} is damaged: none of its audio could be decoded")
        raise AudioError(f"{name} contains no audio samples (zero length); record or export it again")
    decoded_s = decoded / rate
    warning = ""
    if declared and decoded_s < 0.9 * declared - 0.5:
        warning = (f"{name} looks truncated: it declares {declared:.1f} s but only {decoded_s:.1f} s could be "
                   "decoded; transcribed what was there")
    elif broken:
        warning = f"{name} has {broken} damaged audio packet(s); they were skipped"
    audio = Audio(samples, rate, channels, time.perf_counter() - started, declared, warning)
    return _checked(audio, max_seconds)


def _decode(container, stream, max_seconds: float | None) -> tuple[int, int, np.ndarray, int, int]:
    """(rate, channels, Whisper's samples, samples decoded per channel, damaged packets) of one audio stream.

    Each frame is mixed to mono and resampled as it is decoded, so memory holds 16 kHz mono whatever the file's
    channels and rate (a 1 MB FLAC of 8 channels at 192 kHz would otherwise unpack to gigabytes)."""
    import av

    rate = channels = broken = total = 0
    out: Resampler | None = None
    converter = None  # for sample formats numpy does not read directly (a format change only)
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:  # a damaged packet: skip it, count it, keep the rest of the file
            broken += 1
            continue
        for frame in frames:
            if not rate:
                rate, channels = frame.sample_rate, len(frame.layout.channels)
                out = Resampler(rate)
            planar = _planar_float(frame, channels)
            if planar is None:
                if converter is None:
                    converter = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
                parts = [f.to_ndarray() for f in converter.resample(frame)]
            else:
                parts = [planar]
            for part in parts:
                out.feed(_mono(part))
            total += frame.samples
            if max_seconds and total > (max_seconds + 0.5) * rate:
                raise AudioError(_too_long(total / rate, max_seconds, at_least=True))
    if converter is not None and out is not None:
        for part in [f.to_ndarray() for f in converter.resample(None)]:
            out.feed(_mono(part))
    samples = out.finish() if out is not None else np.zeros(0, np.float32)
    return rate, channels, samples, total, broken


def _mono(planar: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (samples,): the plain mean of the channels (see the module docstring)."""
    return planar.mean(axis=0, dtype=np.float32) if planar.shape[0] > 1 else planar.reshape(-1)


def _planar_float(frame, channels: int) -> np.ndarray | None:
    """(channels, samples) float32 for the common sample formats, read with numpy; None for the others.

    Decoders of mp3/aac/opus/vorbis give float planar, PCM and flac give 16-bit integers: reading them
    directly skips a conversion pass per frame (the bulk of the decoding time on long files).
    """
    name = frame.format.name
    if name not in ("fltp", "flt", "s16", "s16p"):
        return None
    data = frame.to_ndarray()
    if not name.endswith("p"):  # packed: one row of interleaved samples
        data = data.reshape(-1, channels).T
    if name.startswith("s16"):
        return data.astype(np.float32) / np.float32(32768)
    return data.astype(np.float32, copy=False)


@dataclass(frozen=True)
class WavClaim:
    """What a RIFF/WAVE header says about its PCM data, against what the file holds."""

    declared_s: float   # the data chunk's size over the byte rate
    present_s: float    # the data bytes actually in the file, over the byte rate


_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the size open: no claim to check
_WAV_HEADER_SCAN = 64  # chunks scanned for 'fmt ' and 'data' (real files have 2 to 5 before the data)


def wav_claim(path: Path) -> WavClaim | None:
    """The duration a WAV header declares and the one present; None for other files or an open-ended size."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = 0
            for _ in range(_WAV_HEADER_SCAN):
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = handle.read(min(length, 16))
                    byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else 0
                    handle.seek(length - len(fmt) + (length & 1), os.SEEK_CUR)
                elif name == b"data":
                    if not byte_rate or length in _UNKNOWN_SIZES:
                        return None
                    present = max(0, min(length, size - handle.tell()))
                    return WavClaim(length / byte_rate, present / byte_rate)
                else:
                    handle.seek(length + (length & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    except (OSError, struct.error):
        return None
    return None


def declared_seconds(container: Any, stream: Any) -> float | None:
    """A PyAV stream's length as its file declares it (stream first, then container), None if it says nothing."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _checked(audio: Audio, max_seconds: float | None) -> Audio:
    if audio.seconds < MIN_SECONDS:
        raise AudioError(f"the audio is only {audio.seconds * 1000:.0f} ms long; record or upload at least "
                         f"{MIN_SECONDS:.1f} s of speech")
    if max_seconds and audio.seconds > max_seconds + 0.5:
        raise AudioError(_too_long(audio.seconds, max_seconds))
    return audio


def is_silent(samples: np.ndarray) -> bool:
    """True when no sample rises above -80 dBFS (digital silence, or a muted microphone)."""
    return samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK


def _too_long(seconds: float, limit: float, at_least: bool = False) -> str:
    length = f"{'more than ' if at_least else ''}{_clock(seconds)}"
    return (f"the audio is {length} long; this model's limit is {_clock(limit)} "
            "(generation.max_audio_seconds in models.yaml): trim it or split it into parts")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _reason(exc: Exception) -> str:
    """FFmpeg's reason without the errno and the temp path: 'Invalid data found when processing input'."""
    message = getattr(exc, "strerror", None) or str(exc)
    return str(message).split(";")[0].strip()
