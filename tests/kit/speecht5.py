"""A tiny random-weight SpeechT5 text-to-speech model with a HiFi-GAN vocoder, exported for
``openvino_genai.Text2SpeechPipeline``, plus two voices (speaker embeddings), for voice-panel tests.

Everything is built from configs (no hub access), following ``/work/shared/FINDINGS.md`` ("Tiny SpeechT5"):

* a character tokenizer made with ``tokenizers`` (a BPE trained with a vocabulary smaller than its alphabet, so it
  learns no merges: one token per character, as SpeechT5's own sentencepiece model), Metaspace pre-tokenizer,
  SpeechT5's specials ``<s> <pad> </s> <unk>`` at ids 0-3 and ``</s>`` appended;
* ``SpeechT5ForTextToSpeech`` with hidden size 32 and one layer each side; its random stop head would end every
  speech after one step (sigmoid(0) = 0.5 meets genai's 0.5 threshold), so it is zeroed with a bias of -10: the
  length is then ``maxlenratio`` x the input tokens, so longer text gives longer audio;
* the decoder prenet's dropout is off (the export keeps it as a random op: output would not be deterministic);
* ``SpeechT5HifiGan`` initialised wider (``initializer_range`` 0.1, ``scale`` 0.25): its default init is near-silent;
* voices: ``voice-a.bin`` (raw float32, 512 values, as genai's samples store them) and ``voice-b.npy`` ([1, 512]).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

_SEED = 0
_HIDDEN = 32
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?;:'-\"()"


@dataclass(frozen=True)
class SpeechT5Models:
    """Paths of the built model and voices."""

    pt: Path        # transformers SpeechT5ForTextToSpeech + tokenizer + feature extractor
    vocoder: Path   # transformers SpeechT5HifiGan
    ov: Path        # OpenVINO export for openvino_genai.Text2SpeechPipeline
    voice_a: Path   # speaker embedding, raw float32 [512] (.bin)
    voice_b: Path   # speaker embedding, numpy float32 [1, 512] (.npy)


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    # A vocabulary smaller than the alphabet: BPE keeps every character and learns no merge.
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + 1, special_tokens=specials,
                                  initial_alphabet=list(_ALPHABET) + ["▁"], show_progress=False)
    tokenizer.train_from_iterator([_ALPHABET], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.save_pretrained(folder)
    return fast


def _save_pt(target: Path, vocoder_dir: Path) -> None:
    import torch
    from transformers import (SpeechT5Config, SpeechT5FeatureExtractor, SpeechT5ForTextToSpeech, SpeechT5HifiGan,
                              SpeechT5HifiGanConfig)

    torch.manual_seed(_SEED)
    tokenizer = _tokenizer(target)
    config = SpeechT5Config(
        vocab_size=len(tokenizer), hidden_size=_HIDDEN, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        num_mel_bins=80, speech_decoder_prenet_units=32, speech_decoder_postnet_units=32,
        speech_decoder_postnet_layers=2, speaker_embedding_dim=512, reduction_factor=2,
        speech_decoder_prenet_dropout=0.0, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2, max_text_positions=600, max_speech_positions=4000)
    model = SpeechT5ForTextToSpeech(config).eval()
    with torch.no_grad():
        stop = model.speech_decoder_postnet.prob_out
        stop.weight.zero_()
        stop.bias.fill_(-10.0)
    model.save_pretrained(target)
    SpeechT5FeatureExtractor().save_pretrained(target)

    torch.manual_seed(_SEED + 1)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=80, upsample_initial_channel=32, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], normalize_before=True,
        initializer_range=0.1)).eval()
    with torch.no_grad():
        vocoder.scale.fill_(0.25)
    vocoder.save_pretrained(vocoder_dir)


def _export(source: Path, vocoder: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    main_export(str(source), target, task="text-to-audio", convert_tokenizer=True, ov_config=OVConfig(dtype="fp32"),
                model_kwargs={"vocoder": str(vocoder)}, local_files_only=True)


def _voices(root: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(_SEED)
    rng.normal(0, 0.1, 512).astype(np.float32).tofile(root / "voice-a.bin")
    np.save(root / "voice-b.npy", rng.normal(0, 0.1, (1, 512)).astype(np.float32))


def _build(root: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _save_pt(root / "pt", root / "vocoder")
    _export(root / "pt", root / "vocoder", root / "ov")
    _voices(root)
    (root / "kit.json").write_text(json.dumps({"seed": _SEED}))


def build() -> SpeechT5Models:
    """Build (or reuse from cache) the tiny SpeechT5, its vocoder, its export and two voices."""
    root = cached("tiny-speecht5", _build)
    return SpeechT5Models(pt=root / "pt", vocoder=root / "vocoder", ov=root / "ov", voice_a=root / "voice-a.bin",
                          voice_b=root / "voice-b.npy")


if __name__ == "__main__":
    import time

    import numpy as np
    import openvino as ov
    import openvino_genai as genai

    start = time.perf_counter()
    built = build()
    print(f"built in {time.perf_counter() - start:.1f} s: {built}")
    pipe = genai.Text2SpeechPipeline(str(built.ov), "CPU", INFERENCE_PRECISION_HINT="f32")
    for voice in (None, ov.Tensor(np.fromfile(built.voice_a, dtype=np.float32).reshape(1, 512))):
        speech = np.array(pipe.generate("Hello world.", voice).speeches[0].data, copy=True)
        print(speech.shape, float(np.abs(speech).max()), pipe.get_generation_config().maxlenratio)
