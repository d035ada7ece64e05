"""Chat's decoding settings in headless Chromium (issue 20): a reasoning answer (forced by a structured-output regex,
since the tiny model never thinks by itself) shows its thinking collapsed above the answer, never inside it, and the
next turn does not send it back; prompt lookup answers with its figures. Screenshots at desktop and phone width."""
from __future__ import annotations

from tests.browser import browser_page, open_tab, screenshot

THINK_REGEX = "<think>[a-z ]{1,30}</think>[A-Za-z ]{1,30}"


def test_thinking_is_collapsed_above_the_answer_and_lookup_reports(tiny_app):
    with browser_page(1400, 1000) as page:
        open_tab(page, tiny_app.url, "Chat")
        page.locator("#chat-structured").get_by_text("Structured output").first.click()
        page.locator("#chat-output-kind").get_by_text("Regex", exact=True).click()
        page.locator("#chat-output-format textarea").fill(THINK_REGEX)
        page.locator("#chat-prompt-lookup input").check()
        page.get_by_text("Generation", exact=True).click()
        page.locator("#chat-max-new-tokens input[type=number]").fill("60")
        page.locator("#chat-max-new-tokens input[type=number]").press("Enter")
        page.locator("#chat-prompt textarea").fill("Hello")
        page.locator("#chat-send").click()
        chat = page.locator("#chat-chatbot")
        chat.get_by_text("draft prompt lookup").first.wait_for(timeout=90_000)
        assert chat.get_by_text("Thinking", exact=True).first.is_visible()
        shown = chat.inner_text()
        assert "think>" not in shown, shown  # the tags never reach the page: thinking is its own message
        assert "Prompt lookup" in page.locator(".metrics-card").first.inner_text()
        screenshot(page, "chat-thinking-desktop")
        page.set_viewport_size({"width": 390, "height": 844})  # the same answer at phone width
        page.wait_for_timeout(300)
        assert chat.get_by_text("Thinking", exact=True).first.is_visible()
        screenshot(page, "chat-thinking-phone")
