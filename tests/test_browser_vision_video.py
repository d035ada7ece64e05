"""The Vision tab with a video in headless Chromium: upload it, see the strip of sampled frames under the question,
get the answer with its frame figures, ask a follow-up; a one-frame video is refused and the chat stays."""
from __future__ import annotations

from gradio_client import Client

from tests import videos
from tests.browser import browser_page, choose, open_tab, screenshot
from tests.test_browser_vision import _answers, _ask


def test_browser_video_upload_strip_answer_and_follow_up(tiny_app, tmp_path):
    clip = videos.write(tmp_path / "clip.mp4", videos.frames(40, 96, 128))
    still = videos.write(tmp_path / "one.mp4", videos.frames(1))
    try:
        for width, height, name in ((1400, 1000, "desktop"), (390, 844, "phone")):
            with browser_page(width, height) as page:
                open_tab(page, tiny_app.url, "Vision")
                choose(page, "vision-model", "Tiny Qwen2-VL (video)")
                assert "Takes video" in page.locator("#vision-constraints").inner_text(), "known from its config"
                page.locator("#vision-input input[type=file]").set_input_files(str(clip))
                page.locator("#vision-input .thumbnail-item, #vision-input video").first.wait_for(timeout=30_000)
                _ask(page, "What happens in the video?")
                strip = page.locator("#vision-chatbot .user-row img")
                assert strip.count() == 1, "the strip of the sampled frames is under the question"
                assert "Video clip.mp4 · 8 of 40 frames" in page.locator("#vision-chatbot .user-row").inner_text()
                metrics = page.locator("#vision-metrics").inner_text()
                assert "Frames 8" in metrics and "Video decoding" in metrics, metrics
                assert _answers(page)[-1]
                screenshot(page, f"vision-video-{name}")
                if name == "phone":  # the phone shows the same flow; one answer is enough to look at its layout
                    continue

                _ask(page, "And at the end?")
                assert len(_answers(page)) == 2 and _answers(page)[-1], "the follow-up was answered"

                page.locator("#vision-input input[type=file]").set_input_files(str(still))
                page.locator("#vision-input textarea").fill("And this one?")
                page.locator("#vision-input textarea").press("Enter")
                page.locator("#vision-status").get_by_text("has a single frame").wait_for(timeout=30_000)
                assert len(_answers(page)) == 2 and strip.count() == 1, "the refused video left the chat as it was"
                assert page.locator("#vision-input textarea").input_value() == "And this one?", "nothing to retype"
                screenshot(page, f"vision-video-refused-{name}")
                # A model that takes no video says so at once; the chat and the message stay.
                choose(page, "vision-model", "Tiny LLaVA")
                assert "Takes no video" in page.locator("#vision-constraints").inner_text()
                page.locator("#vision-input button[aria-label='Remove file']").first.click()  # the refused video
                page.locator("#vision-input input[type=file]").set_input_files(str(clip))
                page.locator("#vision-input textarea").fill("What happens?")
                page.locator("#vision-input textarea").press("Enter")
                page.locator("#vision-status").get_by_text("Tiny LLaVA takes no video").wait_for(timeout=30_000)
                assert len(_answers(page)) == 2 and strip.count() == 1
    finally:
        Client(tiny_app.url, verbose=False).predict(api_name="/vision_clear")
