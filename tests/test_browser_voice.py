"""The Voice tab in headless Chromium: type, speak, hear each sentence as it is made; Talk with an uploaded clip."""
from __future__ import annotations

from tests import media
from tests.browser import browser_page, choose, open_tab, screenshot


def test_browser_voice_speaks_typed_text_and_talks_about_an_uploaded_clip(tiny_app, tmp_path):
    clip = media.espeak(tmp_path / "question.wav", "Hello, how are you today?")
    for width, height, name in ((1400, 1000, "desktop"), (390, 844, "phone")):
        with browser_page(width, height) as page:
            open_tab(page, tiny_app.url, "Voice")
            screenshot(page, f"voice-idle-{name}")
            choose(page, "voice-voice", "Voice A")
            page.locator("#voice-text textarea").fill("Hello there. This is a test. Goodbye now.")
            page.locator("#voice-run").click()
            page.locator("#voice-status", has_text="Done").wait_for(timeout=120_000)
            assert page.locator("#voice-live li").count() == 3, "each sentence reached the live player"
            # The page's own player took the sentences in turn: at least the first one started or ended.
            page.wait_for_function("document.querySelectorAll('#voice-live li.played, #voice-live li.playing')"
                                   ".length > 0", timeout=30_000)
            assert "Time to first audio" in page.locator("#voice-metrics").inner_text()
            assert page.locator("#voice-player audio, #voice-player [data-testid='waveform-Speech']").count() or \
                "speech.wav" in page.content()
            screenshot(page, f"voice-spoken-{name}")
            if name == "desktop":  # a refused text says why and leaves the last speech on screen
                page.locator("#voice-text textarea").fill("?!")
                page.locator("#voice-run").click()
                page.locator("#voice-status", has_text="nothing to speak").wait_for(timeout=30_000)
                assert page.locator("#voice-live li").count() == 3
                assert "Time to first audio" in page.locator("#voice-metrics").inner_text()

            page.get_by_role("tab", name="Talk").click()
            page.locator("#talk-audio input[type=file]").set_input_files(str(clip))
            page.locator("#talk-run").click()
            page.locator("#talk-status", has_text="Done").wait_for(timeout=180_000)
            conversation = page.locator("#talk-chat").inner_text()
            assert conversation.strip(), "the transcript and the reply are in the conversation"
            assert "Transcription" in page.locator("#talk-metrics").inner_text()
            screenshot(page, f"voice-talk-{name}")
