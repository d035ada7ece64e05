"""Show code for the Voice panel: the Python and C++ that speak the same text with the same voice."""
from __future__ import annotations

from typing import Any

from demos.core.showcode import ModelRef
from demos.core.snippets import cpp_string, cpp_value, py_string


def _properties(key: Any) -> dict[str, Any]:
    return {k: v for k, v in key.properties if k != "CACHE_DIR"}


def python_code(model: ModelRef, key: Any, text: str, voice_file: str | None) -> str:
    """Runnable Python: one ``generate`` per sentence (as the app speaks long text), joined into one WAV."""
    props = "".join(f", {k}={v!r}" for k, v in _properties(key).items())
    voice = ("speaker = ov.Tensor(np.fromfile(" + py_string(voice_file) + ", dtype=np.float32).reshape(1, 512))"
             if voice_file and not voice_file.endswith(".npy") else
             "speaker = ov.Tensor(np.load(" + py_string(voice_file) + ").astype(np.float32).reshape(1, 512))"
             if voice_file else "speaker = None  # the pipeline's built-in voice")
    return "\n".join([
        "import wave",
        "",
        "import numpy as np",
        "import openvino as ov",
        "import openvino_genai as ov_genai",
        *model.python_setup,
        "",
        f"pipe = ov_genai.Text2SpeechPipeline({model.python}, {py_string(key.device)}{props})",
        voice,
        f"text = {py_string(text)}",
        "",
        "speech = []",
        "for sentence in text.replace('!', '.').replace('?', '.').split('. '):  # the app splits at sentence ends",
        "    result = pipe.generate(sentence, speaker) if speaker is not None else pipe.generate(sentence)",
        "    # copy at once: the next generate reuses the buffer",
        "    speech.append(np.array(result.speeches[0].data, copy=True).reshape(-1))",
        "audio = np.concatenate(speech)",
        "with wave.open(\"speech.wav\", \"wb\") as out:",
        "    out.setnchannels(1)",
        "    out.setsampwidth(2)",
        "    out.setframerate(result.output_sample_rate)",
        "    out.writeframes((np.clip(audio, -1, 1) * 32767).round().astype(\"<i2\").tobytes())",
        "print(f\"{len(audio) / result.output_sample_rate:.1f} s of speech\")",
    ]) + "\n"


def cpp_code(model: ModelRef, key: Any, text: str, voice_file: str | None) -> str:
    props = ", ".join(f"{{{cpp_string(k)}, {cpp_value(v)}}}" for k, v in _properties(key).items())
    construct = (f"    ov::genai::Text2SpeechPipeline pipe({model.cpp}, {cpp_string(key.device)}"
                 f"{', ov::AnyMap{' + props + '}' if props else ''});")
    lines = [
        '#include "openvino/genai/speech_generation/text2speech_pipeline.hpp"',
        "",
        "#include <fstream>",
        "#include <iostream>",
        "",
        "int main() {",
        *(f"    {line}" for line in model.cpp_setup),
        construct,
        f"    std::string text = {cpp_string(text)};",
    ]
    if voice_file:
        lines += [
            "    // a speaker embedding: 512 raw float32 values",
            "    ov::Tensor speaker(ov::element::f32, ov::Shape{1, 512});",
            f"    std::ifstream voice({cpp_string(voice_file)}, std::ios::binary);",
            "    voice.read(reinterpret_cast<char*>(speaker.data<float>()), speaker.get_byte_size());",
            "    auto result = pipe.generate(text, speaker);",
        ]
    else:
        lines += ["    auto result = pipe.generate(text);  // the pipeline's built-in voice"]
    lines += [
        "    ov::Tensor speech = result.speeches[0];",
        '    std::cout << speech.get_size() / float(result.output_sample_rate) << " s of speech\\n";',
        "    // write speech.data<float>() as a WAV (see openvino.genai's text2speech sample, audio_utils)",
        "}",
    ]
    return "\n".join(lines) + "\n"
