"""Presenter mode benchmark: is the first generation on stage as fast as the second?

    flock /tmp/heavy.lock python bench/bench_presenter.py [--models models.yaml] [--rounds 1]

Starts ``python app.py --models <catalog>`` twice, once plain and once with ``--presenter``, and in each makes
every stage entry's opening request twice through gradio_client (the request each tab makes with the settings it
opens with): the chat example (plain and, where the entry has one, with its first draft: Compare runs both), the
image example with the first style at its suggested weight, 5 s of audio, and the sample picture with the first
question. The first request of the plain app pays for download, compile and first inference; presenter mode
paid for those before the page opened, so its first request should take what its second takes.

``--models`` defaults to the tiny test catalog (``python -m tests.kit`` builds it). For realistic sizes pass a
catalog of the benchmark models the other scripts in ``bench/`` build (each entry marked ``presenter: true``).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Request:
    label: str
    call: Callable  # (client) -> None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clip(folder: Path) -> Path:
    """5 s of a gliding tone at 16 kHz: speech-like enough to run every stage of Whisper."""
    t = np.arange(5 * 16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (300 + 100 * np.sin(2 * np.pi * 0.5 * t)) * t)
    path = folder / "clip.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((tone * 32767).astype(np.int16).tobytes())
    return path


def requests(catalog_path: Path, folder: Path) -> list[Request]:
    """Each stage entry's opening request(s), as its tab makes them."""
    from gradio_client import handle_file

    from demos.core.catalog import load_catalog
    from demos.ui.presenter import stage_entries
    from demos.panels.vision.samples import sample_images

    found = []
    for entry in stage_entries(load_catalog(catalog_path)):
        example = entry.examples[0] if getattr(entry, "examples", None) else None
        if entry.panel == "chat":
            prompt = example or "Hello!"
            found.append(Request(f"chat {entry.id}", lambda c, e=entry, p=prompt: c.predict(
                p, e.id, max_new_tokens=0, temperature=-1, api_name="/chat")))
            if entry.drafts:
                found.append(Request(f"chat {entry.id} + draft {entry.drafts[0].id}",
                                     lambda c, e=entry, p=prompt: c.predict(p, e.id, draft=e.drafts[0].id,
                                                                            max_new_tokens=0, temperature=-1,
                                                                            api_name="/chat")))
        elif entry.panel == "image":
            styles = {entry.adapters[0].id: entry.adapters[0].alpha} if entry.adapters else {}
            found.append(Request(f"image {entry.id}" + (f" + {next(iter(styles))}" if styles else ""),
                                 lambda c, e=entry, s=styles, p=example or "a photo": c.predict(
                                     p, e.id, adapters=s, api_name="/generate_image")))
        elif entry.panel == "speech":
            clip = _clip(folder)
            found.append(Request(f"speech {entry.id} (5 s)", lambda c, e=entry, a=clip: c.predict(
                handle_file(str(a)), e.id, timestamps=True, api_name="/transcribe")))
        elif entry.panel == "vision":
            picture = sample_images()[0]
            found.append(Request(f"vision {entry.id}", lambda c, e=entry, p=picture, q=example: c.predict(
                handle_file(str(p)), q or "What is in the picture?", e.id, api_name="/ask_image")))
    return found


def measure(catalog: Path, presenter: bool, todo: list[Request], log: Path) -> tuple[float, list[tuple[float, float]]]:
    """Start the app, time its start, then each request twice. Returns (start seconds, [(first, second)])."""
    from gradio_client import Client

    port = _free_port()
    args = [sys.executable, str(ROOT / "app.py"), "--models", str(catalog), "--port", str(port)]
    if presenter:
        args.append("--presenter")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        client = None
        while client is None:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with {proc.returncode}; see {log}")
            try:
                client = Client(url, verbose=False)
            except Exception:  # not listening yet
                time.sleep(0.5)
        ready = time.perf_counter() - started
        times = []
        for request in todo:
            pair = []
            for _ in range(2):
                t0 = time.perf_counter()
                request.call(client)
                pair.append(time.perf_counter() - t0)
            times.append((pair[0], pair[1]))
        return ready, times
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="the catalog (default: the tiny test catalog)")
    args = parser.parse_args()
    catalog = args.models
    if catalog is None:
        from tests.kit import build_all, write_catalog
        from tests.kit.common import cache_root
        catalog = write_catalog(build_all(), cache_root() / "tiny-catalog")
    folder = Path(tempfile.mkdtemp(prefix="bench-presenter-"))
    todo = requests(catalog, folder)
    results = {}
    for presenter in (False, True):
        name = "presenter" if presenter else "plain"
        results[name] = measure(catalog, presenter, todo, folder / f"{name}.log")
    print(f"\nCatalog: {catalog}\nFirst and second request of each stage entry, seconds (client wall time)\n")
    print(f"{'request':44s} {'plain 1st':>10s} {'plain 2nd':>10s} {'stage 1st':>10s} {'stage 2nd':>10s} "
          f"{'stage 1st/2nd':>14s}")
    for i, request in enumerate(todo):
        (p1, p2), (s1, s2) = results["plain"][1][i], results["presenter"][1][i]
        print(f"{request.label:44s} {p1:10.2f} {p2:10.2f} {s1:10.2f} {s2:10.2f} {s1 / s2:14.2f}")
    print(f"\nApp ready (page served): plain {results['plain'][0]:.1f} s · presenter {results['presenter'][0]:.1f} s "
          "(presenter mode loads and warms everything first)")


if __name__ == "__main__":
    main()
