"""Issue 11, files: no endpoint reads a file of the server's own; only what Gradio uploaded (or the app wrote).

Every file-taking input of the launched app gets the same refusal for a server path, whether the file exists,
is missing, is not media, or is reached through ``..`` or a symlink from inside the upload folder: a reply that
differed would tell a client which files exist. Proper uploads (``gradio_client.handle_file``) keep working.
Also: ``max_images`` counts every image of the conversation, not just the new message's.
"""
from __future__ import annotations

import json
import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests import media
from tests.rawhttp import call

REFUSAL = "send it as a file upload (gradio_client.handle_file(path)); paths on the server are not accepted"
META = {"_type": "gradio.FileData"}
QUESTION = "What is in the picture?"


def _upload(url: str, path: Path) -> str:
    """POST the file to Gradio's upload route, as a browser or curl user does; the server path it was stored at."""
    with open(path, "rb") as handle:
        response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": (path.name, handle)},
                              timeout=30)
    response.raise_for_status()
    return response.json()[0]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    """Real media files outside the upload folder: what a server path could name."""
    folder = tmp_path_factory.mktemp("server-files")
    wav = media.write_wav(folder / "speech.wav", media.signal(2.0), 16000)
    png = folder / "picture.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(png)
    return {"wav": wav, "png": png}


@pytest.fixture(scope="module")
def upload_folder(tiny_app, samples) -> Path:
    """Gradio's upload folder as the app uses it (where an upload lands: <folder>/<hash>/<name>)."""
    return Path(_upload(tiny_app.url, samples["png"])).parents[1]


@pytest.fixture(scope="module")
def server_paths(upload_folder, samples) -> dict[str, dict[str, str]]:
    """For each media kind, paths a client could send: existing, missing, not media, ``..`` and symlink tricks."""
    links = upload_folder / f"harden-test-{uuid.uuid4().hex[:8]}"
    links.mkdir()
    paths: dict[str, dict[str, str]] = {}
    for kind, target in samples.items():
        link = links / f"link.{target.suffix.lstrip('.')}"
        link.symlink_to(target)
        paths[kind] = {"existing": str(target), "missing": str(target.with_name(f"gone{target.suffix}")),
                       "passwd": "/etc/passwd", "dotdot": f"{upload_folder}/{os.path.relpath(target, upload_folder)}",
                       "symlink": str(link)}
    yield paths
    for link in links.iterdir():
        link.unlink()
    links.rmdir()


def _queue_call(url: str, api_name: str, data: list) -> dict:
    """Run an event the way the browser does (queue/join by fn_index): private events have no /call route but are
    reachable like this. Returns the 'process_completed' message."""
    base = url.rstrip("/")
    with urllib.request.urlopen(f"{base}/config", timeout=30) as response:
        config = json.load(response)
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    session = uuid.uuid4().hex[:12]
    body = {"data": data, "fn_index": dependency["id"], "session_hash": session, "event_data": None,
            "trigger_id": dependency["targets"][0][0]}
    httpx.post(f"{base}/gradio_api/queue/join", json=body, timeout=30).raise_for_status()
    with httpx.stream("GET", f"{base}/gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                return message
    raise AssertionError(f"{api_name}: the event never completed")


def _first_output(outcome) -> Any:
    """The first output of a finished call (gr.api sends the outputs as one list)."""
    assert outcome.event == "complete", outcome.data
    data = outcome.data
    return data[0][0] if isinstance(data[0], list) else data[0]


def _file(path: str, meta: bool) -> dict[str, Any]:
    return {"path": path, "meta": META} if meta else {"path": path}


def _history(file: Any) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": file}, QUESTION]},
            {"role": "assistant", "content": "A picture."}]


# (endpoint, media kind, the data for a file value); every input the endpoint takes is given.
ENDPOINTS: dict[str, tuple[str, str, Callable[[Any], list]]] = {
    "transcribe": ("transcribe", "wav", lambda f: [f, "tiny-whisper", "", "transcribe", False, "", "", "", False]),
    "transcribe_ui audio": ("transcribe_ui", "wav",
                            lambda f: [f, None, "tiny-whisper", "CPU", "auto", "transcribe", "off", "", "", False]),
    "transcribe_ui media": ("transcribe_ui", "wav",
                            lambda f: [None, f, "tiny-whisper", "CPU", "auto", "transcribe", "off", "", "", False]),
    "ask_image image": ("ask_image", "png", lambda f: [f, QUESTION, "tiny-vlm", [], 8, ""]),
    "ask_image history": ("ask_image", "png", lambda f: [None, QUESTION, "tiny-vlm", _history(f), 8, ""]),
    "ask_image history file part": ("ask_image", "png", lambda f: [
        None, QUESTION, "tiny-vlm", [{"role": "user", "content": {"type": "file", "file": f}},
                                     {"role": "user", "content": QUESTION},
                                     {"role": "assistant", "content": "A picture."}], 8, ""]),
    "voice_chat": ("voice_chat", "wav", lambda f: [f, "tiny-llm", "tiny-whisper", "tiny-tts", [], "", 16]),
    "vision_accept": ("vision_accept", "png", lambda f: [{"text": QUESTION, "files": [f]}, None, "tiny-vlm", "CPU", 8]),
    "ask_video": ("ask_video", "png", lambda f: [f, QUESTION, "tiny-qwen2vl", [], 8, 16, ""]),
}


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_a_server_path_gets_one_refusal_in_every_file_input(tiny_app, server_paths, name):
    """Gradio's FileData (with meta), a bare {"path"} and a plain string: never read, and no reply that would
    say whether the file exists."""
    api_name, kind, data = ENDPOINTS[name]
    for shape in ("meta", "bare", "string"):
        logged = len(tiny_app.output())
        replies: dict[str, str] = {}
        for label, path in server_paths[kind].items():
            value = path if shape == "string" else _file(path, shape == "meta")
            outcome = call(tiny_app.url, api_name, data(value), timeout=120)
            assert outcome.event == "error", f"{name} {label} {shape}: {outcome.event} {outcome.data!r:.300}"
            replies[label] = outcome.message
        assert all(REFUSAL in message for message in replies.values()), replies
        assert len(set(replies.values())) == 1, f"{name} {shape}: the replies tell files apart: {replies}"
        message = next(iter(replies.values()))
        assert "passwd" not in message and "speech" not in message and "picture" not in message, message
        if shape != "string":  # file values are refused before the handler: one log line each, no traceback
            log = tiny_app.output()[logged:]
            assert "Traceback" not in log and log.count("refused a file that is not an upload") == len(replies), log


def test_raw_uploads_still_work(tiny_app, samples):
    """What Gradio's API docs tell curl users: upload, then send {"path": <returned>, "meta": ...}."""
    audio = _upload(tiny_app.url, samples["wav"])
    done = call(tiny_app.url, "transcribe", [_file(audio, True), "tiny-whisper", "", "transcribe", False, "", "", "",
                                False])
    assert isinstance(_first_output(done), str)
    picture = _upload(tiny_app.url, samples["png"])
    done = call(tiny_app.url, "ask_image", [_file(picture, True), QUESTION, "tiny-vlm", [], 4, ""])
    assert isinstance(_first_output(done), str)
    history = _history(_file(picture, True))
    done = call(tiny_app.url, "ask_image", [None, "And now?", "tiny-vlm", history, 4, ""])
    assert isinstance(_first_output(done), str)


def test_handle_file_uploads_still_work(tiny_app, samples):
    client = Client(tiny_app.url, verbose=False)
    text, _, _ = client.predict(handle_file(str(samples["wav"])), "tiny-whisper", skip_silence=False, api_name="/transcribe")
    assert isinstance(text, str)
    history = _history(handle_file(str(samples["png"])))
    reply, _ = client.predict(handle_file(str(samples["png"])), "And this?", "tiny-vlm", history, 4,
                              api_name="/ask_image")
    assert isinstance(reply, str)


def test_an_image_the_app_returned_can_be_sent_back(tiny_app):
    """A client that asks about a picture the app generated sends back the path the app gave it."""
    made = call(tiny_app.url, "generate_image", ["a red square", "tiny-sd", "", {}, 0, 0, 0, -1, 42, ""])
    image = _first_output(made)
    assert isinstance(image, dict) and image["path"], image
    asked = call(tiny_app.url, "ask_image", [image, QUESTION, "tiny-vlm", [], 4, ""])
    assert isinstance(_first_output(asked), str)


def test_max_images_counts_the_whole_conversation(tiny_app, samples):
    """The tiny entry takes 8 images: 8 across the conversation are answered, 9 (8 earlier + 1 new) are not."""
    client = Client(tiny_app.url, verbose=False)
    turn = [{"role": "user", "content": [handle_file(str(samples["png"])), handle_file(str(samples["png"])),
                                         QUESTION]},
            {"role": "assistant", "content": "Two pictures."}]
    seven = turn * 3 + [{"role": "user", "content": [handle_file(str(samples["png"])), QUESTION]},
                        {"role": "assistant", "content": "One picture."}]
    reply, _ = client.predict(handle_file(str(samples["png"])), "And this?", "tiny-vlm", seven, 2,
                              api_name="/ask_image")
    assert isinstance(reply, str)
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(samples["png"])), "And this?", "tiny-vlm", turn * 4, 2,
                       api_name="/ask_image")
    message = str(refused.value)
    assert "at most 8 image" in message and "9" in message, message
    assert "clear the chat" in message.lower() and "fewer" in message, message


def test_private_ui_events_refuse_server_paths_alike(tiny_app, server_paths, upload_folder, samples):
    """The webcam snapshot event is private (no /call route) yet reachable through the queue as the browser uses
    it; it echoes its files back, so a server path that got through would be served to the client."""
    replies = set()
    for path in server_paths["png"].values():
        for snapshot, files in (((_file(path, True)), []), (None, [_file(path, True)]), (None, [_file(path, False)])):
            done = _queue_call(tiny_app.url, "add_snapshot", [snapshot, {"text": "", "files": files}])
            assert not done["success"], done
            replies.add(str(done["output"].get("error")))
    assert len(replies) <= 2 and all(REFUSAL in reply for reply in replies), replies  # one per input, no more
    upload = _upload(tiny_app.url, samples["png"])
    done = _queue_call(tiny_app.url, "add_snapshot", [_file(upload, True), {"text": "hi", "files": []}])
    assert done["success"], done
    assert done["output"]["data"][0]["files"][0]["path"].startswith(str(upload_folder)), done
