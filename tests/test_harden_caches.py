"""Caches that cannot lie (issue 11, defects 4, 5 and 10b), through a launched app and raw HTTP.

- A hub download killed half-way is "partly downloaded", and offline the app names the command that completes it
  instead of letting OpenVINO fail on half a snapshot.
- A damaged export (truncated, bytes flipped, a file missing) is "damaged: re-export"; /chat says which folder
  and how to export again; Fetch and --prefetch re-export it and /chat answers as before.
- Replies to clients (/fetch_model, the Models tab status, errors) and the page config of an app listening
  beyond loopback hold no absolute server path.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from gradio_client import Client

from tests.conftest import ROOT, AppProcess
from tests.hubserver import HubServer
from tests.rawhttp import Outcome, call

HUB_REPO = "tiny/llm-ov"
HUB_ID = "hub-llm"
EXPORT_ID = "tiny-llm-export"
RAW_OPENVINO = ("Incorrect weights", "Empty weights", "Exception from", "Traceback", "openvino/src")


@pytest.fixture(scope="module")
def world(kit, tiny_catalog_path, tmp_path_factory):
    """The tiny catalog plus one hub entry; its own cache dir and HF_HOME; offline; listening on 0.0.0.0."""
    folder = tmp_path_factory.mktemp("harden-caches")
    data = yaml.safe_load(tiny_catalog_path.read_text())
    data["chat"].append({"id": HUB_ID, "label": "Tiny LLM from the hub", "source": HUB_REPO,
                         "generation": {"max_new_tokens": 8, "temperature": 0.0}})
    catalog = folder / "models.yaml"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    cache, hf_home = folder / "cache", folder / "hf-home"
    app = AppProcess(["--models", str(catalog), "--cache-dir", str(cache), "--host", "0.0.0.0", "--offline"],
                     env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}, log_path=folder / "app.log")
    app.catalog, app.cache, app.hf_home = catalog, cache, hf_home
    try:
        yield app.wait_ready()
    finally:
        app.stop()


def _state(app, entry_id: str) -> str:
    table = Client(app.url, verbose=False).predict(api_name="/list_models")
    rows = table["data"] if isinstance(table, dict) else table
    return {row[1]: row for row in rows}[entry_id][5]


def _chat(app, model: str) -> Outcome:
    return call(app.url, "chat", ["Hello there", model, [], "", "", 1.0, "", "", 8, 0.0])


def _reply(outcome: Outcome) -> str:
    assert outcome.event == "complete", outcome.message
    return outcome.data[0]


def _no_server_path(text: str, app) -> None:
    """No absolute path of this server in ``text``: cache dir, HF home, catalog folders, the app's own folder."""
    for secret in (str(app.cache), str(app.hf_home), str(app.catalog.parent), str(Path.home()), str(ROOT)):
        assert secret not in text, f"{secret!r} disclosed in {text[:2000]!r}"


def _prefetch(app, ids: list[str], env: dict[str, str] | None = None, offline: bool = False):
    args = [sys.executable, str(ROOT / "app.py"), "--models", str(app.catalog), "--cache-dir", str(app.cache),
            "--prefetch", *ids] + (["--offline"] if offline else [])
    full_env = {**os.environ, "HF_HOME": str(app.hf_home), **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=full_env, cwd=ROOT)


# --------------------------------------------------------------------------------------------------------------
# Defect 4: an interrupted hub download

def _kill_prefetch_mid_download(app, hub: HubServer) -> None:
    """Start ``--prefetch hub-llm`` against the throttled hub and kill -9 it while the weights are .incomplete."""
    log = app.catalog.parent / "killed-prefetch.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", str(app.catalog), "--cache-dir",
                                 str(app.cache), "--prefetch", HUB_ID], cwd=ROOT, start_new_session=True,
                                env={**os.environ, **hub.env(), "HF_HOME": str(app.hf_home)},
                                stdout=out, stderr=subprocess.STDOUT)
    repo = app.hf_home / "hub" / "models--tiny--llm-ov"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            # huggingface_hub writes a small file in one piece at its end: an .incomplete blob is empty until then
            partial = list((repo / "blobs").glob("*.incomplete"))
            if partial and list((repo / "snapshots").glob("*/*")):
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the prefetch ended before it was killed:\n{log.read_text()}"
    assert list((repo / "blobs").glob("*.incomplete")), "a half-written blob is left, as after a crash"
    assert not (next((repo / "snapshots").iterdir()) / "openvino_model.bin").exists()


def test_interrupted_download_is_partly_downloaded_and_offline_names_the_command(kit, world):
    with HubServer({HUB_REPO: kit.llm.main_ov}, bytes_per_second=60_000, chunk_size=4096) as hub:
        _kill_prefetch_mid_download(world, hub)
        assert _state(world, HUB_ID) == "partly downloaded"
        outcome = _chat(world, HUB_ID)
        assert outcome.event == "error"
        assert f"python app.py --prefetch {HUB_ID}" in outcome.message, outcome.message
        assert "did not finish" in outcome.message, outcome.message
        assert not any(raw in outcome.message for raw in RAW_OPENVINO), outcome.message
        _no_server_path(outcome.message, world)

        hub.bytes_per_second = None
        done = _prefetch(world, [HUB_ID], env=hub.env())
        assert done.returncode == 0, done.stderr
    assert _state(world, HUB_ID) == "downloaded"
    answer = _reply(_chat(world, HUB_ID))
    assert answer

    # A file that goes missing after a complete download makes the snapshot partial again.
    Client(world.url, verbose=False).predict(api_name="/unload_models")  # a live pipeline is not re-checked
    snapshot = next((world.hf_home / "hub" / "models--tiny--llm-ov" / "snapshots").iterdir())
    (snapshot / "openvino_tokenizer.xml").unlink()
    assert _state(world, HUB_ID) == "partly downloaded"
    outcome = _chat(world, HUB_ID)
    assert outcome.event == "error" and f"python app.py --prefetch {HUB_ID}" in outcome.message, outcome.message
    assert "openvino_tokenizer.xml" in outcome.message, outcome.message
    offline = _prefetch(world, [HUB_ID], offline=True)
    assert offline.returncode == 1 and f"python app.py --prefetch {HUB_ID}" in offline.stderr, offline.stderr


def test_online_fetch_downloads_again_what_no_longer_matches_the_record(kit, hf_home, tmp_path):
    """snapshot_download trusts any file whose link exists; a blob cut short after a complete download is caught by
    the record and fetched again (that one file only), and the snapshot is whole again."""
    from demos.core.catalog import load_catalog
    from demos.core.loader import Loader
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"chat": [{"id": HUB_ID, "source": HUB_REPO}]}))
    catalog = load_catalog(path)
    entry = catalog.entry(HUB_ID)
    with HubServer({HUB_REPO: kit.llm.main_ov}) as hub, hub.as_default_endpoint():
        loader = Loader(catalog, tmp_path / "cache", offline=False)
        folder = loader.model_dir(entry, "CPU")
        blob = (folder / "openvino_model.bin").resolve()
        blob.write_bytes(blob.read_bytes()[:1000])
        status = loader.status(entry.source, None, None, "chat")
        assert not status.downloaded and status.path is None and status.partial
        hub.reset_stats()
        assert loader.model_dir(entry, "CPU") == folder
        assert dict(hub.downloads) == {(HUB_REPO, "openvino_model.bin"): 1}
    assert (folder / "openvino_model.bin").read_bytes() == (kit.llm.main_ov / "openvino_model.bin").read_bytes()
    assert loader.status(entry.source, None, None, "chat").downloaded


def test_a_snapshot_another_tool_downloaded_is_whole_offline(kit, hf_home, tmp_path):
    """A Space's preload_from_hub or huggingface-cli leaves no record of ours: with no download of ours cut short
    and every file there, the snapshot counts as downloaded (also offline); a missing file still does not."""
    from huggingface_hub import snapshot_download

    from demos.core.catalog import load_catalog
    from demos.core.loader import Loader
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"chat": [{"id": HUB_ID, "source": HUB_REPO}]}))
    catalog = load_catalog(path)
    entry = catalog.entry(HUB_ID)
    with HubServer({HUB_REPO: kit.llm.main_ov}) as hub, hub.as_default_endpoint():
        folder = Path(snapshot_download(HUB_REPO))
    loader = Loader(catalog, tmp_path / "cache", offline=True)
    status = loader.status(entry.source, None, None, "chat")
    assert status.downloaded and not status.partial
    assert loader.model_dir(entry, "CPU") == folder
    (folder / "openvino_tokenizer.xml").resolve().unlink()
    status = loader.status(entry.source, None, None, "chat")
    assert not status.downloaded and status.partial


# --------------------------------------------------------------------------------------------------------------
# Defect 5: a damaged export


@pytest.fixture(scope="module")
def healthy_answer(world) -> str:
    """Export tiny-llm-export once (first use) and keep its greedy answer."""
    message, _ = Client(world.url, verbose=False).predict(EXPORT_ID, "CPU", api_name="/fetch_model")
    assert "is ready in" in message
    return _reply(_chat(world, EXPORT_ID))


def _export_folder(app) -> Path:
    folders = [p for p in (app.cache / "exports").iterdir() if p.is_dir() and ".tmp-" not in p.name
               and ".damaged-" not in p.name]
    assert len(folders) == 1, folders
    return folders[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


DAMAGES = {
    "truncated-bin": ("openvino_model.bin", _truncate),
    "truncated-xml": ("openvino_model.xml", _truncate),
    "flipped-byte": ("openvino_model.bin", _flip_byte),
    "missing-tokenizer": ("openvino_tokenizer.xml", Path.unlink),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_export_is_reported_and_fetch_re_exports(world, healthy_answer, damage):
    name, spoil = DAMAGES[damage]
    client = Client(world.url, verbose=False)
    client.predict(api_name="/unload_models")  # a compiled pipeline may map the weights: release it first
    folder = _export_folder(world)
    spoil(folder / name)

    state = _state(world, EXPORT_ID)
    assert "damaged: re-export" in state, state
    outcome = _chat(world, EXPORT_ID)
    assert outcome.event == "error", outcome.data
    message = outcome.message
    assert f"the export in exports/{folder.name} is damaged ({name} " in message, message
    assert f"python app.py --prefetch {EXPORT_ID}" in message and "Fetch" in message, message
    assert not any(raw in message for raw in RAW_OPENVINO), message
    _no_server_path(message, world)

    reply, table = client.predict(EXPORT_ID, "CPU", api_name="/fetch_model")
    assert "is ready in exports/" in reply, reply
    _no_server_path(reply, world)
    assert _state(world, EXPORT_ID) == "local folder, exported"
    assert _reply(_chat(world, EXPORT_ID)) == healthy_answer


def test_prefetch_re_exports_a_damaged_export(world, healthy_answer):
    Client(world.url, verbose=False).predict(api_name="/unload_models")
    _truncate(_export_folder(world) / "openvino_model.bin")
    assert "damaged" in _state(world, EXPORT_ID)
    done = _prefetch(world, [EXPORT_ID], offline=True)
    assert done.returncode == 0, done.stderr
    assert _state(world, EXPORT_ID) == "local folder, exported"
    assert _reply(_chat(world, EXPORT_ID)) == healthy_answer


def test_touched_but_unchanged_export_stays_exported(world, healthy_answer):
    """A new mtime alone triggers a re-hash, not a false alarm."""
    model = _export_folder(world) / "openvino_model.bin"
    os.utime(model, ns=(time.time_ns(), time.time_ns()))
    assert _state(world, EXPORT_ID) == "local folder, exported"
    assert _reply(_chat(world, EXPORT_ID)) == healthy_answer


# --------------------------------------------------------------------------------------------------------------
# Defect 10b: no absolute server path in replies or in the page config


def test_replies_and_page_config_hold_no_server_path(world, healthy_answer):
    client = Client(world.url, verbose=False)
    for entry_id in (EXPORT_ID, "tiny-llm"):
        message, _ = client.predict(entry_id, "CPU", api_name="/fetch_model")
        _no_server_path(message, world)
        message, _ = client.predict(entry_id, "CPU", api_name="/load_model")
        _no_server_path(message, world)
    with urllib.request.urlopen(world.url + "config", timeout=30) as response:
        config = response.read().decode()
    _no_server_path(config, world)
    assert not re.search(r"ov-genai-demos-tests", config), "the catalog's model folders are disclosed"
    json.loads(config)
