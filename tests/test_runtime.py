"""The runtime pool: one pipeline per key, LRU eviction, devices checked against what OpenVINO reports."""
from __future__ import annotations

import pytest

from demos.core.catalog import load_catalog
from demos.core.runtime import DeviceError, PipelineKey, Runtime
from demos.core.suite import Suite


def test_same_key_same_pipeline_and_compile_cache(kit, tmp_path):
    runtime = Runtime(tmp_path, max_pipelines=2)
    key = PipelineKey.make("chat", kit.llm.main_ov, "CPU", properties={"INFERENCE_PRECISION_HINT": "f32"})
    first, built = runtime.get(key)
    again, built_again = runtime.get(PipelineKey.make("chat", kit.llm.main_ov, "CPU",
                                                      properties={"INFERENCE_PRECISION_HINT": "f32"}))
    assert built and not built_again
    assert again is first and again.pipeline is first.pipeline
    assert runtime.builds[key] == 1
    assert first.load_seconds > 0
    assert isinstance(first.pipeline.generate("hi", max_new_tokens=3), str)
    assert any((tmp_path / "compiled").iterdir()), "CACHE_DIR receives the compiled blobs"


def test_lru_evicts_least_recently_used(kit, tmp_path):
    runtime = Runtime(tmp_path, max_pipelines=2)
    main = PipelineKey.make("chat", kit.llm.main_ov, "CPU")
    draft = PipelineKey.make("chat", kit.llm.draft_ov, "CPU")
    whisper = PipelineKey.make("speech", kit.whisper.ov, "CPU")
    runtime.get(main)
    runtime.get(draft)
    runtime.get(main)              # main is now the most recently used
    runtime.get(whisper)           # evicts draft, not main
    assert runtime.loaded_keys() == [main, whisper]
    runtime.get(draft)             # evicts main
    assert runtime.loaded_keys() == [whisper, draft]
    assert runtime.builds[draft] == 2 and runtime.builds[main] == 1
    assert runtime.unload(lambda key: key.panel == "speech") == 1
    assert runtime.loaded_keys() == [draft]


def test_pinned_pipelines_are_never_evicted_nor_counted(kit, tmp_path):
    runtime = Runtime(tmp_path, max_pipelines=1)
    main = PipelineKey.make("chat", kit.llm.main_ov, "CPU")
    draft = PipelineKey.make("chat", kit.llm.draft_ov, "CPU")
    whisper = PipelineKey.make("speech", kit.whisper.ov, "CPU")
    runtime.get(main)
    runtime.pinned.add(main)       # presenter mode pins its warmed pipelines
    runtime.get(draft)             # the one unpinned slot
    runtime.get(whisper)           # evicts draft; main stays although it is the least recently used
    assert runtime.loaded_keys() == [main, whisper] and runtime.builds[main] == 1
    runtime.unload()
    assert runtime.pinned == set(), "an explicit unload also drops the pin"


def test_every_panel_pipeline_builds(kit, tmp_path):
    runtime = Runtime(tmp_path, max_pipelines=1)
    for panel, folder in [("image", kit.diffusion.ov), ("vision", kit.vlm.ov), ("speech", kit.whisper.ov)]:
        loaded, built = runtime.get(PipelineKey.make(panel, folder, "CPU"))
        assert built and type(loaded.pipeline).__name__ == {"image": "Text2ImagePipeline", "vision": "VLMPipeline",
                                                            "speech": "WhisperPipeline"}[panel]


@pytest.mark.unit
def test_absent_device_is_a_clear_error(tmp_path):
    runtime = Runtime(tmp_path, devices=lambda: ["CPU"])
    assert runtime.devices() == ["CPU", "AUTO"]
    with pytest.raises(DeviceError, match=r"device 'GPU' is not available on this machine; choose one of: CPU, AUTO"):
        runtime.check_device("GPU")
    with pytest.raises(DeviceError, match="'NPU'"):
        runtime.get(PipelineKey.make("chat", tmp_path, "NPU"))
    assert runtime.check_device("AUTO") == "AUTO"
    assert runtime.check_device("AUTO:CPU") == "AUTO:CPU"
    with pytest.raises(DeviceError):
        runtime.check_device("AUTO:GPU,CPU")


@pytest.mark.unit
def test_devices_follow_what_openvino_reports(tmp_path):
    runtime = Runtime(tmp_path, devices=lambda: ["CPU", "GPU.0", "GPU.1", "NPU"])
    assert runtime.devices() == ["CPU", "GPU.0", "GPU.1", "NPU", "AUTO"]
    for device in ("GPU", "GPU.1", "NPU", "AUTO:GPU,CPU"):
        assert runtime.check_device(device) == device
    with pytest.raises(DeviceError, match="GPU.2"):
        runtime.check_device("GPU.2")


def test_npu_gets_prompt_bounds_and_its_variant(tiny_catalog_path, tmp_path):
    catalog = load_catalog(tiny_catalog_path)
    suite = Suite.from_catalog(catalog, cache_dir=tmp_path)
    entry = catalog.entry("tiny-llm")
    assert "MAX_PROMPT_LEN" not in suite.properties(entry, "CPU")
    npu = suite.properties(entry, "NPU")
    assert npu["MAX_PROMPT_LEN"] == entry.npu.max_prompt_len and npu["MIN_RESPONSE_LEN"] == entry.npu.min_response_len
    variant = type(entry).model_validate({**entry.model_dump(), "variants": {"NPU": {"source": "OpenVINO/x-int4-cw-ov"}}})
    assert variant.source_for("NPU")[0] == "OpenVINO/x-int4-cw-ov"
    assert variant.source_for("CPU")[0] == entry.source


def test_adapters_are_registered_and_switch_without_rebuild(tiny_catalog_path, tmp_path):
    import openvino_genai as ov_genai
    catalog = load_catalog(tiny_catalog_path)
    suite = Suite.from_catalog(catalog, cache_dir=tmp_path)
    entry = catalog.entry("tiny-llm")
    handle = suite.load(entry, "CPU", batched=False)  # the LLMPipeline of NPU and AUTO (batched: test_batching)
    config = ov_genai.GenerationConfig(max_new_tokens=12)
    outputs = {}
    for name in ("lora-a", None, "lora-b", "lora-a"):
        adapters = ov_genai.AdapterConfig(handle.adapter(name), 1.0) if name else ov_genai.AdapterConfig()
        again = suite.load(entry, "CPU", batched=False)
        assert again.loaded is handle.loaded and not again.built_now
        text = again.pipeline.generate("Tell me a story", config, adapters=adapters)
        outputs.setdefault(name, text)
        assert outputs[name] == text
    assert len(set(outputs.values())) == 3
    assert sum(suite.runtime.builds.values()) == 1
