"""The Chat tab in headless Chromium, as a person uses it: pick the model, answer an example with its figures,
switch a LoRA adapter and back, turn the draft on, stop a long answer, compare with and without the draft, clear."""
from __future__ import annotations

from gradio_client import Client

from tests.browser import browser_page, choose, open_tab, screenshot

NOTE = "tokens/s"  # every answer is followed by a collapsible note whose title carries its figures


def _answers(page) -> list[str]:
    """The chat's answers (assistant messages that are not metrics notes), oldest first."""
    # Gradio groups consecutive assistant messages in one row: each message is a .panel-full-width, a note a .thought.
    texts = page.locator("#chat-chatbot .bot-row .message.panel-full-width:not(.thought)").all_inner_texts()
    return [t.strip() for t in texts]


def _wait_notes(page, count: int, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"document.querySelector('#chat-chatbot').innerText.split('{NOTE}').length - 1 >= {count}", timeout=timeout)


def _set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _send(page, text: str) -> None:
    page.locator("#chat-prompt textarea").fill(text)
    page.locator("#chat-send").click()


def _ask_new_chat(page, text: str) -> str:
    """Clear the chat, ask ``text``, wait for the answer's note; the answer."""
    page.locator("#chat-clear").click()
    page.wait_for_function(f"!document.querySelector('#chat-chatbot').innerText.includes('{NOTE}')", timeout=30_000)
    _send(page, text)
    _wait_notes(page, 1)
    return _answers(page)[-1]


def test_chat_tab_answers_switches_adapters_stops_compares_and_clears(tiny_app):
    try:
        with browser_page(height=1100) as page:
            open_tab(page, tiny_app.url, "Chat")
            choose(page, "chat-model", "Tiny LLM")

            # An example from the catalog, one click: the answer streams in and carries its figures.
            page.locator("#chat-examples").get_by_text("Hello, how are you?").click()
            _wait_notes(page, 1)
            assert "TTFT" in page.locator("#chat-metrics").inner_text()
            plain = _answers(page)[-1]
            assert plain, "the answer appeared"
            screenshot(page, "chat-answered")

            # LoRA: an adapter changes the answer; back to none gives the first answer again (each a new chat).
            choose(page, "chat-adapter", "LoRA A")
            with_lora = _ask_new_chat(page, "Hello, how are you?")
            screenshot(page, "chat-lora")
            choose(page, "chat-adapter", "None")
            assert with_lora != plain and _ask_new_chat(page, "Hello, how are you?") == plain

            # A long answer (480 tokens, slowed by a draft that agrees with nothing on this prompt, 16 draft
            # tokens per step), stopped as soon as the message shows (its stop flag is registered by then): the
            # partial reply stays, marked as stopped.
            page.locator("#chat-speculative input").check()
            _set_number(page, "chat-assistant-tokens", 16)
            page.get_by_text("Generation", exact=True).click()
            _set_number(page, "chat-max-new-tokens", 480)
            # Checking Speculative loads the draft's pipeline in its own event; the answers are no longer queued
            # behind it (each pipeline's scheduler decides), so wait until the status line says it is live, as a
            # user would: a Stop during that load would cancel the answer before it starts.
            page.wait_for_function("/Loaded .*with draft|with draft .*loaded and ready/"
                                   ".test(document.querySelector('#chat-status').innerText)", timeout=60_000)
            _send(page, "Tell me about France")
            page.wait_for_function(
                "document.querySelector('#chat-chatbot').innerText.includes('Tell me about France')", timeout=60_000)
            # dispatch_event skips Playwright's wait for a still page, which a streaming answer keeps busy.
            page.locator("#chat-stop").dispatch_event("click")
            page.wait_for_function("document.querySelector('#chat-chatbot').innerText.includes('stopped')",
                                   timeout=60_000)
            card = page.locator("#chat-metrics").inner_text()
            assert "Stopped" in card and "480 tokens" not in card, card

            # The next turn works, with the draft: its note reports accepted draft tokens.
            _set_number(page, "chat-max-new-tokens", 24)
            page.locator("#chat-prompt textarea").fill("Hello, how are you?")
            page.locator("#chat-prompt textarea").press("Enter")
            _wait_notes(page, 3)
            last_note = page.locator("#chat-chatbot").inner_text().split(NOTE)[-2:]
            assert "draft tokens accepted" in "".join(last_note) and "stopped" not in last_note[-1]
            assert _ask_new_chat(page, "Hello, how are you?") == plain, "greedy with a draft answers as without it"
            screenshot(page, "chat-draft")

            # Compare: the same prompt without and with the draft, side by side, with the speedup.
            page.get_by_role("tab", name="Compare side by side").click()
            page.locator("#chat-compare-prompt textarea").fill("Hello, how are you?")
            page.locator("#chat-compare-run").click()
            page.locator("#chat-compare-verdict").get_by_text("with speculative decoding").wait_for(timeout=60_000)
            verdict = page.locator("#chat-compare-verdict").inner_text()
            assert "identical text" in verdict and "draft tokens accepted" in verdict, verdict
            assert page.locator("#chat-compare-left").inner_text().strip()
            assert page.locator("#chat-compare-right").inner_text().strip()
            screenshot(page, "chat-compare")

            page.get_by_role("tab", name="Conversation").click()
            page.locator("#chat-clear").click()
            page.wait_for_function(f"!document.querySelector('#chat-chatbot').innerText.includes('{NOTE}')",
                                   timeout=30_000)
    finally:
        Client(tiny_app.url, verbose=False).predict(api_name="/unload_models")  # the app is shared by the session
