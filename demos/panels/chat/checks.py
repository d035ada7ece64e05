"""Checks the chat panel runs before it asks the runtime to compile anything.

Two mistakes are expensive to discover by building a pipeline: a speculative-decoding draft whose tokenizer is
not the main model's (OpenVINO GenAI compiles both models, then fails with "Tokenizers for draft and main models
are different!"), and, on NPU, a chat longer than the prompt length the pipeline is compiled for (the NPU
pipeline would otherwise fail or cut the chat). Both are answered here from the model folders' files.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from demos.core.errors import TooLong, UserError

# Files that define what text a token id stands for in an OpenVINO model folder.
_OV_TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_tokenizer.bin")
# The sentence OpenVINO GenAI itself encodes to compare two tokenizers (speculative_decoding_impl.cpp).
_GENAI_TEST_STRING = "Could you please tell me something about OpenVINO.GenAI?"


class DraftMismatch(UserError):
    """A draft model that cannot assist the main model because its tokenizer differs."""

    kind = "draft"


class PromptTooLong(TooLong):
    """A chat longer than an NPU pipeline's compiled prompt length."""


# ------------------------------------------------------------------------------------------------------------
# Draft tokenizer


def _digest(folder: Path) -> str | None:
    """Hash of the folder's OpenVINO tokenizer files, or None when one is missing."""
    digest = hashlib.sha256()
    for name in _OV_TOKENIZER_FILES:
        path = folder / name
        if not path.is_file():
            return None
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _hf_vocab(folder: Path) -> tuple[dict[str, Any], dict[str, int]] | None:
    """(vocabulary, special token ids) read from ``tokenizer.json`` and configs, or None without tokenizer.json."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    vocab = model.get("vocab")
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]; the id is the position
        vocab = {str(item[0]) if isinstance(item, list) else str(item): i for i, item in enumerate(vocab)}
    vocab = dict(vocab or {})
    for token in data.get("added_tokens") or []:
        vocab[token["content"]] = token["id"]
    specials: dict[str, int] = {}
    for name in ("config.json", "generation_config.json"):
        config = folder / name
        if config.is_file():
            values = json.loads(config.read_text(encoding="utf-8"))
            for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
                if isinstance(values.get(key), int):
                    specials.setdefault(key, values[key])
    return vocab, specials


def _genai_signature(folder: Path) -> tuple:
    """What OpenVINO GenAI compares: the encoded test sentence and the bos/eos/pad ids (tokenizer models only)."""
    import openvino_genai as ov_genai
    tokenizer = ov_genai.Tokenizer(str(folder))
    ids = tokenizer.encode(_GENAI_TEST_STRING).input_ids.data.tolist()
    return ids, tokenizer.get_bos_token_id(), tokenizer.get_eos_token_id(), tokenizer.get_pad_token_id()


@functools.lru_cache(maxsize=64)
def _tokenizer_difference(main_dir: str, draft_dir: str) -> str:
    """'' when the two folders tokenize alike, else a short description of how they differ."""
    main, draft = Path(main_dir), Path(draft_dir)
    main_digest, draft_digest = _digest(main), _digest(draft)
    if main_digest is not None and main_digest == draft_digest:
        return ""  # byte-identical tokenizer models: the common case for a draft exported with its main model
    main_vocab, draft_vocab = _hf_vocab(main), _hf_vocab(draft)
    if main_vocab is not None and draft_vocab is not None:
        if main_vocab[0] != draft_vocab[0]:
            if len(main_vocab[0]) == len(draft_vocab[0]):
                return "the vocabularies have the same size but other tokens"
            return f"the vocabularies differ, {len(main_vocab[0])} vs {len(draft_vocab[0])} tokens"
        shared = set(main_vocab[1]) & set(draft_vocab[1])
        differing = sorted(k for k in shared if main_vocab[1][k] != draft_vocab[1][k])
        if differing:
            return f"the special tokens differ: {', '.join(differing)}"
        return ""
    # No tokenizer.json to read: ask OpenVINO GenAI's own question, on the small tokenizer models only.
    if _genai_signature(main) != _genai_signature(draft):
        return "they encode the same sentence differently"
    return ""


def check_draft_tokenizer(main_dir: Path | str, draft_dir: Path | str, draft_id: str, model_id: str) -> None:
    """Raise ``DraftMismatch`` when the draft cannot assist the main model (before either is compiled)."""
    difference = _tokenizer_difference(str(main_dir), str(draft_dir))
    if difference:
        raise DraftMismatch(
            f"draft {draft_id!r} cannot assist {model_id!r}: its tokenizer is not the main model's: {difference}. "
            "Speculative decoding needs a draft trained with the same tokenizer, such as the model's FastDraft; "
            "choose another draft or turn speculative decoding off.")


# ------------------------------------------------------------------------------------------------------------
# NPU prompt length


def check_prompt_length(tokens: int, max_prompt_len: int, device: str) -> None:
    """Raise ``PromptTooLong`` when the whole chat does not fit the NPU pipeline's prompt length."""
    if tokens > max_prompt_len:
        raise PromptTooLong(
            f"this chat is {tokens} tokens long, but the {device} pipeline takes at most {max_prompt_len} prompt "
            "tokens (models.yaml: npu.max_prompt_len). Clear the chat (or shorten the system prompt) and ask "
            "again; nothing was cut.")
