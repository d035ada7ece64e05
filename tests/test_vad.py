"""Voice activity (``demos.core.vad``): Silero VAD's packaged model run by OpenVINO on real speech (espeak-ng) with
seconds of silence around and between; and, in the unit tier, the span rules and the timeline map on made-up
probabilities."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demos.core import vad
from tests import media

RATE = vad.SAMPLE_RATE
SENTENCES = ("Hello, this is a test of the speech demo.", "The cat sat on the mat, and the dog sat on the log.")


def spoken(tmp_path: Path, text: str) -> np.ndarray:
    """espeak-ng's speech at 16 kHz (its own 22.05 kHz resampled by the app's resampler)."""
    from demos.core import audio
    return audio.load(media.espeak(tmp_path / f"{abs(hash(text))}.wav", text)).samples


def where_sound_is(samples: np.ndarray) -> tuple[float, float]:
    """Seconds from the first to the last sample above -40 dBFS: where espeak-ng's voice is."""
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    return loud[0] / RATE, (loud[-1] + 1) / RATE


def layout(tmp_path: Path, gaps: tuple[float, ...]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """silence gaps[0], sentence 1, silence gaps[1], sentence 2, silence gaps[2] (with a faint noise floor, as a
    microphone has); and where each sentence's voice is on that timeline."""
    parts, truth, at = [], [], 0.0
    for index, gap in enumerate(gaps):
        parts.append(np.zeros(int(gap * RATE), np.float32))
        at += gap
        if index < len(SENTENCES):
            voice = spoken(tmp_path, SENTENCES[index])
            start, end = where_sound_is(voice)
            truth.append((at + start, at + end))
            parts.append(voice)
            at += len(voice) / RATE
    clip = np.concatenate(parts)
    clip += np.random.default_rng(0).normal(0, 3e-4, clip.size).astype(np.float32)  # -70 dBFS floor
    return clip, truth


@pytest.mark.skipif(vad.model_path() is None, reason=f"silero-vad is not installed ({vad.INSTALL})")
def test_speech_spans_start_and_end_within_0_3_s_of_the_voice(tmp_path):
    clip, truth = layout(tmp_path, (2.0, 3.0, 2.5))
    speech = vad.find_speech(clip)
    assert speech.found and speech.vad_s > 0 and speech.total == clip.size
    for start, end in truth:
        inside = [s for s in speech.spans if s.end_s > start - 0.3 and s.start_s < end + 0.3]
        assert inside, f"no span over the voice at {start:.2f}-{end:.2f} s: {speech.spans}"
        assert abs(inside[0].start_s - start) <= 0.3 and abs(inside[-1].end_s - end) <= 0.3, (start, end, inside)
    # Nothing in the silences: every span lies over one of the sentences.
    assert all(any(s.start_s >= a - 0.3 and s.end_s <= b + 0.3 for a, b in truth) for s in speech.spans)
    silence = clip.size / RATE - sum(b - a for a, b in truth)
    assert speech.silence_s == pytest.approx(silence, abs=0.8)
    # The gathered clip is the spans one after the other; its times map back onto the original timeline.
    gathered = speech.gather(clip)
    assert gathered.size == speech.speech_samples
    first, second = speech.spans[0], speech.spans[-1]
    assert speech.to_original(0.0) == pytest.approx(first.start_s)
    assert speech.to_original(gathered.size / RATE, end=True) == pytest.approx(second.end_s)
    assert np.array_equal(gathered[:first.end - first.start], clip[first.start:first.end])


@pytest.mark.skipif(vad.model_path() is None, reason=f"silero-vad is not installed ({vad.INSTALL})")
def test_silence_noise_and_a_tone_hold_no_speech():
    rng = np.random.default_rng(1)
    assert not vad.find_speech(rng.normal(0, 3e-4, 5 * RATE).astype(np.float32)).found
    assert not vad.find_speech(media.signal(6.0, seed=4).astype(np.float32)).found  # the speech tests' tone


# ---------------------------------------------------------------------------------------------------------
# Unit: the rules on made-up probabilities, and the timeline map


def _probs(pattern: list[tuple[float, float]]) -> tuple[np.ndarray, int]:
    """(probability, seconds) runs -> per-chunk probabilities and the clip's length in samples."""
    chunks = [np.full(int(round(seconds * RATE / vad.CHUNK)), p, np.float32) for p, seconds in pattern]
    probs = np.concatenate(chunks)
    return probs, probs.size * vad.CHUNK


@pytest.mark.unit
def test_spans_follow_silero_s_rules():
    probs, total = _probs([(0.0, 1.0), (0.9, 1.0), (0.0, 0.064), (0.9, 1.0), (0.0, 1.0), (0.9, 0.1), (0.0, 1.0)])
    spans = vad.spans_from_probabilities(probs, total)
    # A 64 ms dip (under min_silence_ms 100) does not split; a 0.1 s burst (under min_speech_ms 250) is dropped;
    # 30 ms of padding each side.
    assert len(spans) == 1
    chunk_s = vad.CHUNK / RATE
    assert spans[0].start_s == pytest.approx(round(1.0 / chunk_s) * chunk_s - 0.03, abs=1e-3)
    # Between threshold - 0.15 and threshold speech goes on (hysteresis), below it silence begins.
    probs, total = _probs([(0.9, 1.0), (0.4, 1.0), (0.2, 1.0)])
    (span,) = vad.spans_from_probabilities(probs, total)
    assert span.end_s == pytest.approx(round(2.0 / chunk_s) * chunk_s + 0.03, abs=1e-3)
    # Spans closer than two pads meet halfway, never overlapping.
    probs, total = _probs([(0.9, 1.0), (0.0, 0.128), (0.9, 1.0)])
    tight = vad.spans_from_probabilities(probs, total, vad.Settings(min_silence_ms=100, pad_ms=100))
    assert len(tight) == 2 and tight[0].end == tight[1].start
    assert vad.spans_from_probabilities(np.zeros(100, np.float32), 100 * vad.CHUNK) == []


@pytest.mark.unit
def test_times_map_back_onto_the_original_timeline():
    speech = vad.Speech((vad.Span(2 * RATE, 4 * RATE), vad.Span(10 * RATE, 11 * RATE)), 12 * RATE)
    assert speech.speech_s == 3.0 and speech.silence_s == 9.0 and speech.skips
    assert speech.to_original(0.0) == 2.0 and speech.to_original(1.5) == 3.5
    # The join at 2.0 s of gathered speech: a start belongs to the second span, an end to the first.
    assert speech.to_original(2.0) == 10.0 and speech.to_original(2.0, end=True) == 4.0
    assert speech.to_original(2.5, end=True) == 10.5 and speech.to_original(9.0, end=True) == 11.0
    samples = np.arange(12 * RATE, dtype=np.float32)
    gathered = speech.gather(samples)
    assert gathered.size == 3 * RATE and gathered[0] == 2 * RATE and gathered[2 * RATE] == 10 * RATE
    everything = vad.whole(5 * RATE)
    assert not everything.skips and everything.gather(samples[:5 * RATE]) is not None
    assert everything.to_original(1.25) == 1.25


@pytest.mark.unit
def test_without_the_package_nothing_is_skipped_and_the_note_says_how_to_install(monkeypatch):
    monkeypatch.setattr(vad, "model_path", lambda: None)
    speech = vad.find_speech(np.ones(RATE, np.float32))
    assert speech.found and not speech.skips and speech.speech_s == 1.0
    assert "silero-vad package is not installed" in speech.note and vad.INSTALL in speech.note
    from demos.panels.speech.transcriber import speech_note
    assert speech_note(speech) == speech.note
