"""Voice benchmark: the app's /speak against Text2SpeechPipeline.generate, and Talk's time to first audio, in one run.

    flock /tmp/heavy.lock python bench/bench_voice.py [--rounds 3] [--device CPU]

Model: SpeechT5-base geometry (hidden 768, 6+6 layers, 12 heads, ffn 3072, prenet/postnet 256, 80 mel bins) with
random weights and a HiFi-GAN of speecht5_hifigan's shape (upsampling 4x4x4x4, kernels 3/7/11), built from configs
(no hub) with the test kit's character tokenizer and its stop-head fix (so every text speaks maxlenratio frames
per character), exported to OpenVINO fp16, cached in ~/.cache/ov-genai-demos-bench.

Prints, per round and as medians:
* real-time factor (time to make the speech / its length) through the app (client wall time: request, queue,
  every sentence's generate, WAV, response) and of direct calls (one generate per sentence, as the app makes);
  their ratio direct/app (target >= 0.95);
* Talk (/voice_chat with the tiny kit's Whisper and LLM): time to first audio, broken down into transcription,
  the reply's TTFT and the first sentence's speech.
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
TEXT = ("OpenVINO GenAI speaks on your own machine. Every sentence is made in turn. "
        "The first one plays while the next is made.")


def _build_model(target: Path) -> None:
    import torch
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig
    from transformers import (SpeechT5Config, SpeechT5FeatureExtractor, SpeechT5ForTextToSpeech, SpeechT5HifiGan,
                              SpeechT5HifiGanConfig)

    from tests.kit import speecht5 as kit

    pt, voc = target / "pt", target / "vocoder"
    pt.mkdir(parents=True)
    tokenizer = kit._tokenizer(pt)
    torch.manual_seed(0)
    config = SpeechT5Config(vocab_size=len(tokenizer), hidden_size=768, encoder_layers=6, decoder_layers=6,
                            encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                            decoder_ffn_dim=3072, num_mel_bins=80, speech_decoder_prenet_units=256,
                            speech_decoder_postnet_units=256, speech_decoder_postnet_layers=5,
                            speaker_embedding_dim=512, reduction_factor=2, speech_decoder_prenet_dropout=0.0,
                            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    model = SpeechT5ForTextToSpeech(config).eval()
    with torch.no_grad():
        model.speech_decoder_postnet.prob_out.weight.zero_()
        model.speech_decoder_postnet.prob_out.bias.fill_(-10.0)
    model.save_pretrained(pt)
    SpeechT5FeatureExtractor().save_pretrained(pt)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(normalize_before=True)).eval()  # speecht5_hifigan's shape
    vocoder.save_pretrained(voc)
    main_export(str(pt), target / "ov", task="text-to-audio", convert_tokenizer=True, ov_config=OVConfig(dtype="fp16"),
                model_kwargs={"vocoder": str(voc)}, local_files_only=True)


def model_dir() -> Path:
    """The benchmark model's OpenVINO folder, built once."""
    return built_once("speecht5-base-random", "openvino_decoder_model.xml", _build_model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--port", type=int, default=0, help="the app's port (default: a free one)")
    parser.add_argument("--parts", default="rtf,talk", help="which parts to run: rtf, talk or both")
    parser.add_argument("--reply-tokens", type=int, default=8,
                        help="Talk's max_new_tokens (random weights speak maxlenratio frames per character)")
    args = parser.parse_args()

    import openvino_genai as ov_genai
    import yaml
    from gradio_client import Client

    from demos.panels.voice import sentences as text_split
    from demos.panels.voice.speaker import synthesize
    import tests.conftest
    from tests.conftest import AppProcess
    if args.port:  # a fixed port of one's own on a machine shared with others
        tests.conftest.free_port = lambda: args.port
    from tests.kit import build_all, catalog_dict

    started = time.perf_counter()
    folder = model_dir()
    print(f"model: {folder} (ready in {time.perf_counter() - started:.0f} s)", flush=True)
    work = CACHE / "voice-run"
    work.mkdir(parents=True, exist_ok=True)
    kit = build_all()
    tiny = catalog_dict(kit, work / "app-cache")
    catalog = {"settings": {**tiny["settings"], "device": args.device, "max_pipelines": 3},
               "chat": tiny["chat"][:1], "speech": tiny["speech"],
               "voice": [{"id": "speecht5-base-random", "label": "SpeechT5-base size, random weights",
                          "source": str(folder)}]}
    (work / "models.yaml").write_text(yaml.safe_dump(catalog))
    app = AppProcess(["--models", str(work / "models.yaml")], env={"HF_HUB_OFFLINE": "1"},
                     log_path=work / "app.log").wait_ready()
    try:
        client = Client(app.url, verbose=False)
        direct = ov_genai.Text2SpeechPipeline(str(folder), args.device, CACHE_DIR=str(work / "direct-cache"))
        pieces = text_split.split(TEXT)

        def directly() -> tuple[float, float]:
            t0 = time.perf_counter()
            audio = [synthesize(direct, piece, None)[0] for piece in pieces]
            return time.perf_counter() - t0, sum(len(a) for a in audio) / 16000

        if "rtf" in args.parts:
            rtf(client, directly, TEXT, args.rounds)
        if "talk" in args.parts:
            talk(client, work, args.rounds, args.reply_tokens)
    finally:
        app.stop()
    return 0


def rtf(client, directly, text: str, rounds: int) -> None:
    """/speak against direct generate calls on the same sentences, alternating which goes first."""
    client.predict(text, "speecht5-base-random", api_name="/speak")  # warm-up: each output length compiles once
    _, seconds = directly()
    print(f"text: {seconds:.1f} s of speech", flush=True)
    rtf_app, rtf_direct, server = [], [], []
    for round_ in range(1, rounds + 1):
        def through_app() -> float:
            t0 = time.perf_counter()
            _, metrics = client.predict(text, "speecht5-base-random", api_name="/speak")
            server.append(metrics["real_time_factor"])  # generate time alone, inside the app
            return time.perf_counter() - t0
        if round_ % 2:
            app_s = through_app()
            direct_s, _ = directly()
        else:
            direct_s, _ = directly()
            app_s = through_app()
        rtf_app.append(app_s / seconds)
        rtf_direct.append(direct_s / seconds)
        print(f"round {round_}: RTF app {rtf_app[-1]:.3f} (its generate calls alone {server[-1]:.3f}), "
              f"direct {rtf_direct[-1]:.3f}, ratio direct/app {rtf_direct[-1] / rtf_app[-1]:.3f}", flush=True)
    print(f"\nmedian RTF: app {statistics.median(rtf_app):.3f}, direct {statistics.median(rtf_direct):.3f}; "
          f"ratio direct/app {statistics.median(rtf_direct) / statistics.median(rtf_app):.3f} (target >= 0.95)")
    print(f"best RTF:   app {min(rtf_app):.3f}, direct {min(rtf_direct):.3f}; ratio direct/app "
          f"{min(rtf_direct) / min(rtf_app):.3f}\n", flush=True)


def talk(client, work: Path, rounds: int, reply_tokens: int) -> None:
    """/voice_chat's time to first audio and its parts."""
    from gradio_client import handle_file

    from tests import media
    clip = media.espeak(work / "question.wav", "Hello, what is the weather like today?")

    def ask():
        return client.predict(handle_file(str(clip)), "tiny-llm", "tiny-whisper", "speecht5-base-random", [], "",
                              reply_tokens, api_name="/voice_chat")

    ask()  # warm-up: loads Whisper and the LLM, compiles the reply's output length
    rows = []
    for round_ in range(1, rounds + 1):
        t0 = time.perf_counter()
        _, _, _, metrics = ask()
        wall = (time.perf_counter() - t0) * 1000
        rows.append(metrics)
        print(f"talk round {round_}: first audio {metrics['first_audio_ms']:.0f} ms = transcription "
              f"{metrics['transcribe_ms']:.0f} ms + reply TTFT {metrics['ttft_ms']:.0f} ms + the reply until its first "
              f"sentence ends + first sentence's speech {metrics['first_sentence_ms']:.0f} ms (turn {wall:.0f} ms "
              f"wall, {metrics['sentences']} sentence(s))", flush=True)
    med = {k: statistics.median(float(r[k]) for r in rows)
           for k in ("first_audio_ms", "transcribe_ms", "ttft_ms", "first_sentence_ms")}
    print(f"\nmedian Talk: first audio {med['first_audio_ms']:.0f} ms; transcription {med['transcribe_ms']:.0f} ms, "
          f"TTFT {med['ttft_ms']:.0f} ms, first sentence's speech {med['first_sentence_ms']:.0f} ms, rest "
          f"{med['first_audio_ms'] - med['transcribe_ms'] - med['ttft_ms'] - med['first_sentence_ms']:.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
