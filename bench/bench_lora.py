"""LoRA adapter modes: what each ``openvino_genai.AdapterConfig.Mode`` costs and whether it can switch per call.

    flock /tmp/heavy.lock python bench/bench_lora.py [--parts chat,image] [--rounds 2] [--tokens 64] [--steps 2]

For every mode (AUTO, DYNAMIC, STATIC_RANK, STATIC, FUSE), one pipeline is built with two adapters registered, as
the app registers an entry's adapters, and measured side by side with a pipeline without adapters:

* chat: ``LLMPipeline`` (with ``SchedulerConfig()``, as the app builds pipelines with adapters) on bench_chat.py's
  TinyLlama-1.1B shape, int4, with its rank-16 adapter on all 7 linear layers (A) and a second adapter of the same
  shape (B: A's down factors rolled by one rank, so its product differs). Decode tokens/s with none / A / A+B
  chosen, build time, what a switch costs (1-token calls, same setting vs switched), and whether A -> none -> B -> A
  reproduces each answer (none compared with the plain pipeline's answer).
* image: ``Text2ImagePipeline`` on bench_image.py's SD-1.5 shape at 512x512 (f32) with its two styles: genai's own
  seconds per denoising step with none / A / A+B, build time, the switch cost at 128x128, and A -> none -> B -> A on
  the pixels.

Random weights cost what trained weights cost. Rounds alternate the settings (and the plain pipeline), so drift in
a shared machine's load hits each alike; medians are printed. The verdict row names, per panel, the fastest mode
whose switching was exact: the app's default (demos/core/lora_modes.py).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_chat  # noqa: E402  (the TinyLlama-shaped models and their adapter, built once)
import bench_image  # noqa: E402  (the SD-1.5-shaped model and its two styles, built once)

MODES = ("MODE_AUTO", "MODE_DYNAMIC", "MODE_STATIC_RANK", "MODE_STATIC", "MODE_FUSE")
SETTINGS = ("none", "A", "A+B")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_s() -> float:
    """CPU seconds this process has used (every thread). On a machine shared with other work, wall time measures
    the share of the CPU this process got; CPU time per token or image measures the work, which an adapter adds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def second_adapter(first: Path, target: Path) -> Path:
    """B: ``first`` with every down (A) factor's rank rows rolled by one. Same shapes and rank, another product.

    Only the safetensors header and raw bytes are touched (numpy), so no torch is needed."""
    if target.is_file() and target.stat().st_mtime >= first.stat().st_mtime:
        return target
    import json
    raw = first.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    data = bytearray(raw[8 + size:])
    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}
    for name, info in header.items():
        if name == "__metadata__" or "lora_A" not in name and "lora_down" not in name:
            continue
        begin, end = info["data_offsets"]
        tensor = np.frombuffer(bytes(data[begin:end]), dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        data[begin:end] = np.roll(tensor, 1, axis=0).tobytes()
    target.write_bytes(raw[:8 + size] + bytes(data))
    return target


# ---------------------------------------------------------------------------------------------------------
# Chat


class ChatSide:
    """One LLMPipeline (a mode's, or the plain one) and the per-call settings it can be asked for."""

    def __init__(self, model: Path, adapters: list[Path], mode: str | None):
        import openvino_genai as ov_genai
        self.g = ov_genai
        self.adapters = [ov_genai.Adapter(str(p)) for p in adapters]
        self.mode = mode
        properties = {}
        if mode is not None:
            properties = {"adapters": ov_genai.AdapterConfig(self.adapters, getattr(ov_genai.AdapterConfig.Mode, mode)),
                          "scheduler_config": ov_genai.SchedulerConfig()}
        started = time.perf_counter()
        self.pipe = ov_genai.LLMPipeline(str(model), "CPU", **properties)
        self.build_s = time.perf_counter() - started

    def config(self, setting: str):
        """The per-call AdapterConfig of ``setting``. STATIC_RANK cannot change its rank per call (genai raises
        "Can not clone with new dims"): every registered adapter is passed, the unchosen ones at alpha 0."""
        a, b = self.adapters
        chosen = {"none": [], "A": [(a, 1.0)], "B": [(b, 1.0)], "A+B": [(a, 1.0), (b, 1.0)]}[setting]
        if self.mode == "MODE_STATIC_RANK":
            weights = {id(x): w for x, w in chosen}
            return self.g.AdapterConfig([(x, weights.get(id(x), 0.0)) for x in self.adapters])
        return self.g.AdapterConfig(chosen) if chosen else self.g.AdapterConfig()

    def run(self, setting: str | None, tokens: int) -> bench_chat.Run:
        """bench_chat's own timed call (``direct_run``), with ``setting``'s adapters in the pipeline's config."""
        config = self.pipe.get_generation_config()
        if setting is not None:
            config.adapters = self.config(setting)
        self.pipe.set_generation_config(config)
        before = cpu_s()
        try:
            result = bench_chat.direct_run(self.pipe, tokens)
        except IndexError:  # nothing was streamed (an answer that ended at once): no rate, an empty text
            result = bench_chat.Run(float("nan"), float("nan"), 0, "", {})
        self.cpu_ms_per_token = (cpu_s() - before) * 1000 / max(result.tokens, 1)
        return result

    def one_token_ms(self, setting: str | None) -> float:
        config = self.pipe.get_generation_config()
        if setting is not None:
            config.adapters = self.config(setting)
        started = time.perf_counter()
        self.pipe.generate("Hi", config, max_new_tokens=1)
        return (time.perf_counter() - started) * 1000


def chat_modes(args: argparse.Namespace) -> dict[str, dict]:
    paths = bench_chat.build()
    a = paths["lora"]
    b = second_adapter(a, a.parent / "adapter_b.safetensors")
    n = args.tokens
    print(f"\nCHAT · LLMPipeline · TinyLlama-1.1B shape int4 · rank-{bench_chat.LORA_RANK} adapters on all 7 linear "
          f"layers · {n} new tokens greedy · {args.rounds} rounds (medians) · CPU, {os.cpu_count()} logical cores, "
          "shared with other work\n", flush=True)
    plain = ChatSide(paths["main"], [], None)
    plain.run(None, n)
    reference = plain.run(None, 16).text
    results: dict[str, dict] = {}
    for mode in args.modes:
        try:  # FUSE refuses int4 weights at construction ("Use f32/f16/bf16 weights only if MODE_FUSE is used")
            side = ChatSide(paths["main"], [a, b], mode)
            checks = chat_exactness(side, reference)
            for setting in SETTINGS:  # warm-up
                side.run(setting, 8)
            rates: dict[str, list[float]] = {s: [] for s in (*SETTINGS, "plain")}
            cpu: dict[str, list[float]] = {s: [] for s in (*SETTINGS, "plain")}
            for _ in range(args.rounds):
                rates["plain"].append(plain.run(None, n).tokens_per_s)
                cpu["plain"].append(plain.cpu_ms_per_token)
                for setting in SETTINGS:
                    rates[setting].append(side.run(setting, n).tokens_per_s)
                    cpu[setting].append(side.cpu_ms_per_token)
            same, switched = switch_ms(side, args.rounds + 1)
        except RuntimeError as error:
            print(f"   {mode:17s} failed: {str(error).splitlines()[0][:160]}", flush=True)
            continue
        row = {s: _median(v) for s, v in rates.items()} | {f"cpu {s}": _median(v) for s, v in cpu.items()} | {
            "build_s": side.build_s, "switch_ms": switched - same, "same_ms": same, **checks}
        results[mode] = row
        print_chat_row(mode, row)
        side = None  # free this mode's pipeline before the next is built
    return results


def chat_exactness(side: ChatSide, reference: str) -> dict:
    """none (fresh) -> A -> none -> B -> A, 16 tokens each: each setting reproduces its answer, A and B change it.

    ``none_plain`` (none equal to the pipeline without adapters) is printed apart: on int4 weights the CPU plugin
    may compute a graph with LoRA branches in another order than the plain one, which can flip a near-tied greedy
    token of random weights without any switching being involved."""
    fresh_none, first_a, none, other, again = (side.run(s, 16).text for s in ("none", "A", "none", "B", "A"))
    return {"a_again": first_a == again, "none_again": none == fresh_none, "a_differs": first_a != none,
            "b_differs": other != first_a, "none_plain": none == reference}


def switch_ms(side, repeats: int) -> tuple[float, float]:
    """Median ms of a 1-token call with the same setting as the call before, and with another setting."""
    same, switched = [], []
    side.one_token_ms("A")
    current = "A"
    for _ in range(repeats):
        same.append(side.one_token_ms(current))
        current = "none" if current == "A" else "A"
        switched.append(side.one_token_ms(current))
    return _median(same), _median(switched)


def print_chat_row(mode: str, row: dict) -> None:
    none, one, two, plain = row["none"], row["A"], row["A+B"], row["plain"]
    print(f"   {mode:17s} build {row['build_s']:5.1f} s · tokens/s: plain {plain:5.2f} · none {none:5.2f} "
          f"({(1 - none / plain) * 100:+5.1f} % slower) · A {one:5.2f} ({(1 - one / none) * 100:+5.1f} % vs none) · "
          f"A+B {two:5.2f} ({(1 - two / none) * 100:+5.1f} %) · {cpu_line(row, 'CPU ms/token')} · "
          f"switch {row['switch_ms']:+6.1f} ms · "
          f"switching exact: {exact(row)} (A again {row['a_again']}, none again {row['none_again']}, "
          f"A changes the answer {row['a_differs']}, B another {row['b_differs']}; none = plain "
          f"{row['none_plain']})", flush=True)


def cpu_line(row: dict, unit: str) -> str:
    """The CPU cost per token (or image) of each setting: + is more work than the one it is compared with."""
    plain, none, one, two = (row[f"cpu {s}"] for s in ("plain", "none", "A", "A+B"))
    return (f"{unit}: plain {plain:.0f} · none {none:.0f} ({(none / plain - 1) * 100:+.1f} % vs plain) · "
            f"A {one:.0f} ({(one / none - 1) * 100:+.1f} % vs none) · A+B {two:.0f} ({(two / none - 1) * 100:+.1f} %)")


def exact(row: dict) -> bool:
    """Every setting reproduced its answer after the switches, and each adapter changed it."""
    return row["a_again"] and row["none_again"] and row["a_differs"] and row["b_differs"]


# ---------------------------------------------------------------------------------------------------------
# Image


class ImageSide:
    def __init__(self, paths: dict[str, Path], mode: str | None, cache: Path):
        import openvino_genai as ov_genai
        self.g = ov_genai
        self.adapters = [ov_genai.Adapter(str(paths["style_a"])), ov_genai.Adapter(str(paths["style_b"]))]
        self.mode = mode
        properties = {"INFERENCE_PRECISION_HINT": "f32"}
        if mode is not None:
            properties["adapters"] = ov_genai.AdapterConfig(self.adapters, getattr(ov_genai.AdapterConfig.Mode, mode))
        started = time.perf_counter()
        self.pipe = ov_genai.Text2ImagePipeline(str(paths["ov"]), "CPU", **properties)
        self.build_s = time.perf_counter() - started
        self.cpu_s_per_image = float("nan")

    def config(self, setting: str):
        """As the app's image panel asks: none is the first adapter at weight 0 (demos/panels/image/run.py)."""
        a, b = self.adapters
        chosen = {"none": [(a, 0.0)], "A": [(a, 0.8)], "B": [(b, 0.8)], "A+B": [(a, 0.8), (b, 0.6)]}[setting]
        if self.mode == "MODE_STATIC_RANK":
            weights = {id(x): w for x, w in chosen}
            chosen = [(x, weights.get(id(x), 0.0)) for x in self.adapters]
        return self.g.AdapterConfig(chosen)

    def run(self, setting: str | None, size: int, steps: int) -> tuple[float, np.ndarray]:
        """genai's mean step duration (s) and the pixels."""
        extra = {"adapters": self.config(setting)} if setting is not None else {}
        before = cpu_s()
        tensor = self.pipe.generate(bench_image.PROMPT, width=size, height=size, num_inference_steps=steps,
                                    guidance_scale=7.5, rng_seed=42, **extra)
        self.cpu_s_per_image = cpu_s() - before
        durations = list(self.pipe.get_performance_metrics().raw_metrics.iteration_durations)
        return statistics.mean(durations) / 1e6, tensor.data[0].copy()

    def one_token_ms(self, setting: str) -> float:  # the name switch_ms() calls: one 1-step image
        started = time.perf_counter()
        self.run(setting, 128, 1)
        return (time.perf_counter() - started) * 1000


def image_modes(args: argparse.Namespace) -> dict[str, dict]:
    paths = bench_image.build(args.cache)
    print(f"\nIMAGE · Text2ImagePipeline · SD-1.5 shape f32 · {args.size}x{args.size}, {args.steps} steps, guidance "
          f"7.5 · genai's own s/step, {args.image_rounds} round(s) · CPU shared with other work\n", flush=True)
    plain = ImageSide(paths, None, args.cache)
    plain.run(None, args.size, 1)
    reference = plain.run(None, 128, 2)[1]
    results: dict[str, dict] = {}
    for mode in args.modes:
        try:
            side = ImageSide(paths, mode, args.cache)
            fresh_none, first_a, none, other, again = (side.run(s, 128, 2)[1] for s in ("none", "A", "none", "B", "A"))
            checks = {"a_again": np.array_equal(first_a, again), "none_again": np.array_equal(none, fresh_none),
                      "a_differs": not np.array_equal(first_a, none), "b_differs": not np.array_equal(other, first_a),
                      "none_plain": np.array_equal(none, reference)}
            side.run("none", args.size, 1)  # the first call at this size allocates
            steps: dict[str, list[float]] = {s: [] for s in (*SETTINGS, "plain")}
            cpu: dict[str, list[float]] = {s: [] for s in (*SETTINGS, "plain")}
            for _ in range(args.image_rounds):
                steps["plain"].append(plain.run(None, args.size, args.steps)[0])
                cpu["plain"].append(plain.cpu_s_per_image)
                for setting in SETTINGS:
                    steps[setting].append(side.run(setting, args.size, args.steps)[0])
                    cpu[setting].append(side.cpu_s_per_image)
            same, switched = switch_ms(side, 2)
        except RuntimeError as error:
            print(f"   {mode:17s} failed: {str(error).splitlines()[0][:160]}", flush=True)
            continue
        row = {s: _median(v) for s, v in steps.items()} | {f"cpu {s}": _median(v) for s, v in cpu.items()} | {
            "build_s": side.build_s, "switch_ms": switched - same, "same_ms": same, **checks}
        results[mode] = row
        none, one, two, plain_s = row["none"], row["A"], row["A+B"], row["plain"]
        print(f"   {mode:17s} build {side.build_s:5.1f} s · s/step: plain {plain_s:5.2f} · none {none:5.2f} "
              f"({(none / plain_s - 1) * 100:+5.1f} %) · A {one:5.2f} ({(one / none - 1) * 100:+5.1f} % vs none) · "
              f"A+B {two:5.2f} ({(two / none - 1) * 100:+5.1f} %) · {cpu_line(row, 'CPU s/image')} · "
              f"switch (128x128, 1 step) "
              f"{switched - same:+6.0f} ms · switching exact: {exact(row)} ({', '.join(f'{k} {v}' for k, v in checks.items())})",
              flush=True)
        side = None  # free this mode's pipeline before the next is built
    return results


# ---------------------------------------------------------------------------------------------------------


def verdict(panel: str, results: dict[str, dict], faster: bool) -> None:
    """The fastest mode (with an adapter chosen) whose switching was exact."""
    good = {m: r for m, r in results.items() if exact(r)}
    if not good:
        print(f"   {panel}: no mode switched exactly")
        return
    best = min(good, key=lambda m: good[m]["cpu A"])  # the least CPU work with an adapter chosen
    row = good[best]
    if faster:  # tokens/s: higher is faster
        wall_chosen, wall_unused = (1 - row["A"] / row["none"]) * 100, (1 - row["none"] / row["plain"]) * 100
    else:       # s/step: lower is faster
        wall_chosen, wall_unused = (row["A"] / row["none"] - 1) * 100, (row["none"] / row["plain"] - 1) * 100
    chosen, unused = (row["cpu A"] / row["cpu none"] - 1) * 100, (row["cpu none"] / row["cpu plain"] - 1) * 100
    print(f"   {panel}: modes that switch exactly: {', '.join(good)}; the least CPU work with an adapter chosen: "
          f"{best}. Adapter chosen vs none: {chosen:+.1f} % more CPU time (wall {wall_chosen:+.1f} %), target <= 10 %; "
          f"registered but unused vs plain: {unused:+.1f} % (wall {wall_unused:+.1f} %), target <= 2 %")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="chat,image")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, e.g. MODE_DYNAMIC,MODE_FUSE")
    parser.add_argument("--rounds", type=int, default=2, help="chat rounds per setting")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--image-rounds", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ov-genai-demos-bench")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    chat = image = {}
    if "chat" in args.parts:
        chat = chat_modes(args)
    if "image" in args.parts:
        image = image_modes(args)
    print("\nVERDICT (targets: adapter chosen <= 10 % slower than none; registered but unused <= 2 % slower than "
          "plain)")
    if chat:
        verdict("chat", chat, faster=True)
    if image:
        verdict("image", image, faster=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
