"""``/ask_video``: a question about a video (frames sampled evenly) with a visual-language model, streamed.

The same path as the Vision tab's chat: the request's video becomes the last turn's video, sampled to ``frames``
frames (``demos.core.video``), earlier turns of ``history`` keep theirs (sampled with the same ``frames``), and
the answer streams from the entry's ``VLMPipeline`` (``VLMPipeline.generate(ChatHistory, videos=[k×H×W×3])``).
"""
from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Iterator

import gradio as gr
from gradio.data_classes import FileDataDict

from demos.core import serving
from demos.core.errors import UserError
from demos.core.suite import Suite
from demos.panels.vision import answering
from demos.panels.vision.engine import Answer
from demos.panels.vision.inputs import ChatTurn, file_ref, history_turns
from demos.ui.widgets import entry_for, guarded

PANEL = "vision"


def ask_video_api(suite: Suite, runs: serving.Sessions, load):
    """The ``/ask_video`` endpoint function for ``suite``; ``runs``: the panel's running answers (the session's
    Stop reaches this one too); ``load``: the panel's loader (``layout._load``)."""

    def ask_video(video: FileDataDict | None, question: str, model: str, history: list = [],  # noqa: B006
                  frames: int = 8, max_new_tokens: int = 256, device: str = "",
                  request: gr.Request = None) -> Iterator[tuple[str, dict]]:  # type: ignore[assignment]
        """Ask a question about a video with a visual-language model that takes video (Qwen2-VL, Qwen2.5-VL …);
        streams the reply, then its metrics (frames used, video decoding time, TTFT, …).

        Args:
            video: the video file (MP4, WebM, MOV, MKV, animated GIF); may be empty when an earlier message in
                ``history`` holds one.
            question: what to ask about it.
            model: a vision model id from models.yaml.
            history: earlier turns as [{"role": "user"|"assistant", "content": text or [text, files...]}].
            frames: how many frames to sample evenly from the video (0 = 8; at most the entry's max_frames).
            max_new_tokens: the longest reply (0 = the model's default).
            device: CPU, GPU, NPU or AUTO ("" = the app's default).
        """
        entry = entry_for(suite, PANEL, model)
        settings = answering.settings_for(entry, max_new_tokens)  # bad numbers before any file
        count = answering.frames_for(entry, frames)
        if isinstance(video, str) and video.startswith("data:"):
            raise UserError("video: send the video as a file (gradio_client.handle_file(path)), not a data URL",
                            param="video")
        earlier = [replace(turn, frames=count) for turn in history_turns(history, answering.gif_videos(suite, entry, device))]
        ref = file_ref(video, "video")
        videos = (ref,) if ref else ()
        question = answering.check_question(entry, question, [], earlier, videos)
        chat = [*earlier, ChatTurn(question, (), videos=videos, frames=count)]
        answering.check_bounds(suite, entry, device, chat, settings)
        handle, facts = load(suite, entry, device, chat=chat)
        with runs.request(serving.session_key(request)) as run:
            for item in answering.answers(handle, facts, chat, settings, run):
                yield (item.text, item.metrics) if isinstance(item, Answer) else (item, {})

    api = guarded(ask_video)
    api.__signature__ = inspect.signature(ask_video).replace(return_annotation=tuple[str, dict])
    return api
