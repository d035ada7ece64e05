"""Errors as OpenAI's API shapes them: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status for
what the caller can fix (a ``UserError`` of the core, DESIGN §4) and 500 for a failure of the server, whose body
never carries a traceback or an exception's own text (the log has them)."""
from __future__ import annotations

import logging
from typing import Any

from demos.core.errors import TooLarge, UnknownId, UserError

log = logging.getLogger("demos.api")

FAILED = "the server failed to answer this request; the app's log has the details"


class ApiError(Exception):
    """A refusal with its HTTP status, raised by the routes themselves (auth, a route that is not there yet…)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def body(message: str, kind: str = "invalid_request_error", param: str | None = None,
         code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def status_of(exc: UserError) -> int:
    """404 for a model that is not in the catalog (as OpenAI answers), 413 for a payload over a limit, 502 for a model
    server that failed, else 400."""
    if isinstance(exc, UnknownId) and exc.param == "model":
        return 404
    if isinstance(exc, TooLarge):
        return 413
    if exc.kind == "backend":  # the model server behind the entry failed (demos.core.remote): a bad gateway
        return 502
    return 400


def described(exc: BaseException, what: str) -> tuple[int, dict[str, Any]]:
    """(status, body) for ``exc`` raised while serving ``what``; a failure of the server is logged with its traceback
    here, a user error gets one log line."""
    if isinstance(exc, ApiError):
        log.info("%s refused: %s", what, exc.message)
        return exc.status, body(exc.message, exc.kind, exc.param, exc.code)
    if isinstance(exc, UserError):
        status = status_of(exc)
        log.info("%s refused (%d): %s", what, status, exc)
        code = "model_not_found" if status == 404 else exc.kind
        return status, body(str(exc), "invalid_request_error", exc.param, code)
    log.error("%s failed", what, exc_info=exc)
    return 500, body(FAILED, "server_error", None, "internal_error")
