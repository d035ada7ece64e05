"""Raw HTTP calls to a launched app's Gradio endpoints, as an attacker or a curl user would make them.

``gradio_client`` checks and rewrites what it sends (files become uploads, types are coerced); these helpers
send exactly the JSON given, so tests can reproduce what a hostile or careless client does.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    """What an endpoint answered: ``event`` is 'complete' or 'error'; ``data`` the parsed payload (or None)."""

    event: str
    data: Any
    events: list[tuple[str, Any]]

    @property
    def message(self) -> str:
        """The error text the client sees ('' when there is none)."""
        if self.event != "error":
            return ""
        if isinstance(self.data, dict):
            return str(self.data.get("message") or self.data.get("error") or self.data)
        return "" if self.data is None else str(self.data)


def post_json(url: str, body: Any, timeout: float = 30) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def call(base_url: str, api_name: str, data: list[Any], timeout: float = 120) -> Outcome:
    """POST ``data`` to ``/gradio_api/call/<api_name>`` and read the event stream to its end."""
    base = base_url.rstrip("/")
    status, body = post_json(f"{base}/gradio_api/call/{api_name}", {"data": data}, timeout)
    if status != 200:
        return Outcome("error", body, [("http", status)])
    event_id = body["event_id"]
    events: list[tuple[str, Any]] = []
    event = ""
    with urllib.request.urlopen(f"{base}/gradio_api/call/{api_name}/{event_id}", timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload
                events.append((event, parsed))
                if event in ("complete", "error"):
                    return Outcome(event, parsed, events)
    last = events[-1] if events else ("", None)
    return Outcome(last[0], last[1], events)


def upload(base_url: str, path: str | Path) -> dict[str, Any]:
    """Upload a file through Gradio's own upload route; return the FileData dict an endpoint accepts."""
    import mimetypes
    import uuid

    path = Path(path)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: {mimetypes.guess_type(path.name)[0] or 'application/octet-stream'}\r\n\r\n").encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{base_url.rstrip('/')}/gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        server_path = json.loads(response.read())[0]
    return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
