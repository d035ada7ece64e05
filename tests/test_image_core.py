"""The image panel's core, in process, on the tiny Stable Diffusion kit: settings, styles, stop, files, code."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import yaml

from demos.panels.image import code as image_code

from demos.panels.image import files as image_files

from demos.panels.image import run as image_run
from demos.core.catalog import load_catalog
from demos.panels.image.settings import Geometry, defaults, geometry, resolve, snap
from demos.core.suite import Suite


@pytest.fixture(scope="module")
def suite(kit, tmp_path_factory) -> Suite:
    """A suite on the tiny image entries: the kit's SD entry plus an LCM entry that sets no generation defaults."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("image-core")
    catalog = catalog_dict(kit, folder / "cache")
    doc = {"settings": catalog["settings"],
           "image": catalog["image"] + [{"id": "tiny-lcm", "label": "Tiny LCM", "source": str(kit.diffusion.ov_lcm)}]}
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Suite.from_catalog(load_catalog(path))


@pytest.fixture(scope="module")
def handle(suite):
    return suite.load(suite.catalog.entry("tiny-sd"), "CPU")


def _settings(suite, handle, entry_id="tiny-sd", **overrides):
    entry = suite.catalog.entry(entry_id)
    inputs = dict(device="CPU", prompt="a photo of a cat", seed=42)
    inputs.update(overrides)
    return resolve(entry, geometry(handle.prepared.model_dir if entry_id == "tiny-sd" else entry.source), **inputs)


# ---------------------------------------------------------------------------------------------------------
# Settings: defaults, snapping, clear refusals (no pipeline involved)


def test_sizes_snap_to_the_vae_factor_with_a_note(suite, handle):
    assert geometry(handle.prepared.model_dir).factor == 8
    assert snap(100, 8) == 104 and snap(99, 8) == 96 and snap(3, 8) == 8
    settings = _settings(suite, handle, width=100, height=60)
    assert (settings.width, settings.height) == (104, 64)
    assert any("width 100 → 104" in note for note in settings.notes)


def test_zero_means_the_entry_default_and_lcm_defaults_come_from_the_model(suite, handle, kit):
    plain = _settings(suite, handle, width=0, height=0, steps=0, guidance_scale=-1)
    assert (plain.width, plain.height, plain.steps, plain.guidance_scale) == (64, 64, 4, 1.0)
    assert plain.notes == ()
    lcm_geo = geometry(kit.diffusion.ov_lcm)
    assert lcm_geo.lcm and lcm_geo.native == 64
    lcm = defaults(suite.catalog.entry("tiny-lcm"), lcm_geo)
    assert (lcm.width, lcm.height, lcm.steps, lcm.guidance_scale) == (64, 64, 4, 1.0)
    # Without the model on disk the catalog's own defaults apply.
    assert defaults(suite.catalog.entry("tiny-lcm"), Geometry()).steps == 20


@pytest.mark.parametrize("overrides, message", [
    (dict(prompt="   "), "Write a prompt first"),
    (dict(width=100000), "width 100000 is too large for this model: use at most 128"),
    (dict(height=4), "height 4 is too small: use at least 64"),
    (dict(steps=1000), "steps 1000 is too many: use 1 to 200"),
    (dict(guidance_scale=99), "guidance scale 99 is too high"),
    (dict(seed=2**40), "seed 1099511627776 is too large"),
    (dict(styles={"sepia": 1.0}), "model 'tiny-sd' has no style 'sepia'; its styles: style-kohya, style-kohya-b"),
    (dict(styles={"style-kohya": 9}), "weight of style 'style-kohya' is 9"),
])
def test_bad_settings_are_refused_with_what_to_do(suite, handle, overrides, message):
    with pytest.raises((ValueError, KeyError)) as info:
        _settings(suite, handle, **overrides)
    assert message in str(info.value.args[0])


def test_negative_prompt_is_dropped_without_guidance(suite, handle):
    settings = _settings(suite, handle, negative_prompt="blurry", guidance_scale=1.0)
    assert settings.negative_prompt == "" and any("negative prompt ignored" in n for n in settings.notes)
    assert _settings(suite, handle, negative_prompt="blurry", guidance_scale=5).negative_prompt == "blurry"


# ---------------------------------------------------------------------------------------------------------
# Styles on the real pipeline


def test_style_switching_is_exact_and_never_rebuilds(suite, handle):
    key = handle.loaded.key
    assert dict(key.properties)["INFERENCE_PRECISION_HINT"] == "f32"  # the image panel's exact default on CPU

    def image(**styles):
        return image_run.generate(handle, _settings(suite, handle, styles=styles)).image

    styled = image(**{"style-kohya": 0.8})
    plain = image()
    again = image(**{"style-kohya": 0.8})
    assert np.array_equal(styled, again), "A -> none -> A must reproduce A"
    assert not np.array_equal(styled, plain)
    blend = image(**{"style-kohya": 0.8, "style-kohya-b": 0.6})
    only_b = image(**{"style-kohya-b": 0.6})
    assert not np.array_equal(blend, styled) and not np.array_equal(blend, only_b)
    assert np.array_equal(image(**{"style-kohya": 0.0}), plain), "weight 0 is off"
    assert suite.runtime.builds[key] == 1
    assert suite.load(suite.catalog.entry("tiny-sd"), "CPU").built_now is False


def test_diffusers_layout_applies_like_the_kohya_one(suite, handle):
    """The kit wrote both files from the same factors; genai ignores kohya's .alpha, so equal weights match."""
    assert handle.prepared.adapters["style-diffusers"].parent.name == "adapters"  # converted into the cache
    kohya = image_run.generate(handle, _settings(suite, handle, styles={"style-kohya": 0.7})).image
    diffusers = image_run.generate(handle, _settings(suite, handle, styles={"style-diffusers": 0.7})).image
    plain = image_run.generate(handle, _settings(suite, handle)).image
    assert np.array_equal(kohya, diffusers) and not np.array_equal(diffusers, plain)


def test_stop_ends_at_the_next_step_and_the_pipeline_stays_usable(suite, handle):
    settings = _settings(suite, handle, steps=40)
    flag = threading.Event()
    seen = []

    def on_step(done, total, preview):
        seen.append((done, total, preview is not None))
        if done == 3:
            flag.set()

    stopped = image_run.generate(handle, settings, on_step=on_step, stop=flag, preview_every=2)
    assert stopped.stopped and stopped.image is None and stopped.steps_done == 3
    assert seen[1] == (2, 40, True), "a preview is decoded every second step"
    assert stopped.preview is not None and stopped.preview.shape == (64, 64, 3)
    full = image_run.generate(handle, settings)
    assert not full.stopped and full.steps_done == 40 and full.image.shape == (64, 64, 3)


def test_previews_do_not_change_the_image(suite, handle):
    settings = _settings(suite, handle, steps=6)
    with_previews = image_run.generate(handle, settings, preview_every=1, on_step=lambda *a: None).image
    assert np.array_equal(with_previews, image_run.generate(handle, settings).image)


# ---------------------------------------------------------------------------------------------------------
# Files and code


def test_png_carries_its_parameters(suite, handle, tmp_path):
    settings = _settings(suite, handle, styles={"style-kohya": 0.5}, seed=7)
    result = image_run.generate(handle, settings)
    geo = geometry(handle.prepared.model_dir)
    path = image_files.save_png(result.image, tmp_path / "x.png", settings, geo, "Tiny SD")
    from PIL import Image
    with Image.open(path) as png:
        assert png.format == "PNG" and np.array_equal(np.asarray(png), result.image)
        text = png.info["parameters"]
    assert text.startswith("a photo of a cat\n") and "Seed: 7" in text and "LoRA: style-kohya:0.5" in text
    assert "Sampler: EulerDiscreteScheduler" in text
    saved = image_files.read_parameters(path)
    assert saved["seed"] == 7 and saved["styles"] == {"style-kohya": 0.5} and saved["width"] == 64


def test_python_code_reproduces_the_image(suite, handle, tmp_path, monkeypatch):
    """The Show-code snippet, run as written, gives the app's pixels."""
    settings = _settings(suite, handle, styles={"style-kohya": 0.8, "style-diffusers": 0.3}, seed=5)
    expected = image_run.generate(handle, settings).image
    paths = {a: f"{str(p)!r}" for a, p in handle.prepared.adapters.items()}
    code = image_code.python_code(settings, repr(str(handle.prepared.model_dir)), paths,
                                  suite.properties(suite.catalog.entry("tiny-sd"), "CPU"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "show-code.py", "exec"), {"__name__": "__snippet__"})  # noqa: S102 - our own snippet
    from PIL import Image
    with Image.open(tmp_path / "image.png") as png:
        assert np.array_equal(np.asarray(png), expected)
    cpp = image_code.cpp_code(settings, '"/m"', paths, {"INFERENCE_PRECISION_HINT": "f32"})
    assert "ov::genai::rng_seed(5)" in cpp and "ov::genai::guidance_scale(1.0f)" in cpp
    assert "ov::genai::adapters({{style_kohya, 0.8f}, {style_diffusers, 0.3f}})" in cpp
    assert cpp.count("{") == cpp.count("}") and cpp.count("(") == cpp.count(")")


def test_presenter_warm_up_generates_with_the_stage_settings_without_rebuilding(suite, handle):
    from demos.panels.image import layout as image

    image.warm_up(suite.catalog.entry("tiny-sd"), suite)
    assert suite.runtime.builds[handle.loaded.key] == 1
