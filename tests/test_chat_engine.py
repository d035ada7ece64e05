"""The chat panel's engine in-process, on the tiny models: builds counted, stop, draft and NPU checks, Show code.

The app-level behaviour (the ``/chat`` endpoint through gradio_client) is in ``test_chat_api.py``; what needs a
device this machine lacks (NPU) runs here with a faked device list, through a real in-process Gradio app.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading

import pytest

from demos.panels.chat import code as chat_code
from demos.core.catalog import load_catalog
from demos.panels.chat.checks import DraftMismatch, PromptTooLong, check_draft_tokenizer
from demos.panels.chat.engine import (Reply, Settings, default_settings, open_pipeline, stream_reply, to_messages,
                               validate)
from demos.panels.chat.handlers import parse_adapters
from demos.core.runtime import Runtime
from demos.core.suite import Suite
from tests.kit.llm import DRAFT_PROMPTS

EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPT = "Tell me a story about a cat."
# Long enough to fill whole KV-cache blocks: what prefix caching would reuse across an adapter switch.
LONG_PROMPT = ("Hello, how are you? Could you tell me a short story about a cat and a dog who became friends, "
               "and then explain how a computer works in simple words?")


@pytest.fixture
def suite(tiny_catalog_path, tmp_path):
    return Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path)


def _answer(suite, entry, settings: Settings, prompt: str = PROMPT, history=None, system: str = "",
            device: str = "CPU") -> Reply:
    messages = to_messages(history or [], system, prompt)
    opened = open_pipeline(suite, entry, device, settings, messages)
    *_, reply = stream_reply(opened, messages, settings)
    assert isinstance(reply, Reply)
    return reply


def _fresh(kit, adapters: list | None, prompt: str, max_new_tokens: int) -> str:
    """The answer of a newly built pipeline (one call only, so nothing cached can leak between adapters)."""
    import openvino_genai as ov_genai
    objects = {"a": ov_genai.Adapter(str(kit.llm.lora_a)), "b": ov_genai.Adapter(str(kit.llm.lora_b))}
    pipe = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU",
                                adapters=ov_genai.AdapterConfig(list(objects.values())), **EXACT)
    config = ov_genai.AdapterConfig([(objects[name], alpha) for name, alpha in adapters or []])
    return pipe.generate(prompt, max_new_tokens=max_new_tokens, do_sample=False, adapters=config)


# ------------------------------------------------------------------------------------------------------------
# Settings and messages (no model)


def test_defaults_mean_the_entry_default_and_zero_temperature_means_greedy(suite):
    entry = suite.catalog.entry("tiny-llm")
    assert default_settings(entry, max_new_tokens=0, temperature=-1).max_new_tokens == 24
    assert default_settings(entry, temperature=0.0).temperature == 0.0
    assert default_settings(entry, max_new_tokens=7, temperature=0.5).max_new_tokens == 7
    assert parse_adapters("lora-a", 0.6, entry) == (("lora-a", 0.6),)
    assert parse_adapters("lora-a", 0, entry) == (("lora-a", 1.0),), "alpha <= 0 is the catalog's alpha"
    assert parse_adapters("lora-a:0.25, lora-b:0.5", 1.0, entry) == (("lora-a", 0.25), ("lora-b", 0.5))
    with pytest.raises(ValueError, match="alpha as a number"):
        parse_adapters("lora-a:x", 1.0, entry)
    with pytest.raises(ValueError, match="same adapter is chosen twice"):
        validate(entry, default_settings(entry, adapters=(("lora-a", 1.0), ("lora-a", 0.5))))


@pytest.mark.unit
def test_messages_keep_turns_and_drop_the_panels_own_notes():
    history = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
               {"role": "assistant", "content": "Hello!"},
               {"role": "assistant", "content": "**TTFT** 3 ms", "metadata": {"title": "⚡ 40 tokens/s"}}]
    assert to_messages(history, "Be brief.", "And you?") == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "And you?"}]
    with pytest.raises(ValueError, match=r"history\[0\].role is 'robot'"):
        to_messages([{"role": "robot", "content": "x"}], "", "hi")


# ------------------------------------------------------------------------------------------------------------
# Pipelines


def test_adapter_switching_reproduces_answers_and_builds_once(suite, kit):
    entry = suite.catalog.entry("tiny-llm")
    base = default_settings(entry, max_new_tokens=16)
    sequence = [("lora-a", 0.8), None, ("lora-b", 1.0), ("lora-a", 0.8), None]
    answers: dict = {}
    for choice in sequence:
        reply = _answer(suite, entry, base.replace(adapters=(choice,) if choice else ()), LONG_PROMPT)
        answers.setdefault(choice, reply.text)
        assert answers[choice] == reply.text, f"{choice} answered differently after a switch"
    assert len(set(answers.values())) == 3
    assert sum(suite.runtime.builds.values()) == 1, "a switch must never rebuild the pipeline"
    # Each answer is what a fresh pipeline gives for that adapter alone (nothing leaked from the previous one).
    assert answers[None] == _fresh(kit, None, LONG_PROMPT, 16)
    assert answers[("lora-a", 0.8)] == _fresh(kit, [("a", 0.8)], LONG_PROMPT, 16)


def test_blend_of_two_adapters_is_what_genai_gives_for_both(suite, kit):
    entry = suite.catalog.entry("tiny-llm")
    settings = default_settings(entry, max_new_tokens=16, adapters=(("lora-a", 0.5), ("lora-b", 0.7)))
    blended = _answer(suite, entry, settings).text
    assert blended == _fresh(kit, [("a", 0.5), ("b", 0.7)], PROMPT, 16)
    assert blended != _answer(suite, entry, settings.replace(adapters=(("lora-a", 0.5),))).text


def test_foreign_draft_is_refused_before_anything_is_compiled(suite, kit):
    entry = suite.catalog.entry("tiny-llm")
    settings = default_settings(entry, draft="foreign-draft")
    with pytest.raises(DraftMismatch, match="tokenizer is not the main model's.*512 vs 320 tokens"):
        open_pipeline(suite, entry, "CPU", settings, to_messages([], "", "Hi"))
    assert not suite.runtime.builds, "nothing may be compiled for a draft that cannot work"
    check_draft_tokenizer(kit.llm.main_ov, kit.llm.draft_ov, "tiny-draft", "tiny-llm")  # the real draft passes


def test_draft_check_reads_vocabularies_when_tokenizer_files_differ(kit, tmp_path):
    """A draft exported separately (other tokenizer IR bytes) with the same vocabulary is accepted."""
    copy = tmp_path / "draft"
    shutil.copytree(kit.llm.draft_ov, copy)
    (copy / "openvino_tokenizer.xml").write_text((copy / "openvino_tokenizer.xml").read_text() + "\n<!-- -->\n")
    check_draft_tokenizer(kit.llm.main_ov, copy, "copy", "tiny-llm")
    foreign = tmp_path / "foreign"
    shutil.copytree(kit.llm.foreign_draft_ov, foreign)
    (foreign / "tokenizer.json").unlink()  # no vocabulary file: GenAI's own comparison decides
    with pytest.raises(DraftMismatch, match="encode the same sentence differently"):
        check_draft_tokenizer(kit.llm.main_ov, foreign, "foreign", "tiny-llm")


def test_speculative_greedy_equals_plain_with_acceptance(suite):
    entry = suite.catalog.entry("tiny-llm")
    prompt, system = DRAFT_PROMPTS[1]
    plain = _answer(suite, entry, default_settings(entry), prompt, system=system)
    for extra in ({"assistant_tokens": 3}, {"confidence_threshold": 0.3}):
        settings = default_settings(entry, draft="tiny-draft", **extra)
        reply = _answer(suite, entry, settings, prompt, system=system)
        assert reply.text == plain.text, extra
        metrics = reply.metrics
        assert metrics["accepted_draft_tokens"] > 0
        if "assistant_tokens" in extra:  # a batched answer drafting while confident has no countable draft total
            assert metrics["accepted_draft_tokens"] <= metrics["draft_tokens"]
            assert 0 < metrics["acceptance_rate"] <= 1
        assert metrics["device"] == "CPU + draft on CPU"
    assert "accepted_draft_tokens" not in plain.metrics


def test_stop_keeps_the_partial_reply_and_the_next_turn_works(suite):
    entry = suite.catalog.entry("tiny-llm")
    settings = default_settings(entry, max_new_tokens=400)
    messages = to_messages([], "", PROMPT)
    opened = open_pipeline(suite, entry, "CPU", settings, messages)
    stop = threading.Event()
    seen = []
    for item in stream_reply(opened, messages, settings, stop):
        seen.append(item)
        stop.set()  # as the Stop button does, after the first streamed piece
    reply = seen[-1]
    assert isinstance(reply, Reply) and reply.stopped
    assert 0 < reply.metrics["output_tokens"] < 400, "generation really stopped"
    full = _answer(suite, entry, settings).text
    assert full.startswith(reply.text) and len(reply.text) < len(full)
    # The next turn carries the partial reply in its history and answers like a fresh pipeline would.
    history = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": reply.text}]
    again = _answer(suite, entry, settings.replace(max_new_tokens=12), "Go on.", history)
    import openvino_genai as ov_genai
    fresh = ov_genai.LLMPipeline(str(opened.handle.loaded.key.model_dir), "CPU", **EXACT)
    chat = ov_genai.ChatHistory(to_messages(history, "", "Go on."))
    assert again.text == fresh.generate(chat, max_new_tokens=12, do_sample=False).texts[0]


def test_closing_the_stream_stops_generation(suite):
    """A client that cancels closes the generator: the worker must stop and free the pipeline's lock."""
    entry = suite.catalog.entry("tiny-llm")
    settings = default_settings(entry, max_new_tokens=400)
    messages = to_messages([], "", PROMPT)
    opened = open_pipeline(suite, entry, "CPU", settings, messages)
    stop = threading.Event()
    stream = stream_reply(opened, messages, settings, stop)
    next(stream)
    stream.close()
    assert stop.is_set()
    assert opened.handle.loaded.lock.acquire(timeout=30), "the stopped generation released the pipeline"
    opened.handle.loaded.lock.release()


# ------------------------------------------------------------------------------------------------------------
# Show code


def test_show_code_reproduces_the_answer(suite, tmp_path):
    entry = suite.catalog.entry("tiny-llm")
    prompt, system = DRAFT_PROMPTS[1]
    settings = default_settings(entry, max_new_tokens=20, draft="tiny-draft", assistant_tokens=4,
                                adapters=(("lora-a", 0.4), ("lora-b", 0.3)))
    reply = _answer(suite, entry, settings, prompt, system=system)
    refs = chat_code.refs_for(suite, entry, "CPU", settings)
    script = tmp_path / "chat.py"
    script.write_text(chat_code.python_code(entry, "CPU", "CPU", settings, refs, system, prompt))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    streamed, _, figures = run.stdout.partition("\nTTFT ")
    assert streamed == reply.text
    assert "tokens/s" in figures and "draft tokens" in figures
    cpp = chat_code.cpp_code(entry, "CPU", "CPU", settings, refs, system, prompt)
    for line in ("ov::genai::LLMPipeline pipe(", "ov::genai::draft_model(", "config.num_assistant_tokens = 4;",
                 "config.adapters->add(adapter_lora_a, 0.4f);", "ov::genai::scheduler_config("):
        assert line in cpp


# ------------------------------------------------------------------------------------------------------------
# NPU, with a faked device list: the runtime believes an NPU is there


@pytest.fixture
def npu_suite(kit, tiny_catalog_path, tmp_path):
    """The tiny catalog with an NPU variant of tiny-llm (a copy of its folder), on a machine that 'has' an NPU.

    Building on the fake NPU records the key and compiles the same model on CPU instead (without the NPU-only
    properties), so everything before and after the build is real.
    """
    import yaml
    variant = tmp_path / "npu-variant"
    shutil.copytree(kit.llm.main_ov, variant)
    raw = yaml.safe_load(tiny_catalog_path.read_text())
    chat = raw["chat"][0]
    chat["variants"] = {"NPU": {"source": str(variant)}}
    chat["npu"] = {"max_prompt_len": 64, "min_response_len": 32}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(raw))
    catalog = load_catalog(path)
    runtime = Runtime(tmp_path / "cache", devices=lambda: ["CPU", "NPU"])
    built = []
    real_build = runtime._build

    def build(key):
        built.append(key)
        cpu_properties = tuple((k, v) for k, v in key.properties if k not in ("MAX_PROMPT_LEN", "MIN_RESPONSE_LEN"))
        return real_build(type(key)(key.panel, key.model_dir, "CPU", key.adapters, key.draft_dir,
                                    key.draft_device, cpu_properties))

    runtime._build = build
    from demos.core.loader import Loader
    suite = Suite(catalog, Loader(catalog, tmp_path / "cache"), runtime)
    suite.built_keys = built
    suite.variant = variant
    return suite


def test_npu_uses_its_variant_and_prompt_bounds(npu_suite):
    entry = npu_suite.catalog.entry("tiny-llm")
    reply = _answer(npu_suite, entry, default_settings(entry, max_new_tokens=8), "Hi", device="NPU")
    (key,) = npu_suite.built_keys
    properties = dict(key.properties)
    assert key.device == "NPU" and key.model_dir == str(npu_suite.variant)
    assert properties["MAX_PROMPT_LEN"] == 64 and properties["MIN_RESPONSE_LEN"] == 32
    assert reply.metrics["npu_prompt"].endswith("/ 64 tokens")
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": reply.text}]
    fuller = _answer(npu_suite, entry, default_settings(entry, max_new_tokens=8), "And?", history, device="NPU")
    assert "clear the chat soon" in fuller.metrics["npu_prompt"], fuller.metrics["npu_prompt"]


def test_npu_refuses_a_chat_longer_than_its_prompt_length_before_building(npu_suite):
    entry = npu_suite.catalog.entry("tiny-llm")
    history = [{"role": "user", "content": "Tell me a long story about the sea and the boats."},
               {"role": "assistant", "content": "Once upon a time a small grey cat lived near the river."}] * 2
    with pytest.raises(PromptTooLong, match=r"this chat is \d+ tokens long.*at most 64.*Clear the chat"):
        _answer(npu_suite, entry, default_settings(entry), "And then?", history, device="NPU")
    assert npu_suite.built_keys == [], "refused before anything was compiled"


def test_npu_limit_through_an_in_process_app(npu_suite):
    """The same refusal through the real Gradio app and gradio_client; the app keeps serving."""
    from gradio_client import Client

    import app
    demo = app.build_app(npu_suite)
    demo.queue(default_concurrency_limit=1).launch(prevent_thread_lock=True, show_error=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        history = [{"role": "user", "content": "Tell me a long story about the sea and the boats."},
                   {"role": "assistant", "content": "Once upon a time a small grey cat lived near the river."}] * 2
        with pytest.raises(Exception, match="Clear the chat"):
            client.predict("And then?", "tiny-llm", history, device="NPU", api_name="/chat")
        text, metrics = client.predict("Hi", "tiny-llm", device="NPU", max_new_tokens=6, api_name="/chat")
        assert text and metrics["npu_prompt"].endswith("/ 64 tokens")
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------------------
# What the panel's buttons do (handlers, in-process)


def _choices(**changes):
    from demos.panels.chat.handlers import SPEC_FIXED, Choices
    values = dict(system_prompt="", adapter="", alpha=1.0, adapter2="", alpha2=1.0, speculative=False,
                  draft="tiny-draft", draft_device="", spec_mode=SPEC_FIXED, assistant_tokens=5, threshold=0.4,
                  max_new_tokens=16, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=42)
    return Choices(**{**values, **changes})


def test_send_retry_and_stop_buttons(suite):
    from demos.panels.chat.handlers import ChatPanel
    panel = ChatPanel(suite)
    first, *_, (history, box, card, _) = panel.respond(PROMPT, [], "tiny-llm", "CPU", _choices(), "s1")
    assert "first use: compiling" in first[0][-1]["content"] and "first use" in first[3], \
        "a first load says so in the chat and the status line"
    assert box == "" and "TTFT" in card
    assert [m["role"] for m in history] == ["user", "assistant", "assistant"]
    assert "tokens/s" in history[2]["metadata"]["title"], "a metrics note follows the answer"
    reply = history[1]["content"]
    *_, (again, _, _, _) = panel.retry(history, "tiny-llm", "CPU", _choices(), "s1")
    assert len(again) == 3 and again[1]["content"] == reply, "Retry answers the last message again"
    # Stop from another thread (the Stop button's event) while the answer streams.
    stream = panel.respond("Go on.", history, "tiny-llm", "CPU", _choices(max_new_tokens=400), "s1")
    next(stream)  # the message is shown; the stop flag is registered from here on
    while next(stream)[0][-1]["content"] == "…":  # until the answer streams (a Stop before it never starts it)
        pass
    assert panel.stops.stop("other-session") == 0 and panel.stops.stop("s1") == 1
    *_, (stopped, _, card, _) = stream
    assert "Stopped" in card and "stopped" in stopped[-1]["metadata"]["title"]
    assert 0 < len(stopped[-2]["content"]) and "400 tokens" not in card


def test_compare_reports_speedup_and_identical_greedy_text(suite):
    import gradio as gr

    from demos.panels.chat.handlers import COMPARE_ADAPTER, COMPARE_DRAFT, ChatPanel
    panel = ChatPanel(suite)
    prompt, _ = DRAFT_PROMPTS[0]
    *_, last = panel.compare(prompt, COMPARE_DRAFT, "tiny-llm", "CPU", _choices(max_new_tokens=24), "s")
    left, right, left_card, right_card, verdict, left_title, right_title, _ = last
    assert left[1]["content"] == right[1]["content"]
    assert "identical text" in verdict and "draft tokens accepted" in verdict and "×" in verdict
    assert "Accepted draft tokens" in right_card and "Accepted" not in left_card
    assert "Without draft" in left_title and "Tiny draft" in right_title
    with pytest.raises(gr.Error, match="Choose an adapter"):
        list(panel.compare(prompt, COMPARE_ADAPTER, "tiny-llm", "CPU", _choices(), "s"))
    *_, last = panel.compare(PROMPT, COMPARE_ADAPTER, "tiny-llm", "CPU", _choices(adapter="lora-a"), "s")
    assert last[0][1]["content"] != last[1][1]["content"] and "With LoRA A ×1" in last[6]
    # The adapter's cost as a slowdown of decoding, with the adapter mode the pipeline was built in.
    assert re.search(r"(\d+ % slower|No measurable slowdown) with the adapter", last[4]), last[4]
    assert "tokens/s decoding" in last[4] and "adapter mode dynamic" in last[4] and "different text" in last[4]


def test_clear_during_an_answer_leaves_the_chat_empty(suite):
    from demos.panels.chat.handlers import ChatPanel
    panel = ChatPanel(suite)
    stream = panel.respond(PROMPT, [], "tiny-llm", "CPU", _choices(max_new_tokens=400), "s2")
    next(stream)  # the message is shown; its stop flag is registered
    panel.stops.clear("s2")  # the Clear button
    *_, (history, box, card, _) = stream
    assert history == [] and card == "", "the stopped answer did not write the old chat back"
    *_, (history, _, card, _) = panel.respond(PROMPT, [], "tiny-llm", "CPU", _choices(), "s2")
    assert len(history) == 3 and "Stopped" not in card, "the next answer runs normally"


def test_compare_stopped_midway_gives_no_speedup(suite):
    from demos.panels.chat.handlers import COMPARE_DRAFT, ChatPanel
    panel = ChatPanel(suite)
    stream = panel.compare(PROMPT, COMPARE_DRAFT, "tiny-llm", "CPU", _choices(max_new_tokens=400), "s3")
    next(stream)
    panel.stops.stop("s3")
    *_, last = stream
    assert last[4].startswith("⏹ Stopped") and "faster" not in last[4] and "slower" not in last[4]


def test_show_code_exports_a_pytorch_checkpoint_first(suite):
    entry = suite.catalog.entry("tiny-llm-export")  # listed with export:, not exported in this fresh cache
    settings = default_settings(entry)
    refs = chat_code.refs_for(suite, entry, "CPU", settings)
    python = chat_code.python_code(entry, "CPU", "CPU", settings, refs, "", PROMPT)
    cpp = chat_code.cpp_code(entry, "CPU", "CPU", settings, refs, "", PROMPT)
    assert "# first, once: optimum-cli export openvino --model " in python and "--weight-format int8" in python
    assert "snapshot_download" not in python and "LLMPipeline(\n    \"main_pt-ov\"" in python
    assert "// first, once: optimum-cli export openvino" in cpp


def test_a_failing_answer_gives_the_message_back_and_keeps_the_chat_clean(suite, monkeypatch):
    from demos.panels.chat import handlers as chat_handlers
    from demos.panels.chat.handlers import ChatPanel
    panel = ChatPanel(suite)
    *_, (history, _, _, _) = panel.respond(PROMPT, [], "tiny-llm", "CPU", _choices(), "s4")

    def broken(*args, **kwargs):
        yield "half an answer"
        raise RuntimeError("the device went away")
    monkeypatch.setattr(chat_handlers, "stream_reply", broken)
    updates = []
    with pytest.raises(RuntimeError, match="went away"):
        for update in panel.respond("Go on.", history, "tiny-llm", "CPU", _choices(), "s4"):
            updates.append(update)
    chat, box, _, status = updates[-1]
    assert chat == history and box == "Go on.", "the chat as it was, the message back in the box"
    assert "is loaded" in status, "the status line says what is loaded, not that it is loading"


def test_loading_note_knows_which_draft_is_live(suite):
    from demos.panels.chat.handlers import ChatPanel
    panel = ChatPanel(suite)
    list(panel.respond(PROMPT, [], "tiny-llm", "CPU", _choices(speculative=True), "s5"))  # builds main + tiny-draft
    live = panel.loading_note("tiny-llm", "CPU", _choices(speculative=True))
    other = panel.loading_note("tiny-llm", "CPU", _choices(speculative=True, draft="foreign-draft"))
    assert "is loaded and ready" in live
    assert other.startswith("Loading") and "Draft with another tokenizer" in other, "another draft means another pipeline to build"
