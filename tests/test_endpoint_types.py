"""Endpoints refuse JSON of the wrong type by the parameter's name, never with Python's own text."""
from __future__ import annotations

import re

import pytest

from demos.ui.endpoint_types import check_types, expected_types
from demos.core.errors import UserError
from tests.rawhttp import call

PYTHON_TEXT = re.compile(r"Error\b|object has no attribute|not supported between|Traceback")


def _endpoint(prompt: str, history: list[dict] = [], adapters: dict[str, float] = {},  # noqa: B006
              image: dict | None = None, temperature: float = 0.0, anything=None) -> None:
    """A stand-in endpoint with the annotations the app's endpoints use."""


@pytest.mark.unit
def test_the_checked_parameters_are_the_text_list_and_object_ones() -> None:
    assert expected_types(_endpoint) == {"prompt": (str,), "history": (list,), "adapters": (dict,), "image": (dict,)}


@pytest.mark.unit
@pytest.mark.parametrize("name, value, expected", [
    ("prompt", {"a": 1}, "prompt must be text, not an object"),
    ("prompt", 5, "prompt must be text, not a number"),
    ("history", "hi", "history must be a list, not text"),
    ("adapters", "style", "adapters must be an object ({...}), not text"),
    ("image", [1], "image must be an object ({...}), not a list"),
])
def test_a_value_of_the_wrong_type_is_refused_by_name(name: str, value, expected: str) -> None:
    names = ["prompt", "history", "adapters", "image", "temperature", "anything"]
    values = ["hi", [], {}, None, 0.0, object()]
    values[names.index(name)] = value
    with pytest.raises(UserError) as caught:
        check_types(_endpoint, names, values)
    assert str(caught.value) == expected and caught.value.param == name


@pytest.mark.unit
def test_right_types_none_and_unchecked_parameters_pass() -> None:
    check_types(_endpoint, ["prompt", "history", "adapters", "image", "temperature", "anything"],
                ["hi", [{"role": "user"}], {"a": 1.0}, None, "not checked here", {"any": "thing"}])


CASES = [
    ("chat", ["PROMPT", "tiny-llm", [], "", "", 1.0, "", "", 8, 0.0], 0, {"a": 1}, "prompt must be text"),
    ("chat", ["Hi", "tiny-llm", [], "SYSTEM", "", 1.0, "", "", 8, 0.0], 3, 5, "system_prompt must be text"),
    ("chat", ["Hi", "tiny-llm", "HISTORY", "", "", 1.0, "", "", 8, 0.0], 2, "hi", "history must be a list"),
    ("chat", ["Hi", "tiny-llm", [], "", "ADAPTER", 1.0, "", "", 8, 0.0], 4, {"lora-a": 1}, "adapter must be text"),
    ("chat", ["Hi", "MODEL", [], "", "", 1.0, "", "", 8, 0.0], 1, ["tiny-llm"], "model must be text"),
    ("chat", ["Hi", "tiny-llm", [], "", "", 1.0, "", "DEVICE", 8, 0.0], 7, 3, "device must be text"),
    ("generate_image", ["P", "tiny-sd", "", {}, 0, 0, 2, -1, 42, ""], 0, ["a"], "prompt must be text"),
    ("generate_image", ["a", "tiny-sd", "N", {}, 0, 0, 2, -1, 42, ""], 2, {"a": 1}, "negative_prompt must be text"),
    ("generate_image", ["a", "tiny-sd", "", "A", 0, 0, 2, -1, 42, ""], 3, "style-kohya", "adapters must be an object"),
    ("ask_image", [None, "Q", "tiny-vlm", [], 8, ""], 1, {"a": 1}, "question must be text"),
    ("ask_image", [None, "What?", "tiny-vlm", "H", 8, ""], 3, "hi", "history must be a list"),
]


@pytest.mark.parametrize("endpoint, inputs, index, bad, expected", CASES, ids=[c[-1] for c in CASES])
def test_the_app_refuses_wrong_types_by_name(tiny_app, endpoint: str, inputs: list, index: int, bad,
                                             expected: str) -> None:
    inputs = list(inputs)
    inputs[index] = bad
    outcome = call(tiny_app.url, endpoint, inputs)
    assert outcome.event == "error", outcome
    assert expected in outcome.message and not PYTHON_TEXT.search(outcome.message), outcome.message


def test_the_speech_endpoint_refuses_wrong_types_by_name(tiny_app, tmp_path) -> None:
    from tests.media import signal, write_wav
    from tests.rawhttp import upload
    audio = upload(tiny_app.url, write_wav(tmp_path / "a.wav", signal(1.0), 16000))
    for index, bad, expected in [(2, {"a": 1}, "language must be text"), (3, 5, "task must be text")]:
        inputs = [audio, "tiny-whisper", "", "transcribe", False, "", "", "", False]
        inputs[index] = bad
        outcome = call(tiny_app.url, "transcribe", inputs)
        assert outcome.event == "error" and expected in outcome.message, outcome.message
