"""Tiny random-weight models for every pipeline, built offline and cached (see ``common.cached``).

``build_all()`` returns them all; ``write_catalog()`` writes a models.yaml that points the app at them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Kit:
    llm: object
    whisper: object
    diffusion: object
    vlm: object
    qwen2vl: object = None  # a tiny Qwen2-VL: the vision entry that takes videos
    tts: object = None  # tests.kit.speecht5.SpeechT5Models


def build_all() -> Kit:
    """Every tiny model (minutes the first time, a second on later runs)."""
    from . import diffusion, llm, qwen2vl, speecht5, vlm, whisper
    return Kit(llm=llm.build(), whisper=whisper.build(), diffusion=diffusion.build(), vlm=vlm.build(),
               qwen2vl=qwen2vl.build(), tts=speecht5.build())


def catalog_dict(kit: Kit, cache_dir: Path) -> dict:
    """A catalog with one entry per panel on the tiny models (f32 so results compare exactly)."""
    exact = {"INFERENCE_PRECISION_HINT": "f32"}
    llm, sd = kit.llm, kit.diffusion
    return {
        "settings": {"cache_dir": str(cache_dir), "device": "CPU", "max_pipelines": 2,
                     "title": "OpenVINO GenAI demos (tiny test models)"},
        "chat": [
            {"id": "tiny-llm", "label": "Tiny LLM", "source": str(llm.main_ov), "properties": exact,
             "adapters": [{"id": "lora-a", "label": "LoRA A", "source": str(llm.lora_a)},
                          {"id": "lora-b", "label": "LoRA B", "source": str(llm.lora_b)}],
             "drafts": [{"id": "tiny-draft", "label": "Tiny draft", "source": str(llm.draft_ov)},
                        {"id": "foreign-draft", "label": "Draft with another tokenizer",
                         "source": str(llm.foreign_draft_ov)}],
             "generation": {"max_new_tokens": 24, "temperature": 0.0},
             "examples": ["Hello, how are you?"]},
            {"id": "tiny-llm-export", "label": "Tiny LLM (exported on first use)", "source": str(llm.main_pt),
             "export": {"weight_format": "int8"}, "generation": {"max_new_tokens": 16, "temperature": 0.0}},
        ],
        "image": [
            {"id": "tiny-sd", "label": "Tiny Stable Diffusion", "source": str(sd.ov), "properties": exact,
             "adapters": [{"id": "style-kohya", "label": "Kohya style", "source": str(sd.lora_kohya), "alpha": 0.8},
                          {"id": "style-kohya-b", "label": "Kohya style B", "source": str(sd.lora_kohya_b)},
                          {"id": "style-diffusers", "label": "Diffusers style", "source": str(sd.lora_diffusers)}],
             "generation": {"width": 64, "height": 64, "num_inference_steps": 4, "guidance_scale": 1.0},
             "examples": ["a red square"]},
        ],
        "speech": [{"id": "tiny-whisper", "label": "Tiny Whisper", "source": str(kit.whisper.ov),
                    "properties": exact}],
        **({"voice": [{"id": "tiny-tts", "label": "Tiny SpeechT5", "source": str(kit.tts.ov), "properties": exact,
                       "voices": [{"id": "voice-a", "label": "Voice A", "source": str(kit.tts.voice_a)},
                                  {"id": "voice-b", "label": "Voice B", "source": str(kit.tts.voice_b)}],
                       "generation": {"max_chars": 400}}]} if kit.tts is not None else {}),
        "vision": [{"id": "tiny-vlm", "label": "Tiny LLaVA", "source": str(kit.vlm.ov), "properties": exact,
                    "generation": {"max_new_tokens": 16, "temperature": 0.0},
                    "examples": ["What is in the picture?"]}]
                  + ([{"id": "tiny-qwen2vl", "label": "Tiny Qwen2-VL (video)", "source": str(kit.qwen2vl.ov),
                       "properties": exact, "generation": {"max_new_tokens": 16, "temperature": 0.0},
                       "examples": ["What happens in the video?"]}] if kit.qwen2vl is not None else []),
    }


def write_catalog(kit: Kit, folder: Path, cache_dir: Path | None = None) -> Path:
    """Write ``folder/models.yaml`` for the tiny kit and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(catalog_dict(kit, cache_dir or folder / "cache"), sort_keys=False))
    return path
