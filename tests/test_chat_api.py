"""``/chat`` as users call it: ``python app.py`` on the tiny catalog, driven through gradio_client.

Answers are compared with ``openvino_genai.LLMPipeline`` called directly in this process on the same folders,
both sides with ``INFERENCE_PRECISION_HINT=f32`` so greedy texts compare exactly.
"""
from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client

from tests.kit.llm import DRAFT_PROMPTS

EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPT = "Tell me a story about a cat."
FIGURES = ("ttft_ms", "tpot_ms", "tokens_per_s", "input_tokens", "output_tokens", "generate_s")


@pytest.fixture(scope="module")
def client(tiny_app):
    client = Client(tiny_app.url, verbose=False)
    yield client
    client.predict(api_name="/unload_models")  # the app is shared by the session: leave nothing loaded


@pytest.fixture(scope="module")
def direct(kit):
    """``direct(prompt, n, adapters=[(path, alpha)], history=[...], system=...)``: a fresh LLMPipeline's answer."""
    import openvino_genai as ov_genai

    def generate(prompt: str, max_new_tokens: int, adapters=(), history=(), system: str = "") -> str:
        if adapters:
            objects = [(ov_genai.Adapter(str(path)), alpha) for path, alpha in adapters]
            pipe = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU",
                                        adapters=ov_genai.AdapterConfig([a for a, _ in objects]), **EXACT)
            return pipe.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False,
                                 adapters=ov_genai.AdapterConfig(objects))
        pipe = plain_pipe()
        if history or system:
            messages = ([{"role": "system", "content": system}] if system else []) + list(history) + \
                [{"role": "user", "content": prompt}]
            return pipe.generate(ov_genai.ChatHistory(messages), max_new_tokens=max_new_tokens,
                                 do_sample=False).texts[0]
        return pipe.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False)

    cache = {}

    def plain_pipe():
        if "plain" not in cache:
            cache["plain"] = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU", **EXACT)
        return cache["plain"]

    return generate


def test_chat_streams_and_equals_direct_generate(client, direct):
    job = client.submit(PROMPT, "tiny-llm", max_new_tokens=40, api_name="/chat")
    streamed = [text for text, _ in job]
    text, metrics = job.result()
    assert text == direct(PROMPT, 40)
    assert len(streamed) >= 2, "the reply streams"
    assert all(text.startswith(part) for part in streamed), "every streamed value is a prefix of the reply"
    assert all(name in metrics for name in FIGURES)
    assert metrics["output_tokens"] == 40 and metrics["input_tokens"] > 0 and metrics["tokens_per_s"] > 0


def test_adapter_at_alpha_equals_direct_call_and_differs_from_none(client, direct, kit):
    with_adapter, metrics = client.predict(PROMPT, "tiny-llm", adapter="lora-a", adapter_alpha=0.6,
                                           max_new_tokens=20, api_name="/chat")
    assert with_adapter == direct(PROMPT, 20, adapters=[(kit.llm.lora_a, 0.6)])
    assert with_adapter != direct(PROMPT, 20)
    blend, _ = client.predict(PROMPT, "tiny-llm", adapter="lora-a:0.5,lora-b:0.7", max_new_tokens=20,
                              api_name="/chat")
    assert blend == direct(PROMPT, 20, adapters=[(kit.llm.lora_a, 0.5), (kit.llm.lora_b, 0.7)])
    assert blend != with_adapter


def test_switching_adapters_reproduces_answers_without_reloading(client):
    """A -> none -> B -> A: each answer as first given; no answer after the first reports a load."""
    answers, loads = {}, []
    for adapter in ("lora-a", "", "lora-b", "lora-a", ""):
        text, metrics = client.predict(PROMPT, "tiny-llm", adapter=adapter, max_new_tokens=16, api_name="/chat")
        answers.setdefault(adapter, text)
        assert answers[adapter] == text, f"{adapter or 'none'} answered differently after a switch"
        loads.append("load_s" in metrics)
    assert len(set(answers.values())) == 3
    assert not any(loads[1:]), "switching an adapter never reloads the pipeline"


def test_history_and_system_prompt_reach_the_model(client, direct):
    history = [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi, how can I help?"}]
    text, _ = client.predict("Tell me about the sea.", "tiny-llm", history, "You are a poet.", max_new_tokens=16,
                             api_name="/chat")
    assert text == direct("Tell me about the sea.", 16, history=history, system="You are a poet.")


def test_speculative_decoding_equals_greedy_and_reports_acceptance(client, direct):
    prompt, _ = DRAFT_PROMPTS[0]
    text, metrics = client.predict(prompt, "tiny-llm", draft="tiny-draft", max_new_tokens=24, api_name="/chat")
    assert text == direct(prompt, 24)
    assert 0 < metrics["accepted_draft_tokens"] <= metrics["draft_tokens"]
    assert 0 < metrics["acceptance_rate"] <= 1
    assert "draft on CPU" in metrics["device"]


def test_speculative_decoding_with_an_adapter_keeps_the_adapters_answer(client, direct, kit):
    text, metrics = client.predict(PROMPT, "tiny-llm", adapter="lora-b", adapter_alpha=0.9, draft="tiny-draft",
                                   max_new_tokens=16, api_name="/chat")
    assert text == direct(PROMPT, 16, adapters=[(kit.llm.lora_b, 0.9)])
    assert "acceptance_rate" in metrics


def test_cancel_mid_stream_keeps_partial_and_next_turn_works(client, direct):
    job = client.submit(PROMPT, "tiny-llm", max_new_tokens=450, api_name="/chat")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline and not job.done():
        time.sleep(0.005)
    job.cancel()
    partial = [text for text, _ in job.outputs()]
    full = direct(PROMPT, 450)
    assert partial and all(full.startswith(text) for text in partial), "what streamed is kept and correct"
    text, metrics = client.predict(PROMPT, "tiny-llm", max_new_tokens=12, api_name="/chat")
    assert text == direct(PROMPT, 12) and metrics["output_tokens"] == 12


def test_two_clients_at_once_both_get_their_answer(tiny_app, direct, kit):
    """Two answers with different adapter settings overlap (started together, long enough to): each must still get
    its own adapter's answer, which only the batcher's grouping by adapter setting gives (or one-at-a-time)."""
    requests = {"plain": dict(adapter=""), "lora": dict(adapter="lora-b", adapter_alpha=1.0)}
    results, errors = {}, []
    clients = {name: Client(tiny_app.url, verbose=False) for name in requests}
    start = threading.Barrier(len(requests))

    def ask(name: str) -> None:
        try:
            start.wait()
            results[name] = clients[name].predict(PROMPT, "tiny-llm", max_new_tokens=300, api_name="/chat",
                                                  **requests[name])[0]
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    assert results["plain"] == direct(PROMPT, 300)
    assert results["lora"] == direct(PROMPT, 300, adapters=[(kit.llm.lora_b, 1.0)])


@pytest.mark.parametrize("arguments, message", [
    (dict(prompt="  "), "prompt is empty"),
    (dict(model="nope"), r"unknown model id 'nope'.*valid ids: tiny-llm"),
    (dict(adapter="pirate"), r"has no adapter 'pirate'; its adapters: lora-a, lora-b"),
    (dict(draft="fastdraft"), r"has no draft 'fastdraft'; its drafts: tiny-draft, foreign-draft"),
    (dict(draft="foreign-draft"), r"draft 'foreign-draft' cannot assist 'tiny-llm': its tokenizer"),
    (dict(device="GPU"), r"device 'GPU' is not available on this machine; choose one of: CPU"),
    (dict(device="NPU"), r"device 'NPU' is not available on this machine"),
    (dict(history=[{"role": "robot", "content": "beep"}]), r"history\[0\].role is 'robot'"),
    (dict(temperature=3.0), "temperature 3.0 is out of range"),
])
def test_bad_input_is_a_clear_message_and_the_app_keeps_serving(client, arguments, message):
    call = {"prompt": "Hi", "model": "tiny-llm", "max_new_tokens": 4, **arguments}
    with pytest.raises(Exception, match=message):
        client.predict(api_name="/chat", **call)
    text, metrics = client.predict("Hi", "tiny-llm", max_new_tokens=4, api_name="/chat")
    assert text and metrics["output_tokens"] == 4
