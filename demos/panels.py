"""Which module builds which panel's tab, and how each panel warms up for the stage.

A panel without its module yet shows what it will do.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .catalog import Entry
from .runtime import PANEL_PIPELINES
from .suite import Suite
from .ui import placeholder


def _module(panel: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"demos.{panel}")
    except ModuleNotFoundError as exc:
        if exc.name != f"demos.{panel}":
            raise
        return None


def build(panel: str, suite: Suite) -> None:
    """Build ``panel``'s tab body from its catalog entries (inside ``gr.Tab``)."""
    entries = suite.catalog.entries(panel)
    module = _module(panel)
    if module is None:
        placeholder(panel, PANEL_PIPELINES[panel], entries)
        return
    module.build(entries, suite)


def warm_up(entry: Entry, suite: Suite) -> None:
    """One generation with the settings the panel shows first, so the audience never waits for a compile."""
    module = _module(entry.panel)
    suite.load(entry)
    if module is not None and hasattr(module, "warm_up"):
        module.warm_up(entry, suite)
