"""The test tiers themselves, and unit tests of pure functions that had none.

The ``unit`` tier (``python -m pytest -m unit``) needs no model kit: the tests at the end prove the tier runs on an
empty model cache without building anything, and that the markers are enforced (a unit test asking for the kit or
importing torch fails). In between: catalog-free helpers of the panels (LoRA headers, image settings, chat
settings and messages, metrics card, Show-code literals, audio arrays) and the per-test cache isolation.
"""
from __future__ import annotations

import json
import os
import pwd
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from demos.core import audio

from demos.core import lora

from demos.core import snippets
from demos.core.catalog import DEFAULT_CACHE_DIR, load_catalog
from demos.panels.chat.engine import Settings, default_settings, speedup, text_of, to_messages, validate
from demos.panels.image.settings import Geometry, defaults, geometry, resolve, snap
from tests.conftest import REAL_TINY_MODELS_CACHE, ROOT

unit = pytest.mark.unit


def _catalog(tmp_path: Path, text: str):
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(text))
    return load_catalog(path)


# ---------------------------------------------------------------------------------------------------------
# LoRA safetensors headers


def _safetensors(path: Path, header: dict, data: bytes = b"") -> Path:
    path.write_bytes(_file(header, data))
    return path


@unit
def test_lora_header_is_read_without_the_tensors(tmp_path):
    header = {"__metadata__": {"ss_network_alpha": "8"},
              "lora_unet_mid.lora_down.weight": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]},
              "lora_unet_mid.lora_up.weight": {"dtype": "F32", "shape": [2, 4], "data_offsets": [32, 64]}}
    table = lora.read_table(_safetensors(tmp_path / "a.safetensors", header, bytes(64)))
    assert table.names == ["lora_unet_mid.lora_down.weight", "lora_unet_mid.lora_up.weight"]
    assert table.metadata == {"ss_network_alpha": "8"}
    assert table.data_start == 8 + len(json.dumps(header).encode())
    assert lora.is_lora(table) and not lora.needs_conversion(table)


@unit
def test_diffusers_keys_need_conversion_and_plain_weights_are_no_lora(tmp_path):
    diffusers = {"unet.mid.to_q.lora_A.weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}
    assert lora.needs_conversion(lora.read_table(_safetensors(tmp_path / "d.safetensors", diffusers, bytes(2))))
    plain = {"model.embed.weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}
    assert not lora.is_lora(lora.read_table(_safetensors(tmp_path / "p.safetensors", plain, bytes(2))))


def _file(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@unit
@pytest.mark.parametrize("content, message", [
    (b"", "only 0 bytes"),
    (struct.pack("<Q", 10**9) + b"{}", "bad header length"),
    (_file(b"{not json"), "unreadable header"),
    (_file(b"[1, 2, 3]"), "header is not a table"),
    (_file({"t": {"dtype": "F32", "shape": [1]}}), "tensor 't' has no byte range"),
    (_file({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "truncated or corrupt"),
    (_file({"__metadata__": {"a": "b"}}), "holds no tensors"),
], ids=["empty", "length", "json", "list", "no-range", "truncated", "no-tensors"])
def test_lora_header_errors_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(lora.AdapterFormatError, match=message):
        lora.read_table(path)


# ---------------------------------------------------------------------------------------------------------
# Image settings


IMAGE_YAML = """
image:
  - id: sd
    source: OpenVINO/some-sd-ov
    examples: ["a red fox"]
    negative_prompt: blurry
    adapters:
      - {id: ink, source: someone/ink-lora, file: ink.safetensors}
"""


@unit
@pytest.mark.parametrize("value, factor, expected", [(512, 8, 512), (515, 8, 512), (516, 8, 520), (3, 8, 8),
                                                     (0, 16, 16), (1000, 16, 1008)])
def test_snap_picks_the_nearest_multiple_never_below_the_factor(value, factor, expected):
    assert snap(value, factor) == expected


@unit
def test_geometry_reads_the_model_folder_and_defaults_follow_it(tmp_path):
    (tmp_path / "vae_decoder").mkdir()
    (tmp_path / "vae_decoder" / "config.json").write_text(json.dumps({"block_out_channels": [1, 2, 3]}))
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"sample_size": 96}))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "LatentConsistencyModelPipeline"}))
    geo = geometry(tmp_path)
    assert (geo.factor, geo.native, geo.lcm, geo.min_side) == (4, 384, True, 32)
    assert geometry(tmp_path / "missing") == Geometry() == geometry(None)
    entry = _catalog(tmp_path, IMAGE_YAML).entry("sd")
    assert defaults(entry, geo) == defaults(entry, Geometry(4, "", "LCMScheduler", 384))
    native = defaults(entry, geo)
    assert (native.width, native.height, native.steps, native.guidance_scale) == (384, 384, 4, 1.0)


@unit
def test_image_resolve_defaults_snaps_and_notes(tmp_path):
    entry = _catalog(tmp_path, IMAGE_YAML).entry("sd")
    geo = Geometry(factor=8, native=512)
    settings = resolve(entry, geo, device="CPU", prompt="  a cat ", width=515, height=0, steps=0, seed=7,
                       guidance_scale=-1, styles={"ink": 0.5})
    assert (settings.prompt, settings.width, settings.height, settings.seed) == ("a cat", 512, 512, 7)
    assert settings.negative_prompt == "blurry" and settings.styles == (("ink", 0.5),)
    assert settings.notes == ("width 515 → 512 (this model needs multiples of 8)",)
    assert settings.without_styles().styles == () and settings.with_seed(9).seed == 9
    quiet = resolve(entry, geo, device="CPU", prompt="x", negative_prompt="ugly", guidance_scale=1)
    assert quiet.negative_prompt == "" and "negative prompt ignored" in quiet.notes[0]


@unit
@pytest.mark.parametrize("overrides, message", [
    ({"prompt": " "}, "Write a prompt first.*'a red fox'"),
    ({"width": 1025}, "width 1025 is too large.*at most 1024"),
    ({"height": 20}, "height 20 is too small: use at least 64"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"steps": 201}, "steps 201 is too many"),
    ({"guidance_scale": 31}, "guidance scale 31 is too high"),
    ({"seed": 2**32}, "seed 4294967296 is too large"),
    ({"styles": {"oil": 1}}, "no style 'oil'; its styles: ink"),
    ({"styles": {"ink": 5}}, "between -4 and 4"),
])
def test_image_resolve_refuses_with_what_to_do(tmp_path, overrides, message):
    entry = _catalog(tmp_path, IMAGE_YAML).entry("sd")
    arguments = {"device": "CPU", "prompt": "a cat", **overrides}
    with pytest.raises((ValueError, KeyError), match=message):
        resolve(entry, Geometry(factor=8, native=512), **arguments)


# ---------------------------------------------------------------------------------------------------------
# Chat settings and messages


CHAT_YAML = """
chat:
  - id: llm
    source: OpenVINO/some-llm-ov
    generation: {max_new_tokens: 64, temperature: 0.7, top_p: 0.9}
    adapters:
      - {id: pirate, source: someone/pirate-lora, file: pirate.safetensors}
"""


@unit
def test_chat_defaults_keep_the_entrys_unless_overridden(tmp_path):
    entry = _catalog(tmp_path, CHAT_YAML).entry("llm")
    base = default_settings(entry)
    assert (base.max_new_tokens, base.temperature, base.top_p) == (64, 0.7, 0.9)
    kept = default_settings(entry, max_new_tokens=0, top_p=None, temperature=-1, draft="")
    assert kept == base, "zero, None, empty and a negative temperature mean the entry's default"
    changed = default_settings(entry, max_new_tokens=8, temperature=0, seed=0, adapters=(("pirate", 1.0),))
    assert (changed.max_new_tokens, changed.temperature, changed.seed) == (8, 0.0, 0)
    assert changed.adapters == (("pirate", 1.0),)


@unit
@pytest.mark.parametrize("changes, message", [
    ({"adapters": (("ninja", 1.0),)}, "no adapter 'ninja'; its adapters: pirate"),
    ({"adapters": (("pirate", 5.0),)}, "alpha 5.0 is out of range"),
    ({"adapters": (("pirate", 1.0), ("pirate", 0.5))}, "the same adapter is chosen twice"),
    ({"draft": "fast"}, "no draft 'fast'; its drafts: none"),
    ({"max_new_tokens": 0}, "at least 1"),
    ({"temperature": 2.5}, "temperature 2.5 is out of range"),
    ({"top_p": 0.0}, "top-p 0.0 is out of range"),
    ({"repetition_penalty": 0.0}, "repetition penalty must be above 0"),
    ({"confidence_threshold": 1.0}, "must be below 1"),
])
def test_chat_validate_names_what_to_fix(tmp_path, changes, message):
    entry = _catalog(tmp_path, CHAT_YAML).entry("llm")
    validate(entry, default_settings(entry))  # the defaults themselves are valid
    with pytest.raises((ValueError, KeyError), match=message):
        validate(entry, default_settings(entry).replace(**changes))


@unit
def test_text_of_reads_every_content_shape():
    assert text_of(None) == "" and text_of("hi") == "hi"
    assert text_of([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert text_of({"content": "c"}) == "c" and text_of(3) == "3"


@unit
def test_system_prompt_replaces_the_historys_and_bad_roles_are_named():
    history = [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}]
    assert to_messages(history, " new ", "next") == [{"role": "system", "content": "new"},
                                                     {"role": "user", "content": "hi"},
                                                     {"role": "user", "content": "next"}]
    assert to_messages(history, "", "next")[0] == {"role": "system", "content": "old"}
    with pytest.raises(ValueError, match=r"history\[0\].role is 'bot'; use one of system, user, assistant"):
        to_messages([{"role": "bot", "content": "x"}], "", "y")
    with pytest.raises(ValueError, match=r"history\[0\] must be a message"):
        to_messages(["hello"], "", "y")


@unit
def test_speedup_compares_end_to_end_tokens_per_second():
    assert speedup({"output_tokens": 20, "generate_s": 2.0}, {"output_tokens": 30, "generate_s": 1.2}) == 2.5
    assert speedup({}, {"output_tokens": 30, "generate_s": 1.2}) is None
    assert speedup({"output_tokens": 0, "generate_s": 1.0}, {"output_tokens": 3, "generate_s": 1.0}) is None


# ---------------------------------------------------------------------------------------------------------
# Metrics card and Show-code literals


@unit
def test_metrics_markdown_formats_known_names_and_skips_empty_ones():
    from demos.ui.widgets import metrics_markdown
    text = metrics_markdown({"ttft_ms": 35.4, "tokens_per_s": 41.25, "load_s": None, "warning": "",
                             "acceptance_rate": 0.5, "custom_thing": 3, "audio_s": "n/a"})
    assert text == ("**TTFT** 35 ms · **Throughput** 41.2 tokens/s · **Acceptance** 50% · **Custom thing** 3 · "
                    "**Audio** n/a")


@unit
def test_cpp_literals_escape_and_spell_values_as_cpp():
    assert snippets.cpp_string('say "hi"\\n\n') == '"say \\"hi\\"\\\\n\\n"'
    assert snippets.cpp_string("grüße") == '"grüße"'
    assert [snippets.cpp_value(v) for v in (True, False, 3, 0.5, "f32")] == ["true", "false", "3", "0.5", '"f32"']


# ---------------------------------------------------------------------------------------------------------
# Audio arrays


@unit
def test_audio_to_float_scales_each_integer_width():
    assert audio.to_float(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.to_float(np.array([-2**31, 2**30], np.int32)).tolist() == [-1.0, 0.5]
    assert audio.to_float(np.array([0, 128, 192], np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert audio.to_float(np.array([-3.0, 0.25, 2.0])).tolist() == [-1.0, 0.25, 1.0]
    with pytest.raises(audio.AudioError, match="not supported"):
        audio.to_float(np.array(["a"]))


@unit
def test_audio_to_mono_averages_whichever_axis_holds_the_channels():
    stereo = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]], np.float32)
    assert audio.to_mono(stereo).tolist() == [0.5, 0.5, 0.5]
    assert audio.to_mono(stereo.T).tolist() == [0.5, 0.5, 0.5]
    assert audio.to_mono(np.zeros((5, 1), np.float32)).shape == (5,)
    with pytest.raises(audio.AudioError, match="1-D"):
        audio.to_mono(np.zeros((2, 2, 2)))


@unit
def test_audio_resample_keeps_pitch_and_duration():
    rate = 44100
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    out = audio.resample(tone, rate)
    assert abs(len(out) - 16000) <= 32
    assert abs(int(np.argmax(np.abs(np.fft.rfft(out[:16000])))) - 440) <= 1
    assert np.array_equal(audio.resample(tone, 16000), tone), "already 16 kHz: unchanged"
    with pytest.raises(audio.AudioError, match="invalid sample rate"):
        audio.resample(tone, 0)


# ---------------------------------------------------------------------------------------------------------
# Isolation (tests/conftest.py): no test reaches the user's caches


@unit
def test_every_cache_default_points_into_the_tests_own_folders(tmp_path):
    home = Path(os.environ["HOME"])
    assert home != Path(pwd.getpwuid(os.getuid()).pw_dir) and home.is_relative_to(tmp_path.parents[1]), home
    assert Path(DEFAULT_CACHE_DIR).expanduser().is_relative_to(home)
    assert Path(os.environ["XDG_CACHE_HOME"]).is_relative_to(home)
    assert Path(os.environ["HF_HOME"]) == tmp_path / "hf-home", "each test has its own HF_HOME"
    assert not any(name in os.environ for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"))
    assert os.environ["TINY_MODELS_CACHE"] == REAL_TINY_MODELS_CACHE, "the model kit stays shared"


@unit
@pytest.mark.parametrize("run", [1, 2])  # the second run finds huggingface_hub imported by the first
def test_huggingface_hub_follows_each_tests_home(tmp_path, run):
    from huggingface_hub import constants
    assert constants.HF_HUB_CACHE == str(tmp_path / "hf-home" / "hub")
    assert constants.HF_TOKEN_PATH == str(tmp_path / "hf-home" / "token")


# ---------------------------------------------------------------------------------------------------------
# The tiers themselves (models tier: each runs pytest in a subprocess)


def _pytest(*args: str, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TINY_MODELS_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unit_tier_runs_on_an_empty_model_cache_without_building(tmp_path):
    cache = tmp_path / "empty-model-cache"
    cache.mkdir()
    result = _pytest("-m", "unit", "-q", cache=cache)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    passed = int(result.stdout.split(" passed")[0].rsplit(maxsplit=1)[-1])
    assert passed >= 60, result.stdout[-500:]
    assert list(cache.iterdir()) == [], "the unit tier built or cached something"


@pytest.mark.parametrize("body, expected", [
    ("def test_x(kit):\n    pass\n", "unit tests must not use the model kit"),
    ("def test_x():\n    from tests.kit import build_all\n    build_all()\n",
     "tried to build or open the tiny model kit"),
    ("def test_x():\n    import torch\n", "a unit test imported ['torch"),
])
def test_a_unit_test_cannot_use_the_kit_or_torch(tmp_path, body, expected):
    # The probe lives outside tests/, so this repository's conftest is loaded as a plugin.
    path = tmp_path / "test_probe.py"
    path.write_text("import pytest\n\npytestmark = pytest.mark.unit\n\n\n" + body)
    result = _pytest("-c", str(ROOT / "pytest.ini"), "--rootdir", str(ROOT), "-p", "tests.conftest", str(path),
                     cache=tmp_path / "cache")
    assert result.returncode != 0 and expected in result.stdout + result.stderr, result.stdout[-3000:]
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_every_test_is_unit_or_models_and_browser_files_are_browser(tmp_path):
    result = _pytest("--collect-only", "-q", "-m", "browser or not (unit or models)", cache=tmp_path / "cache")
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert selected and all(line.startswith("tests/test_browser_") or "::test_browser_" in line
                            for line in selected), result.stdout[-2000:]
    assert "tests/test_image_app.py::test_browser_generates_switches_a_style_and_back" in selected
