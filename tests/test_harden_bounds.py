"""Issue 11, defects 2 and 3: bounded work per chat and vision request, and cancelled jobs that never start.

Through the launched app (raw HTTP and gradio_client): prompts and ``max_new_tokens`` over the model's context or
the catalog's per-entry limits are refused with the numbers, before any generate; cancelled and abandoned jobs
leave the pipeline free. In-process, on a real tiny pipeline: a job stopped while it waits for the pipeline never
calls generate, and its stream can be closed while it waits (Gradio closes abandoned generators only then).
"""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
import yaml
from gradio_client import Client, handle_file
from PIL import Image

from tests.rawhttp import call

MEGABYTE = 1 << 20
PROMPT_LIMIT = 48       # generation.max_prompt_tokens of the bounded catalog (chat and vision)
NEW_TOKENS_LIMIT = 40   # generation.max_new_tokens_limit of the bounded catalog
CONTEXT = 512           # max_position_embeddings of the tiny models (tests/kit)
WAIT_S = 20             # generous bound for a refusal; a refusal is expected in milliseconds


def _text(chars: int) -> str:
    """Exactly ``chars`` characters of words, with no space at either end (the endpoints strip)."""
    return ("lorem ipsum " * (chars // 12 + 1))[:chars - 1] + "."


def _grouped(number: int) -> str:
    """A regex for ``number`` written with or without thousands separators."""
    return r"[\s,.]?".join(re.findall(r"\d{1,3}(?=(?:\d{3})*$)", str(number)))


def _call(url: str, api_name: str, data: list, timeout: float = WAIT_S):
    """``rawhttp.call`` with a bound on the whole call (Gradio's heartbeats keep a waiting stream's socket alive)."""
    return _in_thread(lambda: call(url, api_name, data, timeout=timeout), timeout)


def _chat_data(prompt: str, max_new_tokens: int = 8, history: list | None = None) -> list:
    # /chat: prompt, model, history, system_prompt, adapter, adapter_alpha, draft, device, max_new_tokens, temperature
    return [prompt, "tiny-llm", history or [], "", "", 1.0, "", "", max_new_tokens, 0.0]


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bounds-picture") / "square.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def bounded_app(kit, tmp_path_factory):
    """The app on a catalog whose chat and vision entries set small per-entry limits."""
    from tests.conftest import app_on_catalog

    def bound(catalog: dict) -> None:
        for entry in (catalog["chat"][0], catalog["vision"][0]):
            entry["generation"].update(max_prompt_tokens=PROMPT_LIMIT, max_new_tokens_limit=NEW_TOKENS_LIMIT)
    with app_on_catalog(kit, tmp_path_factory.mktemp("bounded-app"), bound) as app:
        yield app


def _chat_tokens(kit, prompt: str) -> int:
    """What the tiny LLM's pipeline sees for a one-message chat: its chat template applied, then tokenized."""
    import openvino_genai as ov_genai
    tokenizer = ov_genai.Tokenizer(str(kit.llm.main_ov))
    text = tokenizer.apply_chat_template(ov_genai.ChatHistory([{"role": "user", "content": prompt}]),
                                         add_generation_prompt=True)
    return int(tokenizer.encode(text, add_special_tokens=False).input_ids.get_shape()[1])


# ------------------------------------------------------------------------------------------------------------
# Prompt length


def test_a_megabyte_prompt_to_chat_is_refused_with_the_numbers(tiny_app):
    outcome = _call(tiny_app.url, "chat", _chat_data(_text(MEGABYTE)))
    assert outcome.event == "error", outcome.events[-3:]
    assert re.search(_grouped(MEGABYTE) + " characters", outcome.message), outcome.message
    assert re.search(rf"Tiny LLM takes at most {CONTEXT}\b", outcome.message), outcome.message
    assert "shorten it or clear the chat" in outcome.message


def test_a_megabyte_question_to_ask_image_is_refused_with_the_numbers(tiny_app, picture):
    job = Client(tiny_app.url, verbose=False).submit(handle_file(picture), _text(MEGABYTE), "tiny-vlm", [], 8, "",
                                                     api_name="/ask_image")
    with pytest.raises(Exception, match=rf"{_grouped(MEGABYTE)} characters.*Tiny LLaVA takes at most {CONTEXT}\b"):
        job.result(timeout=WAIT_S)


def test_a_prompt_just_over_the_entry_limit_is_refused_and_just_under_answers(bounded_app, kit):
    words = 1
    while _chat_tokens(kit, " ".join(["cat"] * words)) <= PROMPT_LIMIT:
        words += 1
    over, under = " ".join(["cat"] * words), " ".join(["cat"] * (words - 1))
    refused = _call(bounded_app.url, "chat", _chat_data(over))
    assert refused.event == "error"
    assert re.search(rf"this chat is {_chat_tokens(kit, over)} tokens; Tiny LLM takes at most {PROMPT_LIMIT} "
                     r"\(models.yaml: generation.max_prompt_tokens\)", refused.message), refused.message
    answered = _call(bounded_app.url, "chat", _chat_data(under), timeout=120)
    assert answered.event == "complete", answered.message
    assert answered.data[1]["input_tokens"] == _chat_tokens(kit, under) <= PROMPT_LIMIT
    assert answered.data[1]["output_tokens"] == 8


def test_a_vision_conversation_over_the_entry_limit_is_refused(bounded_app, picture):
    client = Client(bounded_app.url, verbose=False)
    history = [{"role": "user", "content": [handle_file(picture), "What is it?"]},
               {"role": "assistant", "content": _text(200)}]  # the earlier reply's text counts too
    with pytest.raises(Exception, match=rf"this conversation is \d+ tokens; Tiny LLaVA takes at most {PROMPT_LIMIT}"):
        client.submit(None, "And now?", "tiny-vlm", history, 8, "", api_name="/ask_image").result(timeout=WAIT_S)
    reply, metrics = client.submit(handle_file(picture), "What is it?", "tiny-vlm", [], 8, "",
                                   api_name="/ask_image").result(timeout=120)
    assert metrics["output_tokens"] == 8


# ------------------------------------------------------------------------------------------------------------
# max_new_tokens


def test_a_trillion_new_tokens_is_refused_naming_max_new_tokens(tiny_app, picture):
    outcome = _call(tiny_app.url, "chat", _chat_data("Hi", max_new_tokens=10**12))
    assert outcome.event == "error"
    assert re.search(rf"max_new_tokens {_grouped(10**12)} is more than Tiny LLM allows: at most {CONTEXT}\b",
                     outcome.message), outcome.message
    job = Client(tiny_app.url, verbose=False).submit(handle_file(picture), "What is it?", "tiny-vlm", [], 10**12, "",
                                                     api_name="/ask_image")
    with pytest.raises(Exception, match=rf"max_new_tokens {_grouped(10**12)} .*at most {CONTEXT}\b"):
        job.result(timeout=WAIT_S)


def test_a_number_beyond_any_type_is_refused_against_the_models_context(tiny_app):
    """2**70 is over every C type: the message still gives the model's own limit, not an internal sentinel."""
    outcome = _call(tiny_app.url, "chat", _chat_data("Hi", max_new_tokens=2**70))
    assert outcome.event == "error"
    assert re.search(rf"is more than Tiny LLM allows: at most {CONTEXT} \(its context length\)", outcome.message), \
        outcome.message


def test_an_image_prompt_of_a_megabyte_is_refused_with_the_limit(tiny_app):
    """Text encoders read their first 77-512 tokens; a megabyte of prompt is refused, not tokenized."""
    for index, name in ((0, "prompt"), (2, "negative_prompt")):
        data = ["a red square", "tiny-sd", "", {}, 0, 0, 2, -1, 42, ""]
        data[index] = "x" * 1_000_000
        outcome = _call(tiny_app.url, "generate_image", data)
        assert outcome.event == "error"
        assert f"{name} is 1,000,000 characters; image prompts take at most 10,000" in outcome.message, \
            outcome.message


def test_max_new_tokens_over_the_entry_limit_is_refused_and_the_limit_itself_answers(bounded_app):
    refused = _call(bounded_app.url, "chat", _chat_data("Hi", max_new_tokens=NEW_TOKENS_LIMIT + 1))
    assert refused.event == "error"
    assert f"at most {NEW_TOKENS_LIMIT} (models.yaml: generation.max_new_tokens_limit)" in refused.message
    answered = _call(bounded_app.url, "chat", _chat_data("Hi", max_new_tokens=NEW_TOKENS_LIMIT), timeout=120)
    assert answered.event == "complete" and answered.data[1]["output_tokens"] == NEW_TOKENS_LIMIT


# ------------------------------------------------------------------------------------------------------------
# Cancelled and abandoned jobs


def test_cancelled_long_chat_jobs_never_generate_and_leave_the_pipeline_to_the_next_user(tiny_app):
    """The issue's repro: submit-and-cancel of long prompts (before the fix each ran its whole prefill, which
    nothing interrupts, one after the other: 5 jobs of 100 KB kept the next user waiting 138 s here)."""
    client = Client(tiny_app.url, verbose=False)
    client.predict("Hi", "tiny-llm", max_new_tokens=2, api_name="/chat")  # loaded before the log is read
    start = len(tiny_app.output())
    for index in range(12):
        job = client.submit(f"{index} " + _text(100_000), "tiny-llm", max_new_tokens=16, api_name="/chat")
        time.sleep(0.3)  # long enough for the job to reach the server
        job.cancel()
    other = Client(tiny_app.url, verbose=False)  # another user (a cancel reaches every job of its own session)
    text, metrics = other.submit("Hi", "tiny-llm", max_new_tokens=8, api_name="/chat").result(timeout=60)
    assert metrics["output_tokens"] == 8
    log = tiny_app.output()[start:]
    assert log.count("chat: generate started") == 1, log[-3000:]
    assert log.rstrip().endswith("chat: generate ended (8 new tokens)"), log[-3000:]


def test_a_client_that_leaves_mid_stream_frees_the_pipeline(tiny_app):
    base = tiny_app.url.rstrip("/")
    request = urllib.request.Request(f"{base}/gradio_api/call/chat", method="POST",
                                     data=json.dumps({"data": _chat_data("Tell me a story.", CONTEXT - 20)}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with socket.create_connection((tiny_app.url.split("//")[1].split(":")[0], tiny_app.port), timeout=30) as sock:
        sock.sendall(f"GET /gradio_api/call/chat/{event_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        received = b""
        while b"event: generating" not in received:  # the answer is streaming: now leave
            received += sock.recv(4096)
    outcome = _call(tiny_app.url, "chat", _chat_data("Hi", 8), timeout=60)
    assert outcome.event == "complete" and outcome.data[1]["output_tokens"] == 8


# ------------------------------------------------------------------------------------------------------------
# In-process: a job stopped while it waits for the pipeline


@pytest.fixture(scope="module")
def chat_job(tiny_catalog_path, tmp_path_factory):
    """(the tiny LLM's pipeline, opened as the panel opens it; settings for a 50-token answer)."""
    from demos.core.catalog import load_catalog
    from demos.panels.chat.engine import default_settings, open_pipeline
    from demos.core.suite import Suite
    suite = Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path_factory.mktemp("bounds-suite"))
    entry = suite.catalog.entry("tiny-llm", "chat")
    settings = default_settings(entry, max_new_tokens=50)
    return open_pipeline(suite, entry, "CPU", settings, [{"role": "user", "content": "Hi"}]), settings


def _in_thread(fn, timeout: float = 10):
    """``fn()``'s result (or its exception), or TimeoutError when it does not return within ``timeout`` (it may
    still be running then, on its daemon thread)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def test_a_chat_job_stopped_while_it_waits_for_the_pipeline_never_generates(chat_job, caplog):
    from demos.panels.chat.engine import Reply, stream_reply
    opened, settings = chat_job
    stop = threading.Event()
    with caplog.at_level("INFO", logger="demos.panels.chat"):
        with opened.handle.loaded.lock:  # another job holds the pipeline
            stream = stream_reply(opened, [{"role": "user", "content": "Hi"}], settings, stop)
            first = _in_thread(lambda: next(stream), timeout=10)  # the stream hands control back while it waits
            assert first == ""
            stop.set()  # Stop (or a cancel) before the job got the pipeline
        items = _in_thread(lambda: list(stream), timeout=30)
    reply = items[-1]
    assert isinstance(reply, Reply) and reply.stopped and reply.text == ""
    assert "output_tokens" not in reply.metrics, "generate never ran"
    assert "a job stopped before it started was skipped" in caplog.text


def test_closing_a_waiting_chat_stream_stops_its_job_before_it_starts(chat_job, caplog):
    from demos.panels.chat.engine import stream_reply
    opened, settings = chat_job
    with caplog.at_level("INFO", logger="demos.panels.chat"):
        with opened.handle.loaded.lock:
            stream = stream_reply(opened, [{"role": "user", "content": "Hi"}], settings)
            _in_thread(lambda: next(stream), timeout=10)
            _in_thread(stream.close, timeout=5)  # what Gradio does for a cancelled job or a client gone
        deadline = time.monotonic() + 30
        while "skipped" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "a job stopped before it started was skipped" in caplog.text
    assert "generate started" not in caplog.text


def test_closing_a_waiting_vision_stream_returns_at_once_and_its_job_never_starts(kit, tmp_path, caplog):
    from demos.core.runtime import PipelineKey, Runtime
    from demos.panels.vision.engine import HistoryStore, ImageIn, Settings, Turn, stream_answer
    runtime = Runtime(tmp_path)
    loaded, _ = runtime.get(PipelineKey.make("vision", kit.vlm.ov, "CPU",
                                             properties={"INFERENCE_PRECISION_HINT": "f32"}))
    image = ImageIn(np.zeros((16, 16, 3), dtype=np.uint8), "zeros", "zeros.png")
    with caplog.at_level("INFO", logger="demos.panels.vision"):
        with loaded.lock:
            stream = stream_answer(loaded, [Turn("What is it?", (image,))], Settings(50), store=HistoryStore())
            _in_thread(lambda: next(stream), timeout=10)
            _in_thread(stream.close, timeout=5)  # Gradio closes on its event loop: this must not wait
        deadline = time.monotonic() + 30
        while "skipped" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "vision: a job stopped before it started was skipped" in caplog.text
    assert "generate started" not in caplog.text



def test_the_catalog_refuses_a_default_answer_length_above_its_own_limit(kit, tmp_path):
    from demos.core.catalog import CatalogError, load_catalog
    from tests.kit import catalog_dict
    catalog = catalog_dict(kit, tmp_path / "cache")
    catalog["chat"][0]["generation"].update(max_new_tokens=64, max_new_tokens_limit=32)
    catalog["vision"][0]["generation"]["max_prompt_tokens"] = 0
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    problems = "\n".join(raised.value.problems)
    assert "chat[tiny-llm].generation: max_new_tokens 64 is above max_new_tokens_limit 32" in problems, problems
    assert "vision[tiny-vlm].generation.max_prompt_tokens" in problems, problems
