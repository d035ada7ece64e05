"""A style, then an unstyled image with guidance (CFG), then the style again: the served pipeline must still give
the styled picture of a fresh ``Text2ImagePipeline``. openvino-genai 2026.4.1 gives an all-black one there when the
unstyled call passed an empty ``AdapterConfig`` (found as an order dependence in tests/test_image_app.py)."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from tests.rawhttp import call

PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def fresh_styled(kit) -> np.ndarray:
    """The Kohya style at 0.8 from a pipeline that never generated before, built as the app builds it."""
    import openvino_genai as ov_genai

    sd = kit.diffusion
    adapters = [ov_genai.Adapter(str(p)) for p in (sd.lora_kohya, sd.lora_kohya_b, sd.lora_diffusers)]
    pipe = ov_genai.Text2ImagePipeline(str(sd.ov), "CPU", adapters=ov_genai.AdapterConfig(adapters),
                                       INFERENCE_PRECISION_HINT="f32")
    config = ov_genai.AdapterConfig()
    config.add(adapters[0], 0.8)
    return pipe.generate(PROMPT, width=64, height=64, num_inference_steps=4, guidance_scale=1.0, rng_seed=42,
                         adapters=config).data[0].copy()


def _ui_args(guidance: float, kohya: float) -> list:
    """Inputs of the UI's Generate event on the tiny catalog (tiny-sd's three style sliders last)."""
    return [PROMPT, "", "tiny-sd", "CPU", 64, 64, 4, guidance, 42, 1, False, False, kohya, 0.0, 0.0]


def _png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_a_style_survives_an_unstyled_image_with_guidance_in_between(tiny_app, fresh_styled):
    # What a user does in the tab: a style, then the slider back to 0 and guidance up (CFG: the denoiser's batch
    # doubles), then the API asks for the style again.
    for guidance, kohya in ((1.0, 0.8), (7.5, 0.0)):
        outcome = call(tiny_app.url, "generate_images", _ui_args(guidance, kohya))
        assert outcome.event == "complete", outcome.message
    path, _ = Client(tiny_app.url, verbose=False).predict(PROMPT, "tiny-sd", adapters={"style-kohya": 0.8},
                                                          api_name="/generate_image")
    styled = _png(path)
    assert styled.max() > 0, "the styled image came back all black"
    assert np.array_equal(styled, fresh_styled)
