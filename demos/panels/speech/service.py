"""The Speech panel's transcription as one plain call, for other panels (Talk in the Voice panel, through
``demos.core.engines``): the same steps as ``/transcribe`` with its defaults (no timestamps, silence skipped), so the
text is the same. No Gradio."""
from __future__ import annotations

from typing import Any

from demos.core import serving
from demos.core.audio import load
from demos.core.catalog import SpeechEntry
from demos.core.suite import Suite
from demos.panels.speech import prepare as speech_prepare
from demos.panels.speech.transcriber import NoSpeech, check_audible, run


def transcribe(suite: Suite, model: str, path: str, control: serving.Control) -> tuple[str, dict[str, Any]]:
    """(text, metrics) of the audio file ``path`` with the speech entry ``model``, language detected."""
    entry: SpeechEntry = suite.catalog.entry(model, "speech")  # type: ignore[assignment]
    decoded = load(path, entry.generation.max_audio_seconds)
    check_audible(decoded)
    handle, options = speech_prepare.prepare(suite, entry, "", "", "", "off", skip_silence=True)
    try:
        *_, result = run(handle.pipeline, serving.lane_for(handle.loaded), decoded, options, control)
    except NoSpeech:  # the detector heard no voice: say it as a conversation would, not as the Speech tab does
        raise NoSpeech("No speech heard in the recording: speak again, closer to the microphone",
                       param="audio") from None
    return result.text, speech_prepare.result_metrics(result, handle, decoded.warning)
