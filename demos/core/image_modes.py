"""One model, three image pipelines: Generate, Transform and Inpaint share the compiled models of one folder.

openvino-genai 2026.4.1 lets a pipeline be made from another of the same family, sharing its compiled text
encoder, denoiser and VAE (no second compile, no second copy of the weights): ``Image2ImagePipeline(inpainting)``,
``Text2ImagePipeline(inpainting)``, ``InpaintingPipeline(image2image)``. Measured here: the last of these crashes
the process (segmentation fault) and there is no ``Image2ImagePipeline(text2image)``, so the one direction that
reaches all three is: build an ``InpaintingPipeline`` from the folder and derive the other two from it. Derived
pipelines give the same pixels as pipelines built from the folder, and keep the LoRA adapters registered with the
base (tests/test_image_edit.py compares them).

A folder without a VAE encoder (or a model genai cannot inpaint) still generates: it gets a plain
``Text2ImagePipeline`` and the editing modes say why they are unavailable.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

MODES = ("generate", "transform", "inpaint")
CLASSES = {"generate": "Text2ImagePipeline", "transform": "Image2ImagePipeline", "inpaint": "InpaintingPipeline"}

log = logging.getLogger("demos.core.image_modes")


class ImageModes:
    """The pipelines of one image model: the Generate one made at construction, the others on first use."""

    def __init__(self, base: Any | None, generate: Any, unavailable: str = ""):
        self._pipelines: dict[str, Any] = {"generate": generate}
        if base is not None:
            self._pipelines["inpaint"] = base
        self.unavailable = unavailable  # why Transform and Inpaint cannot run ("" when they can)
        self.builds: Counter[str] = Counter({mode: 1 for mode in self._pipelines})
        self._lock = threading.Lock()

    def get(self, mode: str) -> Any:
        """The pipeline for ``mode`` (Transform's is derived from the base on first use: milliseconds, no compile)."""
        if mode not in MODES:
            raise ValueError(f"unknown image mode {mode!r}; modes are {', '.join(MODES)}")
        with self._lock:
            pipeline = self._pipelines.get(mode)
            if pipeline is None:
                if self.unavailable:
                    raise RuntimeError(self.unavailable)  # callers check ``unavailable`` first and say it as a UserError
                import openvino_genai as ov_genai
                pipeline = self._pipelines[mode] = getattr(ov_genai, CLASSES[mode])(self._pipelines["inpaint"])
                self.builds[mode] += 1
            return pipeline


def build(model_dir: str, device: str, properties: dict[str, Any]) -> tuple[Any, ImageModes]:
    """The Generate pipeline for ``model_dir`` and the ``ImageModes`` it belongs to (see the module's docstring)."""
    import openvino_genai as ov_genai
    if not (Path(model_dir) / "vae_encoder").is_dir():
        generate = ov_genai.Text2ImagePipeline(model_dir, device, **properties)
        return generate, ImageModes(None, generate, "this model folder has no VAE encoder (vae_encoder/), which "
                                    "Transform and Inpaint need; export the model again with optimum-cli")
    try:
        base = ov_genai.InpaintingPipeline(model_dir, device, **properties)
    except RuntimeError as exc:  # genai's word that this model family cannot inpaint: it can still generate
        log.warning("InpaintingPipeline(%s) failed; Generate only: %s", model_dir, exc)
        generate = ov_genai.Text2ImagePipeline(model_dir, device, **properties)
        return generate, ImageModes(None, generate, f"openvino_genai cannot transform or inpaint with this model "
                                    f"({str(exc).splitlines()[0][:200]})")
    generate = ov_genai.Text2ImagePipeline(base)
    return generate, ImageModes(base, generate)
