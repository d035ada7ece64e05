"""LoRA adapter modes (``openvino_genai.AdapterConfig.Mode``): which one a pipeline registers its adapters with.

A mode is fixed when the pipeline is built (it is part of the pipeline key) and trades switching freedom for speed.
Measured on openvino-genai 2026.4.1, CPU, with two adapters registered and switched per call A -> none -> B -> A
(``bench/bench_lora.py``, on LLMPipeline and Text2ImagePipeline alike):

* ``auto`` and ``dynamic``: every answer and picture reproduced exactly, "none" equal to a pipeline without
  adapters, no recompile. On CPU, ``auto`` resolves to the same exact behaviour as ``dynamic``.
* ``static_rank``: the rank of a call's adapters must equal the registered one (genai raises "Can not clone with
  new dims" for A alone when A and B are registered). Passing every adapter, the unchosen at alpha 0, runs, but
  "none" (all at 0) kept the previous call's adapter: not exact.
* ``static`` and ``fuse``: the registered adapters are applied at construction (at alpha 1) and per-call settings
  are ignored: every call answers with A + B.

The chat panel switches adapters per answer and the image panel per picture, so both need a mode that switches
per call; ``DEFAULTS`` is the fastest such mode measured for each (bench_lora.py's verdict). The catalog refuses
any other (``problem``), naming the entry and the mode.
"""
from __future__ import annotations

from typing import Any, Sequence

# Catalog spelling -> the member of openvino_genai.AdapterConfig.Mode.
MODES: dict[str, str] = {"auto": "MODE_AUTO", "dynamic": "MODE_DYNAMIC", "static_rank": "MODE_STATIC_RANK",
                         "static": "MODE_STATIC", "fuse": "MODE_FUSE"}

# Modes whose per-call switching (adapters, alphas, none) was exact and compiled nothing (see the docstring).
SWITCHES_PER_CALL: tuple[str, ...] = ("auto", "dynamic")

# Panels whose users switch adapters per call (chat: per answer; image: per picture, editing included).
SWITCHING_PANELS: tuple[str, ...] = ("chat", "image")

# The fastest exact mode per panel, measured with bench/bench_lora.py (README, Benchmarks).
DEFAULTS: dict[str, str] = {"chat": "dynamic", "image": "dynamic"}

# Why a mode cannot serve a switching panel: said in the catalog's message.
_WHY_NOT: dict[str, str] = {
    "static_rank": "keeps the rank of the registered adapters fixed, so one adapter alone or none cannot be chosen "
                   "per call",
    "static": "applies the registered adapters once, when the pipeline is built, and ignores per-call choices",
    "fuse": "merges the registered adapters into the weights when the pipeline is built, so they cannot be "
            "switched or removed per call",
}

# What the Models tab says about a mode.
DESCRIPTIONS: dict[str, str] = {
    "auto": "genai picks the mode for the device (on CPU: switches per call, as dynamic)",
    "dynamic": "adapters and alphas switch per call, nothing recompiles",
}


def mode_for(entry: Any) -> str:
    """The adapter mode ``entry``'s pipelines are built with: its ``lora_mode``, else its panel's default."""
    return getattr(entry, "lora_mode", None) or DEFAULTS.get(entry.panel, "auto")


def problem(where: str, panel: str, mode: str) -> str | None:
    """The catalog's message for a ``lora_mode`` the panel cannot use (None when it can).

    ``where`` names the entry (``chat[tinyllama]``)."""
    usable = list(SWITCHES_PER_CALL) if panel in SWITCHING_PANELS else list(MODES)
    usable.sort(key=lambda m: m != DEFAULTS.get(panel))  # the default first
    shown = [f"{m} (the default)" if m == DEFAULTS.get(panel) else m for m in usable]
    choices = " or ".join(shown) if len(shown) <= 2 else ", ".join(shown)
    if mode not in MODES:
        return (f"{where}.lora_mode: {mode!r} is not an adapter mode; choose {choices} "
                f"(modes OpenVINO GenAI knows: {', '.join(MODES)})")
    if mode not in usable:
        need = "answer" if panel == "chat" else "picture"
        return (f"{where}.lora_mode: {mode!r} {_WHY_NOT[mode]}; the {panel} panel switches adapters per {need}, "
                f"so choose {choices}")
    return None


def python_mode(mode: str | None, panel: str) -> str:
    """``mode`` (None: the panel's default) as Python source, for Show code."""
    return f"ov_genai.AdapterConfig.Mode.{MODES[mode or DEFAULTS.get(panel, 'auto')]}"


def registration(adapters: Sequence[Any], mode: str) -> Any:
    """The ``AdapterConfig`` a pipeline is constructed with: every adapter registered, in ``mode``.

    The one place that turns an entry's adapters into construction arguments (chat, image generation and
    editing pipelines, continuous batching), so every pipeline of an entry switches alike."""
    import openvino_genai as ov_genai
    member = getattr(ov_genai.AdapterConfig.Mode, MODES[mode])
    return ov_genai.AdapterConfig(list(adapters), member)
