"""OpenVINO GenAI demo suite: one Gradio app with a tab per modality, built from models.yaml.

    python app.py [--models PATH] [--host H] [--port N] [--share] [--device D] [--cache-dir DIR]
                  [--offline] [--prefetch [IDS ...]] [--preload [IDS ...]] [--max-pipelines N] [--presenter]
                  [--api-key KEY] [--cors ORIGIN ...] [--mcp]

The same server answers the OpenAI-compatible API under /v1 (README "API") and, with --mcp, MCP at
/gradio_api/mcp/.

Nothing is downloaded, exported or compiled at start unless --prefetch or --preload asks for it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HERE = Path(__file__).resolve().parent
log = logging.getLogger("demos")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="OpenVINO GenAI demo suite", formatter_class=argparse.
                                     ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", default=str(HERE / "models.yaml"), help="the model catalog")
    parser.add_argument("--host", default=None, help="address to bind (0.0.0.0 lets phones on the network in)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--device", default=None, help="default device of every panel (overrides models.yaml)")
    parser.add_argument("--cache-dir", default=None, help="exports, converted adapters, compiled blobs")
    parser.add_argument("--offline", action="store_true", help="use only cached models; never touch the network")
    parser.add_argument("--max-pipelines", type=int, default=None, help="compiled pipelines kept in memory at once")
    parser.add_argument("--prefetch", nargs="*", metavar="ID", default=None,
                        help="download/export these entries (all when no id is given) and exit")
    parser.add_argument("--preload", nargs="*", metavar="ID", default=None,
                        help="load and compile these entries (all when no id is given) before the UI opens")
    parser.add_argument("--presenter", action="store_true",
                        help="stage mode: preload and warm up the entries marked 'presenter: true', then go offline;"
                             " large fonts, no footer, no run history, Compare views first")
    parser.add_argument("--api-key", default=os.environ.get("OV_DEMOS_API_KEY") or None, metavar="KEY",
                        help="require 'Authorization: Bearer KEY' on the OpenAI-compatible API (/v1); default: the "
                             "OV_DEMOS_API_KEY environment variable, else no key")
    parser.add_argument("--cors", nargs="+", metavar="ORIGIN", default=(),
                        help="let web pages of these origins (e.g. http://localhost:3000) call /v1 from a browser")
    parser.add_argument("--mcp", action="store_true",
                        help="also serve the Gradio endpoints (/chat, /generate_image, /edit_image, /transcribe, /speak, "
                             "/voice_chat, /ask_image, /ask_video) as MCP tools at /gradio_api/mcp/")
    parser.add_argument("--ovms-config", nargs="?", const="-", default=None, metavar="DIR",
                        help="write the OpenVINO Model Server configuration serving the catalog's local entries into "
                             "DIR (without DIR: print it) with the docker run line, and exit")
    parser.add_argument("--ovms-url", default=None, metavar="URL",
                        help="with --ovms-config: where this app will reach OVMS (default http://ovms:8000/v3)")
    from demos.core.catalog import PANELS  # yaml and pydantic only: nothing that reads the environment set in main()
    parser.add_argument("--only", choices=PANELS, default=None,
                        help="build only this panel's tab (development: python -m demos.panels.<panel>)")
    return parser.parse_args(argv)


def _select(catalog, ids: list[str]) -> list:
    """Entries named on the command line (all with a local pipeline when none); exits with the valid ids on a typo."""
    if not ids:
        return [entry for entry in catalog.entries() if entry.backend is None]  # a model server holds the others
    try:
        return [catalog.entry(entry_id) for entry_id in ids]
    except KeyError as exc:
        sys.exit(f"error: {exc.args[0]}")


def _cli_progress(fraction, message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def prefetch(suite, ids: list[str]) -> int:
    """Fetch every selected entry (with its adapters, drafts and variants); return the number that failed.

    A ``UserError`` (not cached, no such repo, a bad adapter …) is one line saying what to change; anything else
    (a download that broke, a bug) is logged with its traceback. Either way the next entry is still fetched.
    """
    from demos.core.errors import UserError
    failures = 0
    for entry in _select(suite.catalog, ids):
        devices = [suite.default_device] + [d for d in entry.variants if d != suite.default_device]
        for device in devices:
            started = time.perf_counter()
            print(f"{entry.id} ({device}): fetching…", file=sys.stderr, flush=True)
            try:
                prepared = suite.prepare(entry, device, _cli_progress, repair=True)  # re-exports a damaged one
            except UserError as exc:
                failures += 1
                print(f"{entry.id} ({device}): FAILED: {exc}", file=sys.stderr, flush=True)
                continue
            except Exception:  # noqa: BLE001 - reported with its traceback; the other entries still get fetched
                failures += 1
                log.exception("%s (%s): fetching failed", entry.id, device)
                continue
            print(f"{entry.id} ({device}): ready in {prepared.model_dir} ({time.perf_counter() - started:.1f} s)",
                  file=sys.stderr, flush=True)
    return failures


def preload(suite, ids: list[str]) -> None:
    for entry in _select(suite.catalog, ids):
        started = time.perf_counter()
        handle = suite.load(entry, progress=_cli_progress)
        print(f"{entry.id}: loaded on {handle.loaded.key.device} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)


def write_ovms_config(catalog, directory: str, url: str | None, device: str | None) -> int:
    """``--ovms-config``: the files into ``directory`` ('-': to standard output), then the docker run line."""
    from demos.core import ovms_config
    url = url or ovms_config.DEFAULT_URL
    if directory == "-":
        print(ovms_config.dump(catalog, url, device), end="")
        print(f"# Start OVMS on this configuration (after {ovms_config.FETCH} filled the folder):\n# "
              + ovms_config.docker_run("<this folder>"))
        return 0
    folder = Path(directory).expanduser().resolve()
    try:
        written = ovms_config.write(catalog, folder, url, device)
    except OSError as exc:
        print(f"error: --ovms-config {directory}: cannot write there ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"Wrote {len(written)} files into {folder}:", *(f"  {p.relative_to(folder)}" for p in written), sep="\n")
    print(f"Fill the model repository:  sh {folder / ovms_config.FETCH}")
    print(f"Start OVMS:                 {ovms_config.docker_run(str(folder))}")
    print(f"Point this app at it:       python app.py --models {folder / ovms_config.REMOTE_CATALOG}")
    return 0


def build_app(suite, only: str | None = None):
    """The Blocks app: one tab per panel in the catalog, then the Models tab (or ``only`` that panel's tab)."""
    import gradio as gr

    from demos.ui import models_tab

    from demos.ui import panels

    from demos.ui import uploads

    # Gradio's cache (uploads, copies of outputs) is deleted as it ages, like the app's own temp files.
    keep = suite.catalog.settings.temp_keep_seconds
    # uploads.Blocks: every event refuses file values that are not uploads (no server file is ever read).
    with uploads.Blocks(title=suite.catalog.settings.title, delete_cache=(min(keep, 600), keep)) as demo:
        gr.Markdown(f"# {suite.catalog.settings.title}")
        # Tabs wrap onto a second row on a phone instead of hiding behind Gradio's overflow menu.
        with gr.Tabs(overflow_behavior="wrap"):
            for panel in suite.catalog.panels():
                if only in (None, panel):
                    with gr.Tab(panel.title(), id=panel, elem_id=f"tab-{panel}"):
                        panels.build(panel, suite)
            if only is None:
                with gr.Tab("Models", id="models", elem_id="tab-models"):
                    models_tab.build(suite)
    return demo


def _private_temp() -> None:
    """Put Gradio's cache in the app's private temp folder (unless the user chose a place) and make a stop by
    SIGTERM (a service manager, ``docker stop``) an orderly exit, so the folder is removed at exit."""
    import signal

    from demos.core import files
    if "gradio" not in sys.modules:  # Gradio reads GRADIO_TEMP_DIR once, at import
        os.environ.setdefault("GRADIO_TEMP_DIR", str(files.folder("gradio")))

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # Gradio's block_thread closes the server on it; atexit then removes the folder
    signal.signal(signal.SIGTERM, interrupt)


def _limits(settings) -> None:
    """What visitors may put on disk (files) and keep open at once (requests per session)."""
    from demos.core import files, serving
    files.configure(files.Limits(upload_mb=settings.max_upload_mb, audio_mb=settings.max_audio_mb,
                                 image_mb=settings.max_image_mb, keep_seconds=settings.temp_keep_seconds))
    serving.configure(settings.max_requests_per_session)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _private_temp()
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported anywhere
    from demos.core.catalog import CatalogError, load_catalog
    from demos.core.errors import UserError
    from demos.core.suite import Suite

    try:
        catalog = load_catalog(args.models)
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.ovms_config is not None:
        return write_ovms_config(catalog, args.ovms_config, args.ovms_url, args.device)
    _limits(catalog.settings)
    if args.only and args.only not in catalog.panels():
        print(f"error: --only {args.only}: {args.models} lists no {args.only} entries", file=sys.stderr)
        return 2
    suite = Suite.from_catalog(catalog, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                               offline=True if args.offline else None, max_pipelines=args.max_pipelines,
                               device=args.device)
    if args.device:
        try:
            suite.runtime.check_device(args.device)
        except UserError as exc:
            print(f"error: --device: {exc}", file=sys.stderr)
            return 2
    if args.prefetch is not None:
        return 1 if prefetch(suite, args.prefetch) else 0
    if args.preload is not None:
        preload(suite, args.preload)
    if args.presenter:
        from demos.ui import panels
        from demos.ui import presenter
        print("Presenter mode: loading and warming up the stage models…", file=sys.stderr, flush=True)
        try:
            presenter.prepare_stage(suite, panels.warm_up,
                                    report=lambda line: print(line, file=sys.stderr, flush=True))
        except UserError as exc:
            print(f"error: presenter mode cannot get ready: {exc}", file=sys.stderr)
            return 1
        except Exception:  # noqa: BLE001 - a failure (OpenVINO compile/run, a bug): its traceback, then exit
            log.exception("presenter mode cannot get ready")
            return 1
        # Fetch, load and unload answer only the presenter (a share tunnel makes every visitor look local).
        suite.stage_control = presenter.StageControl(trust_loopback=not args.share)

    from demos.ui.presenter import lan_address, launch_options
    from demos.ui.public_paths import hide_in_config, is_loopback
    from demos.ui.spaces import listen_address
    host, port = listen_address(args.host, args.port)
    suite.expose_paths = is_loopback(host)  # visitors from other machines are not shown server paths
    demo = build_app(suite, args.only)
    if not suite.expose_paths:
        hide_in_config(demo, suite)
    from demos.api import server as api_server
    from demos.ui import capacity
    # No panel-wide limit of one: demos.ui.capacity bounds each panel's events, each pipeline's lane decides what
    # runs on it. The /v1 routes come before Gradio's own (FastAPI's ``routes``) and go straight to the serving core.
    demo.queue()
    demo.launch(server_name=host, server_port=port, share=args.share, show_error=True, prevent_thread_lock=True,
                max_file_size=int(catalog.settings.max_upload_mb * (1 << 20)), max_threads=capacity.configure(demo),
                app_kwargs={"routes": api_server.routes(suite, args.api_key, tuple(args.cors))},
                mcp_server=True if args.mcp else None, **launch_options(args.presenter))
    if args.cors:
        from demos.api import cors
        app = demo.server_app  # outside Gradio's CORS middleware, which answers every preflight itself
        app.middleware_stack = cors.around(app.middleware_stack or app.build_middleware_stack(), tuple(args.cors))
    if host == "0.0.0.0" and not args.api_key:
        log.warning("the OpenAI-compatible API (/v1) listens on all interfaces without a key: anyone on the "
                    "network can use it; start with --api-key KEY (or set %s) to require one",
                    api_server.API_KEY_ENV)
    if host == "0.0.0.0" and (address := lan_address()):
        print(f"Phones on this network can open http://{address}:{demo.server_port}/", file=sys.stderr, flush=True)
    if getattr(suite, "stage_control", None) is not None:
        from demos.ui.presenter import KEY_QUERY
        where = "another machine" if suite.stage_control.trust_loopback else "any machine (--share: none is trusted)"
        print(f"Presenter controls (Models tab: Fetch, Load, Unload all, Check sizes) answer this machine's "
              f"browser only; from {where} open the page with ?{KEY_QUERY}={suite.stage_control.key}",
              file=sys.stderr, flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
