"""Speak text with a ``Text2SpeechPipeline``, sentence by sentence, as serving jobs. No Gradio here.

Each sentence is one ``generate`` call in the pipeline's lane (one job at a time per pipeline, others wait their
turn between sentences), so the first sentence can play while the next are made, and Stop takes effect after the
sentence being made: what was spoken is kept. genai returns speeches that alias the vocoder's output buffer (a later
call overwrites them), so each result is copied at once, and one text goes in per call.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from demos.core import metrics as perf_metrics
from demos.core import serving

log = logging.getLogger("demos.panels.voice")


@dataclass(frozen=True)
class Queued:
    """The next sentence waits for the pipeline: ``ahead`` requests before it."""

    ahead: int
    done: int
    count: int


@dataclass(frozen=True)
class Spoken:
    """One sentence made: its audio (float32, mono), which one it was, and what it took."""

    index: int
    count: int
    text: str
    samples: np.ndarray
    rate: int
    generate_s: float


@dataclass
class Speech:
    """The whole answer (or what was spoken before Stop)."""

    samples: np.ndarray
    rate: int
    spoken: int
    count: int
    stopped: bool
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def synthesize(pipeline: Any, text: str, embedding: np.ndarray | None) -> tuple[np.ndarray, int]:
    """One ``generate`` call: (a copy of the samples, the sample rate)."""
    import openvino as ov
    args = (text,) if embedding is None else (text, ov.Tensor(np.array(embedding, dtype=np.float32)))
    result = pipeline.generate(*args)
    samples = np.array(result.speeches[0].data, dtype=np.float32, copy=True).reshape(-1)  # the buffer is reused
    return samples, int(result.output_sample_rate)


def speak_one(pipeline: Any, lane: serving.Lane | None, text: str, embedding: np.ndarray | None,
              control: serving.Control) -> Iterator[Queued | tuple[np.ndarray, int, float] | None]:
    """One sentence as a job in ``lane``: ``Queued`` while it waits, then (samples, rate, generate seconds), or None
    when it was stopped before it started."""
    def work(ctx: serving.JobContext) -> tuple[np.ndarray, int, float]:
        started = time.perf_counter()
        samples, rate = synthesize(pipeline, text, embedding)
        return samples, rate, time.perf_counter() - started

    job = serving.submit(work, lane, control, name="voice", logger=log)
    with job.stream() as events:
        for event in events:
            if isinstance(event, serving.Waiting):
                yield Queued(event.ahead, 0, 0)
            elif isinstance(event, serving.Done):
                yield event.result if event.started else None
                return


def speak(pipeline: Any, lane: serving.Lane | None, sentences: list[str], embedding: np.ndarray | None,
          control: serving.Control | None = None) -> Iterator[Queued | Spoken | Speech]:
    """Speak ``sentences`` in order: ``Queued`` while waiting, a ``Spoken`` per sentence, then one ``Speech``."""
    control = control or serving.Control()
    started = time.perf_counter()
    parts: list[np.ndarray] = []
    rate, generate_s, first_audio_s = 0, 0.0, None
    for index, sentence in enumerate(sentences):
        if control.stopped:
            break
        outcome = None
        for item in speak_one(pipeline, lane, sentence, embedding, control):
            if isinstance(item, Queued):
                yield Queued(item.ahead, index, len(sentences))
            else:
                outcome = item
        if outcome is None:  # stopped while it waited
            break
        samples, rate, seconds = outcome
        generate_s += seconds
        if first_audio_s is None:
            first_audio_s = time.perf_counter() - started
        parts.append(samples)
        yield Spoken(index, len(sentences), sentence, samples, rate, seconds)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    yield Speech(audio, rate, len(parts), len(sentences), len(parts) < len(sentences),
                 figures(audio, rate, generate_s, first_audio_s, len(parts), len(sentences)))


def figures(audio: np.ndarray, rate: int, generate_s: float, first_audio_s: float | None, spoken: int,
            count: int) -> dict[str, Any]:
    """Audio seconds, generate time, real-time factor (generate time over audio time: below 1 is faster than
    speech), time to first audio, sentences."""
    seconds = len(audio) / rate if rate else 0.0
    values: dict[str, Any] = {"audio_s": seconds, "generate_s": generate_s,
                              "real_time_factor": generate_s / seconds if seconds else None,
                              "first_audio_ms": first_audio_s * 1000 if first_audio_s is not None else None,
                              "sentences": f"{spoken} of {count}" if spoken < count else count}
    return perf_metrics.build(values)
