"""Vision panel benchmark: the app against ``VLMPipeline`` called directly, and the cost of preparing a photo.

    flock /tmp/heavy.lock python bench/bench_vision.py [--rounds 6] [--tokens 64]

One run, side by side, on a random-weight LLaVA-style model of realistic size (CLIP ViT-L/14 at 336 px + a
1.1B Llama, TinyLlama's shape; int8 weights), built once into ``~/.cache/ov-genai-demos-bench``
(``BENCH_CACHE`` overrides):

1. Time to first token and tokens/s as a client of ``python app.py`` sees them (``/ask_image`` through
   gradio_client, image uploaded as a file) against a script that opens the same file with PIL and calls
   ``VLMPipeline.generate`` with a streamer, once with a plain prompt and once with a ``ChatHistory`` (what the
   app uses, so that later turns can bring new images). Each round uses a new picture (genai caches encoded
   images by content) and rotates the order, after one warm-up each. Target: app/direct ≥ 0.97.
3. ``--video``: sampling frames from a one-minute video, and ``/ask_video`` against a direct call (see
   ``bench_video``).
2. Preparing a 12-megapixel JPEG photo (EXIF-rotated) for this model: ``images_in.prepare`` against PIL's
   reduced-scale decode alone (the floor) and a naive full decode. Target: ≤ 20 ms.

Random weights answer gibberish but cost exactly what trained ones cost; the EOS row of the output layer is
zeroed so every answer runs to ``--tokens``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
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

CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "ov-genai-demos-bench")).expanduser()
IMAGE_SIZE, PATCH = 336, 14
QUESTION = "Describe this picture in detail."
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content']"
                 " + '</s>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
CORPUS = ["A photo of a street with cars, people, trees and buildings under a blue sky.",
          "Describe this picture in detail. What objects, colours and text can you see?",
          "The cat sat on the mat near the window while the dog slept in the garden."] * 20


# -------------------------------------------------------------------------------------------------------------
# The model


def _build_checkpoint(target: Path) -> None:
    """A LLaVA-1.5-style checkpoint with random weights: CLIP ViT-L/14-336 + TinyLlama-1.1B shapes."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    specials = ["<s>", "</s>", "<pad>", "<unk>", "<image>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=1000, special_tokens=specials,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                            show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        extra_special_tokens={"image_token": "<image>"}, chat_template=CHAT_TEMPLATE)
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>", chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=768)
    vocab = 32000  # Llama's: the output layer costs what a real model's costs
    text = LlamaConfig(vocab_size=vocab, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-2,
                         image_seq_length=(IMAGE_SIZE // PATCH) ** 2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # never choose EOS, specials or ids the small tokenizer cannot decode
        head = model.lm_head.weight
        head[len(tokenizer):].zero_()
        for token in specials:
            head[tokenizer.convert_tokens_to_ids(token)].zero_()
    print(f"  {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters", flush=True)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    images.save_pretrained(target)  # transformers 5 nests it in processor_config.json; genai reads this file
    model.generation_config.save_pretrained(target)


def build_model() -> Path:
    """The OpenVINO folder of the benchmark model (built once: a few minutes)."""
    final = CACHE / "llava-1b-random-int8"
    if (final / "openvino_language_model.xml").exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bench-vlm-", dir=CACHE))
    try:
        print("building a 1B-class random LLaVA checkpoint…", flush=True)
        _build_checkpoint(work / "pt")
        print("exporting it with optimum-cli (int8 weights)…", flush=True)
        subprocess.run([shutil.which("optimum-cli") or "optimum-cli", "export", "openvino", "--model",
                        str(work / "pt"), "--task", "image-text-to-text", "--weight-format", "int8",
                        str(work / "ov")], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if not (work / "ov" / "preprocessor_config.json").exists():
            shutil.copy(work / "pt" / "preprocessor_config.json", work / "ov" / "preprocessor_config.json")
        (work / "ov").rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# -------------------------------------------------------------------------------------------------------------
# Pictures


def photo(width: int, height: int, seed: int, orientation: int = 1, quality: int = 90) -> bytes:
    """A photo-like JPEG: soft shapes, fine noise (what makes real photos 2-4 MB at 12 MP)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(300):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(width // 200, width // 6))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    image = image.filter(ImageFilter.GaussianBlur(max(1, width // 1500)))
    noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 4, (height, width, 3)).astype(np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    exif = image.getexif()
    if orientation != 1:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------------------------------
# The two sides


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(model_dir: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    catalog = {"settings": {"cache_dir": str(folder / "cache")},
               "vision": [{"id": "bench-vlm", "label": "Random LLaVA 1B (benchmark)", "source": str(model_dir),
                           "generation": {"max_new_tokens": 128, "temperature": 0.0}}]}
    (folder / "models.yaml").write_text(json.dumps(catalog))  # JSON is YAML
    return _start_catalog(folder)


def run_app(client, path: Path, tokens: int) -> dict:
    """One /ask_image call as its client sees it: submit → first text → final output."""
    from gradio_client import handle_file

    started = time.perf_counter()
    job = client.submit(handle_file(str(path)), QUESTION, "bench-vlm", [], tokens, api_name="/ask_image")
    first = None
    seen = 0
    while not job.done():
        outputs = job.outputs()
        if first is None and any(text for text, _ in outputs[seen:]):
            first = time.perf_counter()
        seen = len(outputs)
        time.sleep(0.005)  # coarse enough not to compete with the app for the CPU
    _, metrics = job.result()
    end = time.perf_counter()
    first = first or end
    count = metrics["output_tokens"]
    return {"ttft_ms": (first - started) * 1000, "tokens": count, "tokens_per_s": (count - 1) / (end - first),
            "genai": metrics}


def run_direct(pipeline, path: Path, tokens: int, chat: bool = False) -> dict:
    """What a script using openvino_genai does: open the file with PIL, generate with a streamer; with ``chat``,
    through a ``ChatHistory`` as the app (and any multi-turn chat) does, otherwise with a plain prompt."""
    import openvino as ov
    import openvino_genai as ov_genai
    from PIL import Image, ImageOps

    first: list[float] = []

    def streamer(chunk: str) -> ov_genai.StreamingStatus:
        if not first:
            first.append(time.perf_counter())
        return ov_genai.StreamingStatus.RUNNING

    started = time.perf_counter()
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    prompt = ov_genai.ChatHistory([{"role": "user", "content": QUESTION}]) if chat else QUESTION
    result = pipeline.generate(prompt, images=[ov.Tensor(np.array(image))], max_new_tokens=tokens, streamer=streamer)
    end = time.perf_counter()
    perf = result.perf_metrics
    count = perf.get_num_generated_tokens()
    return {"ttft_ms": (first[0] - started) * 1000, "tokens": count, "tokens_per_s": (count - 1) / (end - first[0]),
            "genai": {"ttft_ms": perf.get_ttft().mean, "tokens_per_s": perf.get_throughput().mean,
                      "vision_encode_ms": perf.get_vision_encoding_duration().mean}}


SIDES = ("app", "plain", "chat")
"""The app; a script with a plain prompt; a script with a ChatHistory (the API the app must use for multi-turn)."""


def bench_generation(model_dir: Path, rounds: int, tokens: int, width: int, height: int, folder: Path) -> dict:
    import openvino_genai as ov_genai
    from gradio_client import Client

    proc, url = start_app(model_dir, folder)
    try:
        client = Client(url, verbose=False)
        # Two pipelines: once a VLMPipeline has served a ChatHistory call, its plain-prompt calls continue a chat.
        plain, chat = ov_genai.VLMPipeline(str(model_dir), "CPU"), ov_genai.VLMPipeline(str(model_dir), "CPU")
        run = {"app": lambda path: run_app(client, path, tokens),
               "plain": lambda path: run_direct(plain, path, tokens),
               "chat": lambda path: run_direct(chat, path, tokens, chat=True)}
        pictures = []
        for index in range(rounds + 1):
            path = folder / f"picture-{width}x{height}-{index}.jpg"
            path.write_bytes(photo(width, height, seed=index))
            pictures.append(path)
        for side in SIDES:  # warm-up: compiles the app's pipeline, first inference of the others
            run[side](pictures[0])
        rows: dict[str, list[dict]] = {side: [] for side in SIDES}
        for index, path in enumerate(pictures[1:]):
            # The order rotates; a round's runs are neighbours in time, so load from other processes on the
            # machine hits them alike, and ratios are taken round by round.
            order = SIDES[index % 3:] + SIDES[:index % 3]
            for side in order:
                rows[side].append(run[side](path))
            print(f"  {width}x{height} round {index + 1}: " + "; ".join(
                f"{side} TTFT {rows[side][-1]['ttft_ms']:.0f} ms, {rows[side][-1]['tokens_per_s']:.2f} tokens/s"
                for side in SIDES), flush=True)
        del plain, chat
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    def compare(key: str, genai: bool = False) -> list[float]:
        """Medians of app, plain, chat; then medians of the per-round speed ratios app/plain and app/chat."""
        get = (lambda row: row["genai"][key]) if genai else (lambda row: row[key])
        values = {side: [get(r) for r in rows[side]] for side in SIDES}
        speed = (lambda a, d: a / d) if "per_s" in key else (lambda a, d: d / a)
        ratios = [statistics.median(speed(a, d) for a, d in zip(values["app"], values[other]))
                  for other in ("plain", "chat")]
        return [statistics.median(values[side]) for side in SIDES] + ratios

    return {
        "picture": f"{width}x{height} JPEG, {pictures[1].stat().st_size / 1e6:.1f} MB",
        "rounds": rounds,
        "tokens": statistics.median(r["tokens"] for side in SIDES for r in rows[side]),
        "rows": [("TTFT, client side (ms)", compare("ttft_ms")), ("tokens/s, client side", compare("tokens_per_s")),
                 ("TTFT, genai (ms)", compare("ttft_ms", True)), ("tokens/s, genai", compare("tokens_per_s", True)),
                 ("vision encoding (ms)", compare("vision_encode_ms", True))],
    }


def bench_preparation(model_dir: Path, repeats: int) -> dict:
    from PIL import Image, ImageOps

    from demos.core.images import prepare
    from demos.panels.vision.models import facts

    budget = facts(model_dir).budget
    data = photo(4000, 3000, seed=99, orientation=6)
    path = Path(tempfile.mkdtemp()) / "photo-12mp.jpg"
    path.write_bytes(data)

    def timed(fn) -> tuple[float, float]:
        """Median wall and CPU time (ms): CPU time shows the work itself when other processes share the cores."""
        fn()
        wall, cpu = [], []
        for _ in range(repeats):
            started, used = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
        return statistics.median(wall), statistics.median(cpu)

    def floor() -> None:
        image = Image.open(path)
        image.draft("RGB", (IMAGE_SIZE * 4 // 3, IMAGE_SIZE))
        image.load()

    def naive() -> None:
        np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))

    prepared = prepare(path, budget)
    return {"file": f"4000x3000 JPEG (EXIF orientation 6), {len(data) / 1e6:.1f} MB",
            "budget": budget.describe(), "result": f"{prepared.size[0]}x{prepared.size[1]}",
            "prepare_ms": timed(lambda: prepare(path, budget)), "draft_decode_ms": timed(floor),
            "full_decode_ms": timed(naive)}


def bench_video(rounds: int, tokens: int, folder: Path, model_dir: Path | None = None) -> dict:
    """Video: sampling 8 frames from a 60 s 640x360 30 fps H.264 video (``demos.core.video.decode``, which seeks,
    against decoding every frame as a naive script does), and ``/ask_video`` against a direct
    ``generate(ChatHistory, videos=[frames])`` on the same frames, each side including its own decoding. The model
    is the test kit's tiny Qwen2-VL unless ``--video-model`` names a real one: with it, the ratio shows the app's
    overhead around a very short generation, the worst case for the app."""
    import av
    import openvino as ov
    import openvino_genai as ov_genai
    from gradio_client import Client, handle_file

    from demos.core import video
    from demos.panels.vision.models import facts
    from tests import videos

    if model_dir is None:
        from tests.kit import qwen2vl
        model_dir = qwen2vl.build().ov
    clip = videos.write(folder / "minute.mp4", np.repeat(videos.frames(60, 360, 640), 30, axis=0), fps=30,
                        keyframe_every=60)
    budget = facts(model_dir).budget

    def naive_frames(k: int) -> np.ndarray:
        with av.open(str(clip)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return np.stack([decoded[i] for i in video.sample_indices(len(decoded), k)])

    def timed(fn, repeats: int = 3) -> float:
        fn()
        return statistics.median([_seconds(fn) for _ in range(repeats)]) * 1000

    decode_ms, naive_ms = timed(lambda: video.decode(clip, clip.name, 8, budget)), timed(lambda: naive_frames(8), 2)
    catalog = {"settings": {"cache_dir": str(folder / "cache")},
               "vision": [{"id": "bench-vlm", "source": str(model_dir), "video": True,
                           "generation": {"max_new_tokens": tokens, "temperature": 0.0}}]}
    (folder / "models.yaml").write_text(json.dumps(catalog))
    proc, url = _start_catalog(folder)
    try:
        client = Client(url, verbose=False)
        pipe = ov_genai.VLMPipeline(str(model_dir), "CPU")

        def app(path: Path) -> None:
            client.predict(handle_file(str(path)), QUESTION, "bench-vlm", [], 8, tokens, "", api_name="/ask_video")

        def direct(path: Path) -> None:
            frames = video.decode(path, path.name, 8, budget).array
            history = ov_genai.ChatHistory([{"role": "user", "content": QUESTION}])
            pipe.generate(history, videos=[ov.Tensor(frames)], max_new_tokens=tokens)

        clips = []
        for index in range(rounds + 1):  # a new file each round: no side reuses the other's decoded frames
            path = folder / f"clip-{index}.mp4"
            shutil.copy(clip, path)
            clips.append(path)
        app(clips[0]), direct(clips[0])
        ratios, app_ms, direct_ms = [], [], []
        for index, path in enumerate(clips[1:]):
            sides = [("app", app), ("direct", direct)][:: 1 if index % 2 else -1]
            times = {name: _seconds(lambda: fn(path)) * 1000 for name, fn in sides}
            app_ms.append(times["app"])
            direct_ms.append(times["direct"])
            ratios.append(times["direct"] / times["app"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"decode_ms": decode_ms, "naive_ms": naive_ms, "app_ms": statistics.median(app_ms),
            "direct_ms": statistics.median(direct_ms), "ratio": statistics.median(ratios), "rounds": rounds,
            "model": str(model_dir)}


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _start_catalog(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(folder / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", str(folder / "models.yaml"),
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((folder / "app.log").read_text())
            time.sleep(0.2)
    raise TimeoutError("the app did not start")


def print_video(result: dict) -> None:
    print("\n== Video: 8 frames from a 60 s 640x360 30 fps H.264 video (median ms) ==")
    print(f"demos.core.video.decode (counts packets, seeks)  {result['decode_ms']:8.1f}")
    print(f"decode every frame, then pick (naive script)     {result['naive_ms']:8.1f}"
          f"   -> {result['naive_ms'] / result['decode_ms']:.1f}x")
    print(f"/ask_video (client side)                         {result['app_ms']:8.1f}")
    print(f"direct decode + generate(ChatHistory, videos=)   {result['direct_ms']:8.1f}"
          f"   direct/app {result['ratio']:.3f} (median of {result['rounds']} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds with a 640x480 picture (half as many at 12 MP)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=21, help="timings of the image preparation")
    parser.add_argument("--model", type=Path, help="an OpenVINO VLM folder to use instead of the built one")
    parser.add_argument("--video", action="store_true", help="only the video case (tiny Qwen2-VL unless --video-model)")
    parser.add_argument("--video-model", type=Path, help="an OpenVINO Qwen2-VL / Qwen2.5-VL folder for the video case")
    args = parser.parse_args()
    if args.video:
        with tempfile.TemporaryDirectory(prefix="bench-video-") as scratch:
            print_video(bench_video(args.rounds, args.tokens, Path(scratch), args.video_model))
        return
    model_dir = args.model or build_model()
    print(f"model: {model_dir}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-vision-") as scratch:
        folder = Path(scratch)
        prep = bench_preparation(model_dir, args.repeats)
        small = bench_generation(model_dir, args.rounds, args.tokens, 640, 480, folder)
        big = bench_generation(model_dir, max(2, args.rounds // 2), args.tokens, 4000, 3000, folder)
    print("\n== Vision: app (/ask_image via gradio_client) vs VLMPipeline directly ==")
    print("app: the app through gradio_client; plain: a script with a plain prompt; chat: a script with a")
    print("ChatHistory (the API the app uses). Medians; the ratios are medians of per-round speed ratios")
    print("(tokens/s app/direct, times direct/app): 1.0 means as fast as the direct script, > 1 faster.")
    for result in (small, big):
        print(f"\npicture {result['picture']}, {result['rounds']} rounds, {result['tokens']:.0f} new tokens each")
        print(f"{'':26}{'app':>9}{'plain':>9}{'chat':>9}{'app/plain':>11}{'app/chat':>10}")
        for label, (app, plain, chat, vs_plain, vs_chat) in result["rows"]:
            print(f"{label:26}{app:9.1f}{plain:9.1f}{chat:9.1f}{vs_plain:11.3f}{vs_chat:10.3f}")
    print(f"\n== Preparing a 12-megapixel photo for this model ({prep['budget']}), median wall / CPU ms ==")
    print(f"{prep['file']} -> {prep['result']}")
    rows = [("images_in.prepare (target <= 20 ms)", prep["prepare_ms"]),
            ("PIL reduced-scale decode alone (the floor)", prep["draft_decode_ms"]),
            ("PIL full decode + orient + RGB (naive script)", prep["full_decode_ms"])]
    for label, (wall, cpu) in rows:
        print(f"{label:48}{wall:8.1f}{cpu:8.1f}")


if __name__ == "__main__":
    main()
