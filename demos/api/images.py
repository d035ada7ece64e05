"""``POST /v1/images/generations`` for image entries, on the image panel's engine (``settings.resolve`` → a
``serving`` job per image through ``batch.in_job``, saved by ``files.save_png`` with its parameters), so the
pixels equal ``/generate_image``'s and the UI's for the same seed. PNG, lossless, as base64."""
from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse

from demos.api import bodies
from demos.api import catalog as api_catalog
from demos.api.bodies import Body, parse
from demos.api.streaming import finish
from demos.core import files, serving
from demos.core.catalog import ImageEntry
from demos.core.errors import TooLarge, UserError, check_text
from demos.core.suite import Suite
from demos.panels.image import batch as image_batch
from demos.panels.image import edit_job
from demos.panels.image import files as image_files
from demos.panels.image import run as image_run
from demos.panels.image.settings import MAX_SEED, ImageSettings, geometry, resolve

ROUTE = "/v1/images/generations"
MAX_N = 4


class ImageRequest(Body):
    model: str = ""
    prompt: str = ""
    n: int = 1
    size: str | None = None
    response_format: str | None = None
    # Extensions of the suite, as /generate_image names them.
    seed: int = 42
    steps: int = 0
    guidance_scale: float = -1
    negative_prompt: str | None = None
    adapters: dict[str, float] | None = None


def _size(size: str | None) -> tuple[int, int]:
    """(width, height) from "WxH"; (0, 0), the model's own size, for none or "auto"."""
    if size in (None, "", "auto"):
        return 0, 0
    found = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", size)
    if not found:
        raise UserError(f"size {size!r} is not WIDTHxHEIGHT: send e.g. \"512x512\" (or \"auto\" for the model's own)",
                        param="size")
    return int(found.group(1)), int(found.group(2))


def _check(request: ImageRequest) -> None:
    if not 1 <= request.n <= MAX_N:
        raise UserError(f"n is {request.n}: ask for 1 to {MAX_N} images per request", param="n")
    if request.response_format not in (None, "b64_json"):
        raise UserError(f"response_format {request.response_format!r} is not supported: this server keeps no image "
                        "files for you to fetch; use \"b64_json\"", param="response_format")


def _generate(suite: Suite, request: ImageRequest, control: serving.Control) -> dict[str, Any]:
    _check(request)
    entry: ImageEntry = api_catalog.entry_for(suite, request.model, ROUTE)  # type: ignore[assignment]
    width, height = _size(request.size)
    device = suite.runtime.check_device(suite.default_device)
    inputs = dict(device=device, prompt=request.prompt, negative_prompt=request.negative_prompt, styles=request.adapters,
                  width=width, height=height, steps=request.steps, guidance_scale=request.guidance_scale)
    before = geometry(suite.locate(entry, device).path)
    settings = resolve(entry, before, seed=request.seed, **inputs)  # bad input fails here, before any load
    handle = suite.load(entry, device)
    geo = geometry(handle.prepared.model_dir)
    if geo != before:  # the first download told the model's real size factor: snap again
        settings = resolve(entry, geo, seed=settings.seed, **inputs)
    folder = image_files.run_folder()
    data, results = [], []
    for index in range(request.n):
        one: ImageSettings = settings.with_seed((settings.seed + index) % (MAX_SEED + 1))  # as the panel's batch
        *_, (_, result) = image_batch.in_job(handle, one, control)
        if result.image is None:
            raise UserError("the image was stopped before it was finished; send the request again", param="request")
        results.append(result)
        path = image_files.save_png(result.image, folder / f"seed{one.seed}.png", one, geo, entry.title)
        data.append({"b64_json": base64.b64encode(path.read_bytes()).decode("ascii"), "seed": one.seed,
                     "revised_prompt": one.prompt})
        path.unlink(missing_ok=True)  # the bytes are in the answer; the folder is swept anyway
    figures = image_run.run_metrics(results, handle)
    figures.update(width=settings.width, height=settings.height, steps=settings.steps,
                   guidance_scale=settings.guidance_scale, seed=settings.seed,
                   adapters={name: weight for name, weight in settings.styles})
    if settings.notes:
        figures["notes"] = list(settings.notes)
    return {"created": int(time.time()), "data": data, "output_format": "png",
            "size": f"{settings.width}x{settings.height}", "metrics": figures}


async def generations(suite: Suite, request: Request) -> JSONResponse:
    raw = await request.body()
    body = parse(ImageRequest, raw)
    control = serving.Control()
    return JSONResponse(await finish(request, control, lambda: _generate(suite, body, control)))


# -------------------------------------------------------------------------------------------------------------
# POST /v1/images/edits: OpenAI's multipart form; its mask convention (transparent = repaint)

EDITS_ROUTE = "/v1/images/edits"
EDIT_FIELDS = ("model", "prompt", "n", "size", "response_format", "seed", "steps", "guidance_scale",
               "negative_prompt", "adapters", "strength", "quality", "background", "output_format", "user")


def _form_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raise UserError(f"{name} must be a form field, not a file", param=name)
    return check_text(str(value), name).strip()


def _number(form: Any, name: str, default: float, kind: type = float) -> Any:
    text = _form_field(form, name)
    if text in (None, ""):
        return default
    try:
        return kind(text)
    except ValueError:
        raise UserError(f"{name} {text!r} is not a number", param=name) from None


def _save_upload(upload: Any, what: str) -> Path | None:
    """An uploaded image in a private folder (None when the field is absent); refused above the image size limit."""
    if upload is None:
        return None
    if not isinstance(upload, UploadFile):
        raise UserError(f"{what} must be a file in the multipart form", param=what)
    limit = files.limits().image_mb
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", Path(upload.filename or what).name)[:120].strip(" .") or what
    path = files.run_folder("api-images") / name
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    if path.stat().st_size > limit * files.MB:
        raise TooLarge(f"{name} is {files.megabytes(path.stat().st_size)}; this server takes images up to {limit:g} "
                       "MB: scale it down or send it as JPEG", param=what)
    return path


def _check_edit_output(form: Any) -> None:
    """The output is an opaque PNG: refuse asking for another format or a transparent background (``quality``
    is accepted and has no effect: the steps set the quality here)."""
    output_format = (_form_field(form, "output_format") or "png").lower()
    if output_format != "png":
        raise UserError(f"output_format {output_format!r}: this server returns PNG only; leave it out or send "
                        "\"png\"", param="output_format")
    background = (_form_field(form, "background") or "auto").lower()
    if background == "transparent":
        raise UserError("background \"transparent\": the edited picture is an opaque PNG; leave it out or send "
                        "\"opaque\" or \"auto\"", param="background")
    if background not in ("auto", "opaque"):
        raise UserError(f"background {background!r} is not one of \"auto\", \"opaque\"", param="background")


def _check_edit_size(wanted: tuple[int, int], settings: ImageSettings) -> None:
    """An edit keeps the source picture's size (after the app's scaling to what the model takes): ``size`` may
    name that size, or be "auto" or absent; another size is refused rather than silently ignored."""
    if wanted != (0, 0) and wanted != (settings.width, settings.height):
        raise UserError(f"size {wanted[0]}x{wanted[1]}: an edit's output takes the source picture's size "
                        f"({settings.width}x{settings.height}); resize the picture first, or leave size out "
                        "(or send \"auto\")", param="size")


def _edit(suite: Suite, form: Any, control: serving.Control, saved: list[Path]) -> dict[str, Any]:
    entry: ImageEntry = api_catalog.entry_for(suite, _form_field(form, "model") or "", EDITS_ROUTE)  # type: ignore
    if _number(form, "n", 1, int) != 1:
        raise UserError("n: this server edits one image per request", param="n")
    if (_form_field(form, "response_format") or "b64_json") != "b64_json":
        raise UserError("response_format: this server keeps no image files for you to fetch; use \"b64_json\"",
                        param="response_format")
    _check_edit_output(form)
    wanted = _size(_form_field(form, "size"))  # (0, 0): the source's size
    adapters_text = _form_field(form, "adapters")
    try:
        adapters = json.loads(adapters_text) if adapters_text else None
    except ValueError:
        raise UserError("adapters must be JSON mapping style ids to weights, e.g. {\"style\": 0.8}",
                        param="adapters") from None
    uploads = form.getlist("image") or form.getlist("image[]")
    image = _save_upload(uploads[0] if uploads else None, "image")
    mask = _save_upload(form.get("mask"), "mask")
    saved += [p for p in (image, mask) if p is not None]
    if image is None:
        raise UserError("image is missing: send the picture as the multipart field 'image'", param="image")
    device = suite.runtime.check_device(suite.default_device)
    inputs = dict(device=device, prompt=_form_field(form, "prompt") or "",
                  negative_prompt=_form_field(form, "negative_prompt"), styles=adapters,
                  strength=_number(form, "strength", 0.75), steps=_number(form, "steps", 0, int),
                  guidance_scale=_number(form, "guidance_scale", -1))
    seed = _number(form, "seed", 42, int)

    def load() -> tuple[Any, Any]:
        handle = suite.load(entry, device)
        return handle, geometry(handle.prepared.model_dir)

    settings, path, figures = edit_job.edit(
        entry, str(image), str(mask) if mask else None, before=geometry(suite.locate(entry, device).path), load=load,
        stops=lambda: contextlib.nullcontext(control), check=lambda settings: _check_edit_size(wanted, settings),
        transparent_repaints=True, seed=seed, **inputs)
    data = [{"b64_json": base64.b64encode(path.read_bytes()).decode("ascii"), "seed": settings.seed,
             "revised_prompt": settings.prompt}]
    path.unlink(missing_ok=True)
    return {"created": int(time.time()), "data": data, "output_format": "png",
            "size": f"{settings.width}x{settings.height}", "metrics": figures}


async def edits(suite: Suite, request: Request) -> JSONResponse:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UserError("the body must be multipart/form-data (OpenAI's images.edit form) with the picture in the "
                        "field 'image'", param="body")
    form = await bodies.form(request, "image", "the picture", max_files=2, max_fields=len(EDIT_FIELDS) + 4)
    saved: list[Path] = []
    try:
        control = serving.Control()
        return JSONResponse(await finish(request, control, lambda: _edit(suite, form, control, saved)))
    finally:
        await form.close()
        for path in saved:
            shutil.rmtree(path.parent, ignore_errors=True)
