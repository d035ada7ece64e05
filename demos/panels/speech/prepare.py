"""A transcription request made ready: its options checked against the model, its pipeline loaded; and the figures
of its result. What the UI, ``/transcribe`` and the OpenAI-compatible ``/v1/audio/*`` routes share. No Gradio here.
"""
from __future__ import annotations

from typing import Any

from demos.core import metrics as perf_metrics
from demos.core.catalog import SpeechEntry
from demos.core.errors import UserError
from demos.core.suite import Handle, Suite
from demos.panels.speech import languages
from demos.panels.speech.transcriber import MAX_PROMPT_CHARS, Options, Result, check_request


def options(entry: SpeechEntry, language: str, task: str, timestamps: str, codes: list[str],
            initial_prompt: str = "") -> Options:
    generation = entry.generation
    task = (task or generation.task).strip().lower()
    # max_new_tokens is passed only when models.yaml sets it: otherwise the model's own config decides, so the
    # app makes exactly the call a user of the raw pipeline makes.
    max_new = generation.max_new_tokens if "max_new_tokens" in generation.model_fields_set else None
    code = languages.resolve(language or generation.language, codes)
    return Options(language=code, task=task, timestamps=timestamps or "off",  # type: ignore[arg-type]
                   max_new_tokens=max_new, initial_prompt=initial_prompt or None)


def load(suite: Suite, entry: SpeechEntry, device: str, timestamps: str, progress=None) -> Handle:
    """The pipeline for these settings: word timestamps need one built for them (a separate runtime key)."""
    extra = {"word_timestamps": True} if timestamps == "words" else None
    kwargs = {"progress": progress} if progress else {}
    return suite.load(entry, device or None, extra_properties=extra, **kwargs)


def model_codes(handle: Handle) -> tuple[list[str], bool]:
    if getattr(handle.pipeline, "remote", False):  # a model server (demos.core.remote): it knows its languages
        return list(languages.WHISPER_LANGUAGES), True
    config = handle.pipeline.get_generation_config()
    return languages.model_languages(dict(config.lang_to_id)), bool(config.is_multilingual)


def prepare(suite: Suite, entry: SpeechEntry, device: str, language: str, task: str, timestamps: str,
            progress=None, initial_prompt: str = "") -> tuple[Handle, Options]:
    """Refuse what the request gets wrong (before loading where it can), load the pipeline, resolve the options."""
    if timestamps not in ("off", "segments", "words"):
        raise UserError(f"timestamps must be off, segments or words, not {timestamps!r}", param="timestamps")
    if (task or "transcribe").strip().lower() not in ("transcribe", "translate"):
        raise UserError(f"task must be 'transcribe' or 'translate', not {task!r}", param="task")
    if len(initial_prompt or "") > MAX_PROMPT_CHARS:
        raise UserError(f"the prompt is {len(initial_prompt)} characters long; Whisper reads at most about 224 tokens "
                        f"of it: keep it under {MAX_PROMPT_CHARS} characters", param="prompt")
    handle = load(suite, entry, device, timestamps, progress)
    codes, multilingual = model_codes(handle)
    resolved = options(entry, language, task, timestamps, codes, initial_prompt)
    check_request(resolved, multilingual)
    return handle, resolved


def result_metrics(result: Result, handle: Handle, warning: str) -> dict[str, Any]:
    metrics = perf_metrics.with_load(result.metrics, handle.loaded.load_seconds, handle.built_now)
    metrics["device"] = handle.loaded.key.device
    if warning:
        metrics["warning"] = warning
    return metrics
