"""Continuous batching (``demos.core.batching``): concurrent answers on one pipeline are stepped together.

Through the launched app (``/chat`` from several gradio_client threads at once), every answer is compared with
``openvino_genai.LLMPipeline`` called directly on the same folder (both sides f32, greedy), and the answers' own
``batch`` figure (the most requests genai scheduled in one step while the answer ran) says they were stepped
together. Answers of ~400 tokens keep four requests alive long enough to overlap on a busy machine. Vision:
``tests/test_vision_app.py::test_two_clients_at_once``.
"""
from __future__ import annotations

import threading
import time

import pytest
from gradio_client import Client

from tests.kit.llm import DRAFT_PROMPTS

EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPTS = ["Tell me a story about a cat.", "Hello, how are you?", "What is the sea like at night?",
           "Explain LoRA in two sentences."]
LONG = 400


@pytest.fixture(scope="module")
def direct(kit):
    """``direct(prompt, n, adapters=[(path, alpha)])``: the greedy answer of an LLMPipeline called directly."""
    import openvino_genai as ov_genai
    pipes = {}

    def generate(prompt: str, max_new_tokens: int, adapters=()) -> str:
        if "pipe" not in pipes:
            pipes["a"], pipes["b"] = ov_genai.Adapter(str(kit.llm.lora_a)), ov_genai.Adapter(str(kit.llm.lora_b))
            pipes["pipe"] = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU",
                                                 adapters=ov_genai.AdapterConfig([pipes["a"], pipes["b"]]), **EXACT)
        config = ov_genai.AdapterConfig([(pipes[name], alpha) for name, alpha in adapters]) if adapters \
            else ov_genai.AdapterConfig()
        chat = ov_genai.ChatHistory([{"role": "user", "content": prompt}])
        return pipes["pipe"].generate(chat, max_new_tokens=max_new_tokens, do_sample=False, adapters=config).texts[0]

    return generate


def at_once(url: str, calls: dict[str, dict]) -> dict[str, tuple[str, dict]]:
    """Each named ``/chat`` call from its own client (its own session), all started together."""
    results, errors = {}, []
    start = threading.Barrier(len(calls))
    clients = {name: Client(url, verbose=False) for name in calls}

    def ask(name: str) -> None:
        try:
            start.wait()
            results[name] = clients[name].predict(api_name="/chat", **calls[name])
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    return results


def test_four_sessions_at_once_are_stepped_together_and_each_equals_its_direct_answer(tiny_app, direct):
    calls = {p: dict(prompt=p, model="tiny-llm", max_new_tokens=LONG, temperature=0.0) for p in PROMPTS}
    results = at_once(tiny_app.url, calls)
    for prompt, (text, metrics) in results.items():
        assert text == direct(prompt, LONG), f"{prompt!r} answered differently under batching"
        assert metrics["output_tokens"] == LONG and metrics["ttft_ms"] > 0 and metrics["tokens_per_s"] > 0
    assert max(m["batch"] for _, m in results.values()) == 4, "the four answers were stepped together"


def test_adapter_a_none_and_b_at_once_each_equal_their_own_direct_answer(tiny_app, direct):
    prompt = PROMPTS[0]
    settings = {"a": dict(adapter="lora-a", adapter_alpha=0.6), "none": dict(adapter=""),
                "b": dict(adapter="lora-b", adapter_alpha=1.0)}
    calls = {name: dict(prompt=prompt, model="tiny-llm", max_new_tokens=48, **extra) for name, extra in settings.items()}
    results = at_once(tiny_app.url, calls)
    assert results["a"][0] == direct(prompt, 48, adapters=[("a", 0.6)])
    assert results["none"][0] == direct(prompt, 48)
    assert results["b"][0] == direct(prompt, 48, adapters=[("b", 1.0)])
    assert len({text for text, _ in results.values()}) == 3


def test_speculative_decoding_at_once_equals_greedy_without_a_draft(tiny_app, direct):
    prompts = [p for p, _ in DRAFT_PROMPTS[:2]] + [PROMPTS[0]]
    calls = {p: dict(prompt=p, model="tiny-llm", draft="tiny-draft", max_new_tokens=LONG) for p in prompts}
    results = at_once(tiny_app.url, calls)
    for prompt, (text, metrics) in results.items():
        assert text == direct(prompt, LONG), f"{prompt!r} with a draft differs from greedy without"
        assert 0 <= metrics["accepted_draft_tokens"] <= metrics["draft_tokens"]
        assert "draft on CPU" in metrics["device"]
    assert max(m["batch"] for _, m in results.values()) >= 2, "the drafted answers were stepped together"


def test_stop_in_one_session_stops_only_that_answer(tiny_app, direct):
    stopped_client, other_client = Client(tiny_app.url, verbose=False), Client(tiny_app.url, verbose=False)
    other = other_client.submit(PROMPTS[1], "tiny-llm", max_new_tokens=LONG, api_name="/chat")
    stopped = stopped_client.submit(PROMPTS[0], "tiny-llm", max_new_tokens=LONG, api_name="/chat")
    deadline = time.monotonic() + 60
    while not stopped.outputs() and time.monotonic() < deadline and not stopped.done():
        time.sleep(0.005)
    stopped.cancel()
    partial = [text for text, _ in stopped.outputs()]
    text, metrics = other.result(timeout=120)
    assert text == direct(PROMPTS[1], LONG) and metrics["output_tokens"] == LONG, "the other answer ran to its end"
    full = direct(PROMPTS[0], LONG)
    assert partial and all(full.startswith(piece) for piece in partial), "what streamed before the stop is correct"


# ------------------------------------------------------------------------------------------------------------
# In process (``stream_reply`` from threads): what only the engine's items show, the reasons a job waits


@pytest.fixture(scope="module")
def suite(tiny_catalog_path, tmp_path_factory):
    from demos.core.catalog import load_catalog
    from demos.core.suite import Suite
    return Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path_factory.mktemp("batching-cache"))


def engine_at_once(suite, calls: dict[str, tuple[str, dict]], tokens: int) -> dict[str, tuple]:
    """Each named (prompt, settings) answered by ``stream_reply`` on its own thread, all started together; the
    final ``Reply`` and the ``Queued`` items each saw."""
    from demos.panels.chat import engine
    entry = suite.catalog.entry("tiny-llm")
    results, errors = {}, []
    start = threading.Barrier(len(calls))

    def answer(name: str) -> None:
        prompt, overrides = calls[name]
        try:
            settings = engine.default_settings(entry, max_new_tokens=tokens, temperature=0.0, **overrides)
            messages = engine.to_messages([], "", prompt)
            opened = engine.open_pipeline(suite, entry, "CPU", settings, messages)
            start.wait()
            items = list(engine.stream_reply(opened, messages, settings, places=True))
            results[name] = (items[-1], [i for i in items if isinstance(i, engine.Queued)])
        except Exception as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(name,)) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    return results


def test_a_job_of_another_adapter_setting_waits_and_says_why(suite, direct):
    from demos.core import batching
    prompt = PROMPTS[2]
    calls = {"a": (prompt, {"adapters": (("lora-a", 0.6),)}), "none": (prompt, {}),
             "b": (prompt, {"adapters": (("lora-b", 1.0),)})}
    results = engine_at_once(suite, calls, 32)
    assert results["a"][0].text == direct(prompt, 32, adapters=[("a", 0.6)])
    assert results["none"][0].text == direct(prompt, 32)
    assert results["b"][0].text == direct(prompt, 32, adapters=[("b", 1.0)])
    reasons = {q.reason for _, queued in results.values() for q in queued}
    assert batching.WAIT_ADAPTER in reasons, "a job behind another adapter setting says why it waits"


def test_a_full_kv_cache_queues_answers_instead_of_failing_them(suite, direct):
    from demos.core import batching
    entry = suite.catalog.entry("tiny-llm")
    batcher = batching.batcher_for(suite.load(entry, "CPU").loaded)
    tokens = 48
    batcher.capacity_tokens, batcher.largest_batch = 2 * (32 + tokens), 0  # room for two answers of ~30-token chats
    try:
        results = engine_at_once(suite, {p: (p, {}) for p in PROMPTS}, tokens)
    finally:
        batcher.capacity_tokens = suite.load(entry, "CPU").loaded.kv_tokens
    for prompt, (reply, _) in results.items():
        assert reply.text == direct(prompt, tokens) and reply.metrics["output_tokens"] == tokens
    assert max(reply.metrics["batch"] for reply, _ in results.values()) == 2, "never more than fit at once"
    reasons = {q.reason for _, queued in results.values() for q in queued}
    assert batching.WAIT_CACHE in reasons, "a job waiting for KV cache says why"


def test_stopping_one_batched_answer_ends_it_and_leaves_the_other_running(suite, direct):
    from demos.core import serving
    from demos.panels.chat import engine
    entry = suite.catalog.entry("tiny-llm")
    settings = engine.default_settings(entry, max_new_tokens=LONG, temperature=0.0)
    chats = [engine.to_messages([], "", p) for p in PROMPTS[:2]]
    opened = [engine.open_pipeline(suite, entry, "CPU", settings, m) for m in chats]
    controls = [serving.Control(), serving.Control()]
    replies = {}

    def answer(index: int) -> None:
        for item in engine.stream_reply(opened[index], chats[index], settings, controls[index]):
            if index == 0 and isinstance(item, str) and len(item) > 10:
                controls[0].stop()  # the first session presses Stop once its answer has begun
        replies[index] = item

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    stopped, other = replies[0], replies[1]
    assert stopped.stopped and 0 < stopped.metrics["output_tokens"] < LONG, "the stopped answer ended early"
    assert direct(PROMPTS[0], LONG).startswith(stopped.text)
    assert not other.stopped and other.text == direct(PROMPTS[1], LONG) and other.metrics["output_tokens"] == LONG
    assert other.metrics["batch"] == 2, "the two answers were stepped together"
