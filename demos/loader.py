"""From a catalog source to a local folder a pipeline can open: download, export, convert, cache.

- Hub repos go through ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_TOKEN``, ``HF_ENDPOINT``), so tqdm bars
  show in a Gradio event that uses ``gr.Progress(track_tqdm=True)``.
- PyTorch checkpoints are exported by ``optimum-cli export openvino`` in a child process: a crash or an
  out-of-memory kill there cannot take the app down, and the command is the one a user would type.
- Exports land in ``<cache>/exports/<name>-<key>/``: written to a temporary folder, renamed into place when
  complete, under a file lock, so concurrent callers export once and a killed export is never mistaken for
  a finished one.
- Offline (``offline=True`` or ``HF_HUB_OFFLINE=1``) uses only what is cached and says how to fetch the rest.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
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

from .catalog import Adapter, Catalog, Draft, Entry, ExportOptions
from . import lora
from .errors import UserError

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
          "speech": "automatic-speech-recognition-with-past", "vision": "image-text-to-text"}


class LoaderError(UserError):
    """A model, draft or adapter could not be made available as models.yaml names it; the message says what to
    change (the entry, the cache, a token, an install)."""


class NotCachedError(LoaderError):
    """Offline, and the thing asked for is not in the cache."""

    kind = "not-cached"


class FetchError(Exception):
    """A download or export that failed on this machine (network, disk, optimum-cli crashing): not something the
    entry can fix, so not a ``UserError``; it is logged with its cause's traceback."""


@dataclass(frozen=True)
class Status:
    """What the cache holds for one source (no network)."""

    kind: str            # "local" | "hub"
    downloaded: bool     # hub snapshot present (always True for local)
    needs_export: bool
    exported: bool
    size_bytes: int | None
    path: Path | None    # the folder a pipeline would open, when ready

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

    def model_dir(self, entry: Entry, device: str, progress: ProgressFn = _no_progress) -> Path:
        """Folder of ``entry``'s OpenVINO model for ``device`` (its variant, if listed), fetched if needed."""
        source, revision, export = entry.source_for(device)
        return self._resolve(source, revision, export, entry.panel, f"model {entry.id!r}", entry.id, progress)

    def draft_dir(self, draft: Draft, progress: ProgressFn = _no_progress, owner: str = "") -> Path:
        """Folder of a draft model; ``owner`` is the id of the chat entry that lists it (for hints)."""
        return self._resolve(draft.source, draft.revision, draft.export, "chat", f"draft {draft.id!r}",
                             owner or draft.id, progress)

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
        """What is cached for a source, without touching the network."""
        local = self.catalog.local_path(source)
        if local is not None:
            folder, downloaded, kind = local, True, "local"
        else:
            folder = self._cached_snapshot(source, revision)
            downloaded, kind = folder is not None, "hub"
        if export is None:
            ready = folder if folder is not None and has_openvino_model(folder) else None
            size = folder_size(folder) if folder is not None else None
            return Status(kind, downloaded, False, False, size, ready)
        exported = self._export_path(folder, source, revision, export, panel) if folder is not None else None
        done = exported is not None and exported.is_dir()
        size = folder_size(exported) if done else (folder_size(folder) if folder is not None else None)
        return Status(kind, downloaded, True, done, size, exported if done else None)

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
                 fetch_ids: str, progress: ProgressFn) -> Path:
        local = self.catalog.local_path(source)
        if local is not None:
            folder = local
        else:
            folder = self._download(source, revision, what, fetch_ids, progress, for_export=export is not None)
        if export is not None:
            return self._export(folder, source, revision, export, panel, what, progress)
        if not has_openvino_model(folder):
            raise LoaderError(f"{what}: {source} holds no OpenVINO model (*.xml). Add 'export: {{weight_format: "
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
            return cached
        progress(None, f"Downloading {repo_id} from the Hugging Face hub…")
        try:
            path = snapshot_download(repo_id, revision=revision,
                                     ignore_patterns=self._ignore_patterns(repo_id, revision) if for_export else None)
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
                                 f"python app.py --prefetch and copy {self._hub_cache()}.") from None
        except (OSError, httpx.HTTPError) as exc:
            raise FetchError(f"{what}: downloading {repo_id} failed ({type(exc).__name__}: {exc}). Try again; "
                             "files that finished are kept.") from exc
        progress(1.0, f"Downloaded {repo_id}")
        return Path(path)

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
                    "export": export.model_dump(), "task": export.task or _TASKS.get(panel),
                    "optimum-intel": _version("optimum-intel"), "openvino": _version("openvino")}
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        name = "".join(c if c.isalnum() or c in "._-" else "-" for c in source.strip("/").split("/")[-1])[:60]
        return self.cache_dir / "exports" / f"{name}-{export.weight_format}-{key}"

    def _export(self, folder: Path, source: str, revision: str | None, export: ExportOptions, panel: str,
                what: str, progress: ProgressFn) -> Path:
        final = self._export_path(folder, source, revision, export, panel)
        if final.is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if final.is_dir():  # another caller finished it while we waited
                return final
            for stale in final.parent.glob(final.name + ".tmp-*"):  # left by a killed export
                shutil.rmtree(stale, ignore_errors=True)
            tmp = final.parent / f"{final.name}.tmp-{os.getpid()}-{threading.get_ident()}"
            try:
                self._run_export(folder, tmp, export, export.task or _TASKS.get(panel), what, progress)
                for name in _CONFIG_FILES:
                    if (folder / name).is_file() and not (tmp / name).exists():
                        shutil.copy2(folder / name, tmp / name)
                (tmp / "demos-export.json").write_text(json.dumps(
                    {"source": source, "revision": revision, "export": export.model_dump(),
                     "optimum-intel": _version("optimum-intel"), "finished": time.time()}, indent=2))
                tmp.rename(final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _run_export(self, source: Path, target: Path, export: ExportOptions, task: str | None, what: str,
                    progress: ProgressFn) -> None:
        if not _exporter_available():
            raise LoaderError(f"{what} needs an export, and optimum-intel is not installed. Install it with: pip "
                              "install -r requirements-export.txt && pip install --no-deps optimum-intel==2.2.0")
        with self._count_lock:
            self.exports_run += 1
        command = export_command(source, target, export, task)
        progress(None, f"Exporting {what} to OpenVINO ({export.weight_format}); this takes a while the first "
                       "time…")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                preexec_fn=_die_with_parent)
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-25:]
            progress(None, f"Exporting {what}… {time.monotonic() - started:.0f} s")
        if proc.wait() != 0 or not has_openvino_model(target):
            detail = "\n".join(t for t in tail if t.strip())[-2000:]
            raise LoaderError(f"{what}: optimum-intel export failed (exit code {proc.returncode}). Last output:\n"
                              f"{detail}")

    # ----------------------------------------------------------------------------------------------------
    # Adapters

    def _adapter_source(self, adapter: Adapter, progress: ProgressFn, fetch_ids: str) -> Path:
        local = self.catalog.local_path(adapter.source)
        if local is not None:
            path = local / adapter.file if adapter.file else local
            if not path.is_file():
                raise LoaderError(f"LoRA adapter {adapter.id!r}: {path} does not exist.")
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


def export_command(source: Path, target: Path, export: ExportOptions, task: str | None) -> list[str]:
    """The ``optimum-cli export openvino`` command for these options (also shown to users as code)."""
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
    return command + [str(target)]


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


def _die_with_parent() -> None:
    """Child side of fork: get SIGKILL if the app dies, so no orphan keeps exporting into a stale folder."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
