"""``POST /v1/chat/completions`` for chat and vision entries, on the same engines as the panels.

A chat entry goes through ``panels.chat.engine`` (``default_settings`` → ``open_pipeline`` → ``stream_reply``), a
vision entry through ``panels.vision.answering`` (checks, bounds, load, ``answers``): the very calls the UI and
``/chat`` / ``/ask_image`` make, as ``serving`` jobs in the pipeline's lane, so greedy answers equal theirs and
whatever the engines learn (continuous batching) the API gets too. Everything that can be refused is refused
before the response starts, so a mistake is a 4xx and not a broken stream.
"""
from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from demos.api import catalog as api_catalog
from demos.api.bodies import Body, parse
from demos.api.errors import described
from demos.api.streaming import finish, relay, sse
from demos.core import checks, files, serving
from demos.core.catalog import ChatEntry, Entry, VisionEntry
from demos.core.errors import UserError, check_text
from demos.core.suite import Suite
from demos.panels.chat import engine as chat_engine
from demos.panels.chat import structured
from demos.panels.vision import answering
from demos.panels.vision.engine import Answer
from demos.panels.vision.inputs import ChatTurn, check_files, history_turns

ROUTE = "/v1/chat/completions"
ROLES = ("system", "developer", "user", "assistant")


class ChatRequest(Body):
    model: str = ""
    messages: list[Any] = Field(default_factory=list)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    # Extensions of the suite: LoRA adapters {id: alpha} and a draft model for speculative decoding.
    adapters: dict[str, float] | None = None
    draft: str | None = None
    # … prompt lookup (speculative decoding without a draft model), its n-gram size and tokens per step, adaptive
    # speculation (on unless false), and a regex the answer must match (OpenAI's response_format takes a schema).
    prompt_lookup: bool | None = None
    max_ngram_size: int | None = None
    assistant_tokens: int | None = None
    adaptive: bool | None = None
    regex: str | None = None


@dataclass(frozen=True)
class Final:
    text: str
    metrics: dict[str, Any]
    thinking: str | None = None  # a reasoning model's <think> part: the message's ``reasoning_content``


@dataclass
class Prepared:
    """A checked request, its pipeline open: ``items()`` generates (growing text, then one ``Final``)."""

    model: str
    max_new_tokens: int
    stop: tuple[str, ...]
    control: serving.Control
    items: Any  # () -> Iterator[str | Final]
    scratch: files.Scratch = field(default_factory=files.Scratch)


# ------------------------------------------------------------------------------------------------------------
# The request


def _refuse_unsupported(request: ChatRequest) -> None:
    extra = request.model_extra or {}
    if request.n not in (None, 1):
        raise UserError(f"n is {request.n}: this server returns one choice per request; send n=1 (or leave it out) "
                        "and repeat the request for more", param="n")
    for name in ("tools", "functions"):
        if extra.get(name):
            raise UserError(f"{name} (function calling) is not supported by this server; leave it out", param=name)
    if extra.get("logprobs"):
        raise UserError("logprobs is not supported by this server; leave it out", param="logprobs")
    for name in ("frequency_penalty", "presence_penalty"):
        if extra.get(name) not in (None, 0, 0.0):
            raise UserError(f"{name} is not supported by this server; leave it out or send 0", param=name)


def _response_schema(request: ChatRequest) -> str:
    """The JSON schema OpenAI's ``response_format`` asks for, as text ("" for free text)."""
    response_format = (request.model_extra or {}).get("response_format")
    if response_format is None:
        return ""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in (None, "text"):
        return ""
    if kind == "json_object":
        return json.dumps({"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise UserError("response_format.json_schema.schema must be a JSON schema object, e.g. "
                            '{"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object"}}}',
                            param="response_format")
        return json.dumps(schema)
    raise UserError(f"response_format.type {checks.shown(kind)} is not supported; use text, json_object or "
                    "json_schema", param="response_format")


def _stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    values = [stop] if isinstance(stop, str) else list(stop or [])
    for index, value in enumerate(values):
        check_text(value, f"stop[{index}]")
    return tuple(values)


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """The message's content as OpenAI parts (``text`` and ``image_url``), checked; a string is one text part."""
    if isinstance(content, str):
        return [{"type": "text", "text": check_text(content, f"{where}.content")}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise UserError(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    parts = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": check_text(part["text"], at)})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise UserError(f"{at}.image_url.url is missing", param=f"{at}.image_url")
            if url.split(":", 1)[0].lower() in ("http", "https"):
                raise UserError(f"{at}: remote image URLs are refused (this server fetches nothing it is not sent); "
                                "send the image inline as data:image/png;base64,…", param=f"{at}.image_url")
            if not url.startswith("data:"):
                raise UserError(f"{at}: an image must be a data:image/…;base64 URL", param=f"{at}.image_url")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise UserError(f"{at}: parts of type {kind!r} are not supported; use 'text' and 'image_url'", param=at)
    return parts


def _messages(raw: list[Any]) -> list[dict[str, Any]]:
    """``[{role, parts}]``, checked: known roles, a user message last."""
    if not raw:
        raise UserError("messages is empty: send at least one user message", param="messages")
    messages = []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise UserError(f"{where} must be an object like {{\"role\": \"user\", \"content\": \"Hi\"}}", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise UserError(f"{where}.role is {role!r}; use one of {', '.join(ROLES)} (tool messages are not "
                            "supported)", param=f"{where}.role")
        if message.get("tool_calls"):
            raise UserError(f"{where}: tool calls are not supported by this server", param=f"{where}.tool_calls")
        messages.append({"role": "system" if role == "developer" else role,
                         "parts": _parts(message.get("content"), where)})
    if messages[-1]["role"] != "user":
        raise UserError("the last message must be the user's: it is what the model answers", param="messages")
    return messages


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(part["text"] for part in parts if part["type"] == "text")


# ------------------------------------------------------------------------------------------------------------
# Chat entries: the chat panel's engine


def _prepare_chat(suite: Suite, entry: ChatEntry, request: ChatRequest, messages: list[dict[str, Any]],
                  stop: tuple[str, ...]) -> Prepared:
    for index, message in enumerate(messages):
        if any(part["type"] != "text" for part in message["parts"]):
            raise UserError(f"messages[{index}] holds an image, but {entry.id!r} is a text model; send images to a "
                            "vision model (GET /v1/models lists them)", param=f"messages[{index}].content")
    # A reasoning model's thinking in an earlier answer is not sent back to it (as in the panel).
    plain = [{"role": m["role"], "content": structured.without_thinking(_text(m["parts"])) if m["role"] == "assistant"
              else _text(m["parts"])} for m in messages]
    if entry.system_prompt and not any(m["role"] == "system" for m in plain):
        plain.insert(0, {"role": "system", "content": entry.system_prompt})  # as /chat does
    settings = chat_engine.default_settings(
        entry, max_new_tokens=_max_tokens(request), temperature=request.temperature, top_p=request.top_p,
        seed=request.seed, adapters=tuple((request.adapters or {}).items()), draft=request.draft or "", stop=stop,
        prompt_lookup=bool(request.prompt_lookup), max_ngram_size=request.max_ngram_size,
        assistant_tokens=request.assistant_tokens or (chat_engine.DEFAULT_LOOKUP_TOKENS if request.prompt_lookup
                                                      else None),
        json_schema=_response_schema(request), regex=check_text(request.regex or "", "regex"))
    settings = settings.replace(adaptive=request.adaptive is not False)
    opened = chat_engine.open_pipeline(suite, entry, "", settings, plain)
    control = serving.Control()

    def items() -> Iterator[str | Final]:
        with contextlib.closing(chat_engine.stream_reply(opened, plain, settings, control)) as stream:
            for item in stream:  # the answer only: its thinking comes once, with the final item
                yield Final(item.text, item.metrics, item.thinking) if isinstance(item, chat_engine.Reply) \
                    else structured.split_thinking(item)[1]

    return Prepared(entry.id, settings.max_new_tokens, stop, control, items)


def _max_tokens(request: ChatRequest) -> int | None:
    return request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens


# ------------------------------------------------------------------------------------------------------------
# Vision entries: the vision panel's answering


def _prepare_vision(suite: Suite, entry: VisionEntry, request: ChatRequest, messages: list[dict[str, Any]],
                    stop: tuple[str, ...]) -> Prepared:
    if request.adapters or request.draft:
        raise UserError(f"{entry.id!r} is a vision model: adapters and draft apply to chat models only",
                        param="adapters" if request.adapters else "draft")
    for name, asked in (("response_format", _response_schema(request)), ("regex", request.regex),
                        ("prompt_lookup", request.prompt_lookup)):
        if asked:
            raise UserError(f"{entry.id!r} is a vision model: {name} applies to chat models only", param=name)
    if any(m["role"] == "system" for m in messages):
        raise UserError(f"{entry.id!r} is a vision model, which takes no system message here: leave it out",
                        param="messages")
    settings = answering.settings_for(entry, _max_tokens(request), request.temperature, request.top_p, stop)
    scratch = files.Scratch()  # the data-URL images this request wrote: a refused request keeps none of them
    try:
        with scratch.collecting():
            history = [{"role": m["role"], "content": m["parts"]} for m in messages]
            # The panel folds a history that ends with a reply; the new question is the last turn, without one.
            gifs = answering.gif_videos(suite, entry)
            *earlier, last = history_turns(history + [{"role": "assistant", "content": ""}], gifs)
            question = answering.check_question(entry, last.text, list(last.files), earlier, last.videos)
            chat = [*earlier, ChatTurn(question, last.files, videos=last.videos)]
            for turn in chat:
                check_files(turn.files)
        answering.check_bounds(suite, entry, "", chat, settings)
        handle, facts = answering.load(suite, entry, "", chat=chat)
    except BaseException:
        scratch.discard()
        raise
    control = serving.Control()

    def items() -> Iterator[str | Final]:
        with contextlib.closing(answering.answers(handle, facts, chat, settings, control)) as stream:
            for item in stream:
                yield Final(item.text, item.metrics) if isinstance(item, Answer) else item

    return Prepared(entry.id, settings.max_new_tokens, stop, control, items, scratch)


# ------------------------------------------------------------------------------------------------------------
# Responses


def prepare(suite: Suite, raw: bytes) -> tuple[ChatRequest, Prepared]:
    request = parse(ChatRequest, raw)
    _refuse_unsupported(request)
    entry: Entry = api_catalog.entry_for(suite, request.model, ROUTE)
    messages = _messages(request.messages)
    stop = _stop_strings(request.stop)
    if isinstance(entry, VisionEntry):
        return request, _prepare_vision(suite, entry, request, messages, stop)
    return request, _prepare_chat(suite, entry, request, messages, stop)  # type: ignore[arg-type]


def usage(metrics: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(metrics.get("input_tokens", 0)), int(metrics.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(prepared: Prepared, final: Final) -> str:
    return "length" if final.metrics.get("output_tokens", 0) >= prepared.max_new_tokens else "stop"


def cut(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to its first stop string (OpenAI leaves the stop string out). genai ends generation once a
    stop string appears, but a stop string inside a token leaves the token's other characters in its text."""
    ends = [found for s in stop if (found := text.find(s)) >= 0]
    return text[:min(ends)] if ends else text


def _collect(prepared: Prepared) -> Final:
    for item in prepared.items():
        if isinstance(item, Final):
            return Final(cut(item.text, prepared.stop), item.metrics, item.thinking)
    raise RuntimeError("the engine ended without a final answer")


async def completions(suite: Suite, request: Request) -> Any:
    raw = await request.body()
    body, prepared = await finish(request, serving.Control(), lambda: prepare(suite, raw))
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_events(prepared, ident, created, include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    final = await finish(request, prepared.control, lambda: _collect(prepared))
    return JSONResponse({
        "id": ident, "object": "chat.completion", "created": created, "model": prepared.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": final.text,
                                             **({"reasoning_content": final.thinking} if final.thinking else {})},
                     "finish_reason": finish_reason(prepared, final), "logprobs": None}],
        "usage": usage(final.metrics), "metrics": final.metrics})


async def _events(prepared: Prepared, ident: str, created: int, include_usage: bool) -> Any:
    """The SSE stream: a role chunk, content deltas as the text grows, a chunk with ``finish_reason``, [DONE].

    With stop strings, the text is cut at the first complete one and its last ``len(longest) - 1`` characters are
    held back until the answer ends (they may be the start of a stop string): every delta sent is then part of the
    final answer, which is the one that counts."""
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": prepared.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}]}

    hold = max((len(s) - 1 for s in prepared.stop), default=0)
    sent = ""
    yield sse(chunk({"role": "assistant", "content": ""}))
    try:
        async for item in relay(prepared.items(), prepared.control):
            if isinstance(item, Final):
                text = cut(item.text, prepared.stop)
                rest = text[len(sent):] if text.startswith(sent) else ""
                if rest:
                    yield sse(chunk({"content": rest}))
                if item.thinking:
                    yield sse(chunk({"reasoning_content": item.thinking}))
                yield sse(chunk({}, finish_reason(prepared, item)))
                if include_usage:
                    yield sse({"id": ident, "object": "chat.completion.chunk", "created": created,
                               "model": prepared.model, "choices": [], "usage": usage(item.metrics),
                               "metrics": item.metrics})
                break
            grown = cut(item, prepared.stop)
            visible = grown if len(grown) < len(item) else item[:max(len(item) - hold, 0)]
            if len(visible) > len(sent) and visible.startswith(sent):
                yield sse(chunk({"content": visible[len(sent):]}))
                sent = visible
    except Exception as exc:  # noqa: BLE001 - the status is sent already: the error travels as an event
        yield sse(described(exc, f"POST {ROUTE} (streaming)")[1])
    yield sse("[DONE]")
