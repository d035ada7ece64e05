"""The Speech tab in headless Chromium: upload an audio file, transcribe it, see the text, segments and metrics."""
from __future__ import annotations

from tests import media
from tests.browser import browser_page, choose, open_tab, screenshot


def test_speech_tab_transcribes_an_uploaded_file(tiny_app, tmp_path):
    clip = media.write_wav(tmp_path / "clip.wav", media.signal(3.0), 16000)
    with browser_page() as page:
        open_tab(page, tiny_app.url, "Speech")
        choose(page, "speech-model", "Tiny Whisper")
        page.locator("#speech-audio input[type=file]").set_input_files(str(clip))
        page.get_by_label("Segments", exact=True).check()
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        text = page.locator("#speech-text textarea").input_value()
        assert text.strip(), "the transcript appeared"
        metrics = page.locator("#speech-metrics").inner_text()
        assert "RTF" in metrics and "Audio" in metrics, metrics
        assert "0:00" in page.locator("#speech-segments").inner_text(), "a segment row with its start time"
        assert ".srt" in page.locator("#speech-files").inner_text()
        screenshot(page, "speech-transcribed")
