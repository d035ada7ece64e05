"""Blocking engine calls from async routes: off the event loop, stopped when the client goes away.

The panels' engines are generators that block (a prefill, a wait for the pipeline) and take a ``serving.Control``.
``finish`` runs one to its end in a worker thread while watching the connection; ``relay`` hands its items to an
async consumer (a streamed response) one by one. Either way a client that disconnects stops its job: the control
is stopped and the generator closed, and the engine's streamer then ends generation at the next token.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from demos.core import serving

T = TypeVar("T")
WATCH_S = 0.25  # how often a request without streaming looks at its connection


async def finish(request: Request, control: serving.Control, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread; stops ``control`` if the client disconnects before it returns."""
    task = asyncio.ensure_future(run_in_threadpool(work))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=WATCH_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                control.stop()
    finally:
        if not task.done():  # cancelled (server shutting down): the job still ends at its next token
            control.stop()


_END = object()


def _next(items: Iterator[Any]) -> Any:
    return next(items, _END)


async def relay(items: Iterator[T], control: serving.Control) -> AsyncIterator[T]:
    """Each item of the blocking iterator ``items``, fetched in a worker thread. Leaving early (the response was
    cancelled because the client went away) stops ``control`` and closes ``items``."""
    try:
        while True:
            item = await run_in_threadpool(_next, items)
            if item is _END:
                return
            yield item
    finally:
        control.stop()
        close = getattr(items, "close", None)
        if close is not None:
            close()


def sse(data: Any) -> str:
    """One server-sent event with a JSON payload (or the ``[DONE]`` marker)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"
