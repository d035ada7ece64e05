"""The Models tab: every catalog entry with its source, size and state, and buttons to fetch or load it."""
from __future__ import annotations

import time

import gradio as gr

from demos.core import remote
from demos.core.catalog import Entry
from demos.core.suite import Suite
from demos.ui.widgets import device_picker, format_bytes, gradio_progress, guarded

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
    for draft in getattr(entry, "drafts", []):
        lines.append(f"Draft model *{draft.title}*: `{shown(draft.source)}`")
    return "  \n".join(lines)


def build(suite: Suite) -> None:
    """The Models tab's body (call inside ``gr.Tab``)."""
    hub_sizes: dict[str, int | None] = {}
    entries = suite.catalog.entries()
    where = f"`{suite.loader.cache_dir}`" if suite.expose_paths else "the app's cache folder (--cache-dir)"
    gr.Markdown(f"Models download or export on first use and stay cached in {where}. Fetch them here ahead of "
                "time (Fetch also completes a partial download and exports a damaged export again), or load one "
                "to compile it now."
                + (" **Offline:** only cached models are available." if suite.loader.offline else ""))
    table = gr.Dataframe(value=lambda: table_rows(suite, hub_sizes), headers=HEADERS, interactive=False,
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

    @guarded
    def fetch(entry_id: str, device_name: str, progress=gr.Progress(track_tqdm=True)):
        entry = suite.catalog.entry(entry_id)
        started = time.perf_counter()
        prepared = suite.prepare(entry, suite.runtime.check_device(device_name or suite.default_device),
                                  gradio_progress(progress), repair=True)
        extra = len(prepared.adapters) + len(prepared.drafts)
        note = f" with {extra} adapter(s)/draft(s)" if extra else ""
        # Relative to the cache: a client is not told where the server keeps its files.
        return (f"**{entry.title}** is ready in {suite.loader.shown_path(prepared.model_dir)}{note} "
                f"({time.perf_counter() - started:.1f} s)."), table_rows(suite, hub_sizes)

    @guarded
    def load(entry_id: str, device_name: str, progress=gr.Progress(track_tqdm=True)):
        entry = suite.catalog.entry(entry_id)
        if entry.backend is not None:  # nothing to load here: say whether the server answers
            return (f"**{entry.title}** is served by `{entry.backend.url}`: "
                    f"{server_state(entry, {})}."), table_rows(suite, hub_sizes)
        started = time.perf_counter()
        handle = suite.load(entry, device_name, progress=gradio_progress(progress))
        verb = f"compiled in {handle.loaded.load_seconds:.1f} s" if handle.built_now else "was already loaded"
        return (f"**{entry.title}** on {handle.loaded.key.device} {verb} "
                f"(total {time.perf_counter() - started:.1f} s)."), table_rows(suite, hub_sizes)

    def unload():
        count = suite.runtime.unload()
        return f"Released {count} pipeline(s).", table_rows(suite, hub_sizes)

    def refresh():
        return table_rows(suite, hub_sizes)

    def check_sizes(progress=gr.Progress()):
        for entry in progress.tqdm(entries, desc="Asking the hub"):
            if entry.source is not None and suite.catalog.local_path(entry.source) is None:
                hub_sizes[entry.id] = suite.loader.hub_size(entry.source, entry.revision)
        return table_rows(suite, hub_sizes)

    choice.change(guarded(show_details), choice, details, api_visibility="private")
    fetch_btn.click(fetch, [choice, device], [result, table], api_visibility="private", concurrency_id="loader")
    load_btn.click(load, [choice, device], [result, table], api_visibility="private", concurrency_id="loader")
    # API twins of Fetch and Load take plain strings: the dropdowns would reject an unknown id with Gradio's own
    # "not in the list of choices" before our message (which lists the valid ids) could say what to do.
    # Hidden components rather than gr.api because gr.api would expose gr.Progress as an input.
    api_model = gr.Textbox(visible=False, label="model")
    api_device = gr.Textbox(visible=False, label="device")
    api_trigger = gr.Button(visible=False)
    api_trigger.click(fetch, [api_model, api_device], [result, table], api_name="fetch_model",
                      concurrency_id="loader")
    api_trigger.click(load, [api_model, api_device], [result, table], api_name="load_model",
                      concurrency_id="loader")
    unload_btn.click(guarded(unload), None, [result, table], api_name="unload_models")
    sizes_btn.click(guarded(check_sizes), None, table, api_visibility="private")
    refresh_btn.click(guarded(refresh), None, table, api_name="list_models")
