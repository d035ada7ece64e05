"""The Models tab in headless Chromium: fetch a model from the local hub with a visible progress bar, then load it."""
from __future__ import annotations

import yaml

from tests.browser import browser_page, choose, open_tab, screenshot
from tests.conftest import AppProcess
from tests.hubserver import HubServer


def test_models_tab_fetches_from_hub_with_progress_bar_then_loads(kit, tmp_path):
    catalog = {"chat": [{"id": "hub-llm", "label": "Tiny LLM from the hub", "source": "tiny/llm-ov"}]}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(catalog))
    # Throttled so the download lasts long enough (~3 s) for the page to show its progress bar.
    with HubServer({"tiny/llm-ov": kit.llm.main_ov}, bytes_per_second=300_000, chunk_size=16384) as hub, \
            browser_page() as page:
        app = AppProcess(["--models", str(tmp_path / "models.yaml"), "--cache-dir", str(tmp_path / "cache")],
                         env={**hub.env(), "HF_HOME": str(tmp_path / "hf-home")}, log_path=tmp_path / "app.log")
        try:
            open_tab(page, app.wait_ready().url, "Models")
            table = page.locator("#models-table")
            assert "not downloaded" in table.inner_text()
            page.locator("#models-fetch").click()
            progress = page.locator(".progress-level", has_text="Fetching").first
            progress.wait_for(state="visible", timeout=20_000)  # huggingface_hub's tqdm bar, shown by Gradio
            screenshot(page, "models-fetch-progress")
            page.locator("#models-result", has_text="is ready in").wait_for(timeout=60_000)
            assert "downloaded" in table.inner_text() and "not downloaded" not in table.inner_text()

            page.locator("#models-load").click()
            page.locator("#models-result", has_text="compiled in").wait_for(timeout=60_000)
            screenshot(page, "models-loaded")
            row = table.inner_text().split("hub-llm", 1)[1]
            assert "downloaded" in row and "CPU" in row, row  # state and "loaded on" columns
            assert "Error" not in page.locator("body").inner_text()
        finally:
            app.stop()


def test_browser_models_tab_says_what_check_sizes_found_and_what_a_load_released(tiny_catalog_path, tmp_path):
    """Online, with only local entries, "Check sizes on the hub" says there was nothing to ask (it showed nothing);
    with room for one pipeline, loading a second entry says which one it released (it evicted silently)."""
    app = AppProcess(["--models", str(tiny_catalog_path), "--cache-dir", str(tmp_path / "cache"),
                      "--max-pipelines", "1"],
                     env={"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0"}, log_path=tmp_path / "app.log")
    try:
        with browser_page() as page:
            open_tab(page, app.wait_ready().url, "Models")
            page.locator("#models-sizes").click()
            page.locator("#models-result", has_text="nothing to ask the hub").wait_for(timeout=30_000)
            screenshot(page, "models-sizes-all-local")

            choose(page, "models-choice", "Tiny LLM (chat)")
            page.locator("#models-load").click()
            page.locator("#models-result", has_text="compiled in").wait_for(timeout=60_000)
            assert "released" not in page.locator("#models-result").inner_text()
            choose(page, "models-choice", "Tiny Whisper (speech)")
            page.locator("#models-load").click()
            page.locator("#models-result", has_text="Tiny Whisper").wait_for(timeout=60_000)
            said = page.locator("#models-result").inner_text()
            assert "released Tiny LLM (CPU)" in said and "max_pipelines" in said, said
            screenshot(page, "models-load-released")
            assert "Error" not in page.locator("body").inner_text()
    finally:
        app.stop()
