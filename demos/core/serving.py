"""One job machinery for every panel: a request becomes a ``Job`` on a worker thread that streams events.

A panel hands ``submit`` a function (its *work*) and the ``Lane`` of the pipeline it needs; the job waits its turn
in the lane (reporting ``Waiting(ahead)`` while others are before it), runs the work holding the pipeline's lock,
and the consumer iterates ``job.events()``: ``Text`` (the growing text), ``Update`` (the latest progress: windows,
steps), anything the work ``emit``s (previews, saved images) in order, ``Idle`` while nothing comes, then one
``Done`` carrying the work's result. An exception of the work is raised in the consumer.

Stop: ``Control.stop()`` (a Stop button through ``Sessions``, or the consumer closing the event generator) makes
``ctx.stopped`` true; the work's streamer or step callback then ends generation at the next token/step/window.
A job stopped before it gets the pipeline never runs its work (``Done.started`` is False), so a row of cancelled
requests cannot keep a pipeline busy.

The serialisation per pipeline lives in ``Lane`` only, so the panels do not care whether a job has its pipeline
alone. Jobs on a continuously batched pipeline (``demos.core.batching``) have no lane: their work hands its request
to the pipeline's batcher, which steps it together with the others and reports ``Waiting`` through the context.
No Gradio here.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from demos.core.errors import UserError

UPDATE_INTERVAL_S = 0.04
"""Streamed updates go out at most this often (the first at once): smooth to the eye, cheap for the CPU; pieces
arriving meanwhile are joined into the next update."""
WAKE_S = 0.25
"""While nothing comes (a prefill, a wait for the pipeline) the consumer still gets an ``Idle`` this often: Gradio can
only close a generator (client gone, cancelled job) when it is not blocked inside it, and closing is what stops
the job."""
POLL_S = 0.05  # how often a job waiting for its lane or the pipeline's lock looks at its stop flag
JOIN_S = 5.0   # bound on joining a worker whose work has returned (it only has to leave the lane)

log = logging.getLogger("demos.core.serving")


# ------------------------------------------------------------------------------------------------------------
# Events a consumer sees


@dataclass(frozen=True)
class Waiting:
    """The job waits for its pipeline: ``ahead`` requests are before it (the running one included); ``reason`` says
    why when it is not plain turn-taking (a batched pipeline: "another adapter setting is running")."""

    ahead: int
    reason: str = ""


@dataclass(frozen=True)
class Text:
    """The text so far (``text``) and what came since the last ``Text`` (``piece``)."""

    text: str
    piece: str


@dataclass(frozen=True)
class Update:
    """The latest progress value the work reported (earlier ones not yet delivered are dropped)."""

    value: Any


@dataclass(frozen=True)
class Emitted:
    """A value the work emitted that must not be dropped or merged (a preview, a saved image)."""

    value: Any


@dataclass(frozen=True)
class Idle:
    """Nothing new for ``WAKE_S``: a chance for the consumer to be closed."""


@dataclass(frozen=True)
class Done:
    """The end: the work's return value; ``started`` False when the job was stopped before it ran."""

    result: Any
    started: bool
    stopped: bool


Event = Waiting | Text | Update | Emitted | Idle | Done


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True)
class _Piece:
    text: str


@dataclass(frozen=True)
class _Progress:
    value: Any


# ------------------------------------------------------------------------------------------------------------
# Stop control and the per-session registry


class Control:
    """The stop state of one request (which may run several jobs one after the other, as Compare does)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()  # what genai-facing code (step callbacks) may poll directly
        self.cleared = False            # stopped by Clear: the request must not write its view back
        # Requests before this request's current job in its pipeline's queue (0: running, or not queued), kept
        # here too so that a view can say "2 requests ahead of you" whatever the engine between them passes on.
        self.ahead = 0

    def stop(self) -> None:
        self.event.set()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    @staticmethod
    def of(stop: "Control | threading.Event | None") -> "Control":
        """A ``Control`` for what a caller passed: one, a bare stop flag, or nothing (a fresh one)."""
        return stop if isinstance(stop, Control) else Control(stop)


_anonymous = itertools.count(1)


def session_key(request: Any) -> str:
    """The caller's session, or a key of its own for a caller without one (never shared between requests)."""
    session = getattr(request, "session_hash", None)
    if isinstance(session, str) and session:
        return session
    return f"no-session-{next(_anonymous)}-{uuid.uuid4().hex[:8]}"


DEFAULT_MAX_PER_SESSION = 4


class _Admission:
    """How many requests each session has open (loading, waiting or running) in every panel of the process, so
    that one visitor with many tabs or a script cannot fill every pipeline's queue: past the limit a request is
    refused at once with a message, and the others' requests keep their places."""

    def __init__(self, limit: int = DEFAULT_MAX_PER_SESSION) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, session: str) -> None:
        with self._lock:
            count = self._open.get(session, 0)
            if count >= self.limit:
                raise UserError(f"You already have {count} request{'s' if count != 1 else ''} waiting; wait for one "
                                "to finish or press Stop", kind="limit")
            self._open[session] = count + 1

    def leave(self, session: str) -> None:
        with self._lock:
            count = self._open.get(session, 0) - 1
            if count > 0:
                self._open[session] = count
            else:
                self._open.pop(session, None)

    def open(self, session: str) -> int:
        with self._lock:
            return self._open.get(session, 0)


_admission = _Admission()


def configure(max_per_session: int) -> None:
    """Requests one session may have open at once, across panels (the catalog's ``max_requests_per_session``)."""
    _admission.limit = max(1, int(max_per_session))


class Sessions:
    """The requests running for each session, so that Stop and Clear reach the caller's own requests only.

    ``begin`` (and ``request``) also admit the request: a session over its limit (``configure``) gets a
    ``UserError`` saying so, before anything is loaded or queued."""

    MAX_RESERVED = 1000  # sessions whose next request is reserved (see ``reserve``); the oldest are forgotten

    def __init__(self) -> None:
        self._running: dict[str, list[Control]] = {}
        self._reserved: dict[str, Control] = {}  # in order of reservation
        self._lock = threading.Lock()

    def reserve(self, session: str) -> Control:
        """Register the session's next request ahead of it (a UI that accepts a message in one event and answers
        it in the next): Stop and Clear in between reach it, and ``begin`` picks it up."""
        control = Control()
        with self._lock:
            self._reserved.pop(session, None)
            self._reserved[session] = control
            while len(self._reserved) > self.MAX_RESERVED:
                del self._reserved[next(iter(self._reserved))]
        return control

    def begin(self, session: str) -> Control:
        _admission.enter(session)  # refused past the session's limit; the reservation (if any) stays for Stop
        with self._lock:
            control = self._reserved.pop(session, None) or Control()
            self._running.setdefault(session, []).append(control)
        return control

    def finish(self, session: str, control: Control) -> None:
        with self._lock:
            controls = self._running.get(session, [])
            known = control in controls
            if known:
                controls.remove(control)
            if not controls:
                self._running.pop(session, None)
        if known:
            _admission.leave(session)

    @contextmanager
    def request(self, session: str) -> Iterator[Control]:
        """A registered ``Control`` for the request's lifetime; leaving (normally or not) stops and forgets it."""
        control = self.begin(session)
        try:
            yield control
        finally:
            control.stop()  # a closed tab or a cancelled event stops whatever is still running
            self.finish(session, control)

    def _of(self, session: str) -> list[Control]:
        reserved = self._reserved.get(session)
        return list(self._running.get(session, ())) + ([reserved] if reserved is not None else [])

    def stop(self, session: str) -> int:
        """Ask every request of ``session`` to stop; return how many were running (or reserved)."""
        with self._lock:
            controls = self._of(session)
        for control in controls:
            control.stop()
        return len(controls)

    def clear(self, session: str) -> int:
        """Stop every request of ``session`` because its view was cleared: they must not write it back."""
        with self._lock:
            controls = self._of(session)
            for control in controls:
                control.cleared = True
        for control in controls:
            control.stop()
        return len(controls)

    def running(self, session: str) -> int:
        with self._lock:
            return len(self._running.get(session, ()))


# ------------------------------------------------------------------------------------------------------------
# Lanes: one per pipeline, first come first served


class Lane:
    """The queue in front of one pipeline: jobs enter in order and run holding ``lock`` (the pipeline's)."""

    def __init__(self, lock: Any | None = None) -> None:
        self.lock = lock if lock is not None else threading.Lock()
        self._cond = threading.Condition()
        self._jobs: list[Job] = []  # in order; the first one runs (or is about to)

    def _join(self, job: "Job") -> None:
        with self._cond:
            self._jobs.append(job)

    def ahead(self, job: "Job") -> int:
        with self._cond:
            return self._jobs.index(job) if job in self._jobs else 0

    @property
    def in_use(self) -> int:
        """Jobs in this lane, waiting or running: the pipeline pool evicts a pipeline only when this is 0."""
        with self._cond:
            return len(self._jobs)

    def enter(self, job: "Job", on_place: Callable[[int], None]) -> bool:
        """Wait until ``job`` is first and holds the lock (True), or until it is stopped (False: it left)."""
        reported = None
        with self._cond:
            while True:
                place = self._jobs.index(job)
                if job.control.stopped:
                    self._leave_locked(job)
                    return False
                if place == 0:
                    break
                if place != reported:
                    reported = place
                    on_place(place)
                self._cond.wait(POLL_S)
        # First in the lane; code outside the machinery (a warm-up, a priming generate) may still hold the lock.
        while not self.lock.acquire(timeout=POLL_S):
            if reported is None:
                reported = 1
                on_place(1)
            if job.control.stopped:
                self.leave(job, locked=False)
                return False
        if job.control.stopped:
            self.leave(job, locked=True)
            return False
        return True

    def leave(self, job: "Job", locked: bool) -> None:
        if locked:
            self.lock.release()
        with self._cond:
            self._leave_locked(job)

    def _leave_locked(self, job: "Job") -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        self._cond.notify_all()


_LANES: dict[int, Lane] = {}
_LANES_LOCK = threading.Lock()


def lane_for(pipeline_owner: Any) -> Lane:
    """The lane of a live pipeline (anything with a ``lock``, e.g. ``runtime.Loaded``); it dies with its owner."""
    key = id(pipeline_owner)
    with _LANES_LOCK:
        lane = _LANES.get(key)
        if lane is None or lane.lock is not pipeline_owner.lock:
            lane = _LANES[key] = Lane(pipeline_owner.lock)
            weakref.finalize(pipeline_owner, _forget_lane, key, lane)
        return lane


def in_use(pipeline_owner: Any) -> int:
    """Jobs waiting or running in the lane of ``pipeline_owner`` (0 when it has none)."""
    with _LANES_LOCK:
        lane = _LANES.get(id(pipeline_owner))
    return lane.in_use if lane is not None and lane.lock is getattr(pipeline_owner, "lock", None) else 0


def _forget_lane(key: int, lane: Lane) -> None:
    with _LANES_LOCK:
        if _LANES.get(key) is lane:
            del _LANES[key]


# ------------------------------------------------------------------------------------------------------------
# Jobs


class JobContext:
    """What the work function gets: the stop state and ways to report."""

    def __init__(self, job: "Job") -> None:
        self._job = job

    @property
    def stopped(self) -> bool:
        return self._job.control.stopped

    @property
    def stop_event(self) -> threading.Event:
        return self._job.control.event

    def text(self, piece: str) -> None:
        """Text the work produced (a token's worth): consumers get it joined with its neighbours."""
        self._job._events.put(_Piece(piece))

    def update(self, value: Any) -> None:
        """Progress (steps, windows) that supersedes the previous one."""
        self._job._events.put(_Progress(value))

    def emit(self, value: Any) -> None:
        """A value to deliver as is, in order (previews, saved files)."""
        self._job._events.put(Emitted(value))

    def waiting(self, ahead: int, reason: str = "") -> None:
        """The work waits for a scheduler of its own (``demos.core.batching``): the consumer sees ``Waiting``."""
        self._job._events.put(Waiting(ahead, reason))


Work = Callable[[JobContext], Any]


class Job:
    """One request's work on a worker thread. Iterate ``events()`` (once) to follow it."""

    def __init__(self, work: Work, lane: Lane | None = None, control: Control | None = None,
                 name: str = "job", logger: logging.Logger | None = None) -> None:
        self.work = work
        self.log = logger or log
        self.lane = lane
        self.control = control or Control()
        self.name = name
        self.text = ""
        self._events: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"{name}-worker", daemon=True)
        self._finished = False
        if lane is not None:
            lane._join(self)  # in line from submission: "n requests ahead of you" counts from here
        self._worker.start()

    @property
    def ahead(self) -> int:
        """Requests before this one for its pipeline (0: it runs, or has no lane)."""
        return self.lane.ahead(self) if self.lane is not None else 0

    def stop(self) -> None:
        self.control.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Join the worker; True when it has ended."""
        self._worker.join(timeout)
        return not self._worker.is_alive()

    def _run(self) -> None:
        locked = False
        try:
            if self.lane is not None:
                locked = self.lane.enter(self, self._waiting)
                self.control.ahead = 0
                if not locked:
                    self.log.info("%s: a job stopped before it started was skipped", self.name)
                    self._events.put(Done(None, False, True))
                    return
            elif self.control.stopped:
                self.log.info("%s: a job stopped before it started was skipped", self.name)
                self._events.put(Done(None, False, True))
                return
            try:
                result = self.work(JobContext(self))
            finally:
                if self.lane is not None:
                    self.lane.leave(self, locked)
            self._events.put(Done(result, True, self.control.stopped))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, raised there
            self._events.put(_Failed(exc))

    def _waiting(self, place: int) -> None:
        self.control.ahead = place
        self._events.put(Waiting(place))

    @contextmanager
    def stream(self) -> Iterator[Iterator[Event]]:
        """``events()`` closed on leaving the block: a panel generator closed by its client (the block left by
        GeneratorExit) stops the job at once, not whenever the garbage collector gets to the events."""
        events = self.events()
        try:
            yield events
        finally:
            events.close()

    def events(self) -> Iterator[Event]:
        """The job's events until ``Done`` (errors of the work raised here). Closing this early stops the job."""
        pieces: list[str] = []
        progress: list[Any] = []  # the latest undelivered progress, if any
        last_update, last_yield = float("-inf"), time.monotonic()
        try:
            while True:
                now = time.monotonic()
                pending = bool(pieces or progress)
                wait = last_update + UPDATE_INTERVAL_S - now if pending else last_yield + WAKE_S - now
                try:
                    item = self._events.get(timeout=max(wait, 0.001))
                except queue.Empty:
                    item = None
                if isinstance(item, _Piece):
                    pieces.append(item.text)
                elif isinstance(item, _Progress):
                    progress[:] = [item.value]
                now = time.monotonic()
                barrier = not isinstance(item, (_Piece, _Progress, type(None)))
                if (pieces or progress) and (item is None or barrier or now - last_update >= UPDATE_INTERVAL_S):
                    last_update = last_yield = now
                    yield from self._flush(pieces, progress)
                elif item is None and now - last_yield >= WAKE_S:
                    last_yield = now
                    yield Idle()
                if isinstance(item, _Failed):
                    self._finished = True
                    self._worker.join(JOIN_S)
                    raise item.error
                if isinstance(item, Done):
                    self._finished = True
                    self._worker.join(JOIN_S)
                    yield item
                    return
                if isinstance(item, (Waiting, Emitted)):
                    last_yield = time.monotonic()
                    yield item
        finally:
            if not self._finished:
                # Closed early (client gone, cancelled): stop the work at its next token/step. No join here:
                # Gradio closes an abandoned generator on its event loop, which must not wait for a prefill;
                # the worker ends by itself (its streamer answers STOP, a waiting job leaves its lane).
                self.control.stop()

    def _flush(self, pieces: list[str], progress: list[Any]) -> Iterator[Event]:
        if pieces:
            piece = "".join(pieces)
            pieces.clear()
            self.text += piece
            yield Text(self.text, piece)
        if progress:
            value = progress.pop()
            yield Update(value)


def place_note(ahead: int) -> str:
    """A waiting request's place in words, as every panel shows it."""
    return f"Waiting for the model: {ahead} request{'s' if ahead != 1 else ''} ahead of you…"


def submit(work: Work, lane: Lane | None = None, control: Control | None = None, name: str = "job",
           logger: logging.Logger | None = None) -> Job:
    """Start ``work`` as a job in ``lane`` (None: no pipeline to share) under ``control`` (its stop state);
    ``name`` and ``logger`` are the panel's, for its log lines."""
    return Job(work, lane, control, name, logger)
