"""Structured output (a JSON schema or a regex the answer must follow) and thinking (``<think>…</think>``).

Structured output is genai's ``StructuredOutputConfig`` (xgrammar underneath). A schema or regex xgrammar cannot
compile fails inside ``step()`` of a continuous-batching pipeline — failing every answer stepped with it — so both
are checked here first, in words. After the answer, ``check_answer`` says whether it is valid against the schema,
or that it was cut by max new tokens before it could be.

Thinking: reasoning models answer ``<think>…</think>answer`` (some chat templates open the ``<think>`` in the
prompt, so the answer starts inside it and only ``</think>`` appears). ``split_thinking`` separates the two; the
UI shows the thinking collapsed above the answer and the history sent back to the model leaves it out.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from demos.core.errors import UserError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MAX_GRAMMAR_CHARS = 20_000  # a schema or regex longer than this is a mistake (xgrammar compiles it per request)
# What xgrammar's regex converter does not take (Python's ``re`` does): look-arounds, back-references, named
# groups, possessive and atomic constructs.
_UNSUPPORTED_REGEX = re.compile(r"\(\?[=!<>P]|\\[1-9]|\(\?[a-zA-Z]")


def check_json_schema(text: str) -> dict[str, Any]:
    """The schema in ``text`` as a dict; a ``UserError`` saying what is wrong with it otherwise."""
    import jsonschema
    if len(text) > MAX_GRAMMAR_CHARS:
        raise UserError(f"the JSON schema is {len(text)} characters; keep it under {MAX_GRAMMAR_CHARS}",
                        param="json_schema")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise UserError(f"the JSON schema is not valid JSON ({exc.__class__.__name__} at character "
                        f"{getattr(exc, 'pos', '?')}); write it as an object such as "
                        '{"type": "object", "properties": {"name": {"type": "string"}}}', param="json_schema") from None
    if not isinstance(schema, dict):
        raise UserError("the JSON schema must be an object such as {\"type\": \"object\", …}", param="json_schema")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise UserError(f"the JSON schema is not a valid schema at {where}: {exc.message}",
                        param="json_schema") from None
    _check_references(schema)
    return schema


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _check_references(schema: dict) -> None:
    """Every ``$ref`` must point inside the schema: one to nowhere passes ``check_schema`` and would fail only when
    the answer is checked (or inside the grammar compiler, for every request batched with it)."""
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012
    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = Registry().with_resource("urn:answer-schema", resource).resolver(base_uri="urn:answer-schema")
    for ref in _references(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise UserError(f"the JSON schema refers to {ref!r}, which is not in it: structured output takes only "
                            "references inside the schema (such as \"#/$defs/name\"); add that definition or "
                            "fix the reference", param="json_schema") from None


def check_regex(text: str) -> None:
    """A ``UserError`` for a regex that Python cannot compile or that uses what xgrammar lacks."""
    if len(text) > MAX_GRAMMAR_CHARS:
        raise UserError(f"the regex is {len(text)} characters; keep it under {MAX_GRAMMAR_CHARS}", param="regex")
    try:
        re.compile(text)
    except re.error as exc:
        raise UserError(f"the regex does not compile: {exc.msg} at position {exc.pos}", param="regex") from None
    if _UNSUPPORTED_REGEX.search(text):
        raise UserError("the regex uses look-arounds, back-references or (?…) groups, which structured output "
                        "does not support; use plain groups, classes, alternatives and repetitions", param="regex")


def output_config(json_schema: str, regex: str) -> Any:
    """genai's ``StructuredOutputConfig`` for the checked schema or regex (None for neither)."""
    import openvino_genai as ov_genai
    if json_schema:
        return ov_genai.StructuredOutputConfig(json_schema=json_schema)
    if regex:
        return ov_genai.StructuredOutputConfig(regex=regex)
    return None


def check_answer(text: str, json_schema: str, regex: str, cut_by_length: bool) -> str:
    """One line for the answer's figures: valid, or why not (cut by max new tokens, most likely)."""
    if json_schema:
        import jsonschema
        try:
            jsonschema.validate(json.loads(text), json.loads(json_schema))
            return "valid against the JSON schema"
        except (ValueError, jsonschema.ValidationError, jsonschema.exceptions.SchemaError) as exc:
            if cut_by_length:
                return ("incomplete: max new tokens ended the answer before the JSON was complete; raise max new "
                        "tokens or ask for less")
            return f"not valid against the schema: {getattr(exc, 'message', exc.__class__.__name__)}"
    if regex:
        if re.fullmatch(regex, text, flags=re.DOTALL):
            return "matches the regex"
        return ("incomplete: max new tokens ended the answer before the regex was matched; raise max new tokens"
                if cut_by_length else "does not match the regex")
    return ""


def split_thinking(text: str) -> tuple[str | None, str]:
    """(thinking, answer) of a reply: thinking None when there is none, answer "" while the model still thinks."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        inner = stripped[len(THINK_OPEN):]
        thinking, closed, answer = inner.partition(THINK_CLOSE)
        return thinking.strip(), answer.lstrip() if closed else ""
    if THINK_CLOSE in text and THINK_OPEN not in text:  # the template opened <think> in the prompt
        thinking, _, answer = text.partition(THINK_CLOSE)
        return thinking.strip(), answer.lstrip()
    return None, text


def without_thinking(text: str) -> str:
    """The answer part of an assistant message (what goes back to the model as history)."""
    return split_thinking(text)[1]
