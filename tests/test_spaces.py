"""Hugging Face Spaces readiness: the README's front matter matches the catalog and the requirements."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from demos.core.catalog import load_catalog
from demos.ui.spaces import front_matter, listen_address, preload_list

pytestmark = pytest.mark.unit  # no model kit anywhere in this file

ROOT = Path(__file__).resolve().parents[1]


def _pinned(package: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(package)}==([\w.]+)$", text, re.M)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_front_matter_is_a_valid_gradio_space():
    meta = front_matter(ROOT / "README.md")
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == _pinned("gradio"), "the Space must run the Gradio version the app is tested with"
    assert str(meta["python_version"]) == "3.11"
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["suggested_hardware"] == "cpu-upgrade"
    assert len(meta["short_description"]) <= 60
    for item in meta["preload_from_hub"]:
        repo, *files = item.split(" ")
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo), item
        assert len(files) <= 2, f"{item!r}: 'repo file1,file2 [revision]' (file names must not contain spaces)"


def test_front_matter_preloads_exactly_the_catalog_defaults():
    meta = front_matter(ROOT / "README.md")
    catalog = load_catalog(ROOT / "models.yaml")
    expected = preload_list(catalog)
    listed = meta["preload_from_hub"]
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    assert not missing, f"models the catalog uses on CPU but the Space does not preload: {missing}"
    assert not extra, f"preloaded but not in models.yaml: {extra}"
    for entry in catalog.entries():
        if entry.export is None:
            assert entry.source in listed, entry.id


def test_preload_list_covers_models_drafts_and_adapter_files(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(
        "chat:\n"
        "  - id: a\n    source: OpenVINO/a-ov\n"
        "    drafts: [{id: d, source: OpenVINO/d-ov}]\n"
        "    adapters: [{id: l, source: someone/lora, file: x.safetensors},\n"
        "               {id: m, source: someone/lora, file: y.safetensors}]\n"
        "    variants: {NPU: {source: OpenVINO/a-cw-ov}}\n"
        "  - id: b\n    source: Qwen/b\n    export: {weight_format: int8}\n")
    assert preload_list(load_catalog(path)) == ["OpenVINO/a-ov", "OpenVINO/d-ov", "someone/lora x.safetensors,y.safetensors"]


def test_listens_on_all_interfaces_port_7860_on_a_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert listen_address(None, None) == ("127.0.0.1", None)
    assert listen_address("0.0.0.0", 8000) == ("0.0.0.0", 8000)
    monkeypatch.setenv("SPACE_ID", "someone/openvino-genai-demos")
    assert listen_address(None, None) == ("0.0.0.0", 7860)
