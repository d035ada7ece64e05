"""The Image panel as users drive it: ``python app.py`` on tiny models, through gradio_client (and one browser run)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from gradio_client import Client
from PIL import Image

from tests.conftest import AppProcess

PROMPT = "a photo of a cat"


@pytest.fixture(scope="module")
def image_app(kit, tmp_path_factory):
    """The app on the kit's SD entry, an LCM entry with no generation defaults, and two entries with bad adapters."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("image-app")
    sd = kit.diffusion
    corrupt = folder / "corrupt.safetensors"  # a real adapter cut in half, as an interrupted download leaves it
    data = sd.lora_kohya.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    base = catalog_dict(kit, folder / "cache")
    doc = {"settings": base["settings"], "image": base["image"] + [
        {"id": "tiny-lcm", "label": "Tiny LCM", "source": str(sd.ov_lcm)},
        {"id": "tiny-sd-corrupt", "source": str(sd.ov),
         "adapters": [{"id": "half-file", "source": str(corrupt)}]},
        {"id": "tiny-sd-unmatched", "source": str(sd.ov),
         "adapters": [{"id": "other-model", "source": str(sd.lora_unmatched)}]},
    ]}
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    app = AppProcess(["--models", str(path)], env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(folder / "hf")},
                     log_path=folder / "app.log")
    try:
        yield app.wait_ready()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def client(image_app) -> Client:
    return Client(image_app.url, verbose=False)


@pytest.fixture(scope="module")
def direct(kit):
    """``Text2ImagePipeline`` called directly, as the README and Show code tell users to."""
    import openvino_genai as ov_genai

    sd = kit.diffusion
    adapters = {"style-kohya": ov_genai.Adapter(str(sd.lora_kohya)),
                "style-kohya-b": ov_genai.Adapter(str(sd.lora_kohya_b))}
    pipe = ov_genai.Text2ImagePipeline(str(sd.ov), "CPU", adapters=ov_genai.AdapterConfig(list(adapters.values())),
                                       INFERENCE_PRECISION_HINT="f32")

    def generate(styles: dict[str, float] | None = None, seed: int = 42, **kwargs) -> np.ndarray:
        config = ov_genai.AdapterConfig()
        for name, alpha in (styles or {}).items():
            config.add(adapters[name], alpha)
        settings = dict(width=64, height=64, num_inference_steps=4, guidance_scale=1.0)
        settings.update(kwargs)
        return pipe.generate(PROMPT, rng_seed=seed, adapters=config, **settings).data[0].copy()
    return generate


def _png(path: str) -> np.ndarray:
    assert path.endswith(".png")
    with Image.open(path) as image:
        assert image.format == "PNG", "images travel as lossless PNG, not webp"
        return np.asarray(image.convert("RGB"))


def _path(file) -> str:
    return file if isinstance(file, str) else file["path"]


def _ui_args(prompt=PROMPT, steps=4, count=1, live=False, compare=False, weights=(0.0, 0.0, 0.0), guidance=1.0,
             seed=42):
    """Inputs of the UI's Generate event, in its order; one slider per adapter of every entry in the catalog."""
    sliders = list(weights) + [0.0] * (5 - len(weights))  # tiny-sd: 3 styles, corrupt: 1, unmatched: 1
    return [prompt, "", "tiny-sd", "CPU", 64, 64, steps, guidance, seed, count, live, compare, *sliders]


# ---------------------------------------------------------------------------------------------------------


def test_api_gives_the_pixels_of_a_direct_call(client, direct):
    path, metrics = client.predict(PROMPT, "tiny-sd", api_name="/generate_image")
    assert np.array_equal(_png(path), direct())
    assert metrics["width"] == 64 and metrics["steps"] == 4 and metrics["seed"] == 42
    assert {"step_ms", "generate_s", "images_per_min", "device"} <= set(metrics)
    assert ("load_s" in metrics) == metrics["compiled"]  # only the call that built the pipeline reports its load

    styled_path, _ = client.predict(PROMPT, "tiny-sd", adapters={"style-kohya": 0.8}, api_name="/generate_image")
    styled = _png(styled_path)
    assert np.array_equal(styled, direct({"style-kohya": 0.8}))
    assert not np.array_equal(styled, _png(path))

    blend_path, metrics = client.predict(PROMPT, "tiny-sd", adapters={"style-kohya": 0.8, "style-kohya-b": 0.5},
                                         api_name="/generate_image")
    blend = _png(blend_path)
    assert np.array_equal(blend, direct({"style-kohya": 0.8, "style-kohya-b": 0.5}))
    assert not np.array_equal(blend, styled) and not np.array_equal(blend, direct({"style-kohya-b": 0.5}))
    assert metrics["adapters"] == {"style-kohya": 0.8, "style-kohya-b": 0.5}


def test_switching_styles_a_none_a_is_exact_without_recompiling(client):
    first, m1 = client.predict(PROMPT, "tiny-sd", adapters={"style-kohya-b": 0.7}, seed=3, api_name="/generate_image")
    plain, m2 = client.predict(PROMPT, "tiny-sd", seed=3, api_name="/generate_image")
    again, m3 = client.predict(PROMPT, "tiny-sd", adapters={"style-kohya-b": 0.7}, seed=3, api_name="/generate_image")
    assert np.array_equal(_png(first), _png(again))
    assert not np.array_equal(_png(first), _png(plain))
    assert m2["compiled"] is False and m3["compiled"] is False, "a style switch must reuse the compiled pipeline"


def test_png_carries_parameters_and_sizes_snap(client):
    path, metrics = client.predict(PROMPT, "tiny-sd", adapters={"style-kohya": 0.5}, width=100, seed=11,
                                   api_name="/generate_image")
    with Image.open(path) as image:
        assert image.size == (104, 64)
        text = image.info["parameters"]
    assert "Seed: 11" in text and "Size: 104x64" in text and "LoRA: style-kohya:0.5" in text
    assert any("width 100 → 104" in note for note in metrics["notes"])


def test_lcm_entry_defaults_to_four_steps_and_guidance_one(client):
    _, metrics = client.predict(PROMPT, "tiny-lcm", api_name="/generate_image")
    assert (metrics["steps"], metrics["guidance_scale"], metrics["width"]) == (4, 1.0, 64)


def test_ui_generates_a_gallery_with_compare_and_parameters(client):
    job = client.submit(*_ui_args(count=2, compare=True, live=True, steps=6, weights=(0.8,)),
                        api_name="/generate_images")
    job.result(timeout=120)
    outputs = job.outputs()
    galleries = [o[0] for o in outputs if isinstance(o[0], dict) and "value" in o[0]]
    final = galleries[-1]["value"]
    assert [item["caption"] for item in final] == ["seed 42 · style-kohya 0.8", "seed 43 · style-kohya 0.8"]
    assert any("preview at step" in item["caption"] for g in galleries for item in g["value"]), "live previews"
    sliders = [o[2]["value"] for o in outputs if isinstance(o[2], dict) and o[2].get("value")]
    without, with_styles = (_path(item) for item in sliders[-1])
    assert not np.array_equal(_png(without), _png(with_styles))
    assert np.array_equal(_png(with_styles), _png(_path(final[0]["image"])))
    status = outputs[-1][1]
    params = [o[3] for o in outputs if isinstance(o[3], str)][-1]
    metrics = [o[5] for o in outputs if isinstance(o[5], str)][-1]  # gr.State outputs are not sent to clients
    assert "Done: 2 image(s)" in status and "Seed: 43" in params and "Step" in metrics

    # One image with Compare: the twin comes last, and its previews must not stay in the gallery.
    job = client.submit(*_ui_args(count=1, compare=True, live=True, steps=6, weights=(0.8,)),
                        api_name="/generate_images")
    job.result(timeout=120)
    final = [o[0]["value"] for o in job.outputs() if isinstance(o[0], dict) and "value" in o[0]][-1]
    assert [item["caption"] for item in final] == ["seed 42 · style-kohya 0.8"]


def test_stop_ends_generation_early_and_the_next_call_works(client):
    job = client.submit(*_ui_args(steps=200, guidance=7.5), api_name="/generate_images")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress = job.status().progress_data
        if progress and progress[0].index and progress[0].index >= 3:
            break
        time.sleep(0.02)
    else:
        pytest.fail("no step progress reported")
    client.predict(api_name="/stop_images")
    job.result(timeout=60)
    status = [o[1] for o in job.outputs() if isinstance(o[1], str)][-1]
    assert status.startswith("Stopped at step") and "/200" in status, status
    steps_done = int(status.split("step ")[1].split("/")[0])
    assert 3 <= steps_done < 200
    path, metrics = client.predict(PROMPT, "tiny-sd", api_name="/generate_image")
    assert _png(path).shape == (64, 64, 3) and metrics["compiled"] is False


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "Write a prompt first"),
    (dict(width=100000), "width 100000 is too large for this model: use at most 128 pixels"),
    (dict(height=3), "height 3 is too small: use at least 64 pixels"),
    (dict(steps=1000), "steps 1000 is too many: use 1 to 200"),
    (dict(adapters={"watercolor": 1.0}), "model 'tiny-sd' has no style 'watercolor'; its styles: style-kohya"),
    (dict(model="sdxl"), "unknown model id 'sdxl' in the image panel; valid ids: tiny-sd"),
    (dict(model="tiny-sd-corrupt"), "LoRA adapter 'half-file': corrupt.safetensors is truncated or corrupt"),
    (dict(model="tiny-sd-unmatched"), "LoRA adapter 'other-model' matches no weight of the model"),
    (dict(device="NPU"), "device 'NPU' is not available on this machine"),
])
def test_bad_input_is_a_clear_message_and_the_app_keeps_serving(client, kwargs, message):
    args = dict(prompt=PROMPT, model="tiny-sd")
    args.update(kwargs)
    with pytest.raises(Exception) as info:
        client.predict(**args, api_name="/generate_image")
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)
    path, _ = client.predict(PROMPT, "tiny-sd", api_name="/generate_image")
    assert Path(path).is_file()


@pytest.mark.parametrize("changed, message", [
    (dict(steps=500), "Steps 500 is out of range: use 1 to 200"),
    (dict(width=-64), "Width -64 is out of range: use 64 to 128"),
    (dict(count=9), "Images 9 is out of range: use 1 to 8"),
])
def test_ui_boxes_outside_their_bounds_are_named_in_the_panels_words(client, changed, message):
    """The UI's boxes hold real numbers (no "0 = default" there): a value outside a box's bounds is refused in the
    panel's words, once, instead of Gradio's "Value -64 is less than minimum value 0."."""
    args = _ui_args(**{k: v for k, v in changed.items() if k in ("steps", "count")})
    if "width" in changed:
        args[4] = changed["width"]
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name="/generate_images")
    assert message in str(info.value) and "minimum value" not in str(info.value)


def test_zero_and_negative_numbers_mean_defaults(client):
    _, metrics = client.predict(PROMPT, "tiny-sd", width=0, height=-8, steps=0, guidance_scale=-1, seed=-1,
                                api_name="/generate_image")
    assert (metrics["width"], metrics["height"], metrics["steps"], metrics["guidance_scale"]) == (64, 64, 4, 1.0)
    assert 0 <= metrics["seed"] < 2**32 and any("random seed" in n for n in metrics["notes"])


def _shown_pixels(page) -> np.ndarray:
    """The pixels of the first image in the gallery, fetched as the browser fetched them."""
    import io
    src = page.locator("#image-gallery img").first.get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def _set_style(page, weight: str) -> None:
    """Type the Kohya style's weight and wait until the slider holds it (a busy page applies it late; a Generate
    clicked before then would run with the old weight)."""
    slider = "#image-style-tiny-sd-style-kohya"
    page.locator(f"{slider} input[type=number]").fill(weight)
    page.locator(f"{slider} input[type=number]").press("Enter")
    page.wait_for_function(f"Number(document.querySelector('{slider} input[type=range]').value) === {float(weight)}",
                           timeout=10_000)


def _generate(page) -> None:
    """Click Generate and wait for this run's picture (every run saves to a new file, so its address changes)."""
    first = "document.querySelector('#image-gallery img')"
    before = page.evaluate(f"{first} ? {first}.src : ''")
    page.locator("#image-generate").click()
    try:
        page.wait_for_function(f"{first} && {first}.src !== {before!r}", timeout=60_000)
        # The picture comes before the run's last update (status, metrics, code): wait until the gallery's
        # progress overlay is gone, so the next click never lands on a run still finishing.
        page.wait_for_function("[...document.querySelectorAll('#image-gallery [data-testid=status-tracker]')]"
                               ".every(t => t.classList.contains('hide'))", timeout=60_000)
        page.locator("#image-status").get_by_text("Done: 1 image(s)").wait_for(timeout=60_000)
    except Exception as exc:  # say what the page showed instead
        from tests.browser import screenshot
        path = screenshot(page, "image-generate-failed")
        raise AssertionError(f"no new picture: status {page.locator('#image-status').inner_text()!r}, parameters "
                             f"{page.locator('#image-parameters textarea').input_value()!r}; see {path}") from exc


def test_browser_generates_switches_a_style_and_back(image_app):
    from tests.browser import browser_page, choose, open_tab, screenshot

    with browser_page(width=1300) as page:
        open_tab(page, image_app.url, "Image")
        choose(page, "image-model", "Tiny Stable Diffusion")
        page.locator("#image-prompt textarea").fill("a red house in the forest")
        page.locator("#image-live input").uncheck()  # previews would also change the gallery while a run goes on
        _generate(page)
        assert page.locator("#image-gallery img").count() >= 1
        assert "Step" in page.locator("#image-metrics").inner_text()
        assert "Seed: 42" in page.locator("#image-parameters textarea").input_value()
        plain = _shown_pixels(page)
        screenshot(page, "image-generated")

        # A style at 0.8: another picture, named in its parameters; back to 0: the first picture again, exactly.
        _set_style(page, "0.8")
        _generate(page)
        assert "LoRA: style-kohya:0.8" in page.locator("#image-parameters textarea").input_value()
        styled = _shown_pixels(page)
        assert styled.shape == plain.shape and not np.array_equal(styled, plain)
        screenshot(page, "image-styled")
        _set_style(page, "0")
        _generate(page)
        assert np.array_equal(_shown_pixels(page), plain), "A -> none gives the unstyled picture, pixel for pixel"
