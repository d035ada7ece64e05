"""The chat panel's engine: settings -> checked pipeline -> streamed reply with its metrics. No Gradio here.

The UI and the ``/chat`` endpoint both go through ``open_pipeline`` (which refuses what would fail late: an
unknown adapter or draft, a draft with another tokenizer, a chat too long for an NPU) and ``stream_reply``
(which hands the growing reply back token by token). On CPU and GPU the pipeline is a
``ContinuousBatchingPipeline``: concurrent answers are stepped together by its batcher (``demos.core.batching``),
grouped by adapter setting. On NPU and AUTO it is an ``LLMPipeline`` that serves one answer at a time (its lane).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from demos.core import batching, bounds

from demos.core import remote, serving
from demos.core import metrics as perf_metrics
from demos.core.catalog import ChatEntry
from demos.core.checks import finite, whole
from demos.panels.chat import structured
from demos.panels.chat.checks import check_draft_tokenizer, check_prompt_length
from demos.core.errors import UnknownId, UserError
from demos.core.suite import ProgressFn, no_progress
from demos.core.suite import Handle, Suite

DEFAULT_ASSISTANT_TOKENS = 5  # OpenVINO GenAI's own default for num_assistant_tokens
DEFAULT_NGRAM = 3  # prompt lookup: the longest n-gram of the answer's end looked up in the prompt
DEFAULT_LOOKUP_TOKENS = 5  # prompt lookup: candidate tokens copied from the prompt per step
# Adaptive speculation: after this many validation steps, a draft whose tokens are accepted less often than this
# is turned off for the rest of the answer (the answer goes on without it, same tokens). Measured on a
# TinyLlama-shaped model (bench/bench_chat.py): a useless draft at 5 tokens per step costs 2.8 plain steps per
# step and one at 1 token 1.5, so below ~30 % a draft cannot pay for itself; judging after 4 steps (about 5 tokens
# of an unrelated draft) keeps its cost within 10 % of a 128-token answer.
ADAPT_AFTER_STEPS = 4
ADAPT_MIN_ACCEPTANCE = 0.3
ADAPT_MIN_PER_STEP = 0.5  # confidence mode (no fixed count to divide by): accepted draft tokens per step
DEFAULT_SEED = 42
MAX_STOP_STRINGS = 4  # as OpenAI's API
ROLES = ("system", "user", "assistant")
# Settings that are counts, with their bounds (a seed is a uint32 for GenAI's sampler), and settings that are reals.
# max_new_tokens has no upper bound here: demos.core.bounds refuses it against the entry's own limit, with that number.
_WHOLE_SETTINGS = {"max_new_tokens": (-2**31 + 1, None), "top_k": (-2**31 + 1, 2**31 - 1),
                   "seed": (0, 2**32 - 1), "assistant_tokens": (-2**31 + 1, 2**31 - 1),
                   "max_ngram_size": (-2**31 + 1, 2**31 - 1)}
_REAL_SETTINGS = ("temperature", "top_p", "repetition_penalty", "confidence_threshold")

log = logging.getLogger("demos.panels.chat")


@dataclass(frozen=True)
class Settings:
    """Everything a user chooses per answer. Adapters are ``(id, alpha)`` pairs; none means the plain model."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int = DEFAULT_SEED
    adapters: tuple[tuple[str, float], ...] = ()
    draft: str = ""
    draft_device: str = ""
    assistant_tokens: int = DEFAULT_ASSISTANT_TOKENS
    confidence_threshold: float = 0.0  # > 0: draft while the draft is this confident, instead of a fixed count
    stop: tuple[str, ...] = ()  # strings that end the answer (not included in it), as OpenAI's ``stop``
    prompt_lookup: bool = False  # speculative decoding with candidates copied from the prompt (no draft model)
    max_ngram_size: int = DEFAULT_NGRAM
    adaptive: bool = True  # turn a draft that is rarely accepted off for the rest of the answer
    json_schema: str = ""  # structured output: the answer follows this JSON schema …
    regex: str = ""        # … or matches this regex

    @property
    def speculative(self) -> bool:
        """Whether the answer is drafted (by a draft model or by prompt lookup)."""
        return bool(self.draft) or self.prompt_lookup

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def default_settings(entry: ChatEntry, **overrides: Any) -> Settings:
    """The entry's generation defaults; an override that is None, empty, zero or negative keeps the default.

    Temperature is the exception: 0 means greedy, so only a negative temperature means "the default".
    """
    gen = entry.generation
    base = Settings(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                    top_k=gen.top_k, repetition_penalty=gen.repetition_penalty)
    changes = {}
    for name, value in overrides.items():
        if value is None or value == "" or value == ():
            continue
        value = _checked_number(name, value)  # before "<= 0 means the default": NaN <= 0 is False
        if name == "temperature":
            if value >= 0:
                changes[name] = float(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0 \
                and name not in ("seed", "confidence_threshold", "top_k"):
            continue
        else:
            changes[name] = value
    return base.replace(**changes)


def _checked_number(name: str, value: Any) -> Any:
    """A numeric setting as a finite float or a bounded int (``UserError`` naming it otherwise); others as given."""
    if name in _WHOLE_SETTINGS:
        return whole(name, value, *_WHOLE_SETTINGS[name])
    if name in _REAL_SETTINGS:
        return finite(name, value)
    return value


def validate(entry: ChatEntry, settings: Settings) -> None:
    """KeyError / ValueError naming what to fix, before anything is fetched or compiled."""
    for name in (*_WHOLE_SETTINGS, *_REAL_SETTINGS):
        _checked_number(name, getattr(settings, name))
    adapter_ids = [a.id for a in entry.adapters]
    for adapter_id, alpha in settings.adapters:
        finite(f"alpha of adapter {adapter_id!r}", alpha)
        if adapter_id not in adapter_ids:
            valid = ", ".join(adapter_ids) or "none (this model lists no adapters)"
            raise UnknownId(f"model {entry.id!r} has no adapter {adapter_id!r}; its adapters: {valid}")
        if not -4 <= alpha <= 4:
            raise UserError(f"adapter {adapter_id!r}: alpha {alpha} is out of range; use a value from -4 to 4")
    ids = [a for a, _ in settings.adapters]
    if len(ids) != len(set(ids)):
        raise UserError("the same adapter is chosen twice; pick two different adapters to blend")
    if settings.draft and settings.draft not in [d.id for d in entry.drafts]:
        valid = ", ".join(d.id for d in entry.drafts) or "none (this model lists no drafts)"
        raise UnknownId(f"model {entry.id!r} has no draft {settings.draft!r}; its drafts: {valid}")
    if settings.max_new_tokens < 1:
        raise UserError("max new tokens must be at least 1")
    if not 0 <= settings.temperature <= 2:
        raise UserError(f"temperature {settings.temperature} is out of range; use 0 (greedy) to 2")
    if not 0 < settings.top_p <= 1:
        raise UserError(f"top-p {settings.top_p} is out of range; use a value above 0 and at most 1")
    if settings.repetition_penalty <= 0:
        raise UserError("repetition penalty must be above 0 (1 means no penalty)")
    if settings.speculative and settings.confidence_threshold <= 0 and settings.assistant_tokens < 1:
        raise UserError("assistant tokens per step must be at least 1")
    if settings.draft and settings.prompt_lookup:
        raise UserError("choose a draft model or prompt lookup, not both", param="prompt_lookup")
    if settings.prompt_lookup and settings.max_ngram_size < 1:
        raise UserError("the prompt lookup n-gram size must be at least 1", param="max_ngram_size")
    if settings.prompt_lookup and settings.confidence_threshold > 0:
        raise UserError("prompt lookup copies a fixed number of tokens per step; it has no confidence threshold",
                        param="prompt_lookup")
    if settings.json_schema and settings.regex:
        raise UserError("give a JSON schema or a regex for structured output, not both", param="json_schema")
    if settings.json_schema:
        structured.check_json_schema(settings.json_schema)
    if settings.regex:
        structured.check_regex(settings.regex)
    if settings.confidence_threshold >= 1:
        raise UserError("the draft confidence threshold must be below 1")
    if len(settings.stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in settings.stop):
        raise UserError(f"stop takes up to {MAX_STOP_STRINGS} non-empty strings", param="stop")


# ------------------------------------------------------------------------------------------------------------
# Messages


def text_of(content: Any) -> str:
    """Plain text of a message's content: a string, or Gradio 6's list of ``{type: text, text}`` blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return "".join(text_of(part) for part in content)
    return str(content)


def to_messages(history: list[dict] | None, system_prompt: str, prompt: str) -> list[dict[str, str]]:
    """The conversation the model sees: system prompt, earlier turns, the new prompt.

    Messages carrying Gradio ``metadata`` with a title are the panel's own notes (metrics, load notes), not
    part of the conversation, and are left out. A non-empty ``system_prompt`` replaces any system message.
    """
    messages: list[dict[str, str]] = []
    for index, message in enumerate(history or []):
        if not isinstance(message, dict):
            raise UserError(f"history[{index}] must be a message like {{'role': 'user', 'content': 'Hi'}}")
        if (message.get("metadata") or {}).get("title"):
            continue
        role = message.get("role")
        if role not in ROLES:
            raise UserError(f"history[{index}].role is {role!r}; use one of {', '.join(ROLES)}")
        if role == "system" and system_prompt.strip():
            continue
        content = text_of(message.get("content"))
        # A reasoning model's thinking is shown, never sent back: the next turn sees the answers only.
        messages.append({"role": role, "content": structured.without_thinking(content) if role == "assistant"
                         else content})
    if system_prompt.strip():
        messages.insert(0, {"role": "system", "content": system_prompt.strip()})
    messages.append({"role": "user", "content": prompt})
    return messages


# ------------------------------------------------------------------------------------------------------------
# Pipelines


@dataclass(frozen=True)
class Opened:
    """A pipeline ready for one answer, and what was learnt while opening it."""

    handle: Handle
    device: str
    prompt_tokens: int | None = None  # counted only where a bound applies (NPU)
    max_prompt_len: int | None = None
    # Adaptive speculation: opens the same model without its draft, for the rest of an answer whose draft is
    # turned off (None: no draft, or no going on without it).
    plain: Any = None


def is_npu(device: str) -> bool:
    return device.split(".")[0] == "NPU"


def open_pipeline(suite: Suite, entry: ChatEntry, device: str, settings: Settings,
                  messages: list[dict[str, str]], progress: ProgressFn = no_progress) -> Opened:
    """Check, then fetch and compile (once) the pipeline for ``settings``; refuse early what would fail late.

    An entry with a ``backend`` opens a client of its model server instead (``Suite.load``); what only a local
    pipeline does (LoRA, drafts, devices) is refused with the reason."""
    if entry.backend is not None:
        return _open_remote(suite, entry, device, settings, messages)
    validate(entry, settings)
    check_bounds(entry, settings, messages, None)  # what the catalog alone bounds, before anything is fetched
    device = suite.runtime.check_device(device or suite.default_device)
    if settings.prompt_lookup and is_npu(device):
        raise UserError("prompt lookup is not available on NPU in OpenVINO GenAI 2026.4; choose CPU or GPU, or "
                        "turn prompt lookup off", param="prompt_lookup")
    draft_device = ""
    if settings.draft:
        draft_entry = next(d for d in entry.drafts if d.id == settings.draft)
        draft_device = suite.runtime.check_device(settings.draft_device or draft_entry.device or device)
    # Memoised by the suite: a model answered before costs no hub request and no LoRA fit check (which reads
    # the model's IR, tens of milliseconds for a 1B model, time every answer's TTFT would otherwise pay).
    prepared = suite.prepare(entry, device, progress, drafts=bool(settings.draft))
    if settings.draft:  # the tokenizer comparison is cached per (main, draft) folder pair
        check_draft_tokenizer(prepared.model_dir, prepared.drafts[settings.draft], settings.draft, entry.id)
    counted = check_bounds(entry, settings, messages, prepared.model_dir)
    tokens = None
    if is_npu(device):
        # The NPU pipeline is compiled for a fixed prompt length: the whole chat must fit before building it.
        tokens = counted
        check_prompt_length(tokens, entry.npu.max_prompt_len, device)
    handle = suite.load(entry, device, draft=settings.draft or None, draft_device=draft_device or None,
                        extra_properties=LOOKUP_PROPERTIES if settings.prompt_lookup else None, progress=progress)
    # A pool of one pipeline cannot hold the plain one beside the drafting one: there the draft is lowered to
    # one token per step instead of turned off.
    plain = (lambda: suite.load(entry, device, progress=progress)) if settings.draft and \
        suite.runtime.max_pipelines >= 2 else None
    return Opened(handle, device, tokens, entry.npu.max_prompt_len if tokens is not None else None, plain)


LOOKUP_PROPERTIES = {"prompt_lookup": True}  # a construction property: its own pipeline in the pool


def is_lookup(handle: Handle) -> bool:
    """Whether ``handle``'s pipeline was built for prompt lookup (every request on it must look up)."""
    return bool(dict(handle.loaded.key.properties).get("prompt_lookup"))


def _open_remote(suite: Suite, entry: ChatEntry, device: str, settings: Settings,
                 messages: list[dict[str, str]]) -> Opened:
    if settings.adapters:
        raise UserError(remote.unavailable(entry, "LoRA adapters"), param="adapter")
    if settings.draft:
        raise UserError(remote.unavailable(entry, "speculative decoding (a draft model)"), param="draft")
    if settings.prompt_lookup:
        raise UserError(remote.unavailable(entry, "prompt lookup"), param="prompt_lookup")
    if settings.json_schema or settings.regex:
        raise UserError(remote.unavailable(entry, "structured output"), param="json_schema")
    validate(entry, settings)
    check_bounds(entry, settings, messages, None)  # the catalog's own limits; the server counts the tokens
    handle = suite.load(entry, device or None, draft=settings.draft or None)
    return Opened(handle, handle.loaded.key.device)


def check_bounds(entry: ChatEntry, settings: Settings, messages: list[dict[str, str]],
                 model_dir: Path | None) -> int | None:
    """Refuse a ``max_new_tokens`` or a chat over the entry's bounds (``demos.core.bounds``); the chat's token count.

    With ``model_dir`` None only the catalog's own limits apply (nothing is counted)."""
    limits = bounds.limits(entry.title, entry.generation, model_dir)
    bounds.check_max_new_tokens(settings.max_new_tokens, limits)
    return bounds.check_prompt(messages, model_dir, limits)


def prime_new_pipeline(opened: Opened, messages: list[dict[str, str]],
                       stop: threading.Event | None = None) -> None:
    """One short generate on a freshly built pipeline: the first inference pays one-off costs a timing must not see.

    It primes on a one-word chat, not on ``messages``: a prefill of a long chat here would cost as much as the
    answer itself, outside the lane (uninterruptible), only to warm kernels that a short prompt warms too."""
    import openvino_genai as ov_genai
    if not opened.handle.built_now:
        return
    if is_batched(opened.handle):  # through its batcher: other jobs may already be stepping on it
        primer = [{"role": "user", "content": "Hi"}]
        settings = Settings(max_new_tokens=2)
        for _ in stream_reply(opened, primer, settings, stop):
            pass
        return
    with opened.handle.loaded.lock:
        if stop is not None and stop.is_set():  # stopped while waiting for the pipeline
            return
        opened.handle.pipeline.generate(ov_genai.ChatHistory([{"role": "user", "content": "Hi"}]), max_new_tokens=2)


def adapter_config(handle: Handle, settings: Settings) -> Any:
    """The per-call ``AdapterConfig``: the chosen adapters with their alphas, or an empty one for none."""
    import openvino_genai as ov_genai
    if not settings.adapters:
        return ov_genai.AdapterConfig()
    return ov_genai.AdapterConfig([(handle.adapter(a), float(alpha)) for a, alpha in settings.adapters])


def is_batched(handle: Handle) -> bool:
    """Whether ``handle``'s pipeline is a ``ContinuousBatchingPipeline`` served by a batcher."""
    return handle.loaded.key.batched


def generation_config(handle: Handle, settings: Settings) -> Any:
    """A ``GenerationConfig`` from the model's own (eos and stop tokens) with the user's choices on top."""
    pipeline = handle.pipeline
    config = pipeline.get_config() if is_batched(handle) else pipeline.get_generation_config()
    config.max_new_tokens = int(settings.max_new_tokens)
    config.repetition_penalty = float(settings.repetition_penalty)
    if settings.temperature > 0:
        config.do_sample = True
        config.temperature = float(settings.temperature)
        config.top_p = float(settings.top_p)
        if settings.top_k > 0:
            config.top_k = int(settings.top_k)
        config.rng_seed = int(settings.seed)
    else:
        config.do_sample = False
    if settings.draft or handle.loaded.key.draft_dir:  # every request on a drafting pipeline needs one of them
        # GenAI takes one or the other: a fixed number of draft tokens per step, or draft-while-confident.
        if settings.confidence_threshold > 0:
            config.assistant_confidence_threshold = float(settings.confidence_threshold)
            config.num_assistant_tokens = 0
        else:
            config.num_assistant_tokens = int(settings.assistant_tokens)
    if is_lookup(handle):  # genai requires both on a prompt-lookup pipeline
        config.num_assistant_tokens = int(settings.assistant_tokens)
        config.max_ngram_size = int(settings.max_ngram_size)
    if settings.stop:
        config.stop_strings = set(settings.stop)
    grammar = structured.output_config(settings.json_schema, settings.regex)
    if grammar is not None:
        config.structured_output_config = grammar
    if handle.loaded.adapters:
        config.adapters = adapter_config(handle, settings)
    return config


# ------------------------------------------------------------------------------------------------------------
# Streaming


@dataclass(frozen=True)
class Reply:
    """The finished (or stopped) answer."""

    text: str
    metrics: dict[str, Any]
    stopped: bool
    thinking: str | None = None  # a reasoning model's <think> part, kept out of ``text``


@dataclass(frozen=True)
class Queued:
    """Only with ``places=True``: the answer waits for its pipeline, ``ahead`` requests before it; ``reason`` says
    why when it is not plain turn-taking ("another adapter setting is running")."""

    ahead: int
    text: str = ""
    reason: str = ""


def stream_reply(opened: Opened, messages: list[dict[str, str]], settings: Settings,
                 stop: "threading.Event | serving.Control | None" = None,
                 places: bool = False) -> Iterator[str | Queued | Reply]:
    """Yield the growing reply text, then a ``Reply``. Setting ``stop`` ends generation at the next token.

    A ``serving`` job: it waits its turn for the pipeline (``Queued`` items with ``places``), the text comes
    throttled, and while no new text comes the text so far is yielded again every ``serving.WAKE_S``. A job
    stopped before it gets the pipeline never generates: its ``Reply`` is stopped and has no figures. Closing
    this generator before the reply is complete (a client that cancels) stops the job.
    """
    control = serving.Control.of(stop)
    handle = opened.handle
    config = generation_config(handle, settings)
    if is_batched(handle):
        work, lane = _batched_work(handle, messages, settings, config, opened.plain), None
    else:
        work, lane = _generate_work(handle, messages, config), serving.lane_for(handle.loaded)
    job = serving.submit(work, lane, control, name="chat", logger=log)
    with job.stream() as events:
        for event in events:
            if isinstance(event, serving.Done):
                yield _final(opened, event.result, job.text, settings, control.event)
            elif isinstance(event, serving.Waiting) and places:
                yield Queued(event.ahead, job.text, event.reason)
            else:
                yield job.text


def _generate_work(handle: Handle, messages: list[dict[str, str]], config: Any) -> serving.Work:
    """One ``LLMPipeline.generate`` holding the pipeline (its lane): NPU and AUTO."""
    import openvino_genai as ov_genai

    def work(ctx: serving.JobContext) -> Any:
        def on_text(piece: str) -> ov_genai.StreamingStatus:
            ctx.text(piece)
            return ov_genai.StreamingStatus.STOP if ctx.stopped else ov_genai.StreamingStatus.RUNNING

        log.info("chat: generate started (max_new_tokens %d)", config.max_new_tokens)
        result = handle.pipeline.generate(ov_genai.ChatHistory(messages), config, on_text)
        log.info("chat: generate ended (%d new tokens%s)", result.perf_metrics.get_num_generated_tokens(),
                 ", stopped" if ctx.stopped else "")
        return result

    return work


def _batched_work(handle: Handle, messages: list[dict[str, str]], settings: Settings,
                  config: Any, plain: Any = None) -> serving.Work:
    """The chat as one request to the pipeline's batcher, in the group of its adapter setting.

    The prompt is templated and tokenized as ``LLMPipeline.generate(ChatHistory)`` does (template with the
    generation prompt, no special tokens added), so the tokens and hence greedy answers are the same.

    Adaptive speculation (``settings.adaptive`` with a draft, ``plain`` opening the model without it): the batcher
    ends a request whose draft is rarely accepted after a few steps, and the answer goes on from the tokens so far
    on the plain pipeline: what greedy decoding would say next from that prefix, so the whole answer is still the
    greedy one. genai cannot change or drop the draft of a running request (every request on a drafting pipeline
    must draft), hence the second pipeline. Not with structured output: the grammar's state would start again."""
    lowerable = plain is not None or settings.confidence_threshold > 0 or settings.assistant_tokens > 1
    adapt = (ADAPT_AFTER_STEPS, ADAPT_MIN_ACCEPTANCE, ADAPT_MIN_PER_STEP) \
        if settings.draft and settings.adaptive and lowerable and not (settings.json_schema or settings.regex) \
        else None

    def work(ctx: serving.JobContext) -> batching.Outcome | None:
        tokenizer = handle.pipeline.get_tokenizer()
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=False).input_ids
        registered = bool(handle.loaded.adapters)
        prompt_tokens = int(ids.get_shape()[1])
        request = batching.Request((ids,), config, ctx,
                                   group=tuple(settings.adapters) if registered else batching.NO_GROUP,
                                   adapters=adapter_config(handle, settings) if registered else None,
                                   tokens=prompt_tokens + int(config.max_new_tokens), prompt_tokens=prompt_tokens,
                                   # The unbatched path's start line, said when the request really joins the
                                   # pipeline (a job stopped while it waited never does).
                                   on_start=lambda: log.info("chat: generate started (batched, max_new_tokens %d)",
                                                             config.max_new_tokens), adapt=adapt)
        batcher = batching.batcher_for(handle.loaded)
        log.info("chat: batched request (max_new_tokens %d)", config.max_new_tokens)
        outcome = batcher.run(request)
        if not outcome.started:  # stopped while it waited: it never joined the pipeline, so no figures
            log.info("chat: a job stopped before it started was skipped")
            return None
        if outcome.draft_off and not outcome.stopped:  # (a stopped answer ends here, draft or not)
            if plain is not None:
                outcome = _without_draft(plain(), ids, outcome, settings.replace(draft=""), ctx)
            else:  # no room for the plain pipeline: the same one, one draft token per step
                lowered = settings.replace(assistant_tokens=1, confidence_threshold=0.0)
                outcome = dataclasses.replace(_without_draft(handle, ids, outcome, lowered, ctx), draft_lowered=True)
        log.info("chat: batched request ended (batch %d)", outcome.batch)
        # The same end line as the unbatched path: what a stopped (or disconnected) answer is checked by.
        log.info("chat: generate ended (%d new tokens%s)", len(outcome.ids), ", stopped" if outcome.stopped else "")
        return outcome

    return work


def _without_draft(plain: Handle, prompt_ids: Any, drafted: batching.Outcome, settings: Settings,
                   ctx: serving.JobContext) -> batching.Outcome:
    """The rest of an answer whose draft was turned off, on ``plain`` (the model without the draft, or the same
    pipeline with ``settings`` drafting less) from the prompt and the tokens so far; one ``Outcome`` for the whole
    answer (figures timed over both parts, acceptance of the drafted part)."""
    import numpy as np
    import openvino as ov
    log.info("chat: draft off after %d tokens (%d of %s draft tokens accepted)", len(drafted.ids),
             drafted.accepted, drafted.drafted)
    config = generation_config(plain, settings)
    config.max_new_tokens = int(settings.max_new_tokens) - len(drafted.ids)
    if config.max_new_tokens <= 0:  # nothing left to generate: the handed-on streamer ends here
        if drafted.streamer is not None:
            drafted.streamer.end()
        return dataclasses.replace(drafted, streamer=None, draft_off_at=len(drafted.ids))
    prefix = np.concatenate([np.asarray(prompt_ids.data, dtype=np.int64).reshape(-1),
                             np.asarray(drafted.ids, dtype=np.int64)]).reshape(1, -1)
    registered = bool(plain.loaded.adapters)  # in its adapter setting's group, as the first part was
    request = batching.Request((ov.Tensor(prefix),), config, ctx,
                               group=tuple(settings.adapters) if registered else batching.NO_GROUP,
                               adapters=adapter_config(plain, settings) if registered else None,
                               tokens=int(prefix.shape[1]) + config.max_new_tokens,
                               prompt_tokens=int(prefix.shape[1]), streamer=drafted.streamer)
    rest = batching.batcher_for(plain.loaded).run(request)
    ids = drafted.ids + rest.ids
    first, timings = drafted.timings, dict(drafted.timings)
    timings["output_tokens"] = len(ids)
    if rest.timings:  # the second part's clock starts when it joined: add the first part's whole time to it
        timings["generate_s"] = first.get("generate_s", 0.0) + rest.timings.get("generate_s", 0.0)
        if len(ids) > 1 and "ttft_ms" in first:
            tpot = (timings["generate_s"] - first["ttft_ms"] / 1000) / (len(ids) - 1)
            timings["tpot_ms"], timings["tokens_per_s"] = tpot * 1000, (1 / tpot if tpot > 0 else None)
    text = plain.pipeline.get_tokenizer().decode(ids)
    return dataclasses.replace(drafted, ids=ids, text=text, perf=None, stopped=rest.stopped,
                               batch=max(drafted.batch, rest.batch), timings=timings, streamer=None,
                               draft_off_at=len(drafted.ids))


def _final(opened: Opened, result: Any, text: str, settings: Settings, stop: threading.Event) -> Reply:
    """The ``Reply`` for a finished generate or batched request (``result`` None: it never ran, being stopped
    first)."""
    if result is None:
        return Reply(text, {"device": opened.device}, True)
    if isinstance(result, batching.Outcome):
        final, figures = result.text, batched_metrics(opened, result, settings)
    else:
        final = result.texts[0] if result.texts else text
        figures = reply_metrics(opened, result, settings)
    check = structured.check_answer(final, settings.json_schema, settings.regex,
                                    figures.get("output_tokens", 0) >= settings.max_new_tokens)
    if check:
        figures["structured_output"] = check
    thinking, answer = structured.split_thinking(final)
    return Reply(answer, figures, stop.is_set(), thinking)


def batched_metrics(opened: Opened, outcome: batching.Outcome, settings: Settings) -> dict[str, Any]:
    """A batched answer's figures: genai's per-request ``PerfMetrics`` (the batcher's own timings of the request
    where genai has none: a stopped answer), the draft tokens the batcher counted, and the largest batch the
    answer was stepped in."""
    figures = perf_metrics.generation_figures(outcome.perf) if outcome.perf is not None else dict(outcome.timings)
    if settings.speculative:
        figures["accepted_draft_tokens"] = outcome.accepted
        if outcome.drafted is not None:
            figures["draft_tokens"] = outcome.drafted
            figures["acceptance_rate"] = outcome.accepted / outcome.drafted if outcome.drafted else 0.0
    if outcome.draft_off:
        rate = f"{outcome.accepted / outcome.drafted:.0%} accepted" if outcome.drafted else \
            f"{outcome.accepted} draft tokens accepted"
        figures["adaptive"] = (f"draft {'lowered to 1 token per step' if outcome.draft_lowered else 'off'} after "
                               f"{outcome.draft_off_at} tokens: {rate}")
    if settings.prompt_lookup:
        figures["prompt_lookup"] = f"n-gram ≤ {settings.max_ngram_size}, {settings.assistant_tokens} tokens/step"
    figures["batch"] = outcome.batch
    figures["device"] = opened.device + (f" + draft on {opened.handle.loaded.key.draft_device}"
                                         if settings.draft else "")
    return perf_metrics.build(figures, opened.handle.loaded.load_seconds, opened.handle.built_now)


def reply_metrics(opened: Opened, result: Any, settings: Settings) -> dict[str, Any]:
    """The answer's figures in the suite's metric vocabulary (``demos.core.metrics``)."""
    perf = result.perf_metrics
    figures = perf_metrics.generation_figures(perf)
    extended = getattr(result, "extended_perf_metrics", None)
    if settings.draft and extended is not None and hasattr(extended, "get_num_accepted_tokens"):
        drafted = int(extended.get_num_draft_tokens())
        accepted = int(extended.get_num_accepted_tokens())
        figures["accepted_draft_tokens"] = accepted
        figures["draft_tokens"] = drafted
        figures["acceptance_rate"] = accepted / drafted if drafted else 0.0
    if opened.prompt_tokens is not None:
        figures["npu_prompt"] = f"{opened.prompt_tokens} / {opened.max_prompt_len} tokens"
        if opened.max_prompt_len and opened.prompt_tokens + figures["output_tokens"] >= 0.8 * opened.max_prompt_len:
            # Warn while the chat still fits: the next turns add this answer and a new question.
            figures["npu_prompt"] += " (nearly full: clear the chat soon)"
    figures["device"] = opened.device + (f" + draft on {opened.handle.loaded.key.draft_device}"
                                         if settings.draft else "")
    return perf_metrics.build(figures, opened.handle.loaded.load_seconds, opened.handle.built_now)


def speedup(baseline: dict[str, Any], candidate: dict[str, Any]) -> float | None:
    """End-to-end output tokens per second of ``candidate`` over ``baseline`` (TTFT included)."""
    try:
        base = baseline["output_tokens"] / baseline["generate_s"]
        cand = candidate["output_tokens"] / candidate["generate_s"]
    except (KeyError, ZeroDivisionError, TypeError):
        return None
    return perf_metrics.rounded("speedup", cand / base) if base > 0 else None
