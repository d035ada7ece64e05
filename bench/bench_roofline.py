"""The ceiling every chat figure is measured against: memory bandwidth ÷ the weight bytes one decoded token reads.

    flock /tmp/heavy.lock python bench/bench_roofline.py [--repeats 5] [--tokens 64] [--rounds 2]
                                                        [--figure "label=tokens/s@model" ...]

Decoding one token reads every weight of the model once (batch 1: a matrix-vector product per layer), so on a CPU
it cannot run faster than ``bandwidth / bytes_per_token`` tokens/s. This script measures, in one run:

1. this machine's memory bandwidth, best of ``--repeats`` at several sizes (4 MiB stays in cache, the others do
   not): a numpy copy (one thread; read + write bytes per second) and a small OpenVINO model that sums a large
   input (every core the CPU plugin uses; read bytes per second, what decoding does);
2. the weight bytes one decoded token reads, for each chat benchmark model (bench_chat.py's TinyLlama-1.1B-shaped
   main and its two drafts), from the IR's constants: all of them once, except the token embedding table, of
   which a token reads one row (the constants feeding a ``Gather``'s data input). The KV cache a token reads is
   printed beside it (from config.json, f16, at the run's context length);
3. decode tokens/s of each model with ``LLMPipeline`` (bench_chat's own timed call), and of the main model with
   its LoRA adapter chosen (registered in the app's default adapter mode), each as a share of its ceiling.

``--figure "app /chat=31.2@main"`` adds a figure measured elsewhere (bench_chat.py, bench_serving.py …) to the
table, against the ceiling of the named model (main, agree, random). The README's Benchmarks section quotes the
shares. Random weights cost what trained weights cost.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_chat  # noqa: E402  (the chat benchmark models, built once, and its timed call)

MiB = 2 ** 20
SIZES_MIB = (4, 64, 256, 1024)
# Ops through which a weight flows on its way to its use: int4/int8 decompression and reshapes.
_PASS_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Unsqueeze", "Squeeze", "Transpose"}


# ---------------------------------------------------------------------------------------------------------
# 1. Bandwidth


def numpy_copy_gbps(size_mib: int, repeats: int) -> float:
    """Bytes read + written per second by ``np.copyto`` (one thread), best of ``repeats``."""
    src = np.ones(size_mib * MiB // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats + 1):  # the first touches the pages
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return 2 * src.nbytes / best / 1e9


def openvino_read_gbps(size_mib: int, repeats: int) -> float:
    """Bytes read per second by a compiled ``ReduceSum`` over a ``size_mib`` input (all the plugin's threads)."""
    import openvino as ov
    import openvino.opset13 as ops

    rows = 256  # rows summed apart, so the plugin spreads them over its threads (one long sum would not be)
    count = size_mib * MiB // 4
    data = ops.parameter([rows, count // rows], np.float32, name="x")
    total = ops.reduce_sum(data, ops.constant(np.array([1], dtype=np.int64)), keep_dims=False)
    compiled = ov.Core().compile_model(ov.Model([total], [data], "read"), "CPU")
    request = compiled.create_infer_request()
    tensor = ov.Tensor(np.ones((rows, count // rows), dtype=np.float32))
    best = float("inf")
    for _ in range(repeats + 1):
        started = time.perf_counter()
        request.infer({0: tensor})
        best = min(best, time.perf_counter() - started)
    return count * 4 / best / 1e9


def bandwidth(repeats: int) -> dict[str, dict[int, float]]:
    rows = {"numpy copy (1 thread, read+write)": {}, "OpenVINO sum (all threads, read)": {}}
    for size in SIZES_MIB:
        rows["numpy copy (1 thread, read+write)"][size] = numpy_copy_gbps(size, repeats)
        rows["OpenVINO sum (all threads, read)"][size] = openvino_read_gbps(size, repeats)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 2. Bytes per token


def _feeds_gather_data(output, depth: int = 0) -> bool:
    """Whether a constant's value reaches a ``Gather``'s data input through decompression/reshape ops only."""
    for target in output.get_target_inputs():
        node = target.get_node()
        kind = node.get_type_name()
        if kind == "Gather" and target.get_index() == 0:
            return True
        if kind in _PASS_THROUGH and depth < 6 and _feeds_gather_data(node.output(0), depth + 1):
            return True
    return False


def bytes_per_token(model_dir: Path) -> dict[str, float]:
    """Weight bytes one decoded token reads (IR constants; one row of a gathered table), and their total."""
    import openvino as ov
    model = ov.Core().read_model(str(model_dir / "openvino_model.xml"))
    read = total = gathered = 0.0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        size = op.get_byte_size()
        total += size
        shape = list(op.get_output_shape(0))
        if len(shape) >= 2 and _feeds_gather_data(op.output(0)):
            gathered += size
            read += size / shape[0]  # one row per token (scales and zero points have the same row count)
        else:
            read += size
    return {"read": read, "total": total, "gathered": gathered}


def kv_bytes_per_token(model_dir: Path, context: int) -> float:
    """KV cache bytes one decoded token reads at ``context`` tokens (f16 keys and values, every layer)."""
    config = json.loads((model_dir / "config.json").read_text())
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim * context * 2


# ---------------------------------------------------------------------------------------------------------
# 3. Decode rates and their share


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def decode_rate(model_dir: Path, tokens: int, rounds: int, adapter: Path | None = None) -> tuple[float, float]:
    """Median decode tokens/s of ``LLMPipeline`` (bench_chat.direct_run), optionally with ``adapter`` chosen, and
    the share of the machine's cores this process got meanwhile (CPU seconds ÷ wall seconds ÷ cores): on a shared
    machine, the part of the gap to the ceiling that is other work's, not the pipeline's."""
    import openvino_genai as ov_genai

    from demos.core import lora_modes
    properties = {}
    if adapter is not None:
        registered = ov_genai.Adapter(str(adapter))
        properties = {"adapters": lora_modes.registration([registered], lora_modes.DEFAULTS["chat"]),
                      "scheduler_config": ov_genai.SchedulerConfig()}
    pipe = ov_genai.LLMPipeline(str(model_dir), "CPU", **properties)
    if adapter is not None:
        config = pipe.get_generation_config()
        config.adapters = ov_genai.AdapterConfig(registered, 1.0)
        pipe.set_generation_config(config)
    bench_chat.direct_run(pipe, 8)  # warm-up
    rates, started, cpu = [], time.perf_counter(), cpu_s()
    for _ in range(rounds):
        rates.append(bench_chat.direct_run(pipe, tokens).tokens_per_s)
    received = (cpu_s() - cpu) / (time.perf_counter() - started) / (os.cpu_count() or 1)
    return statistics.median(rates), received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many, per bandwidth size")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--figure", action="append", default=[], metavar="LABEL=TOKENS_PER_S@MODEL",
                        help="a figure measured elsewhere, against the ceiling of main, agree or random")
    parser.add_argument("--skip-decode", action="store_true", help="bandwidth and bytes per token only")
    args = parser.parse_args()

    paths = bench_chat.build()
    models = {"main": paths["main"], "agree": paths["agree"], "random": paths["random"]}
    print(f"\nRoofline · CPU, {os.cpu_count()} logical cores, shared with other work · best of {args.repeats}\n")
    rows = bandwidth(args.repeats)
    print("1. memory bandwidth, GB/s:  " + "  ".join(f"{s:>5} MiB" for s in SIZES_MIB))
    for label, by_size in rows.items():
        print(f"   {label:34s}" + "  ".join(f"{by_size[s]:9.1f}" for s in SIZES_MIB))
    # The ceiling: the best rate measured out of cache (>= 64 MiB), whichever way it was read.
    out_of_cache = [by_size[s] for by_size in rows.values() for s in SIZES_MIB if s >= 64]
    ceiling_gbps = max(out_of_cache)
    print(f"   ceiling used below: {ceiling_gbps:.1f} GB/s (the best out-of-cache figure)\n")

    context = 40 + args.tokens // 2  # the prompt's tokens plus half the answer, on average
    sizes = {name: bytes_per_token(folder) for name, folder in models.items()}
    print("2. bytes one decoded token reads")
    for name, size in sizes.items():
        kv = kv_bytes_per_token(models[name], context)
        print(f"   {name:7s} weights {size['read'] / MiB:7.1f} MiB of {size['total'] / MiB:7.1f} MiB in the IR "
              f"(embedding table {size['gathered'] / MiB:.1f} MiB: one row read) · KV cache {kv / MiB:.2f} MiB at "
              f"{context} tokens · ceiling {ceiling_gbps * 1e9 / (size['read'] + kv):6.1f} tokens/s")
    print()

    figures: list[tuple[str, float, str, float | None]] = []
    if not args.skip_decode:
        runs = [(f"LLMPipeline {name}", name, folder, None) for name, folder in models.items()]
        runs.append(("LLMPipeline main, LoRA chosen", "main", models["main"], paths["lora"]))
        for label, name, folder, adapter in runs:
            rate, received = decode_rate(folder, args.tokens, args.rounds, adapter)
            figures.append((label, rate, name, received))
    for spec in args.figure:
        label, _, rest = spec.partition("=")
        rate, _, name = rest.partition("@")
        figures.append((label, float(rate), name or "main", None))
    if figures:
        print(f"3. decode tokens/s as a share of the ceiling ({args.tokens} new tokens, greedy, median of "
              f"{args.rounds})")
        for label, rate, name, received in figures:
            ceiling = ceiling_gbps * 1e9 / (sizes[name]["read"] + kv_bytes_per_token(models[name], context))
            got = (f" · this process got {received:.0%} of the cores (share ÷ that: {rate / ceiling / received:.0%})"
                   if received else "")
            print(f"   {label:32s} {rate:7.2f} tokens/s · ceiling {ceiling:6.1f} · share {rate / ceiling:6.1%}{got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
