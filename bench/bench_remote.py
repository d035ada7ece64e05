"""Remote entries: what the extra hop costs. An answer streamed from a model server directly, against the same
answer through this app's remote entry (``backend:`` in models.yaml, ``demos.core.remote``) on that server.

    flock /tmp/heavy.lock python bench/bench_remote.py [--rounds 5] [--tokens 128]

The model server is a ``python app.py`` on the tiny test catalog (OVMS is not installable here; its /v3 speaks
the same protocol); the client app lists ``remote-llm`` on it. Rounds alternate between the two paths; medians of
TTFT and of tokens/s after the first token, both measured by an ``openai`` SDK client streaming over
``/v1/chat/completions``. Target: TTFT added <= 30 ms, tokens/s ratio >= 0.95 (the hop forwards each piece as it
comes; the app's update throttle joins pieces arriving within 40 ms, which changes chunking, not the rate).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import AppProcess  # noqa: E402 - the same launcher the tests use
from tests.kit import build_all, catalog_dict  # noqa: E402

PROMPT = "Tell me a story about a cat."


def _launch(folder: Path, name: str, catalog: dict) -> AppProcess:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return AppProcess(["--models", str(path), "--cache-dir", str(folder / f"{name}-cache")],
                      env={"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=folder / f"{name}.log")


def _one(client, model: str, tokens: int) -> tuple[float, float]:
    """(TTFT in ms, tokens/s after the first token) of one streamed greedy answer."""
    started = time.perf_counter()
    first = None
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                            max_tokens=tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter()
        if chunk.usage is not None:
            usage = chunk.usage
    ended = time.perf_counter()
    assert first is not None and usage is not None and usage.completion_tokens == tokens
    return (first - started) * 1000, (tokens - 1) / max(ended - first, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    from openai import OpenAI

    kit = build_all()
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        folder = Path(tmp)
        server = _launch(folder, "server", catalog_dict(kit, folder / "server-cache"))
        catalog = catalog_dict(kit, folder / "client-cache")
        catalog["chat"].append({"id": "remote-llm", "backend": {"url": server.url + "v1", "model": "tiny-llm"}})
        client_app = _launch(folder, "client", catalog)
        try:
            server.wait_ready()
            client_app.wait_ready()
            direct = OpenAI(base_url=server.url + "v1", api_key="none", max_retries=0, timeout=300)
            hop = OpenAI(base_url=client_app.url + "v1", api_key="none", max_retries=0, timeout=300)
            _one(direct, "tiny-llm", args.tokens)  # warm both paths (the first answer compiles)
            _one(hop, "remote-llm", args.tokens)
            results: dict[str, list[tuple[float, float]]] = {"direct": [], "remote": []}
            for _ in range(args.rounds):
                results["direct"].append(_one(direct, "tiny-llm", args.tokens))
                results["remote"].append(_one(hop, "remote-llm", args.tokens))
        finally:
            client_app.stop()
            server.stop()
    ttft = {k: statistics.median(v[0] for v in rows) for k, rows in results.items()}
    rate = {k: statistics.median(v[1] for v in rows) for k, rows in results.items()}
    print(f"{args.rounds} rounds, {args.tokens} tokens, tiny model (rounds alternate)")
    print(f"{'path':<44} {'TTFT ms':>9} {'tokens/s':>10}")
    print(f"{'server /v1 directly':<44} {ttft['direct']:>9.1f} {rate['direct']:>10.1f}")
    print(f"{'this app, remote entry on that server':<44} {ttft['remote']:>9.1f} {rate['remote']:>10.1f}")
    print(f"TTFT added by the hop: {ttft['remote'] - ttft['direct']:+.1f} ms (target <= 30); "
          f"tokens/s ratio: {rate['remote'] / rate['direct']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
