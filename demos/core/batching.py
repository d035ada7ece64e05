"""Continuous batching: concurrent jobs on one ``ContinuousBatchingPipeline`` are stepped together. No Gradio here.

A ``Batcher`` belongs to one live CB pipeline (``batcher_for(loaded)``). A job's work builds a ``Request`` (the
inputs of ``add_request``, its ``GenerationConfig``, its adapter setting) and calls ``Batcher.run``, which blocks
the job's worker thread until the request is answered. Meanwhile one stepping thread per pipeline admits waiting
requests, calls ``step()`` once for all of them, routes each handle's new tokens through a ``TextStreamer`` (the
same text pieces ``LLMPipeline`` streams) to its own job, stops a job's handle when the job is stopped, and ends
each request with genai's own per-request ``PerfMetrics``.

Measured on openvino-genai 2026.4.1 (FINDINGS "Continuous batching and LoRA"): ``GenerationConfig.adapters`` on a
request is ignored; what counts is the adapter state of the pipeline's infer request, which
``ContinuousBatchingPipeline.generate`` sets from its configs' ``adapters`` (``set_adapters``) and leaves in place.
So requests are grouped by adapter setting: a group runs while its requests last, and before another group starts
(only when nothing runs) a one-token ``generate`` switches the pipeline's adapters. Answers then equal
``LLMPipeline.generate(..., adapters=...)`` token for token. Groups run first come, first served: a request of the
running setting that arrives after one of another setting waits behind it, so no setting starves.

The KV cache is bounded (``SchedulerConfig.cache_size``); requests are admitted while their estimated need (prompt +
``max_new_tokens``) fits next to the running ones, so a full cache queues jobs ("waiting: the model's KV cache is
full") instead of failing them. A request genai still drops for memory (status IGNORED) is queued again and its
text continues where it was (greedy and seeded sampling give the same tokens again).
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

from demos.core.errors import TooLong
from demos.core.serving import POLL_S, JobContext

log = logging.getLogger("demos.core.batching")

WAIT_ADAPTER = "another adapter setting is running"
WAIT_CACHE = "the model's KV cache is full"
NO_GROUP = None  # the group of every request on a pipeline without adapters: nothing to switch


@dataclass
class Outcome:
    """One answered request."""

    ids: list[int]
    text: str
    perf: Any | None        # genai's PerfMetrics (VLMPerfMetrics for vision) of this request; None if genai has none
    started: bool
    stopped: bool
    batch: int              # the most requests genai scheduled in one step while this one ran
    accepted: int = 0       # draft tokens accepted (speculative decoding), counted from what each step delivered
    drafted: int | None = None  # draft tokens proposed; None when the draft drafts while confident (not countable)
    timings: dict[str, Any] = field(default_factory=dict)  # measured here: where genai has no perf (a stopped one)
    # Adaptive speculation: the request was ended because its draft was rarely accepted (``Request.adapt``); its
    # text streamer is handed on so the answer's continuation streams as one text.
    draft_off: bool = False
    streamer: Any = None
    draft_off_at: int = 0   # set by the caller that went on without the draft: the tokens drafted before
    draft_lowered: bool = False  # … or went on with one draft token per step (no room for a plain pipeline)


@dataclass(eq=False)
class Request:
    """What one job asks of a batched pipeline.

    ``inputs`` follow the request id in ``add_request``: ``(input_ids,)`` or ``(prompt, images)``. ``group`` is the
    adapter setting (hashable; ``NO_GROUP`` for none registered) and ``adapters`` the ``AdapterConfig`` that
    applies it. ``tokens`` estimates the KV cache it needs (prompt + max_new_tokens)."""

    inputs: tuple
    config: Any
    ctx: JobContext
    group: Hashable = NO_GROUP
    adapters: Any = None
    tokens: int = 0
    vision: bool = False
    # Called (on the stepping thread) once, when the request really joins the pipeline: a job stopped before never
    # joins, so what this says is what ran.
    on_start: Callable[[], None] | None = None
    # Adaptive speculation: ``(steps, min_acceptance, min_per_step)``: after ``steps`` validation steps, a request
    # whose draft tokens are accepted less often (a fixed count per step) or fewer per step (confidence mode) ends
    # early with ``Outcome.draft_off``; its caller goes on without the draft. None: never.
    adapt: tuple[int, float, float] | None = None
    # Stepping state, owned by the batcher's thread
    handle: Any = None
    streamer: Any = None
    ids: list[int] = field(default_factory=list)
    skip: int = 0           # tokens already delivered before genai dropped it (IGNORED): not sent twice
    stop_sent: bool = False
    batch: int = 0
    accepted: int = 0
    drafted: int = 0
    validations: int = 0
    draft_off: bool = False
    reported: tuple | None = None
    prompt_tokens: int = 0
    added_at: float = 0.0   # perf_counter when it joined the pipeline, and when its first and last tokens came
    first_at: float = 0.0
    last_at: float = 0.0
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """The scheduler of one CB pipeline: one stepping thread while there is work, none while idle."""

    def __init__(self, pipeline: Any, capacity_tokens: int | None = None, draft: bool = False,
                 name: str = "batch", logger: logging.Logger | None = None,
                 lock: threading.Lock | None = None) -> None:
        self.pipeline = pipeline
        # The pipeline's lock (``runtime.Loaded.lock``), held by the stepping thread while it has work: code outside
        # the batcher that holds it (a pool that must not drop a pipeline in use) keeps the batcher waiting, and a
        # held lock tells others the pipeline is in use.
        self.lock = lock if lock is not None else threading.Lock()
        self._holding = False
        self.tokenizer = pipeline.get_tokenizer()
        self.capacity_tokens = capacity_tokens  # None: no estimate (genai's scheduler alone decides)
        self.draft = draft
        self.lookup = False  # a prompt-lookup pipeline (``batcher_for`` sets it): its requests need an n-gram size
        self.name = name
        self.log = logger or log
        self._cond = threading.Condition()
        self._pending: list[Request] = []   # in order of arrival
        self._active: list[Request] = []    # added to the pipeline (only the stepping thread changes it)
        self._group: Any = object()         # the adapter setting applied now (unknown at first)
        self._thread: threading.Thread | None = None
        self._ids = itertools.count()
        self.largest_batch = 0              # the most requests genai scheduled in one step, ever (tests read it)
        self.steps = 0

    @property
    def busy(self) -> bool:
        """Whether a request runs or waits (an evicting pool must leave this pipeline alone)."""
        with self._cond:
            return bool(self._pending or self._active)

    def run(self, request: Request) -> Outcome:
        """Queue ``request``, block until it is answered (or stopped), return its ``Outcome``."""
        with self._cond:
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"{self.name}-stepper", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        # Hand the outcome over and forget it: a draft-off outcome carries the text streamer, whose C++ callback
        # refers back to this request; kept here too, that cycle (invisible to the garbage collector) would hold
        # the job's pipeline claim for ever.
        outcome, request.outcome = request.outcome, None
        assert outcome is not None
        return outcome

    # ----------------------------------------------------------------------------------------------------
    # The stepping thread

    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # noqa: BLE001 - a bug here must not leave jobs waiting forever
            self.log.exception("%s: the stepping thread failed", self.name)
            with self._cond:
                doomed, self._pending, self._active = self._pending + self._active, [], []
                self._thread = None
            for request in doomed:
                self._fail(request, exc)
        finally:
            if self._holding:
                self._holding = False
                self.lock.release()

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._drop_stopped_pending()
                if not self._active and not self._pending:  # idle: the lock goes before the thread is gone
                    if self._holding:
                        self._holding = False
                        self.lock.release()
                    self._thread = None
                    return
            if not self._holding:
                if not self.lock.acquire(timeout=POLL_S):  # held outside the batcher: wait, saying so
                    with self._cond:
                        self._report_held()
                    continue
                self._holding = True
            with self._cond:
                # Again now: a job stopped while the lock was awaited never joins the pipeline.
                self._drop_stopped_pending()
                admitted = self._admit()
                self._report_waiting(admitted)
            try:
                if admitted and not self._active and admitted[0].group != self._group:
                    self._switch(admitted[0])
                for request in admitted:
                    self._add(request)
            except Exception as exc:  # noqa: BLE001 - handed to the requests' jobs, raised there
                for request in admitted:
                    if request not in self._active:
                        self._fail(request, exc)
            if not self._active:
                with self._cond:
                    self._cond.wait(POLL_S)  # waiting requests still look at their stop flags
                continue
            self._step()

    def _admit(self) -> list[Request]:
        """Waiting requests that may join now (caller holds the lock): the running group's, first come first
        served, while the KV cache estimate allows; with nothing running, the oldest request's group."""
        group = self._active[0].group if self._active else (self._pending[0].group if self._pending else None)
        used = sum(r.tokens for r in self._active)
        admitted: list[Request] = []
        for request in list(self._pending):
            if request.group != group:
                break  # a request of another setting is next: later ones of this group wait behind it
            running = bool(self._active or admitted)
            if running and self.capacity_tokens is not None and used + request.tokens > self.capacity_tokens:
                break
            used += request.tokens
            admitted.append(request)
            self._pending.remove(request)
        return admitted

    def _report_waiting(self, admitted: list[Request]) -> None:
        running = len(self._active) + len(admitted)
        group = (self._active or admitted)[0].group if running else None
        behind_other = False  # from the first request of another setting on, all wait for the setting to change
        for place, request in enumerate(self._pending):
            behind_other = behind_other or request.group != group
            reason = (WAIT_ADAPTER if behind_other else WAIT_CACHE) if running else ""
            status = (running + place, reason)
            if status != request.reported:
                request.reported = status
                request.ctx.waiting(*status)

    def _report_held(self) -> None:
        for place, request in enumerate(self._pending):
            status = (1 + place, "")
            if status != request.reported:
                request.reported = status
                request.ctx.waiting(*status)

    def _drop_stopped_pending(self) -> None:
        for request in [r for r in self._pending if r.ctx.stopped]:
            self._pending.remove(request)
            self._finish(request, started=False)

    def _switch(self, request: Request) -> None:
        """Apply ``request``'s adapter setting to the pipeline: a one-token ``generate`` sets it (nothing runs)."""
        import numpy as np
        import openvino as ov
        if request.adapters is None:  # a pipeline without adapters: nothing to apply
            self._group = request.group
            return
        config = self.pipeline.get_config()
        config.max_new_tokens = 1
        config.do_sample = False
        if self.draft:
            config.num_assistant_tokens = 1
            if self.lookup:  # a prompt-lookup pipeline needs both
                config.max_ngram_size = 1
        config.adapters = request.adapters
        token = self.tokenizer.encode("a", add_special_tokens=False).input_ids.data.reshape(-1)[:1]
        self.pipeline.generate([ov.Tensor(np.asarray(token, dtype=np.int64).reshape(1, -1))], [config])
        self._group = request.group
        self.log.info("%s: adapters switched for the next group", self.name)

    def _add(self, request: Request) -> None:
        import openvino_genai as ov_genai

        def on_text(piece: str) -> Any:
            request.ctx.text(piece)
            return ov_genai.StreamingStatus.RUNNING

        request.handle = self.pipeline.add_request(next(self._ids), *request.inputs, request.config)
        if not request.added_at and request.on_start is not None:  # not again when re-added after IGNORED
            request.on_start()
        request.added_at = request.added_at or time.perf_counter()
        if request.streamer is None:
            request.streamer = ov_genai.TextStreamer(self.tokenizer, on_text)
        self._active.append(request)

    def _step(self) -> None:
        import openvino_genai as ov_genai
        try:
            self.pipeline.step()
        except Exception as exc:  # noqa: BLE001 - a failed step fails the requests it ran, not the app
            self.log.exception("%s: a step failed", self.name)
            for request in list(self._active):
                request.handle.cancel()
                self._active.remove(request)
                self._fail(request, exc)
            return
        self.steps += 1
        scheduled = int(self.pipeline.get_metrics().scheduled_requests)
        self.largest_batch = max(self.largest_batch, scheduled)
        status = ov_genai.GenerationStatus
        for request in list(self._active):
            request.batch = max(request.batch, scheduled)
            if request.ctx.stopped and not request.stop_sent:
                request.handle.stop()
                request.stop_sent = True
            self._deliver(request)
            state = request.handle.get_status()
            if state == status.RUNNING and request.draft_off:  # its caller goes on without the draft
                request.handle.cancel()
                self._active.remove(request)
                self._finish(request, started=True)
            elif state == status.IGNORED:
                self._active.remove(request)
                self._dropped_for_memory(request)
            elif state != status.RUNNING:
                # Ended in this step (eos, a stop string, max new tokens): finished, even if the same step
                # judged its draft useless, as nothing is left to go on with.
                request.draft_off = False
                self._active.remove(request)
                self._finish(request, started=True)

    def _deliver(self, request: Request) -> None:
        while request.handle.can_read():
            for output in request.handle.read().values():
                new = list(output.generated_ids)
                if request.skip:
                    dropped = min(request.skip, len(new))
                    request.skip -= dropped
                    new = new[dropped:]
                if not new:
                    continue
                request.last_at = time.perf_counter()
                request.first_at = request.first_at or request.last_at
                if request.ids and self.draft:  # a validation step: the main model's token + accepted drafts
                    remaining = int(request.config.max_new_tokens) - len(request.ids)
                    request.accepted += len(new) - 1
                    request.drafted += max(0, min(int(request.config.num_assistant_tokens), remaining - 1))
                    request.validations += 1
                request.ids.extend(new)
                request.streamer.write(new)
        if request.adapt is not None and not request.draft_off and request.validations >= request.adapt[0]:
            request.draft_off = self._draft_is_useless(request)

    @staticmethod
    def _draft_is_useless(request: Request) -> bool:
        steps, min_acceptance, min_per_step = request.adapt  # type: ignore[misc]
        if request.config.num_assistant_tokens > 0:
            return request.accepted < min_acceptance * max(request.drafted, 1)
        return request.accepted < min_per_step * request.validations

    def _dropped_for_memory(self, request: Request) -> None:
        """genai dropped ``request`` for want of KV cache: again later if others hold it, else it cannot fit."""
        if self._active:
            self.log.info("%s: a request was dropped for KV cache and waits again", self.name)
            # Its text so far stays; the tokens genai produces again for it are not delivered twice.
            request.skip, request.handle, request.reported = len(request.ids), None, None
            with self._cond:
                self._pending.insert(0, request)
            return
        self._fail(request, TooLong("This request needs more KV cache than the model has: shorten the chat or "
                                    "max new tokens, or raise settings.kv_cache_gb in the catalog."))

    def _finish(self, request: Request, started: bool) -> None:
        perf = None
        if started and not request.draft_off:
            request.streamer.end()
            try:
                perf = request.handle.get_vlm_perf_metrics() if request.vision else request.handle.get_perf_metrics()
            except RuntimeError:  # genai has none for a request stopped midway ("until generation has completed")
                perf = None
        drafted = request.drafted if self.draft and request.config.num_assistant_tokens > 0 else None
        request.outcome = Outcome(list(request.ids), self.tokenizer.decode(request.ids) if request.ids else "",
                                  perf, started, request.ctx.stopped, request.batch, request.accepted, drafted,
                                  self._timings(request) if started else {}, request.draft_off,
                                  request.streamer if request.draft_off else None)
        self._release(request)
        request.done.set()

    @staticmethod
    def _timings(request: Request) -> dict[str, Any]:
        """The figures of ``metrics.generation_figures`` measured on this request's own tokens."""
        count = len(request.ids)
        ended = request.last_at or time.perf_counter()
        figures: dict[str, Any] = {"input_tokens": request.prompt_tokens, "output_tokens": count,
                                   "generate_s": ended - request.added_at}
        if count:
            figures["ttft_ms"] = (request.first_at - request.added_at) * 1000
        if count > 1:
            tpot = (request.last_at - request.first_at) / (count - 1)
            figures["tpot_ms"] = tpot * 1000
            figures["tokens_per_s"] = 1 / tpot if tpot > 0 else None
        return figures

    @classmethod
    def _fail(cls, request: Request, error: BaseException) -> None:
        request.error = error
        cls._release(request)
        request.done.set()

    @staticmethod
    def _release(request: Request) -> None:
        """Drop the native objects of an ended request. Its ``TextStreamer`` holds the Python callback that refers
        back to the request (its job, the job's work and so the panel's ``Handle`` with its pool ``Claim``): a cycle
        through C++ that Python's garbage collector cannot see, so kept, it would keep the pipeline "in use" for
        ever and a pool with no free slot would wait for it for ever."""
        request.streamer = None
        request.handle = None


# ------------------------------------------------------------------------------------------------------------
# One batcher per live pipeline


_BATCHERS: dict[int, Batcher] = {}
_BATCHERS_LOCK = threading.Lock()


def batcher_for(loaded: Any) -> Batcher:
    """The batcher of a live CB pipeline (``runtime.Loaded``, whose ``kv_tokens`` bounds what it admits); it dies
    with its owner."""
    key = id(loaded)
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(key)
        if batcher is None or batcher.pipeline is not loaded.pipeline:
            # Prompt lookup validates candidates as a draft's: its acceptance is counted the same way.
            drafting = bool(loaded.key.draft_dir) or bool(dict(loaded.key.properties).get("prompt_lookup"))
            batcher = _BATCHERS[key] = Batcher(loaded.pipeline, loaded.kv_tokens, draft=drafting,
                                               name=f"{loaded.key.panel}-batch", lock=loaded.lock)
            batcher.lookup = drafting and not loaded.key.draft_dir
            weakref.finalize(loaded, _forget, key, batcher)
        return batcher


def _forget(key: int, batcher: Batcher) -> None:
    with _BATCHERS_LOCK:
        if _BATCHERS.get(key) is batcher:
            del _BATCHERS[key]


def busy(loaded: Any) -> bool:
    """Whether a batched pipeline has a request running or waiting."""
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(id(loaded))
    return batcher is not None and batcher.busy


def largest_batch(loaded: Any) -> int:
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(id(loaded))
    return batcher.largest_batch if batcher is not None else 0


# ------------------------------------------------------------------------------------------------------------
# KV cache budget


KV_BYTES_PER_VALUE = 2  # f16; a u8 cache (the CPU's default) takes less, so the estimate errs on the safe side


def capacity_tokens(model_dir: Path | str, cache_gb: float) -> int | None:
    """Tokens a KV cache of ``cache_gb`` holds for the model in ``model_dir`` (from its config.json), or None."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = config.get("text_config") or config
    try:
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    per_token = layers * kv_heads * head_dim * 2 * KV_BYTES_PER_VALUE
    return int(cache_gb * (1 << 30) // per_token) if per_token > 0 else None
