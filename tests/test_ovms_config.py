"""``python app.py --ovms-config``, the deploy files, the ``backend`` block of models.yaml and the remote client's
bounds, without models: the default catalog is written out and read back, and the client meets a port nobody
listens on and a server that accepts but never answers."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from demos.core import ovms_config, remote
from demos.core.catalog import Backend, CatalogError, load_catalog
from demos.core.errors import UserError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CALCULATORS = {"chat": "HttpLLMCalculator", "vision": "HttpLLMCalculator", "image": "ImageGenCalculator",
               "speech": "S2tCalculator"}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def _check_graph(text: str, panel: str) -> None:
    """What OVMS reads from a graph.pbtxt: balanced blocks, the HTTP streams, the task's calculator, models here."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert body.count("{") == body.count("}") and body.count("[") == body.count("]")
    assert 'input_stream: "HTTP_REQUEST_PAYLOAD:input"' in body
    assert 'output_stream: "HTTP_RESPONSE_PAYLOAD:output"' in body
    assert re.findall(r'calculator: "(\w+)"', body) == [CALCULATORS[panel]]
    assert 'models_path: "./"' in body
    for config in re.findall(r"plugin_config: '([^']*)'", body):
        json.loads(config)  # OVMS parses it as JSON


def test_ovms_config_serves_every_local_entry_of_the_default_catalog(tmp_path):
    catalog = load_catalog(ROOT / "models.yaml")
    result = _run("--ovms-config", str(tmp_path))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    served = [item["config"] for item in config["model_config_list"]]
    # Voice entries (text to speech) have no graph in this configuration: they stay with the app.
    local = [entry for entry in catalog.entries() if entry.backend is None and entry.panel != "voice"]
    assert [c["name"] for c in served] == [e.id for e in local] and {e.panel for e in local} == set(CALCULATORS)
    for entry, item in zip(local, served):
        assert item["base_path"] == entry.id  # relative to config.json, as OVMS resolves it
        _check_graph((tmp_path / item["base_path"] / "graph.pbtxt").read_text(), entry.panel)
    # The files come from the same sources: one command per source, into the servable's folder.
    script = (tmp_path / ovms_config.FETCH).read_text()
    for entry in local:
        assert f'"$REPO/{entry.id}"' in script and entry.source in script
    for draft in catalog.entry("phi-3-mini").drafts[:1]:
        assert f"hf download {draft.source} --local-dir \"$REPO/phi-3-mini/{draft.id}\"" in script
        assert f'draft_models_path: "./{draft.id}"' in (tmp_path / "phi-3-mini" / "graph.pbtxt").read_text()
    assert "optimum-cli export openvino --model Qwen/Qwen2.5-0.5B-Instruct --weight-format int4" in script
    # The catalog that points this app at OVMS: the same ids, each with a backend, nothing local left.
    remote_catalog = load_catalog(tmp_path / ovms_config.REMOTE_CATALOG)
    assert [e.id for e in remote_catalog.entries()] == [e.id for e in catalog.entries()]
    for entry in remote_catalog.entries():
        if entry.panel == "voice":  # not served by OVMS here: the app keeps speaking it itself
            assert entry.backend is None and entry.source == catalog.entry(entry.id).source
            continue
        assert entry.backend == Backend(url=ovms_config.DEFAULT_URL, model=entry.id) and entry.source is None
        assert not getattr(entry, "adapters", []) and not getattr(entry, "drafts", [])
    assert f"-v {tmp_path}:/models:ro {ovms_config.OVMS_IMAGE} --config_path /models/config.json" in result.stdout


def test_ovms_config_without_a_folder_prints_every_file_and_exits_0(tmp_path):
    result = _run("--ovms-config", "--ovms-url", "http://ovms.example:8000/v3")
    assert result.returncode == 0, result.stderr
    parts = re.split(r"^# ==> (.+) <==$", result.stdout, flags=re.M)[1:]
    files = dict(zip(parts[::2], parts[1::2]))
    catalog = load_catalog(ROOT / "models.yaml")
    assert set(files) == {"config.json", ovms_config.FETCH, ovms_config.REMOTE_CATALOG,
                          *(f"{e.id}/graph.pbtxt" for e in catalog.entries() if e.panel != "voice")}
    assert [c["config"]["name"] for c in json.loads(files["config.json"])["model_config_list"]] == \
        [e.id for e in catalog.entries() if e.panel != "voice"]
    assert "url: http://ovms.example:8000/v3" in files[ovms_config.REMOTE_CATALOG]
    assert "docker run" in result.stdout and not list(tmp_path.iterdir())


def test_entries_with_a_backend_are_left_out_of_the_ovms_config(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("chat:\n  - {id: here, source: OpenVINO/x-ov}\n"
                    "  - {id: there, backend: {url: 'http://elsewhere:8000/v3', model: m}}\n")
    items = ovms_config.servables(load_catalog(path))
    assert [item.name for item in items] == ["here"]


def test_deploy_files_parse_and_compose_serves_the_generated_config():
    deploy = ROOT / "deploy"
    documents = {path.relative_to(deploy).as_posix(): list(yaml.safe_load_all(path.read_text()))
                 for path in sorted(deploy.rglob("*.yaml"))}
    compose = documents["compose.yaml"][0]
    ovms, app = compose["services"]["ovms"], compose["services"]["app"]
    assert ovms["image"] == ovms_config.OVMS_IMAGE
    assert "./ovms:/models:ro" in ovms["volumes"] and ovms["command"][:2] == ["--config_path", "/models/config.json"]
    assert "./ovms/models.remote.yaml:/config/models.remote.yaml:ro" in app["volumes"]
    assert app["command"][-2:] == ["--models", "/config/models.remote.yaml"]
    assert ovms_config.DEFAULT_URL == f"http://ovms:{ovms['ports'][0].split(':')[1]}/v3"  # the service's name and port
    kinds = {doc["kind"]: doc for name, docs in documents.items() if name.startswith("k8s/") for doc in docs}
    assert {"ServingRuntime", "InferenceService", "Deployment", "Service", "Ingress", "ConfigMap"} <= set(kinds)
    runtime, service = kinds["ServingRuntime"], kinds["InferenceService"]
    assert service["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    assert "--config_path=/mnt/models/config.json" in runtime["spec"]["containers"][0]["args"]
    assert kinds["Deployment"]["spec"]["replicas"] > 1
    assert kinds["Service"]["spec"]["sessionAffinity"] == "ClientIP"  # the Gradio UI's state lives in one replica
    load_catalog_text = kinds["ConfigMap"]["data"]["models.remote.yaml"]
    assert all(entry.get("backend") for entry in yaml.safe_load(load_catalog_text)["chat"])


@pytest.mark.parametrize("backend, problem", [
    ("{url: 'ftp://x', model: m}", "backend.url: 'ftp://x' is not an http(s) URL"),
    ("{url: 'http://x:8000/v3', model: ' '}", "backend.model: is empty"),
    ("{url: 'http://x:8000/v3', model: m, api_key_env: 'sk-123'}", "is not an environment variable name"),
    ("{url: 'http://x:8000/v3', model: m, timeout: 5}", "unknown field 'timeout' (did you mean 'timeout_s'?)"),
    ("{model: m}", "backend.url: required field is missing"),
])
def test_a_bad_backend_block_is_one_line_naming_the_field(tmp_path, backend, problem):
    path = tmp_path / "models.yaml"
    path.write_text(f"chat:\n  - {{id: far, backend: {backend}}}\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith("chat[far].backend")
    assert problem in caught.value.problems[0]


def test_an_entry_needs_a_source_or_a_backend(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("chat:\n  - {id: nowhere}\n")
    with pytest.raises(CatalogError, match=r"chat\[nowhere\].source: required field is missing"):
        load_catalog(path)


def _chat(backend: Backend) -> None:
    remote.RemoteChat(backend).stream([{"role": "user", "content": "Hi"}], {"max_tokens": 2}, None)


def test_a_port_nobody_listens_on_is_a_backend_error_naming_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v3"  # bound, not listening: refused
        with pytest.raises(remote.BackendError, match=f"the model server at {re.escape(url)} cannot be reached"):
            _chat(Backend(url=url, model="m"))


def test_a_server_that_never_answers_ends_after_the_timeout():
    """A server that accepts the connection and then says nothing: the read timeout ends the request."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v3"
    try:
        with pytest.raises(remote.BackendError, match=f"{re.escape(url)} did not answer within 0.5 s") as caught:
            _chat(Backend(url=url, model="m", timeout_s=0.5))
        assert isinstance(caught.value, UserError) and caught.value.kind == "backend"
    finally:
        for sock in (*accepted, listener):
            sock.close()
