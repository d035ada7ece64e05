"""A text-to-speech request made ready: text and voice checked (before anything is loaded), pipeline loaded; and
the figures and file of its result. What the Voice tab, ``/speak``, Talk and ``/v1/audio/speech`` share. No Gradio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from demos.core import files, voices
from demos.core import metrics as perf_metrics
from demos.core.catalog import VoiceEntry
from demos.core.errors import UnknownId, UserError
from demos.core.suite import Handle, Suite, no_progress
from demos.panels.voice import sentences as text_split
from demos.panels.voice import wav
from demos.panels.voice.speaker import Speech

PANEL = "voice"


@dataclass(frozen=True)
class Ready:
    """What one request speaks with."""

    entry: VoiceEntry
    handle: Handle
    sentences: list[str]
    embedding: np.ndarray | None
    voice: str  # the voice's label ("Default (built-in)" for none)


def entry_for(suite: Suite, model: Any) -> VoiceEntry:
    if not isinstance(model, str) or not model:
        valid = ", ".join(e.id for e in suite.catalog.entries(PANEL)) or "none in this catalog"
        raise UnknownId(f"model is missing: name a voice model; valid ids: {valid}", param="model")
    return suite.catalog.entry(model, PANEL)  # type: ignore[return-value]


def voice_label(entry: VoiceEntry, voice_id: str) -> str:
    voice = voices.find(entry, voice_id)
    return voice.title if voice is not None else "Default (built-in)"


def check(suite: Suite, model: Any, text: Any, voice: Any,
          text_param: str = "text") -> tuple[VoiceEntry, list[str], np.ndarray | None]:
    """Everything about a request that can be refused before a model is fetched or compiled."""
    entry = entry_for(suite, model)
    if voice is not None and not isinstance(voice, str):
        raise UserError(f"voice must be a voice id (a string), not {type(voice).__name__}", param="voice")
    sentences = text_split.checked(text, entry.generation.max_chars, text_param)
    return entry, sentences, voices.embedding(suite, entry, (voice or "").strip())


def ready(suite: Suite, model: Any, text: Any, voice: Any = "", device: Any = "", progress=no_progress,
          text_param: str = "text") -> Ready:
    entry, sentences, embedding = check(suite, model, text, voice, text_param)
    if device is not None and not isinstance(device, str):
        raise UserError(f"device must be a device name such as CPU, not {type(device).__name__}", param="device")
    handle = suite.load(entry, device or None, progress=progress)
    return Ready(entry, handle, sentences, embedding, voice_label(entry, (voice or "").strip()))


def open_voice(suite: Suite, model: Any, voice: Any = "", device: Any = "", progress=no_progress) -> Ready:
    """The voice alone, checked and loaded (Talk: what it will say is not known yet)."""
    entry = entry_for(suite, model)
    if voice is not None and not isinstance(voice, str):
        raise UserError(f"voice must be a voice id (a string), not {type(voice).__name__}", param="voice")
    embedding = voices.embedding(suite, entry, (voice or "").strip())
    handle = suite.load(entry, device or None, progress=progress)
    return Ready(entry, handle, [], embedding, voice_label(entry, (voice or "").strip()))


def result_metrics(speech: Speech, request: Ready) -> dict[str, Any]:
    """The figures of a finished request, with what produced it first (model, voice, device) and the load once."""
    named = {"model": request.entry.title, "voice": request.voice, **speech.metrics,
             "device": request.handle.loaded.key.device}
    if speech.stopped:
        named["stopped"] = True
    return perf_metrics.with_load(named, request.handle.loaded.load_seconds, request.handle.built_now)


def save(speech: Speech, stem: str = "speech") -> Path:
    """The speech as a WAV in a fresh folder of the app's temp folder (swept as it ages)."""
    return wav.write(files.run_folder("voice") / f"{stem}.wav", speech.samples, speech.rate or 16000)
