"""What stands in front of every ``/v1`` route, as plain ASGI: the body size cap, the API key, the origin rule,
and the last word on errors (OpenAI's shape, never a traceback).

- **Size**: a body over the cap is refused with 413 from its ``Content-Length`` before a byte of it is read, and a
  body sent without one (chunked) is cut off as soon as it passes the cap.
- **Key**: with a key set, every request needs ``Authorization: Bearer KEY`` (compared in constant time).
- **Origin**: a browser page of another origin is refused unless ``--cors`` lists it (``cors.py`` then answers
  its preflight). Programs (the openai SDK, curl, Open WebUI's server) send no ``Origin`` and are not affected.
"""
from __future__ import annotations

import hmac
import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from demos.api.errors import body, described
from demos.core import files

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised into the route that reads a body once the body passes the cap."""


def too_large_message(limit: int) -> str:
    return (f"the request body is over the {files.megabytes(limit)} this server accepts (settings.max_upload_mb in "
            "models.yaml): send a smaller file or image")


class Gate:
    """ASGI middleware of the ``/v1`` app. ``limit`` in bytes; ``key`` None: no key needed; ``origins``: the
    browser origins ``--cors`` allows (besides the page's own)."""

    def __init__(self, app: ASGIApp, limit: int, key: str | None, origins: tuple[str, ...] = ()) -> None:
        self.app, self.limit, self.key, self.origins = app, limit, key, origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _send_json(send, *refusal)
            return
        started = False
        received = 0

        async def counted() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, body(too_large_message(self.limit), param="body", code="too-large"))
        except Exception as exc:  # noqa: BLE001 - the one place a /v1 failure becomes a response (and a log entry)
            status, payload = described(exc, f"{scope.get('method')} {scope['path']}")
            if not started:
                await _send_json(send, status, payload)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        origin = headers.get("origin")
        if origin and origin not in self.origins and urlsplit(origin).netloc != headers.get("host"):
            return 403, body(f"requests from web pages of another origin ({origin}) are refused; start the app with "
                             f"--cors {origin} to allow them", code="cors")
        if self.key is not None and scope.get("method") != "OPTIONS":
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.key.encode()):
                what = "no API key" if not given else "a wrong API key"
                return 401, body(f"the request has {what}: send the header 'Authorization: Bearer <key>' with the "
                                 "key the app was started with (--api-key or OV_DEMOS_API_KEY)",
                                 code="invalid_api_key")
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limit:
            return 413, body(too_large_message(self.limit), param="body", code="too-large")
        return None


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
