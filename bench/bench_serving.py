"""Serving benchmark: 1, 2, 4 and 8 concurrent clients on one chat model through ``/chat`` of a launched app.

    flock /tmp/heavy.lock python bench/bench_serving.py [--rounds 1] [--tokens 64] [--clients 1,2,4,8]

The model is bench_chat's TinyLlama-1.1B-shaped int4 model with random weights (built once by ``bench_chat.build``).
Each client streams one greedy answer to its own prompt over Gradio's HTTP API (``bench_chat.sse_run``, which sees
each event as it arrives); all clients of a level start together. Per level: aggregate tokens/s (all tokens over
the wall time of the level), per-client tokens/s (each client's tokens over its own time), TTFT p50 / p95, the
largest batch genai stepped (``batch`` in the answers' metrics), and the app's RSS after the level.

Targets (issue 14): 4 clients >= 2.5x the aggregate tokens/s of one client; p95 TTFT at 4 clients <= 2x one
client's. Timings depend on the machine and on what else runs on it: read the ratios, side by side in one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_chat  # noqa: E402 - the benchmark model, its catalog and the app runner

PROMPTS = ["Write a short story about a lighthouse keeper who finds a message in a bottle.",
           "Explain how speculative decoding works in two paragraphs.",
           "Describe the weather on a sunny day with a light breeze.",
           "Summarise the plot of a story about a friendly robot who paints the sea.",
           "What is the capital of France, and why is it famous?",
           "List three ways to make a cup of tea taste better.",
           "Tell me about the history of the lighthouse on a rocky island.",
           "Why does the quick brown fox jump over the lazy dog?"]


def ask(url: str, prompt: str, tokens: int) -> bench_chat.Run:
    """One streamed ``/chat`` answer over Gradio's HTTP API, timed where the client sees text arrive."""
    return bench_chat.sse_run(url, tokens, prompt)


def level(url: str, clients: int, tokens: int) -> tuple[list[bench_chat.Run], float]:
    """``clients`` answers started together; their runs and the level's wall time."""
    runs: list[bench_chat.Run | None] = [None] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients)

    def client(index: int) -> None:
        try:
            start.wait()
            runs[index] = ask(url, PROMPTS[index % len(PROMPTS)], tokens)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return [r for r in runs if r is not None], wall


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds per level (medians over rounds)")
    parser.add_argument("--tokens", type=int, default=64, help="max_new_tokens of every answer")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrency levels, comma-separated")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    paths = bench_chat.build()
    catalog = bench_chat.write_catalog(paths, bench_chat.FOLDER)
    app = bench_chat.App(catalog, bench_chat.FOLDER / "run" / "serving-app.log").wait()
    try:
        level(app.url, 1, 8)  # load and warm up (a compile and the first inference are not serving)
        rows = {}
        for clients in levels:
            # The CPU plugin pays once for each new shape (a prefill of this many prompts together): not serving.
            level(app.url, clients, 8)
            results = [level(app.url, clients, args.tokens) for _ in range(args.rounds)]
            aggregate = statistics.median(sum(r.tokens for r in runs) / wall for runs, wall in results)
            per_client = statistics.median(statistics.mean(r.tokens / r.total_s for r in runs) for runs, _ in results)
            ttfts = [r.ttft_s * 1000 for runs, _ in results for r in runs]
            batch = max(r.metrics.get("batch", 1) for runs, _ in results for r in runs)
            rows[clients] = dict(aggregate=aggregate, per_client=per_client, p50=percentile(ttfts, 0.5),
                                 p95=percentile(ttfts, 0.95), batch=batch, rss=rss_mb(app.proc.pid))
    finally:
        app.stop()
    print(f"bench_serving: {args.tokens} tokens per answer, {args.rounds} round(s) per level, greedy")
    print(f"{'clients':>7} {'aggregate tok/s':>16} {'per client tok/s':>17} {'TTFT p50 ms':>12} {'TTFT p95 ms':>12}"
          f" {'batch':>6} {'RSS MB':>8}")
    for clients, row in rows.items():
        print(f"{clients:>7} {row['aggregate']:>16.1f} {row['per_client']:>17.1f} {row['p50']:>12.0f}"
              f" {row['p95']:>12.0f} {row['batch']:>6} {row['rss']:>8.0f}")
    if 1 in rows and 4 in rows:
        speedup = rows[4]["aggregate"] / rows[1]["aggregate"]
        ttft = rows[4]["p95"] / rows[1]["p95"]
        print(f"4 clients vs 1: aggregate tokens/s {speedup:.2f}x (target >= 2.5x); "
              f"p95 TTFT {ttft:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
