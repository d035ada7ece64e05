"""From a catalog source to a local folder a pipeline can open: download, export, convert, cache.

- Hub repos go through ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_TOKEN``, ``HF_ENDPOINT``), so tqdm bars
  show in a Gradio event that uses ``gr.Progress(track_tqdm=True)``.
- PyTorch checkpoints are exported by ``optimum-cli export openvino`` in a child process: a crash or an
  out-of-memory kill there cannot take the app down, and the command is the one a user would type.
- Exports land in ``<cache>/exports/<name>-<key>/``: written to a temporary folder, renamed into place when
  complete, under a file lock, so concurrent callers export once and a killed export is never mistaken for
  a finished one.
- Offline (``offline=True`` or ``HF_HUB_OFFLINE=1``) uses only what is cached and says how to fetch the rest.
- Caches cannot lie: a finished download or export records its files (``demos.core.manifest``), and every use checks
  them. A snapshot without a record, or with a file missing or changed, is "partly downloaded" (a download killed
  half-way leaves exactly that); an export that no longer matches its record is damaged and is exported again
  by Fetch / ``--prefetch`` (``repair=True``), never handed to OpenVINO.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

from filelock import FileLock

from demos.core.catalog import Adapter, Catalog, Draft, Entry, ExportOptions
from demos.core import lora
from demos.core import manifest
from demos.core.errors import UserError

log = logging.getLogger("demos.core.loader")

ProgressFn = Callable[[float | None, str], None]
"""``progress(fraction or None, message)``: fraction in [0, 1], None when unknown."""

# Files an export never needs: other frameworks' weights and duplicates of the safetensors.
_EXPORT_IGNORE = ["*.h5", "*.msgpack", "*.onnx", "*.onnx_data", "*.ot", "*.gguf", "flax_model*", "tf_model*",
                  "original/*", "*.ckpt", "*.pth", "*.pt"]
# Files optimum-cli may not copy but pipelines read (e.g. LLaVA's image processor under transformers 5).
_CONFIG_FILES = ("preprocessor_config.json", "processor_config.json", "chat_template.json", "chat_template.jinja",
                 "generation_config.json")
# optimum-cli tasks per panel; None lets optimum infer it from the checkpoint.
_TASKS = {"chat": "text-generation-with-past", "image": "text-to-image",
          "speech": "automatic-speech-recognition-with-past", "voice": "text-to-audio", "vision": "image-text-to-text"}
EXPORT_RECORD = "demos-export.json"  # in every export folder: options, versions, and the files it wrote
SNAPSHOT_RECORDS = "demos-manifests"  # in a hub cache repo folder, one <commit>.json per complete snapshot
DOWNLOADING = "downloading"  # in SNAPSHOT_RECORDS while a download of ours runs (removed once it is sealed)


class LoaderError(UserError):
    """A model, draft or adapter could not be made available as models.yaml names it; the message says what to
    change (the entry, the cache, a token, an install)."""


class NotCachedError(LoaderError):
    """Offline, and the thing asked for is not in the cache (or only part of it is)."""

    kind = "not-cached"


class DamagedExportError(LoaderError):
    """An export folder no longer holds what the export wrote; Fetch or ``--prefetch`` exports it again."""

    kind = "not-cached"


class FetchError(Exception):
    """A download or export that failed on this machine (network, disk, optimum-cli crashing): not something the
    entry can fix, so not a ``UserError``; it is logged with its cause's traceback."""


@dataclass(frozen=True)
class Status:
    """What the cache holds for one source (no network)."""

    kind: str            # "local" | "hub"
    downloaded: bool     # complete hub snapshot present (always True for local)
    needs_export: bool
    exported: bool       # a finished export that still matches its record
    size_bytes: int | None
    path: Path | None    # the folder a pipeline would open, when ready
    partial: bool = False        # hub: some files of a snapshot are there, not all (an interrupted download)
    damaged: str | None = None   # export: what no longer matches its record ("openvino_model.bin is missing")
    measured: Path | None = None  # the folder ``size_bytes`` is (or would be) the size of

    @property
    def ready(self) -> bool:
        return self.path is not None


def _no_progress(fraction: float | None, message: str) -> None:
    pass


def folder_size(path: Path) -> int:
    """Bytes under ``path``, following the hub cache's symlinks to their blobs once each."""
    seen, total = set(), 0
    for item in path.rglob("*"):
        try:
            real = item.resolve()
            if real.is_file() and real not in seen:
                seen.add(real)
                total += real.stat().st_size
        except OSError:
            continue
    return total


def has_openvino_model(path: Path) -> bool:
    return any(path.glob("*.xml")) or any(path.glob("*/*.xml"))


class Loader:
    """Resolves catalog sources to local folders. Thread-safe; one instance per app."""

    def __init__(self, catalog: Catalog, cache_dir: Path | None = None, offline: bool | None = None):
        self.catalog = catalog
        self.cache_dir = Path(cache_dir or catalog.cache_path()).expanduser()
        env_offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        self.offline = env_offline if offline is None else offline
        self.exports_run = 0  # exports this process started (tests count them)
        self._count_lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------------
    # Public surface: models, drafts, adapters

    def model_dir(self, entry: Entry, device: str, progress: ProgressFn = _no_progress,
                  repair: bool = False) -> Path:
        """Folder of ``entry``'s OpenVINO model for ``device`` (its variant, if listed), fetched if needed.

        A damaged export raises ``DamagedExportError``; with ``repair`` (Fetch, ``--prefetch``) it is exported
        again instead.
        """
        source, revision, export = entry.source_for(device)
        return self._resolve(source, revision, export, entry.panel, f"model {entry.id!r}", entry.id, progress,
                             repair)

    def draft_dir(self, draft: Draft, progress: ProgressFn = _no_progress, owner: str = "",
                  repair: bool = False) -> Path:
        """Folder of a draft model; ``owner`` is the id of the chat entry that lists it (for hints)."""
        return self._resolve(draft.source, draft.revision, draft.export, "chat", f"draft {draft.id!r}",
                             owner or draft.id, progress, repair)

    def shown_path(self, path: Path) -> str:
        """``path`` as clients may see it: relative to the cache ("exports/…"), the hub cache, or just its name.

        Absolute server paths stay out of replies (the log and Show code keep them).
        """
        for root, prefix in ((self.cache_dir, ""), (Path(self._hub_cache()), "hub cache: ")):
            try:
                return prefix + path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
        return f"the folder {path.name}"

    def adapter_file(self, adapter: Adapter, model_dir: Path | None = None,
                     progress: ProgressFn = _no_progress, owner: str = "") -> Path:
        """The adapter as a ``.safetensors`` GenAI can apply; converted once if its layout needs it.

        With ``model_dir``, an adapter whose modules match no weight of that model is refused.
        """
        path = self._adapter_source(adapter, progress, owner or adapter.id)
        try:
            table = lora.read_table(path)
        except lora.AdapterFormatError as exc:
            raise LoaderError(f"LoRA adapter {adapter.id!r}: {exc}. Replace the file or remove the adapter "
                              "from models.yaml.") from None
        if not lora.is_lora(table):
            raise LoaderError(f"LoRA adapter {adapter.id!r}: {path.name} holds no LoRA tensors (no lora_A/lora_B or "
                              "lora_down/lora_up weights); it is not a LoRA adapter.")
        if lora.needs_conversion(table):
            path = self._converted_adapter(adapter, path, table)
            table = lora.read_table(path)
        if model_dir is not None:
            match = lora.matched_modules(table, model_dir)
            if match.misshapen:
                raise LoaderError(f"LoRA adapter {adapter.id!r} does not fit the model in {model_dir.name}: "
                                  f"{match.misshapen} of its {match.total} modules have other shapes than the "
                                  "model's weights. It was trained for another base model.")
            if match.found == 0:
                raise LoaderError(f"LoRA adapter {adapter.id!r} matches no weight of the model in {model_dir.name} "
                                  f"(0 of its {match.total} modules): it was trained for another base model.")
        return path

    def status(self, source: str, revision: str | None, export: ExportOptions | None, panel: str) -> Status:
        """What is cached for a source and its size on disk, without touching the network."""
        located = self.locate(source, revision, export, panel)
        if located.measured is None:
            return located
        return dataclasses.replace(located, size_bytes=folder_size(located.measured))

    def locate(self, source: str, revision: str | None, export: ExportOptions | None, panel: str) -> Status:
        """What is cached for a source, where, and in which state; no network and no size (``size_bytes`` None).

        The state comes from the records (one ``stat`` per recorded file; a file is hashed only when its mtime
        moved since it was recorded, and the record is then refreshed), so a damaged folder is never "ready".
        """
        local = self.catalog.local_path(source)
        if local is not None:
            folder, downloaded, partial, kind = local, True, False, "local"
        else:
            folder = self._cached_snapshot(source, revision)
            partial = folder is not None and self._snapshot_problem(folder) is not None
            downloaded, kind = folder is not None and not partial, "hub"
        if export is None:
            ready = folder if downloaded and folder is not None and has_openvino_model(folder) else None
            return Status(kind, downloaded, False, False, None, ready, partial, measured=folder)
        exported = self._export_path(folder, source, revision, export, panel) if folder is not None else None
        present = exported is not None and exported.is_dir()
        damaged = self._export_problem(exported) if present and exported is not None else None
        done = present and damaged is None
        return Status(kind, downloaded, True, done, None, exported if done else None, partial, damaged,
                      measured=exported if present else folder)

    def problem(self, folder: Path) -> str | None:
        """None when a folder ``model_dir`` / ``draft_dir`` returned still holds what it held; else what changed.

        As cheap as ``locate`` (stats, no network), for callers that remember folders (``Suite.prepare``).
        """
        if folder.parent == self.cache_dir / "exports":
            return self._export_problem(folder) if folder.is_dir() else f"{folder.name} is missing"
        if folder.parent.name == "snapshots" and folder.parent.parent.parent == Path(self._hub_cache()):
            return self._snapshot_problem(folder) if folder.is_dir() else f"{folder.name} is missing"
        return None if folder.is_dir() and has_openvino_model(folder) else f"{folder.name} holds no OpenVINO model"

    def hub_size(self, source: str, revision: str | None) -> int | None:
        """Total size of a hub repo's files as the hub reports them (network); None offline or on error."""
        if self.offline or self.catalog.local_path(source) is not None:
            return None
        from huggingface_hub import HfApi
        try:
            info = HfApi().model_info(source, revision=revision, files_metadata=True)
        except Exception:  # noqa: BLE001 - a size is a nicety; the fetch reports real errors
            return None
        return sum((s.size or 0) for s in info.siblings or [])

    # ----------------------------------------------------------------------------------------------------
    # Resolution

    def _resolve(self, source: str, revision: str | None, export: ExportOptions | None, panel: str, what: str,
                 fetch_ids: str, progress: ProgressFn, repair: bool = False) -> Path:
        local = self.catalog.local_path(source)
        if local is not None:
            folder = local
        else:
            folder = self._download(source, revision, what, fetch_ids, progress, for_export=export is not None)
        if export is not None:
            return self._export(folder, source, revision, export, panel, what, progress, fetch_ids, repair)
        if not has_openvino_model(folder):
            shown = source if local is None else self.shown_path(local)
            raise LoaderError(f"{what}: {shown} holds no OpenVINO model (*.xml). Add 'export: {{weight_format: "
                              "int8}}' to its entry in models.yaml to convert it with optimum-intel.")
        return folder

    @staticmethod
    def _offline_hint(what: str, source: str, fetch_ids: str) -> str:
        return (f"{what}: {source} is not in the cache and the app is offline. Fetch it once while online: "
                f"python app.py --prefetch {fetch_ids}")

    def _download(self, repo_id: str, revision: str | None, what: str, fetch_ids: str, progress: ProgressFn,
                  for_export: bool = False) -> Path:
        import httpx
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
        if self.offline:
            cached = self._cached_snapshot(repo_id, revision)
            if cached is None:
                raise NotCachedError(self._offline_hint(what, repo_id, fetch_ids))
            problem = self._snapshot_problem(cached)
            if problem is not None:
                raise NotCachedError(f"{what}: the download of {repo_id} did not finish ({problem}) and the app is "
                                     f"offline. Complete it while online: python app.py --prefetch {fetch_ids}")
            return cached
        progress(None, f"Downloading {repo_id} from the Hugging Face hub…")
        ignore = self._ignore_patterns(repo_id, revision) if for_export else None
        marker = _download_marker(self._hub_cache(), repo_id)
        _try_touch(marker)  # until sealed, a snapshot without a record is an interrupted download of ours
        try:
            bars = _download_bars(repo_id, progress)  # "Downloading repo: 3/7 files · 1.2/4.0 MB" as it goes
            path = self._seal_snapshot(Path(snapshot_download(repo_id, revision=revision, ignore_patterns=ignore,
                                                              tqdm_class=bars)),
                                       lambda: Path(snapshot_download(repo_id, revision=revision,
                                                                      ignore_patterns=ignore, tqdm_class=bars)))
        except GatedRepoError:
            raise LoaderError(f"{what}: {repo_id} is gated. Accept its licence on the hub, then set HF_TOKEN to a "
                              "token of that account and restart.") from None
        except RepositoryNotFoundError:
            raise LoaderError(f"{what}: the hub has no repository {repo_id!r} (or it is private: set HF_TOKEN). "
                              "Check the source in models.yaml.") from None
        except RevisionNotFoundError:
            raise LoaderError(f"{what}: {repo_id} has no revision {revision!r}. Check the revision in "
                              "models.yaml.") from None
        except LocalEntryNotFoundError:
            raise NotCachedError(f"{what}: cannot reach the hub to download {repo_id} and it is not cached. Check "
                                 "the network (or HF_ENDPOINT), or fetch it on a connected machine with "
                                 "python app.py --prefetch and copy its hub cache (HF_HOME).") from None
        except (OSError, httpx.HTTPError) as exc:
            raise FetchError(f"{what}: downloading {repo_id} failed ({type(exc).__name__}: {exc}). Try again; "
                             "files that finished are kept.") from exc
        progress(1.0, f"Downloaded {repo_id}")
        return path

    def _seal_snapshot(self, folder: Path, download_again: Callable[[], Path]) -> Path:
        """Record a snapshot ``snapshot_download`` has just completed.

        ``snapshot_download`` trusts any file whose link exists, so files that no longer match an earlier record
        (cut short, changed) are deleted, blob and link, and downloaded again before the new record is written.
        """
        record_path = _snapshot_record(folder)
        record = manifest.read_json(record_path) or {}
        known = record.get("files") if isinstance(record.get("files"), dict) else {}
        present = {name: info for name, info in known.items() if (folder / name).exists()}
        bad = manifest.verify(folder, present).bad if present else ()
        if bad:
            log.warning("re-downloading %s: no longer as downloaded", ", ".join(bad))
            for name in bad:
                link = folder / name
                blob = link.resolve()
                link.unlink(missing_ok=True)
                if blob != link:
                    blob.unlink(missing_ok=True)
            folder = download_again()
        files = manifest.describe(folder, known={k: v for k, v in known.items() if k not in bad}, hint=_lfs_sha256)
        if files != known:
            _try_write(record_path, {"commit": folder.name, "files": files})  # read-only cache: works online only
        (folder.parent.parent / SNAPSHOT_RECORDS / DOWNLOADING).unlink(missing_ok=True)
        return folder

    def _snapshot_problem(self, folder: Path) -> str | None:
        """None when a snapshot holds every file of its record; else what is missing or changed."""
        record_path = _snapshot_record(folder)
        record = manifest.read_json(record_path)
        if record is None or not isinstance(record.get("files"), dict):
            blobs = folder.parent.parent / "blobs"
            if any(blobs.glob("*.incomplete")):
                return "some files are still .incomplete"
            if (record_path.parent / DOWNLOADING).exists():
                return "its download was interrupted"
            # Downloaded by another tool (huggingface-cli, a Space's preload_from_hub): nothing of ours was cut
            # short, so it is whole when every file it links to is there.
            broken = [p.name for p in folder.rglob("*") if p.is_symlink() and not p.exists()]
            return f"{broken[0]} is missing" if broken else None
        verdict = manifest.verify(folder, record["files"])
        if verdict.refreshed is not None:
            _try_write(record_path, {**record, "files": verdict.refreshed})
        return verdict.problem

    def _ignore_patterns(self, repo_id: str, revision: str | None) -> list[str]:
        """Skip .bin weights when the repo also has safetensors: exports read either."""
        from huggingface_hub import HfApi
        try:
            files = HfApi().list_repo_files(repo_id, revision=revision)
        except Exception:  # noqa: BLE001 - snapshot_download reports the real error right after
            return list(_EXPORT_IGNORE)
        if any(f.endswith(".safetensors") for f in files):
            return [*_EXPORT_IGNORE, "*.bin"]
        return list(_EXPORT_IGNORE)

    @staticmethod
    def _hub_cache() -> str:
        from huggingface_hub import constants
        return constants.HF_HUB_CACHE

    def _cached_snapshot(self, repo_id: str, revision: str | None) -> Path | None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
        try:
            path = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            return None
        return path if any(path.iterdir()) else None

    # ----------------------------------------------------------------------------------------------------
    # Export

    def _export_path(self, folder: Path, source: str, revision: str | None, export: ExportOptions,
                     panel: str) -> Path:
        identity = {"source": source, "folder": str(folder.resolve()), "stamp": _folder_stamp(folder),
                    "export": export.model_dump(), "task": export_task(export, panel),
                    "optimum-intel": _version("optimum-intel"), "openvino": _version("openvino")}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        name = "".join(c if c.isalnum() or c in "._-" else "-" for c in source.strip("/").split("/")[-1])[:60]
        return self.cache_dir / "exports" / f"{name}-{export.weight_format}-{key}"

    def _export(self, folder: Path, source: str, revision: str | None, export: ExportOptions, panel: str,
                what: str, progress: ProgressFn, fetch_ids: str = "", repair: bool = False) -> Path:
        final = self._export_path(folder, source, revision, export, panel)
        if final.is_dir() and self._usable_export(final, what, fetch_ids or what, repair):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if final.is_dir():
                if self._usable_export(final, what, fetch_ids or what, repair):  # another caller finished it
                    return final
                _discard(final)
            for stale in [*final.parent.glob(final.name + ".tmp-*"), *final.parent.glob(final.name + ".damaged-*")]:
                shutil.rmtree(stale, ignore_errors=True)  # left by a killed export or a killed repair
            tmp = final.parent / f"{final.name}.tmp-{os.getpid()}-{threading.get_ident()}"
            try:
                self._run_export(folder, tmp, export, export_task(export, panel), what, progress)
                for name in _CONFIG_FILES:
                    if (folder / name).is_file() and not (tmp / name).exists():
                        shutil.copy2(folder / name, tmp / name)
                progress(None, f"Recording what the export of {what} wrote…")
                # Written last, inside the temporary folder: a folder in place always has its record.
                manifest.write_json(tmp / EXPORT_RECORD, {
                    "source": source, "revision": revision, "export": export.model_dump(),
                    "optimum-intel": _version("optimum-intel"), "finished": time.time(),
                    "files": manifest.describe(tmp, exclude={EXPORT_RECORD})})
                tmp.rename(final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _usable_export(self, final: Path, what: str, fetch_ids: str, repair: bool) -> bool:
        """True when ``final`` matches its record; False (export again) when damaged and ``repair``; else raise."""
        problem = self._export_problem(final)
        if problem is None:
            self._adopt_export(final)
            return True
        if repair:
            log.warning("%s: the export in %s is damaged (%s); exporting again", what, final, problem)
            return False
        raise DamagedExportError(f"{what}: the export in {self.shown_path(final)} is damaged ({problem}); press "
                                 f"Fetch in the Models tab or run `python app.py --prefetch {fetch_ids}` to export "
                                 "again.")

    @staticmethod
    def _export_problem(final: Path) -> str | None:
        """None when an export folder holds what its export wrote; else what is missing or changed."""
        record_path = final / EXPORT_RECORD
        record = manifest.read_json(record_path)
        if record is None:
            return f"{EXPORT_RECORD} is missing or unreadable"
        if not isinstance(record.get("files"), dict):
            return None  # written before exports recorded their files: adopted on use (_adopt_export)
        verdict = manifest.verify(final, record["files"])
        if verdict.refreshed is not None:
            _try_write(record_path, {**record, "files": verdict.refreshed})
        return verdict.problem

    @staticmethod
    def _adopt_export(final: Path) -> None:
        """Give an export made before records existed its record now, so later damage is seen."""
        record_path = final / EXPORT_RECORD
        record = manifest.read_json(record_path)
        if record is not None and not isinstance(record.get("files"), dict):
            _try_write(record_path, {**record, "files": manifest.describe(final, exclude={EXPORT_RECORD})})

    def _run_export(self, source: Path, target: Path, export: ExportOptions, task: str | None, what: str,
                    progress: ProgressFn) -> None:
        if not _exporter_available():
            raise LoaderError(f"{what} needs an export, and optimum-intel is not installed. Install it with: pip "
                              "install -r requirements-export.txt && pip install --no-deps optimum-intel==2.2.0")
        with self._count_lock:
            self.exports_run += 1
        vocoder = self._vocoder_dir(export, what, progress) if export.vocoder else None
        command = export_command(source, target, export, task, vocoder)
        progress(None, f"Exporting {what} to OpenVINO ({export.weight_format}); this takes a while the first "
                       "time…")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                preexec_fn=_export_child)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-25:]
            progress(None, f"Exporting {what}… {time.monotonic() - started:.0f} s")
        if proc.wait() != 0 or not has_openvino_model(target):
            detail = "\n".join(t for t in tail if t.strip())[-2000:]
            raise LoaderError(f"{what}: optimum-intel export failed (exit code {proc.returncode}). Last output:\n"
                              f"{detail}")

    def _vocoder_dir(self, export: ExportOptions, what: str, progress: ProgressFn) -> Path:
        """The vocoder of a text-to-speech export as a local folder (the export runs offline): a local source as it
        is, a hub repo downloaded (or found in the cache) like any model."""
        assert export.vocoder is not None
        local = self.catalog.local_path(export.vocoder)
        if local is not None:
            return local
        return self._download(export.vocoder, None, f"the vocoder of {what}", what, progress)

    # ----------------------------------------------------------------------------------------------------
    # Adapters

    def _adapter_source(self, adapter: Adapter, progress: ProgressFn, fetch_ids: str) -> Path:
        local = self.catalog.local_path(adapter.source)
        if local is not None:
            path = local / adapter.file if adapter.file else local
            if not path.is_file():
                raise LoaderError(f"LoRA adapter {adapter.id!r}: {self.shown_path(path)} does not exist.")
            return path
        import httpx
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
        progress(None, f"Downloading LoRA adapter {adapter.id}…")
        try:
            return Path(hf_hub_download(adapter.source, adapter.file or "adapter_model.safetensors",
                                        revision=adapter.revision, local_files_only=self.offline))
        except EntryNotFoundError:
            raise LoaderError(f"LoRA adapter {adapter.id!r}: {adapter.source} has no file {adapter.file!r}. Check "
                              "'file' in models.yaml.") from None
        except RepositoryNotFoundError:
            raise LoaderError(f"LoRA adapter {adapter.id!r}: the hub has no repository {adapter.source!r}.") from None
        except LocalEntryNotFoundError:
            raise NotCachedError(self._offline_hint(f"LoRA adapter {adapter.id!r}", adapter.source,
                                                    fetch_ids)) from None
        except (OSError, httpx.HTTPError) as exc:
            raise FetchError(f"LoRA adapter {adapter.id!r}: downloading {adapter.source} failed "
                             f"({type(exc).__name__}: {exc}). Try again.") from exc

    def _converted_adapter(self, adapter: Adapter, path: Path, table: lora.TensorTable) -> Path:
        stat = path.stat()
        key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
        target = self.cache_dir / "adapters" / f"{adapter.id}-{key}.safetensors"
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.is_file():
                return target
            tmp = target.with_suffix(f".tmp-{os.getpid()}")
            try:
                lora.convert_to_kohya(path, tmp, _peft_alpha(path.parent))
                tmp.rename(target)
            finally:
                tmp.unlink(missing_ok=True)
        return target


def _megabytes(size: float) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _download_bars(repo_id: str, progress: ProgressFn) -> type:
    """A tqdm class for ``snapshot_download(tqdm_class=...)`` that reports its two bars (files fetched, bytes) to
    ``progress`` as one message, 'Downloading REPO: 3/7 files · 1.2/4.0 MB', with the fraction of bytes.

    It prints nothing and reports even where huggingface_hub's own bars are disabled (HF_HUB_DISABLE_PROGRESS_BARS).
    """
    import io

    from tqdm.auto import tqdm

    counts = {"files": [0, 0], "bytes": [0, 0]}
    lock = threading.Lock()

    class Bars(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs.update(disable=False, file=io.StringIO(), mininterval=0.25)
            super().__init__(*args, **kwargs)

        def display(self, msg=None, pos=None):  # called by tqdm on refresh: report instead of printing
            kind = "bytes" if self.unit == "B" else "files"
            with lock:
                counts[kind] = [self.n, self.total or 0]
                (files, of_files), (done, of_bytes) = counts["files"], counts["bytes"]
            parts = [f"{files}/{of_files} files"] if of_files else []
            if of_bytes:
                parts.append(f"{_megabytes(done)}/{_megabytes(of_bytes)}")
            if parts:
                progress(done / of_bytes if of_bytes else None, f"Downloading {repo_id}: {' · '.join(parts)}")
            return True

    return Bars


def export_task(export: ExportOptions, panel: str) -> str | None:
    """The optimum-intel task of an export: the entry's own, else the panel's."""
    return export.task or _TASKS.get(panel)


def export_command(source: Path, target: Path, export: ExportOptions, task: str | None,
                   vocoder: Path | None = None) -> list[str]:
    """The ``optimum-cli export openvino`` command for these options (also shown to users as code); ``vocoder``: the
    local folder of ``export.vocoder`` (default: the source as the catalog names it)."""
    command = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(source),
               "--weight-format", export.weight_format]
    if task:
        command += ["--task", task]
    if export.group_size is not None:
        command += ["--group-size", str(export.group_size)]
    if export.ratio is not None:
        command += ["--ratio", str(export.ratio)]
    if export.sym:
        command += ["--sym"]
    if export.vocoder:
        command += ["--model-kwargs", json.dumps({"vocoder": str(vocoder or export.vocoder)})]
    return command + [str(target)]


def _snapshot_record(snapshot: Path) -> Path:
    """Where the record of a hub snapshot lives: beside ``snapshots/`` in its repo's cache folder, so it moves
    and is deleted with the hub cache (``hf cache`` tools ignore folders they do not know)."""
    return snapshot.parent.parent / SNAPSHOT_RECORDS / f"{snapshot.name}.json"


def _download_marker(hub_cache: str, repo_id: str) -> Path:
    """The file that says a download of ``repo_id`` by this app started and has not been sealed yet."""
    from huggingface_hub.file_download import repo_folder_name
    return Path(hub_cache) / repo_folder_name(repo_id=repo_id, repo_type="model") / SNAPSHOT_RECORDS / DOWNLOADING


def _try_touch(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:  # a read-only cache: downloads fail anyway, with their own message
        log.info("cannot mark %s: %s", path, exc)


def _lfs_sha256(link: Path) -> str | None:
    """The sha256 of a hub cache file whose blob is named by it (LFS files); None for git blobs (sha1 names)."""
    name = link.resolve().name
    return name if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else None


def _try_write(path: Path, data: dict) -> None:
    """Refresh a record if the cache is writable; a read-only cache is only checked a little slower."""
    try:
        manifest.write_json(path, data)
    except OSError as exc:
        log.info("cannot refresh %s: %s", path, exc)


def _discard(folder: Path) -> None:
    """Move a damaged folder out of the way first (one rename), so no reader sees it half deleted."""
    aside = folder.parent / f"{folder.name}.damaged-{os.getpid()}-{threading.get_ident()}"
    folder.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)


def _peft_alpha(folder: Path) -> float | None:
    """peft's lora_alpha from an adapter_config.json beside the weights, if there is one."""
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
        return float(config["lora_alpha"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _folder_stamp(folder: Path) -> str:
    """Changes when the checkpoint's files change (sizes and modification times of the top level)."""
    parts = []
    for item in sorted(folder.iterdir()):
        try:
            stat = item.stat()
        except OSError:
            continue
        parts.append(f"{item.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _exporter_available() -> bool:
    return _version("optimum-intel") != "absent"


EXPORT_NICENESS = 10
"""An export runs at this lower CPU priority: it is a background load, and the answers of models that are already
loaded must not wait for it (DESIGN §5) even on a machine with few cores."""


def _export_child() -> None:
    """Child side of fork for an export: dies with the app, and yields the CPU to the app's requests."""
    _die_with_parent()
    try:
        os.nice(EXPORT_NICENESS)
    except OSError:
        pass


def _die_with_parent() -> None:
    """Child side of fork: get SIGKILL if the app dies, so no orphan keeps exporting into a stale folder."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
