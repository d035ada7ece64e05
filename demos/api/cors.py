"""``--cors ORIGINS``: cross-origin browser access to ``/v1`` for the listed origins only.

Gradio's own CORS middleware answers every preflight itself (allowing an origin only by its localhost rule), so
an allow-list for ``/v1`` must sit outside it: ``around`` wraps the server's whole ASGI stack and handles ``/v1``
requests with Starlette's ``CORSMiddleware``; every other path goes to Gradio untouched. Without ``--cors`` none of
this is installed and the ``Gate`` refuses other origins."""
from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware

from demos.api.server import PREFIX


def around(stack: Any, origins: tuple[str, ...]) -> Any:
    allowed = CORSMiddleware(stack, allow_origins=list(origins), allow_methods=["GET", "POST", "OPTIONS"],
                             allow_headers=["*"], max_age=600)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await allowed(scope, receive, send)
        else:
            await stack(scope, receive, send)

    return app
