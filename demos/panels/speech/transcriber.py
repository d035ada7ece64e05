"""Run a WhisperPipeline on prepared audio: stream the text, report windows, stop on request, collect results.

One ``generate`` call covers the whole audio, exactly as a direct call would, so results equal the raw pipeline's
for the same samples and settings. Audio over 30 s is decoded by genai window by window (each window starts
where the previous one's last complete segment ended); its streamer then receives each window's tokens at once,
which is what the progress bar counts. Short audio without timestamps streams token by token.

``generate`` runs as a ``serving`` job in the pipeline's lane (holding its lock); ``run`` is a generator that
yields ``Progress`` while it works and a final ``Result``. Stop (or abandoning the generator) makes the streamer
return ``StreamingStatus.STOP``: genai ends after the current token, or the current window for long audio; a run
stopped before it gets the pipeline never starts.
"""
from __future__ import annotations

import math
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

from demos.panels.speech import languages

from demos.core import serving
from demos.core import metrics as perf_metrics
from demos.core.audio import Audio, AudioError, is_silent
from demos.core.errors import UserError
from demos.panels.speech.subtitles import Segment, segments_from_chunks, words_from_genai

TimestampMode = Literal["off", "segments", "words"]
TIMESTAMP_MODES: tuple[str, ...] = ("off", "segments", "words")
WINDOW_S = 30.0  # Whisper's fixed input window
MAX_PROMPT_CHARS = 1000  # Whisper reads ~224 prompt tokens; a far longer one fails in genai ("max_length ...")

log = logging.getLogger("demos.panels.speech")


@dataclass(frozen=True)
class Options:
    """What a request may change; everything else is fixed by the pipeline."""

    language: str | None = None            # a code the model knows; None = detect
    task: Literal["transcribe", "translate"] = "transcribe"
    timestamps: TimestampMode = "off"
    max_new_tokens: int | None = None      # None = the model's generation config decides
    initial_prompt: str | None = None      # text the speech continues (names, spelling, style); not echoed

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``WhisperPipeline.generate`` (what Show code prints, too)."""
        kwargs: dict[str, Any] = {}
        if self.language:
            kwargs["language"] = f"<|{self.language}|>"
        kwargs["task"] = self.task
        if self.timestamps != "off":
            kwargs["return_timestamps"] = True
        if self.timestamps == "words":
            kwargs["word_timestamps"] = True
        if self.max_new_tokens:
            kwargs["max_new_tokens"] = self.max_new_tokens
        if self.initial_prompt:
            kwargs["initial_prompt"] = self.initial_prompt
        return kwargs


@dataclass
class Progress:
    """Where a running transcription is."""

    text: str                 # streamed so far (display only: the final text comes from the result)
    windows: int              # 30 s windows finished (long audio)
    expected_windows: int
    waiting: bool = False     # another request holds the pipeline
    ahead: int = 0            # while waiting: requests before this one

    @property
    def fraction(self) -> float:
        return min(self.windows / max(self.expected_windows, 1), 1.0)


@dataclass
class Result:
    """A finished (or stopped) transcription."""

    text: str
    segments: list[Segment]
    words: list[Segment]
    language: str
    stopped: bool
    metrics: dict[str, Any] = field(default_factory=dict)


def expected_windows(seconds: float) -> int:
    """Windows genai will decode at least (it may need more when a window ends early on a segment)."""
    return max(1, math.ceil(seconds / WINDOW_S))


def check_request(options: Options, multilingual: bool) -> None:
    """Refuse what the model cannot do, in words a user can act on (languages are checked by ``resolve``)."""
    if options.task not in ("transcribe", "translate"):
        raise UserError(f"task must be 'transcribe' or 'translate', not {options.task!r}", param="task")
    if options.timestamps not in TIMESTAMP_MODES:
        raise UserError(f"timestamps must be one of {', '.join(TIMESTAMP_MODES)}, not {options.timestamps!r}",
                        param="timestamps")
    if not multilingual and options.task == "translate":
        raise UserError("this model is English-only: it can transcribe English but not translate; "
                        "choose a multilingual Whisper model to translate", param="task")


class _Streamer:
    """genai streamer: collects tokens, decodes the text so far, counts windows, answers STOP when asked."""

    def __init__(self, tokenizer: Any, report: Callable[[Progress], None], stop: threading.Event,
                 expected_windows: int, per_token: bool) -> None:
        import openvino_genai as ov_genai

        self._status = ov_genai.StreamingStatus
        self._tokenizer = tokenizer
        self._report = report
        self._stop = stop
        self._tokens: list[int] = []
        self._texts: list[str] = []      # finished windows
        self.windows = 0
        self.expected = expected_windows
        self.per_token = per_token  # genai writes token by token, else one call per finished window
        self.first_text_s: float | None = None
        self._started = time.perf_counter()

    def __call__(self, token: int | list[int]) -> Any:  # StreamerBase.write
        tokens = [int(t) for t in token] if isinstance(token, (list, tuple)) else [int(token)]
        if self.per_token:
            self._tokens += tokens
        else:
            self.windows += 1
            self._texts.append(self._tokenizer.decode(tokens))
        text = "".join(self._texts) + (self._tokenizer.decode(self._tokens) if self._tokens else "")
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet: show it with the next token
            return self._status.STOP if self._stop.is_set() else self._status.RUNNING
        if self.first_text_s is None and text.strip():
            self.first_text_s = time.perf_counter() - self._started
        self._report(Progress(text, self.windows, self.expected))
        return self._status.STOP if self._stop.is_set() else self._status.RUNNING


def _make_streamer(collector: _Streamer) -> Any:
    """A ``StreamerBase`` subclass instance: it receives token ids (a text callable would not see windows)."""
    import openvino_genai as ov_genai

    class WindowStreamer(ov_genai.StreamerBase):
        def write(self, token):  # noqa: D401 - genai callback
            return collector(token)

        def end(self) -> None:
            pass

    streamer = WindowStreamer()
    streamer.collector = collector
    return streamer


def check_audible(audio: Audio) -> None:
    """Refuse digital silence: Whisper would hallucinate words into it."""
    if is_silent(audio.samples):
        raise AudioError(f"the audio is silent ({audio.seconds:.1f} s without any sound above -80 dBFS); "
                         "check the microphone or the file")


def run(pipeline: Any, lane: serving.Lane, audio: Audio, options: Options,
        stop: "threading.Event | serving.Control | None" = None) -> Iterator[Progress | Result]:
    """Transcribe ``audio`` in ``lane`` (the pipeline's): yields ``Progress`` while running, then one ``Result``.

    A run stopped before it gets the pipeline yields an empty stopped ``Result`` without figures."""
    check_audible(audio)
    control = serving.Control.of(stop)
    expected = expected_windows(audio.seconds)
    # genai streams token by token only for one window without timestamps; otherwise once per window.
    per_token = options.timestamps == "off" and audio.seconds <= WINDOW_S
    samples = audio.samples.tolist()  # genai copies the list into a vector
    kwargs = options.generate_kwargs()

    def work(ctx: serving.JobContext) -> tuple[Any, float, _Streamer]:
        collector = _Streamer(pipeline.get_tokenizer(), ctx.update, ctx.stop_event, expected, per_token)
        ctx.update(Progress("", 0, expected))  # it runs: the wait (if any) is over
        started = time.perf_counter()
        result = pipeline.generate(samples, streamer=_make_streamer(collector), **kwargs)
        return result, time.perf_counter() - started, collector

    job = serving.submit(work, lane, control, name="speech", logger=log)
    with job.stream() as events:
        for event in events:
            if isinstance(event, serving.Update):
                yield event.value
            elif isinstance(event, serving.Waiting):
                yield Progress("", 0, expected, waiting=True, ahead=event.ahead)
            elif isinstance(event, serving.Done):
                if not event.started:
                    yield Result("", [], [], options.language or "", True, {"stopped_after_windows": 0})
                    return
                raw, generate_s, collector = event.result
                yield _result(raw, generate_s, audio, options, control.stopped, collector)
                return


def _result(raw: Any, generate_s: float, audio: Audio, options: Options, stopped: bool,
            collector: _Streamer) -> Result:
    text = raw.texts[0] if raw.texts else ""
    segments = segments_from_chunks(raw.chunks or [], audio.seconds) if options.timestamps != "off" else []
    words = words_from_genai(raw.words or [], audio.seconds, text) if options.timestamps == "words" else []
    processing_s = audio.decode_s + generate_s
    perf = raw.perf_metrics
    figures: dict[str, Any] = {
        "audio_s": audio.seconds,
        "processing_s": processing_s,
        "real_time_factor": processing_s / audio.seconds,
        "ttft_ms": float(perf.get_ttft().mean),
        "decode_ms": audio.decode_s * 1000,
        "generate_s": generate_s,
        "output_tokens": int(perf.get_num_generated_tokens()),
        "language": languages.code_of(getattr(raw, "language", "") or options.language or ""),
    }
    if stopped:
        figures["stopped_after_windows"] = collector.windows
    metrics = perf_metrics.build(figures)  # the load is the panel's to add: it holds the handle
    return Result(text, segments, words, figures["language"], stopped, metrics)

