"""The Chat panel's streamed reply as one plain call, for other panels (Talk in the Voice panel, through
``demos.core.engines``): the engine calls ``/chat`` makes with its defaults (no adapter, no draft, greedy), so the
reply is the same. No Gradio."""
from __future__ import annotations

from typing import Any, Iterator

from demos.core import serving
from demos.core.catalog import ChatEntry
from demos.core.errors import check_text
from demos.core.suite import Suite
from demos.panels.chat.engine import Reply, default_settings, open_pipeline, stream_reply, to_messages


def reply(suite: Suite, model: str, prompt: str, history: list[dict], max_new_tokens: int,
          control: serving.Control) -> Iterator[str | tuple[str, dict[str, Any]]]:
    """The reply text as it grows, then (reply, metrics)."""
    entry: ChatEntry = suite.catalog.entry(model, "chat")  # type: ignore[assignment]
    prompt = check_text(prompt, "prompt").strip()
    settings = default_settings(entry, max_new_tokens=max_new_tokens, temperature=0.0)
    messages = to_messages(history, entry.system_prompt, prompt)
    opened = open_pipeline(suite, entry, "", settings, messages)
    for item in stream_reply(opened, messages, settings, control):
        if isinstance(item, Reply):
            yield item.text, {"model": entry.title, **item.metrics}
        else:
            yield item
