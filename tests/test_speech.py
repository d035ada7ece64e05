"""The Speech panel as its users use it: ``python app.py`` on the tiny Whisper, driven through gradio_client.

Results are compared with ``WhisperPipeline.generate`` called directly on the same samples (f32 on both sides).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from demos.core import audio
from demos.panels.speech.subtitles import segments_from_chunks
from tests import media
from tests.conftest import AppProcess

MODEL = "tiny-whisper"
LIMIT_S = 150  # max_audio_seconds of the test entry: 2 minutes pass, 160 s do not
SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n"
                     r"(.+?)(?:\n\n|\n?$)", re.S)


@pytest.fixture(scope="module")
def app(kit, tmp_path_factory):
    """The app on a catalog with just the tiny Whisper (a short audio limit, so 'too long' is quick to make)."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("speech-app")
    catalog = catalog_dict(kit, folder / "cache")
    speech = dict(catalog["speech"][0], generation={"max_audio_seconds": LIMIT_S})
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"settings": catalog["settings"], "speech": [speech]}, sort_keys=False))
    process = AppProcess(["--models", str(path)], env={"HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1"},
                         log_path=folder / "app.log")
    try:
        yield process.wait_ready()
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client
    return Client(app.url, verbose=False, download_files=str(app.log_path.parent / "downloads"))


@pytest.fixture(scope="module")
def direct(kit):
    import openvino_genai as ov_genai
    return ov_genai.WhisperPipeline(str(kit.whisper.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


def transcribe(client, path: Path, **kwargs):
    """``/transcribe`` with silence skipping off unless asked: most clips here are tones with noise (which the tiny
    Whisper turns into words), not speech, and the comparisons are with a direct call on the whole clip."""
    from gradio_client import handle_file
    kwargs.setdefault("skip_silence", False)
    return client.predict(handle_file(str(path)), kwargs.pop("model", MODEL), **kwargs, api_name="/transcribe")


def ui_args(path: Path, timestamps: str = "segments", language: str = "auto", task: str = "transcribe",
            prompt: str = "", hotwords: str = "", skip_silence: bool = False) -> list:
    from gradio_client import handle_file
    return [handle_file(str(path)), None, MODEL, "CPU", language, task, timestamps, prompt, hotwords, skip_silence]


def expected_segments(raw, seconds: float) -> list[dict]:
    return [s.as_dict() for s in segments_from_chunks(raw.chunks, seconds)]


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    cues = []
    for match in SRT_CUE.finditer(text):
        g = [int(x) for x in match.groups()[1:9]]
        cues.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000,
                     match.group(10).strip()))
    assert cues, f"no SRT cue in {text!r}"
    return cues


# ---------------------------------------------------------------------------------------------------------
# Equality with the raw pipeline


@pytest.mark.parametrize("settings", [{}, {"timestamps": True}, {"language": "de", "task": "translate"},
                                      {"language": "English", "timestamps": True}])
def test_transcribe_equals_direct_generate(client, direct, tmp_path, settings):
    path = media.write_wav(tmp_path / "mono16k.wav", media.signal(6.0, seed=4), 16000)
    rate, data = media.read_wav(path)
    samples = (data.astype(np.float32) / 32768).tolist()
    text, segments, metrics = transcribe(client, path, **settings)
    kwargs = {"return_timestamps": settings.get("timestamps", False), "task": settings.get("task", "transcribe")}
    if "language" in settings:
        kwargs["language"] = {"de": "<|de|>", "English": "<|en|>"}[settings["language"]]
    raw = direct.generate(samples, **kwargs)
    assert text == raw.texts[0] and text.strip()
    if settings.get("timestamps"):
        assert segments == expected_segments(raw, 6.0) and len(segments) == len(raw.chunks)
        assert "".join(s["text"] for s in segments) == text
    else:
        assert segments == []
    assert metrics["audio_s"] == 6.0
    # Both figures are rounded for display (processing_s to ms, the factor to 4 places): on a fast machine a 50 ms
    # run makes that rounding more than 1 %, hence the absolute bound of the two roundings.
    assert metrics["real_time_factor"] == pytest.approx(metrics["processing_s"] / 6.0, rel=1e-2, abs=2e-4)
    assert {"ttft_ms", "processing_s", "decode_ms", "language", "device"} <= metrics.keys()


def test_44k_stereo_equals_direct_on_the_panels_samples(client, direct, tmp_path):
    from scipy.signal import resample_poly
    original = media.signal(5.0, seed=5) * 0.8
    up = resample_poly(original, 441, 160)
    stereo = media.write_wav(tmp_path / "stereo44k.wav", np.stack([up, up], axis=1), 44100)
    mono = media.write_wav(tmp_path / "mono16k.wav", original, 16000)
    text, segments, metrics = transcribe(client, stereo, timestamps=True)
    samples = audio.load(stereo).samples  # the panel's own decoding and resampling
    raw = direct.generate(samples.tolist(), return_timestamps=True)
    assert text == raw.texts[0]
    assert segments == expected_segments(raw, metrics["audio_s"])
    # ... and the resampled stereo carries the same content as the 16 kHz mono original.
    reference = audio.load(mono).samples
    n = min(len(samples), len(reference))
    assert abs(len(samples) - len(reference)) <= 1
    assert np.corrcoef(samples[:n], reference[:n])[0, 1] > 0.99


@pytest.mark.parametrize("name,codec,container,video", [("talk.m4a", "aac", "ipod", False),
                                                        ("talk.mp4", "aac", "mp4", True)])
def test_compressed_audio_and_video_files(client, direct, tmp_path, name, codec, container, video):
    path = media.encode(tmp_path / name, media.signal(4.0, 44100, seed=6), 44100, codec, container, video)
    text, _, metrics = transcribe(client, path)
    assert text == direct.generate(audio.load(path).samples.tolist()).texts[0] and text.strip()
    assert metrics["audio_s"] == pytest.approx(4.0, abs=0.1)


# ---------------------------------------------------------------------------------------------------------
# The UI event: streaming, segments table, subtitle files, long audio, Stop


def test_segments_table_and_subtitle_files_match_the_chunks(client, direct, tmp_path):
    path = media.write_wav(tmp_path / "interview.wav", media.signal(8.0, seed=7), 16000)
    status, text, table, words, files, metrics_md, code_py, code_cpp = client.predict(
        *ui_args(path), api_name="/transcribe_ui")
    raw = direct.generate(audio.load(path).samples.tolist(), return_timestamps=True)
    expected = segments_from_chunks(raw.chunks, 8.0)
    assert text == raw.texts[0] and "Done" in status
    rows = table["data"]
    assert len(rows) == len(expected) and [r[2] for r in rows] == [s.text.strip() for s in expected]
    by_name = {Path(f).suffix: Path(f) for f in files}
    assert set(by_name) == {".txt", ".srt", ".vtt"}
    cues = parse_srt(by_name[".srt"].read_text())
    spoken = [s for s in expected if s.text.strip()]
    assert [c[2] for c in cues] == [s.text.strip() for s in spoken]
    assert [(c[0], c[1]) for c in cues] == [(s.start, s.end) for s in spoken]
    starts = [c[0] for c in cues]
    assert starts == sorted(starts) and all(0 <= c[0] <= c[1] <= 8.0 for c in cues)
    vtt = by_name[".vtt"].read_text()
    assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(cues)
    assert by_name[".txt"].read_text().split("\n")[:-1] == [s.text.strip() for s in spoken]
    assert "RTF" in metrics_md and "TTFT" in metrics_md and "Audio" in metrics_md
    assert "WhisperPipeline(" in code_py and "return_timestamps=True" in code_py
    assert "ov::genai::WhisperPipeline" in code_cpp and "config.return_timestamps = true;" in code_cpp


def test_show_code_runs_and_reproduces_the_result(client, tmp_path, capsys):
    path = media.encode(tmp_path / "snippet.mp3", media.signal(5.0, 44100, seed=12), 44100, "libmp3lame")
    status, text, table, *_ , code_py, code_cpp = client.predict(*ui_args(path, language="de"),
                                                                 api_name="/transcribe_ui")
    assert 'language=\'<|de|>\'' in code_py and 'config.language = "<|de|>";' in code_cpp
    scope: dict = {}
    exec(compile(code_py.replace('"audio.mp3"', repr(str(path))), "show-code", "exec"), scope)  # noqa: S102
    assert scope["result"].texts[0] == text
    assert capsys.readouterr().out.startswith(text)  # the snippet's streamer printed the same text


def test_word_timestamps_use_their_own_pipeline(client, tmp_path):
    path = media.write_wav(tmp_path / "words.wav", media.signal(5.0, seed=8), 16000)
    status, text, table, words, files, *_ , code_py, _cpp = client.predict(*ui_args(path, "words"),
                                                                           api_name="/transcribe_ui")
    rows = words["data"]
    assert rows and "".join(r[2] for r in rows).replace(" ", "") == text.replace(" ", "")
    starts = [r[0] for r in rows]
    assert starts == sorted(starts)  # HH:MM:SS.mmm strings sort like times
    assert "word_timestamps=True" in code_py
    assert any(Path(f).name.endswith(".words.srt") for f in files)


def test_text_streams_while_decoding(client, tmp_path):
    path = media.write_wav(tmp_path / "stream.wav", media.signal(6.0, seed=9), 16000)
    job = client.submit(*ui_args(path, "off"), api_name="/transcribe_ui")
    outputs = [list(o) for o in job]  # every yield
    final_text = outputs[-1][1]
    partial = [o[1] for o in outputs[:-1] if isinstance(o[1], str) and o[1]]  # not the "keep as is" updates
    # Streamed updates are throttled (serving.UPDATE_INTERVAL_S): a tiny model's tokens arrive joined, so how many
    # partial transcripts there are depends on the machine's speed; that the transcript streams does not.
    assert partial, "the transcript should stream while decoding"
    assert all(final_text.startswith(p.rstrip("\ufffd")) for p in partial)
    assert [len(p) for p in partial] == sorted(len(p) for p in partial)


def test_two_minutes_complete_window_by_window(client, tmp_path):
    path = media.write_wav(tmp_path / "two-minutes.wav", media.signal(120.0, seed=10), 16000)
    job = client.submit(*ui_args(path), api_name="/transcribe_ui")
    outputs = [list(o) for o in job]
    windows = [o[0] for o in outputs if o[0].startswith("Window")]
    assert len(windows) >= 4 and windows[0].startswith("Window 1 of ~4")
    status, text, table = outputs[-1][:3]
    assert status.startswith("**Done**") and text.strip()
    ends = [r[1] for r in table["data"]]
    assert ends[-1] <= "00:02:00.000" and max(r[0] for r in table["data"]) > "00:01:00"


def test_stop_ends_long_audio_early(client, tmp_path):
    path = media.write_wav(tmp_path / "stop-me.wav", media.signal(120.0, seed=11), 16000)
    job = client.submit(*ui_args(path), api_name="/transcribe_ui")
    deadline = time.monotonic() + 60
    # Until decoding started: a Stop before the run gets the pipeline means it never starts (no partial result).
    while not any(o[0].startswith(("Transcribing", "Window")) for o in job.outputs()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.predict(api_name="/stop_transcription").startswith("Stopping")
    outputs = [list(o) for o in job]
    status, text, table, _words, files, metrics_md = outputs[-1][:6]
    assert status.startswith("**Stopped** after 1 window"), status
    assert "Stopped after" in metrics_md
    assert max(r[1] for r in table["data"]) < "00:00:31"  # one window: ends within 30 s of its start
    assert any(str(f).endswith(".srt") for f in files)  # the partial result still downloads
    assert client.predict(api_name="/stop_transcription") == "Nothing is running."


# ---------------------------------------------------------------------------------------------------------
# Real speech


def test_spoken_clip_goes_through_the_whole_path(client, direct, tmp_path):
    wav = media.espeak(tmp_path / "spoken.wav", "Hello, this is a test of the speech demo. The cat sat on the mat.")
    rate, data = media.read_wav(wav)
    assert rate == 22050 and np.abs(data).max() > 1000
    path = media.encode(tmp_path / "spoken.mp3", data.astype(np.float32) / 32768, rate, "libmp3lame")
    text, segments, metrics = transcribe(client, path, timestamps=True, language="en")
    raw = direct.generate(audio.load(path).samples.tolist(), return_timestamps=True, language="<|en|>")
    assert text == raw.texts[0] and text.strip()
    assert segments and all(0 <= s["start"] <= s["end"] <= metrics["audio_s"] for s in segments)
    assert metrics["language"] == "en"


# ---------------------------------------------------------------------------------------------------------
# Prompts and hotwords; silence skipped (Silero VAD)


def test_initial_prompt_and_hotwords_equal_direct_generate(client, direct, tmp_path):
    path = media.write_wav(tmp_path / "names.wav", media.signal(5.0, seed=13), 16000)
    samples = audio.load(path).samples.tolist()
    plain = direct.generate(samples).texts[0]
    for settings in ({"initial_prompt": "hallo world"}, {"hotwords": "OpenVINO, GenAI"},
                     {"initial_prompt": "the red house", "hotwords": "tiny moon", "timestamps": True}):
        text, segments, _ = transcribe(client, path, **settings)
        kwargs = {k: v for k, v in settings.items() if k != "timestamps"}
        raw = direct.generate(samples, return_timestamps=settings.get("timestamps", False), **kwargs)
        assert text == raw.texts[0] and text.strip(), settings
        if settings.get("timestamps"):
            assert segments == expected_segments(raw, 5.0)
    assert text != plain  # the prompt reaches the model
    *_, code_py, code_cpp = client.predict(*ui_args(path, "off", prompt="hallo world", hotwords="tiny moon"),
                                           api_name="/transcribe_ui")
    assert "initial_prompt='hallo world'" in code_py and "hotwords='tiny moon'" in code_py
    assert 'config.initial_prompt = "hallo world";' in code_cpp and 'config.hotwords = "tiny moon";' in code_cpp


def _speech_with_pauses(tmp_path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """2 s of silence, a sentence, 4 s of silence, a sentence, 3 s of silence (espeak-ng); where the voice is."""
    parts, truth, at = [], [], 0.0
    for gap, sentence in ((2.0, "Hello, this is a test of the speech demo."), (4.0, "The cat sat on the mat."),
                          (3.0, None)):
        parts.append(np.zeros(int(gap * 22050)))
        at += gap
        if sentence:
            rate, data = media.read_wav(media.espeak(tmp_path / f"{len(truth)}.wav", sentence))
            voice = data.astype(np.float64) / 32768
            loud = np.nonzero(np.abs(voice) > 0.01)[0]
            truth.append((at + loud[0] / rate, at + (loud[-1] + 1) / rate))
            parts.append(voice)
            at += voice.size / rate
    return media.write_wav(tmp_path / "pauses.wav", np.concatenate(parts), 22050), truth


def test_silence_is_skipped_and_times_stay_on_the_original_timeline(client, direct, tmp_path):
    from demos.core import vad

    path, truth = _speech_with_pauses(tmp_path)
    text, segments, metrics = transcribe(client, path, timestamps=True, skip_silence=True)
    # The same clip the app decoded, its speech found by the same detector: Whisper saw only that.
    decoded = audio.load(path)
    speech = vad.find_speech(decoded.samples)
    raw = direct.generate(speech.gather(decoded.samples).tolist(), return_timestamps=True)
    assert text == raw.texts[0] and text.strip()
    assert metrics["silence_skipped_s"] == pytest.approx(speech.silence_s, abs=1e-3) and speech.silence_s > 8.0
    assert metrics["speech_s"] == pytest.approx(speech.speech_s, abs=1e-3) and metrics["vad_ms"] > 0
    assert metrics["audio_s"] == pytest.approx(decoded.seconds, abs=1e-3)
    # Whisper's times, in the gathered clip, mapped here by hand onto the upload's timeline.
    offsets = np.cumsum([0] + [s.end - s.start for s in speech.spans]) / vad.SAMPLE_RATE

    def original(t: float, end: bool) -> float:
        index = int(np.searchsorted(offsets[1:], t, side="left" if end else "right"))
        index = min(index, len(speech.spans) - 1)
        return min(speech.spans[index].start_s + t - offsets[index], speech.spans[index].end_s)

    gathered = expected_segments(raw, offsets[-1])
    assert [(s["start"], s["end"]) for s in segments] == \
        [(round(original(g["start"], False), 3), round(original(g["end"], True), 3)) for g in gathered]
    assert segments and all(truth[0][0] - 0.3 <= s["start"] <= s["end"] <= truth[-1][1] + 0.3 for s in segments)
    # The UI says what happened.
    status, *_ = client.predict(*ui_args(path, skip_silence=True), api_name="/transcribe_ui")
    assert f"skipped {speech.silence_s:.1f} s of silence" in status and "Done" in status


def test_audio_without_speech_says_no_speech_found(client, tmp_path):
    from gradio_client.exceptions import AppError

    noise = media.write_wav(tmp_path / "room.wav", np.random.default_rng(3).normal(0, 0.002, 16000 * 4), 16000)
    tone = media.write_wav(tmp_path / "tone.wav", media.signal(4.0, seed=14), 16000)
    for path in (noise, tone):
        with pytest.raises(AppError, match="no speech found in the 4.0 s of audio.*skip_silence=False"):
            transcribe(client, path, skip_silence=True)
    from gradio_client import handle_file
    with pytest.raises(AppError, match="no speech found"):  # on by default
        client.predict(handle_file(str(tone)), MODEL, api_name="/transcribe")
    assert transcribe(client, tone, skip_silence=False)[0].strip()  # off: all of it, as before
    job = client.submit(*ui_args(tone, skip_silence=True), api_name="/transcribe_ui")
    with pytest.raises(AppError, match="no speech found"):  # the toast
        job.result()
    statuses = [o[0] for o in job.outputs() if isinstance(o[0], str)]
    assert statuses[-1].startswith("**Not transcribed:** no speech found"), statuses
    assert not any(o[1] == "" for o in job.outputs()), "the last transcript was not cleared"


def test_prompt_over_the_cap_says_its_limit(client, tmp_path):
    good = media.write_wav(tmp_path / "good.wav", media.signal(3.0), 16000)
    assert "keep it under 1,000 characters" in _error(client, good, initial_prompt="x" * 1001)
    assert "the hotwords are 1,001 characters long" in _error(client, good, hotwords="y" * 1001)
    many = "the cat sat on the mat " * 40  # 920 characters, about 240 tokens
    message = _error(client, good, initial_prompt=many)
    assert "at most 223 tokens of prompt" in message, message
    assert "together" not in message
    message = _error(client, good, initial_prompt=many[:500], hotwords=many[:500])
    assert "the initial prompt and the hotwords make" in message and "223" in message
    assert "must be text" in _error(client, good, hotwords=12)
    assert transcribe(client, good, initial_prompt="the cat sat")[0].strip()  # still serving


# ---------------------------------------------------------------------------------------------------------
# Bad input


def _error(client, path: Path, **kwargs) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as failure:
        transcribe(client, path, **kwargs)
    return str(failure.value)


def test_bad_input_is_a_clear_message_and_the_app_keeps_serving(client, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "empty (0 bytes)" in _error(client, empty)
    zero = media.write_wav(tmp_path / "zero.wav", np.zeros(0), 16000)
    assert "zero length" in _error(client, zero)
    silence = media.write_wav(tmp_path / "silence.wav", np.zeros(16000 * 3), 16000)
    assert "silent" in _error(client, silence)
    text = tmp_path / "notes.wav"
    text.write_text("Meeting notes, not a recording.\n" * 40)
    assert "not an audio or video file" in _error(client, text)
    whole = media.encode(tmp_path / "whole.mp3", media.signal(6.0, 44100), 44100, "libmp3lame")
    stub = tmp_path / "cut.mp3"
    stub.write_bytes(whole.read_bytes()[:300])
    assert "cut.mp3" in _error(client, stub)
    good = media.write_wav(tmp_path / "good.wav", media.signal(3.0), 16000)
    assert "not one this model knows" in _error(client, good, language="xx")
    assert "task must be" in _error(client, good, task="summarize")
    assert "unknown model id" in _error(client, good, model="whisper-huge")
    too_long = media.write_wav(tmp_path / "long.wav", media.signal(LIMIT_S + 10.0), 16000)
    message = _error(client, too_long)
    assert "limit is 2 min 30 s" in message and "max_audio_seconds" in message
    # A half mp3 is transcribed, with a note that says what happened.
    half = tmp_path / "half.mp3"
    half.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 2])
    text_half, _, metrics = transcribe(client, half)
    assert "truncated" in metrics["warning"] and text_half.strip()
    # Still serving.
    assert transcribe(client, good)[0].strip()


def test_plain_string_paths_are_refused(client):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="as a file"):
        client.predict("/etc/hostname", MODEL, api_name="/transcribe")


def test_word_timestamps_are_part_of_the_runtime_key(tiny_catalog_path, tmp_path):
    """Words need a pipeline built with word_timestamps=True; segments and off share the plain one."""
    from demos.core.catalog import load_catalog
    from demos.panels.speech.layout import _load
    from demos.core.suite import Suite

    suite = Suite.from_catalog(load_catalog(tiny_catalog_path), cache_dir=tmp_path / "cache")
    entry = suite.catalog.entry(MODEL, "speech")
    plain = _load(suite, entry, "CPU", "segments")
    words = _load(suite, entry, "CPU", "words")
    again = _load(suite, entry, "CPU", "off")
    assert dict(words.loaded.key.properties)["word_timestamps"] is True
    assert "word_timestamps" not in dict(plain.loaded.key.properties)
    assert again.loaded is plain.loaded and not again.built_now
    assert sorted(suite.runtime.builds.values()) == [1, 1]
