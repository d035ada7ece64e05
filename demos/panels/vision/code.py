"""'Show code' for the Vision panel: the Python and C++ lines that reproduce the current conversation."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demos.core.catalog import VisionEntry
from demos.core.images import FAR_ABOVE, Budget
from demos.core.showcode import ModelRef, reference
from demos.core.snippets import cpp_string, cpp_value


@dataclass(frozen=True)
class CodeRequest:
    """Everything the snippets show: where the model is, how it is built, the chat so far and the settings."""

    entry: VisionEntry
    device: str
    model_dir: Path | None                   # None until the model has been fetched
    properties: dict[str, Any]
    turns: list[tuple[str, list[str]]]       # (question, image file names) per user turn
    max_new_tokens: int
    temperature: float
    top_p: float
    budget: Budget | None = None
    local: bool = field(default=False)       # the entry's source is a local folder
    model: ModelRef | None = None            # how the snippet reaches the model (showcode.model_reference)
    videos: list[list[tuple[str, int]]] = field(default_factory=list)  # per turn: (video file name, frames)


def _model(request: CodeRequest) -> ModelRef:
    """The request's model as ``showcode`` resolves it (from its folder and kind when it came without one)."""
    if request.model is not None:
        return request.model
    source, revision, export = request.entry.source_for(request.device)  # a device's variant, if the entry lists one
    local = Path(source) if request.local else None
    return reference(source, revision, export, request.entry.panel, local, request.model_dir)


def _budget_lines(budget: Budget | None) -> list[str]:
    """How the demo scales an upload down (only far above the model's size, to twice that size: genai resizes the
    rest, as ``demos.core.images.Budget.target``); omitted when it never does."""
    if budget is None:
        return ["    return ov.Tensor(np.array(image))"]
    if budget.shortest_side:
        side = budget.shortest_side
        scale = f"{side} / min(image.size)  # the model uses a {side} px shortest side"
    elif budget.fit:
        width, height = budget.fit
        scale = f"max({width} / image.width, {height} / image.height)  # the model uses {width}x{height}"
    elif budget.max_pixels:
        scale = f"({budget.max_pixels} / (image.width * image.height)) ** 0.5  # the model's pixel budget"
    else:
        return ["    return ov.Tensor(np.array(image))"]
    least = budget.shortest_side * FAR_ABOVE if budget.shortest_side else 1
    return [f"    scale = {scale}",
            f"    if scale * {FAR_ABOVE} < 1:  # only far larger pictures, to {FAR_ABOVE}x; genai resizes the rest itself",
            f"        scale *= {FAR_ABOVE}",
            f"        size = (max({least}, round(image.width * scale)), max({least}, round(image.height * scale)))",
            "        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)",
            "    return ov.Tensor(np.array(image))"]


_VIDEO_READER = [
    "def read_video(path: str, frames: int) -> ov.Tensor:",
    "    import av  # PyAV",
    "    with av.open(path) as container:",
    "        every = [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]",
    "    picked = np.rint(np.linspace(0, len(every) - 1, min(frames, len(every)))).astype(int)  # evenly spread",
    "    return ov.Tensor(np.stack([every[i] for i in picked]))  # one k x H x W x 3 tensor per video",
    "",
    "",
]


def _turn_lines(turns: list[tuple[str, list[str]]], videos: list[list[tuple[str, int]]]) -> list[str]:
    """The conversation loop when some turn has a video: (question, images, [video, frames]) per turn."""
    rows = [[q, files, [list(v) for v in (videos[i] if i < len(videos) else [])]] for i, (q, files) in enumerate(turns)]
    return [
        "# (question, images, [[video, frames]]) per turn; each turn's images and video go with its question",
        f"turns = {json.dumps(rows, ensure_ascii=False)}",
        "history = ov_genai.ChatHistory()",
        "for question, files, clips in turns:",
        "    history.append({'role': 'user', 'content': question})",
        "    result = pipe.generate(history, images=[read_image(f) for f in files],",
        "                           videos=[read_video(v, k) for v, k in clips], generation_config=config,",
        "                           streamer=print_text)",
    ]


def python_code(request: CodeRequest) -> str:
    """A runnable script: build the pipeline, then ask every question of the conversation with its images."""
    model = _model(request)
    props = "".join(f", {k}={v!r}" for k, v in request.properties.items() if k.isidentifier())
    other = {k: v for k, v in request.properties.items() if not k.isidentifier()}
    if other:
        props += f", **{other!r}"
    sampling = (f"config.do_sample = True\nconfig.temperature = {request.temperature}\nconfig.top_p = {request.top_p}"
                if request.temperature > 0 else "config.do_sample = False  # greedy")
    turns = request.turns or [((request.entry.examples or ["What is in the picture?"])[0], ["photo.jpg"])]
    lines = [
        "import numpy as np",
        "import openvino as ov",
        "import openvino_genai as ov_genai",
        "from PIL import Image, ImageOps",
        *model.python_setup,
        "",
        f"model_dir = {model.python}",
        "",
        f"pipe = ov_genai.VLMPipeline(model_dir, {request.device!r}{props})",
        "",
        "",
        "def read_image(path: str) -> ov.Tensor:",
        "    image = ImageOps.exif_transpose(Image.open(path)).convert('RGB')  # upright, 3 channels",
        *_budget_lines(request.budget),
        "",
        "",
        *(_VIDEO_READER if any(request.videos) else []),
        "def print_text(text: str) -> ov_genai.StreamingStatus:",
        "    print(text, end='', flush=True)",
        "    return ov_genai.StreamingStatus.RUNNING  # STOP ends the answer early",
        "",
        "",
        "config = pipe.get_generation_config()",
        f"config.max_new_tokens = {request.max_new_tokens}",
        sampling,
        "",
        *(_turn_lines(turns, request.videos) if any(request.videos) else [
            "# (question, images) per turn; images of each turn go with that turn's question",
            f"turns = {json.dumps([[q, files] for q, files in turns], ensure_ascii=False)}",
            "history = ov_genai.ChatHistory()",
            "for question, files in turns:",
            "    history.append({'role': 'user', 'content': question})",
            "    result = pipe.generate(history, images=[read_image(f) for f in files], generation_config=config,",
            "                           streamer=print_text)"]),
        "    history.append({'role': 'assistant', 'content': result.texts[0]})",
        "    metrics = result.perf_metrics",
        "    print(f'\\nTTFT {metrics.get_ttft().mean:.0f} ms, {metrics.get_throughput().mean:.1f} tokens/s, '",
        "          f'vision encoding {metrics.get_vision_encoding_duration().mean:.0f} ms')",
    ]
    return "\n".join(lines) + "\n"


def cpp_code(request: CodeRequest) -> str:
    """The same conversation in C++ (``load_image.hpp`` comes with openvino.genai's visual_language_chat sample)."""
    model = _model(request)
    props = ", ".join(f"{{{cpp_string(k)}, {cpp_value(v)}}}" for k, v in request.properties.items())
    turns = request.turns or [((request.entry.examples or ["What is in the picture?"])[0], ["photo.jpg"])]
    body = []
    for question, files in turns:
        images = ", ".join(f"utils::load_image({cpp_string(f)})" for f in files)
        body += [f"    history.push_back({{{{\"role\", \"user\"}}, {{\"content\", {cpp_string(question)}}}}});",
                 "    result = pipe.generate(history,",
                 f"        ov::genai::images(std::vector<ov::Tensor>{{{images}}}),",
                 "        ov::genai::generation_config(config), ov::genai::streamer(print_text));",
                 "    history.push_back({{\"role\", \"assistant\"}, {\"content\", result.texts[0]}});",
                 "    std::cout << \"\\nTTFT \" << result.perf_metrics.get_ttft().mean << \" ms\\n\";"]
    sampling = (["    config.do_sample = true;", f"    config.temperature = {request.temperature}f;",
                 f"    config.top_p = {request.top_p}f;"] if request.temperature > 0 else
                ["    config.do_sample = false;  // greedy"])
    lines = [
        "// Build against OpenVINO GenAI; load_image.hpp/.cpp come from samples/cpp/visual_language_chat",
        "#include <iostream>",
        "#include <openvino/genai/visual_language/pipeline.hpp>",
        "#include \"load_image.hpp\"",
        *model.cpp_setup,
        "",
        "ov::genai::StreamingStatus print_text(std::string&& text) {",
        "    std::cout << text << std::flush;",
        "    return ov::genai::StreamingStatus::RUNNING;",
        "}",
        "",
        "int main() {",
        f"    std::string model_dir = {model.cpp};  // the OpenVINO model folder",
        f"    ov::AnyMap properties{{{props}}};",
        f"    ov::genai::VLMPipeline pipe(model_dir, {cpp_string(request.device)}, properties);",
        "    ov::genai::GenerationConfig config = pipe.get_generation_config();",
        f"    config.max_new_tokens = {request.max_new_tokens};",
        *sampling,
        "    ov::genai::ChatHistory history;",
        "    ov::genai::VLMDecodedResults result;",
        *body,
        "}",
    ]
    return "\n".join(lines) + "\n"

