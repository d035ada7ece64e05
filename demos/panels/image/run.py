"""Running ``Text2ImagePipeline.generate`` for one resolved request: styles, step callback, stop, preview, timing.

The pipeline is shared by every user of the app, so the call holds the pipeline's lock; the styles and their
weights travel with each call (``AdapterConfig``), never in the pipeline, so a style switch compiles nothing.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from demos.core import metrics as perf_metrics
from demos.core.errors import UserError
from demos.panels.image.edit import MODE_LABELS, Source, steps_run
from demos.panels.image.settings import ImageSettings
from demos.core.suite import Handle

StepFn = Callable[[int, int, "np.ndarray | None"], None]
"""``on_step(done, total, preview)``: called after each denoising step; ``preview`` is an RGB array or None."""


@dataclass(frozen=True)
class Generated:
    """One generate() call's outcome."""

    settings: ImageSettings
    image: np.ndarray | None      # HxWx3 uint8; None when stopped before the end
    preview: np.ndarray | None    # the last live preview (what a stopped image looked like)
    preview_step: int             # the step that preview shows (0 = none)
    steps_done: int
    seconds: float                # wall time of the call
    step_ms: float | None         # genai's mean denoising-iteration time
    stopped: bool


def adapter_config(handle: Handle, styles: tuple[tuple[str, float], ...]) -> Any:
    """The per-call ``AdapterConfig``: the chosen registered adapters with their weights.

    No style is the first registered adapter at weight 0 (the unstyled pixels exactly), never an empty config:
    with openvino-genai 2026.4.1 an empty config in a guidance > 1 call after a styled one makes the next
    single-style image black (tests/test_image_switch_order.py)."""
    import openvino_genai as ov_genai
    config = ov_genai.AdapterConfig()
    unstyled = [(adapter_id, 0.0) for adapter_id in list(handle.prepared.adapters)[:1]]
    for adapter_id, weight in styles or unstyled:
        config.add(handle.adapter(adapter_id), float(weight))
    return config


def mode_pipeline(handle: Handle, mode: str) -> Any:
    """The pipeline of ``mode`` for the handle's model: Generate's is the handle's own; Transform and Inpaint share
    its compiled models (``demos.core.image_modes``). ``UserError`` when this model cannot edit pictures."""
    if mode == "generate":
        return handle.pipeline
    modes = getattr(handle.loaded, "modes", None)
    if modes is None or modes.unavailable:
        why = modes.unavailable if modes is not None else "it is served by a model server, which this panel can " \
            "only ask to generate"
        raise UserError(f"{MODE_LABELS[mode]} is not available for this model: {why}. Use Generate, or pick "
                        "another model.", param="model")
    return modes.get(mode)


def preview_interval(steps: int, previews: int = 5) -> int:
    """Decode a preview every this many steps: about ``previews`` per image, since a VAE decode costs a step."""
    return max(1, round(steps / previews))


def generate(handle: Handle, settings: ImageSettings, *, on_step: StepFn | None = None,
             stop: threading.Event | None = None, preview_every: int = 0, locked: bool = False,
             source: "Source | None" = None) -> Generated:
    """Generate one image. ``stop`` set -> the pipeline ends at the next step; ``preview_every`` 0 = no previews.

    ``locked``: the caller holds the pipeline's lock already (a ``serving`` job in the pipeline's lane)."""
    pipe = mode_pipeline(handle, settings.mode)
    state: dict[str, Any] = {"done": 0, "preview": None, "preview_step": 0, "callback_s": 0.0}

    def callback(step: int, num_steps: int, latent: Any) -> bool:
        entered = time.perf_counter()
        try:
            return _on_step(step, num_steps, latent)
        finally:
            # genai times the callback as part of the step: keep previews out of the step time shown.
            state["callback_s"] += time.perf_counter() - entered

    def _on_step(step: int, num_steps: int, latent: Any) -> bool:
        state["done"] = step + 1
        preview = None
        if preview_every and state["done"] % preview_every == 0 and state["done"] < num_steps:
            # decode() is genai's own latent -> RGB (the VAE); copy: its buffer is reused.
            preview = np.array(pipe.decode(latent).data[0], copy=True)
            state["preview"], state["preview_step"] = preview, state["done"]
        if on_step is not None:
            on_step(state["done"], num_steps, preview)
        return bool(stop is not None and stop.is_set())

    kwargs: dict[str, Any] = dict(
        width=settings.width, height=settings.height, num_inference_steps=settings.steps,
        guidance_scale=settings.guidance_scale, rng_seed=settings.seed,
        adapters=adapter_config(handle, settings.styles))
    if settings.mode != "generate":
        if source is None:
            raise ValueError(f"a {settings.mode} request needs its source picture")
        # The size is the source's (edit.open_image sized it); width/height would make genai resize it again.
        del kwargs["width"], kwargs["height"]
        kwargs.update(source.tensors(), strength=settings.strength)
    if settings.negative_prompt:  # resolve() drops it when guidance <= 1: genai refuses it there
        kwargs["negative_prompt"] = settings.negative_prompt
    if on_step is not None or stop is not None or preview_every:
        kwargs["callback"] = callback  # only when needed: the API path runs exactly the plain call
    with contextlib.nullcontext() if locked else handle.loaded.lock:
        started = time.perf_counter()
        tensor = pipe.generate(settings.prompt, **kwargs)
        # The returned tensor is a view of a buffer the next generate() overwrites: copy before unlocking.
        # A stopped generation returns an empty, shapeless tensor.
        image = np.array(tensor.data[0], copy=True) if len(tensor.shape) == 4 else None
        seconds = time.perf_counter() - started
        step_ms = _mean_step_ms(pipe, state["callback_s"])
    expected = steps_run(settings)
    steps_done = state["done"] if "callback" in kwargs else expected
    stopped = image is None or steps_done < expected
    return Generated(settings, image, state["preview"], state["preview_step"], steps_done, seconds, step_ms, stopped)


def _mean_step_ms(pipe: Any, callback_s: float = 0.0) -> float | None:
    """genai's mean denoising-iteration time, without what our step callback spent (previews)."""
    try:
        durations = list(pipe.get_performance_metrics().raw_metrics.iteration_durations)  # microseconds
    except Exception:  # noqa: BLE001 - figures are a nicety; never fail an image over them
        return None
    if not durations:
        return None
    return max(0.0, sum(durations) / 1000 - callback_s * 1000) / len(durations)


def run_metrics(results: list[Generated], handle: Handle) -> dict[str, Any]:
    """The metrics dict (``demos.core.metrics`` vocabulary) for one or more images generated in one request; ``load_s``
    only when this request built the pipeline."""
    finished = [r for r in results if r.image is not None]
    total = sum(r.seconds for r in results)
    steps = [r.step_ms for r in results if r.step_ms is not None]
    figures: dict[str, Any] = {"step_ms": sum(steps) / len(steps) if steps else None, "generate_s": total}
    if finished and total > 0:
        figures["images_per_min"] = 60 * len(finished) / total
    figures["device"] = handle.loaded.key.device
    return perf_metrics.build(figures, handle.loaded.load_seconds, handle.built_now)
