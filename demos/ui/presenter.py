"""Presenter mode (``python app.py --presenter``): everything warm before the audience arrives.

The first inference of a pipeline compiles kernels and allocates buffers, so a cold first answer on stage is
several times slower than the second. Presenter mode loads the entries marked ``presenter: true`` (or the first
entry of each panel), runs short warm-up generations with the settings the panel will show, then goes offline so
a flaky venue network cannot break anything. The page gets large fonts, no footer and no per-browser run history.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from demos.core.catalog import Catalog, Entry
from demos.core.suite import Suite
from demos.ui import style
from demos.ui.public_paths import is_loopback

log = logging.getLogger("demos.ui.presenter")


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
    """Extra ``launch()`` arguments: the app's CSS (``demos.ui.style``), and a kiosk page in presenter mode."""
    if not presenter:
        return {"css": style.css(False)}
    return {"css": style.css(True), "footer_links": [], "run_history": False}


def lan_address() -> str | None:
    """This machine's address on the local network (for phones in the audience), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks the outgoing interface
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


# ---------------------------------------------------------------------------------------------------------------
# Who may change what is loaded on stage

KEY_HEADER = "x-presenter-key"   # for scripts: gradio_client.Client(url, headers={KEY_HEADER: key})
KEY_QUERY = "presenter_key"      # for a browser: http://host:port/?presenter_key=KEY (sent back as the Referer)


@dataclass(frozen=True)
class StageControl:
    """On stage the audience's phones share the app with the presenter: fetching, loading and unloading models
    (the Models tab) would let any of them evict or unpin what the talk needs. Those actions answer only the
    presenter: a browser on this machine (loopback, unless a share tunnel makes every visitor look local), or a
    request carrying the key printed at start."""

    trust_loopback: bool = True
    key: str = field(default_factory=lambda: secrets.token_urlsafe(9))

    def allows(self, host: str | None, headers: Mapping[str, str]) -> bool:
        if self.trust_loopback and host and is_loopback(host):
            return True
        offered = headers.get(KEY_HEADER) or _query_key(headers.get("referer") or "")
        return bool(offered) and hmac.compare_digest(offered.encode(), self.key.encode())


def _query_key(referer: str) -> str:
    try:
        return parse_qs(urlsplit(referer).query).get(KEY_QUERY, [""])[0]
    except ValueError:
        return ""


REFUSED = ("in presenter mode only the presenter can fetch, load or unload models: use the presenting machine's "
           f"browser, or open the page with ?{KEY_QUERY}=<the key printed at start>")


def may_control(suite: Suite, request: Any) -> bool:
    """Whether ``request`` (a ``gr.Request`` or None) may change what is loaded: always outside presenter mode."""
    control: StageControl | None = getattr(suite, "stage_control", None)
    if control is None:
        return True
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    return control.allows(getattr(client, "host", None), headers)
