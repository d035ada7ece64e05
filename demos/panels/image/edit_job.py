"""One edit request end to end, for ``/edit_image`` and ``/v1/images/edits`` alike (no Gradio): the source and
mask read and checked (``edit``), then one ``serving`` job in the pipeline's lane (``batch.in_job``), saved as PNG
with its parameters, and its metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ContextManager

from demos.core.catalog import ImageEntry
from demos.core.errors import UserError
from demos.core.suite import Handle
from demos.panels.image import batch as image_batch
from demos.panels.image import edit as image_edit
from demos.panels.image import files as image_files
from demos.panels.image import run as image_run
from demos.panels.image.settings import Geometry, ImageSettings


def request(entry: ImageEntry, geo: Geometry, picture: Any, mask: Any, *, transparent_repaints: bool = False,
            **inputs: Any) -> tuple[ImageSettings, image_edit.Source]:
    """Source, mask and settings of one edit (``inputs``: ``edit_settings``' keywords); bad input raises first."""
    source, notes = image_edit.open_source(picture, entry, geo)
    painted = None
    if mask is not None:
        height, width = source.shape[:2]
        painted, mask_notes = image_edit.read_mask(mask, (width, height), transparent_repaints)
        notes += mask_notes
    return image_edit.edit_settings(entry, geo, source, painted, notes, **inputs)


def run(handle: Handle, geo: Geometry, entry: ImageEntry, settings: ImageSettings, source: image_edit.Source,
        control: Any) -> tuple[Path, dict]:
    """Run one edit as a job; the PNG (parameters embedded) and its metrics (shared by /edit_image and /v1)."""
    *_, (_, result) = image_batch.in_job(handle, settings, control, source=source)
    if result.image is None:
        raise UserError("the image was stopped before it was finished; send the request again for the whole "
                        "image", param="request")
    path = image_files.save_png(result.image, image_files.run_folder() / f"{settings.mode}-seed{settings.seed}.png",
                                settings, geo, entry.title)
    figures = image_run.run_metrics([result], handle)
    figures.update(compiled=handle.built_now, mode=settings.mode, strength=settings.strength,
                   width=settings.width, height=settings.height, steps=settings.steps,
                   steps_run=image_edit.steps_run(settings), guidance_scale=settings.guidance_scale,
                   seed=settings.seed, adapters={name: weight for name, weight in settings.styles},
                   source_sha256=settings.source_sha256)
    if settings.notes:
        figures["notes"] = list(settings.notes)
    return path, figures


def edit(entry: ImageEntry, picture: Any, mask: Any, *, before: Geometry, load: Callable[[], tuple[Handle, Geometry]],
         stops: Callable[[], ContextManager[Any]], check: Callable[[ImageSettings], None] = lambda settings: None,
         transparent_repaints: bool = False, seed: Any = 42,
         **inputs: Any) -> tuple[ImageSettings, Path, dict]:
    """One edit from request to PNG, as ``/edit_image`` and ``/v1/images/edits`` run it: bad input (and
    ``check``) refused before the load; sized again if the loaded model's geometry differs from ``before`` (the
    first download tells its real size factor); the mode's pipeline checked before queueing; the job run under
    the control ``stops()`` gives (the session's Stop for the panel's API)."""
    settings, source = request(entry, before, picture, mask, transparent_repaints=transparent_repaints, seed=seed,
                               **inputs)
    check(settings)
    handle, geo = load()
    if geo != before:
        settings, source = request(entry, geo, picture, mask, transparent_repaints=transparent_repaints,
                                   seed=settings.seed, **inputs)
        check(settings)
    image_run.mode_pipeline(handle, settings.mode)  # a model that cannot edit says so before queueing
    with stops() as control:
        path, figures = run(handle, geo, entry, settings, source, control)
    return settings, path, figures
