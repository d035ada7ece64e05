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
            # ("… is loaded on CPU, and on CPU with the draft Tiny draft."; while it loads: "Loading … with the draft").
            page.wait_for_function("/is loaded .*with the draft/"
                                   ".test(document.querySelector('#chat-status').innerText)", timeout=60_000)
            _send(page, "Tell me about France")
            # Stop as soon as it turns red (the answer is reserved from then on, so the click counts however busy
            # the page or the machine is); dispatch_event skips Playwright's wait for a still page.
            page.locator("#chat-stop:not([disabled])").wait_for(timeout=60_000)
            page.locator("#chat-stop").dispatch_event("click")
            page.wait_for_function("document.querySelector('#chat-chatbot').innerText.includes('stopped')",
                                   timeout=60_000)
            card = page.locator("#chat-metrics").inner_text()
            assert "Stopped" in card and "480 tokens" not in card, card

            # The next turn works, with the draft: its note reports accepted draft tokens.
            _set_number(page, "chat-max-new-tokens", 24)
            notes = page.locator("#chat-chatbot").inner_text().count(NOTE)  # 1, or 2 if the Stop came mid-answer
            page.locator("#chat-prompt textarea").fill("Hello, how are you?")
            page.locator("#chat-prompt textarea").press("Enter")
            _wait_notes(page, notes + 1)
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


# ------------------------------------------------------------------------------------------------------------
# What users see (issue 13): errors keep the screen, status lines say what is true now, every answer names what
# produced it, Stop is live only while something runs, and a Stop during a long Compare ends it.

ERROR_PILL = ".error"  # Gradio's status tracker paints a red "Error" pill with this class over a failed output


def _toasts(page, text: str) -> int:
    """How many toast messages on screen contain ``text``."""
    return sum(text in t for t in page.locator(".toast-body").all_inner_texts())


def _status(page) -> str:
    return page.locator("#chat-status").inner_text()


def _wait_status(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(f"document.querySelector('#chat-status').innerText.includes({text!r})", timeout=timeout)


def _chat_on_top(page) -> bool:
    """True when what a person sees at the middle of the chat is the chat itself, not an overlay."""
    return page.evaluate("""() => { const chat = document.querySelector('#chat-chatbot');
        const box = chat.getBoundingClientRect();
        const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 3);
        return chat.contains(hit) && box.height > 100; }""")


def _wait_enabled(page, selector: str, enabled: bool = True) -> None:
    page.wait_for_function(f"document.querySelector({selector!r}).disabled === {str(not enabled).lower()}",
                           timeout=10_000)


def _is_red(page, selector: str) -> bool:
    color = page.locator(selector).evaluate("e => getComputedStyle(e).backgroundColor")
    r, g, b = (int(float(v)) for v in color[color.index("(") + 1:].rstrip(")").split(",")[:3])
    return r > 180 and g < 120 and b < 120


def test_browser_chat_errors_keep_the_screen_and_answers_say_what_made_them(tiny_app):
    try:
        _errors_keep_the_screen(tiny_app.url)
    finally:
        Client(tiny_app.url, verbose=False).predict(api_name="/unload_models")  # the app is shared by the session


def _errors_keep_the_screen(url: str) -> None:
    with browser_page() as page:
        open_tab(page, url, "Chat")
        # Nothing runs: Stop is a disabled grey button, and the draft's settings are locked while the draft is off.
        assert not page.locator("#chat-stop").is_enabled() and not _is_red(page, "#chat-stop")
        assert not page.locator("#chat-draft input").is_enabled()
        assert not page.locator("#chat-assistant-tokens input[type=number]").is_enabled()

        page.locator("#chat-examples").get_by_text("Hello, how are you?").click()
        _wait_notes(page, 1)
        answer = _answers(page)[-1]
        card = page.locator("#chat-metrics").inner_text()
        assert "Model Tiny LLM" in card and "Adapters none" in card and "Draft none" in card and "Device CPU" in card

        # A page opened after the load says the model is loaded (the line is made when the page loads).
        page.reload()
        page.get_by_role("tab", name="Chat").click()
        _wait_status(page, "is loaded on CPU")
        page.locator("#chat-examples").get_by_text("Hello, how are you?").click()
        _wait_notes(page, 1)

        # Send on an empty box: the chat stays, on top, with no "Error" pill; the message once, in the status line
        # and one toast.
        page.locator("#chat-send").click()
        _wait_status(page, "Type a message first")
        assert _answers(page)[-1] == answer and _chat_on_top(page)
        assert page.locator(ERROR_PILL).filter(has_text="Error").count() == 0
        assert _toasts(page, "Type a message first") == 1
        screenshot(page, "chat-error-empty-send")

        # A draft with another tokenizer: refused when chosen, once, and the status line does not say "Loading".
        page.locator("#chat-speculative input").check()
        _wait_enabled(page, "#chat-draft input")
        _wait_status(page, "with the draft Tiny draft")
        choose(page, "chat-draft", "Draft with another tokenizer")
        _wait_status(page, "cannot assist")
        page.wait_for_timeout(500)  # a second toast, if any, would have come by now
        assert _toasts(page, "cannot assist") == 1 and "Loading" not in _status(page)
        assert _answers(page)[-1] == answer and _chat_on_top(page)
        screenshot(page, "chat-error-foreign-draft")

        # The next good answer, with an adapter at its own alpha: the card and the note name both, no pill stays.
        page.locator("#chat-speculative input").uncheck()
        choose(page, "chat-adapter", "LoRA A")
        _wait_enabled(page, "#chat-alpha input[type=number]")
        _set_number(page, "chat-alpha", 0.6)
        _send(page, "Hello, how are you?")
        _wait_notes(page, 2)
        card = page.locator("#chat-metrics").inner_text()
        assert "Adapters LoRA A ×0.6" in card and "Model Tiny LLM" in card, card
        assert "LoRA A ×0.6" in page.locator("#chat-chatbot").inner_text().split(NOTE)[-2]
        assert page.locator(ERROR_PILL).filter(has_text="Error").count() == 0
        assert "⚠" not in _status(page) and "is loaded on CPU" in _status(page)
        # Back to no adapter: its alpha goes back to 1 and is locked.
        choose(page, "chat-adapter", "None")
        _wait_enabled(page, "#chat-alpha input[type=number]", False)
        assert page.locator("#chat-alpha input[type=number]").input_value() == "1"

        # Compare "LoRA" with no adapter chosen: the panes stay as they were, the message once.
        page.get_by_role("tab", name="Compare side by side").click()
        page.get_by_text("LoRA adapter: with vs without").click()
        page.locator("#chat-compare-run").click()
        _wait_status(page, "Choose an adapter")
        assert _toasts(page, "Choose an adapter") == 1
        assert page.locator(ERROR_PILL).filter(has_text="Error").count() == 0

        # Stop during a long Compare (480 tokens each; the draft, which agrees with nothing here, slows the second
        # answer): it ends the comparison, whichever answer it lands in, and no speedup is claimed.
        page.get_by_text("Draft: with vs without").click()
        page.get_by_text("Generation", exact=True).click()
        _set_number(page, "chat-max-new-tokens", 480)
        page.locator("#chat-speculative input").check()
        _wait_enabled(page, "#chat-draft input")
        choose(page, "chat-draft", "Tiny draft")
        _set_number(page, "chat-assistant-tokens", 16)
        page.locator("#chat-compare-prompt textarea").fill("Tell me about France")
        page.locator("#chat-compare-run").click()
        page.locator("#chat-compare-stop:not([disabled])").wait_for(timeout=60_000)
        page.locator("#chat-compare-stop").dispatch_event("click")  # at once: the comparison is reserved by then
        assert page.locator("#chat-compare-stop.stop").count() == 1, "Stop is red (variant stop) while it runs"
        page.locator("#chat-compare-stop[disabled]").wait_for(timeout=60_000)
        verdict = page.locator("#chat-compare-verdict").inner_text()
        assert "Stopped before" in verdict and "faster" not in verdict and "slower" not in verdict, verdict
        assert "tokens/s" not in page.locator("#chat-compare-right").inner_text(), "the second answer never ran"
        screenshot(page, "chat-compare-stopped")

    with browser_page(width=390, height=844) as phone:
        open_tab(phone, url, "Chat")
        phone.locator("#chat-examples").get_by_text("Hello, how are you?").click()
        _wait_notes(phone, 1)
        phone.locator("#chat-send").click()
        phone.locator("#chat-status").get_by_text("Type a message first").wait_for(timeout=30_000)
        assert phone.locator(ERROR_PILL).filter(has_text="Error").count() == 0 and _answers(phone)
        screenshot(phone, "chat-error-empty-send-phone")


def test_browser_chat_model_switch_shows_load_progress_and_every_control_follows(kit, tmp_path):
    """Switching to an entry that downloads first (from a local, throttled hub): a progress bar with the stage
    (downloading n/m files) and the time so far, Send disabled meanwhile; then Show code, defaults and the draft
    controls are the new entry's, and no event failed on the old entry's draft."""
    import yaml

    from tests.conftest import AppProcess
    from tests.hubserver import HubServer
    from tests.kit import catalog_dict

    catalog = catalog_dict(kit, tmp_path / "cache")
    catalog = {"settings": catalog["settings"], "chat": [catalog["chat"][0], {
        "id": "hub-llm", "label": "Tiny LLM from the hub", "source": "tiny/llm-ov",
        "generation": {"max_new_tokens": 12, "temperature": 0.0}}]}
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    with HubServer({"tiny/llm-ov": kit.llm.main_ov}, bytes_per_second=150_000, chunk_size=16384) as hub:
        app = AppProcess(["--models", str(path), "--cache-dir", str(tmp_path / "cache")],
                         env={**hub.env(), "HF_HOME": str(tmp_path / "hf-home")}, log_path=tmp_path / "app.log")
        try:
            app.wait_ready()
            for width, height in ((1400, 1000), (390, 844)):
                with browser_page(width=width, height=height) as page:
                    open_tab(page, app.url, "Chat")
                    choose(page, "chat-model", "Tiny LLM from the hub")
                    if width > 500:  # the first switch downloads; the phone's is already loaded
                        page.locator("#chat-status progress").wait_for(timeout=30_000)
                        page.wait_for_function("document.querySelector('#chat-status').innerText.match("
                                               "/downloading \\d+\\/\\d+ files.* \\d+ s/)", timeout=30_000)
                        assert not page.locator("#chat-send").is_enabled(), "Send waits for the load"
                        screenshot(page, "chat-load-progress")
                    _wait_status(page, "Tiny LLM from the hub** is loaded".replace("**", ""))
                    _wait_enabled(page, "#chat-send")
                    assert not page.locator("#chat-speculative").is_visible(), "this entry lists no drafts"
                    page.get_by_text("Show code", exact=True).click()
                    code = page.locator(".cm-content").first
                    code.get_by_text("max_new_tokens = 12").wait_for(timeout=10_000)
                    assert "llm-ov" in code.inner_text() and "main_ov" not in code.inner_text()
                    screenshot(page, "chat-switched" + ("-phone" if width < 500 else ""))
        finally:
            app.stop()
        log = app.output()
    assert "not in the list of choices" not in log and "Traceback" not in log, log[-3000:]
