"""Which module builds which panel's tab (``demos/<panel>.py``), and how each panel warms up for the stage."""
from __future__ import annotations

import importlib
from types import ModuleType

from demos.core.catalog import Entry
from demos.core.suite import Suite


def _module(panel: str) -> ModuleType:
    return importlib.import_module(f"demos.panels.{panel}.layout")


def build(panel: str, suite: Suite) -> None:
    """Build ``panel``'s tab body from its catalog entries (inside ``gr.Tab``)."""
    if panel == "voice":
        offer_engines()
    _module(panel).build(suite.catalog.entries(panel), suite)


def offer_engines() -> None:
    """What Talk (Voice panel) uses of the Speech and Chat panels (``demos.core.engines``): the UI floor may import
    every panel; panels may not import each other."""
    from demos.core import engines
    from demos.panels.chat import service as chat_service
    from demos.panels.speech import service as speech_service
    engines.offer(engines.TRANSCRIBE, speech_service.transcribe)
    engines.offer(engines.REPLY, chat_service.reply)


def warm_up(entry: Entry, suite: Suite) -> None:
    """One generation with the settings the panel shows first, so the audience never waits for a compile."""
    suite.load(entry)
    _module(entry.panel).warm_up(entry, suite)
