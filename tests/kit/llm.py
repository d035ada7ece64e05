"""Tiny random-weight chat LLMs, their OpenVINO exports and LoRA adapters, for chat-panel tests.

Everything is built offline: a byte-level BPE tokenizer trained here on a small built-in English corpus (with a
plain Jinja chat template), a 2-layer Llama main model (hidden 64), a 1-layer Llama draft (hidden 32) sharing
its tokenizer, a "foreign" draft whose tokenizer has another vocabulary (speculative decoding must refuse it)
and two peft LoRA adapters (``adapter_model.safetensors``, ``base_model.model.*`` keys) for the main model.

Random weights are scaled up (``initializer_range``) so greedy answers wander over many tokens, and the output
rows of special and non-printable tokens are zeroed so a greedy run always yields exactly ``max_new_tokens``
printable-ASCII tokens (about 60-80 characters for 24 tokens). The draft is distilled on main's answers to
``DRAFT_PROMPTS``: speculative decoding accepts nearly all draft tokens there and almost none elsewhere.
Exports keep fp32 weights, so with ``INFERENCE_PRECISION_HINT="f32"`` equal inputs give equal outputs.

Using them with openvino_genai 2026.4 (measured):
* ``pipe.generate(str)`` returns a plain ``str`` (no perf metrics); a ``ChatHistory`` or ``[str]`` prompt
  returns ``DecodedResults`` with ``perf_metrics``. A list of message dicts must be wrapped in ``ChatHistory``.
* Adapters chosen per call reuse cached prompt KV computed under the previous adapter (LLMPipeline enables
  prefix caching by default), so A -> none gives a wrong "none" answer. Pass
  ``scheduler_config=SchedulerConfig()`` (its ``enable_prefix_caching`` is False) or ``ATTENTION_BACKEND="SDPA"``.
* A draft whose tokenizer differs fails at ``LLMPipeline(...)`` construction with RuntimeError
  "Tokenizers for draft and main models are different!".
* Accepted draft tokens: ``result.extended_perf_metrics`` (``SDPerModelsPerfMetrics``) has
  ``get_num_accepted_tokens()``, ``get_num_draft_tokens()``, ``get_draft_acceptance_rate()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.kit.common import cached

_SEED = 1234
_VOCAB = 512  # main tokenizer: all 256 bytes + 3 specials + ~250 merges
_FOREIGN_VOCAB = 320  # foreign tokenizer: other size and other merges, so ids mean other text
_SPECIALS = ("<s>", "</s>", "<pad>")  # ids 0, 1, 2
_FOREIGN_SPECIALS = ("<pad>", "<|bos|>", "<|eos|>")  # other ids for the same roles
_INIT_RANGE = 0.3  # std of the random weights: large enough that attention mixes context (no single-token loops)
_LORA_RANK = 4
_DISTILL_TOKENS = 48  # main's greedy answer length the draft learns (tests generate up to this many tokens)
_DISTILL_STEPS = 80

# (user prompt, system prompt or None): chats on which the draft predicts main's greedy answer, so speculative
# decoding accepts nearly every draft token; on any other chat the draft is as good as random (~0 accepted).
DRAFT_PROMPTS: tuple[tuple[str, str | None], ...] = (
    ("Hello, how are you?", None),
    ("Hello, how are you?", "You are a helpful assistant."),
    ("Write a poem about the sea.", None),
)
_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Role markers are plain text (no added tokens), so decoded output never hides them and the template needs
# nothing beyond loops, ``if`` and string concatenation, which OpenVINO GenAI's C++ Jinja engine runs.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_CORPUS = """\
Hello, how are you today? I am fine, thank you. What would you like to talk about?
The weather is lovely this morning. The sun is shining and the birds are singing in the garden.
Could you tell me a short story about a cat and a dog who became friends?
Once upon a time, a small grey cat lived in a quiet house near the river. Every day she watched the boats.
One morning a friendly dog knocked on the door and asked if she wanted to walk along the water with him.
They walked together, shared their lunch, and talked about the ships, the fish and the clouds in the sky.
Please explain how a computer works in simple words. A computer reads instructions, stores numbers in memory,
and follows the program step by step. It can add, compare and move data very quickly.
What is the capital of France? The capital of France is Paris. It is famous for its museums and bridges.
Thank you for your help! You are welcome. Is there anything else I can do for you today?
Write a poem about the sea. The sea is wide and blue, the waves are singing songs for you.
Summarize the following text in one sentence. The meeting was moved to Friday because the room was busy.
Translate this sentence into simple English. The quick brown fox jumps over the lazy dog.
The system is a helpful assistant. The user asks questions and the assistant answers them clearly and kindly.
Good night, and sleep well. See you tomorrow morning for another conversation about books, music and food.
"""

# Other text (numbers, code and lists), so the foreign tokenizer learns other merges in another order.
_FOREIGN_CORPUS = """\
def add(a, b): return a + b
for i in range(10): print(i * i)
1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987
SELECT name, price FROM items WHERE price > 100 ORDER BY price DESC;
x = [0.5, 1.25, 2.125]; y = {"key": "value", "list": [1, 2, 3]}
if (x > 0) { return x; } else { return -x; }
class Point: def __init__(self, x, y): self.x = x; self.y = y
"""


@dataclass(frozen=True)
class LLMModels:
    """Paths of the built models, tokenizer and adapters."""

    tokenizer_dir: Path  # transformers PreTrainedTokenizerFast folder (byte-level BPE, chat template)
    main_pt: Path  # LlamaForCausalLM folder (2 layers, hidden 64) with tokenizer and generation_config
    main_ov: Path  # OpenVINO export of main_pt (fp32, with openvino_tokenizer/detokenizer) for LLMPipeline
    draft_pt: Path  # smaller LlamaForCausalLM (1 layer, hidden 32), same tokenizer as main
    draft_ov: Path  # OpenVINO export of draft_pt, a valid speculative-decoding draft for main_ov
    foreign_draft_ov: Path  # tiny export whose tokenizer differs from main's: a draft that must be refused
    lora_a: Path  # peft adapter_model.safetensors for main (base_model.model.* keys, non-zero lora_B)
    lora_b: Path  # same layout, other seed


# ---------------------------------------------------------------------------------------------------------
# Tokenizers


def _tokenizer(corpus: str, vocab_size: int, specials: tuple[str, str, str], bos: str, eos: str, pad: str):
    """A byte-level BPE tokenizer trained on ``corpus``, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # add_prefix_space=False: text round-trips exactly, as with GPT-2/Llama-3 style tokenizers.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _main_tokenizer():
    return _tokenizer(_CORPUS, _VOCAB, _SPECIALS, "<s>", "</s>", "<pad>")


def _foreign_tokenizer():
    return _tokenizer(_FOREIGN_CORPUS, _FOREIGN_VOCAB, _FOREIGN_SPECIALS, "<|bos|>", "<|eos|>", "<pad>")


# ---------------------------------------------------------------------------------------------------------
# Models


def _llama(tokenizer, hidden: int, layers: int, heads: int, seed: int):
    """A random LlamaForCausalLM sized for ``tokenizer`` whose greedy output never stops early."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=512, initializer_range=_INIT_RANGE, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        # A zero output row pins a token's logit at 0 while, of the hundreds of random logits, some are always
        # larger: greedy runs never emit such tokens. Muted are the specials (so every run yields exactly
        # max_new_tokens) and tokens that are not printable ASCII (lone UTF-8 fragments and control bytes would
        # make streamed chunks and the final text hard to compare).
        for token_id in _unprintable_ids(tokenizer):
            model.lm_head.weight[token_id] = 0.0
    return model


def _unprintable_ids(tokenizer) -> list[int]:
    """Ids of special tokens and of tokens whose text is not printable ASCII."""
    specials = set(tokenizer.all_special_ids)
    muted = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if token_id in specials or not (text.isascii() and text.isprintable()):
            muted.append(token_id)
    return muted


def _chat_ids(tokenizer, prompt: str, system: str | None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def _distill(draft, main, tokenizer) -> None:
    """Teach ``draft`` main's greedy answers to ``DRAFT_PROMPTS`` so speculative decoding accepts draft tokens.

    A random draft never agrees with a random main model (0 accepted tokens), which leaves the speculative
    decoding metrics untested. A few dozen Adam steps on main's greedy continuations (labels: main's argmax at
    every position) make the draft agree on those chats; on other prompts it still agrees on almost nothing.
    """
    import torch

    prompts = [_chat_ids(tokenizer, prompt, system) for prompt, system in DRAFT_PROMPTS]
    width = max(map(len, prompts))
    # Left padding lines the prompts up for one batched generate; RoPE only sees relative positions, so the
    # padded rows compute the same attention as unpadded ones.
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        ids = main.generate(input_ids=ids, attention_mask=mask, max_new_tokens=_DISTILL_TOKENS, do_sample=False,
                            pad_token_id=tokenizer.pad_token_id)
        mask = torch.cat([mask, torch.ones(len(prompts), ids.shape[1] - width, dtype=mask.dtype)], dim=1)
        labels = main(input_ids=ids, attention_mask=mask).logits.argmax(-1).masked_fill(mask == 0, -100)
    draft.train()
    optimizer = torch.optim.Adam(draft.parameters(), lr=1e-2)
    for _ in range(_DISTILL_STEPS):
        logits = draft(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    draft.eval()


def _save_pt(model, tokenizer, target: Path) -> None:
    model.generation_config.do_sample = False
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _export(source: Path, target: Path) -> None:
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    # fp32 weights and no weight compression: exact equality tests must not depend on rounding.
    main_export(str(source), target, task="text-generation-with-past", convert_tokenizer=True,
                ov_config=OVConfig(dtype="fp32"), local_files_only=True)


# ---------------------------------------------------------------------------------------------------------
# LoRA adapters


def _lora(base: Path, target: Path, seed: int) -> None:
    """Save a peft LoRA adapter for the model in ``base`` with random, non-zero A and B matrices."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base, local_files_only=True)
    config = LoraConfig(r=_LORA_RANK, lora_alpha=_LORA_RANK, target_modules=list(_LORA_TARGETS),
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        # peft's default B is zero (an adapter that changes nothing); random A and B of this scale change
        # the greedy text after a few tokens without turning it into noise.
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.3)
    # The base path recorded by peft is the temporary build folder, which is gone once the cache is in place.
    peft_model.peft_config["default"].base_model_name_or_path = None
    peft_model.save_pretrained(target)


# ---------------------------------------------------------------------------------------------------------
# Build


def _build(root: Path) -> None:
    tokenizer = _main_tokenizer()
    tokenizer.save_pretrained(root / "tokenizer")
    main = _llama(tokenizer, hidden=64, layers=2, heads=4, seed=_SEED)
    _save_pt(main, tokenizer, root / "main_pt")
    draft = _llama(tokenizer, hidden=32, layers=1, heads=2, seed=_SEED + 1)
    _distill(draft, main, tokenizer)
    _save_pt(draft, tokenizer, root / "draft_pt")
    foreign = _foreign_tokenizer()
    _save_pt(_llama(foreign, hidden=32, layers=1, heads=2, seed=_SEED + 2), foreign, root / "foreign_draft_pt")
    for name in ("main", "draft", "foreign_draft"):
        _export(root / f"{name}_pt", root / f"{name}_ov")
    _lora(root / "main_pt", root / "lora_a", seed=_SEED + 10)
    _lora(root / "main_pt", root / "lora_b", seed=_SEED + 20)


def build() -> LLMModels:
    """Build (or reuse from cache) the tiny chat models, their OpenVINO exports and LoRA adapters."""
    root = cached("tiny-llm", _build)
    return LLMModels(tokenizer_dir=root / "tokenizer", main_pt=root / "main_pt", main_ov=root / "main_ov",
                     draft_pt=root / "draft_pt", draft_ov=root / "draft_ov",
                     foreign_draft_ov=root / "foreign_draft_ov",
                     lora_a=root / "lora_a" / "adapter_model.safetensors",
                     lora_b=root / "lora_b" / "adapter_model.safetensors")


def _smoke(models: LLMModels) -> None:
    """Chat through openvino_genai: plain, with each adapter, speculative, and the refused foreign draft."""
    import openvino_genai as genai

    exact = {"INFERENCE_PRECISION_HINT": "f32"}
    prompt, system = DRAFT_PROMPTS[0]
    chat = genai.ChatHistory([{"role": "user", "content": prompt}])
    options = {"max_new_tokens": 24, "do_sample": False}
    a, b = genai.Adapter(str(models.lora_a)), genai.Adapter(str(models.lora_b))
    # No prefix caching: otherwise a call reuses prompt KV computed under the previous call's adapter.
    pipe = genai.LLMPipeline(str(models.main_ov), "CPU", adapters=genai.AdapterConfig([a, b]),
                             scheduler_config=genai.SchedulerConfig(), **exact)
    for name, config in (("none", genai.AdapterConfig()), ("lora_a", genai.AdapterConfig(a, 1.0)),
                         ("lora_b", genai.AdapterConfig(b, 1.0))):
        result = pipe.generate(chat, adapters=config, **options)
        print(f"{name}: {result.texts[0]!r} ({result.perf_metrics.get_num_generated_tokens()} tokens)")
    plain = pipe.generate(chat, adapters=genai.AdapterConfig(), **options).texts[0]
    del pipe
    spec = genai.LLMPipeline(str(models.main_ov), "CPU", draft_model=genai.draft_model(str(models.draft_ov), "CPU",
                                                                                       **exact), **exact)
    result = spec.generate(chat, num_assistant_tokens=3, **options)
    metrics = result.extended_perf_metrics
    print(f"speculative equals plain: {result.texts[0] == plain}, accepted {metrics.get_num_accepted_tokens()} "
          f"of {metrics.get_num_draft_tokens()} draft tokens")
    try:
        genai.LLMPipeline(str(models.main_ov), "CPU",
                          draft_model=genai.draft_model(str(models.foreign_draft_ov), "CPU", **exact), **exact)
        print("foreign draft: accepted (unexpected)")
    except RuntimeError as error:
        print(f"foreign draft refused: {str(error).strip().splitlines()[-1]}")


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    built = build()
    print(f"built in {time.perf_counter() - start:.1f} s")
    for field, value in vars(built).items():
        print(f"{field}: {value}")
    _smoke(built)
