"""The OpenAI-compatible ``/v1`` routes and MCP, as their users call them: ``python app.py --mcp --api-key KEY
--cors ORIGIN`` on the tiny catalog, driven with the real ``openai`` SDK, raw HTTP (httpx) and the real ``mcp``
client. One app for the whole module; results are compared with direct ``openvino_genai`` calls (f32 on both
sides, as the tiny catalog's entries are)."""
from __future__ import annotations

import asyncio
import base64
import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import media
from tests.conftest import app_on_catalog

KEY = "test-key-123"
ALLOWED = "http://allowed.example"
EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPT = "Tell me a story about a cat."
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+?)(?:\n\n|\n?$)", re.S)
VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+?)(?:\n\n|\n?$)", re.S)


@pytest.fixture(scope="module")
def app(kit, tmp_path_factory):
    def small_uploads(catalog: dict) -> None:  # a 1 MB cap, so "too large" is quick to send
        catalog["settings"].update(max_upload_mb=1, max_audio_mb=1, max_image_mb=0.5)

    folder = tmp_path_factory.mktemp("api-app")
    with app_on_catalog(kit, folder, small_uploads, args=("--mcp", "--api-key", KEY, "--cors", ALLOWED)) as app:
        yield app


@pytest.fixture(scope="module")
def v1(app) -> str:
    return app.url + "v1"


@pytest.fixture(scope="module")
def client(v1):
    from openai import OpenAI
    return OpenAI(base_url=v1, api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def llm(kit):
    import openvino_genai as ov_genai
    return ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU", **EXACT)


def _direct_chat(pipe, messages: list[dict], tokens: int, **kwargs):
    import openvino_genai as ov_genai
    return pipe.generate(ov_genai.ChatHistory(messages), max_new_tokens=tokens, do_sample=False, **kwargs)


def _picture(seed: int, shape=(32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _data_url(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", **extra}


# ---------------------------------------------------------------------------------------------------------
# Chat


def test_models_list_every_entry_with_its_panel_and_routes(client, kit):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"tiny-llm", "tiny-llm-export", "tiny-sd", "tiny-whisper", "tiny-vlm", "tiny-qwen2vl", "tiny-tts"}
    assert models["tiny-tts"].owned_by == "voice" and models["tiny-tts"].model_extra["routes"] == ["/v1/audio/speech"]
    assert models["tiny-llm"].owned_by == "chat" and models["tiny-vlm"].owned_by == "vision"
    assert models["tiny-whisper"].model_extra["routes"] == ["/v1/audio/transcriptions", "/v1/audio/translations"]
    assert client.models.retrieve("tiny-sd").owned_by == "image"


def test_chat_greedy_equals_direct_and_usage_counts_match(client, llm):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": PROMPT}]
    answer = client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=20, temperature=0)
    direct = _direct_chat(llm, messages, 20)
    assert answer.choices[0].message.content == direct.texts[0]
    assert answer.choices[0].finish_reason == "length"  # the tiny model never ends on its own
    tokenizer = llm.get_tokenizer()
    import openvino_genai as ov_genai
    template = tokenizer.apply_chat_template(ov_genai.ChatHistory(messages), add_generation_prompt=True)
    prompt_tokens = tokenizer.encode(template, add_special_tokens=False).input_ids.shape[1]
    assert answer.usage.prompt_tokens == prompt_tokens == direct.perf_metrics.get_num_input_tokens()
    assert answer.usage.completion_tokens == direct.perf_metrics.get_num_generated_tokens() == 20
    assert answer.usage.total_tokens == prompt_tokens + 20
    assert answer.model_extra["metrics"]["tokens_per_s"] > 0


def test_streamed_deltas_join_to_the_non_streamed_text(client, v1):
    messages = [{"role": "user", "content": PROMPT}]
    whole = client.chat.completions.create(model="tiny-llm", messages=messages, max_completion_tokens=30)
    stream = client.chat.completions.create(model="tiny-llm", messages=messages, max_completion_tokens=30,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == whole.choices[0].message.content
    assert len([d for d in deltas if d]) >= 2, "the answer streams"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 30 and chunks[-1].usage == whole.usage
    # On the wire: server-sent events ending with [DONE].
    with httpx.stream("POST", f"{v1}/chat/completions", headers=_headers(), timeout=60,
                      json={"model": "tiny-llm", "messages": messages, "max_tokens": 3, "stream": True}) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_stop_strings_end_the_answer_without_showing_them(client, llm):
    messages = [{"role": "user", "content": PROMPT}]
    full = _direct_chat(llm, messages, 20).texts[0]
    stop = full[8:11]  # three characters from the middle of the greedy answer
    direct = _direct_chat(llm, messages, 20, stop_strings={stop}).texts[0]
    assert len(direct) < len(full), "genai ends at the stop string"
    expected = direct[:direct.find(stop)] if stop in direct else direct  # OpenAI leaves the stop string out
    answer = client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=20, stop=[stop])
    assert answer.choices[0].message.content == expected and stop not in expected
    assert answer.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=20, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def test_adapters_equal_a_direct_call_with_that_adapter(client, kit):
    import openvino_genai as ov_genai
    adapter = ov_genai.Adapter(str(kit.llm.lora_a))
    pipe = ov_genai.LLMPipeline(str(kit.llm.main_ov), "CPU", adapters=ov_genai.AdapterConfig([adapter]), **EXACT)
    messages = [{"role": "user", "content": PROMPT}]
    styled = client.chat.completions.create(model="tiny-llm", messages=messages, max_tokens=16,
                                            extra_body={"adapters": {"lora-a": 0.6}})
    direct = _direct_chat(pipe, messages, 16, adapters=ov_genai.AdapterConfig([(adapter, 0.6)])).texts[0]
    plain = _direct_chat(pipe, messages, 16, adapters=ov_genai.AdapterConfig()).texts[0]
    assert styled.choices[0].message.content == direct != plain


def test_vision_with_a_data_url_equals_a_direct_vlm_call(client, kit):
    import openvino as ov
    import openvino_genai as ov_genai
    picture = _picture(1)  # 32 px shortest side: what the tiny model uses, so the same tensor reaches it
    question = "What is in the picture?"
    answer = client.chat.completions.create(model="tiny-vlm", max_tokens=8, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _data_url(picture)}}, {"type": "text", "text": question}]}])
    pipe = ov_genai.VLMPipeline(str(kit.vlm.ov), "CPU", **EXACT)
    direct = pipe.generate(question, images=[ov.Tensor(picture)], max_new_tokens=8)
    assert answer.choices[0].message.content == direct.texts[0]
    assert answer.usage.completion_tokens == 8 and answer.choices[0].finish_reason == "length"


def test_an_animated_gif_is_an_image_for_a_model_that_takes_no_video(client, kit):
    """LLaVA takes no video: an animated GIF (new or earlier in the chat) is an image, its first frame."""
    import openvino as ov
    import openvino_genai as ov_genai
    pictures = np.stack([_picture(seed) for seed in (2, 3, 4)])
    buffer = io.BytesIO()
    Image.fromarray(pictures[0]).save(buffer, format="GIF", save_all=True, loop=0,
                                      append_images=[Image.fromarray(p) for p in pictures[1:]])
    with Image.open(io.BytesIO(buffer.getvalue())) as gif:
        first = np.asarray(gif.convert("RGB"))  # the palette's colours, as any reader of the GIF sees them
    part = {"type": "image_url", "image_url": {"url": "data:image/gif;base64," + base64.b64encode(buffer.getvalue()).decode()}}
    question, follow = "What is in the picture?", "And the colours?"
    answer = client.chat.completions.create(model="tiny-vlm", max_tokens=8, messages=[
        {"role": "user", "content": [part, {"type": "text", "text": question}]}]).choices[0].message.content
    pipe = ov_genai.VLMPipeline(str(kit.vlm.ov), "CPU", **EXACT)
    assert answer == pipe.generate(question, images=[ov.Tensor(first)], max_new_tokens=8).texts[0]
    later = client.chat.completions.create(model="tiny-vlm", max_tokens=8, messages=[
        {"role": "user", "content": [part, {"type": "text", "text": question}]},
        {"role": "assistant", "content": answer}, {"role": "user", "content": follow}])
    assert later.choices[0].message.content and later.usage.completion_tokens > 0


# ---------------------------------------------------------------------------------------------------------
# Images and audio


def test_images_equal_text2image_pixels_for_the_same_seeds(client, kit):
    import openvino_genai as ov_genai
    pipe = ov_genai.Text2ImagePipeline(str(kit.diffusion.ov), "CPU", **EXACT)
    answer = client.images.generate(model="tiny-sd", prompt="a red square", n=2, size="64x64",
                                    response_format="b64_json", extra_body={"seed": 7, "steps": 3})
    assert len(answer.data) == 2
    for seed, item in zip((7, 8), answer.data):
        with Image.open(io.BytesIO(base64.b64decode(item.b64_json))) as image:
            assert image.format == "PNG" and "openvino_genai" in image.info  # lossless, parameters inside
            pixels = np.asarray(image.convert("RGB"))
        direct = pipe.generate("a red square", width=64, height=64, num_inference_steps=3, guidance_scale=1.0,
                               rng_seed=seed).data[0]
        assert np.array_equal(pixels, direct)


def test_image_edits_take_openais_form_and_mask_and_equal_inpainting_pixels(client, v1, kit, tmp_path):
    """The openai SDK's ``images.edit``: multipart, mask transparent = repaint (OpenAI's convention) -> the pixels
    of ``InpaintingPipeline.generate`` with the same area white; without a mask, of ``Image2ImagePipeline``."""
    import openvino as ov
    import openvino_genai as ov_genai
    source = np.random.RandomState(5).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(source).save(tmp_path / "source.png")
    rgba = np.full((64, 64, 4), 255, np.uint8)
    rgba[8:40, 8:56, 3] = 0  # transparent: repaint
    Image.fromarray(rgba).save(tmp_path / "mask.png")
    white = np.zeros((1, 64, 64, 3), np.uint8)
    white[:, 8:40, 8:56] = 255
    run = dict(strength=0.75, num_inference_steps=4, guidance_scale=1.0, rng_seed=9)
    with open(tmp_path / "source.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask:
        answer = client.images.edit(model="tiny-sd", image=image, mask=mask, prompt="a red square",
                                    response_format="b64_json", extra_body={"seed": 9})
    with Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json))) as picture:
        assert picture.format == "PNG" and "Mode: inpaint" in picture.info["parameters"]
        pixels = np.asarray(picture.convert("RGB"))
    inpaint = ov_genai.InpaintingPipeline(str(kit.diffusion.ov), "CPU", **EXACT)
    direct = inpaint.generate("a red square", image=ov.Tensor(source[None]), mask_image=ov.Tensor(white), **run)
    assert np.array_equal(pixels, direct.data[0])
    with open(tmp_path / "source.png", "rb") as image:
        answer = client.images.edit(model="tiny-sd", image=image, prompt="a red square", size="64x64",
                                    extra_body={"seed": 9})  # the source's size: accepted
    transform = ov_genai.Image2ImagePipeline(str(kit.diffusion.ov), "CPU", **EXACT)
    direct = transform.generate("a red square", image=ov.Tensor(source[None]), **run)
    with Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json))) as picture:
        assert np.array_equal(np.asarray(picture.convert("RGB")), direct.data[0])
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "opaque.png")
    for files, named in (({"image": open(tmp_path / "source.png", "rb"), "mask": open(tmp_path / "opaque.png", "rb")},
                          "has no transparency"),
                         ({"mask": open(tmp_path / "mask.png", "rb")}, "image is missing"),
                         ({"image": ("x.png", b"not a picture")}, "is not an image")):
        response = httpx.post(f"{v1}/images/edits", headers=_headers(), files=files,
                              data={"model": "tiny-sd", "prompt": "a cat"}, timeout=60)
        assert response.status_code == 400 and named in _error(response), response.text
    response = httpx.post(f"{v1}/images/edits", headers=_headers(), timeout=60,
                          files={"image": open(tmp_path / "source.png", "rb")},
                          data={"model": "tiny-sd", "prompt": "a cat", "strength": "1.5"})
    assert response.status_code == 400 and "strength 1.5 is out of range" in _error(response)
    for field, value, named in (("size", "32x48", "takes the source picture's size (64x64); resize the picture"),
                                ("output_format", "jpeg", "returns PNG only"),
                                ("background", "transparent", "is an opaque PNG")):
        response = httpx.post(f"{v1}/images/edits", headers=_headers(), timeout=60,
                              files={"image": open(tmp_path / "source.png", "rb")},
                              data={"model": "tiny-sd", "prompt": "a cat", field: value})
        assert response.status_code == 400 and named in _error(response), response.text


@pytest.fixture(scope="module")
def whisper(kit):
    import openvino_genai as ov_genai
    return ov_genai.WhisperPipeline(str(kit.whisper.ov), "CPU", **EXACT)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return media.write_wav(tmp_path_factory.mktemp("clip") / "clip.wav", media.signal(6.0, seed=4), 16000)


def _samples(path: Path) -> list[float]:
    _, data = media.read_wav(path)
    return (data.astype(np.float32) / 32768).tolist()


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# The clip is a tone with noise (the tiny Whisper turns it into words), not speech: compared with a direct call on all
# of it, with silence skipping (this app's extension field, on by default) off.
WHOLE = {"skip_silence": "false"}


def test_transcriptions_equal_whisper_text_and_subtitles_parse(client, whisper, clip):
    with open(clip, "rb") as audio:
        text = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE)
    assert text.text == whisper.generate(_samples(clip)).texts[0] and text.text.strip()
    timed = whisper.generate(_samples(clip), return_timestamps=True)
    with open(clip, "rb") as audio:
        verbose = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE, response_format="verbose_json",
                                                     timestamp_granularities=["segment"])
    assert verbose.text == timed.texts[0] and verbose.duration == 6.0
    assert "".join(s.text for s in verbose.segments) == timed.texts[0] and len(verbose.segments) == len(timed.chunks)
    spoken = [s for s in verbose.segments if s.text.strip()]
    with open(clip, "rb") as audio:
        srt = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE, response_format="srt")
    cues = SRT_CUE.findall(srt)
    assert [int(c[0]) for c in cues] == list(range(1, len(spoken) + 1))
    assert [(_seconds(c[1]), _seconds(c[2]), c[3].strip()) for c in cues] == \
        [(s.start, s.end, s.text.strip()) for s in spoken]
    with open(clip, "rb") as audio:
        vtt = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n")
    assert [(_seconds(a), _seconds(b), t.strip()) for a, b, t in VTT_CUE.findall(vtt)] == \
        [(s.start, s.end, s.text.strip()) for s in spoken]
    with open(clip, "rb") as audio:
        plain = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE, response_format="text")
    assert plain == text.text
    with open(clip, "rb") as audio:
        prompted = client.audio.transcriptions.create(model="tiny-whisper", file=audio, extra_body=WHOLE, prompt="hallo world")
    assert prompted.text == whisper.generate(_samples(clip), initial_prompt="hallo world").texts[0] != text.text
    with open(clip, "rb") as audio:
        translated = client.audio.translations.create(model="tiny-whisper", file=audio, extra_body=WHOLE)
    assert translated.text == whisper.generate(_samples(clip), task="translate").texts[0]


def test_transcriptions_take_hotwords_and_skip_silence_and_cap_the_prompt(client, whisper, clip, v1):
    with open(clip, "rb") as audio:
        hot = client.audio.transcriptions.create(model="tiny-whisper", file=audio, prompt="the red house",
                                                 extra_body={**WHOLE, "hotwords": "tiny moon"})
    assert hot.text == whisper.generate(_samples(clip), initial_prompt="the red house", hotwords="tiny moon").texts[0]

    def post(**fields: str) -> httpx.Response:
        with open(clip, "rb") as audio:
            return httpx.post(f"{v1}/audio/transcriptions", headers=_headers(), timeout=60,
                              data={"model": "tiny-whisper", **fields}, files={"file": ("clip.wav", audio)})

    refused = post()  # skipping silence is on by default, and a tone is no speech
    assert refused.status_code == 400 and "no speech found" in _error(refused)
    assert refused.json()["error"]["param"] == "audio"
    long = post(prompt="x" * 1001, skip_silence="false")
    assert long.status_code == 400 and long.json()["error"]["param"] == "prompt"
    assert _error(long).startswith("prompt is 1,001 characters long") and "1,000 characters" in _error(long)
    tokens = post(prompt="the cat sat on the mat " * 40, skip_silence="false")
    assert tokens.status_code == 400 and "223 tokens" in _error(tokens) and tokens.json()["error"]["param"] == "prompt"
    odd = post(skip_silence="maybe")
    assert odd.status_code == 400 and "skip_silence must be true or false" in _error(odd)


# ---------------------------------------------------------------------------------------------------------
# Errors, key, origins, disconnects


def _error(response: httpx.Response) -> str:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "Traceback" not in response.text
    return error["message"]


CHAT = {"model": "tiny-llm", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}


@pytest.mark.parametrize("path, body, status, named", [
    ("chat/completions", {**CHAT, "model": "no-such-model"}, 404, "no-such-model"),
    ("chat/completions", {**CHAT, "model": "tiny-sd"}, 400, "image model"),
    ("chat/completions", {**CHAT, "n": 2}, 400, "n is 2"),
    ("chat/completions", {**CHAT, "messages": []}, 400, "messages is empty"),
    ("chat/completions", {**CHAT, "max_tokens": "many"}, 400, "max_tokens"),
    ("chat/completions", {**CHAT, "temperature": 9}, 400, "temperature"),
    ("chat/completions", {**CHAT, "adapters": {"nope": 1}}, 400, "no adapter 'nope'"),
    ("chat/completions", {"model": "tiny-vlm", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "What is it?"}]}]}, 400, "remote image URLs are refused"),
    ("chat/completions", {"model": "tiny-vlm", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"no png").decode()}},
        {"type": "text", "text": "What is it?"}]}]}, 400, "image"),
    ("chat/completions", {**CHAT, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400, "text model"),
    ("images/generations", {"model": "tiny-sd", "prompt": "a cat", "n": 5}, 400, "1 to 4"),
    ("images/generations", {"model": "tiny-sd", "prompt": "a cat", "size": "big"}, 400, "WIDTHxHEIGHT"),
    ("images/generations", {"model": "tiny-llm", "prompt": "a cat"}, 400, "chat model"),
    ("images/edits", {"model": "tiny-sd"}, 400, "multipart/form-data"),
    ("audio/speech", {"model": "tiny-whisper", "input": "hi"}, 400, "voice models"),
    ("audio/speech", {"model": "tiny-tts", "input": "hi", "voice": "nobody"}, 400, "no voice 'nobody'"),
    ("no/such/route", {}, 404, "not a route"),
])
def test_mistakes_get_their_4xx_with_a_message_naming_the_problem(v1, path, body, status, named):
    response = httpx.post(f"{v1}/{path}", json=body, headers=_headers(), timeout=60)
    assert response.status_code == status, response.text
    assert named in _error(response)


@pytest.mark.parametrize("path, named", [("audio/transcriptions", "with the audio in the field 'file'"),
                                         ("images/edits", "with the picture in the field 'image'")])
def test_a_malformed_multipart_body_says_what_the_route_expects(v1, path, named):
    headers = {**_headers(), "Content-Type": "multipart/form-data; boundary=xyz"}
    response = httpx.post(f"{v1}/{path}", content=b"--xyz\r\nno headers, no end", headers=headers, timeout=60)
    assert response.status_code == 400, response.text
    assert named in _error(response) and "Error" not in _error(response)


def test_bad_audio_and_oversized_bodies_are_refused_and_the_app_keeps_serving(client, v1, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"this is not audio at all" * 10)
    with open(bad, "rb") as file:
        response = httpx.post(f"{v1}/audio/transcriptions", headers=_headers(), data={"model": "tiny-whisper"},
                              files={"file": ("notes.wav", file)}, timeout=60)
    assert response.status_code == 400 and "notes.wav" in _error(response)
    response = httpx.post(f"{v1}/audio/transcriptions", headers=_headers(), data={"model": "tiny-whisper"}, timeout=60)
    assert response.status_code == 400 and "file is missing" in _error(response)
    big = b"x" * (2 << 20)  # 2 MB against the 1 MB cap
    response = httpx.post(f"{v1}/chat/completions", headers=_headers(), content=big, timeout=60)
    assert response.status_code == 413 and "1.00 MB" in _error(response)

    def chunked():  # no Content-Length: refused as soon as the cap is passed
        for _ in range(40):
            yield b"y" * 65536
    response = httpx.post(f"{v1}/chat/completions", headers=_headers(), content=chunked(), timeout=60)
    assert response.status_code == 413
    response = httpx.post(f"{v1}/chat/completions", headers=_headers(), content=b"{not json", timeout=60)
    assert response.status_code == 400 and "not valid JSON" in _error(response)
    assert client.chat.completions.create(**CHAT).usage.completion_tokens == 2  # still serving


def test_api_key_is_required_on_v1_only(app, v1):
    from openai import AuthenticationError, OpenAI
    with pytest.raises(AuthenticationError) as refused:
        OpenAI(base_url=v1, api_key="wrong", max_retries=0).models.list()
    assert refused.value.status_code == 401 and "wrong API key" in refused.value.message
    response = httpx.get(f"{v1}/models", timeout=30)
    assert response.status_code == 401 and "no API key" in _error(response)
    assert httpx.get(f"{v1}/models", headers=_headers(), timeout=30).status_code == 200
    assert httpx.get(app.url, timeout=30).status_code == 200  # the UI needs no key


def test_other_origins_are_refused_unless_listed(v1):
    foreign = httpx.get(f"{v1}/models", headers=_headers(Origin="http://evil.example"), timeout=30)
    assert foreign.status_code == 403 and "--cors http://evil.example" in _error(foreign)
    preflight = httpx.options(f"{v1}/chat/completions", timeout=30, headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ALLOWED
    listed = httpx.get(f"{v1}/models", headers=_headers(Origin=ALLOWED), timeout=30)
    assert listed.status_code == 200 and listed.headers["access-control-allow-origin"] == ALLOWED


def test_a_client_that_disconnects_stops_its_job(app, v1, client):
    ended = re.compile(r"chat: generate ended \((\d+) new tokens(, stopped)?\)")
    before = len(ended.findall(app.output()))
    with httpx.stream("POST", f"{v1}/chat/completions", headers=_headers(), timeout=60,
                      json={**CHAT, "max_tokens": 480, "stream": True}) as raw:
        for line in raw.iter_lines():
            if '"content":' in line and '"content":""' not in line:
                break  # the first token arrived: hang up
    deadline = time.monotonic() + 60
    while len(ended.findall(app.output())) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    tokens, stopped = ended.findall(app.output())[before]
    assert stopped and int(tokens) < 480
    assert client.chat.completions.create(**CHAT).choices[0].message.content  # the pipeline serves on


# ---------------------------------------------------------------------------------------------------------
# MCP


def test_mcp_lists_the_endpoints_as_tools_and_the_chat_tool_answers(app):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def session():
        async with streamablehttp_client(app.url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as mcp:
                await mcp.initialize()
                tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
                answer = await mcp.call_tool("chat", {"prompt": PROMPT, "model": "tiny-llm", "max_new_tokens": 6})
                return tools, answer

    tools, answer = asyncio.run(session())
    assert {"chat", "generate_image", "transcribe", "ask_image"} <= set(tools)
    chat = tools["chat"]
    assert "adapter" in chat.inputSchema["properties"] and "LoRA adapter id" in str(chat.inputSchema)
    assert "model id" in str(tools["ask_image"].inputSchema["properties"]["model"])
    assert not answer.isError and "output_tokens" in answer.content[0].text
