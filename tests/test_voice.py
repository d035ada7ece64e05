"""The Voice panel on the tiny SpeechT5: /speak, /v1/audio/speech and /voice_chat against direct pipeline calls,
sentence streaming, Stop, and every bad input named in issue 18."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.media import espeak, write_wav

QUANT = 1.5 / 32767  # a 16-bit WAV holds each sample within half a step; a little slack for float rounding
TEXT = "Hello there. How are you today?"


@pytest.fixture(scope="module")
def client(tiny_app):
    from gradio_client import Client
    return Client(tiny_app.url, verbose=False)


@pytest.fixture(scope="module")
def direct(kit):
    """The tiny SpeechT5 opened as a user of openvino_genai would, f32 as the catalog asks."""
    import openvino_genai as ov_genai
    return ov_genai.Text2SpeechPipeline(str(kit.tts.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


def _direct(pipe, text: str, voice: Path | None = None) -> np.ndarray:
    import openvino as ov
    from demos.core.voices import read_embedding
    args = (text,) if voice is None else (text, ov.Tensor(read_embedding(voice).copy()))
    return np.array(pipe.generate(*args).speeches[0].data, copy=True).reshape(-1)


def _wav(path: str) -> np.ndarray:
    from demos.panels.voice import wav
    rate, samples = wav.read(Path(path).read_bytes())
    assert rate == 16000
    return samples


def _same(app: np.ndarray, direct: np.ndarray) -> None:
    assert app.shape == direct.shape
    assert np.max(np.abs(app - np.clip(direct, -1, 1))) <= QUANT


def test_speak_equals_the_direct_pipeline_for_the_default_and_a_chosen_voice(client, direct, kit):
    for voice, path in (("", None), ("voice-a", kit.tts.voice_a), ("voice-b", kit.tts.voice_b)):
        wav_path, metrics = client.predict(TEXT, "tiny-tts", voice, "", api_name="/speak")
        expected = np.concatenate([_direct(direct, s, path) for s in ("Hello there.", "How are you today?")])
        _same(_wav(wav_path), expected)
        assert metrics["sentences"] == 2 and metrics["audio_s"] == pytest.approx(len(expected) / 16000, abs=1e-3)
        assert {"generate_s", "real_time_factor", "first_audio_ms"} <= set(metrics)
    a = _direct(direct, "Hello there.", kit.tts.voice_a)
    b = _direct(direct, "Hello there.", kit.tts.voice_b)
    assert a.shape == b.shape and np.max(np.abs(a - b)) > 0.01, "different voices must sound different"


def test_sentence_splitting_gives_the_audio_of_each_sentence_spoken_alone(client, direct):
    sentences = ["One.", "Two is here!", "And three?"]
    wav_path, _ = client.predict("One.  Two is here!\nAnd three?", "tiny-tts", "", "", api_name="/speak")
    _same(_wav(wav_path), np.concatenate([_direct(direct, s) for s in sentences]))


def test_openai_speech_route_answers_the_same_wav_as_speak(client, tiny_app):
    from openai import OpenAI
    sdk = OpenAI(base_url=f"{tiny_app.url}v1", api_key="none")
    answer = sdk.audio.speech.create(model="tiny-tts", voice="voice-a", input=TEXT, response_format="wav")
    from demos.panels.voice import wav
    _, samples = wav.read(answer.content)
    wav_path, _ = client.predict(TEXT, "tiny-tts", "voice-a", "", api_name="/speak")
    assert np.array_equal(samples, _wav(wav_path))


@pytest.mark.parametrize("text, voice, named", [
    ("", "", "text is empty"),
    ("x" * 401, "", "at most 400 characters"),
    ("... !!! ???", "", "nothing to speak"),
    ("Hello.", "nobody", "no voice 'nobody'"),
])
def test_bad_speak_inputs_are_named(client, text, voice, named):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match=named):
        client.predict(text, "tiny-tts", voice, "", api_name="/speak")


def test_openai_speech_route_refuses_bad_input_with_4xx(tiny_app):
    for body, named in (({"model": "tiny-tts", "input": ""}, "input is empty"),
                        ({"model": "tiny-tts", "input": "hi", "response_format": "mp3"}, "not served"),
                        ({"model": "tiny-tts", "input": "x" * 401}, "400 characters")):
        response = httpx.post(f"{tiny_app.url}v1/audio/speech", json=body, timeout=60)
        assert response.status_code == 400 and named in response.json()["error"]["message"], response.text


def test_voice_chat_equals_transcribe_then_chat_then_speak(client, tmp_path):
    from gradio_client import handle_file
    clip = espeak(tmp_path / "question.wav", "Hello, what is the weather like today?")
    transcript, reply, wav_path, metrics = client.predict(handle_file(str(clip)), "tiny-llm", "tiny-whisper",
                                                          "tiny-tts", [], "voice-b", 24, api_name="/voice_chat")
    heard, _, _ = client.predict(handle_file(str(clip)), "tiny-whisper", api_name="/transcribe")
    assert transcript == heard.strip()
    answered, _ = client.predict(transcript, "tiny-llm", [], "", "", 1.0, "", "", 24, 0.0, api_name="/chat")
    assert reply == answered
    spoken, _ = client.predict(reply, "tiny-tts", "voice-b", "", api_name="/speak")
    assert np.array_equal(_wav(wav_path), _wav(spoken))
    assert {"transcribe_ms", "ttft_ms", "first_audio_ms"} <= set(metrics)


@pytest.mark.parametrize("kind, named", [("silence", "recording is silent"), ("noise", "sounds like noise")])
def test_voice_chat_hears_no_speech_in_silence_or_noise(client, tmp_path, kind, named):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    samples = np.zeros(32000) if kind == "silence" else np.random.default_rng(1).normal(0, 0.2, 32000)
    path = write_wav(tmp_path / f"{kind}.wav", samples, 16000)
    with pytest.raises(AppError, match=named):
        client.predict(handle_file(str(path)), "tiny-llm", "tiny-whisper", "tiny-tts", [], "", 16,
                       api_name="/voice_chat")


@pytest.mark.parametrize("chat_model, speech_model, named", [
    ("no-such-llm", "tiny-whisper", "unknown model id 'no-such-llm'"),
    ("tiny-llm", "no-such-whisper", "unknown model id 'no-such-whisper'")])
def test_voice_chat_names_an_unknown_model_before_it_listens(client, tmp_path, chat_model, speech_model, named):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    path = write_wav(tmp_path / "silence.wav", np.zeros(16000), 16000)  # never reached: silence would say so
    with pytest.raises(AppError, match=named):
        client.predict(handle_file(str(path)), chat_model, speech_model, "tiny-tts", [], "", 16,
                       api_name="/voice_chat")


def test_stop_ends_after_the_current_sentence_and_keeps_what_was_spoken(client):
    # Sentences of one length: one output length, one compile.
    text = " ".join(f"Part {chr(ord('a') + n)} is here." for n in range(12))
    job = client.submit(text, "tiny-tts", "CPU", "", api_name="/speak_ui")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        outputs = job.outputs()
        if job.done() or (outputs and "Spoke sentence" in str(outputs[-1][0])):
            break
        time.sleep(0.05)
    client.predict(api_name="/stop_speaking")
    status, _, kept_wav, metrics, _, _ = job.result(timeout=120)
    assert "Stopped" in status and "of 12 sentences" in status, status
    kept = _wav(kept_wav)
    assert 0 < len(kept) / 16000 < 12 * 0.5


def test_concurrent_requests_take_turns_on_one_pipeline(tiny_app, direct):
    """Two clients at once on one Text2SpeechPipeline: its lane runs one generate at a time. Without it genai
    answers 'Infer Request is busy' or one request gets the other's samples (the output buffer is shared)."""
    from concurrent.futures import ThreadPoolExecutor

    from demos.panels.voice import wav
    texts = ["Hello there, friend.", "Goodbye now, people!"]  # one length: one compile, calls of equal cost
    expected = {t: _direct(direct, t) for t in texts}

    def ask(text: str) -> tuple[str, int, bytes]:
        response = httpx.post(f"{tiny_app.url}v1/audio/speech", json={"model": "tiny-tts", "input": text},
                              timeout=120)
        return text, response.status_code, response.content

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, texts * 4))
    for text, status, content in answers:
        assert status == 200, content[:300]
        _same(wav.read(content)[1], expected[text])
