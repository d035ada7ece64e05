"""Videos on their way into a visual-language model: frames decoded with PyAV and sampled evenly in time.

A VLM that takes video (Qwen2-VL, Qwen2.5-VL …) wants one ``uint8`` N×H×W×3 RGB array per video
(``VLMPipeline.generate(..., videos=[ov.Tensor(array)])``, DESIGN §10), and a handful of frames, not every one:
``k`` frames at the indices ``round(linspace(0, N - 1, k))`` of the N frames in presentation order, so the first
and the last frame are always in and the rest are spread evenly.

N is counted exactly by reading the packets of the video stream without decoding them (a container's declared
frame count is missing for WebM/MKV and often wrong for GIF). Only the frames needed are then decoded: reading on
through the stream when the wanted frames are close together, seeking to the keyframe before each one when they
are far apart (a ten-minute video costs k short decodes, not eighteen thousand frames). Frames keep the size they
were decoded at unless they are far above the model's pixel budget (``images.Budget``, as for images: genai
resizes every frame itself, so only what it would throw away anyway is scaled here, by FFmpeg's scaler).

Everything the user can get wrong — not a video, a file with no video stream, a single frame, longer than the
limit, a damaged file — is a ``VideoError`` (a ``UserError``) that says what to do instead. No Gradio here.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demos.core.audio import declared_seconds
from demos.core.errors import UserError
from demos.core.images import Budget

SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
"""Files the Vision panel treats as videos (an animated GIF is a video; a still GIF is refused as one frame)."""

SEEK_GAP = 48
"""Wanted frames further apart than this many frames are reached by seeking, closer ones by decoding on: a seek
restarts at a keyframe (typically every 1–10 s), so it only pays across long gaps."""

MIN_FRAMES = 2


class VideoError(UserError):
    """A video that cannot be used, with a message that says what to do about it."""

    def __init__(self, message: str):
        super().__init__(message, param="video")


@dataclass(frozen=True)
class Probe:
    """What a video holds, read from its container and packets (nothing decoded)."""

    frames: int            # frames in presentation order
    seconds: float         # duration
    width: int
    height: int
    codec: str
    pts: tuple[int, ...]   # presentation timestamps of the frames, in order (empty: the stream has none)


@dataclass(frozen=True)
class Frames:
    """The sampled frames of one video, ready for ``videos=``."""

    array: np.ndarray          # k×H×W×3 uint8, C-contiguous
    indices: tuple[int, ...]   # which of the video's frames they are
    total: int                 # frames in the video
    seconds: float             # the video's duration
    decode_seconds: float      # probing + decoding + scaling
    source_size: tuple[int, int]  # (width, height) as stored in the file

    @property
    def count(self) -> int:
        return len(self.indices)

    def times(self) -> list[float]:
        """Where each sampled frame sits in the video, in seconds (evenly spread frames: by index)."""
        step = self.seconds / max(self.total, 1)
        return [index * step for index in self.indices]


def sample_indices(total: int, k: int) -> list[int]:
    """``round(linspace(0, total - 1, k))``: k evenly spread frame indices, first and last included. ``k`` larger
    than ``total`` is lowered to ``total`` (every frame once, none twice)."""
    k = max(1, min(int(k), int(total)))
    return [int(i) for i in np.rint(np.linspace(0, total - 1, k))]


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in SUFFIXES


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _open(path: str | Path, name: str):
    import av
    try:
        return av.open(str(path), metadata_errors="ignore")
    except FileNotFoundError:
        raise VideoError(f"{name} is no longer on the server: attach it again") from None
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise VideoError(f"{name} could not be read as a video: it is damaged or not a video file. Upload an MP4, "
                         "WebM, MOV, MKV or animated GIF") from None


def _stream(container, name: str):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise VideoError(f"{name} has no video stream (it holds {', '.join(kinds)}): upload a file with pictures, "
                         "or use the Speech tab for audio")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads: decoding is most of the cost
    return stream


def _too_long(name: str, seconds: float, limit: float) -> VideoError:
    return VideoError(f"{name} is {_clock(seconds)} long; this model takes videos up to {_clock(limit)} "
                      "(max_video_seconds in models.yaml): trim it or upload a shorter part")


def probe(path: str | Path, name: str, max_seconds: float | None = None) -> Probe:
    """Count the frames of ``path``'s first video stream by its packets; ``VideoError`` for anything unusable.

    A declared duration over ``max_seconds`` is refused before a single packet is read."""
    import av
    with _open(path, name) as container:
        stream = _stream(container, name)
        declared = declared_seconds(container, stream)
        if max_seconds and declared and declared > max_seconds + 0.5:
            raise _too_long(name, declared, max_seconds)
        pts: list[int] = []
        count = 0
        missing_pts = False
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    continue
                count += 1
                if packet.pts is None:
                    missing_pts = True
                else:
                    pts.append(int(packet.pts))
        except av.error.FFmpegError:
            if count == 0:
                raise VideoError(f"{name} could not be read as a video: its data is damaged") from None
        width, height = stream.codec_context.width, stream.codec_context.height
        codec = stream.codec_context.name
        rate = float(stream.average_rate or stream.guessed_rate or 0) or None
        time_base = float(stream.time_base) if stream.time_base else None
    if count == 0:
        raise VideoError(f"{name} holds no frames: upload a video with pictures in it")
    if count < MIN_FRAMES:
        raise VideoError(f"{name} has a single frame: attach it as an image instead (a video needs at least "
                         f"{MIN_FRAMES} frames)")
    ordered = tuple(sorted(pts)) if not missing_pts and len(set(pts)) == count else ()
    seconds = declared
    if not seconds and ordered and time_base and len(ordered) > 1:
        seconds = (ordered[-1] - ordered[0]) * time_base * count / (count - 1)
    if not seconds:
        seconds = count / rate if rate else 0.0
    if max_seconds and seconds > max_seconds + 0.5:
        raise _too_long(name, seconds, max_seconds)
    return Probe(count, float(seconds), int(width or 0), int(height or 0), str(codec), ordered)


def _target_size(width: int, height: int, budget: Budget | None) -> tuple[int, int]:
    """The decoded size, unless it is far above the model's budget (then ``Budget.target``'s), even-sided."""
    if budget is None or not width or not height:
        return width, height
    return budget.target(width, height)


def _to_array(frame, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    if (frame.width, frame.height) == (width, height):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC")


def _decode_sequential(path: str | Path, name: str, wanted: list[int]) -> dict[int, object]:
    """Decode from the start, keeping the frames whose presentation index is wanted (as ``av.VideoFrame``s)."""
    import av
    keep = set(wanted)
    last = max(wanted)
    frames: dict[int, object] = {}
    with _open(path, name) as container:
        stream = _stream(container, name)
        index = 0
        try:
            for frame in container.decode(stream):
                if index in keep:
                    frames[index] = frame
                if index >= last:
                    break
                index += 1
        except av.error.FFmpegError:
            pass  # a damaged tail: the frames before it are kept, the missing ones are reported by the caller
    return frames


def _decode_seeking(path: str | Path, name: str, wanted: list[int], pts: tuple[int, ...]) -> dict[int, object] | None:
    """Decode only near each wanted frame: decode on across short gaps, seek to the keyframe before a frame across
    long ones. None when the stream does not land where asked (the caller then decodes from the start)."""
    import av
    by_pts = {pts[i]: i for i in wanted}
    frames: dict[int, object] = {}
    with _open(path, name) as container:
        stream = _stream(container, name)
        position = -1  # presentation index of the last frame decoded
        decoder = None
        try:
            for index in wanted:
                if decoder is None or index - position > SEEK_GAP:
                    container.seek(pts[index], stream=stream, backward=True, any_frame=False)
                    decoder = container.decode(stream)
                for frame in decoder:
                    if frame.pts is None:
                        return None
                    if frame.pts > pts[index] and index not in frames:
                        return None  # the seek overshot: this stream's keyframes are not where they say
                    position = _position(pts, frame.pts, position)
                    if frame.pts in by_pts:
                        frames[by_pts[frame.pts]] = frame
                    if frame.pts >= pts[index]:
                        break
        except av.error.FFmpegError:
            return None
    return frames if len(frames) == len(wanted) else None


def _position(pts: tuple[int, ...], value: int, previous: int) -> int:
    import bisect
    found = bisect.bisect_left(pts, value)
    return found if found < len(pts) and pts[found] == value else previous


def decode(path: str | Path, name: str, k: int, budget: Budget | None = None,
           max_seconds: float | None = None) -> Frames:
    """``k`` frames of ``path`` sampled evenly (``sample_indices``), as one k×H×W×3 uint8 array."""
    started = time.perf_counter()
    info = probe(path, name, max_seconds)
    wanted = sample_indices(info.frames, k)
    frames = None
    if info.pts and len(wanted) > 1 and min(b - a for a, b in zip(wanted, wanted[1:])) > SEEK_GAP:
        frames = _decode_seeking(path, name, wanted, info.pts)
    if frames is None:
        frames = _decode_sequential(path, name, wanted)
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise VideoError(f"{name} is damaged: frame {missing[0] + 1} of {info.frames} could not be decoded. "
                         "Re-encode the video (e.g. save it again as MP4) or upload another one")
    first = frames[wanted[0]]
    size = _target_size(first.width, first.height, budget)
    array = np.stack([_to_array(frames[i], size) for i in wanted])
    return Frames(np.ascontiguousarray(array), tuple(wanted), info.frames, info.seconds,
                  time.perf_counter() - started, (first.width, first.height))


def digest(path: str | Path) -> str:
    """A content hash of the file (the conversation's fingerprint names videos by content, as images)."""
    hasher = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


class FramesCache:
    """Decoded samples by (file, its size and mtime, k, budget): every turn of a chat sends its video again."""

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, Frames] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | Path, name: str, k: int, budget: Budget | None,
            max_seconds: float | None = None) -> tuple[Frames, bool]:
        """(frames, whether they were decoded now)."""
        try:
            stat = Path(path).stat()
        except FileNotFoundError:
            raise VideoError(f"{name} is no longer on the server: attach it again") from None
        file_key = (str(path), stat.st_size, stat.st_mtime_ns, int(k))
        key = (*file_key, budget)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            else:
                for other, frames in self._items.items():  # decoded for another budget that gives the same size
                    if other[:4] == file_key and (frames.array.shape[2], frames.array.shape[1]) == \
                            _target_size(*frames.source_size, budget):
                        self._items.move_to_end(other)
                        hit = frames
                        break
        if hit is not None:
            # Decoded for another entry, maybe one that takes longer videos: this entry's limit applies too.
            if max_seconds and hit.seconds > max_seconds + 0.5:
                raise _too_long(name, hit.seconds, max_seconds)
            return hit, False
        frames = decode(path, name, k, budget, max_seconds)
        with self._lock:
            self._items[key] = frames
            while len(self._items) > 1 and sum(f.array.nbytes for f in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)
        return frames, True
