"""Speaker embeddings (the voices of a text-to-speech entry): found, read and checked. No Gradio here.

SpeechT5 speaks in the voice of a float32 ``[1, 512]`` x-vector. genai's samples store one as 2048 raw bytes (a
``.bin``); numpy users save ``.npy``. Both are read here; anything else (another size, another dtype, NaN) is
refused with a message that says what the file should be, before the pipeline sees it (genai would answer with a
shape error, or speak noise).
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from demos.core.catalog import Voice, VoiceEntry
from demos.core.errors import UnknownId, UserError
from demos.core.suite import Suite

EMBEDDING_SIZE = 512
DEFAULT = ""  # the pipeline's built-in voice


class VoiceError(UserError):
    """A voice file that is not a float32 [1, 512] speaker embedding."""


def read_embedding(path: Path | str) -> np.ndarray:
    """The speaker embedding in ``path`` as float32 ``[1, 512]``; ``VoiceError`` saying what is wrong otherwise."""
    path = Path(path)
    name = path.name
    try:
        if path.suffix.lower() == ".npy":
            try:
                data = np.load(path, allow_pickle=False)
            except ValueError:
                raise VoiceError(f"voice file {name} is not a plain numpy array (.npy without objects); save the "
                                 "embedding with np.save(path, embedding.astype(np.float32))", param="voice") from None
            if data.dtype != np.float32:
                raise VoiceError(f"voice file {name} holds {data.dtype} values; a speaker embedding is float32: save "
                                 "it with embedding.astype(np.float32)", param="voice")
        else:
            raw = path.read_bytes()
            if len(raw) != EMBEDDING_SIZE * 4:
                raise VoiceError(f"voice file {name} is {len(raw)} bytes; a raw speaker embedding is {EMBEDDING_SIZE} "
                                 f"float32 values ({EMBEDDING_SIZE * 4} bytes), or use a .npy file", param="voice")
            data = np.frombuffer(raw, dtype=np.float32)
    except OSError as exc:
        raise VoiceError(f"voice file {name} cannot be read ({exc.strerror or exc})", param="voice") from None
    if data.size != EMBEDDING_SIZE or data.ndim > 2 or (data.ndim == 2 and data.shape[0] != 1):
        raise VoiceError(f"voice file {name} has shape {list(data.shape)}; a speaker embedding has shape "
                         f"[1, {EMBEDDING_SIZE}] (or [{EMBEDDING_SIZE}])", param="voice")
    if not np.all(np.isfinite(data)):
        raise VoiceError(f"voice file {name} contains NaN or infinite values", param="voice")
    return np.ascontiguousarray(data.reshape(1, EMBEDDING_SIZE), dtype=np.float32)


def find(entry: VoiceEntry, voice_id: str) -> Voice | None:
    """The entry's voice ``voice_id``; None for "" (the built-in voice); ``UnknownId`` listing the valid ones."""
    if voice_id in (DEFAULT, "default"):
        return None
    for voice in entry.voices:
        if voice.id == voice_id:
            return voice
    valid = ", ".join(["'' (the built-in voice)", *(v.id for v in entry.voices)])
    raise UnknownId(f"model {entry.id!r} has no voice {voice_id!r}; its voices: {valid}", param="voice")


def embedding(suite: Suite, entry: VoiceEntry, voice_id: str) -> np.ndarray | None:
    """The speaker embedding of ``voice_id`` (None: the pipeline's built-in voice), fetched from the hub once."""
    voice = find(entry, voice_id)
    if voice is None:
        return None
    return _read_cached(str(_path(suite, voice)))


@functools.lru_cache(maxsize=64)
def _read_cached(path: str) -> np.ndarray:
    array = read_embedding(path)
    array.setflags(write=False)  # shared by every request of this voice
    return array


# Resolved hub files per (source, file, revision, repo_type): hf_hub_download asks the hub for the file's
# current revision on every call, which every /speak or Talk turn would pay. Only successes are kept, so a voice
# fixed on the hub (or fetched once online) is tried again.
_RESOLVED: dict[tuple[str, str, str | None, str], Path] = {}
_RESOLVED_LOCK = threading.Lock()


def _path(suite: Suite, voice: Voice) -> Path:
    local = suite.catalog.local_path(voice.source)
    if local is not None:
        return local / voice.file if voice.file else local
    if not voice.file:
        raise UserError(f"voice {voice.id!r}: give file: <name>.bin for the hub repo {voice.source}", param="voice")
    key = (voice.source, voice.file, voice.revision, voice.repo_type)
    with _RESOLVED_LOCK:
        known = _RESOLVED.get(key)
    if known is not None and known.exists():
        return known
    path = _download(suite, voice)
    with _RESOLVED_LOCK:
        _RESOLVED[key] = path
    return path


def _download(suite: Suite, voice: Voice) -> Path:
    """The voice file from the hub (or its cache); hub failures as ``UserError`` naming the voice and the fix."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    where = f"voice {voice.id!r} ({voice.repo_type} repo {voice.source}, file {voice.file}"
    where += f", revision {voice.revision})" if voice.revision else ")"
    try:
        return Path(hf_hub_download(voice.source, voice.file, revision=voice.revision, repo_type=voice.repo_type,
                                    local_files_only=suite.loader.offline))
    except LocalEntryNotFoundError:  # before EntryNotFoundError, its base class
        raise UserError(f"{where} is not cached and the hub cannot be reached: fetch it once while online",
                        param="voice", kind="not-cached") from None
    except GatedRepoError:  # before RepositoryNotFoundError, its base class
        raise UserError(f"{where}: the repo is gated; accept its terms on the hub and log in (hf auth login), or "
                        "choose another voice", param="voice") from None
    except RepositoryNotFoundError:
        raise UserError(f"{where}: no such repo on the hub (or it is private): check source and repo_type in "
                        "models.yaml", param="voice") from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: the repo has no such revision: check revision in models.yaml",
                        param="voice") from None
    except EntryNotFoundError:
        raise UserError(f"{where}: the repo has no such file: check file in models.yaml", param="voice") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "no"
        raise UserError(f"{where}: the hub answered with HTTP status {status}; try again later, or check the voice "
                        "in models.yaml", param="voice") from None
