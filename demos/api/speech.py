"""``POST /v1/audio/speech`` for voice entries, on the voice panel's engine (``prepare.ready`` -> ``speaker.speak``,
one ``Text2SpeechPipeline.generate`` per sentence as ``serving`` jobs), so the audio equals ``/speak``'s. Answers the
WAV itself, as OpenAI does; ``response_format`` wav (or pcm: the same samples as raw 16-bit little-endian)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from demos.api import catalog as api_catalog
from demos.api.bodies import Body, parse
from demos.api.streaming import finish
from demos.core import serving
from demos.core.errors import UserError
from demos.core.suite import Suite
from demos.panels.voice import prepare, wav
from demos.panels.voice.speaker import speak

ROUTE = "/v1/audio/speech"
FORMATS = ("wav", "pcm")


class SpeechRequest(Body):
    model: str = ""
    input: str | None = None
    voice: str = ""
    response_format: str | None = None
    speed: float | None = None
    instructions: str | None = None


def _speak(suite: Suite, body: SpeechRequest, control: serving.Control) -> Response:
    entry = api_catalog.entry_for(suite, body.model, ROUTE)
    response_format = body.response_format or "wav"
    if response_format not in FORMATS:
        raise UserError(f"response_format {response_format!r} is not served: use one of {', '.join(FORMATS)}",
                        param="response_format")
    if body.speed not in (None, 1, 1.0):
        raise UserError("speed is not supported by SpeechT5 models: leave it out (or send 1.0)", param="speed")
    if body.input is None:
        raise UserError("input is missing: send the text to speak as 'input'", param="input")
    ready = prepare.ready(suite, entry.id, body.input, body.voice, text_param="input")
    *_, speech = speak(ready.handle.pipeline, serving.lane_for(ready.handle.loaded), ready.sentences,
                       ready.embedding, control)
    if speech.stopped:
        raise UserError("the speech was stopped before it was finished; send the request again", param="input")
    if response_format == "pcm":
        return Response(wav.pcm16(speech.samples).tobytes(), media_type="audio/pcm",
                        headers={"X-Sample-Rate": str(speech.rate)})
    return Response(wav.to_bytes(speech.samples, speech.rate), media_type="audio/wav")


async def handle(suite: Suite, request: Request) -> Response:
    body = parse(SpeechRequest, await request.body())
    control = serving.Control()
    return await finish(request, control, lambda: _speak(suite, body, control))
