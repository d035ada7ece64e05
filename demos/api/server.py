"""The ``/v1`` application: OpenAI-compatible routes on the suite's engines, behind the ``Gate``.

``app.py`` mounts it on the Gradio server (same host and port) with ``routes(...)``; its requests go straight to the
serving core, never through Gradio's queue."""
from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from demos.api import audio, chat, images, speech
from demos.api import catalog as api_catalog
from demos.api.errors import ApiError, body
from demos.api.gate import Gate
from demos.core import files
from demos.core.errors import UnknownId
from demos.core.suite import Suite

API_KEY_ENV = "OV_DEMOS_API_KEY"
PREFIX = "/v1"


def create(suite: Suite, key: str | None = None, cors: tuple[str, ...] = (), limit: int | None = None) -> Any:
    """The ``/v1`` ASGI app for ``suite``; ``key``: the API key every request must bear (None: none needed);
    ``cors``: browser origins allowed besides the page's own; ``limit``: the body size cap in bytes (default: the
    catalog's ``max_upload_mb``)."""

    async def models(request: Request) -> Response:
        return JSONResponse(api_catalog.listing(suite))

    async def model(request: Request) -> Response:
        ident = request.path_params["model"]
        try:
            return JSONResponse(api_catalog.describe(suite.catalog.entry(ident)))
        except UnknownId as exc:
            raise ApiError(404, str(exc), param="model", code="model_not_found") from None

    async def completions(request: Request) -> Response:
        return await chat.completions(suite, request)

    async def generations(request: Request) -> Response:
        return await images.generations(suite, request)

    async def image_edits(request: Request) -> Response:
        return await images.edits(suite, request)

    async def transcriptions(request: Request) -> Response:
        return await audio.handle(suite, request, "transcription")

    async def translations(request: Request) -> Response:
        return await audio.handle(suite, request, "translation")

    async def speak(request: Request) -> Response:
        return await speech.handle(suite, request)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = (f"{request.method} {request.url.path} is not a route of this server; GET {PREFIX}/models lists "
                   "the models, and the README's API section the routes") if status == 404 else \
            f"{request.method} is not allowed on {request.url.path}" if status == 405 else str(getattr(exc, "detail", ""))
        return JSONResponse(body(message, code=str(status)), status_code=status)

    app = Starlette(routes=[
        Route("/models", models, methods=["GET"]),
        Route("/models/{model:path}", model, methods=["GET"]),
        Route("/chat/completions", completions, methods=["POST"]),
        Route("/images/generations", generations, methods=["POST"]),
        Route("/images/edits", image_edits, methods=["POST"]),
        Route("/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/audio/translations", translations, methods=["POST"]),
        Route("/audio/speech", speak, methods=["POST"]),
    ], exception_handlers={HTTPException: http_error})
    cap = limit if limit is not None else int(files.limits().upload_mb * files.MB)
    app.add_middleware(Gate, limit=cap, key=key or None, origins=tuple(cors))
    return app


def routes(suite: Suite, key: str | None = None, cors: tuple[str, ...] = ()) -> list[BaseRoute]:
    """What ``launch(app_kwargs={"routes": ...})`` puts before Gradio's own routes: ``/v1`` and everything under it."""
    return [Mount(PREFIX, app=create(suite, key, cors))]
