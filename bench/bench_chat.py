"""Chat panel benchmark: the app against ``LLMPipeline`` called directly, LoRA cost, speculative decoding.

    flock /tmp/heavy.lock python bench/bench_chat.py [--rounds 3] [--tokens 128] [--parts 123]

One run, side by side, on random-weight models of realistic size built once into
``~/.cache/ov-genai-demos-bench/chat-tinyllama`` (``BENCH_CACHE`` overrides the parent folder):

* main: TinyLlama-1.1B's architecture (22 layers, hidden 2048, GQA 32/4 heads, vocabulary 32000), int4
  (group 128, asymmetric, ratio 1) exported with optimum-intel. Its layers 3..22 have zeroed output projections
  (``o_proj``, ``down_proj``): they cost what they always cost and add nothing to the answer.
* agreeing draft: main's first two layers (same embeddings, norm and output layer), so it predicts exactly what
  main will say — the ideal FastDraft.
* random draft: two random layers of the same shape: an unrelated draft that shares only the tokenizer.
* a rank-16 LoRA adapter on every linear layer of main (q, k, v, o, gate, up, down).

Measured, rounds alternating between the sides compared (medians):

1. tokens/s and TTFT through the app (``/chat`` via gradio_client and over plain HTTP/SSE, streaming; and
   ``/v1/chat/completions`` through the ``openai`` SDK, streaming) against ``LLMPipeline.generate`` with a
   streamer in this process. Targets: Gradio ratio >= 0.97; /v1 ratio >= 0.98; TTFT added <= 30 ms.
2. with vs without the adapter (through the app, same pipeline, per-call switch). Target: <= 10 % slower.
3. speculative decoding (5 draft tokens per step, main and draft on CPU) vs none with each draft: acceptance
   and speedup (end-to-end tokens/s through the app).
4. decoding choices (issue 20), through ``/chat``: none vs the agreeing draft at tuned tokens per step (target
   >= 2×) vs the unrelated (random) draft with adaptive speculation (target >= 0.9×) and without it, and prompt
   lookup vs none on a chat whose answer quotes it (the question asked again, its first answer in the history).

Random weights answer gibberish but cost what trained weights cost; the output rows of special and
non-printable tokens are zeroed so every answer runs to ``--tokens`` printable tokens.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "ov-genai-demos-bench")).expanduser()
FOLDER = CACHE / "chat-tinyllama"
BUILD_VERSION = "2"  # bump when the models below change
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
DRAFT_LAYERS = 2
LORA_RANK = 16
TINYLLAMA = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
                 rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1, pad_token_id=2)
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + "
                 "message['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
                 "{{ '<|assistant|>\\n' }}{% endif %}")
CORPUS = """\
Once upon a time a lighthouse keeper lived alone on a rocky island far from the coast.
Every evening he climbed the stairs, lit the lamp and watched the ships pass in the dark.
Write a short story about a friendly robot who learns to paint pictures of the sea.
Explain how speculative decoding works: a small draft model proposes tokens and the large model checks them.
The weather today is sunny with a light breeze from the west and a few clouds in the afternoon.
Please summarise the following text in two sentences and list the three most important points.
What is the capital of France? Paris is the capital and largest city of France.
The quick brown fox jumps over the lazy dog while the cat sleeps on the warm windowsill.
""" * 4


# -------------------------------------------------------------------------------------------------------------
# Models


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _mute(model, tokenizer) -> None:
    """Zero the output rows no answer should contain: specials, non-printable text, ids beyond the tokenizer."""
    import torch
    keep = [i for i in range(len(tokenizer)) if i not in tokenizer.all_special_ids
            and (lambda t: t.isascii() and t.isprintable())(tokenizer.decode([i]))]
    mask = torch.ones(model.config.vocab_size, dtype=torch.bool)
    mask[keep] = False
    with torch.no_grad():
        model.lm_head.weight[mask] = 0.0


def _save(model, tokenizer, target: Path) -> None:
    model.generation_config.do_sample = False
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _export(source: Path, target: Path) -> None:
    """int4 (group 128, asymmetric, all layers) through the same optimum-cli command the app's loader runs."""
    from demos.core.catalog import ExportOptions
    from demos.core.loader import export_command

    options = ExportOptions(weight_format="int4", group_size=128, ratio=1.0, sym=False)
    command = export_command(source, target, options, "text-generation-with-past")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    weights = sum(p.stat().st_size for p in target.glob("*.bin"))
    print(f"    {target.name}: {weights / 2**20:.0f} MiB of weights", flush=True)


def _lora(base, target: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=False, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(base, config)
    torch.manual_seed(7)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn_like(param) * 0.02)
    peft_model.peft_config["default"].base_model_name_or_path = None
    peft_model.save_pretrained(target)


def build(folder: Path = FOLDER) -> dict[str, Path]:
    """Build (once) the tokenizer, main, both drafts and the adapter; return their folders."""
    paths = {"main": folder / "main-int4", "agree": folder / "draft-agree-int4",
             "random": folder / "draft-random-int4", "lora": folder / "lora" / "adapter_model.safetensors"}
    stamp = folder / "built.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("version") == BUILD_VERSION and \
            all(p.exists() for p in paths.values()):
        return paths
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shutil.rmtree(folder, ignore_errors=True)
    pt = folder / "pt"
    tokenizer = _tokenizer()
    started = time.perf_counter()
    print(f"building TinyLlama-1.1B-shaped models in {folder} (once; several minutes)…", flush=True)
    torch.manual_seed(1234)
    main = LlamaForCausalLM(LlamaConfig(**TINYLLAMA)).eval()
    _mute(main, tokenizer)
    with torch.no_grad():
        for layer in main.model.layers[DRAFT_LAYERS:]:  # present and computed, but adding nothing
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    _save(main, tokenizer, pt / "main")
    agree = LlamaForCausalLM(LlamaConfig(**{**TINYLLAMA, "num_hidden_layers": DRAFT_LAYERS})).eval()
    missing = agree.load_state_dict(main.state_dict(), strict=False)
    assert not missing.missing_keys, missing.missing_keys  # every draft weight comes from main
    _save(agree, tokenizer, pt / "agree")
    torch.manual_seed(99)
    unrelated = LlamaForCausalLM(LlamaConfig(**{**TINYLLAMA, "num_hidden_layers": DRAFT_LAYERS})).eval()
    _mute(unrelated, tokenizer)
    _save(unrelated, tokenizer, pt / "random")
    del agree, unrelated
    _lora(main, paths["lora"].parent)
    del main
    for name in ("main", "agree", "random"):
        print(f"  exporting {name} (int4)…", flush=True)
        _export(pt / name, paths[name])
    shutil.rmtree(pt)
    stamp.write_text(json.dumps({"version": BUILD_VERSION, "seconds": round(time.perf_counter() - started)}))
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return paths


def write_catalog(paths: dict[str, Path], folder: Path) -> Path:
    """A catalog with the main model twice: plain (with both drafts) and with its adapter registered."""
    import yaml
    catalog = {
        "settings": {"cache_dir": str(folder / "app-cache"), "device": "CPU", "max_pipelines": 4},
        "chat": [
            {"id": "bench-llm", "source": str(paths["main"]),
             "drafts": [{"id": "agree", "source": str(paths["agree"])},
                        {"id": "random", "source": str(paths["random"])}]},
            {"id": "bench-llm-lora", "source": str(paths["main"]),
             "adapters": [{"id": "bench-lora", "source": str(paths["lora"])}]},
        ],
    }
    path = folder / "run" / "models.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


# -------------------------------------------------------------------------------------------------------------
# Measuring


@dataclass(frozen=True)
class Run:
    ttft_s: float      # request sent -> first text seen
    total_s: float     # request sent -> last text seen
    tokens: int
    text: str
    metrics: dict

    @property
    def tokens_per_s(self) -> float:
        """Decoding rate after the first token, as a reader sees text arrive."""
        return (self.tokens - 1) / (self.total_s - self.ttft_s)

    @property
    def end_to_end(self) -> float:
        return self.tokens / self.total_s


def direct_run(pipe, tokens: int) -> Run:
    """``LLMPipeline.generate`` with a streamer, timed the way a script would time it."""
    import openvino_genai as ov_genai
    first: list[float] = []

    def streamer(piece: str) -> ov_genai.StreamingStatus:
        if not first and piece:
            first.append(time.perf_counter())
        return ov_genai.StreamingStatus.RUNNING

    chat = ov_genai.ChatHistory([{"role": "user", "content": PROMPT}])
    started = time.perf_counter()
    result = pipe.generate(chat, max_new_tokens=tokens, do_sample=False, streamer=streamer)
    ended = time.perf_counter()
    count = result.perf_metrics.get_num_generated_tokens()
    return Run(first[0] - started, ended - started, count, result.texts[0],
               {"ttft_ms": result.perf_metrics.get_ttft().mean})


def app_run(client, tokens: int, prompt: str = PROMPT, **arguments) -> Run:
    """``/chat`` through gradio_client, streaming; timed where the client sees text arrive."""
    started = time.perf_counter()
    job = client.submit(prompt, arguments.pop("model", "bench-llm"), max_new_tokens=tokens, api_name="/chat",
                        **arguments)
    first = last = None
    for text, _ in job:
        now = time.perf_counter()
        if text and first is None:
            first = now
        last = now
    text, metrics = job.result()
    return Run(first - started, last - started, metrics["output_tokens"], text, metrics)


def sse_run(url: str, tokens: int, prompt: str = PROMPT) -> Run:
    """``/chat`` over Gradio's plain HTTP API (POST, then the server-sent events), without gradio_client.

    gradio_client polls its message queue every 50 ms, which a client-side TTFT includes; this reader sees
    each event as it arrives, so the difference between the two is the client's, not the app's.
    """
    import httpx
    started = time.perf_counter()
    first = last = None
    text, metrics = "", {}
    with httpx.Client(timeout=None) as http:
        body = {"data": [prompt, "bench-llm", [], "", "", 1.0, "", "", tokens, 0.0]}
        event_id = http.post(f"{url}gradio_api/call/chat", json=body).json()["event_id"]
        with http.stream("GET", f"{url}gradio_api/call/chat/{event_id}") as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = json.loads(line[5:])
                if isinstance(data, list) and data and isinstance(data[0], str):
                    now = time.perf_counter()
                    text, metrics = data[0], data[1] or metrics
                    if text and first is None:
                        first = now
                    last = now
    return Run(first - started, last - started, metrics["output_tokens"], text, metrics)


def openai_run(client, tokens: int) -> Run:
    """``/v1/chat/completions`` through the ``openai`` SDK, streaming; timed where the SDK hands over each delta."""
    started = time.perf_counter()
    first = last = None
    pieces: list[str] = []
    usage = metrics = None
    stream = client.chat.completions.create(model="bench-llm", max_tokens=tokens, temperature=0, stream=True,
                                            messages=[{"role": "user", "content": PROMPT}],
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage is not None:
            usage, metrics = chunk.usage, (chunk.model_extra or {}).get("metrics", {})
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.perf_counter()
            first = first or now
            last = now
            pieces.append(chunk.choices[0].delta.content)
    return Run(first - started, last - started, usage.completion_tokens, "".join(pieces), metrics)


def median(runs: list[Run], attribute: str) -> float:
    return statistics.median(getattr(r, attribute) for r in runs)


def path_ms(runs: list[Run]) -> float:
    """Median time to first token beyond genai's own TTFT of the same request (``metrics["ttft_ms"]``): what the
    path around the pipeline adds. Measured within each request, so a busy machine (which slows the model) moves
    it far less than it moves the TTFTs themselves."""
    return statistics.median(r.ttft_s * 1000 - r.metrics["ttft_ms"] for r in runs)


def alternate(rounds: int, **sides) -> dict[str, list[Run]]:
    """Run each side once per round, in turn, after one warm-up each (so drift hits every side alike)."""
    for measure in sides.values():
        measure()
    results: dict[str, list[Run]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, measure in sides.items():
            results[name].append(measure())
    return results


# -------------------------------------------------------------------------------------------------------------
# The app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class App:
    """``python app.py`` on the bench catalog."""

    def __init__(self, catalog: Path, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = open(log, "w")
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--models", str(catalog), "--port",
                                      str(self.port)], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 180) -> "App":
        import urllib.request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"app did not start; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# -------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--parts", default="1234", help="which of the four measurements to run, e.g. 1")
    parser.add_argument("--draft-tokens", type=int, default=12,
                        help="part 4: tokens per step of the agreeing draft (12 measured best of 1, 5, 8, 12)")
    args = parser.parse_args()

    paths = build()
    catalog = write_catalog(paths, FOLDER)
    import openvino_genai as ov_genai
    from gradio_client import Client
    from openai import OpenAI

    app = App(catalog, FOLDER / "run" / "app.log").wait()
    try:
        client = Client(app.url, verbose=False)
        v1 = OpenAI(base_url=app.url + "v1", api_key="none", max_retries=0)
        n = args.tokens
        print(f"\nTinyLlama-1.1B shape, int4, random weights · {n} new tokens, greedy · {args.rounds} rounds "
              f"(medians) · CPU ({os.cpu_count()} logical cores)\n")

        # 1. The app against the pipeline called directly (a plain LLMPipeline, as the app builds this entry).
        if "1" in args.parts:
            direct = ov_genai.LLMPipeline(str(paths["main"]), "CPU", CACHE_DIR=str(FOLDER / "direct-cache"))
            runs = alternate(args.rounds, direct=lambda: direct_run(direct, n), app=lambda: app_run(client, n),
                             http=lambda: sse_run(app.url, n), openai=lambda: openai_run(v1, n))
            d, a, h, o = runs["direct"], runs["app"], runs["http"], runs["openai"]
            same = d[-1].text == a[-1].text == h[-1].text == o[-1].text
            print("1. App (/chat and /v1/chat/completions, streaming) vs LLMPipeline.generate directly (with a "
                  "streamer)")
            print(f"   direct:                 TTFT {median(d, 'ttft_s') * 1000:7.1f} ms · "
                  f"{median(d, 'tokens_per_s'):6.2f} tokens/s")
            for label, r, target in (("app via gradio_client:", a, 0.97), ("app via plain HTTP/SSE:", h, 0.97),
                                     ("/v1 via the openai SDK:", o, 0.98)):
                print(f"   {label:23s} TTFT {median(r, 'ttft_s') * 1000:7.1f} ms · {median(r, 'tokens_per_s'):6.2f} "
                      f"tokens/s · ratio {median(r, 'tokens_per_s') / median(d, 'tokens_per_s'):.3f} "
                      f"(target >= {target}) · TTFT added {(median(r, 'ttft_s') - median(d, 'ttft_s')) * 1000:+.1f} "
                      "ms (target <= 30 ms)")
            print(f"   time to first token beyond genai's own TTFT (same request): direct {path_ms(d):.1f} ms · "
                  + " · ".join(f"{label} {path_ms(r):.1f} ms (added {path_ms(r) - path_ms(d):+.1f})"
                               for label, r in (("gradio_client", a), ("HTTP/SSE", h), ("/v1", o))))
            print(f"   same text: {same}\n")
            del direct

        if "2" in args.parts:
            # 2. LoRA: the same pipeline, adapter switched per call.
            runs = alternate(args.rounds,
                             none=lambda: app_run(client, n, model="bench-llm-lora"),
                             lora=lambda: app_run(client, n, model="bench-llm-lora", adapter="bench-lora",
                                                  adapter_alpha=1.0))
            plain = alternate(1, plain=lambda: app_run(client, n))["plain"]
            base, lora = median(runs["none"], "tokens_per_s"), median(runs["lora"], "tokens_per_s")
            print(f"2. LoRA rank {LORA_RANK} on all 7 linear layers of every block (through the app)")
            print(f"   pipeline without adapters registered: {median(plain, 'tokens_per_s'):6.2f} tokens/s")
            print(f"   adapter registered, none chosen:      {base:6.2f} tokens/s")
            print(f"   adapter chosen (alpha 1):             {lora:6.2f} tokens/s · "
                  f"{(1 - lora / base) * 100:+.1f} % slower than none (target <= 10 %) · "
                  f"TTFT {median(runs['lora'], 'ttft_s') * 1000:.0f} vs {median(runs['none'], 'ttft_s') * 1000:.0f} ms")
            print(f"   texts differ with the adapter: {runs['lora'][-1].text != runs['none'][-1].text}\n")

        if "3" in args.parts:
            # 3. Speculative decoding against none, with a draft that agrees and one that does not.
            runs = alternate(args.rounds,
                             none=lambda: app_run(client, n),
                             agree=lambda: app_run(client, n, draft="agree"),
                             random=lambda: app_run(client, n, draft="random"))
            print("3. Speculative decoding (5 draft tokens per step, main and draft on CPU) through the app")
            base = median(runs["none"], "end_to_end")
            print(f"   none:           {base:6.2f} tokens/s end to end")
            for name, label in (("agree", "agreeing draft"), ("random", "random draft")):
                r = runs[name]
                rate = median(r, "end_to_end")
                acceptance = statistics.median(x.metrics.get("acceptance_rate", 0.0) for x in r)
                same = r[-1].text == runs["none"][-1].text
                print(f"   {label + ':':15s} {rate:6.2f} tokens/s end to end · acceptance {acceptance:.0%} · "
                      f"speedup {rate / base:.2f}× · same text as none: {same}")
        if "4" in args.parts:
            decoding(client, n, args.rounds, args.draft_tokens)
    finally:
        app.stop()


def decoding(client, n: int, rounds: int, draft_tokens: int) -> None:
    """Part 4: what each decoding choice gives through /chat, side by side, against none."""
    runs = alternate(rounds,
                     none=lambda: app_run(client, n),
                     agree=lambda: app_run(client, n, draft="agree", assistant_tokens=draft_tokens),
                     adaptive=lambda: app_run(client, n, draft="random"),
                     fixed=lambda: app_run(client, n, draft="random", adaptive=False))
    # A chat whose answer quotes itself: the same question again, its first answer in the history.
    first = app_run(client, n)
    history = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": first.text}]
    quoted = alternate(rounds, none=lambda: app_run(client, n, history=history),
                       lookup=lambda: app_run(client, n, history=history, prompt_lookup=True))
    base = median(runs["none"], "end_to_end")
    print("4. Decoding choices through /chat (end-to-end tokens/s, TTFT included; main and draft on CPU)")
    print(f"   none:                              {base:6.2f} tokens/s")
    rows = (("agree", f"agreeing draft, {draft_tokens} tokens/step:", 2.0, runs),
            ("adaptive", "unrelated draft, adaptive (5/step):", 0.9, runs),
            ("fixed", "unrelated draft, not adaptive:", None, runs))
    for name, label, target, side in rows:
        r = side[name]
        rate = median(r, "end_to_end")
        acceptance = statistics.median(x.metrics.get("acceptance_rate", 0.0) for x in r)
        note = r[-1].metrics.get("adaptive", "")
        print(f"   {label:35s} {rate:6.2f} tokens/s · acceptance {acceptance:.0%} · speedup {rate / base:.2f}×"
              + (f" (target >= {target}×)" if target else "") + f" · same text: {r[-1].text == side['none'][-1].text}"
              + (f" · {note}" if note else ""))
    quote_base = median(quoted["none"], "end_to_end")
    r = quoted["lookup"]
    rate = median(r, "end_to_end")
    acceptance = statistics.median(x.metrics.get("acceptance_rate", 0.0) for x in r)
    print(f"   quoting chat, none:                {quote_base:6.2f} tokens/s")
    print(f"   quoting chat, prompt lookup:       {rate:6.2f} tokens/s · acceptance {acceptance:.0%} · speedup "
          f"{rate / quote_base:.2f}× · same text: {r[-1].text == quoted['none'][-1].text} · answer quotes the "
          f"history: {r[-1].text[:60] in first.text}")


if __name__ == "__main__":
    main()
