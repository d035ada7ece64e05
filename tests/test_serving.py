"""The job machinery (``demos.core.serving``): unit tests with plain functions as work, then through the launched app.

Every wait is bounded by a timeout; nothing asserts how long something took.
"""
from __future__ import annotations

import threading
import time

import pytest

from demos.core import serving

TIMEOUT = 10.0


def _until(condition, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _counting_work(pieces: int, gate: threading.Event | None = None, step: threading.Event | None = None):
    """Work that writes "0 1 2 ..." one piece at a time, waiting for ``step`` (when given) before each piece."""
    ran = []

    def work(ctx: serving.JobContext) -> str:
        ran.append(True)
        if gate is not None:
            gate.wait(TIMEOUT)
        done = 0
        for index in range(pieces):
            if ctx.stopped:
                break
            if step is not None:
                step.wait(TIMEOUT)
                step.clear()
            ctx.text(f"{index} ")
            done += 1
        return f"wrote {done}"
    return work, ran


# ---------------------------------------------------------------------------------------------------------
# Unit tier: no models


@pytest.mark.unit
def test_a_job_streams_text_then_its_result():
    work, _ = _counting_work(5)
    events = list(serving.submit(work).events())
    texts = [e for e in events if isinstance(e, serving.Text)]
    assert texts and texts[-1].text == "0 1 2 3 4 "
    assert "".join(t.piece for t in texts) == texts[-1].text
    done = events[-1]
    assert isinstance(done, serving.Done) and done.result == "wrote 5" and done.started and not done.stopped


@pytest.mark.unit
def test_stop_ends_the_job_at_the_next_piece():
    step = threading.Event()
    work, _ = _counting_work(1000, step=step)
    job = serving.submit(work)
    events = job.events()
    step.set()
    first = next(e for e in events if isinstance(e, serving.Text))
    assert first.text == "0 "
    job.stop()
    step.set()  # the work may write the piece it was waiting for, then sees the stop
    rest = list(events)
    done = rest[-1]
    assert isinstance(done, serving.Done) and done.stopped
    assert done.result in ("wrote 1", "wrote 2")
    assert job.wait(TIMEOUT)


@pytest.mark.unit
def test_a_job_stopped_before_it_starts_never_runs_its_work():
    lane = serving.Lane()
    gate = threading.Event()
    first_work, _ = _counting_work(1, gate=gate)
    first = serving.submit(first_work, lane)
    second_work, second_ran = _counting_work(1)
    second = serving.submit(second_work, lane)
    assert _until(lambda: second.ahead == 1)
    second.stop()
    gate.set()
    done = list(second.events())[-1]
    assert isinstance(done, serving.Done) and not done.started and done.result is None
    assert list(first.events())[-1].result == "wrote 1"
    assert second.wait(TIMEOUT) and not second_ran


@pytest.mark.unit
def test_closing_the_consumer_stops_the_job():
    step = threading.Event()
    work, _ = _counting_work(10_000, step=step)
    job = serving.submit(work)
    events = job.events()
    step.set()
    next(e for e in events if isinstance(e, serving.Text))
    events.close()  # what Gradio does when the client goes away
    assert job.control.stopped
    step.set()
    assert job.wait(TIMEOUT)


@pytest.mark.unit
def test_an_error_of_the_work_is_raised_in_the_consumer():
    def work(ctx: serving.JobContext) -> None:
        ctx.text("partial")
        raise ZeroDivisionError("deliberate")

    job = serving.submit(work)
    with pytest.raises(ZeroDivisionError, match="deliberate"):
        list(job.events())
    assert job.wait(TIMEOUT)


@pytest.mark.unit
def test_an_idle_job_still_wakes_its_consumer():
    gate = threading.Event()
    work, _ = _counting_work(1, gate=gate)
    events = serving.submit(work).events()
    assert isinstance(next(events), serving.Idle)  # nothing came: the consumer still gets control back
    gate.set()
    assert isinstance(list(events)[-1], serving.Done)


@pytest.mark.unit
def test_the_throttle_joins_pieces_and_keeps_the_latest_update():
    def work(ctx: serving.JobContext) -> int:
        for index in range(200):  # far faster than one update per interval
            ctx.text("x")
            ctx.update(index)
        return 0

    events = list(serving.submit(work).events())
    texts = [e for e in events if isinstance(e, serving.Text)]
    updates = [e.value for e in events if isinstance(e, serving.Update)]
    assert texts[-1].text == "x" * 200
    assert len(texts) < 200 and any(len(t.piece) > 1 for t in texts)  # joined
    assert updates[-1] == 199 and updates == sorted(updates)  # the latest one always arrives


@pytest.mark.unit
def test_emitted_values_arrive_in_order_and_all_of_them():
    def work(ctx: serving.JobContext) -> None:
        for index in range(50):
            ctx.emit(index)

    events = serving.submit(work).events()
    assert [e.value for e in events if isinstance(e, serving.Emitted)] == list(range(50))


@pytest.mark.unit
def test_the_place_in_the_queue_counts_down():
    lane = serving.Lane()
    gates = [threading.Event() for _ in range(3)]
    jobs = [serving.submit(_counting_work(1, gate=gate)[0], lane) for gate in gates]
    assert [job.ahead for job in jobs] == [0, 1, 2]
    last = jobs[2].events()
    assert next(e for e in last if isinstance(e, serving.Waiting)).ahead == 2
    gates[0].set()
    assert next(e for e in last if isinstance(e, serving.Waiting)).ahead == 1
    assert jobs[2].ahead == 1
    gates[1].set()
    gates[2].set()
    assert isinstance(list(last)[-1], serving.Done)
    assert all(job.wait(TIMEOUT) for job in jobs)


@pytest.mark.unit
def test_stop_and_clear_reach_only_the_callers_own_requests():
    sessions = serving.Sessions()
    mine, theirs = sessions.begin("a"), sessions.begin("b")
    assert sessions.stop("a") == 1
    assert mine.stopped and not theirs.stopped
    assert sessions.clear("b") == 1 and theirs.cleared and not mine.cleared
    sessions.finish("a", mine)
    assert sessions.stop("a") == 0


@pytest.mark.unit
def test_callers_without_a_session_get_keys_of_their_own():
    class Request:
        session_hash = None

    keys = {serving.session_key(None), serving.session_key(Request()), serving.session_key(Request())}
    assert len(keys) == 3 and not keys & {"", "api", "anonymous"}
    Request.session_hash = "abc"
    assert serving.session_key(Request()) == "abc"


@pytest.mark.unit
def test_a_request_leaving_its_block_is_stopped_and_forgotten():
    sessions = serving.Sessions()
    with sessions.request("a") as control:
        assert sessions.running("a") == 1
    assert control.stopped and sessions.running("a") == 0


# ---------------------------------------------------------------------------------------------------------
# Through the launched app: Stop reaches the caller's own requests only

PROMPT = "Write a long story about a robot who learns to paint."
LONGEST = 3000  # new tokens the long-answer app allows: the default (the context, 512) is over before a Stop lands


@pytest.fixture(scope="module")
def long_app(kit, tmp_path_factory):
    """The app with the tiny LLM allowed LONGEST new tokens, so that an answer is still running when Stop comes."""
    from tests.conftest import app_on_catalog

    def allow_long(catalog: dict) -> None:
        catalog["chat"][0]["generation"]["max_new_tokens_limit"] = LONGEST
    with app_on_catalog(kit, tmp_path_factory.mktemp("serving-long-app"), allow_long) as app:
        yield app


def _running(job, timeout: float = 120) -> None:
    """Until the gradio_client job is being processed (or streams), bounded."""
    from gradio_client.utils import Status
    assert _until(lambda: job.outputs() or job.status().code in (Status.PROCESSING, Status.ITERATING) or job.done(),
                  timeout), "the job never started"


def test_stop_in_one_session_does_not_stop_another_sessions_transcribe(tiny_app, tmp_path):
    from gradio_client import Client, handle_file

    from tests import media
    path = media.write_wav(tmp_path / "long.wav", media.signal(120.0, seed=21), 16000)
    mine, other = Client(tiny_app.url, verbose=False), Client(tiny_app.url, verbose=False)
    job = mine.submit(handle_file(str(path)), "tiny-whisper", timestamps=True, skip_silence=False,
                      api_name="/transcribe")
    _running(job)
    assert other.predict(api_name="/stop_transcription") == "Nothing is running."
    _text, _segments, metrics = job.result(timeout=300)
    assert "stopped_after_windows" not in metrics, "another session's Stop stopped this transcription"
    # The caller's own Stop does reach its /transcribe.
    job = mine.submit(handle_file(str(path)), "tiny-whisper", timestamps=True, skip_silence=False,
                      api_name="/transcribe")
    _running(job)
    assert mine.predict(api_name="/stop_transcription").startswith("Stopping")
    _text, _segments, metrics = job.result(timeout=300)
    assert "stopped_after_windows" in metrics


def test_stop_in_one_session_does_not_stop_another_sessions_chat(long_app):
    from gradio_client import Client
    mine, other = Client(long_app.url, verbose=False), Client(long_app.url, verbose=False)
    job = mine.submit(PROMPT, "tiny-llm", max_new_tokens=LONGEST, api_name="/chat")
    assert _until(lambda: job.outputs() or job.done(), 120)
    other.predict(api_name="/stop_chat")
    _text, metrics = job.result(timeout=300)
    assert "stopped" not in metrics, "another session's Stop stopped this answer"
    job = mine.submit(PROMPT, "tiny-llm", max_new_tokens=LONGEST, api_name="/chat")
    assert _until(lambda: job.outputs() or job.done(), 120)
    mine.predict(api_name="/stop_chat")
    _text, metrics = job.result(timeout=300)
    assert metrics.get("stopped") is True and metrics.get("output_tokens", 0) < LONGEST


def test_chat_callers_without_a_session_cannot_stop_each_other(tiny_catalog_path, tmp_path):
    """In-process, the way the chat module keys a request that has no session (Gradio's queue gives each queued
    call an id of its own, but a direct call, a test or another front end may have none)."""
    from demos.panels.chat import layout as chat
    from demos.core.catalog import load_catalog
    from demos.panels.chat.handlers import SPEC_FIXED, ChatPanel, Choices
    from demos.core.suite import Suite
    panel = ChatPanel(Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path))
    choices = Choices(system_prompt="", adapter="", alpha=1.0, adapter2="", alpha2=1.0, speculative=False,
                      draft="", draft_device="", spec_mode=SPEC_FIXED, assistant_tokens=5, threshold=0.4,
                      max_new_tokens=40, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=42)
    stream = panel.respond(PROMPT, [], "tiny-llm", "CPU", choices, chat._session(None))
    next(stream)  # the message is shown: the answer is registered from here on
    assert panel.stops.stop(chat._session(None)) == 0, "another caller without a session reached this answer"
    *_, (history, _box, card, _status) = stream
    assert "Stopped" not in card and "stopped" not in history[-1]["metadata"]["title"]


def test_a_waiting_chat_answer_says_how_many_requests_are_ahead(tiny_catalog_path, tmp_path):
    from demos.core.catalog import load_catalog
    from demos.panels.chat.engine import default_settings, open_pipeline, to_messages
    from demos.panels.chat.handlers import SPEC_FIXED, ChatPanel, Choices
    from demos.core.suite import Suite
    suite = Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path)
    panel = ChatPanel(suite)
    entry = suite.catalog.entry("tiny-llm")
    messages = to_messages([], "", PROMPT)
    loaded = open_pipeline(suite, entry, "CPU", default_settings(entry), messages).handle.loaded
    choices = Choices(system_prompt="", adapter="", alpha=1.0, adapter2="", alpha2=1.0, speculative=False,
                      draft="", draft_device="", spec_mode=SPEC_FIXED, assistant_tokens=5, threshold=0.4,
                      max_new_tokens=8, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, seed=42)
    with loaded.lock:  # another request holds the pipeline
        stream = panel.respond(PROMPT, [], "tiny-llm", "CPU", choices, "s")
        deadline = time.monotonic() + TIMEOUT
        statuses = []
        while not any("ahead of you" in str(s) for s in statuses) and time.monotonic() < deadline:
            statuses.append(next(stream)[3])  # the stream wakes every WAKE_S, so next() returns while it waits
    assert any("1 request ahead of you" in str(s) for s in statuses), statuses
    *_, (history, _box, card, _status) = stream
    assert "TTFT" in card and "Stopped" not in card, "once the pipeline is free the answer runs"
