"""Faster decoding a user can trust, in-process on the tiny models: prompt lookup, adaptive speculation, structured
output and thinking (issue 20). Answers are compared with greedy answers without any of it.

The kit's draft is distilled on ``DRAFT_PROMPTS`` only: on any other chat it is an unrelated draft sharing the
tokenizer (nearly nothing accepted), which is what adaptive speculation must turn off.
"""
from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import jsonschema
import pytest

from demos.core.catalog import load_catalog
from demos.core.errors import UserError
from demos.core.suite import Suite
from demos.panels.chat import structured
from demos.panels.chat.engine import Reply, Settings, open_pipeline, stream_reply, to_messages, validate
from demos.panels.chat.handlers import answer_messages
from tests.kit.llm import DRAFT_PROMPTS

UNRELATED = "Tell me a story about a cat and a dog who became friends."  # not a draft prompt: ~0 % accepted
QUOTING = "Repeat after me: the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog."
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def suite(tiny_catalog_path, tmp_path_factory):
    return Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path_factory.mktemp("decoding"))


@pytest.fixture(scope="module")
def entry(suite):
    return suite.catalog.entry("tiny-llm", "chat")


def _answer(suite, entry, settings: Settings, prompt: str) -> Reply:
    messages = to_messages([], "", prompt)
    opened = open_pipeline(suite, entry, "CPU", settings, messages)
    *_, reply = stream_reply(opened, messages, settings)
    assert isinstance(reply, Reply)
    return reply


# ------------------------------------------------------------------------------------------------------------
# Prompt lookup


def test_prompt_lookup_answers_as_greedy_does_with_its_acceptance_figures(suite, entry):
    plain = _answer(suite, entry, Settings(max_new_tokens=40), QUOTING)
    lookup = _answer(suite, entry, Settings(max_new_tokens=40, prompt_lookup=True, max_ngram_size=2,
                                            assistant_tokens=4), QUOTING)
    assert lookup.text == plain.text
    assert {"accepted_draft_tokens", "draft_tokens", "acceptance_rate"} <= set(lookup.metrics)
    assert lookup.metrics["prompt_lookup"] == "n-gram ≤ 2, 4 tokens/step"
    assert "acceptance_rate" not in plain.metrics
    # Its own pipeline (a construction property), next to the plain one.
    keys = suite.runtime.loaded_keys()
    assert sum(1 for k in keys if dict(k.properties).get("prompt_lookup")) == 1


def test_prompt_lookup_refuses_what_it_cannot_do(suite, entry):
    with pytest.raises(UserError, match="not both"):
        validate(entry, Settings(max_new_tokens=8, prompt_lookup=True, draft="tiny-draft"))
    with pytest.raises(UserError, match="n-gram size must be at least 1"):
        validate(entry, Settings(max_new_tokens=8, prompt_lookup=True, max_ngram_size=0))
    with pytest.raises(UserError, match="no confidence threshold"):
        validate(entry, Settings(max_new_tokens=8, prompt_lookup=True, confidence_threshold=0.5))


# ------------------------------------------------------------------------------------------------------------
# Adaptive speculation


def test_an_unrelated_draft_is_turned_off_and_the_answer_is_still_greedy(suite, entry):
    plain = _answer(suite, entry, Settings(max_new_tokens=40), UNRELATED)
    adaptive = _answer(suite, entry, Settings(max_new_tokens=40, draft="tiny-draft"), UNRELATED)
    assert adaptive.text == plain.text
    note = adaptive.metrics["adaptive"]
    assert note.startswith("draft off after ") and "accepted" in note, note
    assert adaptive.metrics["output_tokens"] == plain.metrics["output_tokens"]
    # The hand-off keeps nothing alive: the drafting pipeline is idle again, so the pool may evict it.
    del adaptive
    gc.collect()
    busy = {Path(key.model_dir).name: loaded.in_use() for key, loaded in suite.runtime._pool.items() if loaded.in_use()}
    assert not busy, f"pipelines still claimed after their answers ended: {busy}"
    # Without adaptive speculation the same draft runs to the end (and is accepted as rarely).
    fixed = _answer(suite, entry, Settings(max_new_tokens=40, draft="tiny-draft", adaptive=False), UNRELATED)
    assert fixed.text == plain.text and "adaptive" not in fixed.metrics
    assert fixed.metrics["acceptance_rate"] < 0.3


def test_an_answer_that_ends_in_the_step_its_draft_is_judged_useless_is_finished(suite, entry):
    # max new tokens ends the answer in exactly the step the draft is judged useless: the answer is finished
    # there (streamer ended, genai's figures), not handed on to go on without the draft.
    judged = _answer(suite, entry, Settings(max_new_tokens=40, draft="tiny-draft"), UNRELATED)
    tokens = int(re.match(r"draft off after (\d+) tokens", judged.metrics["adaptive"]).group(1))
    settings = Settings(max_new_tokens=tokens, draft="tiny-draft")
    plain = _answer(suite, entry, Settings(max_new_tokens=tokens), UNRELATED)
    messages = to_messages([], "", UNRELATED)
    *texts, reply = stream_reply(open_pipeline(suite, entry, "CPU", settings, messages), messages, settings)
    assert reply.text == plain.text and texts[-1] == reply.text  # the streamed text ends as the answer does
    assert reply.metrics["output_tokens"] == tokens and "adaptive" not in reply.metrics


def test_an_agreeing_draft_stays_on(suite, entry):
    prompt, _ = DRAFT_PROMPTS[0]
    reply = _answer(suite, entry, Settings(max_new_tokens=40, draft="tiny-draft"), prompt)
    assert "adaptive" not in reply.metrics
    assert reply.metrics["acceptance_rate"] > 0.5


def test_with_one_pipeline_slot_the_draft_is_lowered_instead(tiny_catalog_path, tmp_path, entry):
    suite = Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path, max_pipelines=1)
    plain_text = _answer(suite, entry, Settings(max_new_tokens=30), UNRELATED).text
    reply = _answer(suite, entry, Settings(max_new_tokens=30, draft="tiny-draft"), UNRELATED)
    assert reply.text == plain_text
    assert reply.metrics["adaptive"].startswith("draft lowered to 1 token per step after ")


# ------------------------------------------------------------------------------------------------------------
# Structured output


def test_a_json_schema_answer_is_valid_against_it(suite, entry):
    reply = _answer(suite, entry, Settings(max_new_tokens=60, json_schema=json.dumps(SCHEMA)), "Give me a person")
    jsonschema.validate(json.loads(reply.text), SCHEMA)
    assert reply.metrics["structured_output"] == "valid against the JSON schema"


def test_a_schema_cut_by_max_new_tokens_says_so(suite, entry):
    reply = _answer(suite, entry, Settings(max_new_tokens=4, json_schema=json.dumps(SCHEMA)), "Give me a person")
    assert reply.metrics["structured_output"].startswith("incomplete: max new tokens ended the answer")


@pytest.mark.unit
@pytest.mark.parametrize("schema, message", [
    ("{bad", "not valid JSON"), ("[1, 2]", "must be an object"),
    ('{"type": "objekt"}', "not a valid schema at type"),
    ('{"$ref": "#/definitions/missing"}', "refers to '#/definitions/missing', which is not in it"),
    ('{"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}', "not in it"),
])
def test_invalid_schemas_are_refused_in_words(schema, message):
    with pytest.raises(UserError, match=message):
        structured.check_json_schema(schema)


@pytest.mark.unit
@pytest.mark.parametrize("regex, message", [("(ab", "does not compile"), (r"(?=a)b", "look-arounds"),
                                            (r"(a)\1", "back-references")])
def test_invalid_regexes_are_refused_in_words(regex, message):
    with pytest.raises(UserError, match=message):
        structured.check_regex(regex)


# ------------------------------------------------------------------------------------------------------------
# Thinking


@pytest.mark.unit
@pytest.mark.parametrize("text, expected", [
    ("plain answer", (None, "plain answer")),
    ("<think>weighing it</think>\n\nThe answer.", ("weighing it", "The answer.")),
    ("  <think>still think", ("still think", "")),
    ("opened by the template</think>Answer", ("opened by the template", "Answer")),
])
def test_thinking_is_split_from_the_answer(text, expected):
    assert structured.split_thinking(text) == expected


@pytest.mark.unit
def test_thinking_is_shown_apart_and_left_out_of_the_history():
    shown = [{"role": "user", "content": "Hi"}, *answer_messages("hmm", "Hello!", done=True)]
    assert shown[1]["metadata"]["title"] == "Thinking" and shown[2]["content"] == "Hello!"
    # What the next turn sends: the thinking message (titled) and any <think> inside an answer are left out.
    sent = to_messages(shown + [{"role": "assistant", "content": "<think>x</think>Bye"}], "", "Next")
    assert [m["content"] for m in sent] == ["Hi", "Hello!", "Bye", "Next"]


def test_a_real_thinking_answer_is_split(suite, entry):
    """The tiny model never thinks on its own: a regex makes it answer <think>…</think>… for real."""
    settings = Settings(max_new_tokens=40, regex=r"<think>[a-z ]{1,12}</think>[a-z ]{1,12}")
    reply = _answer(suite, entry, settings, "Hello")
    assert reply.thinking and "<think>" not in reply.text and "</think>" not in reply.text
    assert reply.metrics["structured_output"] == "matches the regex" or reply.metrics["output_tokens"] == 40


# ------------------------------------------------------------------------------------------------------------
# Show code


def test_show_code_reproduces_a_prompt_lookup_answer_with_structured_output(suite, entry, tmp_path):
    import subprocess
    import sys
    from demos.panels.chat import code as chat_code
    settings = Settings(max_new_tokens=30, prompt_lookup=True, max_ngram_size=2, assistant_tokens=4,
                        regex=r"[a-z ]{1,40}")
    reply = _answer(suite, entry, settings, QUOTING)
    refs = chat_code.refs_for(suite, entry, "CPU", settings)
    script = tmp_path / "chat.py"
    script.write_text(chat_code.python_code(entry, "CPU", "CPU", settings, refs, "", QUOTING))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    streamed, _, figures = run.stdout.partition("\nTTFT ")
    assert streamed == reply.text and "tokens/s" in figures
    cpp = chat_code.cpp_code(entry, "CPU", "CPU", settings, refs, "", QUOTING)
    for line in ("ov::genai::prompt_lookup(true)", "config.max_ngram_size = 2;", "structured.regex = R\"__(",
                 "config.structured_output_config = structured;"):
        assert line in cpp


# ------------------------------------------------------------------------------------------------------------
# Compare and NPU


def _choices(**changes):
    from demos.panels.chat.handlers import SPEC_FIXED, Choices
    values = dict(system_prompt="", adapter="", alpha=1.0, adapter2="", alpha2=1.0, speculative=False,
                  draft="tiny-draft", draft_device="", spec_mode=SPEC_FIXED, assistant_tokens=4, threshold=0.1,
                  max_new_tokens=30, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=42)
    return Choices(**{**values, **changes})


def test_compare_prompt_lookup_against_none(suite):
    from demos.panels.chat.handlers import COMPARE_LOOKUP, ChatPanel
    panel = ChatPanel(suite)
    *_, last = panel.compare(QUOTING, COMPARE_LOOKUP, "tiny-llm", "CPU", _choices(max_ngram=2), "compare")
    left, right, left_card, right_card, verdict, left_title, right_title, _ = last
    assert "Without prompt lookup" in left_title and "With prompt lookup** (n-gram ≤ 2, 4 tokens/step)" in right_title
    assert "with prompt lookup" in verdict and "identical text" in verdict, verdict
    assert "Acceptance" in right_card and "Acceptance" not in left_card


def test_prompt_lookup_on_npu_is_refused_before_anything_loads(tiny_catalog_path, tmp_path, entry):
    from demos.core.loader import Loader
    from demos.core.runtime import Runtime
    catalog = load_catalog(tiny_catalog_path)
    runtime = Runtime(tmp_path / "cache", devices=lambda: ["CPU", "NPU"])
    suite = Suite(catalog, Loader(catalog, tmp_path / "cache"), runtime)
    with pytest.raises(UserError, match="prompt lookup is not available on NPU"):
        open_pipeline(suite, entry, "NPU", Settings(max_new_tokens=8, prompt_lookup=True), to_messages([], "", "Hi"))
    assert runtime.loaded_keys() == []
