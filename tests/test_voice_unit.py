"""Voice panel pieces without models: sentence splitting, text checks, speaker embedding files, WAV round trip."""
from __future__ import annotations

import re

import numpy as np
import pytest

from demos.core.errors import TooLong, UserError
from demos.core.voices import VoiceError, read_embedding
from demos.panels.voice import sentences, wav

pytestmark = pytest.mark.unit


def test_text_is_split_at_sentence_ends_and_line_breaks():
    assert sentences.split("Hi there.  How are you?\nFine!  … ") == ["Hi there.", "How are you?", "Fine!"]
    assert sentences.split("Version 2.5 works. Yes") == ["Version 2.5 works.", "Yes"]


def test_a_growing_text_keeps_its_finished_pieces():
    text = "One. Two is here! And thr"
    assert sentences.pieces(text)[:-1] == sentences.pieces(text + "ee? Four.")[:2]


def test_long_sentences_are_cut_under_the_limit_at_pauses_or_words():
    long = ", ".join(["word " * 30] * 5)
    parts = sentences.split(long)
    assert len(parts) > 1 and all(len(p) <= sentences.MAX_SENTENCE_CHARS for p in parts)
    assert " ".join(parts).split() == long.replace(",", " ,").replace(" ,", ",").split()


@pytest.mark.parametrize("text, error, named", [
    ("", UserError, "empty"), ("   ", UserError, "empty"), ("x" * 11, TooLong, "at most 10 characters"),
    ("?!… --", UserError, "nothing to speak"), (5, UserError, "must be a string"), ("\ud800", UserError, "surrogate"),
])
def test_bad_text_is_refused_with_what_to_change(text, error, named):
    with pytest.raises(error, match=named):
        sentences.checked(text, 10)


def test_speaker_embeddings_are_read_from_bin_and_npy(tmp_path):
    values = np.arange(512, dtype=np.float32) / 512
    values.tofile(tmp_path / "a.bin")
    np.save(tmp_path / "b.npy", values.reshape(1, 512))
    for name in ("a.bin", "b.npy"):
        read = read_embedding(tmp_path / name)
        assert read.shape == (1, 512) and read.dtype == np.float32 and np.array_equal(read[0], values)


@pytest.mark.parametrize("name, data, named", [
    ("short.bin", np.zeros(100, np.float32), "400 bytes"),
    ("wide.npy", np.zeros((1, 512), np.float64), "float64"),
    ("shape.npy", np.zeros((2, 256), np.float32), "shape [2, 256]"),
    ("nan.npy", np.full((1, 512), np.nan, np.float32), "NaN"),
])
def test_wrong_voice_files_are_refused_with_what_they_should_be(tmp_path, name, data, named):
    path = tmp_path / name
    np.save(path, data) if name.endswith(".npy") else data.tofile(path)
    with pytest.raises(VoiceError, match=re.escape(named)):
        read_embedding(path)


def test_wav_round_trip_is_within_one_quantisation_step():
    samples = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.9
    rate, back = wav.read(wav.to_bytes(samples, 16000))
    assert rate == 16000 and np.max(np.abs(back - samples)) <= 1 / 32767


def test_show_code_is_valid_python_for_the_default_and_a_voice_file():
    from types import SimpleNamespace

    from demos.core.showcode import ModelRef
    from demos.panels.voice.code import cpp_code, python_code
    model = ModelRef('"/models/speecht5"', '"/models/speecht5"')
    key = SimpleNamespace(device="CPU", properties=(("INFERENCE_PRECISION_HINT", "f32"), ("CACHE_DIR", "/c")))
    for voice in (None, "/voices/a.bin", "/voices/b.npy"):
        code = python_code(model, key, 'Say "hi". Then stop!', voice)
        compile(code, "snippet.py", "exec")
        assert "Text2SpeechPipeline" in code and "CACHE_DIR" not in code
        assert ("np.load" in code) == bool(voice and voice.endswith(".npy"))
        cpp = cpp_code(model, key, "Hi.", voice)
        assert "Text2SpeechPipeline pipe(" in cpp and ("speaker" in cpp) == bool(voice)


class _Hub:
    """A stand-in hub on 127.0.0.1:8030 that answers as huggingface.co does: one good voice file, a missing repo,
    a missing file. It counts the requests, to see that a voice is resolved once."""

    def __init__(self, data: bytes):
        import http.server
        import threading
        hub = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, body: bool) -> None:
                hub.requests += 1
                if "missing-repo" in self.path or "missing-file" in self.path:
                    code = "RepoNotFound" if "missing-repo" in self.path else "EntryNotFound"
                    self.send_response(404)
                    self.send_header("X-Error-Code", code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                for name, value in (("ETag", '"voice-etag"'), ("X-Repo-Commit", "a" * 40),
                                    ("Content-Length", str(len(data)))):
                    self.send_header(name, value)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):  # noqa: N802
                self._answer(False)

            def do_GET(self):  # noqa: N802
                self._answer(True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 8030), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_hub_voices_are_resolved_once_and_hub_errors_name_the_voice(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub import constants

    from demos.core import voices
    from demos.core.catalog import Voice
    expected = np.full((1, 512), 0.25, np.float32)
    hub = _Hub(expected.tobytes())
    try:
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            "http://127.0.0.1:8030/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setattr(voices, "_RESOLVED", {}, raising=False)  # a fresh cache
        # The suite as _path uses it: no local voice folders, online.
        suite = SimpleNamespace(catalog=SimpleNamespace(local_path=lambda source: None),
                                loader=SimpleNamespace(offline=False))
        entry = SimpleNamespace(voices=[
            Voice(id="good", source="me/voices", file="a.bin", repo_type="dataset"),
            Voice(id="typo", source="me/missing-repo", file="a.bin"),
            Voice(id="nofile", source="me/voices", file="missing-file.bin")])
        for _ in range(3):
            assert np.array_equal(voices.embedding(suite, entry, "good"), expected)
        assert hub.requests == 2, "one metadata request and one download, then the resolved path is reused"
        with pytest.raises(UserError, match=r"voice 'typo' \(model repo me/missing-repo.*no such repo.*check source"):
            voices.embedding(suite, entry, "typo")
        with pytest.raises(UserError, match=r"voice 'nofile' .*no such file: check file in models.yaml"):
            voices.embedding(suite, entry, "nofile")
        asked = hub.requests
        with pytest.raises(UserError, match="no such repo"):
            voices.embedding(suite, entry, "typo")
        assert hub.requests > asked, "a failure is not cached: the hub is asked again"
    finally:
        hub.close()
