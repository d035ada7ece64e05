"""Speech benchmark: the app's /transcribe against WhisperPipeline.generate, side by side in one run.

    flock /tmp/heavy.lock python bench/bench_speech.py [--seconds 60] [--rounds 3] [--device CPU]

Model: whisper-base geometry (d_model 512, 6+6 layers, 8 heads, ffn 2048, ~51.8k vocabulary) with random
weights, built from a config (no hub) and exported to OpenVINO fp16, cached in ~/.cache/ov-genai-demos-bench.
Audio: 60 s of a 44.1 kHz stereo mp3 (what a podcast download looks like), so decoding and resampling do real
work. Both sides transcribe the same samples with the same settings, so they decode the same tokens.

Prints, per round and as medians:
* real-time factor (processing time / audio length) through the app (client wall time: upload, queue, decode,
  resample, generate, response) and of the direct call; their ratio direct/app (target >= 0.95);
* the app's decode+resample time as a share of its total (target <= 5%).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cached import CACHE, built_once  # noqa: E402
BASE = dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
            encoder_ffn_dim=2048, decoder_ffn_dim=2048)
TEXT_VOCAB = 50257  # GPT-2's text vocabulary, as in Whisper


def _build_model(target: Path) -> None:
    """Random-weight whisper-base: the tiny kit's Whisper-layout tokenizer padded to Whisper's text vocabulary."""
    import torch
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor
    from transformers import WhisperTokenizer

    from tests.kit import whisper as kit

    pt = target / "pt"
    pt.mkdir(parents=True)
    vocab, merges = kit._text_vocab()
    for i in range(TEXT_VOCAB - len(vocab)):  # filler text tokens: the output layer gets Whisper's width
        vocab[f"filler{i}"] = len(vocab)
    for token in ["<|endoftext|>"] + kit._special_tokens() + kit._timestamp_tokens():
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": kit._special_tokens()})
    from transformers import AddedToken
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in kit._timestamp_tokens()])
    tokenizer.save_pretrained(pt)
    tokenizer = WhisperTokenizer.from_pretrained(pt)
    ids = kit._ids(tokenizer)
    config = WhisperConfig(vocab_size=ids.vocab_size, num_mel_bins=80, max_source_positions=1500,
                           max_target_positions=448, decoder_start_token_id=ids.sot, bos_token_id=ids.eos,
                           eos_token_id=ids.eos, pad_token_id=ids.eos, begin_suppress_tokens=[ids.space, ids.eos],
                           suppress_tokens=kit._suppressed(ids), **BASE)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = kit._generation_config(ids)
    features = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                                       n_fft=400)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(pt)
    model.save_pretrained(pt)
    main_export(str(pt), target / "ov", task="automatic-speech-recognition-with-past", convert_tokenizer=True,
                ov_config=OVConfig(dtype="fp16"), local_files_only=True)


def model_dir() -> Path:
    """The benchmark model's OpenVINO folder, built once."""
    return built_once("whisper-base-random", "openvino_decoder_model.xml", _build_model)


def make_audio(folder: Path, seconds: float) -> Path:
    import numpy as np

    from tests import media
    rate = 44100
    left = media.signal(seconds, rate, seed=1)
    right = media.signal(seconds, rate, seed=2)
    import av
    path = folder / f"podcast-{int(seconds)}s.mp3"
    if path.exists():
        return path
    data = np.stack([left, right]).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.layout = "stereo"
        stream.bit_rate = 128_000
        stream.codec_context.open()
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="stereo", rate=rate,
                                      frame_size=stream.codec_context.frame_size or None)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
        frame.sample_rate = rate
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="CPU")
    args = parser.parse_args()

    import yaml
    import openvino_genai as ov_genai
    from gradio_client import Client, handle_file

    from demos.core import audio
    from tests.conftest import AppProcess

    started = time.perf_counter()
    folder = model_dir()
    print(f"model: {folder} (ready in {time.perf_counter() - started:.0f} s)", flush=True)
    work = CACHE / "run"
    work.mkdir(parents=True, exist_ok=True)
    clip = make_audio(work, args.seconds)
    catalog = {"settings": {"cache_dir": str(work / "app-cache"), "device": args.device, "max_pipelines": 1},
               "speech": [{"id": "whisper-base-random", "label": "whisper-base size, random weights",
                           "source": str(folder)}]}
    (work / "models.yaml").write_text(yaml.safe_dump(catalog))
    app = AppProcess(["--models", str(work / "models.yaml")], env={"HF_HUB_OFFLINE": "1"},
                     log_path=work / "app.log").wait_ready()
    try:
        client = Client(app.url, verbose=False)
        samples = audio.load(clip).samples
        direct = ov_genai.WhisperPipeline(str(folder), args.device, CACHE_DIR=str(work / "direct-cache"))
        seconds = len(samples) / audio.SAMPLE_RATE
        # Warm-up: the app compiles its pipeline on first use; the direct pipeline's first call warms caches.
        text_app = client.predict(handle_file(str(clip)), "whisper-base-random", api_name="/transcribe")[0]
        text_direct = direct.generate(samples.tolist()).texts[0]
        print(f"audio: {clip.name}, {seconds:.1f} s; same text on both sides: {text_app == text_direct} "
              f"({len(text_direct.split())} words)", flush=True)
        rtf_app, rtf_direct, shares = [], [], []
        for round_ in range(1, args.rounds + 1):
            def through_app() -> tuple[float, dict]:
                t0 = time.perf_counter()
                _, _, found = client.predict(handle_file(str(clip)), "whisper-base-random", api_name="/transcribe")
                return time.perf_counter() - t0, found

            def directly() -> float:
                t0 = time.perf_counter()
                direct.generate(samples.tolist())
                return time.perf_counter() - t0

            # Alternate which side goes first, so a slow spell on the machine does not always hit the same side.
            if round_ % 2:
                app_s, metrics = through_app()
                direct_s = directly()
            else:
                direct_s = directly()
                app_s, metrics = through_app()
            rtf_app.append(app_s / seconds)
            rtf_direct.append(direct_s / seconds)
            shares.append(metrics["decode_ms"] / 1000 / app_s)
            print(f"round {round_}: RTF app {rtf_app[-1]:.4f} (server side {metrics['real_time_factor']:.4f}), "
                  f"direct {rtf_direct[-1]:.4f}, ratio direct/app {rtf_direct[-1] / rtf_app[-1]:.3f}, "
                  f"decode+resample {metrics['decode_ms']:.0f} ms = {shares[-1]:.1%} of the app's total", flush=True)
        app_med, direct_med = statistics.median(rtf_app), statistics.median(rtf_direct)
        print(f"\nmedian RTF: app {app_med:.4f}, direct {direct_med:.4f}; ratio direct/app "
              f"{direct_med / app_med:.3f} (target >= 0.95); decode+resample share "
              f"{statistics.median(shares):.1%} (target <= 5%)")
        # On a shared machine other work inflates single rounds; the fastest round of each side is the least
        # disturbed estimate of its own cost.
        print(f"best RTF:   app {min(rtf_app):.4f}, direct {min(rtf_direct):.4f}; ratio direct/app "
              f"{min(rtf_direct) / min(rtf_app):.3f}")
    finally:
        app.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
