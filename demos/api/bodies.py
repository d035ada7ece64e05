"""Request bodies: JSON read and checked against a pydantic model, every mistake a ``UserError`` naming its field."""
from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from demos.core.errors import UserError

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """A request body: fields OpenAI defines that the suite does not use are accepted and ignored, as its other
    compatible servers do (clients send ``user``, ``metadata`` …); the ones that would change the answer are
    refused by the routes."""

    model_config = ConfigDict(extra="allow")


def parse(model: type[M], raw: bytes) -> M:
    try:
        data = json.loads(raw or b"null")
    except ValueError as exc:
        raise UserError(f"the request body is not valid JSON ({exc.__class__.__name__} at character "
                        f"{getattr(exc, 'pos', '?')}): send a JSON object", param="body") from None
    if not isinstance(data, dict):
        raise UserError("the request body must be a JSON object, e.g. {\"model\": \"…\", …}", param="body")
    return checked(model, data)


def checked(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UserError(f"{where}: {first['msg']}", param=where) from None


async def form(request: Any, file_field: str, what: str, max_files: int, max_fields: int) -> Any:
    """The request's multipart form; a malformed body (Starlette says "Invalid multipart data." through an
    ``HTTPException``, or its parser raises assertion, value or key errors) is a ``UserError`` saying what the route
    expects: ``what`` in the field ``file_field``."""
    from starlette.exceptions import HTTPException
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except (HTTPException, AssertionError, ValueError, KeyError):
        raise UserError(f"the body must be multipart/form-data with {what} in the field {file_field!r}",
                        param="body") from None
