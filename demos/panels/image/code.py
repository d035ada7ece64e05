"""'Show code': the few lines of openvino_genai Python and C++ that reproduce the panel's current settings.

The snippets use ``rng_seed`` (genai's CppStdGenerator) rather than ``TorchGenerator``: it needs no torch, exists in
C++ too, and is what the app itself uses, so the snippets give exactly the pixels the app shows.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from demos.core import lora_modes
from demos.core.image_modes import CLASSES
from demos.core.snippets import cpp_string, cpp_value
from demos.panels.image.settings import ImageSettings

HEADERS = {"generate": "text2image_pipeline.hpp", "transform": "image2image_pipeline.hpp",
           "inpaint": "inpainting_pipeline.hpp"}


def _var(adapter_id: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z]+", "_", adapter_id).strip("_").lower() or "style"
    return name if not name[0].isdigit() else f"style_{name}"


def _py_value(value: Any) -> str:
    return repr(value)


def python_code(settings: ImageSettings, model_path: str, adapter_paths: dict[str, str],
                properties: dict[str, Any], setup: Sequence[str] = (), lora_mode: str | None = None) -> str:
    """Python that builds the pipeline (every style registered once) and generates this image; ``model_path`` and
    the adapter paths are Python expressions, ``setup`` the lines that go first (``showcode.ModelRef``)."""
    editing = settings.mode != "generate"
    lines = [*setup, *(["import numpy as np", "import openvino as ov"] if editing else []),
             "import openvino_genai as ov_genai", "from PIL import Image", ""]
    lines.append(f"model_dir = {model_path}")
    for adapter_id, path in adapter_paths.items():
        lines.append(f"{_var(adapter_id)} = ov_genai.Adapter({path})")
    args = ["model_dir", repr(settings.device)]
    if adapter_paths:
        registered = ", ".join(_var(a) for a in adapter_paths)
        lines.append("# Register every style once: choosing styles and weights per image never recompiles.")
        args.append(f"adapters=ov_genai.AdapterConfig([{registered}], {lora_modes.python_mode(lora_mode, 'image')})")
    args += [f"{key}={_py_value(value)}" for key, value in properties.items()]
    lines.append(f"pipe = ov_genai.{CLASSES[settings.mode]}({', '.join(args)})")
    lines.append("")
    if editing:  # the source as the app sized it (download it from the Compare view), [1, H, W, 3] uint8
        lines.append(f"source = ov.Tensor(np.array(Image.open(\"source.png\").convert(\"RGB\"))[None])  "
                     f"# {settings.width}x{settings.height}")
    if settings.mode == "inpaint":
        lines.append("painted = np.array(Image.open(\"mask.png\").convert(\"L\")) >= 128  # white = repaint")
        lines.append("mask = ov.Tensor(np.repeat(painted[None, ..., None], 3, axis=3).astype(np.uint8) * 255)")
    lines.append("styles = ov_genai.AdapterConfig()  # empty = no style")
    for adapter_id, weight in settings.styles:
        lines.append(f"styles.add({_var(adapter_id)}, {weight:g})")
    lines += ["", "def on_step(step, num_steps, latent):",
              "    print(f\"step {step + 1}/{num_steps}\")  # pipe.decode(latent) gives a preview",
              "    return False  # True stops the generation", "",
              "image = pipe.generate(", f"    {settings.prompt!r},"]
    if settings.negative_prompt:
        lines.append(f"    negative_prompt={settings.negative_prompt!r},")
    if editing:
        lines += ["    image=source,", *(["    mask_image=mask,"] if settings.mode == "inpaint" else []),
                  f"    strength={settings.strength:g},"]
    else:
        lines += [f"    width={settings.width},", f"    height={settings.height},"]
    lines += [f"    num_inference_steps={settings.steps},", f"    guidance_scale={settings.guidance_scale:g},",
              f"    rng_seed={settings.seed},", "    adapters=styles,", "    callback=on_step,", ")",
              "Image.fromarray(image.data[0]).save(\"image.png\")  # image.data: [1, height, width, 3] uint8"]
    return "\n".join(lines) + "\n"


def _cpp_float(value: float) -> str:
    """A float literal: 7 -> 7.0f, 0.8 -> 0.8f (``7f`` would not compile)."""
    return f"{float(value)!r}f"


def cpp_code(settings: ImageSettings, model_path: str, adapter_paths: dict[str, str],
             properties: dict[str, Any], setup: Sequence[str] = ()) -> str:
    """C++ with the same settings (paths are C++ string literals; ``setup``: comment lines on what to run first)."""
    lines = ["// CMake: find_package(OpenVINOGenAI REQUIRED) and target_link_libraries(image PRIVATE openvino::genai)",
             *setup, "#include <iostream>", f"#include \"openvino/genai/image_generation/{HEADERS[settings.mode]}\"",
             *(["#include \"load_image.hpp\"  // openvino.genai samples/cpp/image_generation (stb_image)"]
               if settings.mode != "generate" else []), "", "int main() {"]
    for adapter_id, path in adapter_paths.items():
        lines.append(f"    ov::genai::Adapter {_var(adapter_id)}({path});")
    entries = []
    if adapter_paths:
        entries.append(f"ov::genai::adapters({{{', '.join(_var(a) for a in adapter_paths)}}})")
    entries += [f"{{{cpp_string(key)}, {cpp_value(value)}}}" for key, value in properties.items()]
    lines.append(f"    ov::AnyMap properties{{{', '.join(entries)}}};")
    lines.append(f"    ov::genai::{CLASSES[settings.mode]} pipe({model_path}, {cpp_string(settings.device)}, properties);")
    if settings.mode != "generate":
        lines.append("    ov::Tensor source = utils::load_image(\"source.png\");  // [1, H, W, 3] uint8")
    if settings.mode == "inpaint":
        lines.append("    ov::Tensor mask = utils::load_image(\"mask.png\");  // white = repaint")
    call = {"generate": "", "transform": " source,", "inpaint": " source, mask,"}[settings.mode]
    lines += ["", "    ov::Tensor image = pipe.generate(", f"        {cpp_string(settings.prompt)},{call}"]
    if settings.negative_prompt:
        lines.append(f"        ov::genai::negative_prompt({cpp_string(settings.negative_prompt)}),")
    styles = ", ".join(f"{{{_var(a)}, {_cpp_float(w)}}}" for a, w in settings.styles)
    if settings.mode == "generate":
        lines += [f"        ov::genai::width({settings.width}),", f"        ov::genai::height({settings.height}),"]
    else:
        lines.append(f"        ov::genai::strength({_cpp_float(settings.strength)}),")
    lines += [f"        ov::genai::num_inference_steps({settings.steps}),",
              f"        ov::genai::guidance_scale({_cpp_float(settings.guidance_scale)}),",
              f"        ov::genai::rng_seed({settings.seed}),",
              f"        ov::genai::adapters({'{' + styles + '}' if styles else ''}),",
              "        ov::genai::callback([](size_t step, size_t num_steps, ov::Tensor&) {",
              "            std::cout << \"step \" << step + 1 << \"/\" << num_steps << \"\\n\";",
              "            return false;  // true stops the generation",
              "        }));",
              "    // image: u8 [1, height, width, 3]; save it with any image library, e.g. stb_image_write:",
              f"    // stbi_write_png(\"image.png\", {settings.width}, {settings.height}, 3, image.data<uint8_t>(), "
              f"{settings.width * 3});",
              "    return 0;", "}"]
    return "\n".join(lines) + "\n"
