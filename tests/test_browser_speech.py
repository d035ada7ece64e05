"""The Speech tab in headless Chromium: upload an audio file, transcribe it, see the text, segments and metrics."""
from __future__ import annotations

import numpy as np

from tests import media
from tests.browser import browser_page, choose, open_tab, screenshot


def test_speech_tab_transcribes_an_uploaded_file(tiny_app, tmp_path):
    clip = media.write_wav(tmp_path / "clip.wav", media.signal(3.0), 16000)
    with browser_page() as page:
        open_tab(page, tiny_app.url, "Speech")
        choose(page, "speech-model", "Tiny Whisper")
        page.locator("#speech-audio input[type=file]").set_input_files(str(clip))
        page.get_by_label("Segments", exact=True).check()
        page.locator("#speech-skip-silence input").uncheck()  # a tone, not speech: transcribe all of it
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        text = page.locator("#speech-text textarea").input_value()
        assert text.strip(), "the transcript appeared"
        metrics = page.locator("#speech-metrics").inner_text()
        assert "RTF" in metrics and "Audio" in metrics, metrics
        assert "0:00" in page.locator("#speech-segments").inner_text(), "a segment row with its start time"
        assert ".srt" in page.locator("#speech-files").inner_text()
        screenshot(page, "speech-transcribed")


def test_browser_speech_skips_silence_and_takes_a_prompt(tiny_app, tmp_path):
    rate, voice = media.read_wav(media.espeak(tmp_path / "voice.wav", "Hello, this is a test of the speech demo."))
    gap = np.zeros(3 * rate)
    clip = media.write_wav(tmp_path / "pauses.wav", np.concatenate([gap, voice / 32768, gap, voice / 32768, gap]),
                           rate)
    tone = media.write_wav(tmp_path / "tone.wav", media.signal(3.0), 16000)
    with browser_page() as page:
        open_tab(page, tiny_app.url, "Speech")
        choose(page, "speech-model", "Tiny Whisper")
        assert page.locator("#speech-skip-silence input").is_checked(), "on by default"
        page.locator("#speech-audio input[type=file]").set_input_files(str(clip))
        page.locator("#speech-status", has_text="ready to transcribe").wait_for(timeout=60_000)
        page.locator("#speech-prompt textarea").fill("A demo of OpenVINO GenAI.")
        page.locator("#speech-hotwords textarea").fill("OpenVINO, GenAI")
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        status = page.locator("#speech-status").inner_text()
        assert "of silence" in status and "skipped" in status, status
        metrics = page.locator("#speech-metrics").inner_text()
        assert "VAD" in metrics and "Silence skipped" in metrics, metrics
        text = page.locator("#speech-text textarea").input_value()
        assert text.strip()
        screenshot(page, "speech-silence-skipped")
        # A tone is no speech: with the box unticked it is transcribed; ticked, the status line says there is no
        # speech and that transcript stays.
        page.locator("#speech-media input[type=file]").set_input_files(str(tone))
        page.locator("#speech-status", has_text="ready to transcribe").wait_for(timeout=60_000)
        page.locator("#speech-skip-silence input").uncheck()
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="Done").wait_for(timeout=120_000)
        before = page.locator("#speech-text textarea").input_value()
        assert before.strip()
        page.locator("#speech-skip-silence input").check()
        page.locator("#speech-run").click()
        page.locator("#speech-status", has_text="no speech found").wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        assert page.locator("#speech-text textarea").input_value() == before
        screenshot(page, "speech-no-speech")
        page.set_viewport_size({"width": 390, "height": 844})
        page.wait_for_timeout(300)
        screenshot(page, "speech-no-speech-phone")
