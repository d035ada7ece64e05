"""Presenter mode: ``python app.py --presenter`` starts with every stage model loaded and warm, and offline."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest
import yaml
from gradio_client import Client

from demos.core.catalog import load_catalog
from demos.ui.presenter import KEY_QUERY, stage_entries
from tests.browser import browser_page, screenshot
from tests.conftest import AppProcess


@pytest.fixture(scope="module")
def presenter_app(tiny_catalog_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("presenter")
    # On every interface, as on stage: the machine's own network address plays an audience phone.
    app = AppProcess(["--presenter", "--models", str(tiny_catalog_path), "--cache-dir", str(folder / "cache"),
                      "--host", "0.0.0.0"],
                     env={"HF_HOME": str(folder / "hf-home")}, log_path=folder / "app.log")
    try:
        yield app.wait_ready(timeout=300)
    finally:
        app.stop()


def test_stage_entries_are_marked_ones_or_first_of_each_panel(tiny_catalog_path, tmp_path):
    catalog = load_catalog(tiny_catalog_path)
    assert [e.id for e in stage_entries(catalog)] == ["tiny-llm", "tiny-sd", "tiny-whisper", "tiny-tts", "tiny-vlm"]
    data = yaml.safe_load(tiny_catalog_path.read_text())
    data["chat"][1]["presenter"] = True
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(data))
    assert [e.id for e in stage_entries(load_catalog(tmp_path / "models.yaml"))][0] == "tiny-llm-export"


def test_presenter_starts_warm_offline_and_kiosk_styled(presenter_app):
    client = Client(presenter_app.url, verbose=False)
    table = client.predict(api_name="/list_models")
    rows = {row[1]: row for row in (table["data"] if isinstance(table, dict) else table)}
    for entry_id in ("tiny-llm", "tiny-sd", "tiny-whisper", "tiny-tts", "tiny-vlm"):
        assert rows[entry_id][6] == "CPU", f"{entry_id} is loaded before the page opens"
    log = presenter_app.output()
    assert log.count("loaded in") >= 5 and log.count("warmed up in") >= 5
    with urllib.request.urlopen(presenter_app.url + "config", timeout=10) as response:
        config = json.load(response)
    assert config.get("footer_links") == [] and "font-size: 18px" in (config.get("css") or "")
    assert config.get("run_history") is False, "a shared kiosk keeps no per-browser run history"
    # Offline once warm: a venue's network can no longer stall a download (the Models tab says so).
    assert "only cached models are available" in json.dumps(config)
    # The chat opens on Compare, the view the audience looks at.
    tabs = [c for c in config["components"] if c.get("type") == "tabs"]
    assert any(t.get("props", {}).get("selected") == "chat-compare" for t in tabs), "chat opens on Compare"


def test_presenter_first_answers_need_no_load(presenter_app):
    """Each tab's opening request finds its pipeline built and warm: no answer reports a load."""
    client = Client(presenter_app.url, verbose=False)
    _, metrics = client.predict("Hello, how are you?", "tiny-llm", api_name="/chat")
    assert "load_s" not in metrics, "the chat pipeline was built and warmed before the page opened"
    _, metrics = client.predict("Hello, how are you?", "tiny-llm", draft="tiny-draft", api_name="/chat")
    assert "load_s" not in metrics and "acceptance_rate" in metrics, "so was the one with the draft (Compare)"
    _, metrics = client.predict("a red square", "tiny-sd", adapters={"style-kohya": 0.8}, api_name="/generate_image")
    assert metrics["compiled"] is False


# ---------------------------------------------------------------------------------------------------------------
# On stage, in a browser (both stage sizes) and from an audience phone

STAGE_SIZES = [(1400, 1000), (1920, 1080)]


def _bottom(page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is shown"
    return box["y"] + box["height"]


def _smallest_label_px(page) -> float:
    return page.evaluate("""() => Math.min(...[...document.querySelectorAll(
        '[data-testid="block-info"], .block-label, label span, [role="tab"]')]
        .filter(e => e.offsetParent !== null && e.innerText.trim())
        .map(e => parseFloat(getComputedStyle(e).fontSize)))""")


def test_browser_presenter_compare_verdict_above_the_fold_large_type_settings_folded(presenter_app):
    with browser_page(*STAGE_SIZES[0]) as page:
        page.goto(presenter_app.url, wait_until="load")
        page.locator("#chat-compare-run").wait_for()  # the chat opens on Compare
        assert not page.locator("#chat-system").is_visible(), "the settings are folded away"
        assert page.locator(".stage-settings").first.is_visible(), "… in one Settings accordion"
        page.locator("#chat-compare-run").click()
        page.locator("#chat-compare-verdict").get_by_text("with speculative decoding").wait_for(timeout=60_000)
        page.wait_for_function("document.querySelectorAll('.metrics-card')[1]?.innerText.includes('tokens/s')",
                               timeout=30_000)
        for width, height in STAGE_SIZES:
            page.set_viewport_size({"width": width, "height": height})
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(300)
            screenshot(page, f"presenter-chat-compare-{width}")
            # The story in one glance: both answers, their figures and the verdict in the first screen.
            for part in ("#chat-compare-verdict", "#chat-compare-left", "#chat-compare-right"):
                assert _bottom(page, part) <= height, f"{part} ends at {_bottom(page, part):.0f} > {height}"
            cards = page.locator(".panel-results .metrics-card")
            for index in range(cards.count()):
                if cards.nth(index).is_visible():
                    box = cards.nth(index).bounding_box()
                    assert box["y"] + box["height"] <= height, f"figures below the fold at {width}x{height}"
            compare_box = page.locator("#chat-compare-left").bounding_box()
            assert compare_box["width"] > 0.4 * width, "the answers get the width the settings took"
            smallest = _smallest_label_px(page)
            assert smallest >= 18, f"a label is {smallest} px (readable from the back of a room: 18 px or more)"


def test_browser_presenter_every_tab_is_one_click_from_a_result(presenter_app):
    with browser_page(*STAGE_SIZES[1]) as page:
        page.goto(presenter_app.url, wait_until="load")
        # Image: the prompt is typed already; the first Generate on stage gives a picture, not "Write a prompt".
        page.get_by_role("tab", name="Image", exact=True).click()
        assert page.locator("#image-prompt textarea").input_value().strip()
        page.locator("#image-generate").click()
        page.locator("#image-status", has_text="Done").wait_for(timeout=120_000)
        assert page.locator("#image-gallery img").count() >= 1
        screenshot(page, "presenter-image-1920")
        # Speech: the box holds a spoken sample clip; Transcribe is the first click.
        page.get_by_role("tab", name="Speech", exact=True).click()
        page.locator("#speech-audio audio, #speech-audio [data-testid=waveform-Audio]").first.wait_for(
            state="attached", timeout=20_000)
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        screenshot(page, "presenter-speech-1920")
        # Vision: the box holds an example picture with its question; Send is the first click.
        page.get_by_role("tab", name="Vision", exact=True).click()
        assert page.locator("#vision-input textarea").input_value() == "What is in the picture?"
        page.locator("#vision-input [data-testid=submit-button]").click()
        page.locator("#vision-chatbot .bot-row").first.wait_for(timeout=120_000)
        screenshot(page, "presenter-vision-1920")
        page.get_by_role("tab", name="Models", exact=True).click()
        screenshot(page, "presenter-models-1920")
        for width, height in STAGE_SIZES:
            page.set_viewport_size({"width": width, "height": height})
            for tab in ("Chat", "Image", "Speech", "Vision", "Models"):
                page.get_by_role("tab", name=tab, exact=True).click()
                page.wait_for_timeout(300)
                screenshot(page, f"presenter-{tab.lower()}-{width}")
        assert "Write a prompt" not in page.locator("body").inner_text()


def _phone_url(app: AppProcess) -> str:
    from demos.ui.presenter import lan_address
    address = lan_address()
    if address is None:
        pytest.skip("this machine has no network address other than loopback to play an audience phone")
    return f"http://{address}:{app.port}/"


def test_browser_presenter_refuses_fetch_load_unload_to_the_audience(presenter_app):
    phone = _phone_url(presenter_app)
    # Not on the API page, and not callable by name, from anywhere.
    with urllib.request.urlopen(presenter_app.url + "gradio_api/info", timeout=10) as response:
        named = json.load(response)["named_endpoints"]
    assert not {"/unload_models", "/fetch_model", "/load_model"} & set(named), sorted(named)
    assert "/list_models" in named
    with pytest.raises(Exception):
        Client(phone, verbose=False).predict(api_name="/unload_models")
    key = re.search(KEY_QUERY + r"=(\S+)", presenter_app.output()).group(1)
    with browser_page(390, 844) as page:
        # A phone in the room presses Unload all and Load: refused, and the stage models stay loaded.
        page.goto(phone, wait_until="load")
        page.get_by_role("tab", name="Models", exact=True).click()
        for button, action in (("#models-unload", "unload"), ("#models-load", "load")):
            page.locator(button).click()
            page.locator("#models-result", has_text="only the presenter can fetch, load or unload").wait_for(
                timeout=30_000)
            # Said, and nothing blanked: the table still shows the stage models loaded.
            assert "CPU" in page.locator("#models-table").inner_text()
            assert f"user error in {action}: in presenter mode only the presenter" in presenter_app.output()
        screenshot(page, "presenter-phone-refused")
        # The presenter on another machine, with the key printed at start, may (Fetch of a local entry).
        page.goto(f"{phone}?{KEY_QUERY}={key}", wait_until="load")
        page.get_by_role("tab", name="Models", exact=True).click()
        page.locator("#models-fetch").click()
        page.locator("#models-result", has_text="is ready").wait_for(timeout=60_000)
    table = Client(presenter_app.url, verbose=False).predict(api_name="/list_models")
    rows = {row[1]: row for row in (table["data"] if isinstance(table, dict) else table)}
    assert all(rows[e][6] == "CPU" for e in ("tiny-llm", "tiny-sd", "tiny-whisper", "tiny-tts", "tiny-vlm")), rows
