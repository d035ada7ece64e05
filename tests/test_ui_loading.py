"""The shared long-load view (demos.ui.loading) and the browser pacing of streamed answers (demos.ui.pacing)."""
from __future__ import annotations

import threading

import pytest

from demos.ui import loading, pacing

pytestmark = pytest.mark.unit


def test_loader_messages_become_stages_with_one_clock():
    assert loading.stage_of("Exporting model 'x' to OpenVINO (int8); this takes a while the first time…") \
        == "exporting to OpenVINO with optimum-intel"
    assert loading.stage_of("Exporting model 'x'… 12 s") == "exporting to OpenVINO with optimum-intel"
    assert loading.stage_of("Downloading org/repo: 3/7 files · 0.4/1.2 MB") == "downloading 3/7 files · 0.4/1.2 MB"
    assert loading.stage_of("Compiling main_ov for CPU…") == "compiling"
    assert loading.stage_of("Downloading LoRA adapter a…") == "downloading a LoRA adapter"


def test_follow_shows_the_stage_while_the_load_runs_and_returns_its_result():
    release = threading.Event()

    def load(report):
        report(0.25, "Downloading org/repo: 1/4 files · 1.0/4.0 MB")
        release.wait(5)
        report(None, "Compiling main_ov for CPU…")
        return "pipeline"

    steps = loading.follow("**Tiny** on CPU", load, lambda tracker: tracker.html(), tick=0.05)
    views = []
    try:
        while True:
            views.append(next(steps))
            if len(views) == 4:
                release.set()  # the load goes on only once the page has been shown its progress a few times
    except StopIteration as done:
        assert done.value == "pipeline"
    assert any('value="0.250"' in v and "downloading 1/4 files" in v for v in views), views
    assert all(v.startswith("<progress") and "Loading **Tiny** on CPU" in v and v.endswith(" s") for v in views)


def test_follow_raises_what_the_load_raised():
    def load(report):
        raise ValueError("no such draft")
    with pytest.raises(ValueError, match="no such draft"):
        list(loading.follow("x", load, lambda tracker: tracker.html(), tick=0.01))


def test_paced_sends_the_first_the_last_and_what_must_pass_and_thins_the_rest():
    now = [0.0]
    items = [f"{'x' * i}" for i in range(1, 51)] + ["FINAL"]

    def clock():
        now[0] += 0.01  # one item every 10 ms: 100 items/s
        return now[0]

    sent = list(pacing.paced(iter(items), size=len, passes=lambda item: item == "FINAL", clock=clock))
    assert sent[0] == "x" and sent[-1] == "FINAL"
    assert len(sent) <= 51 // 10 + 2, "at most one update per MIN_S (0.1 s) for a short answer"
    assert pacing.interval(100) == pacing.MIN_S and pacing.interval(10**6) == pacing.MAX_S
    held = list(pacing.paced(iter(["a", "ab", "abc"]), size=len, clock=lambda: 0.0))
    assert held == ["a", "abc"], "the last item is never held back"
