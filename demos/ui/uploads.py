"""Files a client may make the server read: only what Gradio uploaded (issue 11).

Gradio checks a file value only when it carries ``meta: {"_type": "gradio.FileData"}``; a bare
``{"path": "/any/file"}`` (or a plain string) reached the handlers, which then read server files and, through their
different errors ("no such file", "not an audio file"), told the client which paths exist. Here every file value
of every event is checked before Gradio's own processing: its path, with symlinks and ``..`` resolved, must lie in
Gradio's upload folder. Everything the app hands out (generated images, subtitles) is copied there by Gradio
before a client sees its path, so a result sent back is accepted too. A refusal says the same whatever the path.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import pydantic
from gradio import utils as gradio_utils
from gradio.components.api_component import Api

from demos.ui.api_defaults import fill_defaults
from demos.ui.endpoint_types import check_types
from demos.core.errors import UserError

log = logging.getLogger("demos")

REFUSAL = "send it as a file upload (gradio_client.handle_file(path)); paths on the server are not accepted"


def refusal(what: str) -> str:
    """The one message for a file value that is not an upload (the same whether or not the path exists)."""
    return f"{what}: {REFUSAL}"


def upload_folder() -> Path:
    """Where Gradio keeps uploads (and the copies of results it serves), symlinks resolved."""
    return Path(os.path.realpath(gradio_utils.get_upload_folder()))


def is_upload(path: str) -> bool:
    """True when ``path``, once symlinks and ``..`` are resolved, is a file inside the upload folder."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return False
    folder = upload_folder()
    return real != folder and real.is_relative_to(folder)


def checked_upload(path: Any, what: str) -> str:
    """``path`` if it is an upload; otherwise the refusal, as a ``UserError`` about input ``what``."""
    if isinstance(path, str) and path and is_upload(path):
        return path
    raise UserError(refusal(what), param=what)


# -------------------------------------------------------------------------------------------------------------
# The gate in front of every event


def _paths(value: Any) -> Iterator[Any]:
    """Every ``path`` of a dict inside ``value`` (walked without recursion: client JSON can nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item:
                yield item["path"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _allowed(path: Any) -> bool:
    return path is None or (isinstance(path, str) and is_upload(path))  # None: no file at all


def _names(block_fn: Any) -> list[str]:
    """A name per input: the function's parameter for ``gr.api`` inputs (in order), else the component's label."""
    try:
        params = [name for name, *_ in gradio_utils.get_function_params(block_fn.fn)]
    except (TypeError, ValueError):
        params = []
    names = []
    for index, block in enumerate(block_fn.inputs):
        param = params[index] if index < len(params) else f"input {index + 1}"
        label = getattr(block, "label", None)
        names.append(param if isinstance(block, Api) or not label else str(label))
    return names


def _needs_meta(block: Any, value: Any) -> bool:
    """True when a component's own model refuses ``value`` for lacking Gradio's file marker (a plain string or a
    bare dict where a file goes): Gradio would answer with pydantic's text, this app with its refusal."""
    model = getattr(block, "data_model", None)
    if model is None or value is None:
        return False
    try:
        model.model_validate(value, context={"validate_meta": True})
    except pydantic.ValidationError as exc:
        return any("'meta' field" in str(error.get("msg", "")) for error in exc.errors())
    return False


def refuse_server_files(block_fn: Any, inputs: list[Any]) -> None:
    """Raise the refusal for the first input that names a file outside the upload folder, or that puts a plain
    string or a bare dict where a component takes a file."""
    names = _names(block_fn)
    for index, (block, value) in enumerate(zip(block_fn.inputs, inputs)):
        if getattr(block, "stateful", False):
            continue  # gr.State: Gradio uses the server's value and ignores what the client sent
        outside = any(not _allowed(path) for path in _paths(value))
        if outside or (index not in block_fn.component_prop_inputs and _needs_meta(block, value)):
            log.warning("refused a file that is not an upload in %s (%s)", block_fn.api_name or block_fn.name,
                        names[index])
            raise gr.Error(refusal(names[index]), duration=None, print_exception=False)


def refuse_wrong_types(block_fn: Any, inputs: list[Any]) -> None:
    """For ``gr.api`` endpoints: refuse a value of the wrong JSON type (a dict for a prompt) by its parameter."""
    if not block_fn.inputs or not all(isinstance(block, Api) for block in block_fn.inputs):
        return  # UI events: their components shape the values already
    try:
        check_types(block_fn.fn, _names(block_fn), inputs)
    except UserError as exc:
        log.info("user error in %s: %s", block_fn.api_name or block_fn.name, exc)
        raise gr.Error(str(exc), duration=None, print_exception=False) from None


def _fill_defaults(block_fn: Any, inputs: list[Any]) -> None:
    try:
        fill_defaults(block_fn, inputs)
    except UserError as exc:
        log.info("user error in %s: %s", block_fn.api_name or block_fn.name, exc)
        raise gr.Error(str(exc), duration=None, print_exception=False) from None


class Blocks(gr.Blocks):
    """``gr.Blocks`` whose every event checks its inputs first (browser, gradio_client, raw HTTP alike): API
    endpoints' trailing parameters left out take their defaults, file values must be uploads, and API endpoints'
    text, list and object parameters must have those types."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call: bool = False):  # type: ignore[override]
        if not explicit_call:  # an explicit call is Python code of the app itself, not a client
            _fill_defaults(block_fn, inputs)
            refuse_server_files(block_fn, inputs)
            refuse_wrong_types(block_fn, inputs)
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)
