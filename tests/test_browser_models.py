"""The Models tab in headless Chromium: ask the local hub for sizes, fetch a model from it with a visible progress bar,
load it, then load another one and read which one that released."""
from __future__ import annotations

import yaml

from tests.browser import browser_page, choose, open_tab, screenshot
from tests.conftest import AppProcess
from tests.hubserver import HubServer


def test_models_tab_fetches_from_hub_with_progress_bar_then_loads(kit, tmp_path):
    catalog = {"chat": [{"id": "hub-llm", "label": "Tiny LLM from the hub", "source": "tiny/llm-ov"}],
               "speech": [{"id": "local-whisper", "label": "Tiny Whisper", "source": str(kit.whisper.ov)}]}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(catalog))
    # Throttled so the download lasts long enough (~3 s) for the page to show its progress bar.
    with HubServer({"tiny/llm-ov": kit.llm.main_ov}, bytes_per_second=300_000, chunk_size=16384) as hub, \
            browser_page() as page:
        app = AppProcess(["--models", str(tmp_path / "models.yaml"), "--cache-dir", str(tmp_path / "cache"),
                          "--max-pipelines", "1"],
                         env={**hub.env(), "HF_HOME": str(tmp_path / "hf-home")}, log_path=tmp_path / "app.log")
        try:
            open_tab(page, app.wait_ready().url, "Models")
            table = page.locator("#models-table")
            assert "not downloaded" in table.inner_text()
            # Check sizes says what it found (it showed nothing when there was nothing to ask).
            page.locator("#models-sizes").click()
            page.locator("#models-result", has_text="The hub reported the size of 1 of 1").wait_for(timeout=30_000)
            assert "on the hub" in table.inner_text()
            page.locator("#models-fetch").click()
            # The loader's report of huggingface_hub's bars ("Downloading tiny/llm-ov: 3/11 files · 0.2 MB/0.8 MB"),
            # sent from the hub's worker threads, shown by Gradio.
            progress = page.locator(".progress-level", has_text="Downloading tiny/llm-ov").first
            progress.wait_for(state="visible", timeout=20_000)
            screenshot(page, "models-fetch-progress")
            page.locator("#models-result", has_text="is ready in").wait_for(timeout=60_000)
            assert "downloaded" in table.inner_text() and "not downloaded" not in table.inner_text()

            page.locator("#models-load").click()
            page.locator("#models-result", has_text="compiled in").wait_for(timeout=60_000)
            screenshot(page, "models-loaded")
            row = table.inner_text().split("hub-llm", 1)[1]
            assert "downloaded" in row and "CPU" in row, row  # state and "loaded on" columns
            assert "Error" not in page.locator("body").inner_text()

            # With room for one pipeline, the next load says what it released (it evicted silently).
            choose(page, "models-choice", "Tiny Whisper (speech)")
            page.locator("#models-load").click()
            page.locator("#models-result", has_text="Tiny Whisper").wait_for(timeout=60_000)
            said = page.locator("#models-result").inner_text()
            assert "released Tiny LLM from the hub (CPU)" in said and "max_pipelines" in said, said
            screenshot(page, "models-load-released")
        finally:
            app.stop()

