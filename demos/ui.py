"""Widgets and helpers every panel shares: pickers, progress, errors, metrics and code views."""
from __future__ import annotations

import logging
from typing import Any, Callable

import gradio as gr

from . import metrics as perf_metrics
from .catalog import Entry
from .loader import LoaderError, ProgressFn
from .lora import AdapterFormatError
from .runtime import DeviceError
from .suite import Handle, Suite

log = logging.getLogger("demos")


def format_bytes(size: int | None) -> str:
    if size is None:
        return "–"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def model_picker(entries: list[Entry], label: str = "Model", **kwargs: Any) -> gr.Dropdown:
    choices = [(entry.title, entry.id) for entry in entries]
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, label=label, **kwargs)


def device_picker(devices: list[str], default: str, label: str = "Device", **kwargs: Any) -> gr.Dropdown:
    value = default if default in devices or default.split(".")[0] in devices else devices[0]
    return gr.Dropdown(choices=devices, value=value, label=label, **kwargs)


def gradio_progress(progress: gr.Progress) -> ProgressFn:
    """Adapt a ``gr.Progress`` to the loader's ``progress(fraction, message)`` callback."""
    def report(fraction: float | None, message: str) -> None:
        progress(fraction if fraction is not None else None, desc=message)
    return report


_USER_ERRORS = (LoaderError, DeviceError, AdapterFormatError, KeyError, ValueError)


def user_error(exc: BaseException) -> gr.Error:
    """A ``gr.Error`` a person can act on. KeyError's repr quotes are stripped; unknown failures are logged."""
    if isinstance(exc, KeyError) and exc.args:
        message = str(exc.args[0])
    elif isinstance(exc, _USER_ERRORS):
        message = str(exc)
    else:
        log.exception("unexpected failure", exc_info=exc)
        message = f"{type(exc).__name__}: {exc}"
    return gr.Error(message, duration=None)


def guarded(fn: Callable) -> Callable:
    """Wrap an event handler so expected failures reach the browser as readable ``gr.Error`` messages."""
    import functools
    import inspect

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:  # noqa: BLE001 - turned into a message for the user
                raise user_error(exc) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a message for the user
            raise user_error(exc) from None
    return wrapper


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A compact one-line card: '**TTFT** 35 ms · **Throughput** 41.2 tokens/s · …' (``demos.metrics``' labels)."""
    return perf_metrics.markdown(metrics)


def metrics_card(**kwargs: Any) -> gr.Markdown:
    """Where a panel shows the figures of its last result."""
    return gr.Markdown(elem_classes=["metrics-card"], **kwargs)


def code_view(open: bool = False) -> tuple[gr.Code, gr.Code]:  # noqa: A002 - mirrors gr.Accordion(open=)
    """'Show code': the Python and C++ lines that reproduce the current settings, in one accordion."""
    with gr.Accordion("Show code", open=open):
        with gr.Tab("Python"):
            python = gr.Code(language="python", interactive=False, show_label=False)
        with gr.Tab("C++"):
            cpp = gr.Code(language="cpp", interactive=False, show_label=False)
    return python, cpp


def entry_for(suite: Suite, panel: str, entry_id: str) -> Entry:
    """The ``panel`` entry called ``entry_id``; KeyError listing the panel's ids otherwise (also for '')."""
    if not entry_id:
        valid = ", ".join(e.id for e in suite.catalog.entries(panel))
        raise KeyError(f"choose a model; valid ids: {valid}")
    return suite.catalog.entry(entry_id, panel)


def load_note(handle: Handle) -> str:
    """'' for a pipeline that was already live, else what the load cost (shown once, with the first answer)."""
    if not handle.built_now:
        return ""
    return f"Loaded {handle.loaded.key.device} pipeline in {handle.loaded.load_seconds:.1f} s (first use)"
