"""How many requests the Gradio queue lets run at once, and the worker threads that carries (DESIGN §5).

Gradio runs the events of one ``concurrency_id`` at most ``concurrency_limit`` at a time. With the limit 1 that
the app once used for every panel, two chat users on two different models waited for each other, and a
minutes-long first-use export (choosing a model starts one) held the chat panel's only slot. Here a panel's
events run many at once, and what runs on a pipeline is decided by that pipeline's own serving lane (or
scheduler): jobs for one model queue there, with their place shown; jobs for another model, or a load, never wait
for them. The per-session limit (``serving.configure``) keeps one visitor from taking every slot.

Every running event may hold a worker thread for as long as it runs (a load blocks one for minutes), so the
thread pool is sized to the sum of the queue's limits plus a reserve: unqueued events (Stop, Clear, the status
lines) always find a thread, and the total stays bounded.
"""
from __future__ import annotations

from typing import Any

PANEL_REQUESTS = 16
"""Requests of one panel (one named ``concurrency_id``: chat, image, vision …) in progress at once: loading,
waiting in a pipeline's lane or running. Past it, Gradio's queue holds them and shows their place."""
QUICK_REQUESTS = 4
"""Each other queued event (code views, small follow-ups): quick, and not worth many threads."""
RESERVE_THREADS = 16
"""Threads left for unqueued events and Gradio's own pre/postprocessing when every queued slot is busy."""


def _named(concurrency_id: Any) -> bool:
    """A panel's shared id (a word) rather than Gradio's default one per event (the function's ``id()``)."""
    return isinstance(concurrency_id, str) and not concurrency_id.isdigit()


def configure(demo: Any) -> int:
    """Set the queue limits of ``demo``'s events; return the ``max_threads`` to launch it with.

    Runs after the Blocks are built and before ``launch``: Gradio creates its per-id queues lazily, from each
    event's ``concurrency_limit``. A limit a panel set itself (a number) is kept; "no limit" (None) is bounded
    too, so that the thread count below is a true bound."""
    limits: dict[Any, int] = {}
    for fn in demo.fns.values():
        if not fn.queue:
            continue
        if fn.concurrency_limit == "default" or fn.concurrency_limit is None:
            fn.concurrency_limit = PANEL_REQUESTS if _named(fn.concurrency_id) else QUICK_REQUESTS
        # Gradio keeps the lowest limit of the events that share an id.
        limits[fn.concurrency_id] = min(limits.get(fn.concurrency_id, fn.concurrency_limit), fn.concurrency_limit)
    return sum(limits.values()) + RESERVE_THREADS
