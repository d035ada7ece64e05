"""Who may fetch, load and unload on stage (``demos.ui.presenter.StageControl``), and what the Models tab says
about hub sizes: no models needed."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from demos.ui.presenter import KEY_HEADER, KEY_QUERY, StageControl, may_control

pytestmark = pytest.mark.unit


def _request(host: str, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(client=SimpleNamespace(host=host), headers=headers)


def test_the_presenting_machine_and_the_key_may_the_audience_may_not():
    control = StageControl(key="s3cret")
    suite = SimpleNamespace(stage_control=control)
    assert may_control(suite, _request("127.0.0.1")) and may_control(suite, _request("::1"))
    assert not may_control(suite, _request("192.168.1.20")), "a phone in the room"
    assert not may_control(suite, _request("192.168.1.20", **{KEY_HEADER: "guess"}))
    assert may_control(suite, _request("192.168.1.20", **{KEY_HEADER: "s3cret"})), "a script with the key"
    assert may_control(suite, _request("192.168.1.20", referer=f"http://10.0.0.2:7860/?{KEY_QUERY}=s3cret"))
    assert not may_control(suite, _request("192.168.1.20", referer=f"http://10.0.0.2:7860/?{KEY_QUERY}=s3cre"))
    assert not may_control(suite, None), "no request at all is no presenter"


def test_behind_a_share_tunnel_every_visitor_looks_local_so_only_the_key_counts():
    suite = SimpleNamespace(stage_control=StageControl(trust_loopback=False, key="k"))
    assert not may_control(suite, _request("127.0.0.1"))
    assert may_control(suite, _request("127.0.0.1", **{KEY_HEADER: "k"}))


def test_outside_presenter_mode_everyone_may():
    assert may_control(SimpleNamespace(), _request("192.168.1.20"))


def test_each_start_gets_its_own_key():
    assert StageControl().key != StageControl().key and len(StageControl().key) >= 12


def test_check_sizes_says_what_it_found_also_when_there_was_nothing_to_ask():
    from demos.ui.models_tab import sizes_note
    hub_a = SimpleNamespace(id="a", title="Model A")
    hub_b = SimpleNamespace(id="b", title="Model B")
    assert "nothing to ask the hub" in sizes_note([], {})
    said = sizes_note([hub_a, hub_b], {"a": 1024, "b": None})
    assert "1 of 2" in said and "No size for Model B" in said
    assert "No size" not in sizes_note([hub_a], {"a": 1})
