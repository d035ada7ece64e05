"""The Vision panel: chat about one or more images with ``openvino_genai.VLMPipeline``, plus ``/ask_image``.

Images come in through the multimodal box (upload, drop, paste) or the webcam, several per message and new ones
in any later message. Answers stream; Stop ends the generation at the next token (the streamer returns
``StreamingStatus.STOP``); switching model or device mid-chat carries the whole conversation, images included,
over to the new pipeline. The conversation itself is kept server-side (``gr.State``); the Chatbot only shows it.
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from gradio.data_classes import FileDataDict

from demos.core import files

from demos.core import serving

from demos.panels.vision import answering
from demos.panels.vision import models as vision_models
from demos.core.catalog import Entry, VisionEntry
from demos.core.errors import TooLarge, UserError
from demos.core.showcode import model_reference
from demos.ui.remote import remote_code, remote_note
from demos.core.suite import Handle, Suite
from demos.ui import loading
from demos.ui.widgets import (code_view, device_picker, entry_for, gradio_progress, guarded, keep_outputs_on_error,
                 load_note, metrics_card, metrics_markdown, model_picker, numbers_only, reporting)
from demos.panels.vision.engine import Answer, Settings
from demos.panels.vision.code import CodeRequest, cpp_code, python_code
from demos.panels.vision.inputs import (DEFAULT_FRAMES, ChatTurn, FileRef, check_files, file_ref, history_turns, prepared_video,
                                        split_files)
from demos.panels.vision.strip import write_strip
from demos.panels.vision.video_api import ask_video_api
from demos.panels.vision.samples import sample_images

PANEL = "vision"
VIDEO_TYPES = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".m4v", ".avi")  # as demos.core.video.SUFFIXES
CONCURRENCY = "vision"  # every event that generates on a vision pipeline
# No per-pipeline limit in Gradio: each pipeline's scheduler decides (a batcher steps first questions together on
# CPU/GPU, a lane serves a VLMPipeline one turn at a time); demos.ui.capacity bounds the panel's requests in
# progress. Gradio's smallest limit per id wins, so each event says so.
UNLIMITED = dict(concurrency_id=CONCURRENCY, concurrency_limit=None)
STOPPED_MARK = " *(stopped)*"
METRICS_HINT = "*TTFT, tokens/s, vision encoding and load time of each answer appear here.*"
# Pictures in the conversation at a size that leaves the words readable (Gradio's Chatbot shows them as wide as
# the message column); a click on one still opens it full size.
PICTURE_CSS = ("<style>#vision-chatbot .message-row img, #vision-chatbot .message img "
               "{max-height: 240px; max-width: min(100%, 360px); width: auto; height: auto; object-fit: contain;}"
               "</style>")

# -------------------------------------------------------------------------------------------------------------
# Shared by the UI and the API


_settings = answering.settings_for
_check_bounds = answering.check_bounds
_answers = answering.answers
_answers_metrics = answering.answers_metrics


def _load(suite: Suite, entry: Entry, device: str, progress: Any = None,
          chat: list[ChatTurn] | None = None) -> tuple[Handle, vision_models.ModelFacts]:
    """The pipeline that answers ``chat``: a first question goes to the batched pipeline (CPU/GPU: answered
    together with other first questions), a later turn to the VLMPipeline that keeps the conversation."""
    report = gradio_progress(progress) if progress is not None else None
    return answering.load(suite, entry, device, chat=chat, **({"progress": report} if report else {}))


def _check_turn(entry: VisionEntry, question: str, files: list[FileRef], earlier: list[ChatTurn],
                videos: list[FileRef] | tuple[FileRef, ...] = ()) -> str:
    """The question, stripped; ``UserError`` for what cannot be answered."""
    question = answering.check_question(entry, question, files, earlier, videos)
    _check_sizes(files)
    check_files(files)
    return question


def _sampled(suite: Suite, entry: VisionEntry, device: str, turn: ChatTurn) -> ChatTurn:
    """``turn`` with its video's frames sampled now (a damaged stream is refused before the answer starts) and
    the strip of those frames to show under the question. The model's budget applies when its folder is here;
    otherwise frames keep their decoded size and are scaled once the model is known (``inputs.prepared_video``)."""
    if not turn.videos:
        return turn
    status = suite.locate(entry, device or suite.default_device)
    facts = vision_models.facts(status.path) \
        if status.path is not None and (status.path / "config.json").exists() else None
    if facts is not None and not vision_models.takes_video(entry.video, facts):  # refused before it is shown
        raise UserError(f"{entry.title} takes no video (its model type, {facts.model_type}, has no video input in "
                        "OpenVINO GenAI): choose a model that does (Qwen2-VL, Qwen2.5-VL …) or ask about images",
                        param="video")
    budget = facts.budget if facts is not None else None
    ref = turn.videos[0]
    sampled = prepared_video(ref, turn.frames, budget, entry.max_video_seconds)
    caption = (f"Video {ref.name} · {len(sampled.indices)} of {sampled.total} frames · "
               f"{sampled.array.shape[2]}×{sampled.array.shape[1]} px")
    return replace(turn, strip=str(write_strip(sampled.array, sampled.digest)), caption=caption)


def _check_sizes(refs: list[FileRef]) -> None:
    """Images over the panel's limit are refused, and the refused upload is not kept (Gradio holds every upload
    to the larger global limit)."""
    limit = files.limits().image_mb
    for ref in refs:
        try:
            size = Path(ref.path).stat().st_size
        except OSError:
            continue  # check_files says the file is gone, in its words
        if size > limit * files.MB:
            files.remove_inside(ref.path, gr.utils.get_upload_folder())
            raise TooLarge(f"{ref.name} is {files.megabytes(size)}; the Vision panel takes images up to {limit:g} MB:"
                           " scale it down or save it as JPEG", param="image")


def warm_up(entry: Entry, suite: Suite) -> None:
    """Presenter mode: a short answer about the first example picture, so the first question on stage pays for
    no first-inference work (image encoder and language model both run)."""
    if not isinstance(entry, VisionEntry):
        return
    picture = sample_images()[0]
    question = entry.examples[0] if entry.examples else "What is in the picture?"
    chat = [ChatTurn(question, (FileRef(str(picture), picture.name),))]
    handle, facts = _load(suite, entry, "", chat=chat)
    for _ in _answers(handle, facts, chat, _settings(entry, 8)):
        pass


# -------------------------------------------------------------------------------------------------------------
# /ask_image


def ask_image_api(suite: Suite, runs: serving.Sessions | None = None):
    """The ``/ask_image`` endpoint function for ``suite`` (see the README's API section); ``runs``: the panel's
    running answers, so that the session's Stop reaches this one too."""
    runs = runs or serving.Sessions()

    def ask_image(image: FileDataDict | None, question: str, model: str, history: list = [],  # noqa: B006
                  max_new_tokens: int = 256, device: str = "",
                  request: gr.Request = None) -> Iterator[tuple[str, dict]]:  # type: ignore[assignment]
        """Ask a question about an image with a visual-language model; streams the reply, then its metrics.

        Args:
            image: the picture (a file); may be empty when an earlier message in ``history`` holds one.
            question: what to ask about it.
            model: a vision model id from models.yaml.
            history: earlier turns as [{"role": "user"|"assistant", "content": text or [text, files...]}].
            max_new_tokens: the longest reply (0 = the model's default).
            device: CPU, GPU, NPU or AUTO ("" = the app's default).
        """
        settings = _settings(entry_for(suite, PANEL, model), max_new_tokens)  # bad numbers before any file
        scratch = files.Scratch()  # data-URL images this request wrote: a refused request keeps none of them
        try:
            with scratch.collecting():
                entry = entry_for(suite, PANEL, model)
                earlier = history_turns(history, answering.gif_videos(suite, entry, device))
                refs = [ref] if (ref := file_ref(image, "image")) else []
                question = _check_turn(entry, question, refs, earlier)
            chat = [*earlier, ChatTurn(question, tuple(refs))]
            _check_bounds(suite, entry, device, chat, settings)
            handle, facts = _load(suite, entry, device, chat=chat)
            with runs.request(serving.session_key(request)) as run:
                for item in _answers(handle, facts, chat, settings, run):
                    yield (item.text, item.metrics) if isinstance(item, Answer) else (item, {})
        except BaseException:  # GeneratorExit too: a client that went away keeps nothing on the disk either
            scratch.discard()
            raise

    api = guarded(ask_image)
    # gr.api reads the outputs from the return annotation: the generator streams (reply, metrics) pairs.
    api.__signature__ = inspect.signature(ask_image).replace(return_annotation=tuple[str, dict])
    return api


# -------------------------------------------------------------------------------------------------------------
# The UI


def _constraints(suite: Suite, entry: VisionEntry, device: str) -> str:
    """What this model and device can and cannot do, from the model's files when they are already here."""
    lines = [f"**{entry.title}** · up to {entry.max_images} image(s) per conversation"]
    if entry.backend is not None:
        return "\n".join(lines + [f"- {remote_note(entry)}"])
    status = suite.locate(entry, device)
    if status.path is not None and (status.path / "config.json").exists():
        facts = vision_models.facts(status.path)
        lines[0] += f" · sees {facts.budget.describe()}"
        if facts.context_tokens:
            lines[0] += f" · context {facts.context_tokens} tokens"
        lines += [f"- {note}" for note in facts.notes]
    else:
        facts = None
        lines.append("- Image limits are shown once the model has been fetched (Models tab or first question).")
    lines.append(f"- {_video_note(entry, facts)}")
    lines += [f"- {note}" for note in vision_models.device_notes(device)]
    return "\n".join(lines)


def _video_note(entry: VisionEntry, facts: vision_models.ModelFacts | None) -> str:
    """Whether this entry takes videos, and how many frames of how long a video."""
    takes = vision_models.takes_video(entry.video, facts)
    if takes is False:
        return "**Takes no video** (images only): choose a Qwen2-VL or Qwen2.5-VL entry to ask about a video."
    limits = (f"up to {entry.max_frames} frames sampled evenly from a video of up to "
              f"{entry.max_video_seconds / 60:g} min (MP4, WebM, MOV, MKV, animated GIF)")
    if takes is None:
        return f"Video: {limits}, if the model takes video (known once it has been fetched)."
    return f"**Takes video**: {limits}; two frames make one step of the video encoder."


def _chat_messages(chat: list[ChatTurn], partial: str | None = None) -> list[dict]:
    """The Chatbot's messages for ``chat`` (its last turn still being answered when ``partial`` is given)."""
    messages: list[dict] = []
    for turn in chat:
        content: list[Any] = [{"path": ref.path, "alt_text": ref.name} for ref in turn.files]
        content.append({"type": "text", "text": turn.text})
        if turn.strip:  # the frames the model is shown, under the question
            content.append({"type": "text", "text": turn.caption})
            content.append({"path": turn.strip, "alt_text": turn.caption})
        messages.append({"role": "user", "content": content})
        reply = turn.reply if turn.reply is not None else partial
        if reply is not None:
            shown = reply + (STOPPED_MARK if turn.stopped else "")
            messages.append({"role": "assistant", "content": [{"type": "text", "text": shown or "…"}]})
    return messages


def _code(suite: Suite, entry: VisionEntry, device: str, chat: list[ChatTurn], settings: Settings,
          facts: vision_models.ModelFacts | None = None) -> tuple[str, str]:
    if entry.backend is not None:  # served by a model server: no pipeline code to show
        return remote_code(entry)
    status = suite.locate(entry, device)
    if facts is None and status.path is not None and (status.path / "config.json").exists():
        facts = vision_models.facts(status.path)  # the scaling the demo applies, once the model is here
    request = CodeRequest(entry=entry, device=device, model_dir=status.path,
                          properties=suite.properties(entry, device),
                          turns=[(t.text, [f.name for f in t.files]) for t in chat],
                          videos=[[(v.name, t.frames) for v in t.videos] for t in chat],
                          max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                          top_p=settings.top_p, budget=facts.budget if facts else None,
                          local=status.kind == "local", model=model_reference(suite, entry, device))
    return python_code(request), cpp_code(request)


def _metrics_text(metrics: dict[str, Any], note: str = "") -> str:
    text = metrics_markdown({k: v for k, v in metrics.items() if k != "stopped"})
    if metrics.get("stopped"):
        text += " · **Stopped** by user"
    return text + (f"  \n{note}" if note else "")


def build(entries: list[Entry], suite: Suite) -> None:
    """The Vision tab's body (called inside ``gr.Tab``); nothing is loaded until the first question."""
    vision_entries = suite.stage_first([e for e in entries if isinstance(e, VisionEntry)])
    first = vision_entries[0]
    by_id = {e.id: e for e in vision_entries}
    runs = serving.Sessions()  # this app's answers per session: Stop and Clear reach the caller's own only
    samples = [str(p) for p in sample_images()]

    def example_rows(entry: VisionEntry) -> list[list[dict]]:
        texts = entry.examples or ["What is in the picture?"]
        return [[{"text": text, "files": [samples[i % len(samples)]]}] for i, text in enumerate(texts)]

    with gr.Row():
        model = model_picker(vision_entries, scale=3, elem_id="vision-model")
        device = device_picker(suite.runtime.devices(), suite.default_device, scale=1, elem_id="vision-device")
    constraints = gr.Markdown(_constraints(suite, first, device.value), elem_id="vision-constraints")
    chatbot = gr.Chatbot(label="Conversation", height=460, buttons=["copy"], elem_id="vision-chatbot",
                         placeholder="Attach one or more images, or a video, and ask about them.")
    # On stage the first example (picture and question) is in the box: Send is the first click, and it answers.
    textbox = gr.MultimodalTextbox(example_rows(first)[0][0] if suite.presenter else None,
                                   file_count="multiple", file_types=["image", "video", *VIDEO_TYPES],
                                   sources=["upload"],
                                   placeholder="Ask about your images or a video: drop, paste or upload them here…",
                                   show_label=False, submit_btn=True, stop_btn=False, elem_id="vision-input")
    status = gr.Markdown(elem_id="vision-status")
    metrics = metrics_card(value=METRICS_HINT, elem_id="vision-metrics")
    gr.HTML(head=PICTURE_CSS, container=False, padding=False)
    with gr.Row():
        examples = gr.Dataset(components=[textbox], samples=example_rows(first), label="Examples", scale=4,
                              elem_id="vision-examples")
        clear = gr.Button("Clear", scale=1, elem_id="vision-clear")
    with gr.Accordion("Webcam", open=False):
        webcam = gr.Image(sources=["webcam"], type="filepath", format="png", elem_id="vision-webcam",
                          label="Snapshot (added to your next message)")
    with gr.Accordion("Generation settings", open=False):
        g = first.generation
        with gr.Row():
            max_new = gr.Slider(1, 4096, value=g.max_new_tokens, step=1, label="Max new tokens")
            temperature = gr.Slider(0, 2, value=g.temperature, step=0.05, label="Temperature (0 = greedy)")
            top_p = gr.Slider(0.05, 1, value=g.top_p, step=0.05, label="Top-p")
        frames_slider = gr.Slider(1, first.max_frames, value=min(DEFAULT_FRAMES, first.max_frames), step=1,
                                  label="Video frames (sampled evenly, first and last included)",
                                  elem_id="vision-frames")
        for slider in (max_new, temperature, top_p, frames_slider):
            # NaN and text are refused naming the slider, before the answer's event runs; a typed value outside the
            # slider's range reaches the handler, which names the model's own bound in the status line.
            numbers_only(slider, bounds_checked_by_handler=True)
    code_py, code_cpp = code_view()
    chat_state = gr.State([])

    def show_code(model_id: str, device_name: str, chat: list[ChatTurn], tokens: float, temp: float,
                  nucleus: float):
        entry = by_id[model_id]
        return _code(suite, entry, device_name, chat, _settings(entry, tokens, temp, nucleus))

    def on_model(model_id: str, device_name: str, chat: list[ChatTurn]):
        entry = by_id[model_id]
        g = entry.generation
        code = _code(suite, entry, device_name, chat, _settings(entry, g.max_new_tokens))
        return (_constraints(suite, entry, device_name), g.max_new_tokens, g.temperature, g.top_p,
                gr.Dataset(samples=example_rows(entry)), *code,
                gr.Slider(maximum=entry.max_frames, value=min(DEFAULT_FRAMES, entry.max_frames)))

    def on_device(model_id: str, device_name: str, chat: list[ChatTurn], tokens: float, temp: float,
                  nucleus: float):
        return (_constraints(suite, by_id[model_id], device_name),
                *show_code(model_id, device_name, chat, tokens, temp, nucleus))

    def accept(message: dict | None, chat: list[ChatTurn], model_id: str, device_name: str, frames: float,
               request: gr.Request):
        """Check the message before any model work: a mistake is a message, and the chat and the input box are
        left as they were (nothing to retype)."""
        message = message or {}
        entry = entry_for(suite, PANEL, model_id)
        files, videos = split_files([FileRef(p, Path(p).name) for p in message.get("files") or []],
                                    answering.gif_videos(suite, entry, device_name))
        count = answering.frames_for(entry, frames)
        turn = ChatTurn(_check_turn(entry, message.get("text", ""), files, chat, videos), tuple(files),
                        videos=tuple(videos), frames=count)
        turn = _sampled(suite, entry, device_name, turn)
        runs.reserve(serving.session_key(request))  # from now on, Stop and Clear apply to this answer
        yield (message, turn), gr.skip(), ""  # an earlier refusal's message no longer applies

    def show_question(pending: tuple[dict, ChatTurn], chat: list[ChatTurn]):
        busy = gr.MultimodalTextbox(value=None, submit_btn=False, stop_btn=True)
        return busy, _chat_messages([*chat, pending[1]], "")

    def respond(pending: tuple[dict, ChatTurn] | None, chat: list[ChatTurn], model_id: str, device_name: str,
                tokens: float, temp: float, nucleus: float, request: gr.Request,
                progress=gr.Progress(track_tqdm=True)):
        if not pending:
            raise UserError("Nothing to answer: type a question and attach an image")
        message, turn = pending
        entry = entry_for(suite, PANEL, model_id)
        settings = _settings(entry, tokens, temp, nucleus)
        asked = [*chat, turn]
        with runs.request(serving.session_key(request)) as run:
            yield from _respond(message, turn, chat, asked, entry, device_name, settings, run, progress)

    def _respond(message: dict, turn: ChatTurn, chat: list[ChatTurn], asked: list[ChatTurn], entry: VisionEntry,
                 device_name: str, settings: Settings, run: serving.Control, progress: Any) -> Iterator[tuple]:
        skip = gr.skip()
        try:
            _check_bounds(suite, entry, device_name, asked, settings)
            if (device_name or suite.default_device) in suite.is_loaded(entry):
                handle, facts = _load(suite, entry, device_name, progress, chat=asked)
            else:  # a first load: a progress bar with its stage and clock, in the status line under the box
                handle, facts = yield from loading.follow(
                    f"**{entry.title}** on {device_name or suite.default_device}",
                    lambda report: _load(suite, entry, device_name, report, chat=asked),
                    lambda tracker: (skip, _chat_messages(asked, ""), skip, skip, skip, skip, tracker.html()))
            streaming = False
            for item in _answers(handle, facts, asked, settings, run):
                if run.cleared:  # Clear was pressed: leave the emptied chat alone
                    idle = gr.MultimodalTextbox(submit_btn=True, stop_btn=False)
                    yield idle, [], [], METRICS_HINT, skip, skip, ""
                    return
                if isinstance(item, Answer):
                    done = [*chat, replace(turn, reply=item.text, stopped=item.stopped)]
                    code = _code(suite, entry, device_name, done, settings, facts)
                    yield (gr.MultimodalTextbox(submit_btn=True, stop_btn=False), _chat_messages(done), done,
                           _metrics_text(item.metrics, load_note(handle)), *code, "")
                else:
                    # Nothing streamed yet while the model is busy with others: say where this one stands. The
                    # status is emptied once (a "Loading…" no longer applies), then left alone: every token's update
                    # stays as small as it was.
                    shown = item or (f"_{serving.place_note(run.ahead)}_" if run.ahead else item)
                    yield skip, _chat_messages(asked, shown), skip, skip, skip, skip, skip if streaming else ""
                    streaming = True
        except Exception:
            # Give the message back so it can be fixed and sent again; the chat shows what it showed before.
            yield (gr.MultimodalTextbox(value=message, submit_btn=True, stop_btn=False), _chat_messages(chat), chat,
                   skip, skip, skip, skip)
            raise

    def stop_answer(request: gr.Request) -> None:
        runs.stop(serving.session_key(request))

    def clear_chat(request: gr.Request):
        runs.clear(serving.session_key(request))
        return [], [], METRICS_HINT, gr.MultimodalTextbox(value=None, submit_btn=True, stop_btn=False), ""

    def add_snapshot(snapshot: str | None, message: dict | None):
        if not snapshot:
            return gr.skip(), gr.skip()
        message = dict(message or {})
        return {"text": message.get("text", ""), "files": [*(message.get("files") or []), snapshot]}, None

    def use_example(sample: list[dict]) -> dict:
        return sample[0]

    settings_inputs = [max_new, temperature, top_p]
    pending = gr.State(None)
    # Queued (its own queue, no model work): Gradio 6.31 shows no error toast for a failing queue=False event.
    # Outputs hidden: a refused message leaves the chat and the input box as they were, unmarked.
    # A refused message or a failed answer leaves the chat, the box and the figures as they were; the reason is in
    # the status line under the box (and a toast).
    def refusal(message: str) -> str:
        return f"**Not sent:** {message}"
    accepted = textbox.submit(reporting(accept, lambda message: (gr.skip(), gr.skip(), refusal(message))),
                              [textbox, chat_state, model, device, frames_slider], [pending, metrics, status],
                              show_progress="hidden", api_name="vision_accept", api_visibility="undocumented")
    keep_outputs_on_error(accepted, [metrics, status])
    shown = accepted.success(show_question, [pending, chat_state], [textbox, chatbot], queue=False,
                             show_progress="hidden", api_visibility="private")
    answered = shown.success(reporting(respond, lambda message: (*(gr.skip(),) * 6, f"**Not answered:** {message}")),
                             [pending, chat_state, model, device, *settings_inputs],
                             [textbox, chatbot, chat_state, metrics, code_py, code_cpp, status],
                             api_name="vision_respond", api_visibility="undocumented", **UNLIMITED,
                             show_progress="full", show_progress_on=[metrics])
    keep_outputs_on_error(answered, [metrics, status])
    answered.then(lambda: gr.MultimodalTextbox(submit_btn=True, stop_btn=False), None, textbox, queue=False,
                  api_visibility="undocumented")
    textbox.stop(stop_answer, None, None, queue=False, api_name="vision_stop", api_visibility="undocumented")
    clear.click(clear_chat, None, [chatbot, chat_state, metrics, textbox, status], queue=False, api_name="vision_clear",
                api_visibility="undocumented")
    webcam.input(add_snapshot, [webcam, textbox], [textbox, webcam], queue=False, api_visibility="private")
    examples.click(use_example, examples, textbox, queue=False, api_visibility="private")
    model.change(guarded(on_model), [model, device, chat_state],
                 [constraints, max_new, temperature, top_p, examples, code_py, code_cpp, frames_slider], queue=False,
                 api_visibility="private")
    device.change(guarded(on_device), [model, device, chat_state, *settings_inputs], [constraints, code_py, code_cpp],
                  queue=False, api_visibility="private")
    gr.on([max_new.release, temperature.release, top_p.release], guarded(show_code),
          [model, device, chat_state, *settings_inputs], [code_py, code_cpp], queue=False, api_visibility="private")
    gr.api(ask_image_api(suite, runs), api_name="ask_image", **UNLIMITED)
    gr.api(ask_video_api(suite, runs, _load), api_name="ask_video", **UNLIMITED)
    # Show code is filled from the start, before any question.
    code_py.value, code_cpp.value = show_code(first.id, device.value, [], *_defaults(first))


def _defaults(entry: VisionEntry) -> tuple[int, float, float]:
    g = entry.generation
    return g.max_new_tokens, g.temperature, g.top_p
