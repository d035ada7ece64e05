"""The Vision panel as users reach it: ``python app.py`` on the tiny catalog, driven through gradio_client."""
from __future__ import annotations

import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demos.core.images import Budget, prepare
from demos.panels.vision.layout import METRICS_HINT, STOPPED_MARK

MODEL = "tiny-vlm"
N = 16
QUESTION = "What is in the picture?"
LONGEST = 3000  # an answer long enough (over a second) for Stop and Clear to land while it streams


@pytest.fixture(scope="module")
def long_app(kit, tmp_path_factory):
    """The app with the tiny VLM allowed LONGEST new tokens (by default a request may ask for its context, 512:
    an answer of a fifth of a second, over before a Stop arrives)."""
    from tests.conftest import app_on_catalog

    def allow_long(catalog: dict) -> None:
        catalog["vision"][0]["generation"]["max_new_tokens_limit"] = LONGEST
    with app_on_catalog(kit, tmp_path_factory.mktemp("long-answers-app"), allow_long) as app:
        yield app


@pytest.fixture(scope="module")
def client(tiny_app) -> Client:
    return Client(tiny_app.url, verbose=False)


@pytest.fixture(scope="module")
def plain(kit):
    """Reference for single questions. Plain-prompt calls only: after a ChatHistory call a VLMPipeline (2026.4)
    treats later plain prompts as the next turn of a hidden chat."""
    import openvino_genai as ov_genai
    return ov_genai.VLMPipeline(str(kit.vlm.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


@pytest.fixture(scope="module")
def chat(kit):
    """Reference for conversations: ChatHistory calls only."""
    import openvino_genai as ov_genai
    return ov_genai.VLMPipeline(str(kit.vlm.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


def _ask(plain, arrays: list[np.ndarray], question: str = QUESTION, tokens: int = N) -> str:
    import openvino as ov
    return plain.generate(question, images=[ov.Tensor(np.ascontiguousarray(a)) for a in arrays],
                          max_new_tokens=tokens).texts[0]


def _converse(chat, turns: list[tuple[str, list[np.ndarray], str | None]], tokens: int = N) -> str:
    """A direct ChatHistory user: each turn's images go with it; a given reply replaces the generated one."""
    import openvino as ov
    import openvino_genai as ov_genai
    history, reply = ov_genai.ChatHistory(), ""
    for text, arrays, given in turns:
        history.append({"role": "user", "content": text})
        reply = chat.generate(history, images=[ov.Tensor(a) for a in arrays], max_new_tokens=tokens).texts[0]
        history.append({"role": "assistant", "content": given if given is not None else reply})
    return reply


def _picture(seed: int, shape=(32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png(folder: Path, name: str, array: np.ndarray, mode: str | None = None) -> Path:
    path = folder / name
    Image.fromarray(array, mode).save(path)
    return path


def test_ask_image_equals_a_direct_generate(client, plain, tmp_path):
    client.predict(api_name="/unload_models")  # the app is shared: this first answer must load the model
    small = _picture(1)  # 32 px shortest side: exactly what the model uses, so the same tensor reaches it
    reply, metrics = client.predict(handle_file(_png(tmp_path, "small.png", small)), QUESTION, MODEL, [], N,
                                    api_name="/ask_image")
    assert reply == _ask(plain, [small])
    assert metrics["output_tokens"] == N and metrics["images"] == 1 and metrics["device"] == "CPU"
    assert {"ttft_ms", "tokens_per_s", "vision_encode_ms", "load_s", "image_prep_ms"} <= set(metrics)

    large = _png(tmp_path, "large.png", _picture(2, (300, 500, 3)))  # scaled down to the model's 32 px first
    reply, metrics = client.predict(handle_file(large), QUESTION, MODEL, api_name="/ask_image")  # 256 tokens
    assert "load_s" not in metrics, "only the answer that loaded the model reports the load"
    assert reply == _ask(plain, [prepare(large, Budget(shortest_side=32)).array], tokens=256)


def test_a_picture_near_the_model_size_reaches_it_as_uploaded(client, plain, tmp_path):
    """40×56 against the model's 32 px: above its size but not far above, so no PIL resize runs before genai's own
    and the answer is the direct call's on the very same pixels (a resize to 32 px first gave another answer)."""
    near = _picture(21, (56, 40, 3))
    reply, _ = client.predict(handle_file(_png(tmp_path, "near.png", near)), QUESTION, MODEL, [], N,
                              api_name="/ask_image")
    assert reply == _ask(plain, [near])


def test_second_turn_with_a_new_image(client, chat, tmp_path):
    first, second = _picture(3), _picture(4)
    first_file, second_file = _png(tmp_path, "first.png", first), _png(tmp_path, "second.png", second)
    reply, _ = client.predict(handle_file(first_file), QUESTION, MODEL, [], N, api_name="/ask_image")
    history = [{"role": "user", "content": [handle_file(first_file), QUESTION]},
               {"role": "assistant", "content": reply}]
    follow = "And what is in this one?"
    answer, metrics = client.predict(handle_file(second_file), follow, MODEL, history, N, api_name="/ask_image")
    assert answer == _converse(chat, [(QUESTION, [first], None), (follow, [second], None)])
    # The first question was answered on the batched pipeline, which keeps no ChatHistory: the second turn
    # rebuilds the first on the VLMPipeline; from then on the server continues its own ChatHistory.
    assert metrics["context_rebuild_ms"] > 0
    own = history + [{"role": "user", "content": [handle_file(second_file), follow]},
                     {"role": "assistant", "content": answer}]
    third, metrics = client.predict(None, "Compare them.", MODEL, own, N, api_name="/ask_image")
    assert third == _converse(chat, [(QUESTION, [first], None), (follow, [second], None), ("Compare them.", [], None)])
    assert "context_rebuild_ms" not in metrics, "the server continued its own ChatHistory"

    # A history the server never produced (a client's own reply text): rebuilt, and still exact.
    history[1]["content"] = "It is a small colourful picture."
    answer, metrics = client.predict(handle_file(second_file), follow, MODEL, history, N, api_name="/ask_image")
    assert answer == _converse(chat, [(QUESTION, [first], history[1]["content"]), (follow, [second], None)])
    assert metrics["context_rebuild_ms"] > 0

    # A text-only follow-up about the images already in the conversation.
    history += [{"role": "user", "content": [handle_file(second_file), follow]},
                {"role": "assistant", "content": answer}]
    last, _ = client.predict(None, "Compare them.", MODEL, history, N, api_name="/ask_image")
    assert last == _converse(chat, [(QUESTION, [first], history[1]["content"]), (follow, [second], answer),
                                    ("Compare them.", [], None)])


def _accept(client: Client, text: str, files: list[Path]) -> None:
    """The UI's submit: checked at once (no queue), then answered by /vision_respond on the session's state."""
    client.predict({"text": text, "files": [handle_file(f) for f in files]}, MODEL, "CPU", 8,
                   api_name="/vision_accept")


def _send(client: Client, text: str, files: list[Path], tokens: int = N):
    """What the browser does on Enter; returns (chatbot messages, metrics markdown, Python code)."""
    _accept(client, text, files)
    _, messages, metrics, python, _, _ = client.predict(MODEL, "CPU", tokens, 0, 0.9, api_name="/vision_respond")
    return messages, metrics, python


def test_two_images_in_one_message_through_the_ui(tiny_app, plain, tmp_path):
    client = Client(tiny_app.url, verbose=False)
    client.predict(api_name="/unload_models")  # the app is shared: this answer must load the model
    a, b = _picture(5), _picture(6, (40, 32, 3))
    messages, metrics, python = _send(client, QUESTION, [_png(tmp_path, "a.png", a), _png(tmp_path, "b.png", b)])
    user, reply = messages[-2], messages[-1]
    assert user["role"] == "user" and sum(part.get("type") == "file" for part in user["content"]) == 2
    assert reply["content"][0]["text"] == _ask(plain, [a, b])
    assert "**TTFT**" in metrics and "**Vision encoding**" in metrics and "**Load**" in metrics
    assert "ov_genai.VLMPipeline(" in python and "ChatHistory()" in python and '["a.png", "b.png"]' in python
    client.predict(api_name="/vision_clear")


def _rotated_jpeg(path: Path, upright: np.ndarray) -> np.ndarray:
    """Store ``upright`` turned 90° with EXIF orientation 6; return what must reach the model (decoded, upright)."""
    image = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, quality=100, subsampling=0, exif=exif)
    return np.rot90(np.asarray(Image.open(path).convert("RGB")), -1)


def test_odd_formats_reach_the_pipeline_as_the_expected_rgb_array(client, plain, tmp_path):
    base = _picture(7)
    alpha = np.full(base.shape[:2], 255, np.uint8)
    alpha[:, :12] = 0
    rgba_expected = base.copy()
    rgba_expected[:, :12] = 255
    palette = Image.fromarray(base).quantize(colors=32)
    palette.save(tmp_path / "palette.gif")
    indices = np.asarray(Image.open(tmp_path / "palette.gif"))
    colours = np.array(Image.open(tmp_path / "palette.gif").getpalette()[:768], np.uint8).reshape(-1, 3)
    gray = base[..., 0]
    cases = {
        "rgba.png": (_png(tmp_path, "rgba.png", np.dstack([base, alpha]), "RGBA"), rgba_expected),
        "rotated.jpg": (tmp_path / "rotated.jpg", _rotated_jpeg(tmp_path / "rotated.jpg", base)),
        "palette.gif": (tmp_path / "palette.gif", colours[indices]),
        "gray16.png": (_png(tmp_path, "gray16.png", gray.astype(np.uint16) * 257), np.dstack([gray] * 3)),
    }
    for name, (path, expected) in cases.items():
        assert np.array_equal(prepare(path).array, expected), name
        reply, _ = client.predict(handle_file(path), QUESTION, MODEL, [], N, api_name="/ask_image")
        assert reply == _ask(plain, [expected]), f"{name} reached the model as a different array"


def test_stop_mid_stream_keeps_the_partial_answer_and_the_app_usable(long_app, plain, tmp_path):
    client = Client(long_app.url, verbose=False)
    picture = _picture(8)
    path = _png(tmp_path, "long.png", picture)
    _accept(client, QUESTION, [path])
    job = client.submit(MODEL, "CPU", LONGEST, 0, 0.9, api_name="/vision_respond")
    deadline = time.monotonic() + 120
    while not any(isinstance(o, tuple) and len(o[1]) == 2 and o[1][-1]["content"][0]["text"] not in ("", "…")
                  for o in job.outputs()) and time.monotonic() < deadline:
        time.sleep(0.02)  # until the first streamed words arrive
    client.predict(api_name="/vision_stop")
    _, messages, metrics, _, _, _ = job.result(timeout=120)
    partial = messages[-1]["content"][0]["text"]
    assert partial.endswith(STOPPED_MARK) and "**Stopped** by user" in metrics
    generated = int(metrics.split("**Output** ")[1].split(" tokens")[0])
    assert 0 < generated < LONGEST, "stopped long before max_new_tokens"
    assert _ask(plain, [picture], tokens=LONGEST).startswith(partial[:-len(STOPPED_MARK)])
    reply, _ = client.predict(handle_file(path), QUESTION, MODEL, [], N, api_name="/ask_image")
    assert reply == _ask(plain, [picture])


def test_two_clients_at_once(tiny_app, plain, tmp_path):
    """Two first questions at once are stepped together by the batched pipeline (their ``batch`` figure: the most
    requests genai scheduled in one step) and each still equals its direct call."""
    pictures = [_picture(9), _picture(10)]
    paths = [_png(tmp_path, f"c{i}.png", p) for i, p in enumerate(pictures)]
    results: dict[int, str] = {}
    batches: list[int] = []
    clients = [Client(tiny_app.url, verbose=False) for _ in pictures]
    start = threading.Barrier(len(pictures))

    def ask(index: int) -> None:
        start.wait()
        results[index], metrics = clients[index].predict(handle_file(paths[index]), QUESTION, MODEL, [], 200,
                                                         api_name="/ask_image")
        batches.append(metrics["batch"])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert results == {i: _ask(plain, [p], tokens=200) for i, p in enumerate(pictures)}
    assert max(batches) == 2, "the two questions were stepped together"


def _header_only_png(path: Path, side: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + chunk(b"IEND", b""))
    return path


def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, plain, tmp_path):
    good = _png(tmp_path, "good.png", _picture(11))
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:70])
    huge = _header_only_png(tmp_path / "huge.png", 20000)
    cases = [
        ((None, QUESTION, MODEL), "Attach an image first"),
        ((handle_file(corrupt), QUESTION, MODEL), "corrupt.png is damaged or truncated"),
        ((handle_file(huge), QUESTION, MODEL), r"huge.png is too large \(400 megapixels\); the limit is 100"),
        ((handle_file(text), QUESTION, MODEL), "notes.png is not an image"),
        ((handle_file(good), "   ", MODEL), "Type a question about the image"),
        ((handle_file(good), QUESTION, "nope"), "unknown model id 'nope'.*valid ids: tiny-vlm"),
        ((handle_file(good), QUESTION, MODEL, [], N, "GPU"), "device 'GPU' is not available"),
        ((handle_file(good), QUESTION, MODEL, [{"role": "user", "content": "hi"}]), "must end with the assistant"),
    ]
    for args, message in cases:
        started = time.monotonic()
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/ask_image")
        assert time.monotonic() - started < 60
    reply, _ = client.predict(handle_file(good), QUESTION, MODEL, [], N, api_name="/ask_image")
    assert reply == _ask(plain, [_picture(11)])


def test_ui_refuses_a_first_message_without_image(tiny_app):
    client = Client(tiny_app.url, verbose=False)
    with pytest.raises(Exception, match="Attach an image first"):
        _send(client, QUESTION, [])


def test_clear_during_an_answer_empties_the_chat_for_good(long_app, tmp_path):
    client = Client(long_app.url, verbose=False)
    _accept(client, QUESTION, [_png(tmp_path, "clear.png", _picture(12))])
    job = client.submit(MODEL, "CPU", LONGEST, 0, 0.9, api_name="/vision_respond")
    deadline = time.monotonic() + 120
    while len(job.outputs()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    chatbot, metrics, _, _ = client.predict(api_name="/vision_clear")  # the State output is not returned
    assert chatbot == []
    _, messages, metrics, _, _, _ = job.result(timeout=120)
    assert messages == [] and metrics == METRICS_HINT, "the stopped answer did not write the old chat back"
    messages, _, _ = _send(client, QUESTION, [_png(tmp_path, "after.png", _picture(13))])
    assert len(messages) == 2, "a new conversation starts from the cleared one"
