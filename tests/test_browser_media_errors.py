"""What a person sees in the Image, Speech and Vision tabs when something is refused, and while an image renders:
the last result stays on screen, the reason is in the panel's status line and one toast, no red "Error" marks;
the live preview shows while the steps run (headless Chromium on the shared tiny app)."""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from tests import media
from tests.browser import browser_page, open_tab, screenshot



def _open(page, url: str, tab: str) -> None:
    """``open_tab``, also on a phone, where Gradio folds the last tabs into a menu."""
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Chat").wait_for()
    tab_button = page.get_by_role("tab", name=tab)
    if tab_button.count() and tab_button.first.is_visible():
        tab_button.first.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=tab).click()


def _no_error_marks(page) -> None:
    marks = page.locator("[data-testid=status-tracker] .error:visible")
    where = [marks.nth(i).evaluate("e => e.closest('[id]')?.id || '?'") for i in range(marks.count())]
    assert not where, f"a red Error mark covers {where}"


def _toasts(page) -> list[str]:
    return page.locator(".toast-body").all_inner_texts()


def _generate(page) -> None:
    """Click Generate and wait for this run's picture and its closing status (every run writes a new file)."""
    first = "document.querySelector('#image-gallery img')"
    before = page.evaluate(f"{first} ? {first}.src : ''")
    page.locator("#image-generate").click()
    page.wait_for_function(f"{first} && {first}.src !== {before!r}", timeout=120_000)
    page.wait_for_function("[...document.querySelectorAll('#image-progress [data-testid=status-tracker]')]"
                           ".every(t => t.classList.contains('hide'))", timeout=60_000)
    page.locator("#image-status", has_text="Done").wait_for(timeout=60_000)


def test_browser_image_refused_size_keeps_the_picture_and_says_why(tiny_app):
    with browser_page() as page:
        open_tab(page, tiny_app.url, "Image")
        page.locator("#image-prompt textarea").fill("a red house")
        page.locator("#image-live input").uncheck()
        _generate(page)
        _generate(page)  # the second run on the same pipeline: its figures name no load
        assert "Load" not in page.locator("#image-metrics").inner_text()
        picture = page.locator("#image-gallery img").first.get_attribute("src")
        width = page.locator("#image-width input")
        width.fill("500")
        width.press("Enter")
        note = page.locator("#image-size-note", has_text="Width 500 is out of range")
        note.wait_for(timeout=20_000)  # said where it is typed, before Generate
        assert "use 64 to 128" in note.inner_text()
        page.locator("#image-generate").click()
        page.locator("#image-status", has_text="Not generated").wait_for(timeout=30_000)
        page.wait_for_timeout(500)  # the failure's clean-up event
        status = page.locator("#image-status").inner_text()
        assert "Width 500 is out of range" in status and "Done" not in status and "→" not in status, status
        assert page.locator("#image-gallery img").first.get_attribute("src") == picture, "the picture stayed"
        assert page.locator("#image-gallery img").first.is_visible()
        _no_error_marks(page)
        toasts = _toasts(page)
        assert len(toasts) == 1 and toasts[0].count("Width 500 is out of range") == 1, toasts
        assert "minimum value" not in toasts[0] and "maximum value" not in toasts[0]
        screenshot(page, "image-refused-size")
        _phone_screenshot(page, "image-refused-size-phone")


def _phone_screenshot(page, name: str) -> None:
    """The same page at a phone's width (390×844), as a screenshot."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    screenshot(page, name)


def test_browser_image_live_preview_shows_while_the_steps_run(tiny_app):
    for width, height, name in ((1400, 1000, "image-live-preview"),):
        with browser_page(width, height) as page:
            _open(page, tiny_app.url, "Image")
            page.locator("#image-prompt textarea").fill("a red house")
            for box, value in (("#image-steps", "100"), ("#image-guidance", "7.5")):  # CFG: two passes a step
                page.locator(f"{box} input[type=number]").fill(value)
                page.locator(f"{box} input[type=number]").press("Enter")
            page.wait_for_timeout(500)
            page.locator("#image-generate").click()
            caption = page.locator("#image-gallery").get_by_text("preview at step").first
            caption.wait_for(timeout=120_000)
            status = page.locator("#image-status").inner_text()
            shown = page.locator("#image-gallery img").first
            assert shown.is_visible() and "/100" in status and "step" in status, status
            covered = page.evaluate("[...document.querySelectorAll('#image-gallery [data-testid=status-tracker]')]"
                                    ".some(t => !t.classList.contains('hide'))")
            assert not covered, "no progress overlay over the gallery"
            screenshot(page, name)
            page.locator("#image-stop").click()  # (a fast machine may have finished already)
            page.locator("#image-status", has_text=re.compile("Stopped|Done")).wait_for(timeout=60_000)


def test_browser_speech_keeps_the_transcript_on_an_error_and_names_a_bad_upload(tiny_app, tmp_path):
    clip = media.write_wav(tmp_path / "clip.wav", media.signal(2.0), 16000)
    notes = tmp_path / "notes.mp3"
    notes.write_text("these are meeting notes, not a recording\n" * 20)
    with browser_page() as page:
        open_tab(page, tiny_app.url, "Speech")
        page.locator("#speech-audio input[type=file]").set_input_files(str(clip))
        page.locator("#speech-status", has_text="ready to transcribe").wait_for(timeout=60_000)
        page.locator("#speech-skip-silence input").uncheck()  # a tone, not speech: transcribe all of it
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        text = page.locator("#speech-text textarea").input_value()
        assert text.strip()

        # An error (no audio at all now): the transcript stays, the reason is in the status line, once.
        page.locator("#speech-audio button[aria-label='Clear']").click()
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Not transcribed").wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        assert page.locator("#speech-text textarea").input_value() == text
        _no_error_marks(page)
        screenshot(page, "speech-error-keeps-transcript")

        # Not audio: said at upload, and the old transcript (of another file) goes.
        page.locator("#speech-media input[type=file]").set_input_files(str(notes))
        page.locator("#speech-status", has_text="cannot be transcribed").wait_for(timeout=30_000)
        assert "notes.mp3" in page.locator("#speech-status").inner_text()
        assert page.locator("#speech-text textarea").input_value() == ""
        assert "Reading" not in page.locator("#speech-status").inner_text()
        _no_error_marks(page)
        screenshot(page, "speech-bad-upload")
        _phone_screenshot(page, "speech-bad-upload-phone")


def test_browser_vision_refusal_keeps_the_chat_and_shows_pictures_small(tiny_app, tmp_path):
    picture = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(picture)
    for width, height, name in ((1400, 1000, "vision-refusal"), (390, 844, "vision-refusal-phone")):
        with browser_page(width, height) as page:
            _open(page, tiny_app.url, "Vision")
            page.locator("#vision-input input[type=file]").set_input_files(str(picture))
            page.locator("#vision-input img").first.wait_for()
            box = page.locator("#vision-input textarea")
            box.fill("What is in the picture?")
            box.press("Enter")
            page.wait_for_function("() => { const t = document.querySelector('#vision-metrics').innerText;"
                                   " return t.includes('TTFT') && !t.includes('appear here'); }", timeout=120_000)
            page.locator("#vision-input [data-testid=submit-button]").wait_for(timeout=60_000)
            answer = page.locator("#vision-chatbot .bot-row").last.inner_text()
            shown = page.locator("#vision-chatbot img").first.bounding_box()
            assert shown["width"] <= 360 and shown["height"] <= 240, shown

            box.fill("   ")  # refused: no question
            box.press("Enter")
            page.locator("#vision-status", has_text="Not sent").wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            assert "Type a question" in page.locator("#vision-status").inner_text()
            assert page.locator("#vision-chatbot .bot-row").last.inner_text() == answer, "the chat stayed"
            assert page.locator("#vision-chatbot img").count() == 1
            assert "TTFT" in page.locator("#vision-metrics").inner_text(), "the figures stayed"
            _no_error_marks(page)
            assert len(_toasts(page)) == 1
            screenshot(page, name)
        from gradio_client import Client
        Client(tiny_app.url, verbose=False).predict(api_name="/vision_clear")
