"""Issue 20 through the doors users take: ``/chat`` (gradio_client) and ``/v1/chat/completions`` (the ``openai``
SDK, raw HTTP for mistakes) on the shared tiny app: structured output valid against its schema, prompt lookup
equal to greedy with its acceptance, thinking kept apart, bad schemas and regexes refused with a 4xx."""
from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from gradio_client import Client

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
QUOTING = "Repeat after me: the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def client(tiny_app):
    client = Client(tiny_app.url, verbose=False)
    yield client
    client.predict(api_name="/unload_models")  # the app is shared by the session: leave nothing loaded


@pytest.fixture(scope="module")
def openai_client(tiny_app):
    from openai import OpenAI
    return OpenAI(base_url=tiny_app.url.rstrip("/") + "/v1", api_key="none", max_retries=0, timeout=120)


def test_chat_json_schema_answer_validates(client):
    reply, metrics = client.predict("Give me a person", "tiny-llm", max_new_tokens=60, json_schema=json.dumps(SCHEMA),
                                    api_name="/chat")
    jsonschema.validate(json.loads(reply), SCHEMA)
    assert metrics["structured_output"] == "valid against the JSON schema"


def test_chat_prompt_lookup_equals_greedy_and_reports_acceptance(client):
    plain, _ = client.predict(QUOTING, "tiny-llm", max_new_tokens=30, api_name="/chat")
    lookup, metrics = client.predict(QUOTING, "tiny-llm", max_new_tokens=30, prompt_lookup=True, max_ngram_size=2,
                                     api_name="/chat")
    assert lookup == plain
    assert metrics["draft"] == "prompt lookup" and "acceptance_rate" in metrics


def test_chat_thinking_comes_apart_from_the_reply(client):
    reply, metrics = client.predict("Hello", "tiny-llm", max_new_tokens=40,
                                    regex=r"<think>[a-z ]{1,12}</think>[a-z ]{1,12}", api_name="/chat")
    assert metrics["thinking"] and "think>" not in reply


def test_v1_response_format_json_schema_validates(openai_client):
    answer = openai_client.chat.completions.create(
        model="tiny-llm", messages=[{"role": "user", "content": "Give me a person"}], max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})
    jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)


def test_v1_prompt_lookup_extension_equals_greedy(openai_client):
    messages = [{"role": "user", "content": QUOTING}]
    plain = openai_client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=30, temperature=0)
    lookup = openai_client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=30, temperature=0,
                                                   extra_body={"prompt_lookup": True, "max_ngram_size": 2})
    assert lookup.choices[0].message.content == plain.choices[0].message.content
    assert "acceptance_rate" in lookup.model_extra["metrics"]


def test_v1_thinking_is_reasoning_content(openai_client):
    answer = openai_client.chat.completions.create(
        model="tiny-llm", messages=[{"role": "user", "content": "Hello"}], max_tokens=40,
        extra_body={"regex": r"<think>[a-z ]{1,12}</think>[a-z ]{1,12}"})
    message = answer.choices[0].message
    assert message.model_extra["reasoning_content"] and "think>" not in message.content


@pytest.mark.parametrize("body, named", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}}},
     "not a valid schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "must be a JSON schema object"),
    ({"response_format": {"type": "grammar"}}, "not supported"),
    ({"regex": "(ab"}, "does not compile"),
    ({"prompt_lookup": True, "draft": "tiny-draft"}, "not both"),
])
def test_v1_bad_structured_output_is_a_400(tiny_app, body, named):
    response = httpx.post(tiny_app.url.rstrip("/") + "/v1/chat/completions", timeout=60, json={
        "model": "tiny-llm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **body})
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]["message"]
