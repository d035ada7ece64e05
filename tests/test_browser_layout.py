"""The page on a phone (390×844) and on a desktop (1400×1000), as a person sees it: every tab one tap away, results
before settings, tables with readable columns, a title that fits; plus a screenshot of every panel at both sizes."""
from __future__ import annotations

from tests.browser import browser_page, screenshot

TABS = ["Chat", "Image", "Speech", "Vision", "Models"]


def _box(page, selector: str) -> dict:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is on the page"
    return box


def test_browser_phone_layout_every_tab_one_tap_results_first_tables_readable_then_desktop(tiny_app):
    with browser_page(390, 844) as page:
        page.goto(tiny_app.url, wait_until="load")
        page.get_by_role("tab", name="Chat").wait_for()
        # The title fits in two lines (it took three, in Gradio's 26 px).
        title = page.locator("h1").first
        lines = page.evaluate("h => h.getBoundingClientRect().height / parseFloat(getComputedStyle(h).lineHeight)",
                              title.element_handle())
        assert lines <= 2.2, f"the title takes {lines:.1f} lines"
        # Every tab is a visible tab button: none hides behind Gradio's overflow menu.
        assert page.locator(".overflow-menu").count() == 0 or not page.locator(".overflow-menu").first.is_visible()
        for tab in TABS:
            button = page.get_by_role("tab", name=tab, exact=True)
            assert button.is_visible(), f"the {tab} tab is one tap away"
            button.click()
            page.wait_for_timeout(300)
            screenshot(page, f"phone-{tab.lower()}")

        # Image: the prompt and Generate, then the pictures, then the settings.
        page.get_by_role("tab", name="Image", exact=True).click()
        generate, gallery = _box(page, "#image-generate"), _box(page, "#image-gallery")
        settings = _box(page, "#image-model")
        assert generate["y"] < gallery["y"] < settings["y"], (generate, gallery, settings)
        assert gallery["y"] < 844, "the pictures start on the first screen"

        # Models: columns wide enough for words (they were one letter wide), the table scrolls sideways.
        page.get_by_role("tab", name="Models", exact=True).click()
        page.locator("#models-table .body-cell").first.wait_for()
        widths = page.evaluate("() => [...document.querySelector('#models-table .virtual-row')"
                               ".querySelectorAll('.body-cell')].map(c => c.getBoundingClientRect().width)")
        assert len(widths) == 7 and min(widths) >= 60, widths
        headers = page.evaluate("() => [...document.querySelectorAll('#models-table .header-table th')]"
                                ".map(c => c.getBoundingClientRect().width)")
        assert min(headers) >= 60 and abs(sum(headers) - sum(widths)) < 8, (headers, widths)


        # The same page on a desktop: settings beside the pictures again, and a screenshot of every panel.
        page.set_viewport_size({"width": 1400, "height": 1000})
        for tab in TABS:
            page.get_by_role("tab", name=tab, exact=True).click()
            page.wait_for_timeout(300)
            screenshot(page, f"desktop-{tab.lower()}")
        page.get_by_role("tab", name="Image", exact=True).click()
        assert _box(page, "#image-model")["x"] < _box(page, "#image-gallery")["x"]
