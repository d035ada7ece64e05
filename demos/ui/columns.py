"""Columns and rows that follow the app's layout rules (``demos.ui.style``): results first on phones, settings
folded on stage. A panel marks its structure with them; the CSS does the rest, so each panel keeps one layout."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from demos.core.suite import Suite


def results(**column: Any) -> gr.Column:
    """The column with what a run produces: above the settings on phones, the whole width on stage."""
    return gr.Column(elem_classes=["panel-results"], **column)


def side(**column: Any) -> gr.Column:
    """A column of a run's inputs followed by settings, beside the results. On phones it dissolves: what comes up
    to and including its ``run_row`` stays above the results, everything after it goes below them."""
    return gr.Column(elem_classes=["panel-side"], **column)


def run_row(**row: Any) -> gr.Row:
    """The row with a side column's Run/Generate button (see ``side``)."""
    return gr.Row(elem_classes=["panel-run"], **row)


@contextmanager
def settings(suite: Suite, **column: Any) -> Iterator[None]:
    """A column of settings beside the results; in presenter mode one closed "Settings" accordion under them, so the
    stage shows the result at full width and the presenter opens the settings only when the talk needs them."""
    with gr.Column(elem_classes=["panel-settings"], **column):
        if getattr(suite, "presenter", False):
            with gr.Accordion("Settings", open=False, elem_classes=["stage-settings"]):
                yield
        else:
            yield
