"""``POST /v1/images/generations`` for image entries, on the image panel's engine (``settings.resolve`` → a
``serving`` job per image through ``batch.in_job``, saved by ``files.save_png`` with its parameters), so the
pixels equal ``/generate_image``'s and the UI's for the same seed. PNG, lossless, as base64."""
from __future__ import annotations

import base64
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from demos.api import catalog as api_catalog
from demos.api.bodies import Body, parse
from demos.api.streaming import finish
from demos.core import serving
from demos.core.catalog import ImageEntry
from demos.core.errors import UserError
from demos.core.suite import Suite
from demos.panels.image import batch as image_batch
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
