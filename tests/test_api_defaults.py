"""Raw HTTP callers of a ``gr.api`` endpoint may leave out its trailing defaulted parameters."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.unit


def _endpoint(fn):
    from gradio.components.api_component import Api
    import inspect
    return SimpleNamespace(fn=fn, api_name=fn.__name__, inputs=[Api(None, {"type": "string"}) for _ in inspect.signature(fn).parameters])


def chat(prompt: str, model: str, history: list | None = None, max_new_tokens: int = 256, regex: str = "") -> str:
    return prompt


def test_missing_trailing_values_take_the_functions_defaults():
    from demos.ui.api_defaults import fill_defaults
    inputs = ["Hello", "tiny-llm", []]
    fill_defaults(_endpoint(chat), inputs)
    assert inputs == ["Hello", "tiny-llm", [], 256, ""]


def test_a_full_or_longer_list_is_left_as_sent():
    from demos.ui.api_defaults import fill_defaults
    inputs = ["Hello", "tiny-llm", [], 8, "a+", "extra"]
    fill_defaults(_endpoint(chat), inputs)
    assert inputs == ["Hello", "tiny-llm", [], 8, "a+", "extra"]


def test_a_missing_required_value_is_a_message_naming_it():
    from demos.core.errors import UserError
    from demos.ui.api_defaults import fill_defaults
    with pytest.raises(UserError) as caught:
        fill_defaults(_endpoint(chat), ["Hello"])
    assert str(caught.value) == ("/chat takes (prompt, model, history, max_new_tokens, regex); missing: model")
    assert caught.value.param == "model"


def test_ui_events_are_not_touched():
    import gradio as gr
    from demos.ui.api_defaults import fill_defaults
    inputs = ["Hello"]
    fill_defaults(SimpleNamespace(fn=chat, api_name="chat", inputs=[gr.Textbox(), gr.Textbox()]), inputs)
    assert inputs == ["Hello"]
