"""The Speech panel's transcription as one plain call, for other panels (Talk in the Voice panel, through
``demos.core.engines``): the same steps as ``/transcribe`` without timestamps, so the text is the same. No Gradio."""
from __future__ import annotations

from typing import Any

from demos.core import serving
from demos.core.audio import load
from demos.core.catalog import SpeechEntry
from demos.core.suite import Suite
from demos.panels.speech import prepare as speech_prepare
from demos.panels.speech.transcriber import check_audible, run


def transcribe(suite: Suite, model: str, path: str, control: serving.Control) -> tuple[str, dict[str, Any]]:
    """(text, metrics) of the audio file ``path`` with the speech entry ``model``, language detected."""
    entry: SpeechEntry = suite.catalog.entry(model, "speech")  # type: ignore[assignment]
    decoded = load(path, entry.generation.max_audio_seconds)
    check_audible(decoded)
    handle, options = speech_prepare.prepare(suite, entry, "", "", "", "off")
    *_, result = run(handle.pipeline, serving.lane_for(handle.loaded), decoded, options, control)
    return result.text, speech_prepare.result_metrics(result, handle, decoded.warning)
