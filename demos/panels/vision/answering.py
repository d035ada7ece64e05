"""One question about images, from checked request to streamed answer: what the UI, ``/ask_image`` and the
OpenAI-compatible ``/v1/chat/completions`` share. No Gradio here (the UI adds its progress bar and upload cleanup).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from demos.core import bounds
from demos.core import metrics as perf_metrics
from demos.core import serving
from demos.core.catalog import Entry, VisionEntry
from demos.core.checks import finite, whole
from demos.core.errors import UserError, check_text
from demos.core.suite import Handle, ProgressFn, Suite, no_progress
from demos.panels.vision import models as vision_models
from demos.panels.vision.engine import Answer, Settings, stream_answer
from demos.core.errors import TooLong
from demos.panels.vision.inputs import DEFAULT_FRAMES, ChatTurn, FileRef, model_turns, probe_video


def settings_for(entry: VisionEntry, max_new_tokens: float | None, temperature: float | None = None,
                 top_p: float | None = None, stop: tuple[str, ...] = ()) -> Settings:
    """Request settings; empty, zero or negative values mean the entry's default."""
    defaults = entry.generation
    # Checked before "<= 0 means the default": NaN compares False with everything, and text or inf would
    # otherwise fail inside int() with Python's own message. The upper bound is the entry's (demos.core.bounds).
    tokens = 0 if max_new_tokens in (None, "") else whole("max_new_tokens", max_new_tokens, hi=None)
    temp = None if temperature in (None, "") else finite("temperature", temperature)
    nucleus = None if top_p in (None, "") else finite("top_p", top_p)
    tokens = tokens if tokens > 0 else defaults.max_new_tokens
    temp = defaults.temperature if temp is None or temp < 0 else temp
    nucleus = defaults.top_p if not nucleus or nucleus <= 0 else min(nucleus, 1.0)
    return Settings(tokens, temp, nucleus, tuple(stop))


def load(suite: Suite, entry: Entry, device: str, progress: ProgressFn = no_progress,
         chat: list[ChatTurn] | None = None) -> tuple[Handle, vision_models.ModelFacts]:
    """The pipeline that answers ``chat``: a first question goes to the batched pipeline (CPU/GPU: answered
    together with other first questions), a later turn to the VLMPipeline that keeps the conversation."""
    # Videos go to the VLMPipeline: the batcher's requests carry images only.
    batched = chat is not None and len(chat) == 1 and not any(turn.videos for turn in chat)
    handle = suite.load(entry, device or None, batched=batched, progress=progress)
    return handle, vision_models.facts(handle.prepared.model_dir)


def gif_videos(suite: Suite, entry: VisionEntry, device: str = "") -> bool:
    """Whether an animated GIF goes to ``entry`` as a video: only when it takes video (its catalog ``video``, or
    its model type once the folder is here). Otherwise the GIF stays an image (the model sees its first frame, as
    before videos were taken), so an image-only model such as LLaVA still answers about it."""
    if entry.video is not None or entry.source is None:
        return bool(entry.video)
    status = suite.locate(entry, device or suite.default_device)
    if status.path is None or not (status.path / "config.json").exists():
        return False  # not fetched yet: not known to take video
    return bool(vision_models.takes_video(None, vision_models.facts(status.path)))


def check_question(entry: VisionEntry, question: str, files: list[FileRef], earlier: list[ChatTurn],
                   videos: list[FileRef] | tuple[FileRef, ...] = ()) -> str:
    """The question, stripped; ``UserError`` for a turn that cannot be answered (the files' contents are the
    caller's to check, with ``inputs.check_files`` and ``check_videos``)."""
    question = check_text(question or "", "question").strip()
    if not question:
        raise UserError("Type a question about the image(s) or the video, e.g. “What is in the picture?”")
    if not files and not videos and not any(turn.files or turn.videos for turn in earlier):
        raise UserError("Attach an image first (or a video): upload, drop or paste it, or take a webcam snapshot")
    check_videos(entry, videos)
    # The model sees every image of the conversation again, so the limit is on all of them, not the new message's.
    total = len(files) + sum(len(turn.files) for turn in earlier)
    if total > entry.max_images:
        raise UserError(f"{entry.title} takes at most {entry.max_images} image(s) in a conversation; this one would "
                        f"have {total} ({len(files)} in this message, {total - len(files)} earlier): clear the chat "
                        "and start again, or send fewer images", param="image", kind="limit")
    return question


def frames_for(entry: VisionEntry, frames: float | None) -> int:
    """The frames control: empty, zero or negative means the default (8, or the entry's ``max_frames`` if lower);
    above ``max_frames`` is refused naming the limit."""
    count = 0 if frames in (None, "") else whole("frames", frames, hi=None)
    if count <= 0:
        return min(DEFAULT_FRAMES, entry.max_frames)
    if count > entry.max_frames:
        raise UserError(f"frames {count} is more than {entry.title} takes: at most {entry.max_frames} frames per "
                        "video (max_frames in models.yaml); ask for fewer frames", param="frames", kind="limit")
    return count


def check_videos(entry: VisionEntry, videos: list[FileRef] | tuple[FileRef, ...]) -> None:
    """Refuse videos for an entry that takes none, and videos that cannot be used (damaged, no pictures, one
    frame, too long): read from their packets, nothing decoded."""
    if not videos:
        return
    if entry.video is False:
        raise UserError(f"{entry.title} takes no video: choose a model that does (Qwen2-VL, Qwen2.5-VL …) "
                        "or ask about images", param="video")
    if len(videos) > 1:
        raise UserError("attach one video per message", param="video")
    for ref in videos:
        probe_video(ref, entry.max_video_seconds)


def _check_video_fits(entry: VisionEntry, model_dir: Path, chat: list[ChatTurn], settings: Settings) -> None:
    """Once the model folder is here: does its model take video, and do the frames fit its context?"""
    turns = [turn for turn in chat if turn.videos]
    if not turns:
        return
    model_facts = vision_models.facts(model_dir)
    if not vision_models.takes_video(entry.video, model_facts):
        raise UserError(f"{entry.title} takes no video (its model type, {model_facts.model_type}, has no video "
                        "input in OpenVINO GenAI): choose a model that does (Qwen2-VL, Qwen2.5-VL …) or ask about "
                        "images", param="video")
    context = model_facts.context_tokens
    if not context:
        return
    total = 0
    for turn in turns:
        for ref in turn.videos:
            info = probe_video(ref, entry.max_video_seconds)
            tokens = vision_models.video_tokens(model_facts, info.width, info.height, min(turn.frames, info.frames))
            total += tokens or 0
            if tokens and total + settings.max_new_tokens > context:
                per = max(1, vision_models.video_tokens(model_facts, info.width, info.height, 2) or 1)
                room = max(0, (context - settings.max_new_tokens - (total - tokens)) // per * 2)
                raise TooLong(f"{min(turn.frames, info.frames)} frames of {ref.name} take about {tokens} tokens; "
                              f"with the conversation and {settings.max_new_tokens} new tokens that is more than "
                              f"{entry.title}'s context of {context} tokens: ask for at most {room} frames, or "
                              "clear the chat", param="frames")


def check_bounds(suite: Suite, entry: VisionEntry, device: str, chat: list[ChatTurn], settings: Settings) -> None:
    """Refuse a ``max_new_tokens`` or a conversation (its texts) over the entry's bounds, before any model work.

    The catalog's own limits are checked first, then the model's context (the folder is fetched for it)."""
    messages = []
    for turn in chat:
        messages.append({"role": "user", "content": turn.text})
        if turn.reply is not None:
            messages.append({"role": "assistant", "content": turn.reply})

    def check(model_dir: Path | None) -> None:
        limits = bounds.limits(entry.title, entry.generation, model_dir)
        bounds.check_max_new_tokens(settings.max_new_tokens, limits)
        bounds.check_prompt(messages, model_dir, limits, param="question", what="this conversation")

    check(None)
    if entry.backend is not None:  # served by a model server: it counts the tokens against its own context
        if any(turn.videos for turn in chat):
            raise UserError(f"{entry.title} is served by a model server: this app sends it no video",
                            param="video")
        return
    model_dir = suite.prepare(entry, suite.runtime.check_device(device or suite.default_device)).model_dir
    check(model_dir)
    _check_video_fits(entry, model_dir, chat, settings)


def answers(handle: Handle, facts: vision_models.ModelFacts, chat: list[ChatTurn],
            settings: Settings, stop: serving.Control | None = None) -> Iterator[str | Answer]:
    """Prepare every image of ``chat`` for this model and stream the answer to its last turn."""
    turns = model_turns(chat, facts.budget)
    with contextlib.closing(stream_answer(handle.loaded, turns, settings, stop)) as stream:
        for item in stream:
            if isinstance(item, Answer):
                item = replace(item, metrics=answers_metrics(item.metrics, handle))
            yield item


def answers_metrics(metrics: dict[str, Any], handle: Handle) -> dict[str, Any]:
    """An answer's metrics with ``load_s`` only when this request built the pipeline (``stream_answer`` has only
    the pipeline, not whether this request built it)."""
    return perf_metrics.with_load(metrics, handle.loaded.load_seconds, handle.built_now)
