"""The app as users run it: ``python app.py`` in a subprocess, driven through gradio_client."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml
from gradio_client import Client

from tests.conftest import ROOT, AppProcess
from tests.hubserver import HubServer


def _rows(table) -> dict[str, list]:
    rows = table["data"] if isinstance(table, dict) else table
    return {row[1]: row for row in rows}


@pytest.fixture
def fresh_app(tiny_catalog_path, tmp_path):
    """The app on the tiny catalog with caches of its own: in the state a user meets at start, whatever ran before
    (the session's ``tiny_app`` keeps pipelines and exports that other tests leave behind)."""
    app = AppProcess(["--models", str(tiny_catalog_path), "--cache-dir", str(tmp_path / "cache")],
                     env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=tmp_path / "app.log")
    try:
        yield app.wait_ready()
    finally:
        app.stop()


def test_app_serves_page_and_lists_catalog(tiny_app):
    import urllib.request
    with urllib.request.urlopen(tiny_app.url, timeout=10) as response:
        page = response.read().decode()
    assert "OpenVINO GenAI demos" in page
    client = Client(tiny_app.url, verbose=False)
    rows = _rows(client.predict(api_name="/list_models"))
    assert set(rows) == {"tiny-llm", "tiny-llm-export", "tiny-sd", "tiny-whisper", "tiny-vlm", "tiny-qwen2vl", "tiny-tts"}
    assert rows["tiny-llm"][5] == "local folder"


def test_at_start_nothing_is_loaded_and_fetch_exports_on_demand(fresh_app):
    client = Client(fresh_app.url, verbose=False)
    rows = _rows(client.predict(api_name="/list_models"))
    assert rows["tiny-llm-export"][5] == "local folder, needs export"
    assert all(row[6] == "–" for row in rows.values()), "nothing is loaded at start"
    message, table = client.predict("tiny-llm-export", "CPU", api_name="/fetch_model")
    assert "is ready in" in message and "exports" in message
    assert _rows(table)["tiny-llm-export"][5] == "local folder, exported"


def test_load_and_unload_through_the_api(tiny_app):
    client = Client(tiny_app.url, verbose=False)
    client.predict(api_name="/unload_models")  # the app is shared by the session's tests
    # With the names the README documents (model, device); device may be left out (the app's default).
    message, table = client.predict(model="tiny-whisper", device="CPU", api_name="/load_model")
    assert "Tiny Whisper" in message and "compiled in" in message
    assert _rows(table)["tiny-whisper"][6] == "CPU"
    message, _ = client.predict(model="tiny-whisper", api_name="/load_model")
    assert "already loaded" in message
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert not [name for name in endpoints if name.startswith("/lambda")], "every listed endpoint has a name"
    message, table = client.predict(api_name="/unload_models")
    assert "Released 1 pipeline" in message and _rows(table)["tiny-whisper"][6] == "–"


def test_bad_requests_are_clear_errors_and_app_keeps_serving(tiny_app):
    client = Client(tiny_app.url, verbose=False)
    with pytest.raises(Exception, match="unknown model id 'nope'.*valid ids: tiny-llm"):
        client.predict("nope", "CPU", api_name="/load_model")
    with pytest.raises(Exception, match="device 'GPU' is not available on this machine"):
        client.predict("tiny-whisper", "GPU", api_name="/fetch_model")
    assert _rows(client.predict(api_name="/list_models"))


def test_models_tab_fetches_from_hub_with_progress(kit, tmp_path):
    catalog = {"chat": [{"id": "hub-llm", "label": "Tiny LLM from the hub", "source": "tiny/llm-ov"}]}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog))
    with HubServer({"tiny/llm-ov": kit.llm.main_ov}, bytes_per_second=4_000_000, chunk_size=16384) as hub:
        app = AppProcess(["--models", str(path), "--cache-dir", str(tmp_path / "cache")],
                         env={**hub.env(), "HF_HOME": str(tmp_path / "hf-home")}, log_path=tmp_path / "app.log")
        try:
            client = Client(app.wait_ready().url, verbose=False)
            assert _rows(client.predict(api_name="/list_models"))["hub-llm"][5] == "not downloaded"
            job = client.submit("hub-llm", "CPU", api_name="/fetch_model")
            progress_seen = False
            while not job.done():
                status = job.status()
                progress_seen |= bool(status.progress_data)
                time.sleep(0.05)
            message, table = job.result()
            assert "is ready in" in message, message
            assert _rows(table)["hub-llm"][5] == "downloaded"
            assert progress_seen, "the fetch reported progress while downloading"
            assert sum(hub.downloads.values()) == len(hub.snapshot("tiny/llm-ov").files)
        finally:
            app.stop()


def test_broken_catalog_exits_with_the_message(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("chat:\n  - id: tiny\n    sourse: OpenVINO/x\n")
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert "chat[tiny].sourse: unknown field 'sourse' (did you mean 'source'?)" in result.stderr
    assert "chat[tiny].source: required field is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_prefetch_offline_names_the_command(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("speech:\n  - {id: whisper-x, source: OpenVINO/whisper-x-ov}\n")
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", str(path), "--offline",
                             "--cache-dir", str(tmp_path / "cache"), "--prefetch"], capture_output=True, text=True,
                            timeout=120, env={"HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "python app.py --prefetch whisper-x" in result.stderr


def test_prefetch_unknown_id(tiny_catalog_path, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", str(tiny_catalog_path),
                             "--prefetch", "tiny-lm"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "unknown model id 'tiny-lm'" in result.stderr
