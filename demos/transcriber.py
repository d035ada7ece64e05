"""Run a WhisperPipeline on prepared audio: stream the text, report windows, stop on request, collect results.

One ``generate`` call covers the whole audio, exactly as a direct call would, so results equal the raw pipeline's
for the same samples and settings. Audio over 30 s is decoded by genai window by window (each window starts
where the previous one's last complete segment ended); its streamer then receives each window's tokens at once,
which is what the progress bar counts. Short audio without timestamps streams token by token.

``generate`` runs in a worker thread holding the pipeline's lock; ``run`` is a generator that yields
``Progress`` while it works and a final ``Result``. Stop (or abandoning the generator) makes the streamer
return ``StreamingStatus.STOP``: genai ends after the current token, or the current window for long audio.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from . import languages
from . import metrics as perf_metrics
from .audio import Audio, AudioError, is_silent
from .errors import UserError
from .subtitles import Segment, segments_from_chunks, words_from_genai

TimestampMode = Literal["off", "segments", "words"]
TIMESTAMP_MODES: tuple[str, ...] = ("off", "segments", "words")
WINDOW_S = 30.0  # Whisper's fixed input window


@dataclass(frozen=True)
class Options:
    """What a request may change; everything else is fixed by the pipeline."""

    language: str | None = None            # a code the model knows; None = detect
    task: Literal["transcribe", "translate"] = "transcribe"
    timestamps: TimestampMode = "off"
    max_new_tokens: int | None = None      # None = the model's generation config decides

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
        return kwargs


@dataclass
class Progress:
    """Where a running transcription is."""

    text: str                 # streamed so far (display only: the final text comes from the result)
    windows: int              # 30 s windows finished (long audio)
    expected_windows: int
    waiting: bool = False     # another request holds the pipeline

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

    def __init__(self, tokenizer: Any, events: "queue.Queue[tuple[str, Any]]", stop: threading.Event,
                 expected_windows: int, per_token: bool) -> None:
        import openvino_genai as ov_genai

        self._status = ov_genai.StreamingStatus
        self._tokenizer = tokenizer
        self._events = events
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
        self._events.put(("progress", Progress(text, self.windows, self.expected)))
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


def run(pipeline: Any, lock: threading.Lock, audio: Audio, options: Options,
        stop: threading.Event | None = None) -> Iterator[Progress | Result]:
    """Transcribe ``audio``: yields ``Progress`` while running, then one ``Result`` (last item)."""
    check_audible(audio)
    stop = stop or threading.Event()
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    expected = expected_windows(audio.seconds)
    # genai streams token by token only for one window without timestamps; otherwise once per window.
    per_token = options.timestamps == "off" and audio.seconds <= WINDOW_S
    streamer = _make_streamer(_Streamer(pipeline.get_tokenizer(), events, stop, expected, per_token))
    samples = audio.samples.tolist()  # genai copies the list into a vector
    kwargs = options.generate_kwargs()

    def work() -> None:
        try:
            if not lock.acquire(blocking=False):
                events.put(("progress", Progress("", 0, expected, waiting=True)))
                lock.acquire()
            try:
                started = time.perf_counter()
                result = pipeline.generate(samples, streamer=streamer, **kwargs)
                events.put(("done", (result, time.perf_counter() - started)))
            finally:
                lock.release()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            events.put(("error", exc))

    worker = threading.Thread(target=work, name="whisper-generate", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = events.get()
            if kind == "progress":
                yield payload
            elif kind == "error":
                raise payload
            else:
                raw, generate_s = payload
                yield _result(raw, generate_s, audio, options, stop.is_set(), streamer.collector)
                return
    finally:
        stop.set()  # a consumer that walked away (closed tab, cancelled request) stops the pipeline too
        worker.join()


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

