"""What users send the Vision panel, checked and turned into model turns.

Both the UI and ``/ask_image`` describe a conversation as user turns (text plus image files) and replies. Here
files are accepted only as Gradio ``FileData`` of uploads (in Gradio's upload folder, so a client cannot make the
server read an arbitrary path) or as ``data:image/...;base64`` URLs; a chat history in the
messages format (Gradio's Chatbot or OpenAI-style parts) is folded into turns; and images are prepared (oriented,
RGB, scaled to the model's budget) once and remembered, since every question sends the earlier images again.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demos.core import files

from demos.core import images as images_in
from demos.core import video as video_in
from demos.core.errors import TooLarge, UserError, check_text
from demos.core.images import Budget, ImageError
from demos.ui.uploads import checked_upload, refusal
from demos.panels.vision.engine import ImageIn, Turn, VideoIn

_CACHE = images_in.PreparedCache()
_VIDEOS = video_in.FramesCache()
DEFAULT_FRAMES = 8
_DATA_URL_USE = "vision-uploads"  # the subfolder of the app's private temp folder for data-URL images


@dataclass(frozen=True)
class FileRef:
    """An image file the server may read, and the name to show for it."""

    path: str
    name: str


@dataclass(frozen=True)
class ChatTurn:
    """One user message (text + image files) and its reply, as the panel keeps the conversation."""

    text: str
    files: tuple[FileRef, ...] = ()
    reply: str | None = None
    stopped: bool = False
    videos: tuple[FileRef, ...] = ()
    frames: int = DEFAULT_FRAMES  # frames sampled from each of this turn's videos
    strip: str | None = None      # the sampled frames side by side (the UI shows it under the question)
    caption: str = ""             # what was sampled: "clip.mp4 · 8 of 40 frames · 4.0 s"


# -------------------------------------------------------------------------------------------------------------
# Files


def file_ref(value: Any, what: str = "image") -> FileRef | None:
    """A ``FileRef`` from a Gradio ``FileData`` dict of an upload (a file in Gradio's upload folder) or a
    ``data:image/…`` URL; ``None`` for nothing. Anything else is a ``ValueError`` that says how to send a file."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, FileRef):
        return value
    if isinstance(value, dict) and "file" in value and "path" not in value:  # Chatbot's {"type": "file", "file": …}
        value = value["file"]
    if isinstance(value, dict) and value.get("path"):
        meta = value.get("meta") or {}
        if meta.get("_type") != "gradio.FileData":
            raise UserError(f"{what}: send files with gradio_client.handle_file(path) (a FileData with "
                            "meta._type 'gradio.FileData'), or as a data:image/...;base64 URL", param=what)
        path = checked_upload(value["path"], what)  # Gradio checked it too; this keeps the rule in one place
        return FileRef(path, str(value.get("orig_name") or Path(path).name))
    if isinstance(value, str) and value.startswith("data:"):
        return _data_url(value, what)
    if isinstance(value, str):  # a path: the same refusal whether or not it exists
        raise UserError(refusal(what), param=what)
    raise UserError(f"{what}: expected an image file (gradio_client.handle_file(path)) or a data:image/...;base64 "
                    f"URL, got {type(value).__name__}", param=what)


def _data_url(url: str, what: str) -> FileRef:
    header, _, payload = url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise UserError(f"{what}: a data URL must look like data:image/png;base64,<data>", param=what)
    _check_data_url_size(len(payload) * 3 // 4, what)  # before decoding: a refused payload is never written
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{what}: the data URL is not valid base64", param=what) from None
    name = hashlib.blake2b(data, digest_size=16).hexdigest()
    subtype = header[len("data:image/"):].split(";")[0].lower()
    extension = subtype if re.fullmatch(r"[a-z0-9+.-]{1,10}", subtype) else "img"  # it becomes part of a path
    folder = files.folder(_DATA_URL_USE)
    files.sweep(folder)  # named by content, so a swept image that is sent again is simply written again
    path = folder / f"{name}.{extension}"
    if not path.exists():
        files.write_atomic(path, data)
        files.note_written(path)  # removed again if this request is refused
    return FileRef(str(path), f"image.{path.suffix.lstrip('.')}")


def _check_data_url_size(size: int, what: str) -> None:
    limit = files.limits().image_mb
    if size > limit * files.MB:
        raise TooLarge(f"{what}: the image in the data URL is {files.megabytes(size)}; the Vision panel takes "
                       f"images up to {limit:g} MB: scale it down or send it as JPEG", param=what)


def check_files(files: list[FileRef] | tuple[FileRef, ...]) -> None:
    """Open each file's header (nothing decoded): not-an-image and too-large are reported before any model work."""
    for ref in files:
        image, _ = images_in.open_image(ref.path, ref.name)
        image.close()


@functools.lru_cache(maxsize=512)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return images_in.digest(path)


def prepared(ref: FileRef, budget: Budget) -> ImageIn:
    """The model-ready image for ``ref`` (decoded once per file and budget)."""
    try:
        stat = os.stat(ref.path)
    except FileNotFoundError:
        raise ImageError(f"{ref.name} is no longer on the server: attach it again") from None
    image = _CACHE.get(ref.path, budget, ref.name)
    return ImageIn(image.array, _digest(ref.path, stat.st_size, stat.st_mtime_ns), ref.name, image.seconds)


def is_video(ref: FileRef, gif_videos: bool = True) -> bool:
    """A video file by its name; a GIF only when it is animated (a still GIF stays an image) and ``gif_videos``
    (the entry takes video: for the others an animated GIF stays an image, its first frame). A GIF that PIL
    cannot open goes the video way, whose message says it is unreadable."""
    suffix = Path(ref.name).suffix.lower() or Path(ref.path).suffix.lower()
    if suffix != ".gif":
        return suffix in video_in.SUFFIXES
    if not gif_videos:
        return False
    try:
        from PIL import Image
        with Image.open(ref.path) as image:
            return getattr(image, "n_frames", 1) > 1
    except Exception:  # noqa: BLE001 - any unreadable GIF: the video decoder words the refusal
        return True


def split_files(refs: list[FileRef], gif_videos: bool = True) -> tuple[list[FileRef], list[FileRef]]:
    """(images, videos) of a message's attachments; animated GIFs are videos only with ``gif_videos``."""
    videos = [ref for ref in refs if is_video(ref, gif_videos)]
    return [ref for ref in refs if ref not in videos], videos


@functools.lru_cache(maxsize=256)
def _probe(path: str, size: int, mtime_ns: int, name: str, max_seconds: float) -> video_in.Probe:
    return video_in.probe(path, name, max_seconds)


def probe_video(ref: FileRef, max_seconds: float) -> video_in.Probe:
    """What the video holds (packets counted, nothing decoded); ``VideoError`` for a video that cannot be used."""
    try:
        stat = os.stat(ref.path)
    except FileNotFoundError:
        raise video_in.VideoError(f"{ref.name} is no longer on the server: attach it again") from None
    return _probe(ref.path, stat.st_size, stat.st_mtime_ns, ref.name, float(max_seconds))


def prepared_video(ref: FileRef, frames: int, budget: Budget, max_seconds: float | None = None) -> VideoIn:
    """The sampled frames of ``ref`` for the model (decoded once per file, frame count and budget)."""
    sampled, _ = _VIDEOS.get(ref.path, ref.name, frames, budget, max_seconds)
    stat = os.stat(ref.path)
    digest = f"{_video_digest(ref.path, stat.st_size, stat.st_mtime_ns)}:{','.join(map(str, sampled.indices))}:" \
             f"{sampled.array.shape[1]}x{sampled.array.shape[2]}"
    # The decode time of the sample, also when it comes from the cache (the UI samples while checking the message).
    return VideoIn(sampled.array, digest, ref.name, sampled.indices, sampled.total, sampled.decode_seconds)


@functools.lru_cache(maxsize=256)
def _video_digest(path: str, size: int, mtime_ns: int) -> str:
    return video_in.digest(path)


def model_turns(chat: list[ChatTurn], budget: Budget, max_seconds: float | None = None) -> list[Turn]:
    """The conversation as ``vision_chat.Turn``s, images and video frames prepared for the model."""
    return [Turn(t.text, tuple(prepared(f, budget) for f in t.files), t.reply, t.stopped,
                 tuple(prepared_video(v, t.frames, budget, max_seconds) for v in t.videos)) for t in chat]


# -------------------------------------------------------------------------------------------------------------
# A history in the messages format


@dataclass
class _Pending:
    texts: list[str] = field(default_factory=list)
    files: list[FileRef] = field(default_factory=list)


def history_turns(history: list[Any] | None, gif_videos: bool = True) -> list[ChatTurn]:
    """Fold ``[{role, content}, ...]`` into completed turns.

    ``content`` is a string or a list of parts: strings, ``{"type": "text", "text"}``, files (``FileData``,
    ``{"type": "file", "file": FileData}``, ``{"type": "image", "image": ...}``, ``{"type": "image_url",
    "image_url": {"url": ...}}``). Consecutive user messages form one turn (Gradio's Chatbot puts each file in
    its own message); messages with ``metadata`` (collapsible notes) are skipped. Animated GIFs are videos only
    with ``gif_videos`` (``answering.gif_videos``: the entry takes video), images otherwise.
    """
    turns: list[ChatTurn] = []
    pending: _Pending | None = None
    replies: list[str] = []
    for index, message in enumerate(history or []):
        where = f"history[{index}]"
        if not isinstance(message, dict) or "role" not in message:
            raise UserError(f"{where}: each message must be a dict with 'role' and 'content'", param="history")
        if message.get("metadata"):
            continue
        role = message["role"]
        texts, files = _parts(message.get("content"), where)
        for text in texts:
            check_text(text, f"{where}.content")
        if role == "user":
            if replies:
                turns.append(_turn(pending, replies, gif_videos))
                pending, replies = None, []
            pending = pending or _Pending()
            pending.texts += texts
            pending.files += files
        elif role == "assistant":
            if pending is None:
                raise UserError(f"{where}: an assistant message must follow a user message", param="history")
            if files:
                raise UserError(f"{where}: assistant messages hold text only", param="history")
            replies += texts
        else:
            raise UserError(f"{where}: role {role!r} is not supported; use 'user' and 'assistant'", param="history")
    if pending is not None:
        if not replies:
            raise UserError("history must end with the assistant's reply: put the new question in 'question'",
                            param="history")
        turns.append(_turn(pending, replies, gif_videos))
    return turns


def _turn(pending: _Pending | None, replies: list[str], gif_videos: bool) -> ChatTurn:
    assert pending is not None
    images, videos = split_files(pending.files, gif_videos)
    return ChatTurn("\n".join(pending.texts), tuple(images), "".join(replies), videos=tuple(videos))


def _parts(content: Any, where: str) -> tuple[list[str], list[FileRef]]:
    items = content if isinstance(content, list) else [content]
    texts: list[str] = []
    files: list[FileRef] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str) and not item.startswith("data:"):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text", "")))
        elif isinstance(item, dict) and item.get("type") == "image_url":
            url = item.get("image_url")
            files.append(file_ref(url.get("url") if isinstance(url, dict) else url, where))
        elif isinstance(item, dict) and item.get("type") == "image":
            files.append(file_ref(item.get("image") or item.get("file") or item.get("url"), where))
        elif isinstance(item, dict) and item.get("type") == "video":
            files.append(file_ref(item.get("video") or item.get("file") or item.get("url"), where))
        else:
            ref = file_ref(item, where)
            if ref:
                files.append(ref)
    return texts, [f for f in files if f is not None]
