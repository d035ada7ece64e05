"""Loads off the request path: an answer on a loaded model while another model exports, against the same answer
when the app is idle (DESIGN §5; target: <= 1.2x idle).

    python bench/bench_loads.py [--rounds 5] [--tokens 64]

Launches ``python app.py`` on the tiny test catalog (``tests/kit``) with an empty cache, so that the first
``/chat`` on ``tiny-llm-export`` really exports it with optimum-intel (a subprocess, tens of seconds). Measured
through gradio_client, end to end (request to last streamed piece), in one run:

1. idle: ``--rounds`` answers on the loaded ``tiny-llm``;
2. during the export: answers on ``tiny-llm`` one after another, counted only while the export's temporary folder
   exists (each answer must start and end inside the export);
3. idle again, after the export.

The export competes for the CPU (optimum-intel runs in its own process): the ratio shows what that costs, not
only whether the queue lets the answer through (with the old per-panel limit of 1 the answer waited for the whole
export). This is a measurement, not a test: it prints the figures and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import AppProcess  # noqa: E402
from tests.kit import build_all, catalog_dict  # noqa: E402

PROMPT = "Tell me a story about a cat."


def _answer_s(client, tokens: int) -> float:
    started = time.perf_counter()
    for _ in client.submit(PROMPT, "tiny-llm", max_new_tokens=tokens, api_name="/chat"):
        pass
    return time.perf_counter() - started


def _exporting(cache: Path) -> bool:
    return bool(list((cache / "exports").glob("*.tmp-*")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="answers per phase")
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens of each answer")
    args = parser.parse_args()
    from gradio_client import Client

    kit = build_all()
    with tempfile.TemporaryDirectory(prefix="bench-loads-") as tmp:
        folder = Path(tmp)
        cache = folder / "cache"
        (folder / "models.yaml").write_text(yaml.safe_dump(catalog_dict(kit, cache), sort_keys=False))
        app = AppProcess(["--models", str(folder / "models.yaml"), "--cache-dir", str(cache)],
                         env={"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=folder / "app.log")
        try:
            app.wait_ready()
            client = Client(app.url, verbose=False)
            _answer_s(client, args.tokens)  # load and warm the model
            _answer_s(client, args.tokens)
            idle = [_answer_s(client, args.tokens) for _ in range(args.rounds)]

            exporter = Client(app.url, verbose=False)
            export_job = exporter.submit(PROMPT, "tiny-llm-export", max_new_tokens=8, api_name="/chat")
            while not _exporting(cache):
                if export_job.done():
                    sys.exit("the export ended before it could be observed")
                time.sleep(0.05)
            during: list[float] = []
            export_started = time.perf_counter()
            while _exporting(cache) and len(during) < 50:
                seconds = _answer_s(client, args.tokens)
                if _exporting(cache):  # began and ended inside the export
                    during.append(seconds)
            export_job.result(timeout=900)
            export_s = time.perf_counter() - export_started
            after = [_answer_s(client, args.tokens) for _ in range(args.rounds)]
        finally:
            app.stop()

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:7.1f} ms  (n={len(values)}, " \
               f"min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})" if values else "no sample"

    print(f"answer on tiny-llm, {args.tokens} new tokens, through /chat (gradio_client, streaming):")
    print(f"  idle before:          {ms(idle)}")
    print(f"  during the export:    {ms(during)}   (export of tiny-llm-export: ~{export_s:.0f} s observed)")
    print(f"  idle after:           {ms(after)}")
    if during:
        base = statistics.median(idle + after)
        print(f"  ratio during / idle:  {statistics.median(during) / base:.2f}x   (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
