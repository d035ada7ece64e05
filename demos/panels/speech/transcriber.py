"""Run a WhisperPipeline on prepared audio: stream the text, report windows, stop on request, collect results.

One ``generate`` call covers the whole audio, exactly as a direct call would, so results equal the raw pipeline's
for the same samples and settings. Audio over 30 s is decoded by genai window by window (each window starts
where the previous one's last complete segment ended); its streamer then receives each window's tokens at once,
which is what the progress bar counts. Short audio without timestamps streams token by token.

``generate`` runs as a ``serving`` job in the pipeline's lane (holding its lock); ``run`` is a generator that
yields ``Progress`` while it works and a final ``Result``. Stop (or abandoning the generator) makes the streamer
return ``StreamingStatus.STOP``: genai ends after the current token, or the current window for long audio; a run
stopped before it gets the pipeline never starts.

With ``Options.skip_silence`` a voice-activity detector (``demos.core.vad``, Silero VAD on OpenVINO) runs first:
the speech spans are gathered into one shorter clip, which the ``generate`` call decodes instead (fewer 30 s
windows, nothing for Whisper to hallucinate into), and segment and word times are mapped back onto the original
timeline. Audio in which it finds no speech is refused with ``NoSpeech`` instead of transcribed.
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
from demos.core import vad
from demos.core.audio import Audio, AudioError, is_silent
from demos.core.errors import UserError
from demos.panels.speech.subtitles import Segment, segments_from_chunks, words_from_genai

TimestampMode = Literal["off", "segments", "words"]
TIMESTAMP_MODES: tuple[str, ...] = ("off", "segments", "words")
WINDOW_S = 30.0  # Whisper's fixed input window
MAX_PROMPT_CHARS = 1000  # Whisper reads ~224 prompt tokens; a far longer one fails in genai ("max_length ...")
MAX_PROMPT_TOKENS = 223  # Whisper's context is 448 tokens, half of it for the prompt (openai/whisper keeps 223)

log = logging.getLogger("demos.panels.speech")


@dataclass(frozen=True)
class Options:
    """What a request may change; everything else is fixed by the pipeline."""

    language: str | None = None            # a code the model knows; None = detect
    task: Literal["transcribe", "translate"] = "transcribe"
    timestamps: TimestampMode = "off"
    max_new_tokens: int | None = None      # None = the model's generation config decides
    initial_prompt: str | None = None      # text the speech continues (names, spelling, style); not echoed
    hotwords: str | None = None            # words to favour (names, jargon), given to Whisper as prompt tokens
    skip_silence: bool = False             # find speech first (Silero VAD) and transcribe only that

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
        if self.hotwords:
            kwargs["hotwords"] = self.hotwords
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
    speech: vad.Speech | None = None  # what the voice-activity detector found (None: it did not run)


class NoSpeech(UserError):
    """The voice-activity detector found no speech: transcribing would only make words up."""


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


def find_speech(audio: Audio, options: Options) -> vad.Speech | None:
    """Where ``audio`` holds speech, when ``options.skip_silence`` asks (None otherwise); ``NoSpeech`` if nowhere.

    Runs in the caller's thread before the job is queued: it needs no Whisper pipeline."""
    if not options.skip_silence:
        return None
    speech = vad.find_speech(audio.samples)
    if not speech.found:
        raise NoSpeech(f"no speech found in the {audio.seconds:.1f} s of audio (the voice-activity detector heard "
                       "only silence or noise), so nothing was transcribed; if it does hold speech, turn off "
                       "'Skip silence' (skip_silence=False) to transcribe all of it", param="audio")
    return speech


def speech_note(speech: vad.Speech | None) -> str:
    """What the detector did, for a status line: 'skipped 4.2 s of silence' ('' when it did not run)."""
    if speech is None:
        return ""
    if speech.note:
        return speech.note
    if not speech.skips:
        return "no silence to skip"
    return f"skipped {speech.silence_s:.1f} s of silence"


def run(pipeline: Any, lane: serving.Lane, audio: Audio, options: Options,
        stop: "threading.Event | serving.Control | None" = None,
        speech: vad.Speech | None = None) -> Iterator[Progress | Result]:
    """Transcribe ``audio`` in ``lane`` (the pipeline's): yields ``Progress`` while running, then one ``Result``.

    With ``options.skip_silence``, only the speech is decoded: ``speech`` from ``find_speech`` (found here when not
    given; ``NoSpeech`` when there is none). A run stopped before it gets the pipeline yields an empty stopped
    ``Result`` without figures."""
    check_audible(audio)
    control = serving.Control.of(stop)
    if options.skip_silence and speech is None:
        speech = find_speech(audio, options)
    heard = speech.gather(audio.samples) if speech is not None else audio.samples
    heard_s = len(heard) / vad.SAMPLE_RATE
    expected = expected_windows(heard_s)
    # genai streams token by token only for one window without timestamps; otherwise once per window.
    per_token = options.timestamps == "off" and heard_s <= WINDOW_S
    samples = heard.tolist()  # genai copies the list into a vector
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
                    yield Result("", [], [], options.language or "", True, {"stopped_after_windows": 0},
                                 speech)
                    return
                raw, generate_s, collector = event.result
                yield _result(raw, generate_s, audio, options, control.stopped, collector, speech, heard_s)
                return


def _on_original_timeline(segments: list[Segment], speech: vad.Speech | None) -> list[Segment]:
    """Times in the gathered speech -> times in the uploaded audio (unchanged when nothing was skipped)."""
    if speech is None or not speech.skips:
        return segments
    return [Segment(round(speech.to_original(s.start), 3), round(speech.to_original(s.end, end=True), 3), s.text)
            for s in segments]


def _result(raw: Any, generate_s: float, audio: Audio, options: Options, stopped: bool,
            collector: _Streamer, speech: vad.Speech | None = None, heard_s: float | None = None) -> Result:
    text = raw.texts[0] if raw.texts else ""
    heard_s = audio.seconds if heard_s is None else heard_s
    segments = segments_from_chunks(raw.chunks or [], heard_s) if options.timestamps != "off" else []
    words = words_from_genai(raw.words or [], heard_s, text) if options.timestamps == "words" else []
    segments, words = _on_original_timeline(segments, speech), _on_original_timeline(words, speech)
    vad_s = speech.vad_s if speech is not None else 0.0
    processing_s = audio.decode_s + vad_s + generate_s
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
    if speech is not None and not speech.note:
        figures.update(vad_ms=vad_s * 1000, speech_s=speech.speech_s, silence_skipped_s=speech.silence_s)
    elif speech is not None:
        figures["vad"] = speech.note
    if stopped:
        figures["stopped_after_windows"] = collector.windows
    metrics = perf_metrics.build(figures)  # the load is the panel's to add: it holds the handle
    return Result(text, segments, words, figures["language"], stopped, metrics, speech)

