"""The Voice panel: text to speech with Text2SpeechPipeline, and Talk (microphone -> Whisper -> LLM -> speech).

Speak: the text is split into sentences (``sentences``) and spoken one ``generate`` at a time (``speaker``); each
sentence streams to the player as it is made, so the first plays while the rest are made, and Stop ends after the
current sentence, keeping what was spoken. ``/speak`` and ``/voice_chat`` (DESIGN §6a) are the same paths without
the UI.
"""
from __future__ import annotations

from typing import Any, Iterator

import gradio as gr
from gradio.data_classes import FileData

from demos.core import serving
from demos.core.catalog import Entry, VoiceEntry
from demos.core.checks import whole
from demos.core.errors import UserError
from demos.core.showcode import model_reference
from demos.core.suite import Suite
from demos.panels.voice import live, prepare, talk
from demos.panels.voice.code import cpp_code, python_code
from demos.panels.voice.speaker import Queued, Speech, Spoken, speak
from demos.ui import columns, loading
from demos.ui.uploads import checked_upload
from demos.ui.widgets import (code_view, device_picker, guarded, keep_outputs_on_error, load_note, metrics_card,
                              metrics_markdown, model_picker, reporting)

PANEL = "voice"
CONCURRENCY = "voice-pipeline"
EXAMPLES = ["Hello! This is OpenVINO GenAI speaking.",
            "Text to speech runs on your own machine. Each sentence is spoken as soon as it is made. Press Stop to "
            "end after the current one."]


def _adapter_choices(entry: Any) -> list[tuple[str, str]]:
    return [("None", "")] + [(a.title, a.id) for a in getattr(entry, "adapters", [])]


def _draft_choices(entry: Any) -> list[tuple[str, str]]:
    return [("None", "")] + [(d.title, d.id) for d in getattr(entry, "drafts", [])]


def _voice_choices(entry: VoiceEntry) -> list[tuple[str, str]]:
    return [("Default (built-in)", "")] + [(v.title, v.id) for v in entry.voices]


def _voice_file(suite: Suite, entry: VoiceEntry, voice_id: str) -> str | None:
    voice = next((v for v in entry.voices if v.id == voice_id), None)
    if voice is None:
        return None
    local = suite.catalog.local_path(voice.source)
    if local is not None:
        return str(local / voice.file) if voice.file else str(local)
    return voice.file


def _code(suite: Suite, ready: prepare.Ready, text: str, voice_id: str) -> tuple[str, str]:
    key = ready.handle.loaded.key
    model = model_reference(suite, ready.entry, key.device)
    voice_file = _voice_file(suite, ready.entry, voice_id)
    return python_code(model, key, text, voice_file), cpp_code(model, key, text, voice_file)


def _file_path(audio: Any) -> str:
    if isinstance(audio, FileData):
        audio = audio.model_dump()
    if audio is None or audio == "":
        raise UserError("no audio: record or upload what you want to say (gradio_client.handle_file('q.wav'))",
                        param="audio")
    return checked_upload(audio.get("path") if isinstance(audio, dict) else None, "audio")


def _progress_line(item: Queued | Spoken, count: int) -> str:
    if isinstance(item, Queued):
        return serving.place_note(item.ahead)
    return f"Spoke sentence {item.index + 1} of {count}…" if item.index + 1 < count else "Finishing…"


# ---------------------------------------------------------------------------------------------------------
# API


def build_api(suite: Suite, runs: serving.Sessions) -> None:
    def speak_api(text: str, model: str, voice: str = "", device: str = "",
                  request: gr.Request = None) -> tuple[str, dict]:  # type: ignore[assignment]
        """Speak text with an OpenVINO GenAI Text2SpeechPipeline (SpeechT5), sentence by sentence.

        Args:
            text: what to say.
            model: a voice model id of the catalog.
            voice: a voice (speaker embedding) id of that model; "" = the pipeline's built-in voice.
            device: CPU, GPU, NPU or AUTO; "" uses the app's default.
        Returns:
            The speech as a WAV file (16-bit PCM) and a metrics dict.
        """
        ready = prepare.ready(suite, model, text, voice, device)
        with runs.request(serving.session_key(request)) as control:
            *_, speech = speak(ready.handle.pipeline, serving.lane_for(ready.handle.loaded), ready.sentences,
                               ready.embedding, control)
        return str(prepare.save(speech)), prepare.result_metrics(speech, ready)

    speak_api.__name__ = "speak"
    gr.api(guarded(speak_api), api_name="speak", concurrency_id=CONCURRENCY)

    def voice_chat(audio: FileData, chat_model: str, speech_model: str, voice_model: str,
                   history: list[dict] = [],  # noqa: B006 - read-only; shown in the API docs
                   voice: str = "", max_new_tokens: int = 256,
                   request: gr.Request = None) -> tuple[str, str, str, dict]:  # type: ignore[assignment]
        """One spoken turn: Whisper transcribes the audio, the chat model answers, the voice model speaks it.

        Args:
            audio: what the user said (wav, mp3, ogg, webm ...), sent with handle_file().
            chat_model: a chat model id of the catalog.
            speech_model: a speech (Whisper) model id.
            voice_model: a voice (text-to-speech) model id.
            history: earlier turns as [{"role": "user" | "assistant", "content": "..."}].
            voice: a voice id of the voice model ("" = built-in).
            max_new_tokens: the answer's length limit (<= 0 = the chat model's default).
        Returns:
            The transcript, the reply, the reply spoken as a WAV file, and a metrics dict.
        """
        path = _file_path(audio)
        limit = whole("max_new_tokens", max_new_tokens, -2**31 + 1, None)
        talk.check_models(suite, chat_model, speech_model)
        ready = prepare.open_voice(suite, voice_model, voice)  # the voice and its pipeline, checked first
        with runs.request(serving.session_key(request)) as control:
            *_, done = talk.turn(suite, ready, path, chat_model, speech_model, history or [], limit, control)
        return done.transcript, done.reply, str(prepare.save(done.speech, "reply")), _talk_metrics(done, ready)

    gr.api(guarded(voice_chat), api_name="voice_chat", concurrency_id=CONCURRENCY)


def _talk_metrics(done: talk.Turn, ready: prepare.Ready) -> dict:
    metrics = prepare.result_metrics(done.speech, ready)
    return {**{k: v for k, v in done.metrics.items() if v is not None}, **metrics}


# ---------------------------------------------------------------------------------------------------------
# UI


def build(entries: list[Entry], suite: Suite) -> None:
    """The Voice tab's body (called inside ``gr.Tab``). Nothing is loaded until the first request."""
    entries = suite.stage_first(entries)
    runs = serving.Sessions()
    first: VoiceEntry = entries[0]  # type: ignore[assignment]
    gr.Markdown("Type text and a SpeechT5 voice speaks it, sentence by sentence: the first sentence plays while "
                "the rest are made, and **Stop** ends after the current one. **Talk** answers what you say: "
                "Whisper listens, the chat model answers, the voice speaks the answer as it is written.")
    with gr.Tab("Speak", elem_id="voice-speak-tab"):
        with gr.Row(equal_height=False):
            with columns.side(scale=5, min_width=340):
                with gr.Row():
                    model = model_picker(entries, scale=3, elem_id="voice-model")
                    device = device_picker(suite.runtime.devices(), suite.default_device, scale=1)
                voice = gr.Dropdown(_voice_choices(first), value="", label="Voice", elem_id="voice-voice")
                text = gr.Textbox(label="Text", lines=5, max_lines=14, elem_id="voice-text",
                                  info=f"Up to {first.generation.max_chars} characters; spoken sentence by sentence")
                with columns.run_row():  # on a phone, what follows goes under the results
                    go = gr.Button("Speak", variant="primary", elem_id="voice-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="voice-stop")
                gr.Examples([[e] for e in EXAMPLES], [text], label="Examples")
            with columns.results(scale=7, min_width=340):
                status = gr.Markdown(elem_id="voice-status")
                now = live.player("voice-live")  # each sentence plays as soon as it is made
                player = gr.Audio(label="Speech (WAV: play again or download)", type="filepath", interactive=False,
                                  buttons=["download"], elem_id="voice-player")
                metrics = metrics_card(elem_id="voice-metrics")
                code_py, code_cpp = code_view()

    def on_model(model_id: str) -> Any:
        entry = prepare.entry_for(suite, model_id)
        return gr.Dropdown(choices=_voice_choices(entry), value="")

    model.change(guarded(on_model), model, voice, api_visibility="private")

    def speak_ui(text_value: str, model_id: str, device_name: str, voice_id: str,
                 request: gr.Request) -> Iterator[tuple]:
        keep = gr.skip()
        # Refused text or voice leaves the last speech where it was (``reporting`` puts the reason in the status).
        entry, sentences, _ = prepare.check(suite, model_id, text_value, voice_id)
        with runs.request(serving.session_key(request)) as control:
            if (device_name or suite.default_device) in suite.is_loaded(entry):
                ready = prepare.ready(suite, model_id, text_value, voice_id, device_name)
            else:
                ready = yield from loading.follow(
                    f"**{entry.title}** on {device_name or suite.default_device}",
                    lambda report: prepare.ready(suite, model_id, text_value, voice_id, device_name, report),
                    lambda tracker: (tracker.html(), keep, keep, keep, keep, keep))
            py, cpp = _code(suite, ready, text_value, voice_id)
            shown = live.Run()
            yield (f"Speaking {len(sentences)} sentence{'s' if len(sentences) != 1 else ''}…", shown.html(), None,
                   "", py, cpp)
            speech: Speech | None = None
            for item in speak(ready.handle.pipeline, serving.lane_for(ready.handle.loaded), ready.sentences,
                              ready.embedding, control):
                if isinstance(item, Speech):
                    speech = item
                elif isinstance(item, Spoken):
                    yield _progress_line(item, len(sentences)), shown.add(item), keep, keep, keep, keep
                else:
                    yield _progress_line(item, len(sentences)), keep, keep, keep, keep, keep
        assert speech is not None
        note = load_note(ready.handle)
        head = (f"**Stopped** after {speech.spoken} of {speech.count} sentences: {speech.seconds:.1f} s kept"
                if speech.stopped else f"**Done**: {speech.seconds:.1f} s of speech in {speech.count} "
                f"sentence{'s' if speech.count != 1 else ''}")
        saved = str(prepare.save(speech)) if speech.spoken else None
        yield (" · ".join(x for x in (head, note) if x), keep, saved,
               metrics_markdown(prepare.result_metrics(speech, ready)), py, cpp)

    def stop_ui(request: gr.Request) -> str:
        if not runs.stop(serving.session_key(request)):
            return "Nothing is running."
        return "Stopping after the current sentence…"

    outputs = [status, now, player, metrics, code_py, code_cpp]
    unchanged = (gr.skip(),) * (len(outputs) - 1)
    spoken = go.click(reporting(speak_ui, lambda message: (f"**Not spoken:** {message}", *unchanged)),
                      [text, model, device, voice], outputs, api_name="speak_ui", concurrency_id=CONCURRENCY,
                      show_progress_on=[status])
    keep_outputs_on_error(spoken, [status])
    stop.click(stop_ui, None, status, api_name="stop_speaking", queue=False)

    _build_talk(suite, runs, entries)
    build_api(suite, runs)


def _build_talk(suite: Suite, runs: serving.Sessions, entries: list[Entry]) -> None:
    chats, speeches = suite.catalog.entries("chat"), suite.catalog.entries("speech")
    with gr.Tab("Talk", elem_id="voice-talk-tab"):
        if not chats or not speeches:
            gr.Markdown("Talk needs a chat entry and a speech (Whisper) entry in models.yaml.")
            return
        with gr.Row(equal_height=False):
            with columns.side(scale=5, min_width=340):
                with gr.Row():
                    chat_model = model_picker(chats, label="Chat model", elem_id="talk-chat-model")
                    speech_model = model_picker(speeches, label="Listening (Whisper)", elem_id="talk-speech-model")
                with gr.Row():
                    adapter = gr.Dropdown(_adapter_choices(chats[0]), value="", label="LoRA adapter",
                                          elem_id="talk-adapter")
                    draft = gr.Dropdown(_draft_choices(chats[0]), value="", label="Draft (speculative decoding)",
                                        elem_id="talk-draft")
                with gr.Row():
                    voice_model = model_picker(entries, label="Voice model", elem_id="talk-voice-model")
                    voice = gr.Dropdown(_voice_choices(entries[0]), value="", label="Voice",  # type: ignore[arg-type]
                                        elem_id="talk-voice")
                said = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Say something",
                                elem_id="talk-audio")
                with columns.run_row():
                    go = gr.Button("Talk", variant="primary", elem_id="talk-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="talk-stop")
                    clear = gr.Button("Clear", elem_id="talk-clear")
            with columns.results(scale=7, min_width=340):
                status = gr.Markdown(elem_id="talk-status")
                conversation = gr.Chatbot(label="Conversation", height=320, elem_id="talk-chat")
                now = live.player("talk-live")
                player = gr.Audio(label="Answer (WAV)", type="filepath", interactive=False, buttons=["download"],
                                  elem_id="talk-player")
                metrics = metrics_card(elem_id="talk-metrics")

    def on_voice_model(model_id: str) -> Any:
        return gr.Dropdown(choices=_voice_choices(prepare.entry_for(suite, model_id)), value="")

    voice_model.change(guarded(on_voice_model), voice_model, voice, api_visibility="private")

    def on_chat_model(model_id: str) -> tuple:
        entry = suite.catalog.entry(model_id, "chat")
        return gr.Dropdown(choices=_adapter_choices(entry), value=""), gr.Dropdown(choices=_draft_choices(entry),
                                                                                   value="")

    chat_model.change(guarded(on_chat_model), chat_model, [adapter, draft], api_visibility="private")

    def talk_ui(audio_path: str | None, history: list[dict] | None, chat_id: str, speech_id: str, voice_id_model: str,
                voice_id: str, adapter_id: str, draft_id: str, request: gr.Request) -> Iterator[tuple]:
        keep = gr.skip()
        if not audio_path:
            raise UserError("Record or upload what you want to say first.", param="audio")
        history = list(history or [])
        talk.check_models(suite, chat_id, speech_id, adapter_id or "", draft_id or "")
        talk.check_heard(audio_path)
        with runs.request(serving.session_key(request)) as control:
            yield "Loading the voice…", keep, keep, keep, keep
            ready = prepare.open_voice(suite, voice_id_model, voice_id)
            shown_live = live.Run()
            yield "Listening…", keep, shown_live.html(), None, keep
            shown = history
            count = 0
            for item in talk.turn(suite, ready, audio_path, chat_id, speech_id, history, 0, control,
                                  adapter=adapter_id or "", draft=draft_id or ""):
                if isinstance(item, talk.Heard):
                    shown = history + [{"role": "user", "content": item.transcript}]
                    yield f"Heard you in {item.transcribe_ms:.0f} ms; answering…", shown, keep, keep, keep
                elif isinstance(item, talk.Writing):
                    yield keep, shown + [{"role": "assistant", "content": item.text or "…"}], keep, keep, keep
                elif isinstance(item, Spoken):
                    count += 1
                    yield f"Speaking sentence {count}…", keep, shown_live.add(item), keep, keep
                elif isinstance(item, talk.Turn):
                    final = shown + [{"role": "assistant", "content": item.reply}]
                    head = "**Stopped**: kept what was spoken" if control.stopped else \
                        f"**Done**: {item.speech.seconds:.1f} s of speech"
                    saved = str(prepare.save(item.speech, "reply")) if item.speech.spoken else None
                    yield head, final, keep, saved, metrics_markdown(_talk_metrics_card(item, ready))

    def stop_ui(request: gr.Request) -> str:
        return "Stopping after the current sentence…" if runs.stop(serving.session_key(request)) \
            else "Nothing is running."

    outputs = [status, conversation, now, player, metrics]
    unchanged = (gr.skip(),) * (len(outputs) - 1)
    talked = go.click(reporting(talk_ui, lambda message: (f"**Not answered:** {message}", *unchanged)),
                      [said, conversation, chat_model, speech_model, voice_model, voice, adapter, draft], outputs,
                      api_visibility="private", concurrency_id=CONCURRENCY, show_progress_on=[status])
    keep_outputs_on_error(talked, [status])
    stop.click(stop_ui, None, status, api_visibility="private", queue=False)
    clear.click(lambda: ([], "", None, ""), None, [conversation, now, player, metrics], api_visibility="private",
                queue=False)


def _talk_metrics_card(done: talk.Turn, ready: prepare.Ready) -> dict:
    metrics = _talk_metrics(done, ready)
    return {k: v for k, v in metrics.items() if not isinstance(v, dict)}


def warm_up(entry: VoiceEntry, suite: Suite) -> None:
    """Presenter mode: speak the first example once, so the first sentence on stage does not compile."""
    ready = prepare.ready(suite, entry.id, EXAMPLES[0], "")
    for _ in speak(ready.handle.pipeline, serving.lane_for(ready.handle.loaded), ready.sentences, ready.embedding):
        pass
