"""The loader: hub downloads through the real huggingface_hub, exports once, atomically, and LoRA files."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from demos.core.catalog import load_catalog
from demos.core.loader import Loader, LoaderError, NotCachedError
from tests.hubserver import HubServer

ROOT = Path(__file__).resolve().parents[1]


def _catalog(tmp_path: Path, data: dict):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_catalog(path)


@pytest.fixture
def hub(kit, hf_home):
    with HubServer({"tiny/llm-ov": kit.llm.main_ov, "tiny/llm-pt": kit.llm.main_pt,
                    "tiny/lora": kit.llm.lora_a.parent}) as server, server.as_default_endpoint():
        yield server


def test_download_from_hub_then_cached(hub, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": "tiny/llm-ov"}]})
    loader = Loader(catalog, tmp_path / "cache", offline=False)
    entry = catalog.entry("tiny")
    assert not loader.status(entry.source, None, None, "chat").downloaded
    messages = []
    folder = loader.model_dir(entry, "CPU", lambda fraction, message: messages.append(message))
    assert (folder / "openvino_model.xml").is_file()
    assert (folder / "openvino_tokenizer.xml").is_file()
    assert sum(hub.downloads.values()) == len(hub.snapshot("tiny/llm-ov").files)
    assert any("Downloading tiny/llm-ov" in m for m in messages)
    status = loader.status(entry.source, None, None, "chat")
    assert status.downloaded and status.ready and status.size_bytes > 0

    hub.reset_stats()
    assert loader.model_dir(entry, "CPU") == folder
    assert sum(hub.downloads.values()) == 0, "a second call downloads nothing again"


def test_offline_with_cold_cache_says_how_to_fetch(hub, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": "tiny/llm-ov"}]})
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    with pytest.raises(NotCachedError) as caught:
        loader.model_dir(catalog.entry("tiny"), "CPU")
    assert "python app.py --prefetch tiny" in str(caught.value)
    assert "offline" in str(caught.value)
    assert not hub.requests or all("agent-harnesses" in r.path for r in hub.requests)


def test_offline_after_download_uses_cache(hub, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": "tiny/llm-ov"}]})
    online = Loader(catalog, tmp_path / "cache", offline=False).model_dir(catalog.entry("tiny"), "CPU")
    hub.reset_stats()
    offline = Loader(catalog, tmp_path / "cache", offline=True).model_dir(catalog.entry("tiny"), "CPU")
    assert offline == online and not hub.requests


def test_unknown_repo_and_missing_adapter_file(hub, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": "tiny/no-such-repo", "adapters": [
        {"id": "ghost", "source": "tiny/lora", "file": "nope.safetensors"}]}]})
    loader = Loader(catalog, tmp_path / "cache", offline=False)
    with pytest.raises(LoaderError, match="the hub has no repository 'tiny/no-such-repo'"):
        loader.model_dir(catalog.entry("tiny"), "CPU")
    with pytest.raises(LoaderError, match="'ghost'.*has no file 'nope.safetensors'"):
        loader.adapter_file(catalog.entry("tiny").adapters[0])


def test_hub_adapter_downloads_and_matches(hub, kit, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": str(kit.llm.main_ov), "adapters": [
        {"id": "a", "source": "tiny/lora", "file": kit.llm.lora_a.name}]}]})
    loader = Loader(catalog, tmp_path / "cache", offline=False)
    path = loader.adapter_file(catalog.entry("tiny").adapters[0], kit.llm.main_ov)
    assert path.read_bytes() == kit.llm.lora_a.read_bytes()


def test_export_from_pytorch_once_for_two_threads(kit, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": str(kit.llm.main_pt),
                                             "export": {"weight_format": "int8"}}]})
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    entry = catalog.entry("tiny")
    results, errors = [], []

    def fetch():
        try:
            results.append(loader.model_dir(entry, "CPU"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert results[0] == results[1]
    assert loader.exports_run == 1, "two callers at once export once"
    folder = results[0]
    assert (folder / "openvino_model.xml").is_file() and (folder / "openvino_tokenizer.xml").is_file()
    assert (folder / "demos-export.json").is_file()
    assert not list(folder.parent.glob("*.tmp-*"))
    status = loader.status(entry.source, None, entry.export, "chat")
    assert status.exported and status.path == folder

    import openvino_genai as ov_genai
    pipe = ov_genai.LLMPipeline(str(folder), "CPU")
    assert isinstance(pipe.generate("hello", max_new_tokens=4), str)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from demos.core.catalog import load_catalog
    from demos.core.loader import Loader
    catalog = load_catalog(sys.argv[1])
    Loader(catalog, sys.argv[2], offline=True).model_dir(catalog.entry("tiny"), "CPU")
""")


def test_killed_export_leaves_nothing_complete_and_next_call_finishes(kit, tmp_path):
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": str(kit.llm.main_pt),
                                             "export": {"weight_format": "int8"}}]})
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(catalog.path), str(cache)], cwd=ROOT,
                            start_new_session=True)
    exports = cache / "exports"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(exports.glob("*.tmp-*")):
        assert proc.poll() is None, "the export finished before it could be killed"
        time.sleep(0.05)
    tmp_dirs = list(exports.glob("*.tmp-*"))
    assert tmp_dirs, "the export never started"
    time.sleep(1.0)  # let optimum-cli get going
    os.kill(proc.pid, signal.SIGKILL)  # the app dies; its exporter child must die with it
    proc.wait()
    time.sleep(0.5)

    loader = Loader(catalog, cache, offline=True)
    entry = catalog.entry("tiny")
    assert not loader.status(entry.source, None, entry.export, "chat").exported
    complete = [p for p in exports.iterdir() if p.is_dir() and ".tmp-" not in p.name]
    assert not complete, f"a killed export left {complete}"

    folder = loader.model_dir(entry, "CPU")
    assert loader.exports_run == 1
    assert (folder / "openvino_model.xml").is_file()
    assert not list(exports.glob("*.tmp-*")), "stale temporary folders are cleaned up"


def test_broken_export_reports_optimum_output(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text('{"model_type": "not-a-model"}')
    catalog = _catalog(tmp_path, {"chat": [{"id": "bad", "source": "ckpt", "export": {"weight_format": "int8"}}]})
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    with pytest.raises(LoaderError, match="optimum-intel export failed"):
        loader.model_dir(catalog.entry("bad"), "CPU")
    assert not [p for p in (tmp_path / "cache" / "exports").iterdir() if p.is_dir()]


def _image(pipe, **kwargs) -> np.ndarray:
    import openvino_genai as ov_genai
    result = pipe.generate("a red square", num_inference_steps=2, width=64, height=64,
                           generator=ov_genai.TorchGenerator(7), **kwargs)
    return np.array(result.data, copy=True)


def test_diffusers_layout_adapter_is_converted_once_and_applies(kit, tmp_path):
    import openvino_genai as ov_genai
    sd = kit.diffusion
    catalog = _catalog(tmp_path, {"image": [{"id": "sd", "source": str(sd.ov), "adapters": [
        {"id": "diffusers-style", "source": str(sd.lora_diffusers)}]}]})
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    adapter = catalog.entry("sd").adapters[0]
    converted = loader.adapter_file(adapter, sd.ov)
    assert converted != sd.lora_diffusers and converted.parent == tmp_path / "cache" / "adapters"
    from demos.core import lora
    names = lora.read_table(converted).names
    assert all(n.startswith(("lora_unet_", "lora_te_")) for n in names), names[:3]
    mtime = converted.stat().st_mtime_ns
    assert loader.adapter_file(adapter, sd.ov) == converted and converted.stat().st_mtime_ns == mtime

    handle = ov_genai.Adapter(str(converted))
    pipe = ov_genai.Text2ImagePipeline(str(sd.ov), "CPU", adapters=ov_genai.AdapterConfig([handle]),
                                       INFERENCE_PRECISION_HINT="f32")
    plain = _image(pipe, adapters=ov_genai.AdapterConfig())
    styled = _image(pipe, adapters=ov_genai.AdapterConfig(handle, 1.0))
    assert not np.array_equal(plain, styled), "the converted adapter changes the image"


def test_adapter_that_matches_nothing_is_refused_by_id(kit, tmp_path):
    sd = kit.diffusion
    catalog = _catalog(tmp_path, {"image": [{"id": "sd", "source": str(sd.ov), "adapters": [
        {"id": "stranger", "source": str(sd.lora_unmatched)}, {"id": "fine", "source": str(sd.lora_kohya)}]}]})
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    with pytest.raises(LoaderError, match="'stranger' matches no weight"):
        loader.adapter_file(catalog.entry("sd").adapters[0], sd.ov)
    assert loader.adapter_file(catalog.entry("sd").adapters[1], sd.ov) == sd.lora_kohya
    # an LLM adapter on the image model is just as foreign
    catalog = _catalog(tmp_path, {"image": [{"id": "sd", "source": str(sd.ov), "adapters": [
        {"id": "llm-lora", "source": str(kit.llm.lora_a)}]}]})
    with pytest.raises(LoaderError, match="'llm-lora' (matches no weight|does not fit)"):
        Loader(catalog, tmp_path / "cache", offline=True).adapter_file(catalog.entry("sd").adapters[0], sd.ov)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":"])
def test_corrupt_adapter_file_is_a_clear_error(kit, tmp_path, content):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": str(kit.llm.main_ov), "adapters": [
        {"id": "broken", "source": str(bad)}]}]})
    with pytest.raises(LoaderError, match="LoRA adapter 'broken'.*not a safetensors file"):
        Loader(catalog, tmp_path / "cache", offline=True).adapter_file(catalog.entry("tiny").adapters[0])


def test_truncated_adapter_file_is_a_clear_error(kit, tmp_path):
    data = kit.llm.lora_a.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    catalog = _catalog(tmp_path, {"chat": [{"id": "tiny", "source": str(kit.llm.main_ov), "adapters": [
        {"id": "cut", "source": str(bad)}]}]})
    with pytest.raises(LoaderError, match="'cut'.*truncated or corrupt"):
        Loader(catalog, tmp_path / "cache", offline=True).adapter_file(catalog.entry("tiny").adapters[0])
