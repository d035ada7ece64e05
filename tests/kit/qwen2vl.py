"""A tiny random-weight Qwen2-VL (takes videos as well as images) and its OpenVINO export, for video tests.

Built from configs, offline: a byte-level BPE tokenizer with the Qwen specials and a ChatML template, a 2-layer
Qwen2 text model (hidden 64) and a 1-block vision tower on 14 px patches merged 2×2, frames paired in time
(``temporal_patch_size`` 2). ``preprocessor_config.json`` keeps images small (``max_pixels`` 7056 = 84×84, so a
frame costs at most 9 tokens per pair of frames); the exporter does not copy it, so it is copied into the export
(genai would otherwise fall back to its own much larger defaults).

optimum-intel 2.2 caps the Qwen2-VL export at transformers 5.0; the export is measured to match PyTorch under
5.5.4, so the cap is raised in-process for the export only.

Using it: ``VLMPipeline(ov, "CPU", INFERENCE_PRECISION_HINT="f32").generate(history, videos=[ov.Tensor(uint8
N×H×W×3)], max_new_tokens=16)``. The output head scores only printable tokens, so answers run to
``max_new_tokens`` with readable gibberish that depends on the frames.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>")
MIN_PIXELS, MAX_PIXELS = 784, 7056
CONTEXT = 4096  # max_position_embeddings: the frames control is bounded by it
_VOCAB_SIZE = 400
_INIT_RANGE = 0.4  # wide random logits: greedy answers do not loop on one token
_SEED = 11
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CORPUS = (
    "What happens in the video? Describe the frames one by one.",
    "A red ball rolls across the floor, then a blue square slides in from the left.",
    "system user assistant: the camera pans over a green field under a bright sky.",
    "How many objects move? What colour is the last frame?",
)


@dataclass(frozen=True)
class Qwen2VLModels:
    pt: Path  # transformers Qwen2VLForConditionalGeneration folder
    ov: Path  # its OpenVINO export for openvino_genai.VLMPipeline (fp32 weights)


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=_VOCAB_SIZE, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE)


def _model(tokenizer):
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIALS}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
                initializer_range=_INIT_RANGE, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                "mrope_section": [2, 3, 3]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, initializer_range=_INIT_RANGE)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                           video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                           vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    config.initializer_range = _INIT_RANGE
    torch.manual_seed(_SEED)
    model = Qwen2VLForConditionalGeneration(config).eval()
    head = model.lm_head.weight
    with torch.no_grad():  # only printable tokens can win: answers run to max_new_tokens, readable
        for token, index in tokenizer.get_vocab().items():
            shown = tokenizer.convert_tokens_to_string([token])
            if token in SPECIALS or not shown.isascii() or not shown.isprintable():
                head[index].zero_()
    return model


def _preprocessor() -> dict:
    return {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
            "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "do_convert_rgb": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711], "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS,
            "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
            "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}


def _save(target: Path) -> None:
    tokenizer = _tokenizer()
    model = _model(tokenizer)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    model.generation_config.save_pretrained(target)
    pre = _preprocessor()
    (target / "preprocessor_config.json").write_text(json.dumps(pre, indent=1))
    video = {**pre, "video_processor_type": "Qwen2VLVideoProcessor"}
    video.pop("image_processor_type")
    (target / "video_preprocessor_config.json").write_text(json.dumps(video, indent=1))


def _export(source: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.exporters.openvino import model_configs
    from optimum.intel import OVConfig

    import transformers
    exported = (model_configs.Qwen2VLOpenVINOConfig,)
    saved = [c.MAX_TRANSFORMERS_VERSION for c in exported]
    try:  # measured to export correctly under transformers 5.5.4 (FINDINGS): lift the cap for this export only
        for config in exported:
            config.MAX_TRANSFORMERS_VERSION = transformers.__version__
        main_export(str(source), target, task="image-text-to-text", convert_tokenizer=True,
                    ov_config=OVConfig(dtype="fp32"), local_files_only=True)
    finally:
        for config, version in zip(exported, saved):
            config.MAX_TRANSFORMERS_VERSION = version
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        shutil.copy(source / name, target / name)


def _build(root: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _save(root / "pt")
    _export(root / "pt", root / "ov")


def build() -> Qwen2VLModels:
    """Build (or reuse from cache) the tiny Qwen2-VL and its OpenVINO export."""
    root = cached("tiny-qwen2vl", _build)
    return Qwen2VLModels(pt=root / "pt", ov=root / "ov")


if __name__ == "__main__":
    import time

    import numpy as np
    import openvino as ov
    import openvino_genai as genai

    start = time.perf_counter()
    built = build()
    print(built, f"built in {time.perf_counter() - start:.1f} s")
    pipe = genai.VLMPipeline(str(built.ov), "CPU", INFERENCE_PRECISION_HINT="f32")
    frames = np.random.default_rng(0).integers(0, 256, (8, 48, 64, 3), dtype=np.uint8)
    history = genai.ChatHistory()
    history.append({"role": "user", "content": "What happens in the video?"})
    result = pipe.generate(history, videos=[ov.Tensor(frames)], max_new_tokens=16)
    print(repr(result.texts[0]), result.perf_metrics.get_num_input_tokens(), "input tokens")
    other = pipe.generate("What happens in the video?", videos=[ov.Tensor(frames[:4])], max_new_tokens=16)
    print(repr(other.texts[0]))
