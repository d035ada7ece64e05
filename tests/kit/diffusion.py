"""A tiny random-weight Stable Diffusion 1.x model, its OpenVINO export and LoRA adapters, for image-panel tests.

Everything is built from configs (no hub access): a 2-block UNet, a 4-block VAE (so the VAE scale factor is 8,
as in real SD and images must be multiples of 8 pixels), a 2-layer CLIP text encoder and a byte-level CLIP BPE
tokenizer written here. The default image is 64x64 (UNet sample size 8 x VAE factor 8); 4 steps take a few ms.

Two OpenVINO folders are exported: ``ov`` (StableDiffusionPipeline, Euler scheduler) and ``ov_lcm``
(LatentConsistencyModelPipeline: UNet with ``time_cond_proj_dim``, LCMScheduler), the latter mirroring the LCM
Dreamshaper entry of the catalog.

LoRA adapters (random, non-zero up/B weights so they visibly change the image) come in the layouts users meet:
kohya/A1111 keys (``lora_unet_...``/``lora_te_...`` with ``.alpha``), the diffusers/peft layout written by
``StableDiffusionPipeline.save_lora_weights`` (``unet.``/``text_encoder.`` keys, ``lora_A``/``lora_B``), a second
kohya adapter for blending, and one whose keys match no weight of the model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

# Words given their own BPE merges so typical test prompts tokenize into whole words; any other text still
# tokenizes, byte by byte, because every byte (with and without the end-of-word mark) is in the vocabulary.
_WORDS = ("a", "photo", "of", "the", "cat", "dog", "red", "blue", "house", "in", "snow", "forest", "cozy", "cabin")
_RANK = 4  # LoRA rank
# Scale alpha / rank = 0.5, deliberately not 1, so the scale written in the files (kohya ``.alpha`` tensors, peft's
# ``lora_alpha`` in the metadata) is observable. diffusers applies it; openvino_genai 2026.4 ignores the ``.alpha``
# tensor (effective scale = the AdapterConfig alpha alone), so genai's result at alpha 1.0 equals diffusers' at 2.0.
_LORA_ALPHA = 2.0
_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
_TE_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class DiffusionModels:
    """Paths of the built models and adapters."""

    pt: Path  # diffusers StableDiffusionPipeline folder (PyTorch)
    ov: Path  # OpenVINO export of ``pt`` for openvino_genai.Text2ImagePipeline (Euler scheduler)
    ov_lcm: Path  # OpenVINO LatentConsistencyModelPipeline export (LCMScheduler, guidance-embedding UNet)
    lora_kohya: Path  # kohya/A1111 keys: lora_unet_* / lora_te_* with lora_down, lora_up, alpha
    lora_kohya_b: Path  # same layout, other seed: for blend tests
    lora_diffusers: Path  # diffusers/peft keys: unet.* / text_encoder.* with lora_A, lora_B
    lora_unmatched: Path  # kohya layout, but no key names a module of the model


# ---------------------------------------------------------------------------------------------------------
# Components


def _tokenizer():
    """A CLIP BPE tokenizer over all bytes plus a few whole-word merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        # Merge left to right; the last piece carries the end-of-word mark, as CLIP's BPE does.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        merged = pieces[0]
        for piece in pieces[1:]:
            rule = (merged, piece)
            merged += piece
            if rule not in merges:
                merges.append(rule)
                tokens.append(merged)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return CLIPTextModel(config).eval()


def _unet(time_cond_proj_dim: int | None = None):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=16, time_cond_proj_dim=time_cond_proj_dim,
    ).eval()


def _vae():
    from diffusers import AutoencoderKL

    # Four blocks give the usual SD scale factor of 8 (2 ** (blocks - 1)); channels stay tiny.
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    ).eval()


def _save_pipeline(target: Path, lcm: bool) -> None:
    """Save a diffusers pipeline folder (SD 1.x, or its latent-consistency variant)."""
    import torch
    from diffusers import (EulerDiscreteScheduler, LatentConsistencyModelPipeline, LCMScheduler,
                           StableDiffusionPipeline)

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    parts = dict(text_encoder=_text_encoder(tokenizer), tokenizer=tokenizer, vae=_vae(),
                 unet=_unet(time_cond_proj_dim=32 if lcm else None))
    # SD 1.x noise schedule values; the scheduler is the only thing genai reads from scheduler_config.json.
    schedule = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                    steps_offset=1)
    if lcm:
        pipe = LatentConsistencyModelPipeline(**parts, scheduler=LCMScheduler(**schedule), safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
    else:
        pipe = StableDiffusionPipeline(**parts, scheduler=EulerDiscreteScheduler(**schedule), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(target)


def _export(source: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    # fp32 weights: the tiny model's outputs must not depend on fp16 rounding of random weights.
    main_export(str(source), target, task="text-to-image", convert_tokenizer=True, ov_config=OVConfig(dtype="fp32"),
                local_files_only=True)


# ---------------------------------------------------------------------------------------------------------
# LoRA adapters


def _lora_targets(pt: Path) -> list[tuple[str, str, int, int]]:
    """(component, module path, in_features, out_features) for every attention projection adapters touch."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    targets = []
    for component, model, names in (("unet", UNet2DConditionModel.from_pretrained(pt / "unet"), _UNET_TARGETS),
                                    ("text_encoder", CLIPTextModel.from_pretrained(pt / "text_encoder"), _TE_TARGETS)):
        for path, module in model.named_modules():
            if path.endswith(names) and hasattr(module, "in_features"):
                targets.append((component, path, module.in_features, module.out_features))
    return targets


def _random_pairs(targets, seed: int):
    """Yield (component, module path, down/A, up/B) with both factors random, so the adapter changes outputs."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for component, path, fan_in, fan_out in targets:
        down = torch.randn(_RANK, fan_in, generator=generator) * 0.5
        up = torch.randn(fan_out, _RANK, generator=generator) * 0.5
        yield component, path, down, up


def _write_kohya(target: Path, targets, seed: int) -> None:
    """kohya/A1111 layout: ``lora_unet_<module_path_with_underscores>.lora_down.weight`` etc."""
    import torch
    from safetensors.torch import save_file

    prefixes = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
    tensors = {}
    for component, path, down, up in _random_pairs(targets, seed):
        key = prefixes[component] + path.replace(".", "_")
        tensors[f"{key}.lora_down.weight"] = down
        tensors[f"{key}.lora_up.weight"] = up
        tensors[f"{key}.alpha"] = torch.tensor(_LORA_ALPHA)
    save_file(tensors, str(target), metadata={"ss_network_dim": str(_RANK), "ss_network_alpha": str(_LORA_ALPHA)})


def _write_diffusers(target: Path, targets, seed: int) -> None:
    """The layout ``StableDiffusionPipeline.save_lora_weights`` writes (peft names: lora_A = down, lora_B = up)."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig

    layers: dict[str, dict] = {"unet": {}, "text_encoder": {}}
    for component, path, down, up in _random_pairs(targets, seed):
        layers[component][f"{path}.lora_A.weight"] = down
        layers[component][f"{path}.lora_B.weight"] = up
    # The writer adds the unet./text_encoder. prefixes. peft keeps the scale (lora_alpha / r) in its config, not
    # in the weights; diffusers stores that config in the file's metadata, as its training scripts do.
    configs = {component: LoraConfig(r=_RANK, lora_alpha=_LORA_ALPHA, target_modules=list(names)).to_dict()
               for component, names in (("unet", _UNET_TARGETS), ("text_encoder", _TE_TARGETS))}
    StableDiffusionPipeline.save_lora_weights(
        target.parent, unet_lora_layers=layers["unet"], text_encoder_lora_layers=layers["text_encoder"],
        weight_name=target.name, unet_lora_adapter_metadata=configs["unet"],
        text_encoder_lora_adapter_metadata=configs["text_encoder"])


def _write_unmatched(target: Path) -> None:
    """A well-formed kohya adapter whose modules do not exist in the model."""
    targets = [("unet", "nonexistent_block.0.attn1.to_q", 32, 32), ("text_encoder", "no_such_layer.q_proj", 32, 32)]
    _write_kohya(target, targets, seed=3)


# ---------------------------------------------------------------------------------------------------------
# Build


def _build(root: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name, lcm in (("pt", False), ("pt_lcm", True)):
        _save_pipeline(root / name, lcm=lcm)
    _export(root / "pt", root / "ov")
    _export(root / "pt_lcm", root / "ov_lcm")
    lora = root / "lora"
    lora.mkdir()
    targets = _lora_targets(root / "pt")
    _write_kohya(lora / "kohya.safetensors", targets, seed=1)
    _write_kohya(lora / "kohya_b.safetensors", targets, seed=2)
    _write_diffusers(lora / "diffusers.safetensors", targets, seed=1)
    _write_unmatched(lora / "unmatched.safetensors")


def build() -> DiffusionModels:
    """Build (or reuse from cache) the tiny SD model, its OpenVINO exports and the LoRA adapters."""
    root = cached("tiny-sd", _build)
    lora = root / "lora"
    return DiffusionModels(pt=root / "pt", ov=root / "ov", ov_lcm=root / "ov_lcm",
                           lora_kohya=lora / "kohya.safetensors", lora_kohya_b=lora / "kohya_b.safetensors",
                           lora_diffusers=lora / "diffusers.safetensors",
                           lora_unmatched=lora / "unmatched.safetensors")


def _smoke(models: DiffusionModels) -> None:
    """Generate through openvino_genai from each export: plain, with an adapter, and stopped by the callback."""
    import numpy as np
    import openvino_genai as genai

    adapter = genai.Adapter(str(models.lora_kohya))
    for folder in (models.ov, models.ov_lcm):
        # f32: the default bf16 on such CPUs is not bit-stable across adapter switches.
        pipe = genai.Text2ImagePipeline(str(folder), "CPU", adapters=genai.AdapterConfig(adapter),
                                        INFERENCE_PRECISION_HINT="f32")

        def image(**kwargs) -> np.ndarray:
            result = pipe.generate("a photo of a cat", num_inference_steps=4, width=64, height=64,
                                   generator=genai.TorchGenerator(42), **kwargs)
            return result.data.copy()  # the returned tensor's memory is reused by the next generate()

        plain = image(adapters=genai.AdapterConfig())
        styled = image(adapters=genai.AdapterConfig(adapter, 1.0))
        stopped = pipe.generate("a photo of a cat", num_inference_steps=4, width=64, height=64,
                                callback=lambda step, num_steps, latent: step >= 1)
        assert plain.shape == (1, 64, 64, 3) and plain.dtype == np.uint8
        assert np.array_equal(plain, image(adapters=genai.AdapterConfig())), "same seed must give the same image"
        assert not np.array_equal(plain, styled), "the kohya adapter must change the image"
        print(f"{folder.name}: image {plain.shape} {plain.dtype}, mean {plain.mean():.1f}; adapter changes "
              f"{np.mean(plain != styled):.0%} of values; stopped early -> tensor shape {list(stopped.shape)}; "
              f"{pipe.get_performance_metrics().get_inference_duration():.1f} ms")


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    built = build()
    print(f"built in {time.perf_counter() - start:.1f} s")
    for field, value in vars(built).items():
        print(f"{field}: {value}")
    _smoke(built)
