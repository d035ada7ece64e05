"""LoRA adapter modes: the catalog takes only modes that switch per call, and those switch exactly.

Each accepted mode (``lora_modes.SWITCHES_PER_CALL``) runs A -> none -> B -> A on one pipeline built once, through
the panels' own engines (chat: the batched pipeline the app serves; image: ``image_run.generate``), compared with
a pipeline without adapters. The refused modes are shown to be unable to do it on a direct genai pipeline: that is
the fact the refusal rests on, and this test fails when a genai release changes it.
"""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from demos.core import lora_modes
from demos.core.catalog import CatalogError, load_catalog
from demos.core.suite import Suite

EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPT = "Tell me a story about a cat."


# ---------------------------------------------------------------------------------------------------------
# The catalog (no model)


def _catalog(tmp_path, chat_mode=None, image_mode=None, speech_mode=None):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "openvino_model.xml").write_text("<net/>")
    adapter = tmp_path / "a.safetensors"
    adapter.write_bytes(b"")

    def entry(entry_id, mode):
        return {"id": entry_id, "source": str(model), "adapters": [{"id": "a", "source": str(adapter)}],
                **({"lora_mode": mode} if mode is not None else {})}

    doc = {"chat": [entry("tl-chat", chat_mode)], "image": [entry("sd-image", image_mode)],
           "speech": [{"id": "whisper", "source": str(model), **({"lora_mode": speech_mode} if speech_mode else {})}]}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["static_rank", "static", "fuse"])
def test_a_mode_that_cannot_switch_per_call_is_refused_naming_entry_and_mode(tmp_path, mode):
    with pytest.raises(CatalogError) as caught:
        load_catalog(_catalog(tmp_path, chat_mode=mode, image_mode=mode))
    chat, image = caught.value.problems
    assert chat.startswith(f"chat[tl-chat].lora_mode: '{mode}' ") and "per answer" in chat
    assert image.startswith(f"image[sd-image].lora_mode: '{mode}' ") and "per picture" in image
    for line in (chat, image):
        assert "choose dynamic (the default) or auto" in line, line


@pytest.mark.unit
def test_an_unknown_mode_is_refused_with_the_modes_to_choose(tmp_path):
    with pytest.raises(CatalogError) as caught:
        load_catalog(_catalog(tmp_path, chat_mode="MODE_DYNAMIC", image_mode="fast", speech_mode="auto"))
    problems = caught.value.problems
    assert "speech[whisper].lora_mode: unknown field 'lora_mode': adapter modes apply to the chat and image " \
           "panels only" in problems[0]
    assert problems[1].startswith("chat[tl-chat].lora_mode: 'MODE_DYNAMIC' is not an adapter mode; choose dynamic "
                                  "(the default) or auto")
    assert problems[2].startswith("image[sd-image].lora_mode: 'fast' is not an adapter mode")


@pytest.mark.unit
def test_accepted_modes_and_the_default_reach_the_pipeline_key(tmp_path):
    from demos.core.runtime import PipelineKey
    catalog = load_catalog(_catalog(tmp_path, chat_mode="auto"))
    chat, image = catalog.entry("tl-chat"), catalog.entry("sd-image")
    assert (lora_modes.mode_for(chat), lora_modes.mode_for(image)) == ("auto", lora_modes.DEFAULTS["image"])
    with_adapter = PipelineKey.make("chat", "m", "CPU", ["a.safetensors"], lora_mode="auto")
    assert with_adapter.lora_mode == "auto"
    assert with_adapter != PipelineKey.make("chat", "m", "CPU", ["a.safetensors"], lora_mode="dynamic")
    assert PipelineKey.make("chat", "m", "CPU", lora_mode="auto").lora_mode == "", "no adapters: no mode"


# ---------------------------------------------------------------------------------------------------------
# Switching, per accepted mode, pipeline built once


@pytest.fixture(scope="module")
def plain_chat(kit) -> str:
    """The tiny LLM's greedy answer from a pipeline without adapters, on the messages the chat engine sends."""
    import openvino_genai as ov_genai
    pipe = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU", **EXACT)
    chat = ov_genai.ChatHistory([{"role": "user", "content": PROMPT}])
    return pipe.generate(chat, max_new_tokens=24, do_sample=False).texts[0]


def _suite(kit, tmp_path, mode: str) -> Suite:
    from tests.kit import catalog_dict
    doc = catalog_dict(kit, tmp_path / "cache")
    doc = {"settings": doc["settings"], "chat": doc["chat"][:1], "image": doc["image"]}
    for panel in ("chat", "image"):
        doc[panel][0]["lora_mode"] = mode
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Suite.from_catalog(load_catalog(path))


@pytest.mark.parametrize("mode", lora_modes.SWITCHES_PER_CALL)
def test_chat_switching_is_exact_in_every_accepted_mode(kit, tmp_path, plain_chat, mode):
    from demos.panels.chat.engine import Reply, default_settings, open_pipeline, stream_reply, to_messages
    suite = _suite(kit, tmp_path, mode)
    entry = suite.catalog.entry("tiny-llm")
    settings = default_settings(entry, max_new_tokens=24)
    messages = to_messages([], "", PROMPT)

    def answer(*adapters) -> str:
        chosen = settings.replace(adapters=tuple(adapters))
        *_, reply = stream_reply(open_pipeline(suite, entry, "CPU", chosen, messages), messages, chosen)
        assert isinstance(reply, Reply)
        return reply.text

    first_a, none, only_b, again_a = (answer(*s) for s in ((("lora-a", 1.0),), (), (("lora-b", 1.0),),
                                                          (("lora-a", 1.0),)))
    (key, builds), = suite.runtime.builds.items()
    assert builds == 1 and key.batched and key.lora_mode == mode, "one pipeline, in the entry's mode, served batched"
    assert again_a == first_a, "A -> none -> B -> A must reproduce A"
    assert none == plain_chat, "none must answer as a pipeline without adapters"
    assert len({first_a, none, only_b}) == 3, "each adapter changes the answer"


@pytest.mark.parametrize("mode", lora_modes.SWITCHES_PER_CALL)
def test_image_switching_is_exact_in_every_accepted_mode(kit, tmp_path, mode):
    import openvino_genai as ov_genai

    from demos.panels.image import run as image_run
    from demos.panels.image.settings import geometry, resolve
    suite = _suite(kit, tmp_path, mode)
    entry = suite.catalog.entry("tiny-sd")
    handle = suite.load(entry, "CPU")

    def image(**styles) -> np.ndarray:
        settings = resolve(entry, geometry(handle.prepared.model_dir), device="CPU", prompt="a photo of a cat",
                           seed=42, styles=styles)
        return image_run.generate(handle, settings).image

    first_a, none, only_b, again_a = (image(**s) for s in ({"style-kohya": 0.8}, {}, {"style-kohya-b": 0.8},
                                                           {"style-kohya": 0.8}))
    plain = ov_genai.Text2ImagePipeline(str(kit.diffusion.ov), "CPU", **EXACT).generate(
        "a photo of a cat", width=64, height=64, num_inference_steps=4, guidance_scale=1.0, rng_seed=42).data[0]
    assert suite.runtime.builds[handle.loaded.key] == 1 and handle.loaded.key.lora_mode == mode
    assert np.array_equal(again_a, first_a), "A -> none -> B -> A must reproduce A"
    assert np.array_equal(none, plain), "none must give the picture of a pipeline without adapters"
    assert not np.array_equal(first_a, none) and not np.array_equal(only_b, first_a)


@pytest.mark.parametrize("mode", sorted(set(lora_modes.MODES) - set(lora_modes.SWITCHES_PER_CALL)))
def test_the_refused_modes_really_cannot_switch_per_call(kit, mode):
    """Why the catalog refuses them: on a direct LLMPipeline, A -> none -> B does not give three answers."""
    import openvino_genai as ov_genai
    a, b = ov_genai.Adapter(str(kit.llm.lora_a)), ov_genai.Adapter(str(kit.llm.lora_b))
    pipe = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU", adapters=lora_modes.registration([a, b], mode),
                                scheduler_config=ov_genai.SchedulerConfig(), **EXACT)
    answers = []
    for chosen in ([(a, 1.0)], [], [(b, 1.0)]):
        try:
            config = ov_genai.AdapterConfig(chosen) if chosen else ov_genai.AdapterConfig()
            answers.append(pipe.generate(PROMPT, max_new_tokens=12, do_sample=False, adapters=config))
        except RuntimeError as error:  # static_rank: a call's rank must equal the registered one
            answers.append(f"refused: {str(error).splitlines()[0]}")
    assert len(set(map(str, answers))) < 3 or any(str(x).startswith("refused") for x in answers), answers


@pytest.mark.unit
def test_the_models_tab_shows_each_entrys_adapter_mode(tmp_path):
    from demos.ui.models_tab import _details
    catalog = load_catalog(_catalog(tmp_path, chat_mode="auto"))
    suite = Suite.from_catalog(catalog, cache_dir=tmp_path / "cache")
    chat, image = (_details(suite, catalog.entry(e)) for e in ("tl-chat", "sd-image"))
    assert "LoRA adapter mode: **auto** (set by the entry's `lora_mode`; `AdapterConfig.Mode.MODE_AUTO`)" in chat
    assert f"LoRA adapter mode: **{lora_modes.DEFAULTS['image']}** (the panel's default" in image
    assert "adapter mode" not in _details(suite, catalog.entry("whisper")), "no adapters, no mode"
