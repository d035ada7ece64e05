"""Keep the server's absolute paths out of the page config sent to visitors on other machines.

On a loopback listener the page is the operator's own, and paths help (Show code that runs as shown, where the
cache is). Beyond loopback (``--host 0.0.0.0``, a Space) the config every visitor downloads would otherwise
disclose the cache folder, the hub cache and where each model lives. The panels' initial values (Show code, the
Models tab's details) are built from real paths, so the config is rewritten once as Gradio builds it: each
known folder becomes a short placeholder. Later replies to events (Show code after a change) keep real paths.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from demos.core.suite import Suite


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.x, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _short(path: Path) -> str:
    parts = path.parts
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else path.name


def replacements(suite: Suite) -> list[tuple[str, str]]:
    """(absolute path, what to show instead), longest first so a folder inside another is replaced whole."""
    from huggingface_hub import constants
    pairs: dict[str, str] = {}
    catalog = suite.catalog
    for entry in catalog.entries():
        sources = [entry.source, *(v.source for v in entry.variants.values()),
                   *(a.source for a in getattr(entry, "adapters", [])),
                   *(d.source for d in getattr(entry, "drafts", []))]
        for source in sources:
            if source is None:  # an entry served by its backend only
                continue
            local = catalog.local_path(source)
            if local is not None:
                pairs[str(local)] = pairs[str(local.resolve())] = _short(local)
    pairs[str(suite.loader.cache_dir)] = pairs[str(suite.loader.cache_dir.resolve())] = "<cache>"
    pairs[str(Path(constants.HF_HUB_CACHE))] = "<hub cache>"
    pairs[str(Path(constants.HF_HOME))] = "<HF_HOME>"
    if catalog.path is not None:
        pairs[str(Path(catalog.path).resolve().parent)] = "<catalog folder>"
    pairs[os.path.expanduser("~")] = "~"
    return sorted(((k, v) for k, v in pairs.items() if len(k) > 1), key=lambda kv: -len(kv[0]))


def scrub(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """``value`` (a JSON-like tree) with every string's known paths replaced."""
    if isinstance(value, str):
        for path, shown in pairs:
            if path in value:
                value = value.replace(path, shown)
        return value
    if isinstance(value, dict):
        if isinstance(value.get("meta"), dict) and value["meta"].get("_type") == "gradio.FileData":
            return value  # a file in Gradio's own upload cache, served to the page by that path: keep it
        return {key: scrub(item, pairs) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, pairs) for item in value]
    if isinstance(value, tuple):
        return tuple(scrub(item, pairs) for item in value)
    return value


def hide_in_config(demo: Any, suite: Suite) -> None:
    """Make ``demo``'s page config (``GET /config`` and the page itself) free of the suite's absolute paths."""
    pairs = replacements(suite)
    build = demo.get_config_file

    def scrubbed_config() -> Any:
        return scrub(build(), pairs)

    demo.get_config_file = scrubbed_config  # Gradio rebuilds the config at launch through this method
    demo.config = scrubbed_config()
