"""The Chat tab in headless Chromium: an example answered with its figures, Stop mid-answer, next turn, Clear."""
from __future__ import annotations

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture
def page(tiny_app):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(tiny_app.url, wait_until="networkidle")
        page.locator("#tab-chat-button").click()
        yield page
        browser.close()
    from gradio_client import Client
    Client(tiny_app.url, verbose=False).predict(api_name="/unload_models")  # the app is shared by the session


def _notes(page) -> list[str]:
    """Titles of the per-answer metrics notes in the chat."""
    return page.locator("#chat-chatbot").get_by_text("tokens/s").all_inner_texts()


def _set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_chat_tab_answers_stops_and_clears(page):
    chat = page.locator("#chat-chatbot")
    # An example from the catalog, one click: the answer streams in and carries its figures.
    page.locator("#chat-examples").get_by_text("Hello, how are you?").click()
    page.wait_for_function("document.querySelector('#chat-chatbot').innerText.includes('tokens/s')", timeout=60000)
    assert "TTFT" in page.locator("#chat-metrics").inner_text()
    assert len(_notes(page)) == 1

    # A long answer (480 tokens, slowed by a draft that agrees with nothing on this prompt, 16 draft tokens per
    # step), stopped as soon as the message shows (its stop flag is registered by then; clicking while tokens
    # stream in can wait on a busy browser): the partial reply stays, marked as stopped.
    page.locator("#chat-speculative input").check()
    _set_number(page, "chat-assistant-tokens", 16)
    page.get_by_text("Generation", exact=True).click()
    _set_number(page, "chat-max-new-tokens", 480)
    page.locator("#chat-prompt textarea").fill("Tell me about France")
    page.locator("#chat-send").click()
    page.wait_for_function("document.querySelector('#chat-chatbot').innerText.includes('Tell me about France')",
                           timeout=60000)
    # dispatch_event skips Playwright's wait for a still page, which a streaming answer keeps busy.
    page.locator("#chat-stop").dispatch_event("click")
    page.wait_for_function("document.querySelector('#chat-chatbot').innerText.includes('stopped')", timeout=60000)
    card = page.locator("#chat-metrics").inner_text()
    assert "Stopped" in card and "480 tokens" not in card, card

    # The next turn works (speculative decoding on, so its note reports accepted draft tokens).
    _set_number(page, "chat-max-new-tokens", 24)
    page.locator("#chat-prompt textarea").fill("Hello, how are you?")
    page.locator("#chat-prompt textarea").press("Enter")
    page.wait_for_function(
        "document.querySelector('#chat-chatbot').innerText.split('tokens/s').length - 1 >= 3", timeout=60000)
    last_note = chat.inner_text().split("tokens/s")[-1]
    assert "draft tokens accepted" in last_note and "stopped" not in last_note

    page.locator("#chat-clear").click()
    page.wait_for_function("!document.querySelector('#chat-chatbot').innerText.includes('tokens/s')", timeout=30000)
