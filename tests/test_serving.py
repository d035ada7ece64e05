"""The job machinery (``demos.serving``): unit tests with plain functions as work, then through the launched app.

Every wait is bounded by a timeout; nothing asserts how long something took.
"""
from __future__ import annotations

import threading
import time

import pytest

from demos import serving

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
