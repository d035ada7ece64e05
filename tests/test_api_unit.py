"""The ``/v1`` plumbing on its own (no models): the gate (key, origin, body cap, error shape), the key from the
environment, and a request without streaming whose client goes away."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from demos.api.gate import Gate
from demos.core.errors import UserError

pytestmark = pytest.mark.unit


def _client(key: str | None = "k", limit: int = 1000) -> tuple[TestClient, list[int]]:
    read: list[int] = []

    async def echo(request: Request) -> JSONResponse:
        data = await request.body()
        read.append(len(data))
        if data == b"user-error":
            raise UserError("change this", param="thing")
        if data == b"bug":
            raise RuntimeError("secret internals")
        return JSONResponse({"got": len(data)})

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    app.add_middleware(Gate, limit=limit, key=key)
    return TestClient(app, raise_server_exceptions=False, base_url="http://testserver"), read


def test_key_origin_and_errors() -> None:
    client, _ = _client()
    assert client.post("/echo", content=b"hi").status_code == 401
    assert client.post("/echo", content=b"hi", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = {"Authorization": "Bearer k"}
    assert client.post("/echo", content=b"hi", headers=ok).json() == {"got": 2}
    assert client.post("/echo", content=b"hi", headers={**ok, "Origin": "http://testserver"}).status_code == 200
    foreign = client.post("/echo", content=b"hi", headers={**ok, "Origin": "http://elsewhere"})
    assert foreign.status_code == 403 and "--cors http://elsewhere" in foreign.json()["error"]["message"]
    user = client.post("/echo", content=b"user-error", headers=ok)
    assert user.status_code == 400 and user.json()["error"] == {"message": "change this", "type": "invalid_request_error",
                                                                 "param": "thing", "code": "bad-input"}
    bug = client.post("/echo", content=b"bug", headers=ok)
    assert bug.status_code == 500 and "secret" not in bug.text and bug.json()["error"]["type"] == "server_error"


def test_a_body_over_the_cap_is_refused_before_it_is_read() -> None:
    client, read = _client(key=None, limit=10)
    response = client.post("/echo", content=b"x" * 11)
    assert response.status_code == 413 and read == []  # refused on Content-Length alone
    chunked = client.post("/echo", content=iter([b"x" * 6, b"x" * 6]))  # no Content-Length
    assert chunked.status_code == 413 and read == []
    assert client.post("/echo", content=b"x" * 10).json() == {"got": 10}


def test_the_api_key_comes_from_the_environment(monkeypatch) -> None:
    import app
    monkeypatch.setenv("OV_DEMOS_API_KEY", "from-env")
    assert app.parse_args([]).api_key == "from-env"
    assert app.parse_args(["--api-key", "given"]).api_key == "given"
    monkeypatch.delenv("OV_DEMOS_API_KEY")
    assert app.parse_args([]).api_key is None


def test_a_request_whose_client_goes_away_stops_its_job() -> None:
    """``streaming.finish`` watches the connection while the work runs in a thread, and stops the job's control."""
    from demos.api.streaming import finish
    from demos.core import serving

    class Gone:  # a Starlette request whose client disconnects 0.3 s in
        def __init__(self) -> None:
            self.since = time.monotonic()

        async def is_disconnected(self) -> bool:
            return time.monotonic() - self.since > 0.3

    control = serving.Control()
    worker: list[str] = []

    def work() -> bool:  # a generation that runs until stopped (at most 20 s)
        worker.append(threading.current_thread().name)
        return control.event.wait(20)

    started = time.monotonic()
    stopped = asyncio.run(finish(Gone(), control, work))  # type: ignore[arg-type]
    assert stopped and control.stopped and time.monotonic() - started < 10
    assert worker and worker[0] != threading.current_thread().name, "the work ran off the event loop"
