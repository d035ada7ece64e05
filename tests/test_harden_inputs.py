"""Issue 11, defects 7, 8 and 10c: numbers that are not numbers, broken catalogs, WAV files that lie.

Bad numbers go in as a hostile client sends them (raw JSON: Python's json writes NaN and Infinity, which the
server's parser accepts); broken catalogs go to ``python app.py --models`` as a user would start it; damaged
WAV files are uploaded through gradio_client like any recording.
"""
from __future__ import annotations

import base64
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import media
from tests.conftest import ROOT
from tests.rawhttp import Outcome, call

NAN, INF = float("nan"), float("inf")
HUGE = 2 ** 70
# Fragments of Python's (or pybind's) own exception text: none may reach a client.
RAW_TEXT = ("Traceback", "could not convert", "cannot convert", "object has no attribute", "not supported between",
            "TypeError", "OverflowError", "incompatible function arguments", "invalid literal", "unexpected failure")


def refused(outcome: Outcome, param: str) -> str:
    """The outcome is an error whose message names ``param`` and quotes no Python exception text."""
    assert outcome.event == "error", f"{param}: accepted ({outcome.data!r:.300})"
    message = outcome.message
    assert param in message, f"the message does not name {param!r}: {message!r}"
    for raw in RAW_TEXT:
        assert raw not in message, f"{param}: Python's text {raw!r} reached the client: {message!r}"
    return message


# ---------------------------------------------------------------------------------------------------------
# Defect 7: NaN, infinity, 2**70 and strings where numbers go


def chat_args(**changes) -> list:
    args = {"prompt": "Hi", "model": "tiny-llm", "history": [], "system_prompt": "", "adapter": "",
            "adapter_alpha": 1.0, "draft": "", "device": "", "max_new_tokens": 4, "temperature": 0.0}
    args.update(changes)
    return list(args.values())


CHAT_CASES = [
    ("temperature", {"temperature": NAN}), ("temperature", {"temperature": INF}),
    ("temperature", {"temperature": "hot"}),
    ("adapter_alpha", {"adapter": "lora-a", "adapter_alpha": NAN}),
    ("adapter_alpha", {"adapter": "lora-a", "adapter_alpha": -INF}),
    ("adapter_alpha", {"adapter": "lora-a", "adapter_alpha": "strong"}),
    ("alpha", {"adapter": "lora-a:nan"}),
    ("max_new_tokens", {"max_new_tokens": NAN}), ("max_new_tokens", {"max_new_tokens": INF}),
    ("max_new_tokens", {"max_new_tokens": HUGE}), ("max_new_tokens", {"max_new_tokens": "many"}),
    ("max_new_tokens", {"max_new_tokens": 2.5}),
]


@pytest.mark.parametrize("param,changes", CHAT_CASES, ids=[f"{p}={list(c.values())[-1]}" for p, c in CHAT_CASES])
def test_chat_refuses_numbers_that_are_not(tiny_app, param, changes):
    refused(call(tiny_app.url, "chat", chat_args(**changes)), param)


def image_args(**changes) -> list:
    args = {"prompt": "a red square", "model": "tiny-sd", "negative_prompt": "", "adapters": {}, "width": 0,
            "height": 0, "steps": 2, "guidance_scale": -1, "seed": 42, "device": ""}
    args.update(changes)
    return list(args.values())


IMAGE_CASES = [
    ("style-kohya", {"adapters": {"style-kohya": NAN}}), ("style-kohya", {"adapters": {"style-kohya": INF}}),
    ("adapters", {"adapters": "style-kohya"}),
    ("width", {"width": NAN}), ("height", {"height": INF}), ("height", {"height": "tall"}),
    ("steps", {"steps": NAN}), ("steps", {"steps": -INF}),
    ("guidance_scale", {"guidance_scale": NAN}), ("guidance_scale", {"guidance_scale": INF}),
    ("guidance_scale", {"guidance_scale": "high"}),
    ("seed", {"seed": NAN}), ("seed", {"seed": HUGE}), ("seed", {"seed": "lucky"}),
]


@pytest.mark.parametrize("param,changes", IMAGE_CASES, ids=[f"{p}={list(c.values())[-1]}" for p, c in IMAGE_CASES])
def test_generate_image_refuses_numbers_that_are_not(tiny_app, param, changes):
    refused(call(tiny_app.url, "generate_image", image_args(**changes)), param)


UI_CASES = [("Kohya style", 12, NAN), ("Images", 9, NAN), ("Width", 4, INF), ("Seed", 8, "lucky"),
            ("Steps", 6, "many"), ("Guidance scale", 7, NAN)]


@pytest.mark.parametrize("label,index,bad", UI_CASES, ids=[f"{label}={bad}" for label, _, bad in UI_CASES])
def test_image_ui_event_refuses_numbers_that_are_not(tiny_app, label, index, bad):
    """The Image tab's own event (callable, undocumented): a NaN weight used to give an all-black picture."""
    # prompt, negative, model, device, width, height, steps, guidance, seed, images, live, compare, 3 style weights
    data = ["a red square", "", "tiny-sd", "CPU", 64, 64, 2, 1.0, 42, 1, False, False, 0.0, 0.0, 0.0]
    data[index] = bad
    refused(call(tiny_app.url, "generate_images", data), label)


def png_data_url() -> str:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("bad", [NAN, INF, HUGE, "long", 7.5], ids=["nan", "inf", "2**70", "text", "fraction"])
def test_ask_image_refuses_max_new_tokens_that_is_not_a_count(tiny_app, bad):
    data = [png_data_url(), "What is in the picture?", "tiny-vlm", [], bad, ""]
    refused(call(tiny_app.url, "ask_image", data), "max_new_tokens")


def upload(base_url: str, path: Path) -> dict:
    """Upload ``path`` as the browser does; the FileData dict Gradio then accepts as an input."""
    import httpx
    with path.open("rb") as handle:
        response = httpx.post(base_url.rstrip("/") + "/gradio_api/upload", files={"files": (path.name, handle)},
                              timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


@pytest.mark.parametrize("bad", [NAN, "yes", 2], ids=["nan", "text", "two"])
def test_transcribe_refuses_timestamps_that_are_not_true_or_false(tiny_app, tmp_path, bad):
    wav = media.write_wav(tmp_path / "clip.wav", media.signal(2.0), 16000)
    data = [upload(tiny_app.url, wav), "tiny-whisper", "", "transcribe", bad, "", "", "", False]
    refused(call(tiny_app.url, "transcribe", data), "timestamps")


def test_valid_numbers_still_work(tiny_app):
    """The checks refuse only what is broken: integral floats and the documented defaults pass."""
    chat = call(tiny_app.url, "chat", chat_args(max_new_tokens=3.0, temperature=-1, adapter="lora-a",
                                                adapter_alpha=0.5))
    assert chat.event == "complete", chat.data
    image = call(tiny_app.url, "generate_image", image_args(width=64.0, seed=7.0, guidance_scale=1.5,
                                                            adapters={"style-kohya": 0.5}))
    assert image.event == "complete", image.data
    assert image.data[1]["adapters"] == {"style-kohya": 0.5} and image.data[1]["seed"] == 7


# ---------------------------------------------------------------------------------------------------------
# Defect 8: broken catalogs stop the app with one line per problem


def run_app(models: str, timeout: float = 90) -> tuple[int, str]:
    """``python app.py --models <models>``: its exit code and everything it printed (bounded)."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    try:
        done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--models", models, "--port", "1"], cwd=ROOT,
                              env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"app.py --models {models} did not return within {timeout} s "
                    f"(printed {len(exc.stdout or b'') + len(exc.stderr or b'')} bytes)")
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


def alias_bomb(levels: int) -> str:
    """The 'billion laughs' in YAML: each level lists nine aliases of the one before."""
    lines = ["chat:", "  - id: bomb", "    source: OpenVINO/x", "    description:",
             '      - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"      - &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _write(path: Path, content: bytes | str) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


BAD_CATALOGS = {
    "not utf-8": (lambda d: _write(d / "latin1.yaml", "chat:\n  - id: caf\xe9\n    source: OpenVINO/x\n"
                                   .encode("latin-1")), ["UTF-8", "line 2"]),
    "alias bomb": (lambda d: _write(d / "bomb.yaml", alias_bomb(8)), ["alias"]),
    "deep nesting": (lambda d: _write(d / "deep.yaml", "chat: " + "[" * 5000 + "]" * 5000 + "\n"), ["nested"]),
    "/dev/zero": (lambda d: "/dev/zero", ["not a regular file"]),
    "a folder": (lambda d: str(d), ["not a regular file"]),
    "too large": (lambda d: _write(d / "big.yaml", "# padding\n" * 120_000 + "chat: []\n"), ["larger than", "MB"]),
    "empty": (lambda d: _write(d / "empty.yaml", ""), ["the catalog lists no models"]),
    "only settings": (lambda d: _write(d / "settings.yaml", "settings: {device: CPU}\nchat: []\n"),
                      ["the catalog lists no models"]),
    "field and cross-check": (lambda d: _write(d / "both.yaml", "chat:\n  - id: a\n    source: OpenVINO/x\n"
                                               "    generation: {temperature: 9}\n"
                                               "  - id: b\n    source: ./nowhere-here\n"),
                              ["chat[a].generation.temperature", "chat[b].source", "does not exist"]),
    "long value quoted": (lambda d: _write(d / "long.yaml", "chat:\n  - id: x\n    source: OpenVINO/x\n"
                                           f"    generation: {{temperature: {'h' * 5000}}}\n"),
                          ["chat[x].generation.temperature"]),
}


@pytest.mark.parametrize("name", list(BAD_CATALOGS))
def test_broken_catalog_stops_the_app_with_a_short_message(tmp_path, name):
    make, expected = BAD_CATALOGS[name]
    code, output = run_app(make(tmp_path))
    assert len(output) < 4000, f"{name}: {len(output)} bytes of output: {output[:500]!r}"
    assert code == 2, f"{name}: exit code {code}: {output[-2000:]}"
    assert "Traceback" not in output, output
    problems = [line for line in output.splitlines() if line.startswith("  - ")]
    assert problems, output
    assert all(len(line) < 400 for line in problems), problems
    for fragment in expected:
        assert fragment in output, f"{name}: {fragment!r} not in {output!r}"


def test_fifo_catalog_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "models.yaml"
    os.mkfifo(fifo)
    code, output = run_app(str(fifo), timeout=60)
    assert code == 2 and "not a regular file" in output and "Traceback" not in output, output


def test_a_few_aliases_are_still_fine(tmp_path):
    from demos.core.catalog import load_catalog
    path = tmp_path / "models.yaml"
    path.write_text("chat:\n  - {id: a, source: OpenVINO/x, properties: &p {NUM_STREAMS: 1}}\n"
                    "  - {id: b, source: OpenVINO/y, properties: *p}\n")
    assert load_catalog(path).chat[1].properties == {"NUM_STREAMS": 1}


# ---------------------------------------------------------------------------------------------------------
# Defect 10c: a WAV cut short, or whose header claims hours, gets the damaged-file warning


@pytest.fixture(scope="module")
def speech_client(tiny_app):
    from gradio_client import Client
    return Client(tiny_app.url, verbose=False)


def _transcribe(client, path: Path) -> tuple[str, list, dict]:
    from gradio_client import handle_file
    return client.predict(handle_file(str(path)), "tiny-whisper", skip_silence=False, api_name="/transcribe")


def test_cut_wav_is_transcribed_with_the_truncation_warning(speech_client, tmp_path):
    whole = media.write_wav(tmp_path / "whole.wav", media.signal(6.0, seed=3), 16000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:len(whole) // 2])  # about 3 s of the 6 s the header declares
    _, _, metrics = _transcribe(speech_client, cut)
    warning = metrics.get("warning", "")
    assert "cut.wav" in warning and "truncated" in warning, metrics
    assert "6.0 s" in warning and "3.0 s" in warning, warning


def test_wav_header_claiming_ten_hours_is_not_too_long_but_damaged(speech_client, tmp_path):
    data = bytearray(media.write_wav(tmp_path / "two.wav", media.signal(2.0, seed=5), 16000).read_bytes())
    claimed = 10 * 3600 * 16000 * 2  # ten hours of 16-bit mono at 16 kHz, in bytes
    assert data[36:40] == b"data"
    data[4:8] = struct.pack("<I", claimed + 36)
    data[40:44] = struct.pack("<I", claimed)
    liar = tmp_path / "liar.wav"
    liar.write_bytes(bytes(data))
    _, _, metrics = _transcribe(speech_client, liar)
    warning = metrics.get("warning", "")
    assert "truncated" in warning and "liar.wav" in warning, metrics
    assert "36000.0 s" in warning or "10 h" in warning, warning
    assert metrics["audio_s"] == pytest.approx(2.0, abs=0.05), metrics


def test_whole_wav_has_no_warning(speech_client, tmp_path):
    path = media.write_wav(tmp_path / "fine.wav", media.signal(3.0, seed=6), 16000)
    _, _, metrics = _transcribe(speech_client, path)
    assert "warning" not in metrics, metrics

