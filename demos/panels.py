"""Which module builds which panel's tab. A panel without its module yet shows what it will do."""
from __future__ import annotations

import importlib

from .runtime import PANEL_PIPELINES
from .suite import Suite
from .ui import placeholder


def build(panel: str, suite: Suite) -> None:
    """Build ``panel``'s tab body from its catalog entries (inside ``gr.Tab``)."""
    entries = suite.catalog.entries(panel)
    try:
        module = importlib.import_module(f"demos.{panel}")
    except ModuleNotFoundError as exc:
        if exc.name != f"demos.{panel}":
            raise
        placeholder(panel, PANEL_PIPELINES[panel], entries)
        return
    module.build(entries, suite)
