"""How much work one chat or vision request may ask for: prompt tokens and answer tokens, per catalog entry.

An LLM's prefill grows faster than linearly with the prompt and cannot be interrupted (the streamer is first
called after it), and an answer runs until ``max_new_tokens`` however long that is. So both are bounded before
anything is generated: the prompt by the model's context (``config.json``) and the entry's
``generation.max_prompt_tokens`` (the smaller wins), the answer by ``generation.max_new_tokens_limit`` (default:
the context; a catalog may allow more, for a model that keeps answering past it).

Counting applies the chat template, as ``generate`` does. A text far longer than any limit (more than
``CHARS_PER_TOKEN`` characters per allowed token) is refused by its length alone, without tokenizing it.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demos.core.errors import TooLong, UserError

CHARS_PER_TOKEN = 8
"""No tokenizer of a supported model averages more characters per token than this over a whole chat (English
averages about 4, the tiny test models 2.2), so a text longer than this many characters per allowed token cannot
fit and is refused without the cost of tokenizing it."""

FALLBACK_CONTEXT = 32768
"""The bound for a model whose folder names no context length (the catalog's own limits still apply)."""

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@functools.lru_cache(maxsize=8)
def _tokenizer(model_dir: str) -> Any:
    """A CPU tokenizer for counting prompt tokens (the tokenizer models are small and compile in milliseconds)."""
    import openvino_genai as ov_genai
    return ov_genai.Tokenizer(model_dir)


def count_prompt_tokens(model_dir: Path | str, messages: list[dict[str, str]]) -> int:
    """Tokens the pipeline will see for ``messages``: the chat template applied, as ``generate`` does."""
    import openvino_genai as ov_genai
    tokenizer = _tokenizer(str(model_dir))
    text = tokenizer.apply_chat_template(ov_genai.ChatHistory(messages), add_generation_prompt=True)
    return int(tokenizer.encode(text, add_special_tokens=False).input_ids.get_shape()[1])


@dataclass(frozen=True)
class Limits:
    """The bounds of one entry on one model folder, and where each comes from (for the messages)."""

    title: str
    prompt_tokens: int
    prompt_source: str
    new_tokens: int
    new_tokens_source: str


def group(number: int) -> str:
    """12345678 -> '12 345 678': long numbers a person can read in a message."""
    return f"{number:,}".replace(",", " ")


def model_context(model_dir: Path | str | None) -> int | None:
    """The model's context length from ``config.json`` (the language model's, for a VLM); None when unknown."""
    if model_dir is None:
        return None
    path = Path(model_dir) / "config.json"
    try:
        stat = path.stat()
    except OSError:
        return None
    return _context_of(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _context_of(path: str, mtime_ns: int, size: int) -> int | None:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    for part in (config.get("text_config"), config.get("llm_config"), config):
        if isinstance(part, dict):
            for key in _CONTEXT_KEYS:
                value = part.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None


def limits(title: str, generation: Any, model_dir: Path | str | None) -> Limits:
    """The bounds for an entry's ``generation`` settings; with ``model_dir`` None, only what the catalog says."""
    context = model_context(model_dir)
    if context is None and model_dir is not None:
        context = FALLBACK_CONTEXT
    context_source = "its context length" if model_dir is not None else ""
    prompt, prompt_source = _tighter(context, context_source, generation.max_prompt_tokens,
                                     "models.yaml: generation.max_prompt_tokens")
    if generation.max_new_tokens_limit is not None:  # the catalog's word, even above the context
        new, new_source = generation.max_new_tokens_limit, "models.yaml: generation.max_new_tokens_limit"
    else:
        new, new_source = _tighter(context, context_source, None, "")
    return Limits(title, prompt, prompt_source, new, new_source)


def _tighter(context: int | None, context_source: str, catalog: int | None, catalog_source: str) -> tuple[int, str]:
    """The smaller of the two bounds that are set (a huge number when neither is)."""
    if catalog is not None and (context is None or catalog <= context):
        return catalog, catalog_source
    if context is not None:
        return context, context_source
    return 1 << 62, ""


def check_max_new_tokens(value: int, bounds: Limits) -> None:
    """Refuse an answer length over the entry's limit, naming the parameter and the limit. Before the model
    folder is known there may be no limit yet (no catalog bound): the check with the folder decides then."""
    if bounds.new_tokens_source and value > bounds.new_tokens:
        raise UserError(f"max_new_tokens {group(value)} is more than {bounds.title} allows: at most "
                        f"{group(bounds.new_tokens)} ({bounds.new_tokens_source}); ask for fewer new tokens.",
                        param="max_new_tokens", kind="limit")


def check_prompt(messages: list[dict[str, str]], model_dir: Path | str | None, bounds: Limits,
                 param: str = "prompt", what: str = "this chat") -> int | None:
    """Refuse ``messages`` longer than ``bounds`` allows; return their token count (None: not counted yet).

    Without ``model_dir`` (the model not fetched yet) only the character bound is checked.
    """
    chars = sum(len(m.get("content") or "") for m in messages)
    if chars > bounds.prompt_tokens * CHARS_PER_TOKEN:
        raise TooLong(f"{what} is {group(chars)} characters, far too long: {bounds.title} takes at most "
                      f"{group(bounds.prompt_tokens)} tokens ({bounds.prompt_source}), which no text over "
                      f"{group(bounds.prompt_tokens * CHARS_PER_TOKEN)} characters fits in: shorten it or clear "
                      "the chat.", param=param)
    if model_dir is None:
        return None
    tokens = count_prompt_tokens(model_dir, messages)
    if tokens > bounds.prompt_tokens:
        raise TooLong(f"{what} is {group(tokens)} tokens; {bounds.title} takes at most {group(bounds.prompt_tokens)}"
                      f" ({bounds.prompt_source}): shorten it or clear the chat.", param=param)
    return tokens
