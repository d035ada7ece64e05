"""The Image panel: text-to-image with ``openvino_genai.Text2ImagePipeline``.

Styles (LoRA adapters) are all registered when the pipeline is built and blended per image with a weight each,
so moving a slider never recompiles. Generation runs in a worker thread whose step callback feeds a progress
bar and live previews back to the browser, and returns True to stop at the next step when the user asks.
Requests are checked in ``image_settings``, run in ``image_run`` (one image) and ``image_batch`` (a click's
worth, as events), saved with their parameters in ``image_files`` and turned into code in ``image_code``; this
module is the Gradio side: layout, events and ``/generate_image``.
"""
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import numpy as np
from gradio.data_classes import FileData, FileDataDict

from demos.panels.image import batch as image_batch

from demos.panels.image import code as image_code

from demos.panels.image import edit as image_edit

from demos.panels.image import edit_job as image_edit_job

from demos.panels.image import files as image_files

from demos.panels.image import run as image_run

from demos.core import lora_modes, serving
from demos.core.catalog import Entry, ImageEntry
from demos.core.checks import whole
from demos.core.errors import UserError
from demos.panels.image.settings import MAX_GUIDANCE, MAX_IMAGES, MAX_SEED, MAX_STEPS, Geometry, ImageSettings, defaults, \
    geometry, max_side, resolve
from demos.core.showcode import file_reference, model_reference
from demos.ui.remote import remote_code
from demos.ui.uploads import checked_upload
from demos.core.suite import Handle, Suite
from demos.ui import columns, loading
from demos.ui.widgets import code_view, device_picker, entry_for, gradio_progress, guarded, keep_outputs_on_error, \
    load_note, metrics_card, metrics_markdown, model_picker, numbers_only, reporting

COMPARE_STYLES = "Without styles ◀ ▶ with styles"
COMPARE_SOURCE = "Source ◀ ▶ result"
CONCURRENCY_ID = "image"  # the panel's events (demos.ui.capacity bounds them); each pipeline's lane runs one at a time
PANEL = "image"


class ImagePanel:
    """Everything the panel's events share: the suite, per-model facts, the running batches of each session."""

    def __init__(self, entries: list[ImageEntry], suite: Suite):
        self.entries = entries
        self.suite = suite
        self.stops = serving.Sessions()
        self._geometry: dict[str, Geometry] = {}
        self._adapter_paths: dict[str, dict[str, Path]] = {}  # entry id -> adapter files as last loaded

    def stage_entry(self) -> ImageEntry | None:
        """Presenter mode's image entry (the panel opens on it), else None."""
        if not getattr(self.suite, "presenter", False):
            return None
        return next((e for e in getattr(self.suite, "stage_entries", []) if e in self.entries), None)

    # ----------------------------------------------------------------------------------------------------
    # Model facts

    def entry(self, entry_id: str) -> ImageEntry:
        return entry_for(self.suite, PANEL, entry_id)  # type: ignore[return-value]

    def model_dir(self, entry: ImageEntry, device: str) -> Path | None:
        """The model's local folder if it is already there (never downloads)."""
        try:
            return self.suite.locate(entry, device or None).path
        except Exception:  # noqa: BLE001 - a status is a hint for the UI, never a reason to fail
            return None

    def geometry(self, entry: ImageEntry, device: str = "") -> Geometry:
        if entry.id not in self._geometry:
            folder = self.model_dir(entry, device)
            if folder is None:
                return Geometry()  # not fetched yet: assume SD's factor 8, read the real one once it is
            self._geometry[entry.id] = geometry(folder)
        return self._geometry[entry.id]

    def load(self, entry: ImageEntry, device: str, progress: Any = None) -> Handle:
        handle = self.suite.load(entry, device or None, progress=gradio_progress(progress) if progress else
                                 (lambda fraction, message: None))
        self._adapter_paths[entry.id] = dict(handle.prepared.adapters)
        self._geometry[entry.id] = geometry(handle.prepared.model_dir)
        return handle

    def device(self, device: str) -> str:
        return self.suite.runtime.check_device(device or self.suite.default_device)

    # ----------------------------------------------------------------------------------------------------
    # Code view

    def code(self, settings: ImageSettings) -> tuple[str, str]:
        entry = self.entry(settings.model)
        if entry.backend is not None:  # served by a model server: no pipeline code to show
            return remote_code(entry)
        model = model_reference(self.suite, entry, settings.device)
        adapters = {}
        known = self._adapter_paths.get(entry.id, {})  # as last loaded: converted files where a layout needed it
        for adapter in entry.adapters:
            local = known.get(adapter.id) or self.suite.catalog.local_path(adapter.source)
            if local is not None and adapter.file and local.is_dir():
                local = local / adapter.file
            adapters[adapter.id] = file_reference(local, adapter.source, adapter.file or "adapter_model.safetensors")
        refs = [model, *adapters.values()]
        properties = self.suite.properties(entry, settings.device)
        python = image_code.python_code(settings, model.python, {a: r.python for a, r in adapters.items()},
                                        properties, list(dict.fromkeys(x for r in refs for x in r.python_setup)),
                                        lora_modes.mode_for(entry))
        cpp = image_code.cpp_code(settings, model.cpp, {a: r.cpp for a, r in adapters.items()}, properties,
                                  list(dict.fromkeys(x for r in refs for x in r.cpp_setup)))
        return python, cpp


def _styles(entry: ImageEntry, all_adapters: list[tuple[str, str]], weights: tuple) -> dict[str, float]:
    """The slider values that belong to ``entry`` (sliders exist for every entry's adapters)."""
    values = dict(zip(all_adapters, weights))
    # Unconverted: resolve_styles checks each weight (a NaN or a string is refused there, naming the style).
    return {adapter.id: values.get((entry.id, adapter.id)) or 0 for adapter in entry.adapters}


def _side_bounds(entry: ImageEntry, geo: Geometry) -> tuple[int, int]:
    """The width and height the boxes take for ``entry``: the smallest side its UNet handles to twice its native."""
    return geo.min_side, max_side(defaults(entry, geo))


def check_typed(entry: ImageEntry, geo: Geometry, w: Any, h: Any, n_steps: Any, scale: Any, seed_value: Any,
                n_images: Any) -> None:
    """The boxes' values inside the bounds the boxes show (the API's "0 or less = the default" is not the UI's:
    its boxes hold the real numbers). ``UserError`` in the panel's words for the first one outside."""
    low, high = _side_bounds(entry, geo)
    base = defaults(entry, geo)
    boxes = [("Width", w, low, high, f" (this model: {low} to {high} pixels, native {base.width})"),
             ("Height", h, low, high, f" (this model: {low} to {high} pixels, native {base.height})"),
             ("Steps", n_steps, 1, MAX_STEPS, f" (this model's default is {base.steps})"),
             ("Guidance scale", scale, 0, MAX_GUIDANCE, f" (this model's default is {base.guidance_scale:g})"),
             ("Seed", seed_value, -1, MAX_SEED, ", or -1 for a new random seed each time"),
             ("Images", n_images, 1, MAX_IMAGES, " per click")]
    for label, value, lo, hi, hint in boxes:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not lo <= value <= hi:
            raise UserError(f"{label} {value:g} is out of range: use {lo:g} to {hi:g}{hint}.",
                            param=label.lower().replace(" ", "_"))


def _mode(label: str | None) -> str:
    """"Transform" -> "transform" (the Radio shows labels); anything unknown is Generate's."""
    return next((mode for mode, shown in image_edit.MODE_LABELS.items() if shown == label), "generate")


def _edit_inputs(mode: str, picture_path: str | None, canvas_value: Any, mask_path: str | None
                 ) -> tuple[Any, Any]:
    """(picture, mask) from the UI: Transform's upload; Inpaint's canvas background and its painted strokes (any
    painted pixel = repaint), else the uploaded mask, else None."""
    if mode == "transform":
        return picture_path, None
    value = canvas_value if isinstance(canvas_value, dict) else {}
    background = value.get("background")
    if background is None:
        return None, None
    layers = [np.asarray(layer) for layer in value.get("layers") or [] if layer is not None]
    painted = None
    for layer in layers:
        strokes = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.max(axis=-1) > 0 \
            if layer.ndim == 3 else layer > 0
        painted = strokes if painted is None else painted | strokes
    if painted is not None and painted.any():
        return np.asarray(background), painted
    return np.asarray(background), mask_path


def _model_info(entry: ImageEntry, geo: Geometry) -> str:
    base = defaults(entry, geo)
    parts = [f"native {base.width}×{base.height}", f"sizes in multiples of {geo.factor}", f"{base.steps} steps",
             f"guidance {base.guidance_scale:g}"]
    if geo.scheduler:
        parts.append(geo.scheduler.replace("Scheduler", " scheduler"))
    styles = f"{len(entry.adapters)} LoRA style(s)" if entry.adapters else "no LoRA styles"
    return f"<small>{entry.description + ' · ' if entry.description else ''}{' · '.join(parts)} · {styles}</small>"


# ---------------------------------------------------------------------------------------------------------
# Layout


@dataclass
class Widgets:
    """Every component the panel's events read or write."""

    prompt: gr.Textbox
    negative: gr.Textbox
    go: gr.Button
    stop: gr.Button
    model: gr.Dropdown
    device: gr.Dropdown
    info: gr.Markdown
    sliders: list[gr.Slider]
    no_styles: gr.Markdown
    compare: gr.Checkbox
    width: gr.Number
    height: gr.Number
    count: gr.Number
    size_note: gr.Markdown
    steps: gr.Slider
    guidance: gr.Slider
    seed: gr.Number
    dice: gr.Button
    live: gr.Checkbox
    gallery: gr.Gallery
    status: gr.Markdown
    progress_strip: gr.Markdown
    slider: gr.ImageSlider
    params: gr.Textbox
    params_file: gr.DownloadButton
    metrics: gr.Markdown
    python: gr.Code
    cpp: gr.Code
    texts: gr.State   # parameter text per gallery image
    files: gr.State   # parameter .json per gallery image
    # Editing: the mode, its source picture (Transform) or canvas and optional mask (Inpaint), its strength.
    mode: gr.Radio
    picture: gr.Image
    canvas: gr.ImageEditor
    mask_file: gr.Image
    mask_box: gr.Accordion
    strength: gr.Slider
    edit_go: gr.Button
    size_row: gr.Row
    send_transform: gr.Button
    send_inpaint: gr.Button
    images: gr.State  # finished picture path per gallery image (what 'Edit this picture' sends)
    current: gr.State  # the picture 'Edit this picture' sends: the last finished or the selected one

    def run_outputs(self) -> list:
        return [self.gallery, self.status, self.slider, self.params, self.params_file, self.texts, self.files,
                self.metrics, self.python, self.cpp, self.images, self.current, self.send_transform,
                self.send_inpaint]


def _layout(panel: "ImagePanel", entries: list[ImageEntry]) -> Widgets:
    """The tab's components. In presenter mode it opens on the stage model with its first style on, Compare
    checked and the Compare slider above the gallery: the with/without-style view is what an audience looks at."""
    stage = panel.stage_entry()
    if stage is not None:
        entries = [stage] + [e for e in entries if e is not stage]
    first = entries[0]
    geo = panel.geometry(first)  # reads a few JSON files if the model is already on disk; never fetches
    start = defaults(first, geo)
    showcase = stage is not None and bool(stage.adapters)  # presenter mode with styles to show
    with gr.Row(equal_height=False):
        with columns.side(scale=2, min_width=340):
            mode = gr.Radio(list(image_edit.MODE_LABELS.values()), value="Generate", label="Mode",
                            info="Transform and Inpaint start from a picture of yours (or one made here)",
                            elem_id="image-mode")
            picture = gr.Image(label="Picture to transform", type="filepath", sources=["upload", "clipboard"],
                               format="png", visible=False, height=300, elem_id="image-source")
            canvas = gr.ImageEditor(label="Picture to inpaint: paint over what to repaint", type="numpy",
                                    sources=["upload", "clipboard"], layers=False, transforms=(), visible=False,
                                    height=340, format="png", eraser=gr.Eraser(),
                                    brush=gr.Brush(colors=["#ff3399"], default_color="#ff3399", color_mode="fixed"),
                                    elem_id="image-canvas")
            with gr.Accordion("…or upload a mask (white = repaint)", open=False, visible=False) as mask_box:
                mask_file = gr.Image(label="Mask", type="filepath", sources=["upload"], image_mode="L", height=200,
                                     elem_id="image-mask")
            # On stage the first example is already typed: Generate is the first click, and it works.
            prompt = gr.Textbox(label="Prompt", lines=3, elem_id="image-prompt", max_lines=8,
                                value=first.examples[0] if stage is not None and first.examples else "",
                                placeholder=first.examples[0] if first.examples else "Describe the picture you want")
            negative = gr.Textbox(label="Negative prompt", value=first.negative_prompt, lines=1,
                                  placeholder="what the picture should not show", elem_id="image-negative")
            strength = gr.Slider(0.05, 1, value=image_edit.DEFAULT_STRENGTH, step=0.05, label="Strength",
                                 info="how much may change: 0.3 keeps most of the picture, 1 repaints it all",
                                 visible=False, elem_id="image-strength")
            with columns.run_row():  # what follows it is settings (under the results on a phone)
                go = gr.Button("Generate", variant="primary", scale=3, elem_id="image-generate")
                edit_go = gr.Button("Transform", variant="primary", scale=3, visible=False, elem_id="image-edit")
                # Grey while idle, red while an image runs (the run events switch it; see _wire).
                stop = gr.Button("Stop", variant="secondary", scale=1, elem_id="image-stop")
            with gr.Row():
                model = model_picker(entries, scale=3, elem_id="image-model")
                device = device_picker(panel.suite.runtime.devices(), panel.suite.default_device, scale=1,
                                       elem_id="image-device")
            info = gr.Markdown(_model_info(first, geo), elem_id="image-model-info")
            with gr.Group():
                sliders = [gr.Slider(0, 2, value=adapter.alpha if showcase and entry is first and index == 0 else 0,
                                     step=0.05, label=f"Style: {adapter.title}",
                                     info=f"0 = off · suggested {adapter.alpha:g}", visible=entry.id == first.id,
                                     elem_id=f"image-style-{entry.id}-{adapter.id}")
                           for entry in panel.entries for index, adapter in enumerate(entry.adapters)]
                no_styles = gr.Markdown("<small>This model has no LoRA styles (add `adapters:` in models.yaml)."
                                        "</small>", visible=not first.adapters, padding=True)
                compare = gr.Checkbox(showcase, label="Compare: also render without styles (same seed)",
                                      visible=bool(first.adapters), elem_id="image-compare")
            with gr.Accordion("Size, steps and seed", open=stage is None):  # folded on stage
                with gr.Row() as size_row:
                    low, high = _side_bounds(first, geo)
                    width = gr.Number(start.width, label="Width", precision=0, step=geo.factor, minimum=low,
                                      maximum=high, elem_id="image-width", min_width=90)
                    height = gr.Number(start.height, label="Height", precision=0, step=geo.factor, minimum=low,
                                       maximum=high, elem_id="image-height", min_width=90)
                    count = gr.Number(1, label="Images", precision=0, minimum=1, maximum=MAX_IMAGES,
                                      elem_id="image-count", min_width=90)
                size_note = gr.Markdown(elem_id="image-size-note")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=start.steps, step=1, label="Steps", elem_id="image-steps")
                    guidance = gr.Slider(0, MAX_GUIDANCE, value=start.guidance_scale, step=0.5,
                                         label="Guidance scale", elem_id="image-guidance")
                with gr.Row(equal_height=True):
                    seed = gr.Number(42, label="Seed", precision=0, minimum=-1, maximum=MAX_SEED, scale=3,
                                     info="-1 = new random seed each time", elem_id="image-seed", min_width=140)
                    dice = gr.Button("Random seed", scale=1, size="md", elem_id="image-random-seed", min_width=100)
                    live = gr.Checkbox(True, label="Live preview", scale=2, elem_id="image-live",
                                       info="decodes every few steps", min_width=120)
            examples = [[text] for e in entries for text in e.examples]
            if examples:
                gr.Examples(examples, [prompt], label="Examples")
        with columns.results(scale=3, min_width=380):
            slider = gr.ImageSlider(label=COMPARE_STYLES, visible=showcase, type="filepath",
                                    format="png", max_height=520, elem_id="image-compare-slider", render=showcase)
            gallery = gr.Gallery(label="Images", columns=2, height=520, preview=True, format="png",
                                 object_fit="contain", buttons=["download", "fullscreen"], elem_id="image-gallery",
                                 interactive=False)
            with gr.Row(equal_height=True, elem_id="image-send"):
                send_transform = gr.Button("Edit this picture: Transform", size="sm", interactive=False,
                                           elem_id="image-send-transform")
                send_inpaint = gr.Button("Edit this picture: Inpaint", size="sm", interactive=False,
                                         elem_id="image-send-inpaint")
            status = gr.Markdown(elem_id="image-status")
            # Where the step progress bar runs: its own strip, so it covers neither the previews nor the status.
            progress_strip = gr.Markdown(elem_id="image-progress", container=False, min_height=44)
            if not showcase:
                slider.render()  # below the gallery, except on stage
            params = gr.Textbox(label="Parameters (embedded in the PNG as text metadata)", lines=3,
                                interactive=False, buttons=["copy"], elem_id="image-parameters")
            params_file = gr.DownloadButton("Download parameters (.json)", visible=False, size="sm",
                                            elem_id="image-parameters-download")
            metrics = metrics_card(elem_id="image-metrics")
            python, cpp = code_view()
    for number in (width, height, count, steps, guidance, seed, *sliders):
        # NaN and text are refused naming the field before the run's event starts; a number outside the box's
        # bounds reaches the handlers, which say so in the size note at once and in the status line on Generate.
        numbers_only(number, bounds_checked_by_handler=True)
    return Widgets(prompt, negative, go, stop, model, device, info, sliders, no_styles, compare, width, height,
                   count, size_note, steps, guidance, seed, dice, live, gallery, status, progress_strip, slider, params,
                   params_file, metrics, python, cpp, gr.State([]), gr.State([]), mode, picture, canvas, mask_file,
                   mask_box, strength, edit_go, size_row, send_transform, send_inpaint, gr.State([]), gr.State(None))


# ---------------------------------------------------------------------------------------------------------
# Events


def build(entries: list[Entry], suite: Suite) -> None:
    """The Image tab's body (inside ``gr.Tab``). Nothing is loaded until the first image is asked for."""
    image_entries = [e for e in entries if isinstance(e, ImageEntry)]
    panel = ImagePanel(image_entries, suite)
    ui = _layout(panel, image_entries)
    _wire(panel, ui)
    gr.api(guarded(_api(panel)), api_name="generate_image", concurrency_id=CONCURRENCY_ID)
    gr.api(guarded(_edit_api(panel)), api_name="edit_image", concurrency_id=CONCURRENCY_ID)


def _wire(panel: "ImagePanel", ui: Widgets) -> None:
    all_adapters = [(e.id, a.id) for e in panel.entries for a in e.adapters]

    def settings_from(entry_id: str, device_name: str, prompt_text: str, negative_text: str, w, h, n_steps,
                      scale, seed_value, weights: tuple) -> tuple[ImageEntry, Geometry, ImageSettings]:
        entry = panel.entry(entry_id)
        device_name = panel.device(device_name)
        geo = panel.geometry(entry, device_name)
        settings = resolve(entry, geo, device=device_name, prompt=prompt_text, negative_prompt=negative_text or "",
                           styles=_styles(entry, all_adapters, weights), width=w, height=h, steps=n_steps,
                           guidance_scale=scale, seed=seed_value if seed_value is not None else 42)
        return entry, geo, settings

    def preview_code(mode_label, strength_value, entry_id, device_name, prompt_text, negative_text, w, h, n_steps,
                     scale, seed_value, n_images, *weights):
        """Size note and code for the settings as they stand (quietly keeps the old code while input is bad): a
        number outside its box's bounds is named here as soon as it is typed."""
        try:
            entry = panel.entry(entry_id)
            check_typed(entry, panel.geometry(entry, device_name), w, h, n_steps, scale, seed_value, n_images)
            _, _, settings = settings_from(entry_id, device_name, prompt_text or "…", negative_text, w, h, n_steps,
                                           scale, 0 if (seed_value or 0) < 0 else seed_value, weights)
        except UserError as exc:  # anything else is a bug: the wrapper logs it
            message = str(exc)
            return f"<small>Cannot generate yet: {message}</small>", gr.skip(), gr.skip()
        notes = [n for n in settings.notes if not n.startswith("random seed")]
        note = (f"<small>Will generate {settings.width}×{settings.height}: {'; '.join(notes)}</small>"
                if notes else "")
        mode = _mode(mode_label)
        if mode != "generate":  # the code of the mode chosen; the picture's size is known only at the run
            try:
                value = image_edit.check_strength(strength_value, settings.steps)
            except UserError as exc:
                return f"<small>Cannot {mode} yet: {exc}</small>", gr.skip(), gr.skip()
            note = ""
            settings = dataclasses.replace(settings, mode=mode, strength=value)
        return (note, *panel.code(settings))

    def on_model(entry_id: str, device_name: str):
        entry = panel.entry(entry_id)
        geo = panel.geometry(entry, device_name)
        base = defaults(entry, geo)
        visible = [gr.update(visible=e_id == entry.id) for e_id, _ in all_adapters]
        low, high = _side_bounds(entry, geo)
        return [_model_info(entry, geo), entry.negative_prompt,
                gr.update(value=base.width, step=geo.factor, minimum=low, maximum=high),
                gr.update(value=base.height, step=geo.factor, minimum=low, maximum=high), base.steps,
                base.guidance_scale,
                gr.update(visible=not entry.adapters), gr.update(visible=bool(entry.adapters)), *visible]

    def run(request: gr.Request, prompt_text: str, negative_text: str, entry_id: str, device_name: str, w, h,
            n_steps, scale, seed_value, n_images, live_preview: bool, compare_on: bool,
            progress=gr.Progress(track_tqdm=True), *weights) -> Iterator[dict]:
        entry = panel.entry(entry_id)
        check_typed(entry, panel.geometry(entry, device_name), w, h, n_steps, scale, seed_value, n_images)
        entry, geo, settings = settings_from(entry_id, device_name, prompt_text, negative_text, w, h, n_steps, scale,
                                             seed_value, weights)
        count = max(1, min(MAX_IMAGES, whole("number of images", n_images or 1)))  # before any load
        with panel.stops.request(serving.session_key(request)) as control:  # ends: a closed tab stops it too
            loaded = settings.device in panel.suite.is_loaded(entry)
            # On stage the Compare slider stays put above the gallery (hiding it there loses its next images).
            compare_view = gr.skip() if panel.stage_entry() else gr.update(visible=bool(compare_on and settings.styles))
            images = f"{count} image{'s' if count != 1 else ''}"
            yield {ui.status: f"Generating {images} with {entry.title} on {settings.device}…" if loaded else
                   f"Loading {entry.title} on {settings.device}…", ui.slider: compare_view}
            if loaded:
                handle = panel.load(entry, settings.device, progress)
            else:  # a first load: a progress bar with its stage and clock, in the status line
                handle = yield from loading.follow(f"**{entry.title}** on {settings.device}",
                                                   lambda report: panel.load(entry, settings.device, report),
                                                   lambda tracker: {ui.status: tracker.html()})
                yield {ui.status: f"Generating {images} with {entry.title} on {settings.device}…"}
            if panel.geometry(entry, settings.device) != geo:  # first download: snap to the real size factor
                entry, geo, settings = settings_from(entry_id, device_name, prompt_text, negative_text, w, h,
                                                     n_steps, scale, settings.seed, weights)
            batch = image_batch.Batch(handle, geo, entry.title, settings, count,
                                      bool(compare_on), image_run.preview_interval(settings.steps) if live_preview
                                      else 0, control)
            yield from _render(panel, ui, batch, progress)

    def stop_generation(request: gr.Request) -> str:
        stopped = panel.stops.stop(serving.session_key(request))
        return "Stopping at the next step…" if stopped else gr.skip()

    def select_image(evt: gr.SelectData, texts_now: list, files_now: list, images_now: list):
        index = evt.index if isinstance(evt.index, int) else 0
        if 0 <= index < len(texts_now):
            chosen = images_now[index] if index < len(images_now) else gr.skip()
            return texts_now[index], gr.update(value=files_now[index], visible=True), chosen
        return gr.skip(), gr.skip(), gr.skip()

    def run_edit(request: gr.Request, mode_label: str, picture_path: str | None, canvas_value: Any,
                 mask_path: str | None, strength_value: float, prompt_text: str, negative_text: str, entry_id: str,
                 device_name: str, w, h, n_steps, scale, seed_value, n_images, live_preview: bool, compare_on: bool,
                 progress=gr.Progress(track_tqdm=True), *weights) -> Iterator[dict]:
        """Transform or Inpaint: the same batch, progress, previews, Stop and Compare as Generate."""
        mode = _mode(mode_label)
        entry = panel.entry(entry_id)
        device_name = panel.device(device_name)
        check_typed(entry, panel.geometry(entry, device_name), w, h, n_steps, scale, seed_value, n_images)
        count = max(1, min(MAX_IMAGES, whole("number of images", n_images or 1)))
        inputs = dict(device=device_name, prompt=prompt_text, negative_prompt=negative_text or "",
                      styles=_styles(entry, all_adapters, weights), strength=strength_value, steps=n_steps,
                      guidance_scale=scale)

        def request_for(geo: Geometry, seed: Any) -> tuple[ImageSettings, image_edit.Source]:
            picture, painted = _edit_inputs(mode, picture_path, canvas_value, mask_path)
            if mode == "inpaint" and painted is None:  # nothing painted or uploaded: an empty mask (a transform)
                source, notes = image_edit.open_source(picture, entry, geo)
                return image_edit.edit_settings(entry, geo, source, np.zeros(source.shape[:2], bool), notes,
                                                seed=seed, **inputs)
            return image_edit_job.request(entry, geo, picture, painted, seed=seed, **inputs)

        geo = panel.geometry(entry, device_name)
        settings, source = request_for(geo, seed_value if seed_value is not None else 42)  # bad input: before a load
        with panel.stops.request(serving.session_key(request)) as control:
            title = image_edit.MODE_LABELS[settings.mode]
            compare_view = gr.skip() if panel.stage_entry() else gr.update(visible=False)
            loaded = settings.device in panel.suite.is_loaded(entry)
            yield {ui.status: f"{title}: loading {entry.title} on {settings.device}…" if not loaded else
                   f"{title} with {entry.title} on {settings.device}…", ui.slider: compare_view}
            if loaded:
                handle = panel.load(entry, settings.device, progress)
            else:
                handle = yield from loading.follow(f"**{entry.title}** on {settings.device}",
                                                   lambda report: panel.load(entry, settings.device, report),
                                                   lambda tracker: {ui.status: tracker.html()})
            if panel.geometry(entry, settings.device) != geo:
                geo = panel.geometry(entry, settings.device)
                settings, source = request_for(geo, settings.seed)
            image_run.mode_pipeline(handle, settings.mode)  # a model that cannot edit says so now
            source_file = image_files.save_png(source.image, image_files.run_folder() / "source.png")
            batch = image_batch.Batch(handle, geo, entry.title, settings, count, bool(compare_on),
                                      image_run.preview_interval(image_edit.steps_run(settings)) if live_preview
                                      else 0, control, source=source)
            yield from _render(panel, ui, batch, progress, source_file)

    def on_mode(mode_label: str):
        mode = _mode(mode_label)
        editing = mode != "generate"
        return [gr.update(visible=mode == "transform"), gr.update(visible=mode == "inpaint"),
                gr.update(visible=mode == "inpaint"), gr.update(visible=editing), gr.update(visible=not editing),
                gr.update(visible=editing, value=image_edit.MODE_LABELS[mode]), gr.update(visible=not editing)]

    def send(target: str):
        def to_mode(current_path: str | None):
            if not current_path:
                raise UserError("Generate or edit a picture first; then this button sends it here.", param="image")
            editor = {"background": current_path, "layers": [], "composite": current_path}
            # Shown in the same update that fills it (mode.change shows it too, but a value sent to a component that
            # is still hidden was seen lost at phone width).
            return (image_edit.MODE_LABELS[target],
                    gr.update(value=current_path, visible=True) if target == "transform" else gr.skip(),
                    gr.update(value=editor, visible=True) if target == "inpaint" else gr.skip(),
                    f"Sent the picture to {image_edit.MODE_LABELS[target]}: "
                    + ("paint over what to repaint, then press Inpaint." if target == "inpaint" else
                       "describe the change, set the strength, then press Transform."))
        return to_mode

    settings_inputs = [ui.mode, ui.strength, ui.model, ui.device, ui.prompt, ui.negative, ui.width, ui.height,
                       ui.steps, ui.guidance, ui.seed, ui.count, *ui.sliders]
    gr.on([c.change for c in settings_inputs], guarded(preview_code), settings_inputs,
          [ui.size_note, ui.python, ui.cpp],
          trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    ui.model.change(guarded(on_model), [ui.model, ui.device],
                    [ui.info, ui.negative, ui.width, ui.height, ui.steps, ui.guidance, ui.no_styles, ui.compare,
                     *ui.sliders], api_visibility="private", show_progress="hidden")
    ui.dice.click(lambda: random.randint(0, MAX_SEED), None, ui.seed, api_visibility="private",
                  show_progress="hidden")
    run_inputs = [ui.prompt, ui.negative, ui.model, ui.device, ui.width, ui.height, ui.steps, ui.guidance, ui.seed,
                  ui.count, ui.live, ui.compare, *ui.sliders]
    # The step progress shows on the status line, not over the gallery, where it would hide the live previews; a
    # refused request leaves every output as it was and says why in the status line (and a toast).
    reported = reporting(run, lambda message: {ui.status: f"**Not generated:** {message}"})
    # Undocumented but callable: the UI's own event (tests drive Stop through it); /generate_image is the API.
    # Stop is red only while something can be stopped (it stays clickable: a click just before a run counts):
    # each run event is chained after the switch to red, so the switch back can never land before it.
    quick = dict(api_visibility="private", queue=False, show_progress="hidden")

    def red() -> Any:
        return gr.update(variant="stop")

    queued = dict(concurrency_id=CONCURRENCY_ID, show_progress_on=[ui.progress_strip])
    clicked = ui.go.click(red, None, ui.stop, **quick).then(
        reported, run_inputs, ui.run_outputs(), api_name="generate_images", api_visibility="undocumented", **queued)
    edit_inputs = [ui.mode, ui.picture, ui.canvas, ui.mask_file, ui.strength, *run_inputs]
    reported_edit = reporting(run_edit, lambda message: {ui.status: f"**Not edited:** {message}"})

    def run_mode(request: gr.Request, mode_label: str, picture_path, canvas_value, mask_path, strength_value,
                 prompt_text, negative_text, entry_id, device_name, w, h, n_steps, scale, seed_value, n_images,
                 live_preview, compare_on, progress=gr.Progress(track_tqdm=True), *weights) -> Iterator[dict]:
        """Enter in the prompt runs the chosen mode."""
        common = (prompt_text, negative_text, entry_id, device_name, w, h, n_steps, scale, seed_value, n_images,
                  live_preview, compare_on, progress, *weights)
        if _mode(mode_label) == "generate":
            yield from reported(request, *common)
        else:
            yield from reported_edit(request, mode_label, picture_path, canvas_value, mask_path, strength_value,
                                     *common)

    edit_clicked = ui.edit_go.click(red, None, ui.stop, **quick).then(
        reported_edit, edit_inputs, ui.run_outputs(), api_name="edit_images", api_visibility="undocumented", **queued)
    submitted = ui.prompt.submit(red, None, ui.stop, **quick).then(
        run_mode, edit_inputs, ui.run_outputs(), api_visibility="private", **queued)
    for event in (clicked, submitted, edit_clicked):
        keep_outputs_on_error(event, [ui.progress_strip, ui.status])
        event.then(lambda: gr.update(variant="secondary"), None, ui.stop, **quick)  # grey again, done or failed
    ui.mode.change(guarded(on_mode), ui.mode, [ui.picture, ui.canvas, ui.mask_box, ui.strength, ui.go, ui.edit_go,
                                               ui.size_row], api_visibility="private", show_progress="hidden")
    for button, target in ((ui.send_transform, "transform"), (ui.send_inpaint, "inpaint")):
        button.click(guarded(send(target)), ui.current, [ui.mode, ui.picture, ui.canvas, ui.status],
                     api_visibility="private", show_progress="hidden")
    # Not in the image queue: Stop must run while a generation holds it.
    ui.stop.click(guarded(stop_generation), None, ui.status, api_name="stop_images", api_visibility="undocumented",
                  concurrency_limit=None, show_progress="hidden")
    ui.gallery.select(guarded(select_image), [ui.texts, ui.files, ui.images], [ui.params, ui.params_file, ui.current],
                      api_visibility="private", show_progress="hidden")


def _render(panel: "ImagePanel", ui: Widgets, batch: image_batch.Batch, progress: Any,
            source_file: Path | None = None) -> Iterator[dict]:
    """Turn a batch's events into UI updates: progress bar, previews, gallery, Compare slider, parameters. An edit
    (``source_file``: its source as PNG) shows source ◀ ▶ result in the Compare slider, unless its no-style twin
    takes the slider for the with/without-styles comparison."""
    shown: list[tuple[str, str]] = []
    texts: list[str] = []
    files: list[str] = []
    first_styled: str | None = None
    note = load_note(batch.handle)
    for event in batch.run():
        if isinstance(event, image_batch.Step):  # throttled by the job: fast models take thousands of steps a minute
            where = f"{event.label} · step {event.step}/{event.steps}"
            progress((event.done_total, event.total), unit="steps")
            yield {ui.status: f"Generating {where}…"}
        elif isinstance(event, image_batch.Queued):
            ahead = f"{event.ahead} request{'s' if event.ahead != 1 else ''}"
            yield {ui.status: f"Waiting for the pipeline: {ahead} ahead of you ({event.label})…"}
        elif isinstance(event, image_batch.Preview):
            yield {ui.gallery: gr.update(value=shown + [(event.image, event.caption)], selected_index=len(shown))}
        elif isinstance(event, image_batch.Saved) and event.twin:
            yield {ui.slider: gr.update(value=(str(event.path), first_styled), visible=True,  # (without, with)
                                        label=COMPARE_STYLES),
                   ui.gallery: gr.update(value=list(shown), selected_index=len(shown) - 1)}  # drop its previews
        elif isinstance(event, image_batch.Saved):
            source_view = {}
            if source_file is not None and first_styled is None:  # the first result beside its source
                source_view = {ui.slider: gr.update(value=(str(source_file), str(event.path)), visible=True,
                                                    label=COMPARE_SOURCE)}
            first_styled = first_styled or str(event.path)
            shown.append((str(event.path), event.caption))
            texts.append(event.text)
            files.append(str(event.meta))
            yield {ui.gallery: gr.update(value=list(shown), selected_index=len(shown) - 1), ui.params: event.text,
                   ui.params_file: gr.update(value=files[-1], visible=True), ui.texts: list(texts),
                   ui.files: list(files), ui.images: [path for path, _ in shown], ui.current: str(event.path),
                   ui.send_transform: gr.update(interactive=True), ui.send_inpaint: gr.update(interactive=True),
                   **source_view}
        elif isinstance(event, image_batch.Stopped):
            partial = [(event.result.preview, event.caption)] if event.result.preview is not None else []
            yield {ui.gallery: gr.update(value=shown + partial, selected_index=len(shown) if partial else None),
                   ui.status: f"Stopped at step {event.result.steps_done}/{event.result.settings.steps} of "
                              f"{event.label}; {len(shown)} image(s) finished. The pipeline is ready for the next one.",
                   **_finish(panel, ui, batch, note)}
            return
    notes = "; ".join(batch.settings.notes)
    done = f"Done: {len(shown)} image(s)" + (f" · {notes}" if notes else "") + (f" · {note}" if note else "")
    # The gallery again with the last update: Gradio 6.31's browser side now and then drops a streamed gallery
    # update (seen in the browser tests: parameters updated, picture not); the run's final message always lands.
    yield {ui.status: done, ui.gallery: gr.update(value=list(shown), selected_index=len(shown) - 1 if shown else None),
           **_finish(panel, ui, batch, "")}


def _finish(panel: "ImagePanel", ui: Widgets, batch: image_batch.Batch, note: str) -> dict:
    figures = image_run.run_metrics(batch.results, batch.handle)
    python_text, cpp_text = panel.code(batch.settings)
    return {ui.metrics: metrics_markdown(figures) + (f" · {note}" if note else ""), ui.python: python_text,
            ui.cpp: cpp_text}


# ---------------------------------------------------------------------------------------------------------
# Presenter mode


def warm_up(entry: Entry, suite: Suite) -> None:
    """Presenter mode: short generations at the size the panel opens with, plain and with the first style (the
    panel opens with it and Compare on), so the first image on stage pays for no first-inference allocation."""
    if not isinstance(entry, ImageEntry):
        return
    handle = suite.load(entry)
    geo = geometry(handle.prepared.model_dir)
    prompt = entry.examples[0] if entry.examples else "a photo"
    styles = [{}] + ([{entry.adapters[0].id: entry.adapters[0].alpha}] if entry.adapters else [])
    for chosen in styles:  # 2 steps reach every model (text encoder, denoiser, VAE) at the stage's shapes
        image_run.generate(handle, resolve(entry, geo, device=handle.loaded.key.device, prompt=prompt, steps=2,
                                           styles=chosen))


# ---------------------------------------------------------------------------------------------------------
# /generate_image


def _api(panel: ImagePanel):
    def generate_image(prompt: str, model: str, negative_prompt: str = "",
                       adapters: dict[str, float] = {},  # noqa: B006 - DESIGN §6's default; never mutated
                       width: int = 0, height: int = 0, steps: int = 0, guidance_scale: float = -1, seed: int = 42,
                       device: str = "",
                       request: gr.Request = None) -> tuple[FileData, dict]:  # type: ignore[assignment]
        """Generate one image with Text2ImagePipeline; returns the PNG (its parameters embedded as text metadata) and
        a metrics dict (step_ms, generate_s, images_per_min, device and the settings used; load_s when this call
        loaded the model).

        Args:
            prompt: what the picture shows.
            model: an image model id from models.yaml.
            negative_prompt: what it should not show (needs guidance_scale above 1).
            adapters: LoRA style ids of the model mapped to weights, e.g. {"style": 0.8} (0 = off).
            width: the width in pixels (0 = the model's default; snapped to the multiple the model needs).
            height: the height in pixels (0 = the model's default; snapped likewise).
            steps: denoising steps (0 = the model's default).
            guidance_scale: classifier-free guidance (negative = the model's default).
            seed: the random seed (-1 picks one); the same seed gives the same pixels.
            device: CPU, GPU, NPU or AUTO ("" = the app's default).
        """
        entry = panel.entry(model)
        device_name = panel.device(device)
        inputs = dict(device=device_name, prompt=prompt, negative_prompt=negative_prompt or None, styles=adapters,
                      width=width, height=height, steps=steps, guidance_scale=guidance_scale)
        before = panel.geometry(entry, device_name)
        settings = resolve(entry, before, seed=seed, **inputs)  # bad input fails here, before any load
        handle = panel.load(entry, device_name)
        geo = panel.geometry(entry, device_name)
        if geo != before:  # first download told us the model's real size factor: snap again
            settings = resolve(entry, geo, seed=settings.seed, **inputs)
        with panel.stops.request(serving.session_key(request)) as control:  # the session's Stop reaches it too
            *_, (_, result) = image_batch.in_job(handle, settings, control)
        if result.image is None:
            raise UserError("the image was stopped before it was finished; send the request again for the whole "
                            "image", param="request")
        path = image_files.save_png(result.image, image_files.run_folder() / f"seed{settings.seed}.png", settings,
                                    geo, entry.title)
        figures = image_run.run_metrics([result], handle)
        figures.update(compiled=handle.built_now, width=settings.width, height=settings.height, steps=settings.steps,
                       guidance_scale=settings.guidance_scale, seed=settings.seed,
                       adapters={name: weight for name, weight in settings.styles})
        if settings.notes:
            figures["notes"] = list(settings.notes)
        return FileData(path=str(path), mime_type="image/png", orig_name=path.name), figures
    return generate_image


# ---------------------------------------------------------------------------------------------------------
# /edit_image


def _upload(value: Any, what: str) -> str | None:
    """The server path of an uploaded file (``gradio_client.handle_file``); None for nothing sent."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, dict) and value.get("path"):
        return checked_upload(value["path"], what)
    if isinstance(value, str):
        return checked_upload(value, what)  # the gate let it through only if it is an upload
    raise UserError(f"{what}: send a picture file with gradio_client.handle_file(path)", param=what)


def _edit_api(panel: ImagePanel):
    def edit_image(image: FileDataDict | None, prompt: str, model: str, mask: FileDataDict | None = None,
                   strength: float = 0.75, negative_prompt: str = "",
                   adapters: dict[str, float] = {},  # noqa: B006 - DESIGN §6's default; never mutated
                   steps: int = 0, guidance_scale: float = -1, seed: int = 42, device: str = "",
                   request: gr.Request = None) -> tuple[FileData, dict]:  # type: ignore[assignment]
        """Edit a picture: without a mask transform it (Image2ImagePipeline), with one repaint the masked part
        (InpaintingPipeline); returns the PNG (parameters embedded) and a metrics dict (step_ms, generate_s, mode,
        strength, steps_run, the settings used, notes on what was changed).

        Args:
            image: the picture to edit (gradio_client.handle_file(path)); scaled down if larger than the model takes.
            prompt: what the result shows.
            model: an image model id from models.yaml.
            mask: optional picture, white = repaint, black = keep (scaled to the picture); empty = transform.
            strength: above 0 and at most 1: how much may change (the pipeline runs steps x strength steps).
            negative_prompt: what it should not show (needs guidance_scale above 1).
            adapters: LoRA style ids of the model mapped to weights, e.g. {"style": 0.8} (0 = off).
            steps: denoising steps (0 = the model's default).
            guidance_scale: classifier-free guidance (negative = the model's default).
            seed: the random seed (-1 picks one); the same seed gives the same pixels.
            device: CPU, GPU, NPU or AUTO ("" = the app's default).
        """
        entry = panel.entry(model)
        device_name = panel.device(device)
        picture, painted = _upload(image, "image"), _upload(mask, "mask")
        inputs = dict(device=device_name, prompt=prompt, negative_prompt=negative_prompt or None, styles=adapters,
                      strength=strength, steps=steps, guidance_scale=guidance_scale)
        _, path, figures = image_edit_job.edit(
            entry, picture, painted, before=panel.geometry(entry, device_name),
            load=lambda: (panel.load(entry, device_name), panel.geometry(entry, device_name)),
            stops=lambda: panel.stops.request(serving.session_key(request)),  # the session's Stop reaches it too
            seed=seed, **inputs)
        return FileData(path=str(path), mime_type="image/png", orig_name=path.name), figures
    return edit_image
