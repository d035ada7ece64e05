"""Text -> the sentences it is spoken in. No Gradio here.

Long text is spoken sentence by sentence: the first sentence plays while the next are made, Stop ends after the
current one, and each call stays short for SpeechT5 (its text positions are bounded, and every new output length
compiles once). A sentence ends at . ! ? … (and their CJK forms) followed by space, or at a line break; a sentence
longer than ``MAX_SENTENCE_CHARS`` is cut at a comma or semicolon, else between words.
"""
from __future__ import annotations

import re

from demos.core.errors import TooLong, UserError, check_text

MAX_SENTENCE_CHARS = 300
_ENDS = re.compile(r"(?<=[.!?…。！？])\s+|\n+")
_PAUSES = re.compile(r"(?<=[,;:，；])\s+")


def speakable(text: str) -> bool:
    """Whether ``text`` holds anything a voice can say (a letter or a digit)."""
    return any(c.isalnum() for c in text)


def split(text: str) -> list[str]:
    """The speakable sentences of ``text``, in order (pieces with no letter or digit are left out)."""
    return [part for piece in pieces(text) for part in sentence_parts(piece)]


def pieces(text: str) -> list[str]:
    """``text`` cut at sentence ends. In text that is still growing (a streamed answer) every piece but the last is
    final: its end was followed by space, and what comes later cannot change it."""
    return _ENDS.split(text)


def sentence_parts(piece: str) -> list[str]:
    """One piece of ``pieces`` as the sentences spoken for it (none when it has nothing speakable)."""
    sentence = " ".join(piece.split())
    return _shorter(sentence) if speakable(sentence) else []


def _shorter(sentence: str) -> list[str]:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return [sentence]
    parts: list[str] = []
    for clause in _PAUSES.split(sentence):
        while len(clause) > MAX_SENTENCE_CHARS:
            cut = clause.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut if cut > 0 else MAX_SENTENCE_CHARS
            parts.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if parts and len(parts[-1]) + len(clause) + 1 <= MAX_SENTENCE_CHARS:
            parts[-1] = f"{parts[-1]} {clause}"
        elif clause:
            parts.append(clause)
    return [p for p in parts if speakable(p)]


def checked(text: object, max_chars: int, param: str = "text") -> list[str]:
    """The sentences of a request's ``text``; a ``UserError`` for empty text, text over ``max_chars`` (the limit is
    said) and text with nothing to speak."""
    if text is not None and not isinstance(text, str):
        raise UserError(f"{param} must be a string, not {type(text).__name__}", param=param)
    text = check_text(text or "", param)
    if not text.strip():
        raise UserError(f"{param} is empty: type what the voice should say", param=param)
    if len(text) > max_chars:
        raise TooLong(f"{param} is {len(text)} characters long; this model speaks at most {max_chars} characters per "
                      "request (generation.max_chars in models.yaml): shorten it or split it", param=param)
    sentences = split(text)
    if not sentences:
        raise UserError(f"{param} has nothing to speak (no letters or digits): type words or numbers", param=param)
    return sentences
