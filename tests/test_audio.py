"""demos.core.audio and demos.panels.speech.subtitles without a model: every format and array shape ends up as Whisper's input."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from demos.core import audio

from demos.panels.speech import languages

from demos.panels.speech import subtitles
from tests import media

pytestmark = pytest.mark.unit  # no model kit anywhere in this file


def _close(a: np.ndarray, b: np.ndarray, skip: int = 400) -> float:
    """Largest difference away from the edges (a resampler's filter needs a few samples to settle)."""
    n = min(len(a), len(b))
    return float(np.max(np.abs(a[skip:n - skip] - b[skip:n - skip])))


# ---------------------------------------------------------------------------------------------------------
# Arrays (what Gradio's numpy audio hands over)


def test_int16_mono_16k_is_scaled_exactly():
    data = media.to_int16(media.signal(1.0))
    out = audio.from_array(16000, data)
    assert out.samples.dtype == np.float32
    np.testing.assert_array_equal(out.samples, data.astype(np.float32) / 32768)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("kind", ["int16-stereo", "float32-mono", "int32-stereo", "float64-stereo"])
def test_any_rate_dtype_and_channels_end_up_the_same(rate, kind):
    # The same content at another rate: a clean band-limited tone (noise above 4 kHz cannot survive 8 kHz).
    tone = lambda r: 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * r) / r)  # noqa: E731
    source = tone(rate)
    dtype, layout = kind.split("-")
    data = np.stack([source, source], axis=1) if layout == "stereo" else source
    if dtype == "int16":
        data = media.to_int16(data)
    elif dtype == "int32":
        data = np.round(data * (2 ** 31 - 1)).astype(np.int32)
    else:
        data = data.astype(dtype)
    out = audio.from_array(rate, data)
    assert out.samples.dtype == np.float32 and out.samples.ndim == 1
    assert abs(len(out.samples) - 32000) <= 2
    assert out.source_channels == (2 if layout == "stereo" else 1)
    assert _close(out.samples, tone(16000).astype(np.float32)) < 2e-3


def test_stereo_is_averaged_not_summed():
    left = media.signal(1.0, seed=2)
    out = audio.from_array(16000, np.stack([left, np.zeros_like(left)], axis=1).astype(np.float32))
    np.testing.assert_allclose(out.samples, (left / 2).astype(np.float32), atol=1e-7)


def test_unsigned_8bit_is_centred():
    out = audio.from_array(16000, np.array([0, 128, 255] * 1000, dtype=np.uint8))
    assert out.samples[:3].tolist() == pytest.approx([-1.0, 0.0, 127 / 128])


def test_array_errors():
    with pytest.raises(audio.AudioError, match="ms long"):
        audio.from_array(16000, np.zeros(100, np.int16))
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.from_array(16000, np.full(16000, np.nan, np.float32))
    with pytest.raises(audio.AudioError, match="limit is 10.0 s"):
        audio.from_array(16000, np.zeros(16000 * 11, np.int16), max_seconds=10)


# ---------------------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("name,codec,container,rate,video", [
    ("clip.mp3", "libmp3lame", None, 44100, False),
    ("clip.m4a", "aac", "ipod", 44100, False),
    ("clip.aac", "aac", "adts", 22050, False),
    ("clip.ogg", "libopus", "ogg", 48000, False),
    ("clip.flac", "flac", None, 32000, False),
    ("clip.mp4", "aac", "mp4", 44100, True),
])
def test_every_format_decodes_to_the_same_signal(tmp_path, name, codec, container, rate, video):
    tone = lambda r: 0.5 * np.sin(2 * np.pi * 440 * np.arange(3 * r) / r)  # noqa: E731
    path = media.encode(tmp_path / name, tone(rate), rate, codec, container, video)
    out = audio.load(path)
    assert out.source_rate == rate and out.samples.dtype == np.float32
    assert abs(out.seconds - 3.0) < 0.1  # encoders may pad a frame
    assert not out.warning
    # Lossy codecs shift the signal by their delay: compare energy and pitch instead of samples.
    assert float(np.sqrt(np.mean(out.samples[1600:-1600] ** 2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(out.samples[:16000]))
    assert abs(int(np.argmax(spectrum)) - 440) <= 1  # 1 s of samples: bin index = Hz


def test_wav_44k_stereo_matches_16k_mono_original(tmp_path):
    original = media.signal(3.0, 16000, seed=3) * 0.8
    from scipy.signal import resample_poly
    up = resample_poly(original, 441, 160)
    path = media.write_wav(tmp_path / "stereo.wav", np.stack([up, up], axis=1), 44100)
    out = audio.load(path)
    assert out.source_rate == 44100 and out.source_channels == 2
    assert abs(len(out.samples) - len(original)) <= 1
    # The noise reaches 8 kHz, where any resampler rolls off: compare below 7 kHz.
    spec_out = np.fft.rfft(out.samples[:len(original)])
    spec_in = np.fft.rfft(original[:len(out.samples)])
    band = slice(0, int(7000 / 8000 * len(spec_in)))
    error = np.linalg.norm(spec_out[band] - spec_in[band]) / np.linalg.norm(spec_in[band])
    assert error < 0.02


def test_16k_mono_wav_is_read_exactly(tmp_path):
    path = media.write_wav(tmp_path / "mono.wav", media.signal(2.0), 16000)
    rate, data = media.read_wav(path)
    np.testing.assert_array_equal(audio.load(path).samples, data.astype(np.float32) / 32768)


def test_bad_files_have_clear_messages(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.load(empty)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    with pytest.raises(audio.AudioError, match="not an audio or video file"):
        audio.load(text)
    zero = media.write_wav(tmp_path / "zero.wav", np.zeros(0), 16000)
    with pytest.raises(audio.AudioError, match="zero length"):
        audio.load(zero)
    short = media.write_wav(tmp_path / "short.wav", np.zeros(100), 16000)
    with pytest.raises(audio.AudioError, match="ms long"):
        audio.load(short)
    long = media.write_wav(tmp_path / "long.wav", media.signal(12.0), 16000)
    with pytest.raises(audio.AudioError, match="limit is 10.0 s"):
        audio.load(long, max_seconds=10)


def test_truncated_mp3(tmp_path):
    whole = media.encode(tmp_path / "whole.mp3", media.signal(6.0, 44100), 44100, "libmp3lame")
    data = whole.read_bytes()
    half = tmp_path / "half.mp3"
    half.write_bytes(data[:len(data) // 2 + 11])  # cut inside a frame
    out = audio.load(half)
    assert 2.0 < out.seconds < 4.0
    assert "truncated" in out.warning and "6.0 s" in out.warning
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(data[:300])
    with pytest.raises(audio.AudioError, match="stub.mp3"):
        audio.load(stub)


def test_video_without_sound_is_refused(tmp_path):
    import av
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(5):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    with pytest.raises(audio.AudioError, match="no audio track"):
        audio.load(path)


def test_silence_detection():
    assert audio.is_silent(np.zeros(16000, np.float32))
    assert audio.is_silent(np.full(16000, 5e-5, np.float32))
    assert not audio.is_silent(media.signal(0.5).astype(np.float32))


# ---------------------------------------------------------------------------------------------------------
# Subtitles and languages


def _chunk(start, end, text):
    return SimpleNamespace(start_ts=start, end_ts=end, text=text)


def test_segments_from_chunks_rules():
    chunks = [_chunk(0.04, 2.5, " Hello"), _chunk(2.5, -1.0, " world"), _chunk(1.0, 40.0, " again"),
              _chunk(8.0, -1.0, " end")]
    segments = subtitles.segments_from_chunks(chunks, duration=9.0)
    assert [(s.start, s.end) for s in segments] == [(0.04, 2.5), (2.5, 2.5), (2.5, 9.0), (8.0, 9.0)]
    assert "".join(s.text for s in segments) == " Hello world again end"
    # an open last chunk of a stopped run ends at most one window after its start, not at the audio's end
    assert subtitles.segments_from_chunks([_chunk(0.5, -1.0, " a")], duration=120.0)[0].end == 30.5


def test_words_spell_the_transcript_once():
    timing = lambda w, a, b: SimpleNamespace(word=w, start_ts=a, end_ts=b)  # noqa: E731
    # window 1 timed "c d" after its last segment; window 2 decoded them again
    words = [timing(" a", 0, 1), timing(" b,", 1, 2), timing(" c", 2, 3), timing(" d", 3, 4),
             timing(" c", 2.1, 3), timing(" d", 3.1, 4), timing(" e", 4, 5)]
    kept = subtitles.words_from_genai(words, 10.0, " a b, c d e")
    assert [(w.text, w.start) for w in kept] == [(" a", 0), (" b,", 1), (" c", 2), (" d", 3), (" e", 4)]


def test_srt_and_vtt_format():
    segments = [subtitles.Segment(0.0, 1.5, " Hello <b> & you"), subtitles.Segment(1.5, 3661.25, " Bye"),
                subtitles.Segment(4000, 4000, "  ")]
    srt = subtitles.to_srt(segments)
    assert srt == ("1\n00:00:00,000 --> 00:00:01,500\nHello <b> & you\n\n"
                   "2\n00:00:01,500 --> 01:01:01,250\nBye\n")
    vtt = subtitles.to_vtt(segments)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello &lt;b&gt; &amp; you\n")
    assert re.findall(r"-->", vtt) == ["-->", "-->"]
    assert subtitles.to_txt(" Hello Bye", segments) == "Hello <b> & you\nBye\n"
    assert subtitles.to_txt(" Hello Bye") == "Hello Bye\n"


def test_language_resolution():
    codes = ["en", "de", "nl"]
    assert languages.resolve("", codes) is None and languages.resolve("auto", codes) is None
    assert languages.resolve("<|de|>", codes) == languages.resolve("German", codes) == "de"
    with pytest.raises(ValueError, match="en, de, nl"):
        languages.resolve("fr", codes)
    with pytest.raises(ValueError, match="English-only"):
        languages.resolve("de", [])
    assert languages.choices(["de"])[1] == ("German (de)", "de")


@pytest.mark.unit
def test_many_channels_at_a_high_rate_decode_in_bounded_memory(tmp_path):
    """8 channels at 192 kHz unpack to 61 MB of float samples per 10 s; decoding mixes and resamples frame by
    frame, so memory holds Whisper's 16 kHz mono (0.6 MB), and the samples equal the whole-array path's."""
    import tracemalloc

    import av

    seconds, rate, channels = 10, 192000, 8
    path = tmp_path / "wide.flac"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, layout="7.1")
        for start in range(0, seconds * rate, 19200):
            block = (rng.standard_normal((channels, 19200)) * 300).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(block.T.reshape(1, -1).copy(), format="s16", layout="7.1")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    tracemalloc.start()
    try:
        decoded = audio.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.source_channels == channels and decoded.source_rate == rate
    assert len(decoded.samples) == seconds * audio.SAMPLE_RATE
    assert peak < 16 * 2**20, f"decoding held {peak / 2**20:.0f} MB at once"
