"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` for speech entries, on the speech panel's
engine (``speech.prepare`` → ``transcriber.run``, one ``WhisperPipeline.generate`` as a ``serving`` job), so the
text equals ``/transcribe``'s; answers as OpenAI's ``response_format``s: json, text, srt, vtt, verbose_json."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from demos.api import bodies
from demos.api import catalog as api_catalog
from demos.api.streaming import finish
from demos.core import files, serving
from demos.core.audio import load
from demos.core.catalog import SpeechEntry
from demos.core.errors import TooLarge, TooLong, UserError, check_text
from demos.core.suite import Suite
from demos.panels.speech import prepare as speech_prepare
from demos.panels.speech import subtitles
from demos.panels.speech.transcriber import Result, check_audible, find_speech, run

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
FIELDS = ("model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
          "timestamp_granularities", "chunking_strategy", "stream", "include[]", "hotwords", "skip_silence")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise UserError(f"{name} must be a form field, not a file", param=name)
    return check_text(str(value or ""), name).strip()


def _save(upload: Any) -> Path:
    """The uploaded file in a fresh private folder, under its own (sanitised) name, which messages then show."""
    if not isinstance(upload, UploadFile):
        raise UserError("file is missing: send the audio as the multipart field 'file'", param="file")
    limit = files.limits().audio_mb
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", Path(upload.filename or "audio").name)[:120].strip(" .") or "audio"
    path = files.run_folder("api-audio") / name
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    size = path.stat().st_size
    if size > limit * files.MB:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise TooLarge(f"{name} is {files.megabytes(size)}; this server takes audio and video files up to {limit:g} MB: "
                       "cut it shorter or compress it (e.g. as mp3 or opus)", param="file")
    return path


def _transcribe(suite: Suite, fields: dict[str, Any], upload: Any, task: str, control: serving.Control,
                saved: list[Path]) -> Response:
    entry: SpeechEntry = api_catalog.entry_for(suite, fields["model"], f"/v1/audio/{task}s")  # type: ignore
    response_format = fields["response_format"] or "json"
    if response_format not in FORMATS:
        raise UserError(f"response_format {response_format!r} is not one of {', '.join(FORMATS)}",
                        param="response_format")
    unknown = [g for g in fields["granularities"] if g not in GRANULARITIES]
    if unknown:
        raise UserError(f"timestamp_granularities: {unknown[0]!r} is not one of {', '.join(GRANULARITIES)}",
                        param="timestamp_granularities")
    words = "word" in fields["granularities"]
    timestamps = "words" if words else "segments" if response_format in ("srt", "vtt", "verbose_json") else "off"
    skip_silence = _switch(fields["skip_silence"], "skip_silence", default=True)
    _prompt_length(fields["prompt"], fields["hotwords"])
    path = _save(upload)
    saved.append(path)
    decoded = load(path, entry.generation.max_audio_seconds)
    check_audible(decoded)
    try:
        handle, options = speech_prepare.prepare(
            suite, entry, "", fields["language"], "translate" if task == "translation" else "transcribe", timestamps,
            initial_prompt=fields["prompt"], hotwords=fields["hotwords"], skip_silence=skip_silence)
    except TooLong as error:
        raise _as_prompt(error) from None
    speech = find_speech(decoded, options)
    *_, result = run(handle.pipeline, serving.lane_for(handle.loaded), decoded, options, control, speech)
    metrics = speech_prepare.result_metrics(result, handle, decoded.warning)
    return _answer(result, response_format, decoded.seconds, "translate" if task == "translation" else "transcribe",
                   metrics)


def _switch(value: str, name: str, default: bool) -> bool:
    """A multipart form's true/false field ("" = ``default``)."""
    text = value.strip().lower()
    if not text:
        return default
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise UserError(f"{name} must be true or false, not {value[:40]!r}", param=name)


def _as_prompt(error: TooLong) -> TooLong:
    """OpenAI's field for Whisper's initial prompt is ``prompt``: the error names it so."""
    if error.param == "initial_prompt":
        return TooLong(error.message.replace("the initial prompt", "prompt", 1), param="prompt")
    return error


def _prompt_length(prompt: str, hotwords: str) -> None:
    try:
        speech_prepare.check_prompt_length(prompt, hotwords)
    except TooLong as error:
        raise _as_prompt(error) from None


def _answer(result: Result, response_format: str, seconds: float, task: str, metrics: dict[str, Any]) -> Response:
    if response_format == "text":
        return PlainTextResponse(result.text)
    if response_format == "srt":
        return PlainTextResponse(subtitles.to_srt(result.segments), media_type="application/x-subrip")
    if response_format == "vtt":
        return PlainTextResponse(subtitles.to_vtt(result.segments), media_type="text/vtt")
    if response_format == "json":
        return JSONResponse({"text": result.text, "metrics": metrics})
    verbose: dict[str, Any] = {
        "task": task, "language": result.language, "duration": round(seconds, 3), "text": result.text,
        "segments": [{"id": index, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
                      "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
                     for index, s in enumerate(result.segments)],
        "metrics": metrics}
    if result.words:
        verbose["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end} for w in result.words]
    return JSONResponse(verbose)


async def handle(suite: Suite, request: Request, task: str) -> Response:
    """``task``: "transcription" or "translation"."""
    form = await bodies.form(request, "file", "the audio", max_files=1, max_fields=len(FIELDS) + 8)
    saved: list[Path] = []
    try:
        fields = {name: _field(form, name) for name in ("model", "language", "prompt", "response_format", "hotwords",
                                                        "skip_silence")}
        fields["granularities"] = [str(v) for v in form.getlist("timestamp_granularities[]") +
                                   form.getlist("timestamp_granularities")]
        control = serving.Control()
        return await finish(request, control, lambda: _transcribe(suite, fields, form.get("file"), task, control,
                                                                  saved))
    finally:
        await form.close()
        for path in saved:
            shutil.rmtree(path.parent, ignore_errors=True)
