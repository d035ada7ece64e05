"""What one image request means: user input checked, defaulted from the catalog entry and snapped to the model.

Everything here is plain Python (no Gradio, no pipeline), so the UI, the API and the Show-code view agree on
exactly the same settings, and every mistake becomes one sentence that says what to type instead.
"""
from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from demos.core.catalog import ImageEntry
from demos.core.checks import finite, shown, whole
from demos.core.errors import TooLong, UnknownId, UserError, check_text

MAX_STEPS = 200            # the catalog's own bound for num_inference_steps
MAX_PROMPT_CHARS = 10_000  # text encoders read their first 77 (CLIP) to 512 (T5) tokens: far more is never read
MAX_GUIDANCE = 30.0        # the catalog's own bound for guidance_scale
MAX_WEIGHT = 4.0           # the catalog's own bound for an adapter alpha
MAX_SEED = 2**32 - 1       # CppStdGenerator takes a uint32 seed
MAX_IMAGES = 8             # per click in the UI


@dataclass(frozen=True)
class Geometry:
    """What a model folder says about its images (read from its configs; no pipeline needed)."""

    factor: int = 8                    # width and height must be multiples of this
    pipeline_class: str = ""           # diffusers' name, e.g. StableDiffusionXLPipeline
    scheduler: str = ""                # e.g. EulerDiscreteScheduler (shown as "Sampler" in the parameters)
    native: int | None = None          # the side the denoiser was trained at (UNet sample_size x factor)

    @property
    def min_side(self) -> int:
        # 8 latent pixels: the smallest input every SD-family UNet down-samples without collapsing to zero.
        return 8 * self.factor

    @property
    def lcm(self) -> bool:
        """A latent consistency model: a few steps and no classifier-free guidance."""
        return "LatentConsistency" in self.pipeline_class or self.scheduler == "LCMScheduler"


def geometry(model_dir: Path | str | None) -> Geometry:
    """Read the VAE scale factor, native size and class names from an exported model folder (defaults if unreadable)."""
    if model_dir is None:
        return Geometry()
    folder = Path(model_dir)
    factor = 8
    for vae in ("vae_decoder", "vae_encoder"):
        config = _read_json(folder / vae / "config.json")
        if config.get("block_out_channels"):
            # What genai computes: each VAE block but the last halves the resolution.
            factor = 2 ** (len(config["block_out_channels"]) - 1)
            break
    sample = _read_json(folder / "unet" / "config.json").get("sample_size")
    native = factor * sample if isinstance(sample, int) and sample > 0 else None
    index = _read_json(folder / "model_index.json")
    pipeline_class = str(index.get("_class_name", ""))
    if "Flux" in pipeline_class:
        factor *= 2  # FLUX packs 2x2 latent patches: genai checks multiples of vae_scale_factor * 2
    scheduler = str(_read_json(folder / "scheduler" / "scheduler_config.json").get("_class_name", ""))
    return Geometry(factor, pipeline_class, scheduler, native)


@dataclass(frozen=True)
class Defaults:
    """An entry's generation defaults: what its models.yaml says, else what the model itself implies."""

    width: int
    height: int
    steps: int
    guidance_scale: float


def defaults(entry: ImageEntry, geo: Geometry) -> Defaults:
    """Fields set in the catalog win; unset ones follow the model (native size; LCM: 4 steps, guidance 1)."""
    given = entry.generation.model_fields_set
    g = entry.generation
    width = g.width if "width" in given or not geo.native else geo.native
    height = g.height if "height" in given or not geo.native else geo.native
    steps = g.num_inference_steps if "num_inference_steps" in given or not geo.lcm else 4
    guidance = g.guidance_scale if "guidance_scale" in given or not geo.lcm else 1.0
    return Defaults(width, height, steps, guidance)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class ImageSettings:
    """One request, fully resolved: what is passed to ``Text2ImagePipeline.generate``."""

    model: str                              # catalog entry id
    device: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    styles: tuple[tuple[str, float], ...]   # (adapter id, weight) with weight != 0, in catalog order
    notes: tuple[str, ...] = field(default=())  # what was changed from the input, for the user to read
    # Editing (demos.panels.image.edit): "transform" or "inpaint" work on a source picture of width x height.
    mode: str = "generate"
    strength: float = 0.0                   # how far the result may move from the source (0 < strength <= 1)
    source_sha256: str = ""                 # of the source picture's pixels as the pipeline got them

    def without_styles(self) -> "ImageSettings":
        """The same request with every style off (the 'Compare' twin)."""
        return dataclasses.replace(self, styles=())

    def with_seed(self, seed: int) -> "ImageSettings":
        return dataclasses.replace(self, seed=seed)


def max_side(native: Defaults) -> int:
    """The largest width or height accepted: twice the model's native size.

    Beyond that SD-family models repeat their subject, and memory grows with the square of the side, so a typo
    (5120 for 512) would take the whole app down.
    """
    return 2 * max(native.width, native.height)


def snap(value: int, factor: int) -> int:
    """The nearest multiple of ``factor`` (halves round up), never below ``factor``."""
    return max(factor, (value + factor // 2) // factor * factor)


def _side(name: str, value: int | float | None, default: int, geo: Geometry, limit: int,
          notes: list[str]) -> int:
    value = _as_int(name, value)
    if value <= 0:
        if value < 0:  # 0 is the documented "default"; a negative number deserves a word
            notes.append(f"{name} {value} means the model's default: {default}")
        return default
    if value > limit:
        raise UserError(f"{name} {value} is too large for this model: use at most {limit} pixels (twice its "
                        f"native {default}); larger images need far more memory and time.", param=name)
    snapped = snap(value, geo.factor)
    if snapped < geo.min_side:
        raise UserError(f"{name} {value} is too small: use at least {geo.min_side} pixels.", param=name)
    if snapped != value:
        notes.append(f"{name} {value} → {snapped} (this model needs multiples of {geo.factor})")
    return snapped


def _as_int(name: str, value: int | float | None) -> int:
    """A whole number (an integral float counts); None is 0, the default. NaN, infinity and text are refused."""
    return 0 if value is None else whole(name, value, None, None)  # each caller says its own bounds


def resolve_styles(entry: ImageEntry, weights: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    """(id, weight) for every style with a nonzero weight; ``KeyError`` naming the valid ones for a typo."""
    if weights is not None and not isinstance(weights, dict):
        raise UserError(f"adapters must map style ids to weights, e.g. {{\"style\": 0.8}}, not {shown(weights)}",
                        param="adapters")
    weights = dict(weights or {})
    known = [adapter.id for adapter in entry.adapters]
    unknown = [name for name in weights if name not in known]
    if unknown:
        valid = ", ".join(known) or "none (this model has no LoRA styles)"
        raise UnknownId(f"model {entry.id!r} has no style {unknown[0]!r}; its styles: {valid}", param="adapters")
    chosen = []
    for name in known:  # catalog order: the same blend is always described (and coded) the same way
        if name not in weights or weights[name] is None:
            continue
        weight = finite(f"the weight of style {name!r}", weights[name])  # NaN gave an all-black picture
        if abs(weight) > MAX_WEIGHT:
            raise UserError(f"the weight of style {name!r} is {weight:g}: use a value between {-MAX_WEIGHT:g} and "
                            f"{MAX_WEIGHT:g} (1 = full strength, 0 = off)", param="adapters")
        if weight != 0:
            chosen.append((name, weight))
    return tuple(chosen)


def resolve(entry: ImageEntry, geo: Geometry, *, device: str, prompt: str, negative_prompt: str | None = None,
            styles: dict[str, float] | None = None, width: int | float | None = 0, height: int | float | None = 0,
            steps: int | float | None = 0, guidance_scale: float | None = -1, seed: int | float | None = 42
            ) -> ImageSettings:
    """Check and complete one request. Zero/negative numbers mean the entry's default; a negative seed picks one.

    ``negative_prompt=None`` means the entry's default negative prompt. Raises ``ValueError``/``KeyError`` with a
    message that says what to change (``UserError``s, ``UnknownId`` for a style).
    """
    prompt = check_text(prompt or "", "prompt").strip()
    check_text(negative_prompt, "negative_prompt")
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt or "")):
        if len(text) > MAX_PROMPT_CHARS:
            raise TooLong(f"{name} is {len(text):,} characters; image prompts take at most {MAX_PROMPT_CHARS:,} (the "
                          "text encoders read only their first 77 to 512 tokens): shorten it", param=name)
    if not prompt:
        example = entry.examples[0] if entry.examples else "a cozy cabin in a snowy forest at dusk"
        raise UserError(f"Write a prompt first: describe the picture you want, e.g. '{example}'.", param="prompt")
    notes: list[str] = []
    base = defaults(entry, geo)
    limit = max_side(base)
    width_px = _side("width", width, base.width, geo, limit, notes)
    height_px = _side("height", height, base.height, geo, limit, notes)
    step_count = _as_int("steps", steps)
    if step_count > MAX_STEPS:
        raise UserError(f"steps {step_count} is too many: use 1 to {MAX_STEPS} (this model's default is "
                        f"{base.steps}; quality rarely improves past 50).", param="steps")
    if step_count <= 0:
        if step_count < 0:
            notes.append(f"steps {step_count} means the model's default: {base.steps}")
        step_count = base.steps
    guidance = None if guidance_scale is None else finite("guidance_scale", guidance_scale)  # nan < 0 is False
    guidance = base.guidance_scale if guidance is None or guidance < 0 else guidance
    if guidance > MAX_GUIDANCE:
        raise UserError(f"guidance scale {guidance:g} is too high: use 0 to {MAX_GUIDANCE:g} (this model's default "
                        f"is {base.guidance_scale:g}).", param="guidance_scale")
    seed_value = _as_int("seed", seed)
    if seed_value > MAX_SEED:
        raise UserError(f"seed {seed_value} is too large: use 0 to {MAX_SEED}, or -1 for a random one.", param="seed")
    if seed_value < 0:
        seed_value = random.randint(0, MAX_SEED)
        notes.append(f"random seed {seed_value}")
    negative = entry.negative_prompt if negative_prompt is None else negative_prompt.strip()
    if negative and guidance <= 1:
        # Without classifier-free guidance there is no negative branch; genai rejects a negative prompt there.
        if negative_prompt:
            notes.append(f"negative prompt ignored: it needs guidance scale above 1 (it is {guidance:g})")
        negative = ""
    return ImageSettings(entry.id, device, prompt, negative, width_px, height_px, step_count, guidance, seed_value,
                         resolve_styles(entry, styles), tuple(notes))
