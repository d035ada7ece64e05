"""The Vision tab in headless Chromium: pick the model, upload a picture, ask, see the answer with its figures; then
a second turn from a one-click example picture."""
from __future__ import annotations

import numpy as np
from gradio_client import Client
from PIL import Image

from tests.browser import browser_page, choose, open_tab, screenshot


def _answers(page) -> list[str]:
    return [t.strip() for t in page.locator("#vision-chatbot .bot-row .message.panel-full-width").all_inner_texts()]


def _ask(page, question: str | None) -> None:
    """Send the box (typing ``question`` first, if given) and wait until the answer is complete: a new answer row
    exists, the box offers Submit again, and the metrics card holds new figures. Waiting for the Stop button
    instead raced a tiny model that answers before the button is ever painted."""
    box = page.locator("#vision-input textarea")
    if question is not None:
        box.fill(question)
    answers_before = len(_answers(page))
    metrics_before = page.locator("#vision-metrics").inner_text()
    box.press("Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('#vision-chatbot .bot-row .message.panel-full-width').length > n",
        arg=answers_before, timeout=120_000)
    page.locator("#vision-input [data-testid=submit-button]").wait_for(timeout=120_000)
    page.wait_for_function(
        "before => { const t = document.querySelector('#vision-metrics').innerText;"
        " return !t.includes('appear here') && t !== before; }",
        arg=metrics_before, timeout=30_000)


def test_vision_tab_answers_an_uploaded_picture_with_metrics(tiny_app, tmp_path):
    picture = tmp_path / "shapes.png"
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(picture)
    Client(tiny_app.url, verbose=False).predict(api_name="/unload_models")  # shared app: this answer loads it
    try:
        with browser_page() as page:
            open_tab(page, tiny_app.url, "Vision")
            choose(page, "vision-model", "Tiny LLaVA")
            page.locator("#vision-input input[type=file]").set_input_files(str(picture))
            page.locator("#vision-input img").first.wait_for()  # the upload's thumbnail shows in the box
            _ask(page, "What is in the picture?")
            metrics = page.locator("#vision-metrics").inner_text()
            assert "TTFT" in metrics and "Vision encoding" in metrics and "Load" in metrics, metrics
            assert _answers(page) and _answers(page)[-1], "the answer appeared"
            assert page.locator("#vision-chatbot img").count() == 1, "the uploaded picture is shown in the chat"
            screenshot(page, "vision-answered")

            # A second turn with another picture, one click from the examples (text and picture filled in).
            page.locator("#vision-examples").get_by_text("What is in the picture?").click()
            page.locator("#vision-input img").first.wait_for()
            _ask(page, None)
            assert len(_answers(page)) == 2 and _answers(page)[-1], "the second answer appeared"
            assert page.locator("#vision-chatbot img").count() == 2
            screenshot(page, "vision-second-turn")
    finally:
        Client(tiny_app.url, verbose=False).predict(api_name="/vision_clear")
