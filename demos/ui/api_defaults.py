"""Trailing parameters a raw HTTP caller of a ``gr.api`` endpoint leaves out take their defaults.

``gradio_client`` fills every defaulted parameter before it sends a call; a raw HTTP client
(``POST /gradio_api/call/chat`` with ``{"data": [...]}``) sends what it wrote, and Gradio 6.31 refuses a short list
with its own text ("didn't receive enough input values … Check if the event handler calls a Javascript function").
So an endpoint that gains a parameter with a default (``/chat``'s structured output, ``/transcribe``'s
``skip_silence``) would break every raw caller written against the shorter signature of DESIGN §6a. Here the missing
values are appended from the function's own defaults; a required one still missing is a message naming it.
"""
from __future__ import annotations

import inspect
from typing import Any

from gradio.components.api_component import Api

from demos.core.errors import UserError


def fill_defaults(block_fn: Any, inputs: list[Any]) -> None:
    """Append, in place, the defaults of the ``gr.api`` parameters ``inputs`` stops short of (UI events: untouched);
    a ``UserError`` naming the required parameters still missing."""
    blocks = block_fn.inputs or []
    if len(inputs) >= len(blocks) or not all(isinstance(block, Api) for block in blocks):
        return
    try:
        params = list(inspect.signature(block_fn.fn).parameters.values())
    except (TypeError, ValueError):
        return  # Gradio's own check speaks then
    missing = params[len(inputs):len(blocks)]
    required = [p.name for p in missing if p.default is inspect.Parameter.empty]
    if required:
        names = ", ".join(p.name for p in params[:len(blocks)])
        raise UserError(f"/{block_fn.api_name} takes ({names}); missing: {', '.join(required)}",
                        param=required[0])
    inputs.extend(p.default for p in missing)
