"""Errors as DESIGN §4 wants them, through the launched app and its log (issue 12 item 4).

A mistake the user can fix answers with a message naming what to change and writes one log line, no traceback;
anything else (here: a chat entry whose model file is broken) answers with a short failure message that holds no
exception text, and the log keeps its traceback, once.
"""
from __future__ import annotations

import base64
import io
import shutil
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import AppProcess
from tests.media import signal, write_wav
from tests.rawhttp import call, upload

FAILED = "an internal error (details in the app's log)"
ENGINE_TEXT = ("Exception from", "core.cpp", "Traceback", "RuntimeError", "TypeError", "KeyError", "ValueError")


@pytest.fixture(scope="module")
def app(kit, tmp_path_factory):
    """The tiny catalog plus ``broken-llm``: a copy of the tiny LLM whose openvino_model.xml is cut in half."""
    from tests.kit import catalog_dict
    folder = tmp_path_factory.mktemp("errors")
    broken = folder / "broken-llm"
    shutil.copytree(kit.llm.main_ov, broken)
    xml = (broken / "openvino_model.xml").read_text()
    (broken / "openvino_model.xml").write_text(xml[: len(xml) // 2])  # not well-formed XML any more
    catalog = catalog_dict(kit, folder / "cache")
    catalog["chat"].append({"id": "broken-llm", "label": "Broken LLM", "source": str(broken),
                            "generation": {"max_new_tokens": 4, "temperature": 0.0}})
    (folder / "models.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    process = AppProcess(["--models", str(folder / "models.yaml"), "--cache-dir", str(folder / "cache")],
                         env={"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=folder / "app.log")
    try:
        yield process.wait_ready()
    finally:
        process.stop()


def _log_after(app: AppProcess, mark: int, expect: str, timeout: float = 10) -> str:
    """The log written since ``mark``, once it holds ``expect`` (or whatever is there after ``timeout``)."""
    deadline = time.monotonic() + timeout
    text = app.output()[mark:]
    while expect not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = app.output()[mark:]
    return text


def _chat(app: AppProcess, prompt: str = "Hello", model: str = "tiny-llm", device: str = "", system: str = "",
          history: list | None = None):
    return call(app.url, "chat", [prompt, model, history or [], system, "", 1.0, "", device, 4, 0.0])


def _png_data_url() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _ask(app: AppProcess, question: str = "What is it?", device: str = "", history: list | None = None):
    return call(app.url, "ask_image", [_png_data_url(), question, "tiny-vlm", history or [], 4, device])


def _generate(app: AppProcess, prompt: str = "a red square", device: str = ""):
    return call(app.url, "generate_image", [prompt, "tiny-sd", "", {}, 64, 64, 1, 1.0, 7, device])


def _transcribe(app: AppProcess, tmp_path, device: str = ""):
    wav = write_wav(tmp_path / "tone.wav", signal(1.0), 16000)
    return call(app.url, "transcribe", [upload(app.url, wav), "tiny-whisper", "", "transcribe", False, device, "", "",
                                            False])


def _assert_user_error(app: AppProcess, mark: int, message: str, *expected: str) -> None:
    """A clear message (holding ``expected``), one 'user error' log line for it and no traceback."""
    assert all(part in message for part in expected), message
    assert not any(text in message for text in ENGINE_TEXT), message
    log = _log_after(app, mark, "user error in")
    assert len([line for line in log.splitlines() if "user error in" in line]) == 1, log
    assert message.splitlines()[0] in log, log
    assert "Traceback" not in log, log


def test_unknown_model_is_a_message_and_one_log_line(app):
    mark = len(app.output())
    outcome = _chat(app, model="no-such-model")
    assert outcome.event == "error"
    _assert_user_error(app, mark, outcome.message, "unknown model id 'no-such-model'", "tiny-llm")


@pytest.mark.parametrize("device", ["HETERO:CPU", "MULTI:CPU", "BATCH:CPU", "cpu", "CPU,GPU", "0", "HETERO:",
                                    "AUTO:CPU,CPU"])  # a device twice: each spelling would be a new compile
def test_a_device_the_app_cannot_use_names_the_parameter_and_the_choices(app, device):
    mark = len(app.output())
    outcome = _chat(app, device=device)
    assert outcome.event == "error", outcome
    _assert_user_error(app, mark, outcome.message, "device", repr(device), "CPU", "AUTO")


@pytest.mark.parametrize("endpoint", ["ask_image", "generate_image", "transcribe"])
def test_hetero_is_refused_on_every_endpoint(app, endpoint, tmp_path):
    mark = len(app.output())
    outcome = {"ask_image": lambda: _ask(app, device="HETERO:"),
               "generate_image": lambda: _generate(app, device="HETERO:"),
               "transcribe": lambda: _transcribe(app, tmp_path, device="HETERO:")}[endpoint]()
    assert outcome.event == "error", outcome
    _assert_user_error(app, mark, outcome.message, "device", "'HETERO:'", "CPU")


LONE = "Hi!\ud800 there"  # a lone UTF-16 surrogate at position 3: valid JSON ("\ud800"), not valid text


HISTORY = [{"role": "user", "content": LONE}, {"role": "assistant", "content": "Hello."}]


@pytest.mark.parametrize("endpoint,param", [("chat", "prompt"), ("chat-system", "system_prompt"),
                                            ("chat-history", "history[0].content"), ("ask_image", "question"),
                                            ("ask_image-history", "history[0].content"),
                                            ("generate_image", "prompt")])
def test_a_lone_surrogate_is_refused_naming_the_parameter(app, endpoint, param):
    mark = len(app.output())
    outcome = {"chat": lambda: _chat(app, prompt=LONE), "chat-system": lambda: _chat(app, system=LONE),
               "chat-history": lambda: _chat(app, history=HISTORY),
               "ask_image": lambda: _ask(app, question=LONE),
               "ask_image-history": lambda: _ask(app, history=HISTORY),
               "generate_image": lambda: _generate(app, prompt=LONE)}[endpoint]()
    assert outcome.event == "error", outcome
    _assert_user_error(app, mark, outcome.message, f"{param} contains an invalid character",
                       "a lone surrogate at position 3")


def test_a_deliberate_gr_error_is_shown_and_logged_without_traceback(app):
    """A handler's own ``gr.Error`` (the speech panel's "no audio") keeps its message and prints no traceback."""
    mark = len(app.output())
    outcome = call(app.url, "transcribe_ui", [None, None, "tiny-whisper", "CPU", "auto", "transcribe", "segments",
                                              "", "", False])
    assert outcome.event == "error"
    _assert_user_error(app, mark, outcome.message, "Upload or record some audio first")


def test_a_broken_model_is_a_short_failure_and_its_traceback_is_logged_once(app):
    mark = len(app.output())
    outcome = _chat(app, model="broken-llm")
    assert outcome.event == "error"
    assert FAILED in outcome.message, outcome.message
    assert not any(text in outcome.message for text in ENGINE_TEXT), outcome.message
    assert "xml" not in outcome.message.lower(), outcome.message
    log = _log_after(app, mark, "Traceback")
    assert log.count("Traceback") == 1, log
    assert "user error in" not in log, log


def test_the_app_still_answers_after_the_errors(app):
    outcome = _chat(app)
    assert outcome.event == "complete", outcome
