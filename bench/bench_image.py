"""Image panel benchmark: the app against ``Text2ImagePipeline`` directly, on an SD-1.5-sized random model.

    flock /tmp/heavy.lock python bench/bench_image.py [--size 512] [--steps 3] [--repeats 2]

Measured side by side in one run (calls alternate, so machine load hits both sides alike):

1. seconds per denoising step through the app (``/generate_image`` via gradio_client) vs a direct
   ``Text2ImagePipeline.generate`` with the same settings and properties (target ratio direct/app >= 0.97);
2. two LoRA styles at nonzero weight vs no style, same compiled pipeline (target: <= 15 % slower);
3. a style switch: what changing the AdapterConfig between calls costs (target: no compile);
4. Transform and Inpaint: seconds per step through the app (``/edit_image``) vs ``Image2ImagePipeline`` /
   ``InpaintingPipeline`` built from the folder and called directly (target ratio direct/app >= 0.97);
5. memory: one model used in all three modes as the app holds it (one ``InpaintingPipeline``, the other two derived
   from it, sharing its compiled models) against Generate alone (a plain ``Text2ImagePipeline``), and against three
   pipelines built separately; each in its own process, after one 512x512 call per mode (target <= 1.3x).

The model is Stable Diffusion 1.5's architecture (UNet 320-640-1280-1280, CLIP-L-sized text encoder, SD VAE) with
random weights, built from configs offline and exported with optimum-intel into ``~/.cache/ov-genai-demos-bench``
(``--cache`` overrides); nothing is written to the repository. Wall times include text encoding and VAE decoding,
as a user waits for them; genai's own per-step figure is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPT = "a cozy cabin in a snowy forest at dusk"
_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


# ---------------------------------------------------------------------------------------------------------
# Building the model (once; cached)


def _save_pipeline(target: Path) -> None:
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.kit.diffusion import _tokenizer  # an offline CLIP BPE tokenizer; its vocabulary size hardly matters

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(  # CLIP ViT-L/14 text tower, as in SD 1.5
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)).eval()
    unet = UNet2DConditionModel(  # SD 1.5's UNet config (860 M parameters)
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
        attention_head_dim=8).eval()
    vae = AutoencoderKL(  # SD's VAE
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512).eval()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(target)


def _write_lora(pt: Path, target: Path, seed: int, rank: int = 16) -> None:
    """A kohya-layout adapter on every attention projection of the UNet and the text encoder."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for prefix, model, names in (("lora_unet_", UNet2DConditionModel.from_pretrained(pt / "unet"), _UNET_TARGETS),
                                 ("lora_te_", CLIPTextModel.from_pretrained(pt / "text_encoder"), _TE_TARGETS)):
        for path, module in model.named_modules():
            if path.endswith(names) and hasattr(module, "in_features"):
                key = prefix + path.replace(".", "_")
                tensors[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=generator) * 0.02
                tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=generator) * 0.02
        del model
    save_file(tensors, str(target))


def build(cache: Path) -> dict[str, Path]:
    """The exported model and two adapters under ``cache`` (built the first time, minutes; then reused)."""
    root = cache / "sd15-random"
    paths = {"ov": root / "ov", "style_a": root / "style_a.safetensors", "style_b": root / "style_b.safetensors"}
    if all(p.exists() for p in paths.values()):
        return paths
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root.mkdir(parents=True, exist_ok=True)
    pt = root / "pt"
    started = time.perf_counter()
    if not (pt / "model_index.json").exists():
        print("building the SD-1.5-sized random model…", flush=True)
        _save_pipeline(pt)
    if not paths["ov"].exists():
        from optimum.exporters.openvino import main_export
        from optimum.intel import OVConfig
        print("exporting it with optimum-intel (fp16 weights)…", flush=True)
        tmp = root / "ov.tmp"
        main_export(str(pt), tmp, task="text-to-image", convert_tokenizer=True, ov_config=OVConfig(dtype="fp16"),
                    local_files_only=True)
        tmp.rename(paths["ov"])
    for name, seed in (("style_a", 1), ("style_b", 2)):
        if not paths[name].exists():
            _write_lora(pt, paths[name], seed)
    print(f"model ready in {time.perf_counter() - started:.0f} s: {root}", flush=True)
    return paths


# ---------------------------------------------------------------------------------------------------------
# The two sides


class App:
    """``python app.py`` on a one-entry catalog for the bench model, driven through gradio_client."""

    def __init__(self, paths: dict[str, Path], size: int, steps: int, work: Path):
        import yaml
        catalog = {"settings": {"cache_dir": str(work / "cache"), "max_pipelines": 1},
                   "image": [{"id": "sd15-random", "source": str(paths["ov"]),
                              "adapters": [{"id": "style-a", "source": str(paths["style_a"])},
                                           {"id": "style-b", "source": str(paths["style_b"])}],
                              "generation": {"width": size, "height": size, "num_inference_steps": steps,
                                             "guidance_scale": 7.5}}]}
        (work / "models.yaml").write_text(yaml.safe_dump(catalog))
        with socket.socket() as probe:  # a free port: other apps may be running on this machine
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = open(work / "app.log", "w")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", str(work / "models.yaml"),
                                      "--port", str(self.port)], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
        url = f"http://127.0.0.1:{self.port}/"
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited; see {work / 'app.log'}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        from gradio_client import Client
        self.client = Client(url, verbose=False)

    def generate(self, styles: dict[str, float], seed: int = 42) -> tuple[float, np.ndarray, dict]:
        from PIL import Image
        started = time.perf_counter()
        path, metrics = self.client.predict(PROMPT, "sd15-random", adapters=styles, seed=seed,
                                            api_name="/generate_image")
        seconds = time.perf_counter() - started
        with Image.open(path) as image:
            return seconds, np.asarray(image), metrics

    def edit(self, source: Path, mask: Path | None, strength: float, seed: int = 42) -> tuple[float, np.ndarray, dict]:
        from gradio_client import handle_file
        from PIL import Image
        started = time.perf_counter()
        path, metrics = self.client.predict(handle_file(str(source)), PROMPT, "sd15-random",
                                            mask=handle_file(str(mask)) if mask else None, strength=strength,
                                            seed=seed, api_name="/edit_image")
        seconds = time.perf_counter() - started
        with Image.open(path) as image:
            return seconds, np.asarray(image), metrics

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


class Direct:
    """``Text2ImagePipeline`` as the README tells users to call it, with the app's construction properties."""

    def __init__(self, paths: dict[str, Path], size: int, steps: int, cache: Path):
        import openvino_genai as ov_genai
        self.ov_genai = ov_genai
        self.adapters = {"style-a": ov_genai.Adapter(str(paths["style_a"])),
                         "style-b": ov_genai.Adapter(str(paths["style_b"]))}
        started = time.perf_counter()
        self.pipe = ov_genai.Text2ImagePipeline(str(paths["ov"]), "CPU",
                                                adapters=ov_genai.AdapterConfig(list(self.adapters.values())),
                                                INFERENCE_PRECISION_HINT="f32", CACHE_DIR=str(cache / "compiled"))
        self.load_s = time.perf_counter() - started
        self.size, self.steps = size, steps

    def generate(self, styles: dict[str, float], seed: int = 42, steps: int | None = None
                 ) -> tuple[float, np.ndarray, dict]:
        config = self.ov_genai.AdapterConfig()
        for name, alpha in styles.items():
            config.add(self.adapters[name], alpha)
        started = time.perf_counter()
        tensor = self.pipe.generate(PROMPT, width=self.size, height=self.size, num_inference_steps=steps or self.steps,
                                    guidance_scale=7.5, rng_seed=seed, adapters=config)
        seconds = time.perf_counter() - started
        metrics = self.pipe.get_performance_metrics()
        first, other = metrics.get_first_and_other_iter_duration()
        step_ms = statistics.mean(list(metrics.raw_metrics.iteration_durations)) / 1000
        return seconds, tensor.data[0].copy(), {"step_ms": step_ms, "first_step_ms": first, "other_step_ms": other}


# ---------------------------------------------------------------------------------------------------------


def app_vs_direct(app: App, direct: Direct, steps: int, repeats: int) -> None:
    """1. Seconds per step through the app and directly, alternating so background load falls on both."""
    wall: dict[str, list[float]] = {"app": [], "direct": []}
    inner: dict[str, list[float]] = {"app": [], "direct": []}   # genai's own per-step figure
    overhead: list[float] = []                                   # app wall minus its pipe.generate time
    for _ in range(repeats):
        seconds, _, metrics = app.generate({})
        wall["app"].append(seconds / steps)
        inner["app"].append(metrics["step_ms"] / 1000)
        overhead.append(seconds - metrics["generate_s"])
        seconds, _, metrics = direct.generate({})
        wall["direct"].append(seconds / steps)
        inner["direct"].append(metrics["step_ms"] / 1000)
    app_step, direct_step = statistics.median(wall["app"]), statistics.median(wall["direct"])
    print("\n1. seconds per step, wall clock (genai's own step figure in brackets)")
    for side in ("app", "direct"):
        print(f"   {side:6} {statistics.median(wall[side]):7.2f} s/step  [{statistics.median(inner[side]):.2f} s]  "
              f"runs: {', '.join(f'{v:.2f}' for v in wall[side])}")
    print(f"   ratio direct/app = {direct_step / app_step:.3f}  (target >= 0.97); genai's step figure ratio "
          f"{statistics.median(inner['direct']) / statistics.median(inner['app']):.3f}")
    print(f"   what the app adds around pipe.generate (queue, PNG, transfer): {statistics.median(overhead):.2f} s per "
          f"image = {statistics.median(overhead) / (app_step * steps) * 100:.1f} % of the call")


def styles_vs_none(app: App, steps: int, repeats: int, both: dict[str, float]) -> None:
    """2. Two styles at nonzero weight vs none, through the app on the same compiled pipeline."""
    with_styles, without = [], []
    for _ in range(repeats):
        seconds, _, metrics = app.generate(both)
        with_styles.append((seconds / steps, metrics["step_ms"] / 1000))
        seconds, _, metrics = app.generate({})
        without.append((seconds / steps, metrics["step_ms"] / 1000))
    wall_s, wall_n = (statistics.median(v[0] for v in x) for x in (with_styles, without))
    step_s, step_n = (statistics.median(v[1] for v in x) for x in (with_styles, without))
    print("\n2. two styles at nonzero weight vs none (through the app, same pipeline)")
    print(f"   wall: none {wall_n:.2f} s/step · two styles {wall_s:.2f} s/step · {(wall_s / wall_n - 1) * 100:+.1f} %"
          f"  (target <= +15 %)")
    print(f"   genai's step figure: none {step_n:.2f} s · two styles {step_s:.2f} s · "
          f"{(step_s / step_n - 1) * 100:+.1f} %")


def style_switch(app: App, direct: Direct, repeats: int, both: dict[str, float], size: int) -> None:
    """3. What a style switch costs: 1-step calls at a small size, same styles vs switched, alternating."""
    direct.size = size
    direct.generate(both, steps=1)  # first call at this size allocates; not timed
    same, switched = [], []
    current: dict[str, float] = both
    for _ in range(repeats):
        for target in (current, {} if current else both):  # same styles again, then a switch
            seconds = direct.generate(target, steps=1)[0]
            (same if target is current else switched).append(seconds * 1000)
            current = target
    print(f"\n3. style switch (direct pipeline, 1-step calls at {size}x{size}, {repeats} of each, alternating)")
    print(f"   same styles as the call before: {statistics.median(same):.0f} ms · styles switched: "
          f"{statistics.median(switched):.0f} ms · a switch costs "
          f"{statistics.median(switched) - statistics.median(same):+.0f} ms (spread of the same-style calls: "
          f"{max(same) - min(same):.0f} ms)")
    _, a1, _ = app.generate(both, seed=7)
    _, _, m_none = app.generate({}, seed=7)
    _, a2, m_back = app.generate(both, seed=7)
    print(f"   through the app A -> none -> A: pipeline compiled again: {m_none['compiled'] or m_back['compiled']}; "
          f"A reproduced exactly: {np.array_equal(a1, a2)}")


class DirectEdit:
    """``Image2ImagePipeline`` and ``InpaintingPipeline`` built from the folder, as a user of genai would."""

    def __init__(self, paths: dict[str, Path], steps: int, cache: Path):
        import openvino_genai as ov_genai
        self.ov_genai = ov_genai
        adapters = [ov_genai.Adapter(str(paths["style_a"])), ov_genai.Adapter(str(paths["style_b"]))]
        props = dict(adapters=ov_genai.AdapterConfig(adapters), INFERENCE_PRECISION_HINT="f32",
                     CACHE_DIR=str(cache / "compiled"))
        self.unstyled = ov_genai.AdapterConfig()
        self.unstyled.add(adapters[0], 0.0)  # as the app sends "no style" (demos.panels.image.run.adapter_config)
        self.folder, self.props, self.pipes = str(paths["ov"]), props, {}
        self.steps = steps

    def _pipe(self, kind: str):
        """One pipeline at a time (built on first use, the other dropped): two f32 SD-1.5 copies beside the app's
        would not fit the shared machine's memory."""
        if kind not in self.pipes:
            self.pipes.clear()
            cls = self.ov_genai.Image2ImagePipeline if kind == "transform" else self.ov_genai.InpaintingPipeline
            self.pipes[kind] = cls(self.folder, "CPU", **self.props)
        return self.pipes[kind]

    def edit(self, kind: str, source: np.ndarray, mask: np.ndarray | None, strength: float, seed: int = 42
             ) -> tuple[float, np.ndarray, dict]:
        import openvino as ov
        extra = {}
        if mask is not None:
            extra["mask_image"] = ov.Tensor(np.repeat(mask[None, ..., None], 3, axis=3))
        pipe = self._pipe(kind)
        started = time.perf_counter()
        tensor = pipe.generate(PROMPT, image=ov.Tensor(source[None]), strength=strength, num_inference_steps=self.steps,
                               guidance_scale=7.5, rng_seed=seed, adapters=self.unstyled, **extra)
        seconds = time.perf_counter() - started
        durations = list(pipe.get_performance_metrics().raw_metrics.iteration_durations)
        return seconds, tensor.data[0].copy(), {"step_ms": statistics.mean(durations) / 1000}


def edits_app_vs_direct(app: App, paths: dict[str, Path], size: int, steps: int, repeats: int, cache: Path,
                        work: Path) -> None:
    """4. Transform and Inpaint, seconds per step, app vs direct, alternating."""
    from PIL import Image
    source = np.random.RandomState(0).randint(0, 255, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
    Image.fromarray(source).save(work / "source.png")
    Image.fromarray(mask).save(work / "mask.png")
    direct = DirectEdit(paths, steps, cache)
    strength = 1.0  # every step runs (steps x strength), so seconds per step compare like with like
    print(f"\n4. Transform and Inpaint, seconds per step, wall clock ({steps} steps, strength {strength:g}; "
          "genai's own step figure in brackets)")
    for kind in ("transform", "inpaint"):
        mask_path, mask_array = (work / "mask.png", mask) if kind == "inpaint" else (None, None)
        _, app_image, _ = app.edit(work / "source.png", mask_path, strength)  # warm-up (derives the pipeline)
        _, direct_image, _ = direct.edit(kind, source, mask_array, strength)
        wall: dict[str, list[float]] = {"app": [], "direct": []}
        inner: dict[str, list[float]] = {"app": [], "direct": []}
        for _ in range(repeats):
            seconds, _, metrics = app.edit(work / "source.png", mask_path, strength)
            wall["app"].append(seconds / steps)
            inner["app"].append(metrics["step_ms"] / 1000)
            seconds, _, metrics = direct.edit(kind, source, mask_array, strength)
            wall["direct"].append(seconds / steps)
            inner["direct"].append(metrics["step_ms"] / 1000)
        a, d = statistics.median(wall["app"]), statistics.median(wall["direct"])
        print(f"   {kind:9} app {a:6.2f} s/step [{statistics.median(inner['app']):.2f}] · direct {d:6.2f} s/step "
              f"[{statistics.median(inner['direct']):.2f}] · ratio direct/app = {d / a:.3f} (target >= 0.97) · "
              f"images identical: {np.array_equal(app_image, direct_image)}")


_MEMORY_PROBE = """
import sys, numpy as np, openvino as ov, openvino_genai as g
sys.path.insert(0, sys.argv[3])
from demos.core import image_modes
folder, how, size = sys.argv[1], sys.argv[2], 512
props = dict(INFERENCE_PRECISION_HINT="f32")
image = ov.Tensor(np.random.RandomState(0).randint(0, 255, (1, size, size, 3), dtype=np.uint8))
mask = np.zeros((1, size, size, 3), np.uint8); mask[:, 128:384, 128:384] = 255; mask = ov.Tensor(mask)
run = dict(num_inference_steps=1, guidance_scale=7.5, rng_seed=1)
if how == "generate":
    pipes = {"generate": g.Text2ImagePipeline(folder, "CPU", **props)}
elif how == "separate":
    pipes = {"generate": g.Text2ImagePipeline(folder, "CPU", **props),
             "transform": g.Image2ImagePipeline(folder, "CPU", **props),
             "inpaint": g.InpaintingPipeline(folder, "CPU", **props)}
else:
    generate, modes = image_modes.build(folder, "CPU", props)
    pipes = {"generate": generate, "transform": modes.get("transform"), "inpaint": modes.get("inpaint")}
for mode, pipe in pipes.items():
    if mode == "generate":
        pipe.generate("a cat", width=size, height=size, **run)
    elif mode == "transform":
        pipe.generate("a cat", image=image, strength=1.0, **run)
    else:
        pipe.generate("a cat", image=image, mask_image=mask, strength=1.0, **run)
status = open("/proc/self/status").read()
field = lambda name: int(status.split(name + ":")[1].split()[0]) / 1024
print(field("VmRSS"), field("VmHWM"))
"""


def memory(paths: dict[str, Path], ways: tuple[str, ...] = ("generate", "shared", "separate")) -> None:
    """5. Resident memory of one model in all three modes vs Generate alone (each in a fresh process)."""
    labels = {"generate": "Generate alone (Text2ImagePipeline)",
              "shared": "all three modes, as the app holds them (shared)",
              "separate": "all three modes, three pipelines built separately"}
    print("\n5. memory after one 512x512 call per mode (resident now · peak), each in its own process", flush=True)
    base = None
    for how in ways:
        done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(paths["ov"]), how, str(ROOT)],
                              capture_output=True, text=True)
        if done.returncode != 0:  # three separate f32 SD-1.5 pipelines may not fit beside other work
            print(f"   {labels[how]:52} failed (exit {done.returncode}; -9 = killed, out of memory)", flush=True)
            continue
        rss, peak = (float(v) for v in done.stdout.split()[-2:])
        base = base or (rss, peak)
        print(f"   {labels[how]:52} {rss / 1024:5.2f} GB ({rss / base[0]:.2f}x) · peak {peak / 1024:5.2f} GB "
              f"({peak / base[1]:.2f}x)", flush=True)
    print("   target: shared <= 1.3x Generate alone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="image width and height")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per image")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per configuration and side")
    parser.add_argument("--switch-size", type=int, default=128, help="image size of the style-switch calls")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ov-genai-demos-bench")
    parser.add_argument("--build-only", action="store_true", help="build and export the model, then exit")
    parser.add_argument("--parts", default="generate,edits,memory",
                        help="comma-separated: generate (1-3), edits (4), memory (5)")
    parser.add_argument("--memory-ways", default="generate,shared,separate",
                        help="which memory figures: generate, shared, separate (three separate pipelines need most)")
    args = parser.parse_args()
    paths = build(args.cache)
    if args.build_only:
        return 0
    parts = set(args.parts.split(","))
    if "memory" in parts:
        memory(paths, tuple(args.memory_ways.split(",")))
    if not parts & {"generate", "edits"}:
        return 0
    both = {"style-a": 0.8, "style-b": 0.6}
    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        print(f"\nSD-1.5-sized UNet, random weights, {args.size}x{args.size}, {args.steps} steps, guidance 7.5, "
              f"CPU f32; {args.repeats} timed calls per configuration\n", flush=True)
        app = App(paths, args.size, args.steps, Path(tmp))
        try:
            if "generate" in parts:
                direct = Direct(paths, args.size, args.steps, args.cache)
                print(f"direct pipeline compiled in {direct.load_s:.1f} s", flush=True)
                _, app_image, first = app.generate({})  # warm-up: compiles inside the app
                _, direct_image, _ = direct.generate({})
                print(f"app pipeline compiled in {first['load_s']:.1f} s; app and direct images identical: "
                      f"{np.array_equal(app_image, direct_image)}", flush=True)
                app_vs_direct(app, direct, args.steps, args.repeats)
                styles_vs_none(app, args.steps, args.repeats, both)
                style_switch(app, direct, max(3, args.repeats), both, args.switch_size)
                del direct
            if "edits" in parts:
                edits_app_vs_direct(app, paths, args.size, args.steps, args.repeats, args.cache, Path(tmp))
        finally:
            app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
