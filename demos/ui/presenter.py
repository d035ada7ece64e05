"""Presenter mode (``python app.py --presenter``): everything warm before the audience arrives.

The first inference of a pipeline compiles kernels and allocates buffers, so a cold first answer on stage is
several times slower than the second. Presenter mode loads the entries marked ``presenter: true`` (or the first
entry of each panel), runs short warm-up generations with the settings the panel will show, then goes offline so
a flaky venue network cannot break anything. The page gets large fonts, no footer and no per-browser run history.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from demos.core.catalog import Catalog, Entry
from demos.core.suite import Suite

log = logging.getLogger("demos.ui.presenter")

# Readable from the back of a room; the Compare views and examples are what the audience looks at.
CSS = """
.gradio-container { font-size: 18px !important; max-width: 100% !important; }
.gradio-container h1 { font-size: 2.2em !important; }
.gradio-container button, .gradio-container textarea, .gradio-container input { font-size: 1.05em !important; }
.gradio-container .message, .gradio-container .prose { font-size: 1.15em !important; line-height: 1.5 !important; }
.metrics-card { font-size: 1.1em !important; }
"""


@dataclass(frozen=True)
class WarmUp:
    """One entry made ready for the stage."""

    entry: Entry
    load_seconds: float
    warm_up_seconds: float


def stage_entries(catalog: Catalog) -> list[Entry]:
    """The entries marked ``presenter: true``; for a panel with none marked, its first entry."""
    chosen = []
    for panel in catalog.panels():
        entries = catalog.entries(panel)
        marked = [e for e in entries if e.presenter]
        chosen += marked or entries[:1]
    return chosen


def prepare_stage(suite: Suite, warm_up: Callable[[Entry, Suite], None],
                  report: Callable[[str], None] = print) -> list[WarmUp]:
    """Load and warm every stage entry, then switch the app offline. Raises on the first failure: a stage
    machine that cannot load its demo must say so before the talk, not during it."""
    suite.presenter = True
    suite.stage_entries = stage_entries(suite.catalog)
    # Evicting a warm pipeline would defeat the point: room for all while warming (a chat entry warms up to three),
    # then they are pinned and the configured bound applies to whatever else is loaded on stage.
    configured = suite.runtime.max_pipelines
    suite.runtime.max_pipelines = max(configured, 4 * len(suite.stage_entries))
    done = []
    for entry in suite.stage_entries:
        started = time.perf_counter()
        suite.load(entry, progress=lambda fraction, message: report(f"  {entry.id}: {message}"))
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        warm_up(entry, suite)
        warmed = time.perf_counter() - started
        # The warm-up may build more pipelines (chat: the one with the draft); their compile is in its time.
        report(f"{entry.id}: loaded in {loaded:.1f} s, warmed up in {warmed:.1f} s")
        done.append(WarmUp(entry, loaded, warmed))
    suite.runtime.pinned.update(suite.runtime.loaded_keys())
    suite.runtime.max_pipelines = configured
    go_offline(suite)
    return done


def go_offline(suite: Suite) -> None:
    """From now on only the cache is used (downloads cannot stall the show)."""
    suite.loader.offline = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub is a requirement
        pass


def launch_options(presenter: bool) -> dict[str, Any]:
    """Extra ``launch()`` arguments: a kiosk page for presenter mode, Gradio's defaults otherwise."""
    if not presenter:
        return {}
    return {"css": CSS, "footer_links": [], "run_history": False}


def lan_address() -> str | None:
    """This machine's address on the local network (for phones in the audience), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks the outgoing interface
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address
