"""Entries served by a model server (``backend:`` in models.yaml), tested as OVMS would be used: OVMS is not
installable here, so the server is a second ``python app.py`` on the tiny catalog, whose ``/v1`` routes speak the
same protocol. The client app lists remote entries pointing at it beside its own local ones. Both apps are launched
once for the module (at the same time); the test that kills the server runs last."""
from __future__ import annotations

import httpx
import pytest
import yaml

from tests import media
from tests.conftest import AppProcess, free_port

PROMPT = "Tell me a story about a cat."


@pytest.fixture(scope="module")
def apps(kit, tmp_path_factory):
    """(server, client, server's /v1 URL): the client's catalog is the tiny one plus remote entries on the server."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("remote")
    env = {"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}

    def launch(name: str, catalog: dict) -> AppProcess:
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(catalog, sort_keys=False))
        return AppProcess(["--models", str(path), "--cache-dir", str(folder / f"{name}-cache")], env=env,
                          log_path=folder / f"{name}.log")

    server = launch("server", catalog_dict(kit, folder / "server-cache"))
    server_v1 = server.url + "v1"
    dead_v1 = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    catalog = catalog_dict(kit, folder / "client-cache")
    catalog["chat"] += [
        {"id": "remote-llm", "label": "Remote tiny LLM", "backend": {"url": server_v1, "model": "tiny-llm"},
         "generation": {"max_new_tokens": 24, "temperature": 0.0}},
        {"id": "misnamed-llm", "backend": {"url": server_v1, "model": "no-such-model"}},
        {"id": "dead-llm", "label": "Server that is down", "backend": {"url": dead_v1, "model": "x", "timeout_s": 5}},
    ]
    catalog["speech"].append({"id": "remote-whisper", "label": "Remote tiny Whisper",
                              "backend": {"url": server_v1, "model": "tiny-whisper"}})
    catalog["image"].append({"id": "remote-sd", "backend": {"url": server_v1, "model": "tiny-sd"},
                             "generation": {"width": 64, "height": 64, "num_inference_steps": 4,
                                            "guidance_scale": 1.0}})
    catalog["vision"].append({"id": "remote-vlm", "backend": {"url": server_v1, "model": "tiny-vlm"},
                              "generation": {"max_new_tokens": 16, "temperature": 0.0}})
    client = launch("client", catalog)  # both start at once: the client needs the server only per request
    try:
        server.wait_ready()
        client.wait_ready()
        yield server, client, server_v1.rstrip("/")
    finally:
        client.stop()
        server.stop()


def _openai(app: AppProcess):
    from openai import OpenAI
    return OpenAI(base_url=app.url + "v1", api_key="unused", max_retries=0, timeout=120)


def _gradio(app: AppProcess):
    from gradio_client import Client
    return Client(app.url, verbose=False)


def test_remote_chat_greedy_answer_equals_the_servers_own_on_v1_and_chat(apps):
    server, client, server_v1 = apps
    messages = [{"role": "user", "content": PROMPT}]
    own = _openai(server).chat.completions.create(model="tiny-llm", messages=messages, max_tokens=20, temperature=0)
    remote = _openai(client).chat.completions.create(model="remote-llm", messages=messages, max_tokens=20,
                                                     temperature=0)
    assert remote.choices[0].message.content == own.choices[0].message.content
    assert remote.usage.completion_tokens == own.usage.completion_tokens == 20
    assert remote.usage.prompt_tokens == own.usage.prompt_tokens  # the server's count, passed through
    # The UI's endpoint: the same answer, with the figures a client can measure and where it ran.
    own_text, _ = _gradio(server).predict(PROMPT, "tiny-llm", max_new_tokens=20, api_name="/chat")
    text, metrics = _gradio(client).predict(PROMPT, "remote-llm", max_new_tokens=20, api_name="/chat")
    assert text == own_text == own.choices[0].message.content
    assert metrics["output_tokens"] == 20 and metrics["ttft_ms"] > 0 and metrics["tokens_per_s"] > 0
    assert metrics["generate_s"] > 0 and metrics["device"] == f"server {server_v1}"


def test_remote_chat_streams_and_its_deltas_join_to_the_whole_answer(apps):
    _, client, _ = apps
    messages = [{"role": "user", "content": PROMPT}]
    whole = _openai(client).chat.completions.create(model="remote-llm", messages=messages, max_tokens=60)
    stream = _openai(client).chat.completions.create(model="remote-llm", messages=messages, max_tokens=60,
                                                     stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == whole.choices[0].message.content
    assert len([d for d in deltas if d]) >= 2, "the answer streams through both apps"
    assert chunks[-1].usage.completion_tokens == 60
    job = _gradio(client).submit(PROMPT, "remote-llm", max_new_tokens=60, api_name="/chat")
    final, _ = job.result(timeout=120)
    growing = [text for text, _ in job.outputs()]
    assert final == whole.choices[0].message.content and len(growing) >= 2
    assert all(final.startswith(part) for part in growing), "each update is the answer so far"


def test_stop_ends_a_remote_answer_at_the_next_piece(apps):
    """The panels' streamer answering STOP (their Stop button) closes the stream: the answer ends there."""
    import openvino_genai as ov_genai

    from demos.core import remote
    from demos.core.catalog import Backend

    _, _, server_v1 = apps
    pieces: list[str] = []

    def streamer(piece: str):
        pieces.append(piece)
        return ov_genai.StreamingStatus.STOP if len(pieces) == 2 else ov_genai.StreamingStatus.RUNNING

    result = remote.RemoteChat(Backend(url=server_v1, model="tiny-llm")).generate(
        ov_genai.ChatHistory([{"role": "user", "content": PROMPT}]), ov_genai.GenerationConfig(max_new_tokens=400),
        streamer)
    assert len(pieces) == 2 and result.texts[0] == "".join(pieces)
    assert result.perf_metrics.get_num_generated_tokens() < 400


def test_remote_speech_transcript_equals_the_servers_own(apps, tmp_path):
    server, client, _ = apps
    clip = media.espeak(tmp_path / "hello.wav", "hello world, this is a test of the speech panel")
    with clip.open("rb") as audio:
        own = _openai(server).audio.transcriptions.create(model="tiny-whisper", file=audio)
    with clip.open("rb") as audio:
        remote = _openai(client).audio.transcriptions.create(model="remote-whisper", file=audio)
    assert remote.text == own.text and own.text.strip()
    from gradio_client import handle_file
    text, segments, metrics = _gradio(client).predict(handle_file(str(clip)), "remote-whisper", timestamps=True,
                                                      api_name="/transcribe")
    own_text, own_segments, _ = _gradio(server).predict(handle_file(str(clip)), "tiny-whisper", timestamps=True,
                                                        api_name="/transcribe")
    assert (text, segments) == (own_text, own_segments)
    assert metrics["audio_s"] > 0 and metrics["processing_s"] > 0


def test_remote_images_and_vision_answers_equal_the_servers_own(apps):
    import base64
    import io

    import numpy as np
    from PIL import Image

    server, client, _ = apps
    pixels = np.random.default_rng(7).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "What is in the picture?"}]}]
    own = _openai(server).chat.completions.create(model="tiny-vlm", messages=messages, max_tokens=12)
    remote = _openai(client).chat.completions.create(model="remote-vlm", messages=messages, max_tokens=12)
    assert remote.choices[0].message.content == own.choices[0].message.content  # the image travelled losslessly

    def picture(app: AppProcess, model: str) -> np.ndarray:
        answer = _openai(app).images.generate(model=model, prompt="a red square", size="64x64",
                                              response_format="b64_json", extra_body={"seed": 5, "steps": 3})
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json))).convert("RGB"))

    assert np.array_equal(picture(client, "remote-sd"), picture(server, "tiny-sd"))


def test_what_only_a_local_pipeline_does_is_refused_with_the_reason(apps):
    _, client, server_v1 = apps
    with pytest.raises(Exception, match=f"served by the model server at {server_v1}.*LoRA adapters"):
        _gradio(client).predict(PROMPT, "remote-llm", adapter="lora-a", api_name="/chat")
    answer = httpx.post(client.url + "v1/chat/completions", timeout=60, json={
        "model": "remote-llm", "messages": [{"role": "user", "content": "Hi"}], "draft": "tiny-draft"})
    assert answer.status_code == 400 and "speculative decoding" in answer.json()["error"]["message"]


def test_a_server_that_is_down_or_refuses_is_a_clear_message_naming_it(apps):
    _, client, server_v1 = apps
    answer = httpx.post(client.url + "v1/chat/completions", timeout=60,
                        json={"model": "dead-llm", "messages": [{"role": "user", "content": "Hi"}]})
    message = answer.json()["error"]["message"]
    assert answer.status_code == 502 and "cannot be reached" in message
    assert "http://127.0.0.1:" in message and "fix backend.url" in message
    answer = httpx.post(client.url + "v1/chat/completions", timeout=60,
                        json={"model": "misnamed-llm", "messages": [{"role": "user", "content": "Hi"}]})
    message = answer.json()["error"]["message"]
    assert answer.status_code == 502 and f"the model server at {server_v1} answered 404" in message
    assert "unknown model id 'no-such-model'" in message  # what the server said
    with pytest.raises(Exception, match="cannot be reached"):
        _gradio(client).predict("Hi", "dead-llm", api_name="/chat")


def test_models_tab_lists_remote_entries_with_their_url_and_whether_the_server_answers(apps):
    _, client, server_v1 = apps
    table = _gradio(client).predict(api_name="/list_models")
    rows = {row[1]: row for row in table["data"]}
    assert rows["remote-llm"][3] == f"server: {server_v1} (model tiny-llm)"
    assert rows["remote-llm"][5] == "server answers"
    assert rows["misnamed-llm"][5] == "server: answers, but does not list 'no-such-model'"
    assert rows["dead-llm"][5].startswith("server: no answer")
    assert rows["tiny-llm"][5] == "local folder"  # local entries as before


def test_the_server_stopped_mid_way_ends_the_answer_with_its_url_and_local_entries_still_answer(apps):
    server, client, server_v1 = apps
    with httpx.stream("POST", client.url + "v1/chat/completions", timeout=120, json={
            "model": "remote-llm", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 450,
            "stream": True}) as raw:
        lines = raw.iter_lines()
        for line in lines:
            if '"content": "' in line and '"content": ""' not in line:
                break  # the answer is coming: now the server goes away
        server.proc.kill()
        server.proc.wait()
        rest = [line for line in lines if line]
    error = next((line for line in rest if '"error"' in line), "")
    assert not any('"finish_reason"' in line for line in rest), "the answer was cut, not finished"
    assert server_v1 in error and rest[-1] == "data: [DONE]", rest[-3:]  # who failed; the stream still ends
    answer = httpx.post(client.url + "v1/chat/completions", timeout=60,
                        json={"model": "remote-llm", "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 502 and f"the model server at {server_v1} cannot be reached" in \
        answer.json()["error"]["message"]
    local = _openai(client).chat.completions.create(model="tiny-llm", messages=[{"role": "user", "content": "Hi"}],
                                                    max_tokens=5)
    assert local.usage.completion_tokens == 5, "the app still serves its local entries"
