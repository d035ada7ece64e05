"""A tiny random-weight LLaVA (CLIP vision tower + Llama text model) and its OpenVINO export, for vision-panel tests.

Everything is built from configs, offline: a 2-layer CLIP vision tower on 32x32 images in 8x8 patches (16 patch
features once the CLS feature is dropped, so every image becomes 16 ``<image>`` tokens), a 2-layer Llama with
hidden size 64, the 2-layer LLaVA projector, and a byte-level BPE tokenizer trained here on a few sentences.

Random weights are drawn with a wide spread and the output head only scores printable-word tokens, so greedy
decoding writes readable, non-repeating gibberish that changes with the image and never stops early on its own
(``max_new_tokens`` ends every answer; EOS is never chosen).

genai reads ``preprocessor_config.json`` for the image size; transformers 5's export leaves it out (genai then
assumes 336 px and fails), so it is saved on its own and copied next to the exported model.

Using it (openvino_genai 2026.4): ``VLMPipeline(ov, "CPU", INFERENCE_PRECISION_HINT="f32")`` then
``generate(prompt, images=[ov.Tensor(uint8 HxWx3)], max_new_tokens=16)``. genai applies the chat template itself,
and puts one image block before the prompt per image unless the prompt holds ``<image>`` tags (or universal
``<ov_genai_image_N>`` tags). Any image size works: genai resizes the shortest edge to 32 px and centre-crops.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

IMAGE_SIZE = 32  # pixels; genai resizes (shortest edge) and centre-crops any input image to this
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # "default" feature strategy drops CLS: one token per patch
IMAGE_TOKEN = "<image>"
_SPECIALS = ("<s>", "</s>", "<pad>", "<unk>", IMAGE_TOKEN)
_VOCAB_SIZE = 320  # 256 byte symbols, the specials and some merges
_INIT_RANGE = 0.4  # 20x the transformers default: wide random logits; at 0.1-0.2 greedy answers loop on one token
_SEED = 7
# Simple enough for genai's C++ Jinja engine; the roles are plain text so they tokenize with the BPE vocab.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] + ': ' + message['content'] + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)
_CORPUS = (
    "What is in the picture? Describe the image in detail.",
    "A cat sits on a red chair near the window. The dog plays in the green garden.",
    "There is a blue car, a white house and a tall tree under the sun.",
    "Answer the question about the photo: how many people are there and what are they doing?",
    "user: hello assistant: hi, I see a small bird on the branch of an old tree.",
)


@dataclass(frozen=True)
class VLMModels:
    """Paths of the built model."""

    pt: Path  # transformers LlavaForConditionalGeneration + LlavaProcessor folder (PyTorch)
    ov: Path  # OpenVINO export of ``pt`` for openvino_genai.VLMPipeline (fp32 weights)


# ---------------------------------------------------------------------------------------------------------
# Components


def _tokenizer():
    """A byte-level BPE tokenizer trained on ``_CORPUS``, with ``<image>`` as a special token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=_VOCAB_SIZE, special_tokens=list(_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", extra_special_tokens={"image_token": IMAGE_TOKEN},
                                   chat_template=CHAT_TEMPLATE)


def _processor(tokenizer):
    from transformers import CLIPImageProcessor, LlavaProcessor

    crop = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size=crop)
    # patch_size + "default" strategy + 1 CLS token make the processor expand <image> to IMAGE_TOKENS tokens,
    # the same count genai derives from the vision encoder's output.
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH_SIZE,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          image_token=IMAGE_TOKEN, chat_template=CHAT_TEMPLATE)


def _model(tokenizer):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       initializer_range=_INIT_RANGE, tie_word_embeddings=False,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         image_seq_length=IMAGE_TOKENS, tie_word_embeddings=False)
    config.initializer_range = _INIT_RANGE
    torch.manual_seed(_SEED)
    model = LlavaForConditionalGeneration(config).eval()
    _restrict_output(model, tokenizer)
    return model


def _restrict_output(model, tokenizer) -> None:
    """Zero the output rows of specials and non-printable bytes so greedy decoding picks printable tokens.

    Other logits are wide random numbers whose maximum is far above zero, so a zero row never wins: answers
    never end early on EOS and never decode to broken UTF-8.
    """
    import torch

    head = model.lm_head.weight
    with torch.no_grad():
        for token, index in tokenizer.get_vocab().items():
            text = tokenizer.convert_tokens_to_string([token])
            if token in _SPECIALS or not text.isascii() or not text.isprintable():
                head[index].zero_()


# ---------------------------------------------------------------------------------------------------------
# Build


def _save(target: Path) -> None:
    tokenizer = _tokenizer()
    processor = _processor(tokenizer)
    model = _model(tokenizer)
    model.save_pretrained(target)
    processor.save_pretrained(target)
    # transformers 5 nests the image processor inside processor_config.json; genai (and the exporter's copy) read
    # the standalone preprocessor_config.json, without which genai assumes 336 px images.
    processor.image_processor.save_pretrained(target)
    model.generation_config.save_pretrained(target)


def _export(source: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    # fp32 weights: the tiny model's outputs must not depend on fp16 rounding of random weights.
    main_export(str(source), target, task="image-text-to-text", convert_tokenizer=True,
                ov_config=OVConfig(dtype="fp32"), local_files_only=True)
    # transformers 5's export omits it and genai would fall back to 336 px crops.
    if not (target / "preprocessor_config.json").exists():
        shutil.copy(source / "preprocessor_config.json", target / "preprocessor_config.json")


def _build(root: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _save(root / "pt")
    _export(root / "pt", root / "ov")


def build() -> VLMModels:
    """Build (or reuse from cache) the tiny LLaVA and its OpenVINO export."""
    root = cached("tiny-llava", _build)
    return VLMModels(pt=root / "pt", ov=root / "ov")


def _smoke(models: VLMModels) -> None:
    """Answer about two images through openvino_genai: different images differ, reruns repeat, STOP stops."""
    import numpy as np
    import openvino as ov
    import openvino_genai as genai

    pipe = genai.VLMPipeline(str(models.ov), "CPU", INFERENCE_PRECISION_HINT="f32")
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    def answer(*images: np.ndarray, **kwargs) -> str:
        return pipe.generate("What is in the picture?", images=[ov.Tensor(i) for i in images], max_new_tokens=16,
                             **kwargs).texts[0]

    first, second = answer(red), answer(noise)
    assert first and second and first != second, "answers must be non-empty and depend on the image"
    assert answer(red) == first, "greedy f32 answers must repeat"
    both = answer(red, noise)
    stopped = answer(red, streamer=lambda chunk: genai.StreamingStatus.STOP)
    assert len(stopped) < len(first) and answer(red) == first, "STOP must end early and leave the pipeline usable"
    metrics = pipe.generate("Describe it.", images=[ov.Tensor(red)], max_new_tokens=16).perf_metrics
    print(f"red: {first!r}\nnoise: {second!r}\nboth: {both!r}\nstopped: {stopped!r}\n"
          f"ttft {metrics.get_ttft().mean:.1f} ms, tpot {metrics.get_tpot().mean:.2f} ms, "
          f"vision encoding {metrics.get_vision_encoding_duration().mean:.2f} ms, "
          f"{metrics.get_num_input_tokens()} input tokens")


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    built = build()
    print(built, f"built in {time.perf_counter() - start:.1f} s")
    _smoke(built)
