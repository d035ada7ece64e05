"""How busy a streamed Compare keeps the browser, with the page's pacing (demos/ui/pacing) and without it.

    python bench/bench_ui_pacing.py [--rounds 2]

Starts the app on the tiny catalog twice, once as it is and once with the pacing turned off (every update the
serving throttle lets through, one per ``serving.UPDATE_INTERVAL_S``, goes to the page), and in headless Chromium
runs the same Compare (480 tokens each, the second slowed by a draft that agrees with nothing) a few times. It
prints, per run, Chromium's main-thread task time over the wall time of the comparison (1.0 = the page could not
handle a click until the end) and the ratio between the two apps. Timings are the machine's: run it alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UNPACED = "import demos.ui.pacing as p; p.MIN_S = p.MAX_S = 0.0\n"
LAUNCH = "import runpy, sys; sys.argv = ['app.py'] + sys.argv[1:]; runpy.run_path('app.py', run_name='__main__')\n"


def busy_share(url: str, rounds: int) -> list[float]:
    from tests.browser import browser_page, open_tab

    def number(page, elem_id: str, value: int) -> None:
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Enter")

    shares = []
    with browser_page() as page:
        open_tab(page, url, "Chat")
        page.get_by_text("Generation", exact=True).click()
        number(page, "chat-max-new-tokens", 480)
        page.locator("#chat-speculative input").check()
        number(page, "chat-assistant-tokens", 16)
        page.get_by_role("tab", name="Compare side by side").click()
        page.locator("#chat-compare-prompt textarea").fill("Tell me about France")
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        for index in range(rounds + 1):  # the first round loads and warms up
            before = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            started = time.monotonic()
            page.locator("#chat-compare-run").click()
            page.locator("#chat-compare-stop:not([disabled])").wait_for(timeout=120_000)
            page.locator("#chat-compare-stop[disabled]").wait_for(timeout=120_000)
            wall = time.monotonic() - started
            after = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            if index:
                shares.append((after["TaskDuration"] - before["TaskDuration"]) / wall)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import subprocess
    import urllib.request

    from tests.conftest import free_port
    from tests.kit import build_all, write_catalog

    folder = Path(tempfile.mkdtemp(prefix="bench-ui-pacing-"))
    catalog = write_catalog(build_all(), folder)
    results = {}
    for name, prelude in (("paced", ""), ("unpaced", UNPACED)):
        script = folder / f"run_{name}.py"
        script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{prelude}{LAUNCH}")
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = subprocess.Popen([sys.executable, str(script), "--models", str(catalog), "--port", str(port)],
                                cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT)
        try:
            for _ in range(240):
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.5)
            results[name] = busy_share(url, args.rounds)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(f"{name:8s} main-thread busy share per Compare: " + ", ".join(f"{s:.2f}" for s in results[name]))
    paced, unpaced = (sum(v) / len(v) for v in (results["paced"], results["unpaced"]))
    print(f"busy share unpaced / paced: {unpaced / paced:.2f}x (mean {unpaced:.2f} vs {paced:.2f})")


if __name__ == "__main__":
    main()
