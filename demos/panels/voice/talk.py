"""Talk: one spoken turn of a voice chat. Audio -> Whisper -> the LLM (streaming) -> speech, sentence by sentence
as the answer streams. No Gradio here.

The transcription and the reply are the Speech and Chat panels' own (``demos.core.engines``), so the transcript
equals ``/transcribe``'s and the reply ``/chat``'s. While the reply streams, every sentence that is complete (its end
was followed by space) is handed to a speaking thread at once, so the first sentence is spoken while the model is
still writing the next; the sentences are the ones ``/speak`` makes of the whole reply, so the audio equals it.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from demos.core import engines, serving
from demos.core.audio import SILENCE_PEAK, load
from demos.core.errors import UnknownId, UserError
from demos.core.suite import Suite
from demos.panels.voice import sentences as text_split
from demos.panels.voice.prepare import Ready
from demos.panels.voice.speaker import Queued, Speech, Spoken, figures, speak_one

NOISE_FLATNESS = 0.5  # spectral flatness above which a recording is noise, not a voice (white noise ~0.6, speech <0.3)


class NoSpeech(UserError):
    """Talk heard nothing to answer."""


@dataclass(frozen=True)
class Heard:
    transcript: str
    transcribe_ms: float


@dataclass(frozen=True)
class Writing:
    text: str


@dataclass
class Turn:
    transcript: str
    reply: str
    speech: Speech
    metrics: dict[str, Any] = field(default_factory=dict)


def spectral_flatness(samples: np.ndarray) -> float:
    """Geometric over arithmetic mean of the power spectrum (1 for white noise, near 0 for tones and voices),
    averaged over 32 ms frames that carry sound."""
    frame = 512
    usable = len(samples) // frame * frame
    if usable == 0:
        return 0.0
    frames = samples[:usable].reshape(-1, frame)
    frames = frames[np.abs(frames).max(axis=1) > SILENCE_PEAK]
    if len(frames) == 0:
        return 0.0
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2 + 1e-12
    return float(np.mean(np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)))


def check_models(suite: Suite, chat_model: str, speech_model: str, adapter: str = "", draft: str = "") -> None:
    """Refuse unknown model, adapter or draft ids before anything loads or listens (an ``UnknownId`` naming the
    valid ones): a typo must not cost a voice load and a transcription first."""
    chat = suite.catalog.entry(chat_model, "chat")
    suite.catalog.entry(speech_model, "speech")
    if adapter and adapter not in {a.id for a in chat.adapters}:
        valid = ", ".join(a.id for a in chat.adapters) or "none"
        raise UnknownId(f"model {chat.id!r} has no adapter {adapter!r}; its adapters: {valid}", param="adapter")
    if draft and draft not in {d.id for d in chat.drafts}:
        valid = ", ".join(d.id for d in chat.drafts) or "none"
        raise UnknownId(f"model {chat.id!r} has no draft {draft!r}; its drafts: {valid}", param="draft")


def check_heard(path: str) -> None:
    """Refuse silence and noise before Whisper runs (it would make up words for either)."""
    audio = load(path, 600)
    if float(np.max(np.abs(audio.samples), initial=0.0)) < SILENCE_PEAK:
        raise NoSpeech("No speech heard: the recording is silent; check the microphone and speak again",
                       param="audio")
    if spectral_flatness(audio.samples) > NOISE_FLATNESS:
        raise NoSpeech("No speech heard: the recording sounds like noise only; speak closer to the microphone",
                       param="audio")


def turn(suite: Suite, voice: Ready, audio_path: str, chat_model: str, speech_model: str, history: list[dict],
         max_new_tokens: int, control: serving.Control, adapter: str = "",
         draft: str = "") -> Iterator[Heard | Writing | Queued | Spoken | Turn]:
    """One turn: ``Heard`` (the transcript), ``Writing`` as the reply grows, a ``Spoken`` per sentence, one
    ``Turn``; ``adapter`` and ``draft``: the chat entry's LoRA adapter and draft model ("" = none)."""
    started = time.perf_counter()
    check_heard(audio_path)
    transcript, heard = engines.use(engines.TRANSCRIBE)(suite, speech_model, audio_path, control)
    transcript = transcript.strip()
    if not text_split.speakable(transcript):
        raise NoSpeech("No speech heard in the recording: Whisper found no words; speak again", param="audio")
    transcribe_ms = (time.perf_counter() - started) * 1000
    yield Heard(transcript, transcribe_ms)

    todo: queue.Queue = queue.Queue()   # sentences to speak, then None
    done: queue.Queue = queue.Queue()   # Spoken / Queued / an exception, then None
    speaker = threading.Thread(target=_speak_all, args=(voice, todo, done, control), name="talk-speaker",
                               daemon=True)
    speaker.start()
    sent = 0  # pieces of the reply handed to the speaker
    reply, chat_metrics, count = "", {}, 0
    made: list[tuple[Spoken, float]] = []  # each sentence with the moment the speaker finished it
    try:
        answer = engines.use(engines.REPLY)
        for item in answer(suite, chat_model, transcript, history, max_new_tokens, control, adapter=adapter,
                           draft=draft):
            if isinstance(item, tuple):
                reply, chat_metrics = item
                break
            yield Writing(item)
            complete = text_split.pieces(item)[:-1]
            for piece in complete[sent:]:
                for sentence in text_split.sentence_parts(piece):
                    todo.put(sentence)
                    count += 1
            sent = max(sent, len(complete))
            yield from _drain(done, made, block=False)
        for piece in text_split.pieces(reply)[sent:]:
            for sentence in text_split.sentence_parts(piece):
                todo.put(sentence)
                count += 1
        todo.put(None)
        yield from _drain(done, made, block=True)
    finally:
        todo.put(None)  # an abandoned turn: the speaker ends after its current sentence
    parts = [spoken.samples for spoken, _ in made]
    rate = made[0][0].rate if made else 0
    generate_s = sum(spoken.generate_s for spoken, _ in made)
    first_audio_s = made[0][1] - started if made else None
    first_speech_s = made[0][0].generate_s if made else None
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    speech = Speech(audio, rate or 16000, len(parts), count, len(parts) < count,
                    figures(audio, rate or 16000, generate_s, first_audio_s, len(parts), count))
    metrics = {"transcribe_ms": round(transcribe_ms, 1), "ttft_ms": chat_metrics.get("ttft_ms"),
               "first_sentence_ms": round(first_speech_s * 1000, 1) if first_speech_s is not None else None,
               **{k: v for k, v in speech.metrics.items()}, "chat": chat_metrics, "transcription": heard}
    yield Turn(transcript, reply, speech, metrics)


def _drain(done: queue.Queue, made: list[tuple[Spoken, float]], block: bool) -> Iterator[Spoken | Queued]:
    """What the speaker finished: everything there now, or (``block``) everything until it ends."""
    while True:
        try:
            item = done.get(timeout=serving.WAKE_S) if block else done.get_nowait()
        except queue.Empty:
            if block:
                continue
            return
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, tuple):  # (Spoken, when it was finished)
            made.append(item)
            item = item[0]
        yield item


def _speak_all(voice: Ready, todo: queue.Queue, done: queue.Queue, control: serving.Control) -> None:
    """The speaking thread: each sentence as a job in the voice pipeline's lane, in order, until None or Stop."""
    lane = serving.lane_for(voice.handle.loaded)
    index = 0
    try:
        while True:
            sentence = todo.get()
            if sentence is None or control.stopped:
                return
            outcome = None
            for item in speak_one(voice.handle.pipeline, lane, sentence, voice.embedding, control):
                if isinstance(item, Queued):
                    done.put(item)
                else:
                    outcome = item
            if outcome is None:
                return
            samples, rate, seconds = outcome
            done.put((Spoken(index, 0, sentence, samples, rate, seconds), time.perf_counter()))
            index += 1
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
        done.put(exc)
    finally:
        done.put(None)
