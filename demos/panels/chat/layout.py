"""The Chat panel: streaming multi-turn chat on ``openvino_genai.LLMPipeline``.

LoRA adapters (one, or a blend of two, each with its alpha) switch per answer without recompiling;
speculative decoding runs a draft model on its own device and reports accepted draft tokens (adaptive: a draft
rarely accepted is turned off for the rest of the answer, and the answer says so), or prompt lookup copies
candidates from the prompt with no draft model; structured output holds the answer to a JSON schema or a regex; a
reasoning model's thinking shows collapsed above its answer; Compare answers one prompt twice side by side (draft
vs none, prompt lookup vs none, adapter vs none) with the speedup; every answer carries its
metrics, and Show code prints the Python and C++ that reproduce the current settings. The plain ``/chat``
endpoint (DESIGN §6) streams the reply and ends with a metrics dict.

Layout and wiring live here; what the buttons do is in ``chat_handlers``, the pipeline work in
``chat_engine``, pre-build checks in ``chat_checks`` and the code view in ``chat_code``.
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Iterator

import gradio as gr

from demos.core import serving
from demos.core.catalog import ChatEntry
from demos.core.errors import UserError
from demos.panels.chat.engine import DEFAULT_ASSISTANT_TOKENS, DEFAULT_NGRAM, DEFAULT_SEED, text_of
from demos.panels.chat.handlers import (COMPARE_ADAPTER, COMPARE_DRAFT, COMPARE_LOOKUP, OUTPUT_FREE, OUTPUT_REGEX,
                                        OUTPUT_SCHEMA, SPEC_CONFIDENCE, SPEC_FIXED, ChatPanel, Choices)
from demos.core.suite import Suite
from demos.ui import columns
from demos.ui.widgets import code_view, device_picker, guarded, kept_on_error, metrics_card, model_picker

CONCURRENCY_ID = "chat"  # every event that drives a chat pipeline
# No per-pipeline limit in Gradio: each pipeline's own scheduler decides what runs (a batcher steps concurrent
# answers together on CPU/GPU, a lane serves one at a time on NPU). "No limit" here is bounded by
# demos.ui.capacity (the panel's requests in progress at once). Gradio's smallest limit per id wins, so each
# event says so.
CONCURRENCY = dict(concurrency_id=CONCURRENCY_ID, concurrency_limit=None)
SAME_DEVICE = "Same as model"
DEFAULT_THRESHOLD = 0.1  # measured (bench_chat): faster than 0.4 with an agreeing draft and with an unrelated one
FORMAT_HINTS = {OUTPUT_SCHEMA: '{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}',
                OUTPUT_REGEX: "<think>[a-z ]+</think>[A-Za-z ,.]+"}
log = logging.getLogger("demos.panels.chat")


def _adapter_choices(entry: ChatEntry) -> list[tuple[str, str]]:
    return [("None", "")] + [(a.title, a.id) for a in entry.adapters]


def _draft_choices(entry: ChatEntry) -> list[tuple[str, str]]:
    # Never an empty list. The page may still send the old entry's draft for a moment after a switch, which Gradio's
    # own check would refuse with an HTTP 500 ("tiny-draft is not in the list of choices"): the dropdown takes any
    # value, and an unknown draft is refused by the engine's validate(), in words, when speculative decoding is on.
    return [(d.title, d.id) for d in entry.drafts] or [("No draft for this model", "")]


def _first_draft(entry: ChatEntry) -> str:
    return entry.drafts[0].id if entry.drafts else ""


def _examples(entry: ChatEntry) -> list[list[str]]:
    return [[e] for e in entry.examples]


def build(entries: list[ChatEntry], suite: Suite) -> None:
    """The Chat tab's body (inside ``gr.Tab``). Nothing is loaded here: the first message or Load does that."""
    if not entries:
        gr.Markdown("No chat models in the catalog: add entries under `chat:` in models.yaml.")
        return
    panel = ChatPanel(suite)
    entries = suite.stage_first(entries)  # presenter mode opens on the warm stage model …
    first = entries[0]
    devices = suite.runtime.devices()
    # On stage, Compare must work at the first click: with no draft to compare it compares the first adapter.
    shown_adapter = first.adapters[0] if suite.presenter and first.adapters and not first.drafts else None

    with gr.Row(equal_height=True):
        model = model_picker(entries, scale=3, elem_id="chat-model")
        device = device_picker(devices, suite.default_device, scale=1, elem_id="chat-device")
        load_btn = gr.Button("Load", scale=0, min_width=90, elem_id="chat-load")
    status = gr.Markdown(panel.status(first.id, device.value), elem_id="chat-status")
    # Computed again at every page load: a page opened after a load says it is loaded. A private page-load event,
    # not a callable value (that would be listed on the API page as an unnamed /lambda endpoint).
    gr.on(None, lambda: panel.status(first.id, device.value), None, status, api_visibility="private",
          show_progress="hidden", queue=False)

    with gr.Row():
        with columns.results(scale=3):
            # … and on Compare, the view an audience looks at (speedup with the draft, or the adapter's effect).
            with gr.Tabs(selected="chat-compare" if suite.presenter else "chat-conversation"):
                with gr.Tab("Conversation", id="chat-conversation"):
                    chatbot = gr.Chatbot(height=470, elem_id="chat-chatbot", buttons=["copy", "copy_all"],
                                         feedback_options=None, show_label=False,
                                         placeholder="Ask anything. Answers stream token by token; the figures "
                                                     "of each answer appear under it.")
                    with gr.Row(equal_height=True):
                        prompt = gr.Textbox(placeholder="Type a message and press Enter", show_label=False,
                                            lines=1, max_lines=6, scale=6, elem_id="chat-prompt", autofocus=True)
                        send_btn = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="chat-send")
                        stop_btn = gr.Button("Stop", interactive=False, scale=1, min_width=80, elem_id="chat-stop")
                    with gr.Row():
                        retry_btn = gr.Button("↻ Retry", size="sm", elem_id="chat-retry")
                        clear_btn = gr.Button("Clear", size="sm", elem_id="chat-clear")
                    examples = gr.Dataset(components=[prompt], samples=_examples(first), label="Examples",
                                          visible=bool(first.examples), elem_id="chat-examples")
                    metrics = metrics_card(elem_id="chat-metrics")
                with gr.Tab("Compare side by side", id="chat-compare"):
                    gr.Markdown("One prompt, answered twice with the settings on the right: once without and "
                                "once with the draft (or prompt lookup, or the adapter). The answers run one after the other so "
                                "each has the whole machine; the speedup compares end-to-end tokens per second.",
                                elem_id="chat-compare-about")
                    with gr.Row(equal_height=True):
                        compare_prompt = gr.Textbox(label="Prompt", value=first.examples[0] if first.examples
                                                    else "", scale=3, elem_id="chat-compare-prompt")
                        compare_mode = gr.Radio([COMPARE_DRAFT, COMPARE_LOOKUP, COMPARE_ADAPTER], label="Compare",
                                                value=COMPARE_DRAFT if first.drafts else COMPARE_ADAPTER, scale=4,
                                                elem_id="chat-compare-mode")  # wide: its choices in one row
                    with gr.Row():
                        compare_btn = gr.Button("Compare", variant="primary", elem_id="chat-compare-run")
                        compare_stop = gr.Button("Stop", interactive=False, elem_id="chat-compare-stop")
                    verdict = gr.Markdown(elem_id="chat-compare-verdict")
                    with gr.Row():
                        with gr.Column():
                            left_title = gr.Markdown("**Without**")
                            left = gr.Chatbot(height=300, show_label=False, feedback_options=None, buttons=["copy"],
                                              elem_id="chat-compare-left")
                            left_card = metrics_card()
                        with gr.Column():
                            right_title = gr.Markdown("**With**")
                            right = gr.Chatbot(height=300, show_label=False, feedback_options=None, buttons=["copy"],
                                               elem_id="chat-compare-right")
                            right_card = metrics_card()

        with columns.settings(suite, scale=2, min_width=320):
            system = gr.Textbox(label="System prompt", value=first.system_prompt, lines=2, max_lines=6,
                                placeholder="Optional, e.g. 'You are a concise assistant.'", elem_id="chat-system")
            with gr.Accordion("LoRA adapters", open=True, visible=bool(first.adapters)) as lora_box:
                gr.Markdown("All adapters are registered when the model loads: switching one, its alpha, or "
                            "none never recompiles.", elem_classes=["hint"])
                with gr.Row():
                    adapter = gr.Dropdown(_adapter_choices(first), value=shown_adapter.id if shown_adapter else "",
                                          label="Adapter", scale=2, elem_id="chat-adapter")
                    alpha = gr.Slider(0, 2, value=shown_adapter.alpha if shown_adapter else 1.0, step=0.05,
                                      label="Alpha", scale=2, elem_id="chat-alpha", interactive=bool(shown_adapter))
                with gr.Row():
                    adapter2 = gr.Dropdown(_adapter_choices(first), value="", label="Blend with", scale=2,
                                           elem_id="chat-adapter2")
                    alpha2 = gr.Slider(0, 2, value=1.0, step=0.05, label="Alpha", scale=2, elem_id="chat-alpha2",
                                       interactive=False)
            with gr.Accordion("Speculative decoding", open=True, elem_id="chat-decoding"):
                with gr.Group(visible=bool(first.drafts)) as spec_box:
                    speculative = gr.Checkbox(label="Use a draft model", value=False, elem_id="chat-speculative")
                    with gr.Row():
                        draft = gr.Dropdown(_draft_choices(first), value=_first_draft(first),
                                            label="Draft", scale=3, min_width=160, elem_id="chat-draft",
                                            interactive=False, allow_custom_value=True)
                        draft_device = gr.Dropdown([(SAME_DEVICE, "")] + [(d, d) for d in devices], value="",
                                                   label="Draft device", scale=2, min_width=170,
                                                   elem_id="chat-draft-device", interactive=False)
                    spec_mode = gr.Radio([SPEC_FIXED, SPEC_CONFIDENCE], value=SPEC_FIXED, show_label=False,
                                         elem_id="chat-spec-mode", interactive=False)
                    assistant_tokens = gr.Slider(1, 16, value=DEFAULT_ASSISTANT_TOKENS, step=1, interactive=False,
                                                 label="Assistant tokens per step", elem_id="chat-assistant-tokens")
                    threshold = gr.Slider(0.05, 0.95, value=DEFAULT_THRESHOLD, step=0.05, visible=False,
                                          interactive=False, label="Draft while its confidence is at least",
                                          elem_id="chat-threshold")
                    adaptive = gr.Checkbox(label="Adaptive: turn the draft off for the rest of an answer when it "
                                                 "is rarely accepted", value=True, interactive=False,
                                           elem_id="chat-adaptive")
                prompt_lookup = gr.Checkbox(label="Prompt lookup (no draft model: copies candidates from the prompt; "
                                                  "best when the answer quotes it)", value=False,
                                            elem_id="chat-prompt-lookup")
                max_ngram = gr.Slider(1, 8, value=DEFAULT_NGRAM, step=1, label="Max n-gram size", visible=False,
                                      elem_id="chat-max-ngram")
            draft_parts = [draft, draft_device, spec_mode, assistant_tokens, threshold, adaptive]
            with gr.Accordion("Structured output", open=False, elem_id="chat-structured"):
                output_kind = gr.Radio([OUTPUT_FREE, OUTPUT_SCHEMA, OUTPUT_REGEX], value=OUTPUT_FREE,
                                       show_label=False, elem_id="chat-output-kind")
                output_format = gr.Textbox(label="The answer must follow", lines=3, max_lines=12, visible=False,
                                           elem_id="chat-output-format")
            gen = first.generation
            with gr.Accordion("Generation", open=False):
                max_new_tokens = gr.Slider(1, 4096, value=gen.max_new_tokens, step=1, label="Max new tokens",
                                           elem_id="chat-max-new-tokens")
                temperature = gr.Slider(0, 2, value=gen.temperature, step=0.05, label="Temperature (0 = greedy)",
                                        elem_id="chat-temperature")
                with gr.Row():
                    top_p = gr.Slider(0.05, 1, value=gen.top_p, step=0.05, label="Top-p", elem_id="chat-top-p")
                    top_k = gr.Slider(0, 200, value=gen.top_k, step=1, label="Top-k (0 = the model's)",
                                      elem_id="chat-top-k")
                with gr.Row():
                    repetition_penalty = gr.Slider(0.5, 2, value=gen.repetition_penalty, step=0.05,
                                                   label="Repetition penalty", elem_id="chat-repetition-penalty")
                    seed = gr.Number(value=DEFAULT_SEED, precision=0, label="Seed", elem_id="chat-seed")

    python_code, cpp_code = code_view()

    # ---------------------------------------------------------------------------------------------------------
    # Wiring. Settings travel as one set of components (handlers get a dict) so adding one stays a local edit.

    setting_parts = [system, adapter, alpha, adapter2, alpha2, speculative, draft, draft_device, spec_mode,
                     assistant_tokens, threshold, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed,
                     prompt_lookup, max_ngram, adaptive, output_kind, output_format]

    def choices(data: dict) -> Choices:
        return Choices(*(data[c] for c in setting_parts))

    initial = panel.code(first.id, device.value, choices({c: c.value for c in setting_parts}),
                         first.examples[0] if first.examples else "")
    python_code.value, cpp_code.value = initial

    # Errors leave the screen as it is: the message goes to the status line (with what is true now) and one toast.
    def now(data: dict, *_: Any) -> str:
        return panel.status(data[model], data[device])

    @kept_on_error(outputs=4, status_at=3, now=now)
    def send(data: dict, request: gr.Request) -> Iterator[tuple]:
        yield from panel.respond(data[prompt], data[chatbot], data[model], data[device], choices(data),
                                 _session(request))

    @kept_on_error(outputs=4, status_at=3, now=now)
    def retry(data: dict, request: gr.Request) -> Iterator[tuple]:
        yield from panel.retry(data[chatbot], data[model], data[device], choices(data), _session(request))

    @kept_on_error(outputs=8, status_at=7, now=now)
    def compare(data: dict, request: gr.Request) -> Iterator[tuple]:
        yield from panel.compare(data[compare_prompt], data[compare_mode], data[model], data[device],
                                 choices(data), _session(request))

    @kept_on_error(outputs=1, status_at=0, now=now)
    def load(data: dict) -> Iterator[str]:
        yield from panel.load_shown(data[model], data[device], choices(data))

    def load_if_speculative(data: dict) -> Iterator[Any]:
        if data[speculative]:
            yield from load(data)
        else:
            yield gr.skip()

    def code(data: dict) -> tuple[str, str]:
        # A background refresh: a value that cannot make code yet (a half-typed number) keeps the last code;
        # Send says what is wrong with it.
        try:
            return panel.code(data[model], data[device], choices(data), _shown_prompt(data[prompt], data[chatbot]))
        except Exception as exc:  # noqa: BLE001 - logged below; the code view keeps what it showed
            log.info("show code kept its last text: %s", exc, exc_info=not isinstance(exc, (gr.Error, UserError)))
            return gr.skip(), gr.skip()

    def stop(request: gr.Request) -> None:
        panel.stops.stop(_session(request))

    def clear(request: gr.Request) -> tuple:
        panel.stops.clear(_session(request))
        return [], "", ""

    def model_changed(data: dict) -> tuple:
        """Every control that depends on the entry follows it, and Show code is made from the new values at once
        (a code refresh of its own would race this update and see the old model's draft)."""
        entry = panel.entry(data[model])
        g = entry.generation
        first_draft = _first_draft(entry)
        fresh = {**data, adapter: "", alpha: 1.0, adapter2: "", alpha2: 1.0, speculative: False, draft: first_draft,
                 max_new_tokens: g.max_new_tokens, temperature: g.temperature, top_p: g.top_p, top_k: g.top_k,
                 repetition_penalty: g.repetition_penalty, system: entry.system_prompt}
        python, cpp = panel.code(entry.id, data[device], choices(fresh), _shown_prompt(data[prompt], data[chatbot]))
        return (gr.update(choices=_adapter_choices(entry), value=""), gr.update(value=1.0, interactive=False),
                gr.update(choices=_adapter_choices(entry), value=""), gr.update(value=1.0, interactive=False),
                gr.update(choices=_draft_choices(entry), value=first_draft, interactive=False),
                gr.update(value=False), gr.update(visible=bool(entry.adapters)), gr.update(visible=bool(entry.drafts)),
                g.max_new_tokens, g.temperature, g.top_p, g.top_k, g.repetition_penalty, entry.system_prompt,
                gr.update(samples=_examples(entry), visible=bool(entry.examples)),
                COMPARE_DRAFT if entry.drafts else COMPARE_ADAPTER, python, cpp,
                *[gr.update(interactive=False)] * (len(draft_parts) - 1))

    def adapter_alpha(model_id: str, adapter_id: str) -> Any:
        """The chosen adapter's own alpha from the catalog; back to 1 and locked when the adapter goes to None."""
        if not adapter_id:
            return gr.update(value=1.0, interactive=False)
        return gr.update(value=next((a.alpha for a in panel.entry(model_id).adapters if a.id == adapter_id), 1.0),
                         interactive=True)

    everything = {prompt, chatbot, model, device, compare_prompt, compare_mode, *setting_parts}
    chat_out = [chatbot, prompt, metrics, status]
    shared = dict(**CONCURRENCY, api_visibility="private", show_progress="hidden")
    quick = dict(api_visibility="private", queue=False, show_progress="hidden")
    code_out = [python_code, cpp_code]

    # While a request of this page runs (a load, an answer, a comparison), what cannot act is disabled and Stop
    # is live; otherwise Stop is a plain grey button. ``idle`` follows with .then, which runs after a failure too.
    run_buttons, stop_buttons = [send_btn, retry_btn, compare_btn, load_btn], [stop_btn, compare_stop]

    def busy(request: gr.Request) -> tuple:
        panel.stops.reserve(_session(request))  # Stop is red from here on: a click before the job begins counts
        return (*[gr.update(interactive=False)] * len(run_buttons),
                *[gr.update(interactive=True, variant="stop")] * len(stop_buttons))

    def loading() -> tuple:  # a load alone cannot be stopped half-way: Stop stays grey
        return (*[gr.update(interactive=False)] * len(run_buttons), *[gr.skip()] * len(stop_buttons))

    def idle() -> tuple:
        # A reservation no request picked up (the request failed first) is left alone: the next busy() replaces
        # it, and dropping it here could drop the one another chain of this page has just made.
        return (*[gr.update(interactive=True)] * len(run_buttons),
                *[gr.update(interactive=False, variant="secondary")] * len(stop_buttons))

    def running(event: Any, fn: Any, inputs: Any, outputs: Any, stoppable: bool = True) -> Any:
        """``event`` -> busy -> ``fn`` (queued in the chat line) -> idle."""
        return event(busy if stoppable else loading, None, run_buttons + stop_buttons, **quick) \
            .then(fn, inputs, outputs, **shared) \
            .then(idle, None, run_buttons + stop_buttons, **quick)

    @kept_on_error(outputs=1, status_at=0, now=now)
    def announce(data: dict) -> str:
        """Say what is about to load before it loads, so a first (slow) load never looks frozen."""
        return panel.loading_note(data[model], data[device], choices(data))

    def announce_if_speculative(data: dict) -> Any:
        return announce(data) if data[speculative] else gr.skip()

    for trigger in (send_btn.click, prompt.submit):
        running(trigger, send, everything, chat_out).then(code, everything, code_out, **quick)
    running(examples.click(lambda sample: sample[0], examples, prompt, **quick).then, send, everything, chat_out) \
        .then(code, everything, code_out, **quick)
    running(retry_btn.click, retry, everything, chat_out)
    # Undocumented but callable (tests and API users stop their own session's answers, /chat included).
    stop_btn.click(stop, None, None, queue=False, api_name="stop_chat", api_visibility="undocumented")
    compare_stop.click(stop, None, None, queue=False, api_visibility="private")
    clear_btn.click(clear, None, [chatbot, metrics, prompt], queue=False, api_visibility="private")
    compare_out = [left, right, left_card, right_card, verdict, left_title, right_title, status]
    running(compare_btn.click, compare, everything, compare_out)

    entry_parts = [adapter, alpha, adapter2, alpha2, draft, speculative, lora_box, spec_box, max_new_tokens,
                   temperature, top_p, top_k, repetition_penalty, system, examples, compare_mode, python_code,
                   cpp_code, *draft_parts[1:]]
    running(model.input(kept_on_error(outputs=len(entry_parts), status_at=-1)(model_changed), everything,
                        entry_parts, **quick).then(announce, everything, status, **quick).then, load, everything,
            status, stoppable=False)
    for trigger in (device.input, load_btn.click):
        running(trigger(announce, everything, status, **quick).then, load, everything, status, stoppable=False)
    for part in (speculative, draft, draft_device):
        running(part.input(announce_if_speculative, everything, status, **quick).then, load_if_speculative,
                everything, status, stoppable=False)
    def draft_toggled(on: bool, lookup: bool) -> list:
        # A draft model and prompt lookup exclude each other; tokens per step serve both.
        return [*[gr.update(interactive=on)] * (len(draft_parts) - 3), gr.update(interactive=on or lookup),
                gr.update(interactive=on), gr.update(interactive=on), gr.update(value=False) if on else gr.skip()]

    def lookup_toggled(lookup: bool, on: bool) -> list:
        return [gr.update(visible=lookup), gr.update(interactive=on or lookup),
                gr.update(value=False) if lookup else gr.skip()]

    speculative.change(draft_toggled, [speculative, prompt_lookup], [*draft_parts, prompt_lookup], **quick)
    prompt_lookup.change(lookup_toggled, [prompt_lookup, speculative], [max_ngram, assistant_tokens, speculative],
                         **quick)
    output_kind.change(lambda kind: gr.update(visible=kind != OUTPUT_FREE, placeholder=FORMAT_HINTS.get(kind, "")),
                       output_kind, output_format, **quick)
    adapter.input(adapter_alpha, [model, adapter], alpha, **quick)
    adapter2.input(adapter_alpha, [model, adapter2], alpha2, **quick)
    spec_mode.change(lambda mode: (gr.update(visible=mode == SPEC_FIXED), gr.update(visible=mode == SPEC_CONFIDENCE)),
                     spec_mode, [assistant_tokens, threshold], **quick)
    # Not on the model's change: model_changed makes that code itself, from the new entry's values.
    gr.on([c.change for c in (device, *setting_parts)], code, everything, code_out, **quick)

    _declare_api(panel)


def warm_up(entry: ChatEntry, suite: Suite) -> None:
    """Presenter mode: a short answer from every pipeline the tab opens with: plain, with the first draft (Compare
    runs both) and with the first adapter, so the first answer on stage pays for no first-inference work."""
    panel = ChatPanel(suite)
    prompt = entry.examples[0] if entry.examples else "Hello!"
    runs = [dict(adapter="", draft="")]
    runs += [dict(adapter="", draft=entry.drafts[0].id)] if entry.drafts else []
    runs += [dict(adapter=entry.adapters[0].id, draft="")] if entry.adapters else []
    for run in runs:
        for _ in panel.api_stream(prompt, entry.id, [], "", run["adapter"], 0.0, run["draft"], "", 8, -1.0):
            pass


def _shown_prompt(typed: str, history: list[dict] | None) -> str:
    """The prompt Show code uses: what is typed, else the last message sent."""
    if typed and typed.strip():
        return typed.strip()
    last_user = next((m for m in reversed(history or []) if m.get("role") == "user"), None)
    return text_of(last_user.get("content")) if last_user else ""


def _session(request: gr.Request | None) -> str:
    return serving.session_key(request)  # a caller without a session gets a key of its own


def _declare_api(panel: ChatPanel) -> None:
    """``/chat`` exactly as DESIGN §6: plain typed inputs, streamed reply, then (reply, metrics)."""

    def chat(prompt: str, model: str, history: list[dict] = [],  # noqa: B006 - read-only; shown in the API docs
             system_prompt: str = "", adapter: str = "", adapter_alpha: float = 1.0, draft: str = "",
             device: str = "", max_new_tokens: int = 256, temperature: float = 0.0, prompt_lookup: bool = False,
             max_ngram_size: int = 0, assistant_tokens: int = 0, adaptive: bool = True, json_schema: str = "",
             regex: str = "", request: gr.Request = None) -> Iterator[tuple[str, dict]]:  # type: ignore[assignment]
        """Chat with a catalog model; streams the reply, then returns (reply, metrics).

        Args:
            prompt: the user's message.
            model: a chat model id from the catalog.
            history: earlier turns as [{"role": "user" | "assistant" | "system", "content": "..."}].
            system_prompt: system prompt ("" = the model's default from the catalog).
            adapter: LoRA adapter id ("" = none); blend several as "id1:0.6,id2:0.3".
            adapter_alpha: the adapter's alpha (<= 0 = the catalog's alpha).
            draft: draft model id for speculative decoding ("" = none).
            device: CPU, GPU, NPU or AUTO ("" = the app's default device).
            max_new_tokens: answer length limit (<= 0 = the model's default).
            temperature: 0 = greedy; higher samples more freely (< 0 = the model's default).
            prompt_lookup: speculative decoding with candidates copied from the prompt, no draft model.
            max_ngram_size: prompt lookup's longest n-gram (<= 0 = 3).
            assistant_tokens: draft or prompt-lookup tokens per step (<= 0 = 5).
            adaptive: turn a draft that is rarely accepted off for the rest of the answer.
            json_schema: structured output: the reply is JSON valid against this schema ("" = free text).
            regex: structured output: the reply matches this regex ("" = free text).
        The metrics carry a reasoning model's thinking as "thinking" (never in the reply), and "adaptive" when the
        draft was turned off part-way.
        """
        yield from panel.api_stream(prompt, model, history or [], system_prompt or "", adapter or "",
                                    adapter_alpha, draft or "", device or "", max_new_tokens, temperature,
                                    _session(request), prompt_lookup, max_ngram_size, assistant_tokens, adaptive,
                                    json_schema or "", regex or "")

    api_fn = guarded(chat)
    # gr.api derives one output per element of a tuple return annotation; a generator's Iterator[tuple[...]]
    # would count as a single output, so present the yielded pair to it as the return type.
    api_fn.__signature__ = inspect.signature(chat).replace(return_annotation=tuple[str, dict])
    gr.api(api_fn, api_name="chat", **CONCURRENCY)
