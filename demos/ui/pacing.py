"""How often a streamed answer is sent to the browser: rarely enough that the page stays responsive.

Every update of a Gradio generator event costs the browser far more than the server: the frontend refreshes the
status of every output, re-renders the chat's Markdown and scrolls it. Measured with a tiny model at ~2000 tokens/s
(bench/bench_ui_pacing.py, a shared 2-core machine): with an update every 40 ms (``serving.UPDATE_INTERVAL_S``) a
Compare kept Chromium's main thread busy 83 % of the time and a Stop click waited up to 2 s; paced as below, 50 %.
The cost of one update grows with the length of the text, so the UI sends at most one update per
``interval(text)``: 0.1 s for a short answer, growing with its length to 0.4 s. The API routes stream at the
serving throttle; only the page is paced.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
MIN_S = 0.1
MAX_S = 0.4
CHARS_PER_S = 10_000  # the interval grows by 0.1 s per 1000 characters of answer, from MIN_S to MAX_S


def interval(chars: int) -> float:
    """Seconds between two updates of an answer ``chars`` long."""
    return min(MAX_S, max(MIN_S, chars / CHARS_PER_S))


def paced(items: Iterable[T], size: Callable[[T], int], passes: Callable[[T], bool] = lambda item: False,
          clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """``items`` thinned for the browser: the first one, then at most one per ``interval(size(item))``, always
    the last one (the final answer) and every item for which ``passes`` is true (a queue place, a final reply).

    An item held back is not lost: the next one sent carries the whole text so far.
    """
    last_sent = float("-inf")
    held: list[T] = []
    for item in items:
        now = clock()
        if passes(item) or now - last_sent >= interval(size(item)):
            held.clear()
            last_sent = now
            yield item
        else:
            held[:] = [item]
    if held:
        yield held[0]
