"""A transcription request made ready: its options checked against the model, its pipeline loaded; and the figures
of its result. What the UI, ``/transcribe`` and the OpenAI-compatible ``/v1/audio/*`` routes share. No Gradio here.
"""
from __future__ import annotations

from typing import Any

from demos.core import metrics as perf_metrics
from demos.core.catalog import SpeechEntry
from demos.core.errors import TooLong, UserError, check_text
from demos.core.suite import Handle, Suite
from demos.panels.speech import languages
from demos.panels.speech.transcriber import MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS, Options, Result, check_request


def options(entry: SpeechEntry, language: str, task: str, timestamps: str, codes: list[str],
            initial_prompt: str = "", hotwords: str = "", skip_silence: bool = False) -> Options:
    generation = entry.generation
    task = (task or generation.task).strip().lower()
    # max_new_tokens is passed only when models.yaml sets it: otherwise the model's own config decides, so the
    # app makes exactly the call a user of the raw pipeline makes.
    max_new = generation.max_new_tokens if "max_new_tokens" in generation.model_fields_set else None
    code = languages.resolve(language or generation.language, codes)
    return Options(language=code, task=task, timestamps=timestamps or "off",  # type: ignore[arg-type]
                   max_new_tokens=max_new, initial_prompt=initial_prompt or None, hotwords=hotwords or None,
                   skip_silence=skip_silence)


_PROMPT_NAMES = {"initial_prompt": "the initial prompt", "hotwords": "the hotwords"}


def prompt_text(param: str, value: Any) -> str:
    """An initial prompt or hotwords as sent: text (None and blank mean none), never a number or a list."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"{param} must be text, not {type(value).__name__}", param=param)
    return check_text(value, param) if value.strip() else ""


def check_prompt_length(initial_prompt: str, hotwords: str) -> None:
    """Characters first (before any model is loaded): genai fails outright on a prompt near its 448-token context
    ("max_length should be bigger than number of prompt tokens"), and Whisper was trained on at most 223."""
    for param, text in (("initial_prompt", initial_prompt), ("hotwords", hotwords)):
        if len(text or "") > MAX_PROMPT_CHARS:
            raise TooLong(f"{_PROMPT_NAMES[param]} {'are' if param == 'hotwords' else 'is'} {len(text):,} characters "
                          "long; Whisper reads at most "
                          f"{MAX_PROMPT_TOKENS} tokens of prompt: keep it under {MAX_PROMPT_CHARS:,} characters",
                          param=param)


def check_prompt_tokens(handle: Handle, initial_prompt: str, hotwords: str) -> None:
    """The initial prompt and the hotwords together within Whisper's 223 prompt tokens, counted by the model's own
    tokenizer (a model server counts for itself)."""
    if not (initial_prompt or hotwords) or getattr(handle.pipeline, "remote", False):
        return
    tokenizer = handle.pipeline.get_tokenizer()
    counts = {param: int(tokenizer.encode(text, add_special_tokens=False).input_ids.shape[-1])
              for param, text in (("initial_prompt", initial_prompt), ("hotwords", hotwords)) if text}
    total = sum(counts.values())
    if total > MAX_PROMPT_TOKENS:
        what = " and ".join(_PROMPT_NAMES[param] for param in counts)
        verb = "make" if len(counts) > 1 else "are" if "hotwords" in counts else "is"
        raise TooLong(f"{what} {verb} {total} tokens; Whisper reads at most "
                      f"{MAX_PROMPT_TOKENS} tokens of prompt: shorten {'them' if len(counts) > 1 else 'it'}",
                      param=max(counts, key=counts.__getitem__))


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
            progress=None, initial_prompt: str = "", hotwords: str = "",
            skip_silence: bool = False) -> tuple[Handle, Options]:
    """Refuse what the request gets wrong (before loading where it can), load the pipeline, resolve the options."""
    if timestamps not in ("off", "segments", "words"):
        raise UserError(f"timestamps must be off, segments or words, not {timestamps!r}", param="timestamps")
    if (task or "transcribe").strip().lower() not in ("transcribe", "translate"):
        raise UserError(f"task must be 'transcribe' or 'translate', not {task!r}", param="task")
    check_prompt_length(initial_prompt, hotwords)
    handle = load(suite, entry, device, timestamps, progress)
    check_prompt_tokens(handle, initial_prompt, hotwords)
    codes, multilingual = model_codes(handle)
    # A model server gets the whole audio and decides for itself (this app's /v1 skips silence by default): skipping
    # here too would hand it clips whose joins its own detector reads differently.
    remote = getattr(handle.pipeline, "remote", False)
    resolved = options(entry, language, task, timestamps, codes, initial_prompt, hotwords,
                       skip_silence and not remote)
    check_request(resolved, multilingual)
    return handle, resolved


def result_metrics(result: Result, handle: Handle, warning: str) -> dict[str, Any]:
    metrics = perf_metrics.with_load(result.metrics, handle.loaded.load_seconds, handle.built_now)
    metrics["device"] = handle.loaded.key.device
    if warning:
        metrics["warning"] = warning
    return metrics
