"""The Models tab: every catalog entry with its source, size and state, and buttons to fetch or load it."""
from __future__ import annotations

import functools
import time
from typing import Any, Callable

import gradio as gr

from demos.core import lora_modes, remote
from demos.core.catalog import Entry
from demos.core.suite import Suite
from demos.core.errors import UserError
from demos.ui import presenter
from demos.ui.widgets import device_picker, format_bytes, gradio_progress, guarded, user_error

HEADERS = ["Panel", "Id", "Model", "Source", "Size", "State", "Loaded on"]


def _state(suite: Suite, entry: Entry) -> tuple[str, str, str]:
    status = suite.status(entry)
    if status.kind == "local":
        state = "local folder"
    elif status.downloaded:
        state = "downloaded"
    elif status.partial:
        state = "partly downloaded"  # an interrupted download: Fetch completes it
    else:
        state = "not downloaded"
    if status.needs_export:
        if status.damaged:
            state += ", damaged: re-export"  # Fetch exports it again
        else:
            state += ", exported" if status.exported else ", needs export"
    loaded = ", ".join(suite.is_loaded(entry, status)) or "–"
    return state, format_bytes(status.size_bytes), loaded


def server_state(entry: Entry, answers: dict[tuple[str, str], str]) -> str:
    """Whether the entry's model server answers and lists its model (asked once per table: ``answers``)."""
    backend = entry.backend
    assert backend is not None
    key = (backend.url, backend.model)
    if key not in answers:
        answers[key] = remote.ping(backend)
    problem = answers[key]
    return "server answers" if not problem else f"server: {problem}"


def table_rows(suite: Suite, hub_sizes: dict[str, int | None] | None = None) -> list[list[str]]:
    """One row per catalog entry, read from the cache only (no hub request; model servers are asked if they
    answer, with a short timeout)."""
    rows = []
    answers: dict[tuple[str, str], str] = {}
    for entry in suite.catalog.entries():
        if entry.backend is not None:  # served remotely: its URL and whether the server answers
            source = f"server: {entry.backend.url} (model {entry.backend.model})"
            rows.append([entry.panel, entry.id, entry.title, source, "–", server_state(entry, answers), "server"])
            continue
        state, size, loaded = _state(suite, entry)
        if size == "–" and hub_sizes and hub_sizes.get(entry.id) is not None:
            size = f"{format_bytes(hub_sizes[entry.id])} on the hub"
        source = _short_source(suite, entry.source)
        if entry.variants:
            source += f" (+{', '.join(entry.variants)} variant)"
        rows.append([entry.panel, entry.id, entry.title, source, size, state, loaded])
    return rows


def _short_source(suite: Suite, source: str) -> str:
    """Hub ids as they are; local folders by their last two path parts (the full path is in the details)."""
    if suite.catalog.local_path(source) is None:
        return source
    parts = source.rstrip("/").split("/")
    return "local: …/" + "/".join(parts[-2:]) if len(parts) > 2 else f"local: {source}"


def _details(suite: Suite, entry: Entry) -> str:
    shown = (lambda source: source) if suite.expose_paths else (lambda source: _short_source(suite, source))
    if entry.backend is not None:
        lines = [f"**{entry.title}** · served by the model server at `{entry.backend.url}` as "
                 f"`{entry.backend.model}` (OpenAI-compatible API; no local pipeline)"]
        if entry.source is not None:
            lines.append(f"Source (for `--ovms-config`): `{shown(entry.source)}`")
        return "  \n".join(lines)
    lines = [f"**{entry.title}** · `{entry.pipeline}` · source `{shown(entry.source)}`"]
    if entry.export:
        options = ", ".join(f"{k}={v}" for k, v in entry.export.model_dump(exclude_none=True).items())
        lines.append(f"Exported with optimum-intel on first use ({options}).")
    for device, variant in entry.variants.items():
        lines.append(f"On {device}: `{shown(variant.source)}`")
    for adapter in getattr(entry, "adapters", []):
        lines.append(f"LoRA adapter *{adapter.title}*: `{shown(adapter.source)}`"
                     + (f" / `{adapter.file}`" if adapter.file else ""))
    if getattr(entry, "adapters", []):
        lines.append(adapter_mode_line(entry))
    for draft in getattr(entry, "drafts", []):
        lines.append(f"Draft model *{draft.title}*: `{shown(draft.source)}`")
    return "  \n".join(lines)


def adapter_mode_line(entry: Entry) -> str:
    """The entry's LoRA adapter mode, whether the catalog chose it, and what it means."""
    mode = lora_modes.mode_for(entry)
    chosen = "set by the entry's `lora_mode`" if getattr(entry, "lora_mode", None) else "the panel's default"
    return (f"LoRA adapter mode: **{mode}** ({chosen}; `AdapterConfig.Mode.{lora_modes.MODES[mode]}`): "
            f"{lora_modes.DESCRIPTIONS.get(mode, '')}")


def build(suite: Suite) -> None:
    """The Models tab's body (call inside ``gr.Tab``)."""
    hub_sizes: dict[str, int | None] = {}
    entries = suite.catalog.entries()
    where = f"`{suite.loader.cache_dir}`" if suite.expose_paths else "the app's cache folder (--cache-dir)"
    gr.Markdown(f"Models download or export on first use and stay cached in {where}. Fetch them here ahead of "
                "time (Fetch also completes a partial download and exports a damaged export again), or load one "
                "to compile it now."
                + (" **Offline:** only cached models are available." if suite.loader.offline else ""))
    table = gr.Dataframe(value=table_rows(suite, hub_sizes), headers=HEADERS, interactive=False,
                         wrap=True, column_widths=["7%", "14%", "19%", "26%", "10%", "14%", "10%"],
                         label="Catalog", elem_id="models-table")
    with gr.Row():
        choice = gr.Dropdown(choices=[(f"{e.title} ({e.panel})", e.id) for e in entries],
                             value=entries[0].id if entries else None, label="Model", scale=3,
                             elem_id="models-choice")
        device = device_picker(suite.runtime.devices(), suite.default_device, scale=1, elem_id="models-device")
    details = gr.Markdown(_details(suite, entries[0]) if entries else "")
    with gr.Row():
        fetch_btn = gr.Button("Fetch", variant="primary", elem_id="models-fetch")
        load_btn = gr.Button("Load", elem_id="models-load")
        unload_btn = gr.Button("Unload all", elem_id="models-unload")
        sizes_btn = gr.Button("Check sizes on the hub", elem_id="models-sizes",
                              interactive=not suite.loader.offline)
        refresh_btn = gr.Button("Refresh", elem_id="models-refresh")
    result = gr.Markdown(elem_id="models-result")

    def show_details(entry_id: str) -> str:
        return _details(suite, suite.catalog.entry(entry_id)) if entry_id else ""

    def presenter_only(request: gr.Request | None) -> None:
        if not presenter.may_control(suite, request):
            raise UserError(presenter.REFUSED, param="request")

    # Not track_tqdm: the loader reports the download itself ('Downloading REPO: 3/7 files · 1.2/4.0 MB', through
    # its own tqdm class); Gradio's copies of those bars would show '0/0 B | 0/11 steps' instead, frozen.
    def fetch(entry_id: str, device_name: str, request: gr.Request, progress=gr.Progress()):
        presenter_only(request)
        entry = suite.catalog.entry(entry_id)
        started = time.perf_counter()
        prepared = suite.prepare(entry, suite.runtime.check_device(device_name or suite.default_device),
                                  gradio_progress(progress), repair=True)
        extra = len(prepared.adapters) + len(prepared.drafts)
        note = f" with {extra} adapter(s)/draft(s)" if extra else ""
        # Relative to the cache: a client is not told where the server keeps its files.
        return (f"**{entry.title}** is ready in {suite.loader.shown_path(prepared.model_dir)}{note} "
                f"({time.perf_counter() - started:.1f} s)."), table_rows(suite, hub_sizes)

    def load(entry_id: str, device_name: str, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        presenter_only(request)
        entry = suite.catalog.entry(entry_id)
        if entry.backend is not None:  # nothing to load here: say whether the server answers
            return (f"**{entry.title}** is served by `{entry.backend.url}`: "
                    f"{server_state(entry, {})}."), table_rows(suite, hub_sizes)
        started = time.perf_counter()
        before = suite.runtime.loaded_keys()
        handle = suite.load(entry, device_name, progress=gradio_progress(progress))
        verb = f"compiled in {handle.loaded.load_seconds:.1f} s" if handle.built_now else "was already loaded"
        message = (f"**{entry.title}** on {handle.loaded.key.device} {verb} "
                   f"(total {time.perf_counter() - started:.1f} s).")
        released = released_note(suite, before)
        return message + (f" {released}" if released else ""), table_rows(suite, hub_sizes)

    def unload(request: gr.Request):
        presenter_only(request)
        count = suite.runtime.unload()
        return f"Released {count} pipeline(s).", table_rows(suite, hub_sizes)

    def refresh():
        return table_rows(suite, hub_sizes)

    def check_sizes(request: gr.Request, progress=gr.Progress()):
        presenter_only(request)
        # Entries served by a model server have no source to ask about.
        on_hub = [e for e in entries if e.source is not None and suite.catalog.local_path(e.source) is None]
        for entry in progress.tqdm(on_hub, desc="Asking the hub"):
            hub_sizes[entry.id] = suite.loader.hub_size(entry.source, entry.revision)
        return sizes_note(on_hub, hub_sizes), table_rows(suite, hub_sizes)

    choice.change(guarded(show_details), choice, details, api_visibility="private")
    fetch_btn.click(kept(fetch), [choice, device], [result, table], api_visibility="private", concurrency_id="loader")
    load_btn.click(kept(load), [choice, device], [result, table], api_visibility="private", concurrency_id="loader")
    # API twins of Fetch and Load take plain strings: the dropdowns would reject an unknown id with Gradio's own
    # "not in the list of choices" before our message (which lists the valid ids) could say what to do.
    # Hidden components rather than gr.api because gr.api would expose gr.Progress as an input. The functions'
    # parameter names are the endpoint's (model, device), as the README documents them; a default of None is what
    # makes Gradio list device as optional.
    @guarded  # an API caller gets the failure as an error (gradio_client raises it), not as a status line
    def fetch_model(model: str, device: str | None = None, request: gr.Request = None,  # type: ignore[assignment]
                    progress=gr.Progress()):
        return fetch(model, device or "", request, progress)

    @guarded
    def load_model(model: str, device: str | None = None, request: gr.Request = None,  # type: ignore[assignment]
                   progress=gr.Progress(track_tqdm=True)):
        return load(model, device or "", request, progress)

    @guarded
    def unload_models(request: gr.Request = None):  # type: ignore[assignment]
        return unload(request)

    # On stage these are the presenter's alone (refused to everyone else) and left out of the API page.
    changes_what_is_loaded = "private" if getattr(suite, "stage_control", None) else "public"
    api_model = gr.Textbox(visible=False, label="model")
    api_device = gr.Textbox(visible=False, label="device")
    api_trigger = gr.Button(visible=False)
    api_trigger.click(fetch_model, [api_model, api_device], [result, table], api_name="fetch_model",
                      concurrency_id="loader", api_visibility=changes_what_is_loaded)
    api_trigger.click(load_model, [api_model, api_device], [result, table], api_name="load_model",
                      concurrency_id="loader", api_visibility=changes_what_is_loaded)
    unload_btn.click(kept(unload), None, [result, table], api_visibility="private")
    api_trigger.click(unload_models, None, [result, table], api_name="unload_models",
                      api_visibility=changes_what_is_loaded)
    sizes_btn.click(kept(check_sizes), None, [result, table], api_visibility="private")
    refresh_btn.click(guarded(refresh), None, table, api_name="list_models")
    # The table as it is when the page opens (a callable value would add an unnamed "/lambda_N" endpoint).
    gr.on(None, guarded(refresh), None, table, api_visibility="private", show_progress="hidden")


def kept(fn: Callable) -> Callable:
    """A button's handler whose failure leaves the table as it was: the message (``user_error``'s, logged the same
    way) goes to the result line and a toast, instead of Gradio's error pills over the whole table."""
    what = fn.__name__.strip("_").replace("_", " ")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> tuple[str, Any]:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - sorted by user_error into a user message or a logged failure
            message = user_error(exc, what).message
            gr.Warning(message)
            return f"**Not done:** {message}", gr.skip()
    return wrapper


def released_note(suite: Suite, before: list) -> str:
    """What a load released to stay within ``max_pipelines`` (the pool evicts the least recently used), or ''."""
    now = set(suite.runtime.loaded_keys())
    gone = [key for key in before if key not in now]
    if not gone:
        return ""
    names = []
    for key in gone:
        entry = next((e for e in suite.catalog.entries(key.panel)
                      if str(suite.locate(e, key.device).path) == key.model_dir), None)
        draft = ", with a draft" if key.draft_dir else ""
        names.append(f"{entry.title if entry else key.model_dir} ({key.device}{draft})")
    return (f"To stay within {suite.runtime.max_pipelines} loaded pipeline(s) (settings.max_pipelines, "
            f"--max-pipelines) it released {', '.join(names)}; it loads again when next used.")


def sizes_note(on_hub: list[Entry], sizes: dict[str, int | None]) -> str:
    """What "Check sizes on the hub" found, in words (also when there was nothing to ask)."""
    if not on_hub:
        return ("Every entry of this catalog is a local folder: there is nothing to ask the hub. Sizes on disk are "
                "in the table.")
    known = [e for e in on_hub if sizes.get(e.id) is not None]
    unknown = [e.title for e in on_hub if sizes.get(e.id) is None]
    parts = [f"The hub reported the size of {len(known)} of {len(on_hub)} hub entr{'y' if len(on_hub) == 1 else 'ies'}"
             + (" (in the Size column of those not downloaded yet)." if known else ".")]
    if unknown:
        parts.append(f"No size for {', '.join(unknown)} (offline, not found, or the hub did not answer).")
    return " ".join(parts)
