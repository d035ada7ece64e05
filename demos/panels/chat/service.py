"""The Chat panel's streamed reply as one plain call, for other panels (Talk in the Voice panel, through
``demos.core.engines``): the engine calls ``/chat`` makes with its defaults (no adapter, no draft, greedy), so the
reply is the same. No Gradio."""
from __future__ import annotations

from typing import Any, Iterator

from demos.core import serving
from demos.core.catalog import ChatEntry
from demos.core.errors import UnknownId, check_text
from demos.core.suite import Suite
from demos.panels.chat.engine import Reply, default_settings, open_pipeline, stream_reply, to_messages
from demos.panels.chat.structured import split_thinking


def reply(suite: Suite, model: str, prompt: str, history: list[dict], max_new_tokens: int,
          control: serving.Control, adapter: str = "", draft: str = "") -> Iterator[str | tuple[str, dict[str, Any]]]:
    """The reply text as it grows, then (reply, metrics); ``adapter``: one of the entry's LoRA adapters at its
    catalog alpha ("" = none), ``draft``: a draft model for speculative decoding ("" = none)."""
    entry: ChatEntry = suite.catalog.entry(model, "chat")  # type: ignore[assignment]
    prompt = check_text(prompt, "prompt").strip()
    adapters = tuple((a.id, a.alpha) for a in entry.adapters if a.id == adapter)
    if adapter and not adapters:
        valid = ", ".join(a.id for a in entry.adapters) or "none"
        raise UnknownId(f"model {entry.id!r} has no adapter {adapter!r}; its adapters: {valid}", param="adapter")
    settings = default_settings(entry, max_new_tokens=max_new_tokens, temperature=0.0, adapters=adapters,
                                draft=draft)
    messages = to_messages(history, entry.system_prompt, prompt)
    opened = open_pipeline(suite, entry, "", settings, messages)
    for item in stream_reply(opened, messages, settings, control):
        if isinstance(item, Reply):
            named = {"model": entry.title, "adapters": " + ".join(a for a, _ in adapters) or "none",
                     "draft": draft or "none"}
            yield item.text, {**named, **item.metrics}
        elif isinstance(item, str):  # the answer only, as the final Reply.text: a reasoning model's thinking is
            yield split_thinking(item)[1]  # never spoken, and sentences counted on it match the reply's
        else:
            yield item
