"""What one panel offers another, by name. No Gradio here.

Panels never import each other (DESIGN §2), yet Talk in the Voice panel needs the Speech panel's transcription and
the Chat panel's streamed reply, with exactly their behaviour (``/voice_chat``'s transcript must equal
``/transcribe``'s, its reply ``/chat``'s). So each of those panels has a narrow, Gradio-free function for it, and
the UI floor, which may import every panel, offers them here when it builds the app (``demos.ui.panels``); the
Voice panel uses them by name.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from demos.core.errors import UserError

TRANSCRIBE = "speech.transcribe"  # (suite, model, path, control) -> (text, metrics)
# (suite, model, prompt, history, max_new_tokens, control, adapter="", draft="") -> Iterator[str | (text, metrics)]
REPLY = "chat.reply"

_offered: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


def offer(name: str, fn: Callable[..., Any]) -> None:
    with _lock:
        _offered[name] = fn


def use(name: str) -> Callable[..., Any]:
    """The function offered as ``name``; a ``UserError`` when this app was built without the panel that offers it."""
    with _lock:
        fn = _offered.get(name)
    if fn is None:
        panel = name.split(".")[0]
        raise UserError(f"Talk needs the {panel} panel's engine, which this app was built without (start it without "
                        "--only)", param="model")
    return fn
