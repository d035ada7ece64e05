"""Timed text: Whisper's chunks -> clean segments -> SRT, WebVTT and plain-text files.

genai reports a chunk's end as -1 when its window ended before the closing timestamp, and an untrained or
confused model can print times past the end of the audio. ``segments_from_chunks`` turns that into cues a
player accepts: every end known, times within the audio, never going backwards.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

WINDOW_S = 30.0  # Whisper's input window: no segment outlasts it

@dataclass(frozen=True)
class Segment:
    """A piece of text and when it was spoken, in seconds from the start of the audio."""

    start: float
    end: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def segments_from_chunks(chunks: Iterable[Any], duration: float) -> list[Segment]:
    """Segments from genai's ``chunks`` (objects with ``start_ts``, ``end_ts``, ``text``).

    Rules, in order: an unknown end (-1) becomes the next chunk's start (the audio's end for the last one), but
    at most one 30 s window after its own start (a stopped run must not claim audio it never decoded);
    times are clamped to [0, duration]; a start never precedes the previous start and an end never precedes its
    start. Times are rounded to milliseconds (what SRT and WebVTT can say). One segment per chunk, text as
    genai gave it (leading space included), so the segments' texts add up to the transcript.
    """
    raw = [(float(c.start_ts), float(c.end_ts), str(c.text)) for c in chunks]
    segments: list[Segment] = []
    previous_start = 0.0
    for index, (start, end, text) in enumerate(raw):
        if end < 0:
            end = min(raw[index + 1][0] if index + 1 < len(raw) else duration, start + WINDOW_S)
        start = max(previous_start, min(max(start, 0.0), duration))
        end = max(start, min(end, duration))
        previous_start = start
        segments.append(Segment(round(start, 3), round(end, 3), text))
    return segments


def words_from_genai(words: Iterable[Any], duration: float, text: str) -> list[Segment]:
    """Word timings (``word``, ``start_ts``, ``end_ts``) that spell out ``text``, as segments.

    genai 2026.4 times every token a 30 s window decoded, including the tail after the window's last complete
    segment, which the next window decodes again: those would appear twice. Walking the transcript, a word is
    kept when it is the next thing the transcript says, so the words add up to the text once.
    """
    class _Chunk:  # adapt WhisperWordTiming to the chunk shape
        def __init__(self, start: float, end: float, word: str) -> None:
            self.start_ts, self.end_ts, self.text = start, end, word

    kept, cursor = [], 0
    for word in words:
        piece = str(word.word).strip()
        found = text.find(piece, cursor) if piece else -1
        if found < 0 or text[cursor:found].strip():
            continue
        kept.append(_Chunk(float(word.start_ts), float(word.end_ts), str(word.word)))
        cursor = found + len(piece)
    return segments_from_chunks(kept, duration)


def timestamp(seconds: float, separator: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``separator='.'``, ``HH:MM:SS.mmm`` (WebVTT)."""
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" inside text confuses WebVTT parsers.
    lines = [line.strip() for line in text.replace("-->", "->").splitlines() if line.strip()]
    return "\n".join(lines) or "…"


def _spoken(segments: list[Segment]) -> list[Segment]:
    return [s for s in segments if s.text.strip()]


def to_srt(segments: list[Segment]) -> str:
    """SubRip: numbered cues, comma before the milliseconds (segments without text are left out)."""
    cues = [f"{i}\n{timestamp(s.start)} --> {timestamp(s.end)}\n{_cue_text(s.text)}\n"
            for i, s in enumerate(_spoken(segments), start=1)]
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    """WebVTT: the header line, then cues with a dot before the milliseconds; & and < escaped."""
    cues = [f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{_cue_text(_vtt_escape(s.text))}\n"
            for s in _spoken(segments)]
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_txt(text: str, segments: list[Segment] | None = None) -> str:
    """Plain text: one segment per line when there are segments, else the transcript as it came."""
    if segments:
        return "\n".join(s.text.strip() for s in _spoken(segments)) + "\n"
    return text.strip() + "\n"
