"""The Gradio queue's limits: a panel's events run many at once (a load never holds its panel's only slot), and
the worker threads are bounded yet always leave room for unqueued events such as Stop."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_panel_events_run_many_at_once_and_threads_are_bounded():
    import gradio as gr

    from demos.ui import capacity

    with gr.Blocks() as demo:
        box = gr.Textbox()
        button = gr.Button()
        button.click(lambda text: text, box, box, concurrency_id="chat")            # a panel's shared id
        box.submit(lambda text: text, box, box, concurrency_id="chat")
        button.click(lambda text: text, box, box)                                  # an event of its own
        button.click(lambda text: text, box, box, concurrency_limit=None)          # "no limit": bounded too
        button.click(lambda text: text, box, box, concurrency_id="loader", concurrency_limit=2)  # a panel's choice
        button.click(lambda: None, None, None, queue=False)                        # Stop-like: no queue
    threads = capacity.configure(demo)
    limits = {fn.concurrency_id: fn.concurrency_limit for fn in demo.fns.values() if fn.queue}
    assert limits["chat"] == capacity.PANEL_REQUESTS > 1
    assert limits["loader"] == 2
    own = [limit for cid, limit in limits.items() if cid not in ("chat", "loader")]
    assert own == [capacity.QUICK_REQUESTS] * 2
    assert threads == capacity.PANEL_REQUESTS + 2 + 2 * capacity.QUICK_REQUESTS + capacity.RESERVE_THREADS
    assert threads > sum(limits.values()), "queued events alone can never take every thread"
