"""``GET /v1/models``: every catalog entry with its panel and the routes that serve it; and the one check every
route makes on ``model``."""
from __future__ import annotations

from typing import Any

from demos.core.catalog import Entry
from demos.core.errors import UserError
from demos.core.suite import Suite

ROUTES: dict[str, tuple[str, ...]] = {
    "chat": ("/v1/chat/completions",),
    "vision": ("/v1/chat/completions",),
    "image": ("/v1/images/generations", "/v1/images/edits"),
    "speech": ("/v1/audio/transcriptions", "/v1/audio/translations"),
    "voice": ("/v1/audio/speech",),
}


def listing(suite: Suite) -> dict[str, Any]:
    return {"object": "list", "data": [describe(entry) for entry in suite.catalog.entries()]}


def describe(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "object": "model", "created": 0, "owned_by": entry.panel, "panel": entry.panel,
            "label": entry.title, "routes": list(ROUTES.get(entry.panel, ()))}


def entry_for(suite: Suite, model: str | None, route: str) -> Entry:
    """The catalog entry ``model`` names, if ``route`` serves its panel; ``UserError`` listing the valid ids."""
    panels = [panel for panel, routes in ROUTES.items() if route in routes]
    valid = ", ".join(e.id for panel in panels for e in suite.catalog.entries(panel)) or "none in this catalog"
    if not model:
        raise UserError(f"model is missing: name a catalog entry; {route} serves {valid}", param="model")
    entry = suite.catalog.entry(model)  # UnknownId (404) listing every id
    if entry.panel not in panels:
        raise UserError(f"model {model!r} is {_a(entry.panel)} model; {route} serves {' and '.join(panels)} models: "
                        f"{valid}", param="model", kind="unknown-id")
    return entry


def _a(panel: str) -> str:
    return f"an {panel}" if panel[0] in "aeiou" else f"a {panel}"
