"""The Speech panel: Whisper transcription and translation of any audio, with timestamps and subtitle files.

The browser hands over a file (upload, microphone recording, or any video/media file); ``audio.load`` turns it
into 16 kHz mono float32; ``transcriber.run`` streams the text while one ``WhisperPipeline.generate`` call
decodes it, window by window for long audio, and stops when asked. ``/transcribe`` (DESIGN §6) is the same path
without the UI.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import numpy as np
from gradio.data_classes import FileData

from demos.core import files

from demos.panels.speech import languages

from demos.core import serving

from demos.panels.speech import prepare as speech_prepare
from demos.panels.speech import subtitles
from demos.core.audio import Audio, from_array, load
from demos.core.catalog import Entry, SpeechEntry
from demos.core.checks import flag
from demos.core.errors import TooLarge, UserError
from demos.core.showcode import model_reference
from demos.ui.remote import remote_code
from demos.panels.speech.code import cpp_code, python_code
from demos.panels.speech.samples import sample_clip
from demos.core.suite import Suite
from demos.panels.speech.transcriber import (MAX_PROMPT_CHARS, Progress, Result, check_audible, find_speech, run,
                                             speech_note)
from demos.ui import loading
from demos.ui.widgets import (code_view, device_picker, entry_for, gradio_progress, guarded, keep_outputs_on_error,
                 load_note, metrics_card, metrics_markdown, model_picker, reporting)
from demos.ui.uploads import checked_upload

PANEL = "speech"
CONCURRENCY = "speech-pipeline"  # the panel's events (demos.ui.capacity bounds them); a lane per pipeline
MEDIA_TYPES = [".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".wma", ".webm", ".mp4", ".mkv",
               ".mov", ".avi", ".m4v", ".3gp", ".amr", ".aiff", ".aif", ".caf"]
SEGMENT_HEADERS = ["Start", "End", "Text"]
TIMESTAMP_CHOICES = [("Off", "off"), ("Segments", "segments"), ("Words", "words")]
TASK_CHOICES = [("Transcribe", "transcribe"), ("Translate to English", "translate")]

# ---------------------------------------------------------------------------------------------------------
# Shared by the UI and the API


_options = speech_prepare.options
_load = speech_prepare.load
_model_codes = speech_prepare.model_codes
_prepare = speech_prepare.prepare
_metrics = speech_prepare.result_metrics


def _read(suite: Suite, model: str, path: str) -> tuple[SpeechEntry, Audio]:
    """The entry and the decoded audio: bad files are refused before any model is fetched or compiled."""
    entry: SpeechEntry = entry_for(suite, PANEL, model)  # type: ignore[assignment]
    _check_size(path)
    decoded = load(path, entry.generation.max_audio_seconds)
    check_audible(decoded)
    return entry, decoded


def _check_size(path: str) -> None:
    """Files over the panel's limit are refused, and the refused upload is not kept (Gradio holds every upload
    to the global limit, which may be larger)."""
    limit = files.limits().audio_mb
    try:
        size = os.stat(path).st_size
    except OSError:
        return  # ``load`` says the file is missing, in its words
    if size > limit * files.MB:
        files.remove_inside(path, gr.utils.get_upload_folder())
        raise TooLarge(f"{Path(path).name} is {files.megabytes(size)}; the Speech panel takes audio and video files "
                       f"up to {limit:g} MB: cut it shorter or compress it (e.g. as mp3 or opus)", param="audio")


def warm_up(entry: SpeechEntry, suite: Suite) -> None:
    """Presenter mode: transcribe 5 s of a gliding tone with the panel's opening settings (segments, auto
    language), so the first clip on stage does not pay for the first-inference compile."""
    seconds = np.arange(5 * 16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (300 + 100 * np.sin(2 * np.pi * 0.5 * seconds)) * seconds)
    clip = from_array(16000, tone.astype(np.float32))
    handle, options = _prepare(suite, entry, "", "", "", "segments")
    for _ in run(handle.pipeline, serving.lane_for(handle.loaded), clip, options):
        pass


def _file_path(audio: Any) -> str:
    """The server-side path of an uploaded file. Anything else (a plain string, a dict naming a file outside
    Gradio's upload folder) is refused with one message: it could name any file here, and a reply that depended on
    the file would tell the client whether it exists."""
    if isinstance(audio, FileData):
        audio = audio.model_dump()
    if audio is None or audio == "":
        raise UserError("no audio: send a file, e.g. gradio_client.handle_file('talk.mp3')", param="audio")
    return checked_upload(audio.get("path") if isinstance(audio, dict) else None, "audio")


# ---------------------------------------------------------------------------------------------------------
# API


def build_api(suite: Suite, runs: serving.Sessions | None = None) -> None:
    """``/transcribe`` exactly as DESIGN §6 (call inside the Blocks); ``runs``: the panel's running transcriptions,
    so that the session's Stop reaches this one too."""
    runs = runs or serving.Sessions()

    def transcribe(audio: FileData, model: str, language: str = "", task: str = "transcribe",
                   timestamps: bool = False, device: str = "", initial_prompt: str = "", hotwords: str = "",
                   skip_silence: bool = True,
                   request: gr.Request = None) -> tuple[str, list[dict], dict]:  # type: ignore[assignment]
        """Transcribe or translate speech with an OpenVINO GenAI WhisperPipeline.

        Args:
            audio: the audio or video file (wav, flac, ogg, mp3, m4a/aac, mp4, ...), sent with handle_file().
            model: a speech model id of the catalog.
            language: a language code such as "en" or "de" (or its name); "" or "auto" detects it.
            task: "transcribe" (same language) or "translate" (into English).
            timestamps: True returns segments with start and end times.
            device: CPU, GPU, NPU or AUTO; "" uses the app's default.
            initial_prompt: text the speech continues (names, spelling, style); not part of the transcript.
            hotwords: words to favour, such as names or jargon ("OpenVINO, GenAI").
            skip_silence: True (default) finds the speech first (Silero VAD) and transcribes only that; audio
                without speech is then refused with "no speech found". False transcribes everything.
        Returns:
            The text, the segments [{start, end, text}] (empty without timestamps) and a metrics dict.
        """
        with_times = flag("timestamps", timestamps)  # truthiness would take NaN, "no" and 2 for True
        skipping = flag("skip_silence", skip_silence)
        prompt = speech_prepare.prompt_text("initial_prompt", initial_prompt)
        words = speech_prepare.prompt_text("hotwords", hotwords)
        speech_prepare.check_prompt_length(prompt, words)
        entry, decoded = _read(suite, model, _file_path(audio))
        handle, options = _prepare(suite, entry, device, language, task, "segments" if with_times else "off",
                                   initial_prompt=prompt, hotwords=words, skip_silence=skipping)
        speech = find_speech(decoded, options)
        with runs.request(serving.session_key(request)) as control:  # the session's Stop reaches it too
            *_, result = run(handle.pipeline, serving.lane_for(handle.loaded), decoded, options, control, speech)
        segments = [s.as_dict() for s in result.segments]
        return result.text, segments, _metrics(result, handle, decoded.warning)

    gr.api(guarded(transcribe), api_name="transcribe", concurrency_id=CONCURRENCY)


# ---------------------------------------------------------------------------------------------------------
# UI


def _default_codes(suite: Suite, entry: Entry) -> list[str]:
    """Languages for the picker before a model is loaded: the model's file if cached, else Whisper's list."""
    try:
        codes = languages.folder_languages(suite.locate(entry).path)
    except Exception:  # noqa: BLE001 - a status problem must not break building the UI
        codes = None
    return codes if codes is not None else list(languages.WHISPER_LANGUAGES)


def _rows(segments: list[subtitles.Segment]) -> list[list[Any]]:
    return [[subtitles.timestamp(s.start, "."), subtitles.timestamp(s.end, "."), s.text.strip()] for s in segments]


def _write_files(result: Result, stem: str) -> list[str]:
    """TXT always; SRT and WebVTT when there are segments. A fresh folder per run in the app's temp folder (Gradio
    copies the files into its cache; older runs are swept)."""
    folder = files.run_folder("speech")
    texts = {f"{stem}.txt": subtitles.to_txt(result.text, result.segments)}
    if result.segments:
        texts[f"{stem}.srt"] = subtitles.to_srt(result.segments)
        texts[f"{stem}.vtt"] = subtitles.to_vtt(result.segments)
    if result.words:
        texts[f"{stem}.words.srt"] = subtitles.to_srt(result.words)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [str(folder / name) for name in texts]


def _stem(path: str) -> str:
    name = Path(path).stem
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "transcript"


def _status(progress: Progress, seconds: float) -> str:
    if progress.waiting:
        ahead = f"{progress.ahead} request{'s' if progress.ahead != 1 else ''} ahead of you" if progress.ahead \
            else "another transcription is running"
        return f"Waiting for the pipeline ({ahead})…"
    if progress.windows == 0:
        return f"Transcribing {seconds:.1f} s of audio…"
    done = min(progress.windows * 30.0, seconds)
    return (f"Window {progress.windows} of ~{progress.expected_windows} decoded "
            f"(about {_clock(done)} of {_clock(seconds)})")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def build(entries: list[Entry], suite: Suite) -> None:
    """The Speech tab's body (called inside ``gr.Tab``). Nothing is loaded until the first request."""
    entries = suite.stage_first(entries)  # presenter mode opens on the warm stage model
    runs = serving.Sessions()  # this app's transcriptions per session: Stop reaches the caller's own only
    first = entries[0]
    gr.Markdown("Upload or record speech (or drop a video): Whisper transcribes it, or translates it into "
                "English, with segment or word timestamps and subtitle files. Long audio is decoded in 30 s "
                "windows with progress, and **Stop** ends it early.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=340):
            with gr.Row():
                model = model_picker(entries, scale=3, elem_id="speech-model")
                device = device_picker(suite.runtime.devices(), suite.default_device, scale=1)
            sample = sample_clip()
            # On stage the box opens with the spoken sample: Transcribe is the first click, and it has audio.
            audio = gr.Audio(str(sample) if sample and suite.presenter else None, sources=["upload", "microphone"],
                             type="filepath", label="Audio (upload or record)", elem_id="speech-audio")
            if sample:
                gr.Examples([[str(sample)]], [audio], label="Sample clip", elem_id="speech-sample")
            media = gr.File(label="…or a video / any other media file", file_types=MEDIA_TYPES, height=120,
                            elem_id="speech-media")
            with gr.Row():
                language = gr.Dropdown(choices=languages.choices(_default_codes(suite, first)),
                                       value=languages.AUTO, label="Language", scale=2)
                default_task = first.generation.task  # type: ignore[attr-defined]
                task = gr.Radio(TASK_CHOICES, value=default_task, label="Task", scale=3)
            timestamps = gr.Radio(TIMESTAMP_CHOICES, value="off", label="Timestamps",
                                  info="Segments give SRT / WebVTT subtitles; words need their own compiled pipeline")
            skip_silence = gr.Checkbox(True, label="Skip silence",
                                       info="A voice-activity detector (Silero VAD) finds the speech; Whisper "
                                            "transcribes only that, so silence costs no time and gets no made-up "
                                            "words", elem_id="speech-skip-silence")
            with gr.Row():
                initial_prompt = gr.Textbox(label="Initial prompt", lines=1, max_lines=4, scale=3,
                                            max_length=MAX_PROMPT_CHARS, elem_id="speech-prompt",
                                            placeholder="Text the speech continues: names, spelling, style")
                hotwords = gr.Textbox(label="Hotwords", lines=1, max_lines=4, scale=2, max_length=MAX_PROMPT_CHARS,
                                      elem_id="speech-hotwords", placeholder="e.g. OpenVINO, GenAI")
            with gr.Row():
                go = gr.Button("Transcribe", variant="primary", elem_id="speech-run")
                stop = gr.Button("Stop", variant="stop", elem_id="speech-stop")
        with gr.Column(scale=7, min_width=380):
            status = gr.Markdown(elem_id="speech-status")
            transcript = gr.Textbox(label="Transcript", lines=8, max_lines=16, buttons=["copy"],
                                    elem_id="speech-text")
            with gr.Tab("Segments"):
                segments = gr.Dataframe(headers=SEGMENT_HEADERS, datatype=["str", "str", "str"],
                                        column_widths=["18%", "18%", "64%"], interactive=False, wrap=True,
                                        max_height=320, elem_id="speech-segments")
            with gr.Tab("Words"):
                words = gr.Dataframe(headers=SEGMENT_HEADERS, datatype=["str", "str", "str"],
                                     column_widths=["18%", "18%", "64%"], interactive=False, max_height=320)
            downloads = gr.File(label="Downloads (TXT; SRT and WebVTT with timestamps)", file_count="multiple",
                                interactive=False, height=200, elem_id="speech-files")
            metrics = metrics_card(elem_id="speech-metrics")
            code_py, code_cpp = code_view()

    def on_model(model_id: str) -> Any:
        entry = entry_for(suite, PANEL, model_id)
        return gr.Dropdown(choices=languages.choices(_default_codes(suite, entry)), value=languages.AUTO)

    model.change(guarded(on_model), model, language, api_visibility="private")
    # Whichever input was set last is the one transcribed.
    media.upload(lambda: None, None, audio, api_visibility="private", queue=False)
    audio.input(lambda: None, None, media, api_visibility="private", queue=False)

    def transcribe_ui(audio_path: str | None, media_file: str | None, model_id: str, device_name: str,
                      language_code: str, task_name: str, mode: str, prompt: str | None = "",
                      words: str | None = "", skipping: bool = True, request: gr.Request = None,
                      progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        path = media_file or audio_path
        if not path:
            raise gr.Error("Upload or record some audio first (or drop a video file).", duration=None)
        prompts = (speech_prepare.prompt_text("initial_prompt", prompt), speech_prepare.prompt_text("hotwords", words))
        speech_prepare.check_prompt_length(*prompts)
        with runs.request(serving.session_key(request)) as control:
            yield from _transcribe_ui(path, model_id, device_name, language_code, task_name, mode, prompts,
                                      flag("skip_silence", skipping), control, progress)

    def _transcribe_ui(path: str, model_id: str, device_name: str, language_code: str, task_name: str, mode: str,
                       prompts: tuple[str, str], skipping: bool, control: serving.Control,
                       progress: gr.Progress) -> Iterator[tuple]:
        keep = gr.skip()
        # Nothing on screen changes until the audio and the settings are known to be good: a refused file leaves
        # the last transcript where it was (``reporting`` puts the reason in the status line).
        yield ("Reading the audio…", keep, keep, keep, keep, keep, keep, keep)
        entry, decoded = _read(suite, model_id, path)
        settings = dict(initial_prompt=prompts[0], hotwords=prompts[1], skip_silence=skipping)
        if (device_name or suite.default_device) in suite.is_loaded(entry):
            handle, options = _prepare(suite, entry, device_name, language_code, task_name, mode,
                                       gradio_progress(progress), **settings)
        else:  # a first load: a progress bar with its stage and clock, in the status line; the rest stays
            handle, options = yield from loading.follow(
                f"**{entry.title}** on {device_name or suite.default_device}",
                lambda report: _prepare(suite, entry, device_name, language_code, task_name, mode, report,
                                        **settings),
                lambda tracker: (tracker.html(), keep, keep, keep, keep, keep, keep, keep))
        if options.skip_silence:
            yield (f"Finding speech in {decoded.seconds:.1f} s of audio…", keep, keep, keep, keep, keep, keep, keep)
        speech = find_speech(decoded, options)  # no speech: refused here, and the last transcript stays
        skipped = speech_note(speech)
        heard_s = speech.speech_s if speech is not None else decoded.seconds
        if decoded.warning:
            gr.Warning(decoded.warning)
        # The new transcript starts: what belonged to the previous one goes.
        starting = (f"Transcribing {heard_s:.1f} s of speech ({skipped})…" if speech is not None and speech.skips
                    else f"Transcribing {decoded.seconds:.1f} s of audio…")
        yield (starting, "", [], [], None, "", keep, keep)
        if entry.backend is not None:  # served by a model server: no pipeline code to show
            py, cpp = remote_code(entry)
        else:
            model = model_reference(suite, entry, handle.loaded.key.device)
            py, cpp = python_code(model, handle, options), cpp_code(model, handle, options)
        note = load_note(handle)
        result: Result | None = None
        for item in run(handle.pipeline, serving.lane_for(handle.loaded), decoded, options, control, speech):
            if isinstance(item, Progress):
                progress(item.fraction if item.expected_windows > 1 else None, desc=_status(item, heard_s))
                yield (_status(item, heard_s), item.text, keep, keep, keep, keep, py, cpp)
            else:
                result = item
        assert result is not None
        files = _write_files(result, _stem(path))
        lines = [f"**Stopped** after {result.metrics.get('stopped_after_windows', 0)} window(s): partial result"
                 if result.stopped else f"**Done**: {decoded.seconds:.1f} s of audio"]
        lines += [line for line in (skipped, note, decoded.warning) if line]
        yield (" · ".join(lines), result.text, _rows(result.segments), _rows(result.words), files,
               metrics_markdown(_metrics(result, handle, "")), py, cpp)

    def stop_ui(request: gr.Request) -> str:
        if not runs.stop(serving.session_key(request)):
            return "Nothing is running."
        return "Stopping after the current window…"

    outputs = [status, transcript, segments, words, downloads, metrics, code_py, code_cpp]
    unchanged = (gr.skip(),) * (len(outputs) - 1)
    transcribed = go.click(reporting(transcribe_ui, lambda message: (f"**Not transcribed:** {message}", *unchanged)),
                           [audio, media, model, device, language, task, timestamps, initial_prompt, hotwords,
                            skip_silence], outputs,
                           api_name="transcribe_ui", concurrency_id=CONCURRENCY, show_progress_on=[status])
    keep_outputs_on_error(transcribed, [status])

    def check_upload(path: str | None, model_id: str) -> Iterator[tuple]:
        """A new file: read at once, so a file without usable audio is named now, not at Transcribe; the previous
        result described the previous file, so it goes either way."""
        if not path:
            return
        yield ("Reading the audio…", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
        _, decoded = _read(suite, model_id, path)
        note = f" ({decoded.warning})" if decoded.warning else ""
        yield (f"{Path(path).name}: {decoded.seconds:.1f} s of audio, ready to transcribe{note}", "", [], [], None,
               "")

    fresh = [status, transcript, segments, words, downloads, metrics]
    checked = reporting(check_upload, lambda message: (f"**This file cannot be transcribed:** {message}", "", [], [],
                                                       None, ""))
    for trigger, source in ((audio.upload, audio), (audio.stop_recording, audio), (media.upload, media)):
        keep_outputs_on_error(trigger(checked, [source, model], fresh, api_visibility="private",
                                      show_progress="hidden"), fresh)
    stop.click(stop_ui, None, status, api_name="stop_transcription", queue=False)
    build_api(suite, runs)
