"""Where in 16 kHz audio someone speaks: Silero VAD's pretrained model, run by OpenVINO. No Gradio here.

The ``silero-vad`` package ships the weights as ``silero_vad/data/silero_vad_openvino_16k.onnx``, which OpenVINO
reads directly. The file is located through the package's installed metadata, without importing the package (its
``__init__`` imports torch, which the app does not need): install it with ``pip install --no-deps``.

The model reads 512 new samples at a time (plus the previous 64 as context) and carries a recurrent state from one
chunk to the next; it answers the probability that the chunk holds speech. ``spans_from_probabilities`` turns the
probabilities into speech spans with the rules Silero's own ``get_speech_timestamps`` uses (a start above
``threshold``, an end after ``min_silence_ms`` below ``threshold - 0.15``, spans under ``min_speech_ms`` dropped,
``pad_ms`` added each side), and ``Speech`` gathers those spans into one shorter clip and maps times in it back
onto the original timeline.
"""
from __future__ import annotations

import bisect
import functools
import importlib.metadata
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
CHUNK = 512      # new samples per model call at 16 kHz (32 ms)
CONTEXT = 64     # samples of the previous chunk the model sees again
PACKAGE = "silero-vad"
MODEL_FILE = "silero_vad/data/silero_vad_openvino_16k.onnx"
INSTALL = "pip install --no-deps silero-vad==6.2.3"

log = logging.getLogger("demos.vad")


@dataclass(frozen=True)
class Settings:
    """Silero's own defaults (``get_speech_timestamps``)."""

    threshold: float = 0.5        # a chunk at or above this starts (or continues) speech
    neg_threshold: float | None = None  # below this, silence begins; None: threshold - 0.15
    min_speech_ms: int = 250      # shorter spans are dropped (clicks, breaths)
    min_silence_ms: int = 100     # silence this long ends a span
    pad_ms: int = 30              # added to each side of a span (never over a neighbour)

    @property
    def silence_below(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


@dataclass(frozen=True)
class Span:
    """Speech from sample ``start`` up to (not including) sample ``end``."""

    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


@dataclass(frozen=True)
class Speech:
    """The speech spans of one clip of ``total`` samples, and what finding them cost."""

    spans: tuple[Span, ...]
    total: int
    vad_s: float = 0.0
    note: str = ""     # set when no detector ran (the package is missing): the spans then cover everything
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, offset = [], 0
        for span in self.spans:
            starts.append(offset)
            offset += span.end - span.start
        object.__setattr__(self, "_starts", tuple(starts))

    @property
    def found(self) -> bool:
        return bool(self.spans)

    @property
    def speech_samples(self) -> int:
        return sum(span.end - span.start for span in self.spans)

    @property
    def speech_s(self) -> float:
        return self.speech_samples / SAMPLE_RATE

    @property
    def silence_s(self) -> float:
        return (self.total - self.speech_samples) / SAMPLE_RATE

    @property
    def skips(self) -> bool:
        """True when gathering leaves something out."""
        return self.speech_samples < self.total

    def gather(self, samples: np.ndarray) -> np.ndarray:
        """The speech spans of ``samples`` one after the other (``samples`` itself when nothing is skipped)."""
        if not self.skips:
            return samples
        return np.concatenate([samples[span.start:span.end] for span in self.spans]) if self.spans \
            else samples[:0]

    def to_original(self, seconds: float, end: bool = False) -> float:
        """A time in the gathered clip -> the same moment of the original. At a join of two spans a start belongs to
        the later span and an ``end`` to the earlier one, so no segment is stretched over the silence between."""
        if not self.spans:
            return 0.0
        position = max(0.0, seconds * SAMPLE_RATE)
        find = bisect.bisect_left if end else bisect.bisect_right
        index = min(max(find(self._starts, position) - 1, 0), len(self.spans) - 1)
        span = self.spans[index]
        return min(span.start + (position - self._starts[index]), span.end) / SAMPLE_RATE


def whole(total: int, note: str = "") -> Speech:
    """Everything counts as speech (no detector ran)."""
    return Speech((Span(0, total),) if total else (), total, 0.0, note)


# ---------------------------------------------------------------------------------------------------------
# The model


def model_path() -> Path | None:
    """The installed ``silero_vad_openvino_16k.onnx``, or None when the package is not installed."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(MODEL_FILE)))
    return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _compiled(path: str) -> Any:
    """One compiled model per process; each call makes its own infer request (the state is per clip)."""
    import openvino as ov

    core = ov.Core()
    # One thread: a 576-sample chunk is far too small to share between cores, and the speech pipeline next to it
    # wants them.
    return core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": 1})


def probabilities(samples: np.ndarray, path: Path) -> np.ndarray:
    """Speech probability of each 512-sample chunk of 16 kHz mono ``samples`` (the last one zero-padded)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    count = -(-len(samples) // CHUNK)
    padded = np.zeros(count * CHUNK + CONTEXT, np.float32)
    padded[CONTEXT:CONTEXT + len(samples)] = samples  # silence before the first chunk is its context
    request = _compiled(str(path)).create_infer_request()
    window = request.get_tensor("input").data   # writable views of the request's own input memory
    state_in = request.get_tensor("state").data
    state_in[...] = 0.0
    out = np.empty(count, np.float32)
    for index in range(count):
        window[0, :] = padded[index * CHUNK:index * CHUNK + CHUNK + CONTEXT]
        request.infer()
        out[index] = request.get_tensor("output").data.reshape(-1)[0]
        state_in[...] = request.get_tensor("stateN").data
    return out


def spans_from_probabilities(probs: np.ndarray, total: int, settings: Settings = Settings()) -> list[Span]:
    """Speech spans (in samples of a clip of ``total``) from per-chunk probabilities."""
    min_silence = settings.min_silence_ms * SAMPLE_RATE // 1000
    min_speech = settings.min_speech_ms * SAMPLE_RATE // 1000
    pad = settings.pad_ms * SAMPLE_RATE // 1000
    raw: list[tuple[int, int]] = []
    start: int | None = None
    silence_from: int | None = None  # where the current run below the silence threshold began
    for index, p in enumerate(probs):
        at = index * CHUNK
        if p >= settings.threshold:
            silence_from = None
            if start is None:
                start = at
        elif start is not None and p < settings.silence_below:
            if silence_from is None:
                silence_from = at
            if at + CHUNK - silence_from >= min_silence:
                raw.append((start, silence_from))
                start = silence_from = None
    if start is not None:
        raw.append((start, total))
    kept = [(a, min(b, total)) for a, b in raw if min(b, total) - a >= min_speech]
    spans: list[Span] = []
    for index, (a, b) in enumerate(kept):
        lower = max(a - pad, 0)
        upper = min(b + pad, total)
        if spans and lower < spans[-1].end:  # too close to the previous span for a full pad each: meet midway
            middle = (kept[index - 1][1] + a) // 2
            spans[-1] = Span(spans[-1].start, middle)
            lower = middle
        spans.append(Span(lower, upper))
    return [span for span in spans if span.end > span.start]


def find_speech(samples: np.ndarray, settings: Settings = Settings()) -> Speech:
    """The speech in 16 kHz mono ``samples``; without the ``silero-vad`` package, everything (with a note)."""
    total = len(samples)
    path = model_path()
    if path is None:
        return whole(total, f"silence not skipped: the {PACKAGE} package is not installed ({INSTALL})")
    started = time.perf_counter()
    probs = probabilities(samples, path)
    spans = spans_from_probabilities(probs, total, settings)
    return Speech(tuple(spans), total, time.perf_counter() - started)
