"""What the chat panel's buttons and its ``/chat`` endpoint do. Gradio types only at the edges.

Every handler that touches a pipeline is a generator: it shows the user's message at once, loads (first use
says so), then streams the reply. Stop sets the session's stop flags; the streamer then answers STOP, the
partial reply stays, and the pipeline is ready for the next turn (each turn sends the whole chat).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr

from demos.panels.chat import code as chat_code

from demos.core import lora_modes, serving
from demos.core.catalog import ChatEntry
from demos.core.checks import finite, shown, whole
from demos.core.errors import UserError, check_text
from demos.panels.chat.structured import split_thinking
from demos.panels.chat.engine import (DEFAULT_ASSISTANT_TOKENS, DEFAULT_LOOKUP_TOKENS, DEFAULT_NGRAM, Opened,
                                      Queued, Reply, Settings, default_settings, open_pipeline, prime_new_pipeline,
                                      speedup, stream_reply, text_of, to_messages)
from demos.core.suite import ProgressFn, no_progress
from demos.core.suite import Suite
from demos.ui import loading
from demos.ui.pacing import paced
from demos.ui.remote import remote_code, remote_note
from demos.ui.widgets import entry_for, metrics_markdown

SPEC_FIXED = "Fixed tokens per step"
SPEC_CONFIDENCE = "Confidence threshold"
COMPARE_DRAFT = "Draft: with vs without"
COMPARE_ADAPTER = "LoRA adapter: with vs without"
COMPARE_LOOKUP = "Prompt lookup: with vs without"
DECODE_PLAIN = "No draft"
DECODE_DRAFT = "A draft model"
DECODE_LOOKUP = "Prompt lookup"
OUTPUT_FREE = "Free text"
OUTPUT_SCHEMA = "JSON schema"
OUTPUT_REGEX = "Regex"
THINKING_TITLE = "Thinking"  # no emoji: the fonts of many browsers lack this one
PENDING = "…"


@dataclass(frozen=True)
class Choices:
    """The sidebar's values, in the order ``chat.build`` lists its setting components."""

    system_prompt: str
    adapter: str
    alpha: float
    adapter2: str
    alpha2: float
    speculative: bool
    draft: str
    draft_device: str
    spec_mode: str
    assistant_tokens: float
    threshold: float
    max_new_tokens: float
    temperature: float
    top_p: float
    top_k: float
    repetition_penalty: float
    seed: float
    # Added after the first ones (callers that build Choices positionally keep working): prompt lookup, adaptive
    # speculation, structured output.
    prompt_lookup: bool = False
    max_ngram: float = DEFAULT_NGRAM
    adaptive: bool = True
    output_kind: str = OUTPUT_FREE
    output_format: str = ""

    def settings(self, entry: ChatEntry) -> Settings:
        adapters = tuple((a, finite("alpha", alpha)) for a, alpha in ((self.adapter, self.alpha),
                                                                      (self.adapter2, self.alpha2)) if a)
        lookup = bool(self.prompt_lookup)
        use_draft = bool(self.speculative and self.draft) and not lookup
        threshold = finite("confidence threshold", self.threshold) if use_draft and \
            self.spec_mode == SPEC_CONFIDENCE else 0.0
        grammar = (self.output_format or "").strip() if self.output_kind in (OUTPUT_SCHEMA, OUTPUT_REGEX) else ""
        # An empty box (None, 0) means the default; anything else must be a real number (NaN is truthy).
        max_new = self.max_new_tokens or entry.generation.max_new_tokens
        return Settings(max_new_tokens=whole("max new tokens", max_new),
                        temperature=finite("temperature", self.temperature or 0.0),
                        top_p=finite("top-p", self.top_p or 1.0), top_k=whole("top-k", self.top_k or 0),
                        repetition_penalty=finite("repetition penalty", self.repetition_penalty or 1.0),
                        seed=whole("seed", self.seed or 0), adapters=adapters, draft=self.draft if use_draft else "",
                        draft_device=(self.draft_device or "") if use_draft else "",
                        assistant_tokens=whole("assistant tokens", self.assistant_tokens or DEFAULT_ASSISTANT_TOKENS),
                        confidence_threshold=threshold, prompt_lookup=lookup,
                        max_ngram_size=whole("n-gram size", self.max_ngram or DEFAULT_NGRAM),
                        adaptive=bool(self.adaptive),
                        json_schema=grammar if self.output_kind == OUTPUT_SCHEMA else "",
                        regex=grammar if self.output_kind == OUTPUT_REGEX else "")


def parse_adapters(spec: str, alpha: float, entry: ChatEntry) -> tuple[tuple[str, float], ...]:
    """'' -> none; 'a' -> a at ``alpha``; 'a:0.5,b:0.3' -> a blend. alpha <= 0 means the catalog's alpha."""
    if spec is not None and not isinstance(spec, str):
        raise UserError(f"adapter must be text such as 'a' or 'a:0.5,b:0.3', not {shown(spec)}", param="adapter")
    pairs = []
    alpha = finite("adapter_alpha", alpha)  # before "<= 0 means the catalog's": NaN > 0 is False
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        name, _, value = part.partition(":")
        name = name.strip()
        catalog_alpha = next((a.alpha for a in entry.adapters if a.id == name), 1.0)
        if not value.strip():
            pairs.append((name, alpha if alpha > 0 else catalog_alpha))
            continue
        try:
            chosen = float(value)
        except ValueError:
            raise UserError(f"adapter {shown(part)}: write an alpha as a number, e.g. '{name}:0.5'",
                            param="adapter") from None
        if not math.isfinite(chosen):
            raise UserError(f"adapter {shown(part)}: the alpha must be a finite number, e.g. '{name}:0.5'",
                            param="adapter")
        pairs.append((name, chosen))
    return tuple(pairs)


class ChatPanel:
    """The panel's behaviour for one app: its suite, and the running answers of each session (Stop, Clear)."""

    def __init__(self, suite: Suite):
        self.suite = suite
        self.stops = serving.Sessions()

    # --------------------------------------------------------------------------------------------------------
    # Helpers

    def entry(self, model_id: str) -> ChatEntry:
        return entry_for(self.suite, "chat", model_id)  # type: ignore[return-value]

    def code(self, model_id: str, device: str, choices: Choices, prompt: str = "") -> tuple[str, str]:
        """Python and C++ for the current settings ('' before a model is chosen)."""
        if not model_id:
            return "", ""
        entry = self.entry(model_id)
        if entry.backend is not None:
            return remote_code(entry)
        settings = choices.settings(entry)
        device = device or self.suite.default_device
        draft_device = settings.draft_device or next((d.device for d in entry.drafts if d.id == settings.draft),
                                                     None) or device
        refs = chat_code.refs_for(self.suite, entry, device, settings)
        system = choices.system_prompt
        return (chat_code.python_code(entry, device, draft_device, settings, refs, system, prompt),
                chat_code.cpp_code(entry, device, draft_device, settings, refs, system, prompt))

    def _status_or_keep(self, model_id: str, device: str) -> Any:
        """The status line, or no change where even that fails (an error is already on its way to the user)."""
        try:
            return self.status(model_id, device)
        except Exception:  # noqa: BLE001 - the original error is the one to show
            return gr.update()

    def status(self, model_id: str, device: str) -> str:
        """One line: which pipelines of this model are live, or that the first message will load it."""
        if not model_id:
            return ""
        entry = self.entry(model_id)
        if entry.backend is not None:
            return remote_note(entry)
        device = device or self.suite.default_device
        path = self.suite.locate(entry, device).path
        live = [k for k in self.suite.runtime.loaded_keys()
                if path is not None and k.panel == "chat" and k.model_dir == str(path)]
        if not live:
            return (f"**{entry.title}** is not loaded yet: the first message (or **Load**) loads it on {device}; "
                    "a first load downloads or compiles and can take a while.")
        # The plain pipeline first, then those with a draft, each in a fixed order: the line must not reshuffle.
        live.sort(key=lambda k: (k.draft_dir is not None, _lookup_key(k), k.device, k.draft_dir or "",
                                 k.draft_device or ""))
        drafts = {str(p): d.title for d in entry.drafts
                  if (p := self.suite.loader.locate(d.source, d.revision, d.export, "chat").path) is not None}
        parts = [f"on {k.device} for prompt lookup" if _lookup_key(k) else f"on {k.device}" if not k.draft_dir else
                 f"on {k.device} with the draft **{drafts.get(k.draft_dir, 'draft')}**"
                 + (f" (on {k.draft_device})" if k.draft_device != k.device else "") for k in live]
        adapters = (f" {len(entry.adapters)} LoRA adapter{'s' if len(entry.adapters) != 1 else ''} registered: "
                    "switching them never recompiles." if entry.adapters else "")
        return f"**{entry.title}** is loaded {', and '.join(parts)}.{adapters}"

    def loading_note(self, model_id: str, device: str, choices: Choices) -> str:
        """What the next load will do: nothing (already live) or a first load that may take a while."""
        entry = self.entry(model_id)
        return self._load_note(entry, device, choices.settings(entry)) or \
            f"**{entry.title}** on {device or self.suite.default_device} is loaded and ready."

    def _load_note(self, entry: ChatEntry, device: str, settings: Settings) -> str:
        """'' when the pipeline for these settings is live, else what loading it will involve."""
        if entry.backend is not None:
            return ""  # nothing loads here: the model server holds the model
        device = device or self.suite.default_device
        status = self.suite.locate(entry, device)
        draft_dir, draft_device = None, None
        if settings.draft:  # the very draft on the very device: another draft's pipeline would still compile
            draft = next((d for d in entry.drafts if d.id == settings.draft), None)
            draft_path = self.suite.loader.locate(draft.source, draft.revision, draft.export, "chat").path \
                if draft is not None else None
            draft_dir = str(draft_path) if draft_path is not None else "(not fetched)"
            draft_device = settings.draft_device or (draft.device if draft is not None else None) or device
        if status.path is not None and any(k.model_dir == str(status.path) and k.device == device and
                                           k.draft_dir == draft_dir and k.draft_device == draft_device
                                           and _lookup_key(k) == settings.prompt_lookup
                                           for k in self.suite.runtime.loaded_keys()):
            return ""
        if status.ready:
            steps = "compiling"
        elif status.needs_export:
            steps = ("" if status.downloaded else "downloading, ") + "exporting with optimum-intel, then compiling"
        else:
            steps = "downloading, then compiling"
        return f"Loading {self._what(entry, device, settings)} — first use: {steps}; this can take a while…"

    @staticmethod
    def _what(entry: ChatEntry, device: str, settings: Settings) -> str:
        """'**Tiny LLM** on CPU with the draft **Tiny draft**': a pipeline in the catalog's labels."""
        draft = next((d.title for d in entry.drafts if d.id == settings.draft), settings.draft)
        return f"**{entry.title}** on {device}" + (f" with the draft **{draft}**" if settings.draft else
                                                    " with prompt lookup" if settings.prompt_lookup else "")

    def _open_shown(self, entry: ChatEntry, device: str, settings: Settings, messages: list[dict[str, str]],
                    view: Any) -> Iterator[Any]:
        """``_open``, yielding ``view(status line)`` while a first load runs (its progress bar, stage and clock);
        returns the ``Opened`` (``opened = yield from ...``). A live pipeline opens at once, without a view."""
        if not self._load_note(entry, device, settings):
            return self._open(entry, device, settings, messages, no_progress)
        what = self._what(entry, device or self.suite.default_device, settings)
        return (yield from loading.follow(what, lambda report: self._open(entry, device, settings, messages, report),
                                          lambda tracker: view(tracker.html())))

    def _open(self, entry: ChatEntry, device: str, settings: Settings, messages: list[dict[str, str]],
              progress: ProgressFn) -> Opened:
        return open_pipeline(self.suite, entry, device, settings, messages, progress)

    # --------------------------------------------------------------------------------------------------------
    # Load

    def load(self, model_id: str, device: str, choices: Choices, progress: ProgressFn = no_progress) -> str:
        """Load the pipeline the next message will use (with the draft when speculative decoding is on)."""
        entry = self.entry(model_id)
        settings = choices.settings(entry)
        opened = self._open(entry, device, settings, [{"role": "user", "content": "Hi"}], progress)
        what = self._what(entry, opened.device, settings)
        if opened.handle.built_now:
            return f"Loaded {what} in {opened.handle.loaded.load_seconds:.1f} s (first use)."
        return f"{what} is loaded and ready."

    def load_shown(self, model_id: str, device: str, choices: Choices) -> Iterator[str]:
        """``load`` for the page: the status line with a progress bar while a first load runs, then what is
        loaded now."""
        entry = self.entry(model_id)
        settings = choices.settings(entry)
        yield from self._open_shown(entry, device, settings, [{"role": "user", "content": "Hi"}], lambda line: line)
        yield self.status(model_id, device)

    # --------------------------------------------------------------------------------------------------------
    # Chat

    def respond(self, prompt: str, history: list[dict], model_id: str, device: str, choices: Choices,
                session: str) -> Iterator[tuple]:
        """Stream an answer into the chat. Yields (history, prompt box, metrics card, status)."""
        prompt = (prompt or "").strip()
        if not prompt:
            raise gr.Error("Type a message first.")
        entry = self.entry(model_id)
        settings = choices.settings(entry)
        history = list(history or [])
        messages = to_messages(history, choices.system_prompt, prompt)
        shown = history + [{"role": "user", "content": prompt}]
        with self.stops.request(session) as control:  # from the start: a Stop during a long first load counts
            note = self._load_note(entry, device, settings)  # a first load must not look frozen
            pending = {"role": "assistant", "content": f"_{note}_" if note else PENDING}
            yield shown + [pending], "", gr.update(), note or self.status(model_id, device)
            try:
                opened = yield from self._open_shown(entry, device, settings, messages,
                                                     lambda line: (shown + [pending], "", gr.skip(), line))
                # Always the line itself, never gr.update(): Gradio streams an output as a diff from its last value,
                # and a diff from text into an update breaks the line on the page.
                status = self.status(model_id, device)
                for item in paced_reply(stream_reply(opened, messages, settings, control, places=True)):
                    if control.cleared:  # Clear was pressed: leave the emptied chat alone
                        yield [], "", "", status
                        return
                    if isinstance(item, Reply):
                        item = named(item, entry, settings, opened)
                        final = shown + answer_messages(item.thinking, item.text, done=True) + [metrics_message(item)]
                        yield final, "", reply_card(item), status
                    elif isinstance(item, Queued):  # the pipeline is busy with other requests
                        note = queue_note(item.ahead, item.reason)
                        yield shown + [{"role": "assistant", "content": item.text or f"_{note}_"}], \
                            "", gr.update(), note
                    else:  # "" while the model reads the chat: keep showing the pending note
                        thinking, answer = split_thinking(item)
                        yield shown + answer_messages(thinking, answer or ("" if thinking else pending["content"]),
                                                      done=False), "", gr.update(), status
            except Exception:
                # Give the message back and drop the pending or partial answer (the next turn must not send it
                # to the model); the status line says what is loaded, not "loading"; the error says why.
                yield history, prompt, gr.update(), self._status_or_keep(model_id, device)
                raise

    def retry(self, history: list[dict], model_id: str, device: str, choices: Choices,
              session: str) -> Iterator[tuple]:
        """Answer the last user message again (with the current settings)."""
        history = list(history or [])
        last = max((i for i, m in enumerate(history) if m.get("role") == "user"
                    and not (m.get("metadata") or {}).get("title")), default=None)
        if last is None:
            raise gr.Error("Nothing to retry yet: send a message first.")
        yield from self.respond(text_of(history[last].get("content")), history[:last], model_id, device, choices,
                                session)

    # --------------------------------------------------------------------------------------------------------
    # Compare

    def compare(self, prompt: str, mode: str, model_id: str, device: str, choices: Choices,
                session: str) -> Iterator[tuple]:
        """The same prompt answered twice, one after the other (each with the whole machine), side by side.

        Yields (left chat, right chat, left card, right card, verdict, left title, right title, status).
        """
        prompt = (prompt or "").strip()
        if not prompt:
            raise gr.Error("Type a prompt to compare first.")
        entry = self.entry(model_id)
        current = choices.settings(entry)
        left, right, left_title, right_title = self._compare_pair(entry, mode, choices, current)
        messages = to_messages([], choices.system_prompt, prompt)
        keep = gr.skip()
        with self.stops.request(session) as control:  # from the start: a Stop while the two pipelines load counts
            opened: list[Opened] = []
            for settings in (left, right):  # load both first, so that neither answer's figures include a load
                if control.stopped:
                    yield (*[keep] * 4, "⏹ Stopped before the comparison started.", keep, keep,
                           self.status(model_id, device))
                    return
                opened.append((yield from self._open_shown(entry, device, settings, messages,
                                                           lambda line: (*[keep] * 7, line))))
            for pipe in opened:
                prime_new_pipeline(pipe, messages, control.event)
            status = self.status(model_id, device)
            user = [{"role": "user", "content": prompt}]
            panes: list[list[dict]] = [user + [{"role": "assistant", "content": PENDING}], list(user)]
            cards = ["", ""]
            replies: list[Reply | None] = [None, None]
            yield (*panes, *cards, "", left_title, right_title, status)
            for side, (settings, pipe) in enumerate(zip((left, right), opened)):
                if control.stopped:  # checked between the two answers too: Stop ends the whole comparison
                    panes[side] = user + [{"role": "assistant", "content": "_Stopped before this answer started._"}]
                    break
                panes[side] = user + [{"role": "assistant", "content": PENDING}]
                for item in paced_reply(stream_reply(pipe, messages, settings, control)):
                    waiting = f"_{serving.place_note(control.ahead)}_" if control.ahead else PENDING
                    text = item.text if isinstance(item, Reply) else (split_thinking(item)[1] or waiting)
                    panes[side] = user + [{"role": "assistant", "content": text}]
                    if isinstance(item, Reply):
                        item = named(item, entry, settings, pipe)
                        replies[side], cards[side] = item, reply_card(item)
                    # Whole values: Gradio streams each output as a diff from its last value, so what did not change
                    # costs nothing, while a skip in between would break the next diff.
                    yield (*panes, *cards, "", left_title, right_title, status)
        yield (*panes, *cards, verdict(mode, replies[0], replies[1], lora_modes.mode_for(entry)), left_title,
               right_title, status)

    @staticmethod
    def _compare_pair(entry: ChatEntry, mode: str, choices: Choices,
                      current: Settings) -> tuple[Settings, Settings, str, str]:
        if mode == COMPARE_ADAPTER:
            if not current.adapters:
                raise gr.Error("Choose an adapter under LoRA adapters first; Compare then answers with and "
                               "without it.")
            labels = {a.id: a.title for a in entry.adapters}
            named = " + ".join(f"{labels.get(a, a)} ×{alpha:g}" for a, alpha in current.adapters)
            return current.replace(adapters=()), current, "**Without adapter**", f"**With {named}**"
        if mode == COMPARE_LOOKUP:
            lookup = current.replace(draft="", draft_device="", confidence_threshold=0.0, prompt_lookup=True)
            return (lookup.replace(prompt_lookup=False), lookup, "**Without prompt lookup**",
                    f"**With prompt lookup** (n-gram ≤ {lookup.max_ngram_size}, {lookup.assistant_tokens} "
                    "tokens/step)")
        draft = choices.draft or (entry.drafts[0].id if entry.drafts else "")
        if not draft:
            raise gr.Error(f"{entry.title} lists no draft model, so there is no speculative decoding to compare.")
        with_draft = Choices(**{**choices.__dict__, "speculative": True, "draft": draft,
                                "prompt_lookup": False}).settings(entry)
        how = (f"confidence ≥ {with_draft.confidence_threshold:g}" if with_draft.confidence_threshold
               else f"{with_draft.assistant_tokens} tokens/step")
        return (with_draft.replace(draft="", draft_device=""), with_draft, "**Without draft**",
                f"**With the draft {next((d.title for d in entry.drafts if d.id == draft), draft)}** ({how})")

    # --------------------------------------------------------------------------------------------------------
    # API

    def api_stream(self, prompt: str, model: str, history: list[dict], system_prompt: str, adapter: str,
                   adapter_alpha: float, draft: str, device: str, max_new_tokens: int,
                   temperature: float, session: str = "", prompt_lookup: bool = False, max_ngram_size: int = 0,
                   assistant_tokens: int = 0, adaptive: bool = True, json_schema: str = "",
                   regex: str = "") -> Iterator[tuple[str, dict]]:
        """The ``/chat`` endpoint's body: (reply so far, {}) while streaming, then (reply, metrics).

        The reply is the answer without a reasoning model's thinking, which comes in the metrics (``thinking``)."""
        prompt = check_text(prompt or "", "prompt").strip()
        if not prompt:
            raise UserError("prompt is empty: pass the user's message as the first argument", param="prompt")
        check_text(system_prompt, "system_prompt")
        for index, message in enumerate(history or []):  # the shape is to_messages' to check; the text is ours
            if isinstance(message, dict):
                check_text(message.get("content"), f"history[{index}].content")
        entry = self.entry(model)
        check_text(json_schema or "", "json_schema")
        check_text(regex or "", "regex")
        if not isinstance(prompt_lookup, bool) or not isinstance(adaptive, bool):
            raise UserError("prompt_lookup and adaptive take true or false", param="prompt_lookup")
        lookup_tokens = assistant_tokens or (DEFAULT_LOOKUP_TOKENS if prompt_lookup else 0)
        settings = default_settings(entry, max_new_tokens=max_new_tokens, temperature=temperature,
                                    adapters=parse_adapters(adapter, adapter_alpha, entry), draft=draft,
                                    prompt_lookup=prompt_lookup, max_ngram_size=max_ngram_size,
                                    assistant_tokens=lookup_tokens, json_schema=json_schema or "",
                                    regex=regex or "")
        settings = settings.replace(adaptive=adaptive)
        system = system_prompt if system_prompt.strip() else entry.system_prompt
        messages = to_messages(history, system, prompt)
        # Registered before loading: a first-use export counts against the session's limit and Stop reaches it.
        with self.stops.request(session or serving.session_key(None)) as control:
            opened = self._open(entry, device, settings, messages, no_progress)
            for item in stream_reply(opened, messages, settings, control):
                if isinstance(item, Reply):
                    item = named(item, entry, settings, opened)
                    thinking = {"thinking": item.thinking} if item.thinking is not None else {}
                    yield item.text, {**item.metrics, **thinking, **({"stopped": True} if item.stopped else {})}
                else:
                    yield split_thinking(item)[1], {}


# ------------------------------------------------------------------------------------------------------------
# Presentation


def _lookup_key(key: Any) -> bool:
    """Whether a live pipeline's key was built for prompt lookup."""
    return bool(dict(key.properties).get("prompt_lookup"))


def produced_by(entry: ChatEntry, settings: Settings, opened: Opened) -> dict[str, str]:
    """What produced an answer, in the catalog's labels: model, adapters with their alphas, draft (DESIGN §9)."""
    labels = {a.id: a.title for a in entry.adapters}
    adapters = " + ".join(f"{labels.get(a, a)} ×{alpha:g}" for a, alpha in settings.adapters) or "none"
    draft = "prompt lookup" if settings.prompt_lookup else "none"
    if settings.draft:
        title = next((d.title for d in entry.drafts if d.id == settings.draft), settings.draft)
        draft = f"{title} on {opened.handle.loaded.key.draft_device or opened.device}"
    return {"model": entry.title, "adapters": adapters, "draft": draft}


def named(reply: Reply, entry: ChatEntry, settings: Settings, opened: Opened) -> Reply:
    """``reply`` with what produced it first in its metrics (the card, the note, the ``/chat`` metrics)."""
    return dataclasses.replace(reply, metrics={**produced_by(entry, settings, opened), **reply.metrics})


def paced_reply(items: Iterator[Any]) -> Iterator[Any]:
    """``stream_reply``'s items thinned for the browser (``demos.ui.pacing``); queue places and the final reply
    always pass."""
    return paced(items, size=lambda item: len(item if isinstance(item, str) else item.text),
                 passes=lambda item: isinstance(item, (Reply, Queued)))


def queue_note(ahead: int, reason: str = "") -> str:
    """The status line of an answer waiting for its pipeline (and why, when a batched pipeline says)."""
    if reason:
        return f"Waiting: {reason} ({ahead} request{'s' if ahead != 1 else ''} ahead of you)…"
    return f"Waiting for the model: {ahead} request{'s' if ahead != 1 else ''} ahead of you…"


def reply_card(reply: Reply) -> str:
    """The metrics card's Markdown for one answer."""
    card = metrics_markdown(reply.metrics)
    return ("⏹ **Stopped** · " + card) if reply.stopped else card


def answer_messages(thinking: str | None, answer: str, done: bool) -> list[dict]:
    """The answer's chat messages: a reasoning model's thinking first, collapsed under a title (so it is never mixed
    into the answer, and ``to_messages`` leaves it out of the next turn's history), then the answer."""
    answer_message = {"role": "assistant", "content": answer}
    if thinking is None:
        return [answer_message]
    note = {"role": "assistant", "content": thinking or "…",
            "metadata": {"title": THINKING_TITLE, "status": "done" if done or answer else "pending"}}
    return [note, answer_message] if answer or done else [note]


def metrics_message(reply: Reply) -> dict:
    """A collapsible note under the answer in the chat: a short title, the full figures inside."""
    m = reply.metrics
    if "tokens_per_s" not in m:  # stopped before it started: there are no figures
        return {"role": "assistant", "content": "Stopped before the answer started.",
                "metadata": {"title": "⏹ stopped", "status": "done"}}
    title = [f"{m['tokens_per_s']:.1f} tokens/s", f"TTFT {m['ttft_ms']:.0f} ms", f"{m['output_tokens']} tokens"]
    # What produced it, when it is more than the plain model: the headline feature is switching these per answer.
    title[:0] = [f"{m[k]}" if k == "adapters" else f"draft {m[k]}" for k in ("adapters", "draft")
                 if m.get(k, "none") != "none"]
    if "acceptance_rate" in m:
        title.append(f"{m['accepted_draft_tokens']}/{m['draft_tokens']} draft tokens accepted")
    if "adaptive" in m:  # the draft was turned off (or down) part-way: say so under the answer
        title.append(m["adaptive"])
    if "structured_output" in m:
        title.append(m["structured_output"])
    if "load_s" in m:
        title.insert(0, f"loaded in {m['load_s']:.1f} s")
    prefix = "⏹ stopped · " if reply.stopped else "⚡ "
    return {"role": "assistant", "content": metrics_markdown(m),
            "metadata": {"title": prefix + " · ".join(title), "status": "done"}}


def verdict(mode: str, left: Reply | None, right: Reply | None, lora_mode: str = "") -> str:
    """The comparison's one-line result: speedup (for an adapter, its slowdown), and whether the texts agree."""
    if left is None or right is None or left.stopped or right.stopped:
        return "⏹ Stopped before both answers finished."
    ratio = speedup(left.metrics, right.metrics)
    if ratio is None:
        return ""
    if mode == COMPARE_ADAPTER:
        return adapter_verdict(left, right, lora_mode)
    rate = lambda m: m["output_tokens"] / m["generate_s"]  # noqa: E731 - end-to-end tokens/s
    what = {COMPARE_ADAPTER: "the adapter", COMPARE_LOOKUP: "prompt lookup"}.get(mode, "speculative decoding")
    headline = (f"{ratio:.2f}× faster with {what}" if ratio >= 1
                else f"{1 / ratio:.2f}× slower with {what} (speedup {ratio:.2f}×)")
    same = "identical text" if left.text == right.text else "different text"
    extra = ""
    if "acceptance_rate" in right.metrics:
        extra = f" · {right.metrics['acceptance_rate']:.0%} of draft tokens accepted"
    if "adaptive" in right.metrics:
        extra += f" · {right.metrics['adaptive']}"
    return (f"### {headline}\n"
            f"{rate(left.metrics):.1f} → {rate(right.metrics):.1f} tokens/s end to end (TTFT included) · "
            f"{same}{extra}")


def adapter_verdict(without: Reply, with_adapter: Reply, lora_mode: str) -> str:
    """What the adapter costs: the decoding rate (tokens/s after the first) with vs without it, as a slowdown.

    Decoding, not end to end: the adapter's extra matrix products are paid per token, and TTFT is shown apart."""
    plain, lora = without.metrics.get("tokens_per_s", 0.0), with_adapter.metrics.get("tokens_per_s", 0.0)
    if not plain or not lora:
        return ""
    slowdown = (1 - lora / plain) * 100
    headline = (f"{slowdown:.0f} % slower with the adapter" if slowdown >= 0.5
                else "No measurable slowdown with the adapter")
    same = "identical text" if without.text == with_adapter.text else "different text"
    mode = f" · adapter mode {lora_mode}" if lora_mode else ""
    return (f"### {headline}\n"
            f"{plain:.1f} → {lora:.1f} tokens/s decoding · TTFT {without.metrics.get('ttft_ms', 0):.0f} → "
            f"{with_adapter.metrics.get('ttft_ms', 0):.0f} ms · {same}{mode}")
