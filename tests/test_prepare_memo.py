"""Issue 12 item 5: a model already prepared is not prepared again (no hub request, no LoRA fit check), yet a
damaged folder is still noticed; status is a cheap ``locate`` plus a size computed once, when asked.

The hub is the local stand-in (tests/hubserver.py), which logs every request: in-process through ``Suite`` and
through a launched app's /chat, /generate_image and /transcribe.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from demos.core import lora
from demos.core import suite as suite_module
from demos.core.catalog import load_catalog
from demos.panels.chat.engine import Reply, default_settings, open_pipeline, stream_reply, to_messages
from demos.core.suite import Suite
from tests import media
from tests.conftest import AppProcess
from tests.hubserver import HubServer
from tests.rawhttp import Outcome, call, upload

LLM, LORA, SD, WHISPER = "tiny/llm-ov", "tiny/lora", "tiny/sd-ov", "tiny/whisper-ov"


def _repos(kit) -> dict[str, Path]:
    return {LLM: kit.llm.main_ov, LORA: kit.llm.lora_a.parent, SD: kit.diffusion.ov, WHISPER: kit.whisper.ov}


def _catalog_data(kit, cache: Path) -> dict:
    """One hub-sourced entry per panel that downloads; the chat entry's adapter comes from the hub too."""
    return {
        "settings": {"cache_dir": str(cache), "device": "CPU", "max_pipelines": 4},
        "chat": [{"id": "hub-llm", "source": LLM, "properties": {"INFERENCE_PRECISION_HINT": "f32"},
                  "adapters": [{"id": "lora-a", "source": LORA, "file": kit.llm.lora_a.name}],
                  "generation": {"max_new_tokens": 8, "temperature": 0.0}}],
        "image": [{"id": "hub-sd", "source": SD, "properties": {"INFERENCE_PRECISION_HINT": "f32"},
                   "generation": {"width": 64, "height": 64, "num_inference_steps": 2, "guidance_scale": 1.0}}],
        "speech": [{"id": "hub-whisper", "source": WHISPER, "properties": {"INFERENCE_PRECISION_HINT": "f32"}}],
    }


def _hub_calls(hub: HubServer) -> list[tuple[str, str]]:
    """Requests that ask the hub about models (the once-per-process User-Agent registry fetch is not one)."""
    return [(r.method, r.path) for r in hub.requests if "agent-harnesses" not in r.path]


@pytest.fixture
def hub(kit, hf_home):
    with HubServer(_repos(kit)) as server, server.as_default_endpoint():
        yield server


@pytest.fixture
def suite(kit, hub, tmp_path) -> Suite:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(_catalog_data(kit, tmp_path / "cache")))
    return Suite.from_catalog(load_catalog(path), offline=False)


@pytest.fixture
def fit_checks(monkeypatch) -> list[str]:
    """Every LoRA fit check (it regex-scans the model's IR files), by model folder."""
    calls: list[str] = []
    real = lora.matched_modules

    def counted(table, model_dir):
        calls.append(str(model_dir))
        return real(table, model_dir)

    monkeypatch.setattr(lora, "matched_modules", counted)
    return calls


# ------------------------------------------------------------------------------------------------------------
# In-process, through Suite


def test_second_load_asks_the_hub_nothing_and_checks_no_adapter_again(suite, hub, fit_checks):
    entries = [suite.catalog.entry(i) for i in ("hub-llm", "hub-sd", "hub-whisper")]
    first = {e.id: suite.load(e) for e in entries}
    assert all(h.built_now for h in first.values())
    assert {(r, f) for r, f in hub.downloads} >= {(LLM, "openvino_model.bin"), (LORA, "adapter_model.safetensors")}
    assert len(fit_checks) == 1, "the adapter was checked against the model once"

    hub.reset_stats()
    fit_checks.clear()
    for entry in entries:
        again = suite.load(entry)
        assert not again.built_now and again.prepared == first[entry.id].prepared
        assert suite.prepare(entry, "CPU") == first[entry.id].prepared
    assert _hub_calls(hub) == [], "a model already prepared asks the hub nothing"
    assert fit_checks == [], "nor is its adapter checked against the model's weights again"


def test_a_second_chat_answer_runs_no_fit_check(suite, hub, fit_checks):
    """The chat engine's own path (it had a private cache for this; now the suite's memo does it)."""
    entry = suite.catalog.entry("hub-llm")
    settings = default_settings(entry, adapters=(("lora-a", 1.0),), max_new_tokens=4)
    messages = to_messages([], "", "Hello there")
    replies = []
    for _ in range(2):
        *_, reply = stream_reply(open_pipeline(suite, entry, "CPU", settings, messages), messages, settings)
        replies.append(reply)
        if len(replies) == 1:
            assert len(fit_checks) == 1
            hub.reset_stats()
            fit_checks.clear()
    assert isinstance(replies[1], Reply) and replies[1].text == replies[0].text
    assert fit_checks == [] and _hub_calls(hub) == []


def test_a_file_deleted_after_the_first_prepare_is_noticed_and_fetched_again(suite, hub):
    entry = suite.catalog.entry("hub-llm")
    prepared = suite.prepare(entry, "CPU")
    (prepared.model_dir / "openvino_detokenizer.xml").unlink()
    hub.reset_stats()
    again = suite.prepare(entry, "CPU")
    assert (again.model_dir / "openvino_detokenizer.xml").is_file(), "the memo did not hide the missing file"

    prepared.adapters["lora-a"].unlink()  # the adapter's link in the hub cache
    hub.reset_stats()
    assert suite.prepare(entry, "CPU").adapters["lora-a"].is_file(), "nor the missing adapter"

    hub.reset_stats()
    suite.prepare(entry, "CPU")
    assert _hub_calls(hub) == [], "once whole again, it is memoised again"


def test_fetch_with_repair_asks_the_loader_again(suite, hub):
    entry = suite.catalog.entry("hub-whisper")
    suite.prepare(entry, "CPU")
    hub.reset_stats()
    suite.prepare(entry, "CPU", repair=True)  # Fetch / --prefetch: the user asks for a fresh look
    assert (("GET", f"/api/models/{WHISPER}/revision/main")) in _hub_calls(hub)


def test_two_threads_preparing_one_entry_prepare_once(kit, hf_home, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(_catalog_data(kit, tmp_path / "cache")))
    # Throttled, so the first caller is still downloading when the second arrives.
    with HubServer(_repos(kit), bytes_per_second=2_000_000, chunk_size=16_384) as hub, hub.as_default_endpoint():
        suite = Suite.from_catalog(load_catalog(path), offline=False)
        entry = suite.catalog.entry("hub-llm")
        start, results, errors = threading.Barrier(2), [], []

        def prepare() -> None:
            start.wait(timeout=30)
            try:
                results.append(suite.prepare(entry, "CPU"))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=prepare) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert len(results) == 2 and results[0] == results[1]
        calls = _hub_calls(hub)
        assert calls.count(("GET", f"/api/models/{LLM}/revision/main")) == 1, calls
        assert sum(1 for method, p in calls if method == "HEAD" and p.startswith(f"/{LORA}/")) == 1, calls
        assert set(hub.downloads.values()) == {1}, hub.downloads


def test_locate_is_cheap_and_the_size_is_measured_once(suite, monkeypatch):
    entry = suite.catalog.entry("hub-sd")
    assert suite.locate(entry).path is None and suite.status(entry).size_bytes is None
    prepared = suite.prepare(entry, "CPU")
    measured: list[Path] = []
    real = suite_module.folder_size
    monkeypatch.setattr(suite_module, "folder_size", lambda p: measured.append(p) or real(p))

    located = suite.locate(entry)
    assert located.path == prepared.model_dir and located.downloaded and located.size_bytes is None
    assert measured == [], "locate measures nothing"
    size = suite.status(entry).size_bytes
    assert size == real(prepared.model_dir) > 0
    assert suite.status(entry).size_bytes == size and len(measured) == 1, "the size is measured once"

    (prepared.model_dir / "unet" / "openvino_model.bin").unlink()
    status = suite.status(entry)
    assert status.partial and not status.ready, "a damaged folder is not reported with its old size and state"


# ------------------------------------------------------------------------------------------------------------
# Through a launched app


@pytest.fixture(scope="module")
def hub_app(kit, tmp_path_factory):
    """The app on the hub-sourced catalog, online, its hub the local server."""
    folder = tmp_path_factory.mktemp("prepare-memo")
    catalog = folder / "models.yaml"
    catalog.write_text(yaml.safe_dump(_catalog_data(kit, folder / "cache")))
    with HubServer(_repos(kit)) as hub:
        app = AppProcess(["--models", str(catalog)], env={**hub.env(), "HF_HOME": str(folder / "hf-home")},
                         log_path=folder / "app.log")
        app.hub, app.folder = hub, folder
        try:
            yield app.wait_ready()
        finally:
            app.stop()


def _complete(outcome: Outcome) -> Outcome:
    assert outcome.event == "complete", outcome.message
    return outcome


def _twice(app, endpoint: str, inputs: list) -> None:
    """The first call downloads; the second must ask the hub nothing."""
    _complete(call(app.url, endpoint, inputs, timeout=300))
    assert app.hub.downloads, f"/{endpoint} downloaded its model from the hub"
    app.hub.reset_stats()
    _complete(call(app.url, endpoint, inputs, timeout=300))
    assert _hub_calls(app.hub) == [], f"the second /{endpoint} asked the hub again:\n{app.output()[-3000:]}"


def test_app_chat_with_a_hub_adapter_twice_asks_the_hub_once(hub_app):
    _twice(hub_app, "chat", ["Hello there", "hub-llm", [], "", "lora-a", 1.0, "", "", 8, 0.0])


def test_app_generate_image_twice_asks_the_hub_once(hub_app):
    _twice(hub_app, "generate_image", ["a red square", "hub-sd", "", {}, 64, 64, 2, 1.0, 7, ""])


def test_app_transcribe_twice_asks_the_hub_once(hub_app):
    wav = media.write_wav(hub_app.folder / "talk.wav", media.signal(1.0), 16000)
    audio = upload(hub_app.url, wav)
    _twice(hub_app, "transcribe", [audio, "hub-whisper", "", "transcribe", False, "", "", "", False])
