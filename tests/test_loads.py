"""Many users at once on ``python app.py``: a first-use export blocks no one, one visitor cannot fill the queue,
and a client that goes away stops its job (DESIGN §5). Real concurrency, ordering asserted, never timings.

One app with its own empty cache, so ``tiny-llm-export`` really exports (optimum-intel, tens of seconds) on first
use while the other requests run.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from tests.conftest import app_on_catalog
from tests.rawhttp import post_json

PROMPT = "Tell me a story about a cat."
LONG = 5000  # tokens: an answer that runs for seconds on the tiny model, long enough to be cut off
WAIT_S = 300


def _long_answers(catalog: dict) -> None:
    catalog["chat"][0]["generation"]["max_new_tokens_limit"] = LONG + 1000  # above the tiny model's context


@pytest.fixture(scope="module")
def app(kit, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loads")
    with app_on_catalog(kit, folder, _long_answers) as launched:
        launched.folder = folder
        yield launched


def _exporting(folder: Path) -> bool:
    """An export is under way: optimum-intel writes into a temporary folder that is renamed when complete."""
    return bool(list((folder / "cache" / "exports").glob("*.tmp-*")))


def test_an_export_on_first_use_blocks_no_one_and_a_session_gets_its_share(app, kit):
    """While one chat model exports on first use, an answer on another, loaded model completes (the export is
    still running when it arrives); meanwhile one visitor's fifth request is refused with a message, the four
    others wait for the export with it and then answer, and another visitor's request is not affected."""
    answering = Client(app.url, verbose=False)
    answering.predict("Hello", "tiny-llm", api_name="/chat")  # loaded before the export starts
    crowd = Client(app.url, verbose=False)  # one session
    other = Client(app.url, verbose=False)  # another session, on the same exporting model
    jobs = [crowd.submit(PROMPT, "tiny-llm-export", max_new_tokens=16, api_name="/chat") for _ in range(5)]
    deadline = time.monotonic() + WAIT_S
    while not _exporting(app.folder):
        assert time.monotonic() < deadline and not all(j.done() for j in jobs), "the export never started"
        time.sleep(0.1)
    theirs = other.submit(PROMPT, "tiny-llm-export", max_new_tokens=16, api_name="/chat")

    reply, metrics = answering.predict(PROMPT, "tiny-llm", api_name="/chat")
    assert _exporting(app.folder), "the answer on the loaded model waited for the other model's export"
    assert reply and metrics["output_tokens"] > 0

    outcomes = []
    for job in jobs:
        try:
            outcomes.append(job.result(timeout=WAIT_S)[0])
        except Exception as exc:  # noqa: BLE001 - the refused one: its message is the point
            outcomes.append(exc)
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1, outcomes
    assert "You already have 4 requests waiting; wait for one to finish or press Stop" in str(refused[0])
    answers = [o for o in outcomes if isinstance(o, str)]
    assert len(answers) == 4 and len(set(answers)) == 1, answers
    assert theirs.result(timeout=WAIT_S)[0] == answers[0], "the other visitor's request was affected"
    assert answers[0] == _direct(_export_folder(app.folder), 16)


def test_a_disconnected_client_s_job_is_stopped(app):
    """A raw HTTP client reads the first streamed pieces of a long answer and closes the connection: the app
    stops that generation (its log says so) instead of running it to the end."""
    status, body = post_json(f"{app.url}gradio_api/call/chat",
                             {"data": [PROMPT, "tiny-llm", [], "", "", 1.0, "", "", LONG, 0.0]})
    assert status == 200, body
    before = app.output().count("chat: generate ended")
    stream = urllib.request.urlopen(f"{app.url}gradio_api/call/chat/{body['event_id']}", timeout=WAIT_S)
    pieces = 0
    for raw in stream:
        line = raw.decode().strip()
        if line.startswith("data:") and json.loads(line[5:] or "null"):
            pieces += 1
            if pieces == 3:  # text is streaming: the generate is running
                break
    stream.close()  # the client goes away
    deadline = time.monotonic() + WAIT_S
    while app.output().count("chat: generate ended") == before:
        assert time.monotonic() < deadline, "the generation never ended"
        time.sleep(0.2)
    ended = re.findall(r"chat: generate ended \((\d+) new tokens(, stopped)?\)", app.output())[-1]
    assert ended[1] == ", stopped" and int(ended[0]) < LONG, ended


def _export_folder(folder: Path) -> Path:
    exports = [p for p in (folder / "cache" / "exports").iterdir() if p.is_dir() and ".tmp-" not in p.name]
    assert len(exports) == 1, exports
    return exports[0]


def _direct(model_dir: Path, max_new_tokens: int) -> str:
    import openvino_genai as ov_genai
    pipe = ov_genai.LLMPipeline(str(model_dir), "CPU")
    chat = ov_genai.ChatHistory([{"role": "user", "content": PROMPT}])
    return pipe.generate(chat, max_new_tokens=max_new_tokens, do_sample=False).texts[0]
