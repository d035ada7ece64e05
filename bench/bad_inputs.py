"""The bad-input battery: what a careless or hostile client gets back from every endpoint.

    python bench/bad_inputs.py [--url http://127.0.0.1:7860/] [--timeout 60]

Without ``--url`` it launches ``python app.py`` on the tiny test catalog (``python -m tests.kit``). Every case is
sent as raw JSON to ``/gradio_api/call/<endpoint>`` (no gradio_client coercion) and its answer classified:

- clear:     refused with a message in the app's words;
- raw:       refused with Python's / OpenVINO's own exception text, a traceback, or a server path;
- accepted:  answered as if the input were fine (for a case that must be refused);
- silent:    refused with no message at all;
- hang:      no answer within the timeout.

This is a measurement, not a test: it prints a table and the totals.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rawhttp import call, upload  # noqa: E402

NAN, INF = math.nan, math.inf
RAW_PATTERNS = re.compile(
    r"Traceback|Exception from src|\b(Type|Value|Key|Index|Attribute|Runtime|OS|Unicode\w*)Error\b|"
    r"not supported between|invalid literal|could not convert|NoneType|object has no attribute|"
    r"\[Errno|check_.*failed|/tmp/|/root/|/etc/|/proc/|/home/|site-packages|didn't receive enough input")


def _wav(path: Path, seconds: float = 1.0) -> Path:
    samples = (0.3 * np.sin(np.arange(int(16000 * seconds)) / 5) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def _png(path: Path) -> Path:
    from PIL import Image
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path)
    return path


def cases(url: str, folder: Path) -> list[tuple[str, str, list]]:
    """(name, endpoint, inputs) for every bad input. Uploads are made once, through Gradio's upload route."""
    wav = upload(url, _wav(folder / "tone.wav"))
    png = upload(url, _png(folder / "red.png"))
    text = folder / "notes.txt"
    text.write_text("not audio")
    not_audio = upload(url, text)
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    empty_up = upload(url, empty)
    media = _wav(folder / "server.wav")
    big = "x" * 1_000_000

    def chat(name: str, **kw) -> tuple[str, str, list]:
        args = dict(prompt="Hello", model="tiny-llm", history=[], system_prompt="", adapter="", adapter_alpha=1.0,
                    draft="", device="", max_new_tokens=8, temperature=0.0)
        args.update(kw)
        return (f"chat: {name}", "chat", list(args.values()))

    def image(name: str, **kw) -> tuple[str, str, list]:
        args = dict(prompt="a red square", model="tiny-sd", negative_prompt="", adapters={}, width=0, height=0,
                    steps=2, guidance_scale=-1, seed=42, device="")
        args.update(kw)
        return (f"image: {name}", "generate_image", list(args.values()))

    def speech(name: str, **kw) -> tuple[str, str, list]:
        args = dict(audio=wav, model="tiny-whisper", language="", task="transcribe", timestamps=False, device="")
        args.update(kw)
        return (f"speech: {name}", "transcribe", list(args.values()))

    def vision(name: str, **kw) -> tuple[str, str, list]:
        args = dict(image=png, question="What is it?", model="tiny-vlm", history=[], max_new_tokens=8, device="")
        args.update(kw)
        return (f"vision: {name}", "ask_image", list(args.values()))

    data_url = "data:image/png;base64," + __import__("base64").b64encode((folder / "red.png").read_bytes()).decode()
    many = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}]}] * 21
    out = [
        chat("empty prompt", prompt=""), chat("prompt is a dict", prompt={"a": 1}),
        chat("prompt is a number", prompt=5), chat("lone surrogate", prompt="\ud800 hi"),
        chat("1 MB prompt", prompt=big), chat("1 MB system prompt", system_prompt=big),
        chat("unknown model", model="nope"), chat("model of another panel", model="tiny-sd"),
        chat("model is a list", model=["tiny-llm"]), chat("history is a string", history="hi"),
        chat("history item not a dict", history=["hi"]), chat("history bad role", history=[{"role": "x", "content": "a"}]),
        chat("system prompt is a dict", system_prompt={"a": 1}), chat("unknown adapter", adapter="nope"),
        chat("adapter is a dict", adapter={"lora-a": 1}), chat("adapter alpha NaN", adapter="lora-a", adapter_alpha=NAN),
        chat("adapter alpha inf", adapter="lora-a", adapter_alpha=INF),
        chat("adapter alpha string", adapter="lora-a", adapter_alpha="big"),
        chat("adapter alpha 99", adapter="lora-a", adapter_alpha=99), chat("blend bad syntax", adapter="lora-a:x,"),
        chat("unknown draft", draft="nope"), chat("foreign draft", draft="foreign-draft"),
        chat("device HETERO", device="HETERO:CPU"), chat("device nonsense", device="TPU"),
        chat("device is a number", device=3), chat("max tokens 10**12", max_new_tokens=10 ** 12),
        chat("max tokens 2**70", max_new_tokens=2 ** 70), chat("max tokens string", max_new_tokens="many"),
        chat("max tokens NaN", max_new_tokens=NAN), chat("max tokens float", max_new_tokens=3.5),
        chat("temperature NaN", temperature=NAN), chat("temperature inf", temperature=INF),
        chat("temperature string", temperature="hot"), chat("temperature 50", temperature=50),
        image("empty prompt", prompt=""), image("prompt is a list", prompt=["a"]), image("unknown model", model="x"),
        image("adapters is a string", adapters="style-kohya"), image("adapter weight NaN", adapters={"style-kohya": NAN}),
        image("adapter weight inf", adapters={"style-kohya": INF}), image("unknown style", adapters={"nope": 1.0}),
        image("adapter weight string", adapters={"style-kohya": "x"}), image("width NaN", width=NAN),
        image("width 10**9", width=10 ** 9), image("width string", width="wide"), image("height -64", height=-64.5),
        image("steps 500", steps=500), image("steps NaN", steps=NAN), image("steps 2**70", steps=2 ** 70),
        image("guidance NaN", guidance_scale=NAN), image("guidance inf", guidance_scale=INF),
        image("guidance 1000", guidance_scale=1000), image("seed NaN", seed=NAN), image("seed 2**70", seed=2 ** 70),
        image("seed string", seed="lucky"), image("device HETERO", device="HETERO:CPU"),
        image("1 MB prompt", prompt=big), image("negative prompt dict", negative_prompt={"a": 1}),
        speech("no audio", audio=None), speech("audio is a string path", audio=str(media)),
        speech("server path dict", audio={"path": str(media)}), speech("server path /etc/shadow", audio={"path": "/etc/shadow"}),
        speech("server path missing", audio={"path": "/root/.bash_history_nope"}),
        speech("server path /proc", audio={"path": "/proc/self/environ"}),
        speech("FileData of a server path", audio={"path": str(media), "meta": {"_type": "gradio.FileData"}}),
        speech("not an audio file", audio=not_audio), speech("empty file", audio=empty_up),
        speech("unknown model", model="x"), speech("unknown language", language="klingon"),
        speech("task nonsense", task="sing"), speech("timestamps string", timestamps="yes please"),
        speech("device HETERO", device="HETERO:CPU"), speech("language is a dict", language={"a": 1}),
        vision("no image no question", image=None, question=""), vision("question is a dict", question={"a": 1}),
        vision("1 MB question", question=big), vision("unknown model", model="x"),
        vision("image is a server path", image={"path": str(folder / "red.png")}),
        vision("image /etc/passwd", image={"path": "/etc/passwd"}), vision("image not an image", image=not_audio),
        vision("history is a string", history="hi"), vision("history bad role", history=[{"role": "x", "content": "a"}]),
        vision("history server path", history=[{"role": "user", "content": [{"type": "file", "file": {"path": "/etc/passwd"}}]}]),
        vision("history remote URL", history=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]),
        vision("history bad data URL", history=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]),
        vision("history 21 images", history=many), vision("max tokens 10**12", max_new_tokens=10 ** 12),
        vision("max tokens NaN", max_new_tokens=NAN), vision("max tokens string", max_new_tokens="x"),
        vision("device HETERO", device="HETERO:CPU"),
        ("models: fetch unknown", "fetch_model", ["nope", ""]), ("models: load unknown", "load_model", ["nope", "CPU"]),
        ("models: load bad device", "load_model", ["tiny-llm", "HETERO:CPU"]),
        ("models: fetch dict", "fetch_model", [{"a": 1}, ""]),
    ]
    # Last: on an unhardened app these hold a pipeline for minutes and would turn every later case into a hang.
    heavy = ("1 MB", "10**12")
    return [c for c in out if not any(h in c[0] for h in heavy)] + [c for c in out if any(h in c[0] for h in heavy)]


def classify(outcome, timed_out: bool) -> str:
    if timed_out:
        return "hang"
    if outcome.event == "complete":
        return "accepted"
    message = outcome.message
    if not message.strip() or message.strip() in ("None", "null", "Error"):
        return "silent"
    return "raw" if RAW_PATTERNS.search(message) else "clear"


def run(url: str, timeout: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        battery = cases(url, Path(tmp))
        totals: dict[str, int] = {}
        pool = ThreadPoolExecutor(max_workers=1)
        for name, endpoint, inputs in battery:
            future = pool.submit(call, url, endpoint, inputs, timeout)
            try:
                outcome, timed_out = future.result(timeout=timeout + 5), False
            except (FutureTimeout, TimeoutError, OSError):
                outcome, timed_out = None, True
            kind = classify(outcome, timed_out)
            totals[kind] = totals.get(kind, 0) + 1
            shown = "" if outcome is None else (outcome.message or "(answered)")[:110].replace("\n", " ")
            print(f"{kind:9s} {name:40s} {shown}", flush=True)
        pool.shutdown(wait=False, cancel_futures=True)
    print(f"\n{len(battery)} cases: " + ", ".join(f"{totals.get(k, 0)} {k}" for k in
                                                 ("clear", "raw", "accepted", "silent", "hang")))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an app already running (default: launch one on the tiny catalog)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a case counts as a hang")
    args = parser.parse_args()
    if args.url:
        return run(args.url, args.timeout)
    from tests.conftest import AppProcess
    from tests.kit import build_all, write_catalog
    with tempfile.TemporaryDirectory() as tmp:
        catalog = write_catalog(build_all(), Path(tmp))
        app = AppProcess(["--models", str(catalog), "--cache-dir", str(Path(tmp) / "cache")],
                         env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(Path(tmp) / "hf")}, log_path=Path(tmp) / "app.log")
        try:
            app.wait_ready()
            return run(app.url, args.timeout)
        finally:
            app.stop()


if __name__ == "__main__":
    sys.exit(main())
