"""Image editing (issue 17): Transform and Inpaint, compared with ``Image2ImagePipeline`` / ``InpaintingPipeline``
called directly on the kit's tiny Stable Diffusion; bad inputs; the three modes sharing one compiled model."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROMPT = "a photo of a cat"
SIZE = 64


def _source(folder: Path) -> Path:
    path = folder / "source.png"
    Image.fromarray(np.random.RandomState(3).randint(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(path)
    return path


def _mask_array() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:40, 10:50] = 255
    return mask


def _png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


# -------------------------------------------------------------------------------------------------------------
# Unit: the inputs (no models)


@pytest.fixture
def sd_entry():
    from demos.core.catalog import ImageEntry
    return ImageEntry(id="sd", source="/nowhere", generation={"width": 64, "height": 64, "num_inference_steps": 4,
                                                              "guidance_scale": 1.0})


def _open(picture, entry, geo=None):
    from demos.panels.image import edit
    from demos.panels.image.settings import Geometry
    return edit.open_source(picture, entry, geo or Geometry(8, native=64))


@pytest.mark.unit
@pytest.mark.parametrize("strength, message", [
    (0, "strength 0 is out of range: use a value above 0 and at most 1"),
    (-0.5, "strength -0.5 is out of range"),
    (1.5, "strength 1.5 is out of range"),
    (float("nan"), "strength"),
    (0.1, "strength 0.1 with 4 steps runs no denoising step"),
])
def test_strength_outside_its_range_says_what_to_use(strength, message):
    from demos.core.errors import UserError
    from demos.panels.image import edit
    with pytest.raises(UserError) as info:
        edit.check_strength(strength, 4)
    assert message in str(info.value)


@pytest.mark.unit
def test_pictures_are_normalised_and_every_change_is_a_note(tmp_path, sd_entry):
    from demos.core.errors import UserError
    with pytest.raises(UserError, match="Upload a picture to edit first"):
        _open(None, sd_entry)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserError, match="is empty \\(0 bytes\\)"):
        _open(str(tmp_path / "empty.png"), sd_entry)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(UserError, match="is not an image this demo can read"):
        _open(str(tmp_path / "text.png"), sd_entry)
    frames = [Image.new("RGB", (64, 64), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    array, notes = _open(str(tmp_path / "anim.gif"), sd_entry)
    assert array.shape == (64, 64, 3) and any("2 frames: its first frame was used" in n for n in notes)
    assert array[0, 0].tolist() == [254, 0, 0] or array[0, 0, 0] > 200  # the red frame, not the blue one
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    array, _ = _open(str(tmp_path / "cmyk.jpg"), sd_entry)
    assert array.shape == (64, 64, 3) and array[..., 0].mean() > 200 and array[..., 1].mean() < 60
    Image.fromarray(np.full((64, 64), 65535, np.uint16)).save(tmp_path / "deep.png")
    array, _ = _open(str(tmp_path / "deep.png"), sd_entry)
    assert array.shape == (64, 64, 3) and (array == 255).all()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    array, notes = _open(str(tmp_path / "clear.png"), sd_entry)
    assert (array == 255).all() and any("transparent parts" in n for n in notes)
    Image.new("RGB", (1000, 500)).save(tmp_path / "large.png")
    array, notes = _open(str(tmp_path / "large.png"), sd_entry)
    assert array.shape == (64, 128, 3) and any("1000×500 → 128×64" in n and "at most 128" in n for n in notes)
    Image.new("RGB", (100, 100)).save(tmp_path / "odd.png")
    array, notes = _open(str(tmp_path / "odd.png"), sd_entry)
    assert array.shape == (96, 96, 3) and any("multiples of 8" in n for n in notes)
    Image.new("RGB", (20, 20)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="needs at least 64 pixels a side"):
        _open(str(tmp_path / "tiny.png"), sd_entry)


@pytest.mark.unit
def test_masks_white_or_transparent_scaled_and_empty(tmp_path, sd_entry):
    from demos.core.errors import UserError
    from demos.panels.image import edit
    from demos.panels.image.settings import Geometry
    Image.fromarray(np.pad(np.full((16, 16), 255, np.uint8), 8)).save(tmp_path / "small-mask.png")  # 32x32
    mask, notes = edit.read_mask(str(tmp_path / "small-mask.png"), (64, 64))
    assert mask.shape == (64, 64) and mask[32, 32] and not mask[0, 0]
    assert any("32×32 was scaled to the picture's 64×64" in n for n in notes)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:32, :, 3] = 0  # OpenAI: transparent = repaint
    Image.fromarray(rgba).save(tmp_path / "openai.png")
    mask, _ = edit.read_mask(str(tmp_path / "openai.png"), (64, 64), transparent_repaints=True)
    assert mask[:32].all() and not mask[32:].any()
    with pytest.raises(UserError, match="has no transparency"):
        edit.read_mask(str(tmp_path / "small-mask.png"), (64, 64), transparent_repaints=True)
    source = np.zeros((64, 64, 3), np.uint8)
    settings, src = edit.edit_settings(sd_entry, Geometry(8, native=64), source, np.zeros((64, 64), bool), [],
                                       device="CPU", prompt="a cat")
    assert settings.mode == "transform" and src.mask is None and any("mask is empty" in n for n in settings.notes)


@pytest.mark.unit
def test_parameters_and_code_name_the_mode(sd_entry):
    import dataclasses

    from demos.panels.image import code, files
    from demos.panels.image.settings import Geometry, resolve
    base = resolve(sd_entry, Geometry(8, native=64), device="CPU", prompt="a cat")
    assert "mode" not in files.parameters(base) and "Mode:" not in files.parameters_text(base)
    edit = dataclasses.replace(base, mode="inpaint", strength=0.6, source_sha256="ab" * 32)
    text = files.parameters_text(edit)
    assert "Mode: inpaint, Denoising strength: 0.6, Source sha256: abababababababab" in text
    assert files.parameters(edit)["pipeline"] == "openvino_genai.InpaintingPipeline"
    python = code.python_code(edit, "'sd'", {}, {})
    assert "ov_genai.InpaintingPipeline(model_dir, 'CPU')" in python and "mask_image=mask" in python
    assert "strength=0.6" in python and "width=" not in python
    cpp = code.cpp_code(dataclasses.replace(edit, mode="transform"), "\"sd\"", {}, {})
    assert "ov::genai::Image2ImagePipeline pipe(" in cpp and "ov::genai::strength(0.6f)" in cpp
    compile(python, "<python>", "exec")


# -------------------------------------------------------------------------------------------------------------
# The app against direct pipelines


@pytest.fixture(scope="module")
def client(tiny_app):
    from gradio_client import Client
    return Client(tiny_app.url, verbose=False)


@pytest.fixture(scope="module")
def direct(kit):
    """Both pipelines built from the folder, as the README and Show code tell users to."""
    import openvino as ov
    import openvino_genai as ov_genai

    sd = kit.diffusion
    adapters = {"style-kohya": ov_genai.Adapter(str(sd.lora_kohya)),
                "style-kohya-b": ov_genai.Adapter(str(sd.lora_kohya_b))}
    built = {}

    def generate(kind: str, source: np.ndarray, mask: np.ndarray | None = None, styles=None, strength=0.75,
                 seed=42) -> np.ndarray:
        if kind not in built:
            cls = ov_genai.Image2ImagePipeline if kind == "transform" else ov_genai.InpaintingPipeline
            built[kind] = cls(str(sd.ov), "CPU", adapters=ov_genai.AdapterConfig(list(adapters.values())),
                              INFERENCE_PRECISION_HINT="f32")
        config = ov_genai.AdapterConfig()
        for name, alpha in (styles or {}).items():
            config.add(adapters[name], alpha)
        extra = {}
        if mask is not None:
            extra["mask_image"] = ov.Tensor(np.repeat((mask >= 128).astype(np.uint8)[None, ..., None] * 255, 3, 3))
        return built[kind].generate(PROMPT, image=ov.Tensor(source[None]), strength=strength, num_inference_steps=4,
                                    guidance_scale=1.0, rng_seed=seed, adapters=config, **extra).data[0].copy()
    return generate


def test_edit_image_equals_the_direct_pipelines_and_styles_switch_exactly(client, direct, tmp_path):
    from gradio_client import handle_file
    source_path = _source(tmp_path)
    source = _png(str(source_path))
    Image.fromarray(_mask_array()).save(tmp_path / "mask.png")

    def edit(**kwargs):
        path, metrics = client.predict(handle_file(str(source_path)), PROMPT, "tiny-sd", api_name="/edit_image",
                                       **kwargs)
        return _png(path), metrics

    plain, metrics = edit()
    assert metrics["mode"] == "transform" and metrics["steps_run"] == 3 and metrics["strength"] == 0.75
    assert np.array_equal(plain, direct("transform", source)), "Transform equals Image2ImagePipeline.generate"
    inpainted, metrics = edit(mask=handle_file(str(tmp_path / "mask.png")), strength=1.0, seed=7)
    assert metrics["mode"] == "inpaint" and metrics["compiled"] is False
    assert np.array_equal(inpainted, direct("inpaint", source, _mask_array(), strength=1.0, seed=7))

    styled, _ = edit(adapters={"style-kohya": 0.8})
    assert not np.array_equal(styled, plain), "a style changes the result"
    assert np.array_equal(styled, direct("transform", source, styles={"style-kohya": 0.8}))
    blend, _ = edit(adapters={"style-kohya": 0.8, "style-kohya-b": 0.6})
    only_b, _ = edit(adapters={"style-kohya-b": 0.6})
    assert not np.array_equal(blend, styled) and not np.array_equal(blend, only_b), "two styles blend"
    assert np.array_equal(blend, direct("transform", source, styles={"style-kohya": 0.8, "style-kohya-b": 0.6}))
    again, _ = edit()
    back, _ = edit(adapters={"style-kohya": 0.8})
    assert np.array_equal(again, plain) and np.array_equal(back, styled), "A -> none -> A gives the same pictures"
    with Image.open(client.predict(handle_file(str(source_path)), PROMPT, "tiny-sd",
                                   api_name="/edit_image")[0]) as image:
        text = image.info["parameters"]
    assert "Mode: transform, Denoising strength: 0.75, Source sha256: " in text


def test_three_modes_share_one_pipeline_each_built_once(tiny_catalog_path, tmp_path):
    """Generate, Transform and Inpaint on one model: one pool entry, one compile, each mode's pipeline made once."""
    from demos.core.catalog import load_catalog
    from demos.core.suite import Suite
    from demos.panels.image import run
    from demos.panels.image.edit import Source
    from demos.panels.image.settings import geometry, resolve
    import dataclasses
    import hashlib

    catalog = load_catalog(tiny_catalog_path)
    suite = Suite.from_catalog(catalog, cache_dir=tmp_path / "cache")
    entry = next(e for e in catalog.image if e.id == "tiny-sd")
    handle = suite.load(entry)
    geo = geometry(handle.prepared.model_dir)
    plain = resolve(entry, geo, device="CPU", prompt=PROMPT)
    picture = np.random.RandomState(3).randint(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = _mask_array() >= 128
    for _ in range(2):
        for mode, source in (("generate", None), ("transform", Source(picture, None, "")),
                             ("inpaint", Source(picture, mask, ""))):
            settings = plain if mode == "generate" else dataclasses.replace(
                plain, mode=mode, strength=0.75, source_sha256=hashlib.sha256(picture.tobytes()).hexdigest())
            assert run.generate(handle, settings, source=source).image.shape == (SIZE, SIZE, 3)
    assert sum(suite.runtime.builds.values()) == 1 and len(suite.runtime.loaded_keys()) == 1
    assert dict(handle.loaded.modes.builds) == {"generate": 1, "transform": 1, "inpaint": 1}


@pytest.mark.parametrize("kwargs, message", [
    (dict(image=None), "Upload a picture to edit first"),
    (dict(image="empty"), "is empty (0 bytes)"),
    (dict(image="text"), "is not an image this demo can read"),
    (dict(strength=0), "strength 0 is out of range"),
    (dict(strength=1.5), "strength 1.5 is out of range"),
    (dict(prompt=""), "Write a prompt first"),
    (dict(adapters={"nope": 1}), "has no style 'nope'"),
])
def test_bad_edit_input_is_a_clear_message(client, tmp_path, kwargs, message):
    from gradio_client import handle_file
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    args = dict(image=str(_source(tmp_path)), prompt=PROMPT)
    args.update(kwargs)
    if args["image"] in ("empty", "text"):
        args["image"] = str(tmp_path / f"{args['image']}.png")
    image = args.pop("image")
    image = handle_file(image) if image else None
    with pytest.raises(Exception) as info:
        client.predict(image, args.pop("prompt"), "tiny-sd", api_name="/edit_image", **args)
    assert message in str(info.value) and "Traceback" not in str(info.value)


def test_notes_for_what_was_changed(client, tmp_path):
    from gradio_client import handle_file
    frames = [Image.new("RGB", (100, 100), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("L", (32, 32), 0).save(tmp_path / "empty-mask.png")
    path, metrics = client.predict(handle_file(str(tmp_path / "anim.gif")), PROMPT, "tiny-sd",
                                   mask=handle_file(str(tmp_path / "empty-mask.png")), api_name="/edit_image")
    notes = " | ".join(metrics["notes"])
    assert "2 frames: its first frame was used" in notes and "100×100 → 96×96" in notes
    assert "was scaled to the picture's 96×96" in notes and "mask is empty" in notes and metrics["mode"] == "transform"
    assert _png(path).shape == (96, 96, 3)


def test_stop_ends_an_edit_early_and_the_next_one_works(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.utils import Status
    source = handle_file(str(_source(tmp_path)))
    # The longest edit the entry allows: 200 steps with guidance on a picture twice the model's side (~4x the work
    # per step); Stop is sent as soon as the job runs, not after a fixed sleep a fast machine outruns.
    big = tmp_path / "big.png"
    Image.fromarray(np.random.RandomState(4).randint(0, 255, (2 * SIZE, 2 * SIZE, 3), dtype=np.uint8)).save(big)
    job = client.submit(handle_file(str(big)), PROMPT, "tiny-sd", strength=1.0, steps=200, guidance_scale=7.5,
                        api_name="/edit_image")
    deadline = time.monotonic() + 60
    while job.status().code != Status.PROCESSING and not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    client.predict(api_name="/stop_images")
    with pytest.raises(Exception) as info:
        job.result(timeout=120)
    assert "stopped before it was finished" in str(info.value)
    path, metrics = client.predict(source, PROMPT, "tiny-sd", api_name="/edit_image")
    assert _png(path).shape == (SIZE, SIZE, 3) and metrics["steps_run"] == 3


# -------------------------------------------------------------------------------------------------------------
# Browser


def test_browser_generates_inpaints_a_painted_mask_and_compares(tiny_app, tmp_path):
    from tests.browser import browser_page, choose, open_tab, screenshot

    with browser_page() as page:
        open_tab(page, tiny_app.url, "Image")
        choose(page, "image-model", "Tiny Stable Diffusion")
        page.locator("#image-prompt textarea").fill("a red house in the forest")
        assert page.locator("#image-stop.stop").count() == 0, "Stop is grey while nothing runs"
        page.locator("#image-generate").click()
        page.locator("#image-status").get_by_text("Done: 1 image(s)").wait_for()
        # "Edit this picture": the result goes to Inpaint's canvas in one click.
        page.locator("#image-send-inpaint").click()
        page.locator("#image-edit").get_by_text("Inpaint").wait_for()
        canvas = page.locator("#image-canvas canvas").first
        canvas.wait_for()
        page.wait_for_timeout(2000)  # the editor loads the background and arms its brush (a stroke before is lost)
        box = canvas.bounding_box()
        for row in (0.4, 0.5):
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * row)
            page.mouse.down()
            for step in range(12):
                page.mouse.move(box["x"] + box["width"] * (0.3 + step * 0.03), box["y"] + box["height"] * row,
                                steps=3)
            page.mouse.up()
            page.wait_for_timeout(200)
        screenshot(page, "image-inpaint-painted")
        page.locator("#image-edit").click()
        page.wait_for_function("document.querySelector('#image-parameters textarea').value.includes('Mode: inpaint')")
        page.locator("#image-status").get_by_text("Done: 1 image(s)").wait_for()
        slider = page.locator("#image-compare-slider")
        slider.wait_for()
        assert "Source ◀ ▶ result" in slider.inner_text() and slider.locator("img").count() == 2
        screenshot(page, "image-inpaint-compare")
        # Transform: upload a picture of one's own.
        page.locator("#image-mode").get_by_text("Transform", exact=True).click()
        page.locator("#image-source input[type=file]").set_input_files(str(_source(tmp_path)))
        page.locator("#image-source img").wait_for()
        page.locator("#image-edit").click()
        # The status already says "Done" from the inpaint: wait for this run's parameters instead.
        page.wait_for_function("document.querySelector('#image-parameters textarea').value.includes('Mode: transform')")
        page.locator("#image-status").get_by_text("Done: 1 image(s)").wait_for()
        screenshot(page, "image-transform")
        page.wait_for_function("!document.querySelector('#image-stop').classList.contains('stop')")  # grey again
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        screenshot(page, "image-transform-phone")
