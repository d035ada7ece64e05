"""Presenter mode: ``python app.py --presenter`` starts with every stage model loaded and warm, and offline."""
from __future__ import annotations

import json
import urllib.request

import pytest
import yaml
from gradio_client import Client

from demos.core.catalog import load_catalog
from demos.ui.presenter import stage_entries
from tests.conftest import AppProcess


@pytest.fixture(scope="module")
def presenter_app(tiny_catalog_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("presenter")
    app = AppProcess(["--presenter", "--models", str(tiny_catalog_path), "--cache-dir", str(folder / "cache")],
                     env={"HF_HOME": str(folder / "hf-home")}, log_path=folder / "app.log")
    try:
        yield app.wait_ready(timeout=300)
    finally:
        app.stop()


def test_stage_entries_are_marked_ones_or_first_of_each_panel(tiny_catalog_path, tmp_path):
    catalog = load_catalog(tiny_catalog_path)
    assert [e.id for e in stage_entries(catalog)] == ["tiny-llm", "tiny-sd", "tiny-whisper", "tiny-vlm"]
    data = yaml.safe_load(tiny_catalog_path.read_text())
    data["chat"][1]["presenter"] = True
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(data))
    assert [e.id for e in stage_entries(load_catalog(tmp_path / "models.yaml"))][0] == "tiny-llm-export"


def test_presenter_starts_warm_offline_and_kiosk_styled(presenter_app):
    client = Client(presenter_app.url, verbose=False)
    table = client.predict(api_name="/list_models")
    rows = {row[1]: row for row in (table["data"] if isinstance(table, dict) else table)}
    for entry_id in ("tiny-llm", "tiny-sd", "tiny-whisper", "tiny-vlm"):
        assert rows[entry_id][6] == "CPU", f"{entry_id} is loaded before the page opens"
    log = presenter_app.output()
    assert log.count("loaded in") >= 4 and log.count("warmed up in") >= 4
    with urllib.request.urlopen(presenter_app.url + "config", timeout=10) as response:
        config = json.load(response)
    assert config.get("footer_links") == [] and "font-size: 18px" in (config.get("css") or "")
    assert config.get("run_history") is False, "a shared kiosk keeps no per-browser run history"
    # Offline once warm: a venue's network can no longer stall a download (the Models tab says so).
    assert "only cached models are available" in json.dumps(config)
    # The chat opens on Compare, the view the audience looks at.
    tabs = [c for c in config["components"] if c.get("type") == "tabs"]
    assert any(t.get("props", {}).get("selected") == "chat-compare" for t in tabs), "chat opens on Compare"


def test_presenter_first_answers_need_no_load(presenter_app):
    """Each tab's opening request finds its pipeline built and warm: no answer reports a load."""
    client = Client(presenter_app.url, verbose=False)
    _, metrics = client.predict("Hello, how are you?", "tiny-llm", api_name="/chat")
    assert "load_s" not in metrics, "the chat pipeline was built and warmed before the page opened"
    _, metrics = client.predict("Hello, how are you?", "tiny-llm", draft="tiny-draft", api_name="/chat")
    assert "load_s" not in metrics and "acceptance_rate" in metrics, "so was the one with the draft (Compare)"
    _, metrics = client.predict("a red square", "tiny-sd", adapters={"style-kohya": 0.8}, api_name="/generate_image")
    assert metrics["compiled"] is False
