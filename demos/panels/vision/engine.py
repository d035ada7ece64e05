"""Multi-turn chat about images with ``openvino_genai.VLMPipeline``: images per turn, streaming, Stop, metrics.

How openvino_genai 2026.4 keeps a chat with images (``src/cpp/src/visual_language/vlm_chat_context.cpp``): the
user appends messages to an ``openvino_genai.ChatHistory`` and calls ``generate(history, images=...)``; the images
of a call belong to the last user message. The ``ChatHistory`` object itself remembers, in hidden state, which
earlier message carried which (already encoded) image. A fresh ``ChatHistory`` built from plain dicts therefore
knows no earlier images (an ``<ov_genai_image_N>`` tag pointing back fails with "Missing image/video with index").

So this module keeps the live ``ChatHistory`` of each conversation per pipeline, found again by a fingerprint of
the conversation (texts, image content hashes, replies): the next turn appends to it and genai reuses its KV cache
and encoded images, exactly as a direct user of the pipeline would. A conversation it has not seen (another
model, a restarted app, an API client's own history, a turn that was stopped) is rebuilt turn by turn: every
earlier turn with images is sent once with ``max_new_tokens=1`` so genai registers its images, then the new turn
is generated. Measured here: a rebuilt conversation answers exactly like the one grown turn by turn, and
switching between conversations on one pipeline recomputes the cache instead of reusing another chat's.

Stop: the streamer returns ``StreamingStatus.STOP``; genai then rolls the history state back, so a stopped turn
is never stored (the next turn rebuilds).

Batching: a conversation's first question (no earlier turns, so nothing to keep) on CPU/GPU goes to a
``ContinuousBatchingPipeline`` of the model (``demos.core.batching``), where concurrent first questions are stepped
together; ``add_request(prompt, images)`` applies the chat template to the question as ``generate(ChatHistory)``
does (measured: the same answers). Later turns need the ChatHistory kept above, so they run on the
``VLMPipeline``, one at a time.

Only ``generate(ChatHistory, ...)`` is ever called on a vision pipeline: measured on 2026.4.1, once a VLMPipeline
has served a ChatHistory call, later plain ``generate(str)`` calls on it continue a hidden chat (their input grows
with every call) instead of starting afresh.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from demos.core import batching
from demos.core import metrics as perf_metrics
from demos.core import serving
from demos.core.errors import TooLong, UserError
from demos.core.suite import Loaded

log = logging.getLogger("demos.panels.vision")

MAX_CHATS_PER_PIPELINE = 16
"""Conversations whose ``ChatHistory`` is kept per pipeline (each holds its encoded images)."""



@dataclass(frozen=True)
class ImageIn:
    """One picture of a turn: the RGB array the model sees, a content hash, and its name for messages and code."""

    array: np.ndarray
    digest: str
    name: str = "image"
    prep_seconds: float = 0.0


@dataclass(frozen=True)
class VideoIn:
    """One video of a turn: its sampled frames as one k×H×W×3 uint8 array (what ``videos=`` takes), a hash of the
    file and of which frames were taken, and what sampling cost."""

    array: np.ndarray
    digest: str
    name: str = "video"
    indices: tuple[int, ...] = ()
    total: int = 0
    decode_seconds: float = 0.0


@dataclass(frozen=True)
class Turn:
    """A user message (text + images + videos) and the answer to it (``None`` while it is being answered)."""

    text: str
    images: tuple[ImageIn, ...] = ()
    reply: str | None = None
    stopped: bool = False
    videos: tuple[VideoIn, ...] = ()


@dataclass(frozen=True)
class Settings:
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # strings that end the answer (not included in it), as OpenAI's ``stop``


@dataclass(frozen=True)
class Answer:
    """The end of a streamed answer."""

    text: str
    stopped: bool
    metrics: dict[str, Any]


def fingerprint(turns: list[Turn] | tuple[Turn, ...]) -> str:
    """Identifies a conversation by what the model saw: texts, image contents and replies, in order."""
    canon = [[t.text, [i.digest for i in t.images], t.reply] + ([[v.digest for v in t.videos]] if t.videos else [])
             for t in turns]
    return hashlib.sha256(json.dumps(canon, ensure_ascii=False).encode()).hexdigest()


# -------------------------------------------------------------------------------------------------------------
# Live ChatHistory objects, per pipeline


class HistoryStore:
    """``ChatHistory`` objects of recent conversations, per live pipeline, by conversation fingerprint.

    A conversation is taken out while it is being answered (two identical conversations never share one object),
    and put back under its new fingerprint when the answer completes. Entries die with their pipeline.
    """

    def __init__(self, per_pipeline: int = MAX_CHATS_PER_PIPELINE):
        self.per_pipeline = per_pipeline
        self._by_pipeline: dict[int, OrderedDict[str, Any]] = {}
        self._lock = threading.Lock()

    def take(self, loaded: Loaded, key: str) -> Any | None:
        with self._lock:
            return self._by_pipeline.get(id(loaded), OrderedDict()).pop(key, None)

    def put(self, loaded: Loaded, key: str, history: Any) -> None:
        with self._lock:
            chats = self._by_pipeline.get(id(loaded))
            if chats is None:
                chats = self._by_pipeline[id(loaded)] = OrderedDict()
                weakref.finalize(loaded, self._forget, id(loaded))
            chats[key] = history
            chats.move_to_end(key)
            while len(chats) > self.per_pipeline:
                chats.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(chats) for chats in self._by_pipeline.values())

    def _forget(self, pipeline_id: int) -> None:
        with self._lock:
            self._by_pipeline.pop(pipeline_id, None)


STORE = HistoryStore()


# -------------------------------------------------------------------------------------------------------------
# Generation


def generation_config(pipeline: Any, settings: Settings) -> Any:
    """The pipeline's own defaults with the request's length and sampling; temperature 0 means greedy."""
    config = pipeline.get_config() if hasattr(pipeline, "add_request") else pipeline.get_generation_config()
    config.max_new_tokens = int(settings.max_new_tokens)
    config.do_sample = settings.temperature > 0
    if config.do_sample:
        config.temperature = float(settings.temperature)
        config.top_p = float(settings.top_p)
    if settings.stop:
        config.stop_strings = set(settings.stop)
    return config


def _tensors(images: tuple[ImageIn, ...] | tuple[VideoIn, ...]) -> list[Any]:
    """One ``ov.Tensor`` per image (H×W×3) or per video (k×H×W×3: a video is one tensor, not a list of frames)."""
    import openvino as ov
    return [ov.Tensor(image.array) for image in images]


def _videos(turn: Turn) -> dict[str, list[Any]]:
    """``videos=`` for a turn that has any; nothing otherwise (a model server's client takes images only)."""
    return {"videos": _tensors(turn.videos)} if turn.videos else {}


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _rebuild(pipeline: Any, earlier: list[Turn], stop: threading.Event) -> Any:
    """A fresh ChatHistory holding ``earlier`` turns, their images registered with genai (one prefill each)."""
    import openvino_genai as ov_genai

    history = ov_genai.ChatHistory()
    prime = pipeline.get_generation_config()
    prime.max_new_tokens = 1
    prime.do_sample = False
    for turn in earlier:
        history.append(_user(turn.text))
        if (turn.images or turn.videos) and not stop.is_set():
            pipeline.generate(history, images=_tensors(turn.images), **_videos(turn), generation_config=prime)
        history.append(_assistant(turn.reply or ""))
    return history


def stream_answer(loaded: Loaded, turns: list[Turn], settings: Settings,
                  stop: "threading.Event | serving.Control | None" = None,
                  store: HistoryStore = STORE) -> Iterator[str | Answer]:
    """Answer the last of ``turns``: yields the reply text as it grows, then one ``Answer``. While no new text
    comes (a prefill, a wait for the pipeline) the text so far is yielded again every ``serving.WAKE_S``.

    A ``serving`` job: on a batched pipeline (``loaded.key.batched``, first questions only) a request to its
    batcher, else a job in the pipeline's lane (it holds the pipeline's lock while generating); text is throttled
    there. Setting ``stop`` (or closing the iterator) ends the generation at the next token; the pipeline stays
    usable. A job stopped before it gets the pipeline (or while it rebuilds the history) never generates.
    """
    control = serving.Control.of(stop)
    *earlier, current = turns
    if loaded.key.batched:
        if earlier or current.videos:
            raise ValueError("a batched vision pipeline answers first questions only; later turns need the VLMPipeline")
        work, lane = _batched_work(loaded, current, settings), None
    else:
        work, lane = _chat_work(loaded, earlier, current, settings, store), serving.lane_for(loaded)
    job = serving.submit(work, lane, control, name="vision", logger=log)
    try:
        with job.stream() as events:
            for event in events:
                if isinstance(event, serving.Done):
                    final, stopped, perf, rebuild_s = event.result if event.started and event.result is not None \
                        else ("", True, None, 0.0)
                    yield Answer(final, stopped, metrics(loaded, perf, current, rebuild_s, stopped))
                    return
                yield job.text
    except Exception as exc:  # noqa: BLE001 - genai's C++ errors become messages a person can act on
        explained = explain(exc)
        if explained is exc:
            raise
        raise explained from None


def _batched_work(loaded: Loaded, current: Turn, settings: Settings) -> serving.Work:
    """The question as one request to the batched pipeline's batcher; its result as ``_chat_work``'s."""
    def work(ctx: serving.JobContext) -> tuple[str, bool, Any, float] | None:
        config = generation_config(loaded.pipeline, settings)
        # The KV need is estimated (the image tokens are only known once genai encodes them): generous per image.
        need = len(current.text) + IMAGE_TOKENS_ESTIMATE * len(current.images) + int(config.max_new_tokens)
        request = batching.Request((current.text, _tensors(current.images)), config, ctx, tokens=need, vision=True)
        log.info("vision: batched request (max_new_tokens %d)", settings.max_new_tokens)
        outcome = batching.batcher_for(loaded).run(request)
        if not outcome.started:  # stopped while it waited: it never joined the pipeline
            log.info("vision: a job stopped before it started was skipped")
            return None
        perf = outcome.perf if outcome.perf is not None else _Timings(outcome.timings, outcome.batch)
        return outcome.text, outcome.stopped, _Batched(perf, outcome.batch), 0.0

    return work


IMAGE_TOKENS_ESTIMATE = 1024


@dataclass(frozen=True)
class _Batched:
    """A batched answer's perf: genai's ``VLMPerfMetrics`` (or the batcher's timings) and its batch size."""

    perf: Any
    batch: int


@dataclass(frozen=True)
class _Timings:
    figures: dict[str, Any]
    batch: int


def _chat_work(loaded: Loaded, earlier: list[Turn], current: Turn, settings: Settings,
               store: HistoryStore) -> serving.Work:
    """One ``VLMPipeline.generate(ChatHistory)`` holding the pipeline (its lane), continuing the kept history."""
    import openvino_genai as ov_genai

    def work(ctx: serving.JobContext) -> tuple[str, bool, Any, float]:
        def streamer(chunk: str) -> Any:
            ctx.text(chunk)
            return ov_genai.StreamingStatus.STOP if ctx.stopped else ov_genai.StreamingStatus.RUNNING

        pipeline = loaded.pipeline
        started = time.perf_counter()
        history = store.take(loaded, fingerprint(earlier))
        rebuilt = history is None
        if rebuilt:
            history = _rebuild(pipeline, earlier, ctx.stop_event)
        rebuild_s = time.perf_counter() - started if rebuilt and any(t.images or t.videos for t in earlier) else 0.0
        if ctx.stopped:  # stopped while rebuilding: nothing to generate
            log.info("vision: a job stopped before it started was skipped")
            return "", True, None, rebuild_s
        history.append(_user(current.text))
        log.info("vision: generate started (max_new_tokens %d)", settings.max_new_tokens)
        result = pipeline.generate(history, images=_tensors(current.images), **_videos(current),
                                   generation_config=generation_config(pipeline, settings), streamer=streamer)
        text = result.texts[0]
        stopped = ctx.stopped
        if not stopped:  # genai rolled a stopped turn back: such a history is not reusable
            history.append(_assistant(text))
            store.put(loaded, fingerprint([*earlier, replace(current, reply=text)]), history)
        return text, stopped, result.perf_metrics, rebuild_s

    return work


# -------------------------------------------------------------------------------------------------------------
# Metrics and errors


def metrics(loaded: Loaded, perf: Any, turn: Turn, rebuild_s: float, stopped: bool) -> dict[str, Any]:
    """The panel's metrics dict (``demos.core.metrics`` vocabulary; non-finite values are left out, JSON has no NaN).

    Only the caller knows whether this request built the pipeline: ``stream_answer`` reports the load, and the panel
    drops it again (``metrics.with_load``) for a pipeline that was already live."""
    figures: dict[str, Any] = {}
    batch = None
    if isinstance(perf, _Batched):
        perf, batch = perf.perf, perf.batch
    if isinstance(perf, _Timings):
        figures.update(perf.figures)
        perf = None
    if perf is not None:
        figures.update(perf_metrics.generation_figures(perf))
    if turn.images:
        if perf is not None and hasattr(perf, "get_vision_encoding_duration"):  # not over a model server's API
            figures["vision_encode_ms"] = perf.get_vision_encoding_duration().mean
        figures["image_prep_ms"] = sum(i.prep_seconds for i in turn.images) * 1000
        figures["images"] = len(turn.images)
    if getattr(turn, "videos", ()):  # a Turn; callers with a plain record of text and images have none
        if perf is not None and hasattr(perf, "get_vision_encoding_duration"):
            figures["vision_encode_ms"] = perf.get_vision_encoding_duration().mean
        figures["frames"] = sum(len(v.indices) for v in turn.videos)
        figures["video_frames"] = sum(v.total for v in turn.videos)
        figures["video_decode_ms"] = sum(v.decode_seconds for v in turn.videos) * 1000
    if rebuild_s:
        figures["context_rebuild_ms"] = rebuild_s * 1000
    if batch is not None:
        figures["batch"] = batch
    figures["device"] = loaded.key.device
    if stopped:
        figures["stopped"] = True
    return perf_metrics.build(figures, loaded.load_seconds, built_now=True)


# genai's C++ errors that are the user's doing, matched by their text (genai raises them all as RuntimeError).
# Matched narrowly, so that every other RuntimeError stays a failure and is logged with its traceback:
# - image tags in the question that do not match the attached images (genai's inputs embedder);
_TAG_ERRORS = ("Missing image/video with index", "native vision tags must match", "cannot mix universal tags",
               "Referring to older images")
# - a conversation longer than an NPU pipeline's compiled prompt (MAX_PROMPT_LEN), only known once it is encoded.
_NPU_TOO_LONG = "may only process input embeddings up to"


def explain(exc: BaseException) -> BaseException:
    """genai's C++ errors that the user can fix, as ``UserError``s; anything else unchanged (a logged failure)."""
    if not isinstance(exc, RuntimeError):
        return exc
    message = str(exc)
    if any(marker in message for marker in _TAG_ERRORS):
        return UserError("The message contains an image tag (such as <image> or <ov_genai_image_0>) that does not "
                         "match the attached images: remove the tag (images are placed before your text "
                         "automatically) or attach as many images as the tags name.", param="question")
    if _NPU_TOO_LONG in message:
        found = re.search(r"up to (\d+) tokens\. (\d+) is passed", message)
        sizes = f" ({found.group(2)} tokens, the limit is {found.group(1)})" if found else ""
        return TooLong(f"The conversation is longer than the NPU prompt length{sizes}: press Clear to start a "
                       "new chat, use fewer or smaller images, or raise MAX_PROMPT_LEN in the entry's properties.")
    return exc
