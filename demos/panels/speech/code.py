"""Show code for the Speech panel: the Python and C++ lines that reproduce the current transcription."""
from __future__ import annotations

from typing import Any

from demos.core.showcode import ModelRef
from demos.core.snippets import cpp_string, cpp_value, py_string
from demos.core.suite import Handle
from demos.panels.speech.transcriber import Options


def _properties(handle: Handle) -> dict[str, Any]:
    return {k: v for k, v in handle.loaded.key.properties if k != "CACHE_DIR"}


def python_code(model: ModelRef, handle: Handle, options: Options) -> str:
    """Runnable Python: decode any file with PyAV, then the same ``generate`` call the app made (``model``:
    ``showcode.model_reference`` of the entry on the handle's device)."""
    props = "".join(f", {k}={v!r}" for k, v in _properties(handle).items())
    kwargs = "".join(f",\n    {k}={v!r}" for k, v in options.generate_kwargs().items())
    lines = [
        "import av  # pip install av: FFmpeg's decoders for any audio or video file",
        "import numpy as np",
        "import openvino_genai as ov_genai",
        *model.python_setup,
        "",
        f"model_dir = {model.python}",
        "",
        "def read_audio(path: str) -> np.ndarray:",
        '    """float32 mono 16 kHz in [-1, 1], as Whisper wants (the app averages channels the same way)."""',
        "    with av.open(path) as container:",
        "        stream = container.streams.audio[0]",
        '        planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)',
        "        frames = [f.to_ndarray() for frame in container.decode(stream) for f in planar.resample(frame)]",
        "    mono = np.concatenate(frames, axis=1).mean(axis=0, dtype=np.float32)",
        '    to16k = av.AudioResampler(format="flt", layout="mono", rate=16000)',
        '    frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")',
        "    frame.sample_rate = stream.rate",
        "    out = to16k.resample(frame) + to16k.resample(None)",
        "    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).clip(-1, 1)",
        "",
        f"pipe = ov_genai.WhisperPipeline(model_dir, {py_string(handle.loaded.key.device)}{props})",
        "",
        "def streamer(text: str) -> ov_genai.StreamingStatus:",
        '    print(text, end="", flush=True)',
        "    return ov_genai.StreamingStatus.RUNNING  # STOP ends the transcription early",
        "",
        *(["# The app skipped silence first: Whisper decoded only the speech Silero VAD found (demos/core/vad.py),",
           "# with times mapped back onto the audio. This call decodes all of it."] if options.skip_silence else []),
        "result = pipe.generate(",
        f'    read_audio("audio.mp3").tolist(){kwargs},',
        "    streamer=streamer,",
        ")",
        "print()",
    ]
    if options.timestamps != "off":
        lines += ["for chunk in result.chunks:",
                  '    print(f"[{chunk.start_ts:7.2f} -> {chunk.end_ts:7.2f}] {chunk.text}")']
    if options.timestamps == "words":
        lines += ["for word in result.words:",
                  '    print(f"{word.start_ts:7.2f} {word.end_ts:7.2f} {word.word}")']
    lines += ["metrics = result.perf_metrics",
              'print(f"TTFT {metrics.get_ttft().mean:.0f} ms, generate {metrics.get_generate_duration().mean:.0f} ms")']
    return "\n".join(lines) + "\n"


def cpp_code(model: ModelRef, handle: Handle, options: Options) -> str:
    """C++ with the genai samples' WAV reader (16 kHz mono wav; convert other files first, e.g. with ffmpeg)."""
    props = ", ".join(f"{{{cpp_string(k)}, {cpp_value(v)}}}" for k, v in _properties(handle).items())
    construct = (f"    ov::genai::WhisperPipeline pipe({model.cpp}, {cpp_string(handle.loaded.key.device)}"
                 f"{', ov::AnyMap{' + props + '}' if props else ''});")
    sets = []
    for key, value in options.generate_kwargs().items():
        sets.append(f"    config.{key} = {cpp_value(value)};")
    lines = [
        '#include "openvino/genai/whisper_pipeline.hpp"',
        '#include "audio_utils.hpp"  // from openvino.genai\'s C++ speech recognition sample',
        "",
        "#include <iostream>",
        "",
        "int main() {",
        *(f"    {line}" for line in model.cpp_setup),
        construct,
        "    ov::genai::WhisperGenerationConfig config = pipe.get_generation_config();",
        *sets,
        '    // 16 kHz mono wav: ffmpeg -i audio.mp3 -ar 16000 -ac 1 audio.wav',
        '    ov::genai::RawSpeechInput speech = utils::audio::read_wav("audio.wav");',
        "    auto streamer = [](std::string text) {",
        "        std::cout << text << std::flush;",
        "        return ov::genai::StreamingStatus::RUNNING;",
        "    };",
        "    ov::genai::WhisperDecodedResults result = pipe.generate(speech, config, streamer);",
        "    std::cout << '\\n';",
    ]
    if options.timestamps != "off":
        lines += ["    for (const auto& chunk : *result.chunks)",
                  '        std::cout << "[" << chunk.start_ts << " -> " << chunk.end_ts << "]"',
                  '                  << chunk.text << "\\n";']
    if options.timestamps == "words":
        lines += ["    for (const auto& word : *result.words)",
                  '        std::cout << word.start_ts << " " << word.end_ts << " " << word.word << "\\n";']
    lines += ["}"]
    return "\n".join(lines) + "\n"
