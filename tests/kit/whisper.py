"""A tiny random-weight Whisper model and its OpenVINO export, for speech-panel tests.

Everything is built from configs (no hub access): a byte-level BPE tokenizer with a few whole-word merges and
Whisper's special and timestamp tokens, an 80-bin feature extractor and a 2+2-layer, d_model 64
WhisperForConditionalGeneration that keeps real Whisper's audio geometry (30 s window, 3000 mel frames,
1500 encoder positions) so openvino_genai.WhisperPipeline handles short and long-form audio as usual.

Token ids follow real Whisper's layout because genai relies on it: text tokens first, then <|endoftext|>
(genai treats every id below it as text), the other specials, <|notimestamps|> and the timestamp tokens last
(every id above <|notimestamps|> is a timestamp).

Weights are random but shaped so transcripts are useful in tests:
* every layer is rescaled to unit gain, so the audio (through the convolutions) matters as much as position;
* channel ``_BIAS`` of the decoder output is pinned to 1 by the final layer norm, so column ``_BIAS`` of the
  (untied) output projection is a per-token logit bias: whole words are favoured, byte pieces that could spell
  invalid UTF-8 never win, timestamps are rarer than words;
* channel ``_CLOCK`` carries a ramp over decoder positions that no layer writes to, and only <|endoftext|> reads
  it, so the end of text becomes likely after a dozen or so tokens instead of never or at once;
* timestamp logits share one random direction, so whether a timestamp beats the best word varies step by step.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

# Whisper's own language order (the first few): genai reports the detected language by its token.
LANGUAGES = ("en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "it", "nl")
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in 0.02 s steps
_WORDS = ("the", "a", "cat", "dog", "sat", "on", "mat", "hello", "world", "open", "vino", "speech", "model",
          "is", "and", "of", "to", "in", "it", "was", "red", "blue", "green", "house", "tree", "river", "sun",
          "moon", "day", "night", "good", "morning", "small", "big", "fast", "slow", "music", "voice", "sound",
          "test", "tiny", "random", "weights", "hallo", "welt", "bonjour", "monde", "hola", "mundo", "yes", "no")
_PUNCTUATION = (".", ",", "?", "!")
_D_MODEL = 64
_BIAS, _CLOCK, _FREE = 0, 1, 2  # decoder channels: logit bias, position clock; channels from _FREE on are random
_SEED = 0
_ENERGY = 0  # encoder channel that tells audio frames from padding
_CONTRASTS = 8  # conv1 channel pairs that measure spectral detail
_CONTRAST_GAIN = 3.0
_ENERGY_OFFSET = -1.0
_LISTEN = 3.0  # cross-attention logit per unit of normalised energy
_GELU_MEAN = 0.282  # E[gelu(z)] for z ~ N(0, 1)

# Logit shaping (see the module docstring); tuned so 1 s of audio gives ~10-20 words.
_WORD_BIAS = 3.0
_PUNCT_BIAS = 1.0
_BLOCKED_BIAS = -30.0
_WORD_SPREAD = 2.0  # std of the audio/position-dependent part of word logits
_EOS_BIAS = -4.0
_EOS_GAIN = 4.0
_CLOCK_RAMP = 0.2  # per decoder position
_TS_BIAS = -4.0
_TS_SPREAD = 1.0
_TS_SHARED = 3.0


@dataclass(frozen=True)
class WhisperModels:
    """Paths of the built models."""

    pt: Path  # transformers WhisperForConditionalGeneration + WhisperProcessor + generation_config.json
    ov: Path  # OpenVINO export of ``pt`` for openvino_genai.WhisperPipeline


# ---------------------------------------------------------------------------------------------------------
# Tokenizer


def _special_tokens() -> list[str]:
    """Whisper's special tokens after <|endoftext|>, in Whisper's order (timestamps excluded)."""
    return (["<|startoftranscript|>"] + [f"<|{lang}|>" for lang in LANGUAGES]
            + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
               "<|notimestamps|>"])


def _timestamp_tokens() -> list[str]:
    return [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]


def _text_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary: every byte, then each of ``_WORDS`` with a leading space merged left to right."""
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        merged = "Ġ"  # the byte-level form of a space
        for char in word:
            if (merged, char) not in merges:
                merges.append((merged, char))
            merged += char
            vocab.setdefault(merged, len(vocab))
    return vocab, merges


def _tokenizer(folder: Path):
    """Write and reload a WhisperTokenizer whose ids follow Whisper's layout (see the module docstring)."""
    from transformers import AddedToken, WhisperTokenizer

    vocab, merges = _text_vocab()
    for token in ["<|endoftext|>"] + _special_tokens() + _timestamp_tokens():
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges)
    # Specials are skipped when decoding; timestamps are plain added tokens, as in Whisper's own tokenizer.
    tokenizer.add_special_tokens({"additional_special_tokens": _special_tokens()})
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in _timestamp_tokens()])
    tokenizer.save_pretrained(folder)
    # Reloading sets the prefix tokens (<|startoftranscript|> ...) now that every special has an id.
    tokenizer = WhisperTokenizer.from_pretrained(folder)
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") == len(vocab) - 1 == len(tokenizer) - 1
    return tokenizer


@dataclass(frozen=True)
class _Ids:
    eos: int
    sot: int
    translate: int
    transcribe: int
    startoflm: int
    startofprev: int
    nocaptions: int
    notimestamps: int
    space: int
    langs: dict[str, int]
    words: list[int]
    punctuation: list[int]
    vocab_size: int

    @property
    def first_timestamp(self) -> int:
        return self.notimestamps + 1


def _ids(tokenizer) -> _Ids:
    get = tokenizer.convert_tokens_to_ids
    return _Ids(eos=get("<|endoftext|>"), sot=get("<|startoftranscript|>"), translate=get("<|translate|>"),
                transcribe=get("<|transcribe|>"), startoflm=get("<|startoflm|>"),
                startofprev=get("<|startofprev|>"), nocaptions=get("<|nocaptions|>"),
                notimestamps=get("<|notimestamps|>"), space=get("Ġ"),
                langs={f"<|{lang}|>": get(f"<|{lang}|>") for lang in LANGUAGES},
                words=[get("Ġ" + word) for word in _WORDS], punctuation=[get(p) for p in _PUNCTUATION],
                vocab_size=len(tokenizer))


# ---------------------------------------------------------------------------------------------------------
# Model


def _config(ids: _Ids):
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=ids.vocab_size, num_mel_bins=80, d_model=_D_MODEL, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, tie_word_embeddings=False,
        decoder_start_token_id=ids.sot, bos_token_id=ids.eos, eos_token_id=ids.eos, pad_token_id=ids.eos,
        begin_suppress_tokens=[ids.space, ids.eos], suppress_tokens=_suppressed(ids))


def _suppressed(ids: _Ids) -> list[int]:
    """Specials a transcript must never contain (real Whisper learned that; random weights must be told)."""
    return sorted([ids.sot, ids.translate, ids.transcribe, ids.startoflm, ids.startofprev, ids.nocaptions,
                   ids.notimestamps, *ids.langs.values()])


def _unit_gain(model) -> None:
    """Re-draw every weight so each layer keeps activations at unit scale (HF's 0.02 init drowns the audio)."""
    import torch

    for name, param in model.named_parameters():
        if name.endswith("embed_positions.weight") and "encoder" in name:
            continue  # fixed sinusoids
        if param.dim() == 1:
            torch.nn.init.ones_(param) if name.endswith("layer_norm.weight") else torch.nn.init.zeros_(param)
        else:
            fan_in = param[0].numel() if "embed" not in name else 1
            torch.nn.init.normal_(param, std=fan_in ** -0.5)
    # GELU outputs have a positive mean (about 0.28 for unit-normal inputs); the next layer would turn it into
    # the same vector at every position, and one word would win every step. Bias it away.
    after_gelu = [layer.fc2 for layer in model.model.encoder.layers + model.model.decoder.layers]
    for linear in after_gelu + [model.model.encoder.conv2]:
        linear.bias.copy_(-_GELU_MEAN * linear.weight.sum(dim=tuple(range(1, linear.weight.dim()))))


def _shape_decoder(model, ids: _Ids) -> None:
    """Set the bias and clock channels and the output projection (see the module docstring)."""
    import torch

    decoder = model.model.decoder
    reserved = [_BIAS, _CLOCK]
    decoder.embed_tokens.weight[:, reserved] = 0.0
    decoder.embed_positions.weight[:, reserved] = 0.0
    positions = torch.arange(decoder.embed_positions.weight.shape[0], dtype=torch.float32)
    decoder.embed_positions.weight[:, _CLOCK] = _CLOCK_RAMP * positions
    for layer in decoder.layers:
        # No layer reads or writes the reserved channels, so they reach the final norm unchanged.
        for norm in (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm):
            norm.weight[reserved] = 0.0
            norm.bias[reserved] = 0.0
        for out in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
            out.weight[reserved, :] = 0.0
            out.bias[reserved] = 0.0
    decoder.layer_norm.weight[_BIAS] = 0.0
    decoder.layer_norm.bias[_BIAS] = 1.0  # the bias channel leaves the final norm as a constant 1

    free = _D_MODEL - _FREE
    head = torch.zeros(ids.vocab_size, _D_MODEL)
    head[:, _FREE:] = torch.randn(ids.vocab_size, free) * (_WORD_SPREAD / free ** 0.5)
    head[:, _BIAS] = _BLOCKED_BIAS
    head[ids.words, _BIAS] = _WORD_BIAS
    head[ids.punctuation, _BIAS] = _PUNCT_BIAS
    head[[ids.sot, ids.translate, ids.transcribe, ids.startoflm, ids.startofprev, ids.nocaptions,
          ids.notimestamps, *ids.langs.values()], _BIAS] = 0.0
    head[ids.eos, _BIAS] = _EOS_BIAS
    head[ids.eos, _CLOCK] = _EOS_GAIN
    stamps = slice(ids.first_timestamp, ids.vocab_size)
    shared = torch.randn(free) / free ** 0.5
    head[stamps, _FREE:] = (torch.randn(N_TIMESTAMPS, free) * (_TS_SPREAD / free ** 0.5)
                            + _TS_SHARED * shared)
    head[stamps, _BIAS] = _TS_BIAS
    model.proj_out.weight.copy_(head)


def _shape_encoder(model) -> None:
    """Make encoder channel ``_ENERGY`` high on frames with spectral detail and ~0 on padding and silence.

    Whisper pads every window to 30 s with frames that are flat across mel bins. conv1 pairs compute random
    signed sums of differences between neighbouring bins (zero on a flat frame) and their negatives, so the GELU
    pair gives roughly their absolute value; conv2 adds them up into ``_ENERGY``, which no encoder layer touches.
    """
    import torch

    encoder = model.model.encoder
    n_mels = encoder.conv1.weight.shape[1]
    diffs = torch.eye(n_mels)[:-1] - torch.eye(n_mels)[1:]  # row b: bin b minus bin b + 1
    signs = torch.randint(0, 2, (_CONTRASTS, n_mels - 1)).float() * 2 - 1
    contrast = signs @ diffs * (_CONTRAST_GAIN / (n_mels - 1) ** 0.5)
    pairs = slice(0, 2 * _CONTRASTS)
    encoder.conv1.weight[pairs] = 0.0
    encoder.conv1.weight[0:2 * _CONTRASTS:2, :, 1] = contrast
    encoder.conv1.weight[1:2 * _CONTRASTS:2, :, 1] = -contrast
    encoder.conv1.bias[pairs] = 0.0
    encoder.conv2.weight[_ENERGY] = 0.0
    encoder.conv2.weight[_ENERGY, pairs, 1] = 1.0 / _CONTRASTS
    encoder.conv2.bias[_ENERGY] = _ENERGY_OFFSET
    encoder.embed_positions.weight[:, _ENERGY] = 0.0
    for layer in encoder.layers:
        for norm in (layer.self_attn_layer_norm, layer.final_layer_norm):
            norm.weight[_ENERGY] = 0.0
        for out in (layer.self_attn.out_proj, layer.fc2):
            out.weight[_ENERGY, :] = 0.0
            out.bias[_ENERGY] = 0.0


def _shape_cross_attention(model) -> None:
    """Let every decoder cross-attention head favour high-``_ENERGY`` frames: the audio, not the 30 s padding.

    One query/key dimension per head is given over to it: the key reads ``_ENERGY``, the query is a constant.
    """
    head_dim = _D_MODEL // model.config.decoder_attention_heads
    for layer in model.model.decoder.layers:
        attn = layer.encoder_attn
        for head in range(model.config.decoder_attention_heads):
            row = head * head_dim
            attn.k_proj.weight[row] = 0.0
            attn.k_proj.weight[row, _ENERGY] = 1.0
            attn.q_proj.weight[row] = 0.0
            attn.q_proj.bias[row] = _LISTEN * head_dim ** 0.5  # the attention scales q.k by head_dim ** -0.5


def _model(ids: _Ids):
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(_SEED)
    model = WhisperForConditionalGeneration(_config(ids)).eval()
    with torch.no_grad():
        _unit_gain(model)
        _shape_encoder(model)
        _shape_cross_attention(model)
        _shape_decoder(model, ids)
    return model


def _generation_config(ids: _Ids):
    """Every id genai reads from generation_config.json (without them it silently uses real Whisper's ids)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        decoder_start_token_id=ids.sot, bos_token_id=ids.eos, eos_token_id=ids.eos, pad_token_id=ids.eos,
        max_length=448, no_timestamps_token_id=ids.notimestamps, prev_sot_token_id=ids.startofprev,
        is_multilingual=True, lang_to_id=dict(ids.langs),
        task_to_id={"transcribe": ids.transcribe, "translate": ids.translate},
        begin_suppress_tokens=[ids.space, ids.eos], suppress_tokens=_suppressed(ids),
        max_initial_timestamp_index=50, return_timestamps=False,
        # (decoder layer, head) pairs whose cross-attention genai aligns words with
        alignment_heads=[[1, 0], [1, 1], [1, 2], [1, 3]])


def _save_pt(target: Path) -> None:
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    tokenizer = _tokenizer(target)
    ids = _ids(tokenizer)
    features = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                                       n_fft=400)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(target)
    model = _model(ids)
    model.generation_config = _generation_config(ids)
    model.save_pretrained(target)


def _export(source: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    # fp32 weights: the tiny model's outputs must not depend on fp16 rounding of random weights.
    main_export(str(source), target, task="automatic-speech-recognition-with-past", convert_tokenizer=True,
                ov_config=OVConfig(dtype="fp32"), local_files_only=True)


# ---------------------------------------------------------------------------------------------------------
# Build


def _build(root: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _save_pt(root / "pt")
    _export(root / "pt", root / "ov")


def build() -> WhisperModels:
    """Build (or reuse from cache) the tiny Whisper model and its OpenVINO export."""
    root = cached("tiny-whisper", _build)
    return WhisperModels(pt=root / "pt", ov=root / "ov")


def _smoke(models: WhisperModels) -> None:
    import numpy as np
    import openvino_genai as genai

    pipe = genai.WhisperPipeline(str(models.ov), "CPU", INFERENCE_PRECISION_HINT="f32")
    t = np.arange(16000) / 16000
    for name, audio in (("tone 440", 0.5 * np.sin(2 * np.pi * 440 * t)), ("tone 880", 0.5 * np.sin(2 * np.pi * 880 * t)),
                        ("noise", np.random.default_rng(0).normal(0, 0.1, 16000))):
        result = pipe.generate(audio.astype(np.float32).tolist())
        print(f"{name}: {result.texts[0]!r}")


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    built = build()
    print(f"built in {time.perf_counter() - start:.1f} s")
    for field, value in vars(built).items():
        print(f"{field}: {value}")
    _smoke(built)
