"""Where a Show-code snippet finds its model: one resolver for every panel. No Gradio here.

- a local folder, or an export the app already made here: that folder (the very one the app opens);
- a hub repo already in OpenVINO form: downloaded first, with ``huggingface_hub.snapshot_download`` in Python and
  ``hf download`` for C++ (which has no hub client) — also when the app has it cached: the snippet then works on
  any machine, and on this one it resolves to the same cached snapshot;
- a checkpoint that needs an export the app has not run yet: the ``optimum-cli`` line the loader itself would run
  (``loader.export_command``), to run once first, and the folder it writes.

Every path is written with ``snippets`` literals, so quotes, backslashes and non-ASCII names stay valid code.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from demos.core.catalog import Draft, Entry, ExportOptions
from demos.core.loader import export_command, export_task
from demos.core.snippets import comment_text, cpp_string, py_string
from demos.core.suite import Suite


@dataclass(frozen=True)
class ModelRef:
    """A model folder as a snippet spells it."""

    python: str                         # a Python expression for the folder
    cpp: str                            # a C++ string literal for the folder
    python_setup: tuple[str, ...] = ()  # lines at the top of the script: the hub import, or what to run once first
    cpp_setup: tuple[str, ...] = ()     # comment lines: what to run before the C++ program


def model_reference(suite: Suite, entry: Entry, device: str) -> ModelRef:
    """How a snippet reaches ``entry``'s model on ``device`` (its variant, if the entry lists one). No network."""
    device = device or suite.default_device
    source, revision, export = entry.source_for(device)
    return reference(source, revision, export, entry.panel, suite.catalog.local_path(source),
                     suite.locate(entry, device).path)


def draft_reference(suite: Suite, draft: Draft) -> ModelRef:
    """The same for a chat entry's draft model."""
    ready = suite.loader.locate(draft.source, draft.revision, draft.export, "chat").path
    return reference(draft.source, draft.revision, draft.export, "chat", suite.catalog.local_path(draft.source),
                     ready)


def reference(source: str, revision: str | None, export: ExportOptions | None, panel: str, local: Path | None,
              ready: Path | None) -> ModelRef:
    """The resolver itself: ``local`` is the source as an existing local path (None for a hub repo), ``ready`` the
    folder the loader would open now (None until it is downloaded or exported)."""
    if export is not None:
        return folder(ready) if ready is not None else _export(source, revision, export, panel, local)
    if local is not None:
        return folder(local)
    return _hub(source, revision)


def folder(path: Path) -> ModelRef:
    """A folder (or file) on this machine."""
    return ModelRef(py_string(str(path)), cpp_string(str(path)))


def file_reference(local: Path | None, repo: str, file: str) -> ModelRef:
    """A single file, such as a LoRA adapter: its local path, or ``file`` of a hub repo (``hf_hub_download`` in
    Python; ``hf download`` first for C++)."""
    if local is not None:
        return folder(local)
    name = _folder_name(repo)
    download = shlex.join(["hf", "download", repo, file, "--local-dir", name])
    return ModelRef(f"hf_hub_download({py_string(repo)}, {py_string(file)})", cpp_string(f"{name}/{file}"),
                    ("from huggingface_hub import hf_hub_download",), (f"// {comment_text(download)}",))


def _hub(repo: str, revision: str | None) -> ModelRef:
    local = _folder_name(repo)
    keyword = f", revision={py_string(revision)}" if revision else ""
    return ModelRef(f"snapshot_download({py_string(repo)}{keyword})", cpp_string(local),
                    ("from huggingface_hub import snapshot_download",), (f"// {_hf_download(repo, revision)}",))


def _export(source: str, revision: str | None, export: ExportOptions, panel: str, local: Path | None) -> ModelRef:
    """The export still to run: the loader's own command, from the hub repo (downloaded first when a revision is
    pinned: optimum-cli has no revision option) or the local checkpoint."""
    target = _folder_name(source) + "-ov"
    first: list[str] = []
    model = str(local) if local is not None else source
    if local is None and revision:
        model = _folder_name(source)
        first.append(_hf_download(source, revision))
    command = export_command(Path(model), Path(target), export, export_task(export, panel))
    first.append(shlex.join(["optimum-cli", *command[command.index("export"):]]))
    lines = [("first, once: " if i == 0 else "then: ") + comment_text(line) for i, line in enumerate(first)]
    return ModelRef(py_string(target), cpp_string(target), tuple(f"# {line}" for line in lines),
                    tuple(f"// {line}" for line in lines))


def _hf_download(repo: str, revision: str | None) -> str:
    pinned = ["--revision", revision] if revision else []
    return shlex.join(["hf", "download", repo, *pinned, "--local-dir", _folder_name(repo)])


def _folder_name(source: str) -> str:
    """A folder name for a download or an export, after the repo or folder name (safe to type in a shell)."""
    name = source.strip("/").split("/")[-1]
    return "".join(c if c.isalnum() or c in "._-" or c == "_" else "-" for c in name)[:60] or "model"
