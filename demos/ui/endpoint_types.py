"""The JSON types an API endpoint takes, checked against its signature before the endpoint runs.

``gr.api`` endpoints receive whatever JSON a client sends: a dict where the prompt goes, a number for the system
prompt, a string for ``history``. Handlers written for the annotated types then fail with Python's own text
("'dict' object has no attribute 'strip'"). Each parameter annotated ``str``, ``list`` or ``dict`` is checked
here, once for every endpoint, and a wrong one is refused with its name and the type it takes. Numbers and
flags are checked by the handlers themselves (``demos.core.checks``: NaN, bounds); files by ``demos.ui.uploads``.
"""
from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Callable

from demos.core.errors import UserError

_KINDS = {str: "text", list: "a list", dict: "an object ({...})"}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _accepted(annotation: Any) -> tuple[type, ...] | None:
    """The JSON container types an annotation admits (None: not checked here, e.g. numbers, files, Any)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        members = [_accepted(arg) for arg in typing.get_args(annotation) if arg is not type(None)]
        if any(m is None for m in members):
            return None
        return tuple(t for m in members for t in m)  # type: ignore[union-attr]
    base = origin or annotation
    return (base,) if base in _KINDS else None


@functools.lru_cache(maxsize=256)  # per endpoint function: resolving type hints on every request costs ~0.1 ms
def expected_types(fn: Callable) -> dict[str, tuple[type, ...]]:
    """Parameter name -> the JSON types it takes, for the parameters of ``fn`` that are text, lists or objects."""
    target = inspect.unwrap(fn)
    try:
        hints = typing.get_type_hints(target)
    except (NameError, TypeError):  # an annotation that cannot be resolved: check nothing rather than guess
        return {}
    return {name: kinds for name, hint in hints.items() if name != "return" and (kinds := _accepted(hint))}


def check_types(fn: Callable, names: list[str], values: list[Any]) -> None:
    """``UserError`` naming the first parameter whose value is not of a type it takes (None always passes: the
    endpoint's default)."""
    expected = expected_types(fn)
    for name, value in zip(names, values):
        kinds = expected.get(name)
        if kinds is None or value is None or isinstance(value, kinds):
            continue
        wanted = " or ".join(_KINDS[k] for k in kinds)
        raise UserError(f"{name} must be {wanted}, not {_describe(value)}", param=name)
