"""Widgets and helpers every panel shares: pickers, progress, errors, metrics and code views."""
from __future__ import annotations

import contextvars
import logging
import types
from typing import Any, Callable, TypeVar

import gradio as gr

from demos.core import metrics as perf_metrics
from demos.core.catalog import Entry
from demos.core.checks import finite
from demos.core.errors import UnknownId, UserError
from demos.core.loader import ProgressFn
from demos.core.suite import Handle, Suite

log = logging.getLogger("demos")
C = TypeVar("C", bound=gr.components.Component)


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


def numbers_only(component: C, bounds_checked_by_handler: bool = False) -> C:
    """``component`` (a ``gr.Number`` or ``gr.Slider``) refusing NaN, infinity and text with its label named.

    ``bounds_checked_by_handler``: the component's minimum and maximum only bound the browser's arrows and slider;
    a typed value outside them reaches the handler, which says what to change in the panel's words (Gradio's own
    check answers "Value -64 is less than minimum value 0." before the handler can run, once per event that
    reads the component, and leaves the panel's status line as it was).

    Gradio's own preprocess lets NaN through a Slider's bounds (every comparison with NaN is False), fails on it
    in ``gr.Number(precision=0)``, and answers text with its dump of the event's components and Python's
    error; a ``gr.Error`` raised in preprocess reaches the user as it is. (The instance's preprocess is wrapped
    rather than the class subclassed: Gradio writes a .pyi stub next to every module defining a component.)
    """
    component.preprocess = types.MethodType(_numbers_only_preprocess, component)  # type: ignore[method-assign]
    component.bounds_checked_by_handler = bounds_checked_by_handler  # type: ignore[attr-defined]
    return component


def _numbers_only_preprocess(component: Any, payload: Any) -> Any:
    # A method bound to the component: a per-session deep copy of it rebinds to the copy (bounds updated there).
    if payload is not None:
        try:
            finite(component.label or "the number", payload)
        except UserError as exc:
            raise gr.Error(str(exc), duration=None) from None
        if getattr(component, "bounds_checked_by_handler", False):
            return gr.Number.round_to_precision(payload, component.precision)
    return type(component).preprocess(component, payload)


def gradio_progress(progress: gr.Progress) -> ProgressFn:
    """Adapt a ``gr.Progress`` to the loader's ``progress(fraction, message)`` callback.

    ``gr.Progress`` finds its event through context variables, which threads do not inherit: huggingface_hub
    reports a download from its worker threads, where a bare call was silently dropped. Each report runs in (a copy
    of) the context of the handler that made this callback; a copy, because one context cannot be entered by two
    threads at once."""
    context = contextvars.copy_context()

    def report(fraction: float | None, message: str) -> None:
        context.copy().run(progress, fraction if fraction is not None else None, desc=message)
    return report


FAILED = "an internal error (details in the app's log)"


def user_error(exc: BaseException, what: str = "the request") -> gr.Error:
    """The ``gr.Error`` to raise for ``exc`` (DESIGN §4), logged once; ``what`` names the action for the log and
    the short failure message.

    A ``UserError`` (or a ``gr.Error`` a handler raised on purpose) is shown as it is and gets one log line; anything
    else, bare ``KeyError``/``ValueError``/``RuntimeError`` included, is a bug or a failure of the machine: its
    traceback goes to the log and the user reads a short message, never Python's or OpenVINO's exception text.
    Gradio prints the traceback of every ``gr.Error`` unless ``print_exception`` is off, so it is always off here.
    """
    if isinstance(exc, gr.Error):
        log.info("user error in %s: %s", what, exc.message)
        exc.print_exception = False
        return exc
    if isinstance(exc, UserError):
        log.info("user error in %s: %s", what, exc)
        return gr.Error(str(exc), duration=None, print_exception=False)
    log.error("%s failed", what, exc_info=exc)
    return gr.Error(f"{what} failed: {FAILED}", duration=None, print_exception=False)


def guarded(fn: Callable) -> Callable:
    """Wrap an event handler so every failure reaches the browser through ``user_error`` (logged once)."""
    import functools
    import inspect

    what = fn.__name__.strip("_").replace("_", " ")
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted into a user message or a logged failure
                raise user_error(exc, what) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted into a user message or a logged failure
            raise user_error(exc, what) from None
    return wrapper


def reporting(fn: Callable, status: Callable[[str], Any]) -> Callable:
    """``guarded`` for a generator event handler with a status line: on failure it first yields ``status(message)``
    (the update that puts the message in the panel's status line and leaves every other output as it is), then
    raises the ``gr.Error`` (the toast). Pair it with ``keep_outputs_on_error`` on the event (DESIGN §9)."""
    import functools

    what = fn.__name__.strip("_").replace("_", " ")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            yield from fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted into a user message or a logged failure
            error = user_error(exc, what)
            yield status(error.message)
            raise error from None
    return wrapper


def keep_outputs_on_error(event: Any, targets: list) -> Any:
    """After ``event`` fails, take Gradio's red "Error" marks off ``targets`` (its outputs and progress targets):
    Gradio 6.31 covers every one of them with a mark until it is clicked away, hiding the picture, the transcript or
    the status line underneath. Any finished event on a component replaces its mark, so a no-op does it."""
    def unchanged() -> Any:
        return tuple(gr.skip() for _ in targets) if len(targets) > 1 else gr.skip()
    return event.failure(unchanged, None, targets, queue=False, show_progress="hidden", api_visibility="private")


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A compact one-line card: '**TTFT** 35 ms · **Throughput** 41.2 tokens/s · …' (``demos.core.metrics``' labels)."""
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
    """The ``panel`` entry called ``entry_id``; ``UnknownId`` listing the panel's ids otherwise (also for '')."""
    if not entry_id:
        valid = ", ".join(e.id for e in suite.catalog.entries(panel))
        raise UnknownId(f"choose a model; valid ids: {valid}", param="model")
    return suite.catalog.entry(entry_id, panel)


def load_note(handle: Handle) -> str:
    """'' for a pipeline that was already live, else what the load cost (shown once, with the first answer)."""
    if not handle.built_now:
        return ""
    return f"Loaded {handle.loaded.key.device} pipeline in {handle.loaded.load_seconds:.1f} s (first use)"


def kept_on_error(outputs: int, status_at: int, now: Callable[..., str] | None = None) -> Callable[[Callable], Callable]:
    """Wrap an event handler so that a failure leaves what is on screen as it is (DESIGN §9).

    The handler is not failed in Gradio's sense (that paints a red "Error" over every output and can leave one
    stuck there): its ``outputs`` are left unchanged (``gr.skip()``), except the status line at index
    ``status_at``, which gets the message (``user_error``'s words, logged once) followed by ``now(*args)``, the
    panel's line about what is true now; the message is also shown once as a toast. A generator handler may first
    yield what it wants to restore (the chat as it was, the prompt back in its box), which then stays.
    """
    import functools
    import inspect

    def message_for(exc: Exception, what: str, args: tuple, kwargs: dict, last: Any = None) -> Any:
        message = user_error(exc, what).message
        gr.Warning(message, title="Error")
        line = f"⚠️ {message}"
        if now is not None:
            try:
                line += f"\n\n{now(*args, **kwargs)}"
            except Exception:  # noqa: BLE001 - the message above is what matters; the rest is a courtesy
                log.debug("status after an error failed", exc_info=True)
        if outputs == 1:
            return line
        kept = list(last) if isinstance(last, (tuple, list)) and len(last) == outputs else [gr.skip()] * outputs
        kept[status_at] = line
        return tuple(kept)

    def decorate(fn: Callable) -> Callable:
        what = fn.__name__.strip("_").replace("_", " ")
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any):
                # After a first update, outputs are kept by sending their last values again, not gr.skip():
                # Gradio streams an output as a diff from its last value, and a diff into a skip breaks it.
                last = None
                try:
                    for last in fn(*args, **kwargs):
                        yield last
                except Exception as exc:  # noqa: BLE001 - sorted by user_error; the screen is kept
                    yield message_for(exc, what, args, kwargs, last)
            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted by user_error; the screen is kept
                return message_for(exc, what, args, kwargs)
        return wrapper
    return decorate
