"""Long loads on screen: a progress bar with the stage (downloading n/m, exporting, compiling) and the time so far.

A load (download, optimum-intel export, compile) blocks the thread that runs it for up to minutes, and the loader
reports through a ``progress(fraction, message)`` callback. ``follow`` runs the load on a worker thread and lets
the panel's event generator yield a fresh view every ``TICK_S`` (and at each new stage), so the elapsed time keeps
moving while an export prints nothing; the panel shows ``LoadTracker.html()`` in its status line. Every panel uses
this one piece: chat, image, speech and vision differ only in what they yield around it.
"""
from __future__ import annotations

import html
import queue
import re
import threading
import time
from typing import Callable, Generator, TypeVar

T = TypeVar("T")
TICK_S = 0.5  # how often the view of a running load is refreshed (the elapsed seconds move on)

# The loader's messages, first word -> the stage a person reads. Anything else is shown as it came.
_STAGES = (("Downloading LoRA", "downloading a LoRA adapter"), ("Downloading", "downloading"),
           ("Downloaded", "downloaded"), ("Exporting", "exporting to OpenVINO with optimum-intel"),
           ("Recording", "exporting: checking what was written"), ("Compiling", "compiling"))
_ELAPSED = re.compile(r"…?\s*\d+ s$")  # the loader's own "Exporting …… 12 s": the bar shows one clock
_COUNTS = re.compile(r":\s*(\d+/\d+ files.*)$")  # "Downloading repo: 3/7 files · 1.2/4.0 MB"


def stage_of(message: str) -> str:
    """The stage a loader message describes, in a few words ('exporting to OpenVINO …', 'downloading 3/7 files')."""
    message = _ELAPSED.sub("", message.strip()).rstrip("…. ")
    for prefix, stage in _STAGES:
        if message.startswith(prefix):
            counts = _COUNTS.search(message)
            return f"{stage} {counts.group(1)}" if counts else stage
    return message


class LoadTracker:
    """The latest stage and fraction of one load, written by the loader's thread and read by the page's."""

    def __init__(self, what: str) -> None:
        self.what = what  # 'Tiny LLM on CPU': Markdown, the panel's labels
        self.started = time.monotonic()
        self.stage = "starting"
        self.fraction: float | None = None
        self._changed = threading.Event()

    def report(self, fraction: float | None, message: str = "", desc: str | None = None) -> None:
        """A ``demos.core.loader.ProgressFn``; also callable as a ``gr.Progress`` (``desc=``)."""
        self.stage = stage_of(desc if desc is not None else message) or self.stage
        self.fraction = fraction if fraction is None else min(max(float(fraction), 0.0), 1.0)
        self._changed.set()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def html(self) -> str:
        """The status line during the load: a bar (moving when the fraction is unknown), the stage and the clock."""
        value = f' value="{self.fraction:.3f}"' if self.fraction is not None else ""
        return (f'<progress class="load-progress" max="1"{value} style="width:10em;vertical-align:middle"></progress> '
                f"Loading {self.what}: {html.escape(self.stage)}… {self.elapsed:.0f} s")

    def _wait_change(self, timeout: float) -> None:
        self._changed.wait(timeout)
        self._changed.clear()


def follow(what: str, load: Callable[[Callable[[float | None, str], None]], T],
           view: Callable[[LoadTracker], object], tick: float = TICK_S) -> Generator[object, None, T]:
    """Run ``load(progress)`` on a worker thread; yield ``view(tracker)`` at once, at every new stage and every
    ``tick``; return what ``load`` returned (``result = yield from follow(...)``) or raise what it raised.

    Closing the generator (the page went away) leaves the load running to its end: its result lands in the
    pipeline pool for the next request, and an export cut half-way would only have to start again.
    """
    tracker = LoadTracker(what)
    done: queue.Queue = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            done.put((True, load(tracker.report)))
        except BaseException as exc:  # noqa: BLE001 - raised again in the page's thread
            done.put((False, exc))

    threading.Thread(target=work, name="load", daemon=True).start()
    yield view(tracker)
    while True:
        try:
            ok, value = done.get(timeout=0.02)
        except queue.Empty:
            tracker._wait_change(tick)
            if done.empty():
                yield view(tracker)
            continue
        if ok:
            return value
        raise value
