"""Skip silence benchmark: ``/transcribe`` with Silero VAD on against off, side by side in one run.

    flock /tmp/heavy.lock python bench/bench_vad.py [--minutes 10] [--rounds 1] [--device CPU]

Model: the whisper-base-shape random-weight export of ``bench_speech`` (built once, cached in
~/.cache/ov-genai-demos-bench). Audio: a 16 kHz recording of ``--minutes``, half of it silence: sentences spoken by
espeak-ng with pauses of 1-6 s between them (and a -70 dBFS noise floor, as a microphone has).

Prints, per round and as medians: the processing time (server side: decode + VAD + generate) and the client's wall
time with silence skipped and without; the speed-up without/with (target >= 1.7x); the VAD's own time and its share
of the skipping run's processing time; how much silence it skipped.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_speech import CACHE, model_dir  # noqa: E402

SENTENCES = (
    "OpenVINO GenAI turns speech into text on this laptop, with no internet connection.",
    "The meeting starts at nine, and the first item is the budget for next year.",
    "Please send the report to the whole team before Friday afternoon.",
    "The weather tomorrow will be cloudy in the morning and sunny later in the day.",
    "We measured the speed of the new model on three different machines.",
    "A voice activity detector finds where someone speaks, so silence costs nothing.",
    "The train to the airport leaves every twenty minutes from platform four.",
    "Whisper decodes the audio in windows of thirty seconds, one after the other.",
)


def make_recording(folder: Path, minutes: float) -> tuple[Path, float]:
    """Speech and pauses alternating until ``minutes``, half of it silence; (wav path, seconds of speech)."""
    import numpy as np

    from demos.core import audio
    from tests import media

    path = folder / f"half-silence-{minutes:g}min.wav"
    voices = []
    for index, sentence in enumerate(SENTENCES):
        wav = media.espeak(folder / f"sentence-{index}.wav", sentence)
        voices.append(audio.load(wav).samples)
    rate, total = 16000, int(minutes * 60 * 16000)
    rng = np.random.default_rng(0)
    parts, length, speech = [], 0, 0
    while length < total:
        voice = voices[len(parts) % len(voices)]
        # Pauses as long as the speech on average: a sentence of ~4 s, then 1-6 s of silence, scaled to match.
        pause = np.zeros(int(len(voice) * rng.uniform(0.3, 1.7)), np.float32)
        for part in (voice, pause):
            parts.append(part)
            length += len(part)
        speech += len(voice)
    clip = np.concatenate(parts)[:total]
    clip = clip + rng.normal(0, 3e-4, clip.size).astype(np.float32)
    media.write_wav(path, clip, rate)
    return path, min(speech, total) / rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="CPU")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is needed to speak the recording: apt-get install -y espeak-ng")
        return 1

    import yaml
    from gradio_client import Client, handle_file

    from demos.core import audio
    from tests import media
    from tests.conftest import AppProcess

    started = time.perf_counter()
    folder = model_dir()
    print(f"model: {folder} (ready in {time.perf_counter() - started:.0f} s)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-vad-", dir=CACHE))
    clip, speech_s = make_recording(work, args.minutes)
    seconds = args.minutes * 60
    print(f"audio: {clip.name}, {seconds:.0f} s, {speech_s:.0f} s of it speech ({speech_s / seconds:.0%})", flush=True)
    catalog = {"settings": {"cache_dir": str(work / "app-cache"), "device": args.device, "max_pipelines": 1},
               "speech": [{"id": "whisper-base-random", "label": "whisper-base size, random weights",
                           "source": str(folder), "generation": {"max_audio_seconds": seconds + 60}}]}
    (work / "models.yaml").write_text(yaml.safe_dump(catalog))
    app = AppProcess(["--models", str(work / "models.yaml")], env={"HF_HUB_OFFLINE": "1"},
                     log_path=work / "app.log").wait_ready()
    try:
        client = Client(app.url, verbose=False)

        def transcribe(skip: bool) -> tuple[float, dict]:
            t0 = time.perf_counter()
            _, _, metrics = client.predict(handle_file(str(clip)), "whisper-base-random", skip_silence=skip,
                                           api_name="/transcribe")
            return time.perf_counter() - t0, metrics

        # Warm-up: compiles the pipeline (a few seconds of speech are enough).
        short = media.write_wav(work / "warm.wav", audio.load(clip).samples[:16000 * 20], 16000)
        client.predict(handle_file(str(short)), "whisper-base-random", skip_silence=False, api_name="/transcribe")
        skipped, whole, wall_skipped, wall_whole, vad_ms, shares = [], [], [], [], [], []
        for round_ in range(1, args.rounds + 1):
            # Alternate which side goes first, so a slow spell on the shared machine does not always hit one side.
            order = (True, False) if round_ % 2 else (False, True)
            results = {skip: transcribe(skip) for skip in order}
            (wall_on, on), (wall_off, off) = results[True], results[False]
            skipped.append(on["processing_s"])
            whole.append(off["processing_s"])
            wall_skipped.append(wall_on)
            wall_whole.append(wall_off)
            vad_ms.append(on["vad_ms"])
            shares.append(on["vad_ms"] / 1000 / on["processing_s"])
            print(f"round {round_}: processing skipped {on['processing_s']:.1f} s (wall {wall_on:.1f} s), "
                  f"whole {off['processing_s']:.1f} s (wall {wall_off:.1f} s): {off['processing_s'] / on['processing_s']:.2f}x "
                  f"faster; VAD {on['vad_ms']:.0f} ms = {shares[-1]:.1%} of the skipping run; skipped "
                  f"{on['silence_skipped_s']:.0f} s of silence, kept {on['speech_s']:.0f} s; output tokens "
                  f"{on['output_tokens']} vs {off['output_tokens']}", flush=True)
        on_med, off_med = statistics.median(skipped), statistics.median(whole)
        print(f"\nmedian processing: skipped {on_med:.1f} s, whole {off_med:.1f} s; speed-up {off_med / on_med:.2f}x "
              f"(target >= 1.7x); wall {statistics.median(wall_whole) / statistics.median(wall_skipped):.2f}x; "
              f"VAD {statistics.median(vad_ms):.0f} ms = {statistics.median(shares):.1%} of the skipping run")
    finally:
        app.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
