"""The Vision panel's chat engine on the tiny LLaVA: exact answers, images in later turns, Stop, history parsing."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from demos.core.errors import UserError
from demos.core.runtime import PipelineKey, Runtime
from demos.panels.vision.engine import Answer, HistoryStore, ImageIn, Settings, Turn, explain, stream_answer
from demos.panels.vision.inputs import ChatTurn, FileRef, history_turns

N = 12
QUESTION = "What is in the picture?"


@pytest.fixture(scope="module")
def loaded(kit, tmp_path_factory):
    runtime = Runtime(tmp_path_factory.mktemp("vision-runtime"))
    live, _ = runtime.get(PipelineKey.make("vision", kit.vlm.ov, "CPU",
                                           properties={"INFERENCE_PRECISION_HINT": "f32"}))
    return live


@pytest.fixture(scope="module")
def plain(kit):
    """A separate pipeline for plain-prompt references: once ``generate(ChatHistory)`` has run on a VLMPipeline
    (2026.4), later ``generate(str)`` calls on it continue a hidden chat instead of starting afresh."""
    import openvino_genai as ov_genai
    return ov_genai.VLMPipeline(str(kit.vlm.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


def _image(seed: int, shape=(32, 40, 3)) -> ImageIn:
    array = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return ImageIn(array, f"digest-{seed}", f"image-{seed}.png")


def _answer(loaded, turns, store, tokens=N, stop=None) -> Answer:
    items = list(stream_answer(loaded, turns, Settings(tokens), stop, store=store))
    assert isinstance(items[-1], Answer)
    return items[-1]


def _direct_chat(pipeline, turns: list[tuple[str, list[ImageIn]]], tokens=N) -> list[str]:
    """What a user of openvino_genai writes: one ChatHistory, images passed with the turn they belong to."""
    import openvino as ov
    import openvino_genai as ov_genai

    history, replies = ov_genai.ChatHistory(), []
    for text, images in turns:
        history.append({"role": "user", "content": text})
        reply = pipeline.generate(history, images=[ov.Tensor(i.array) for i in images], max_new_tokens=tokens).texts[0]
        history.append({"role": "assistant", "content": reply})
        replies.append(reply)
    return replies


def test_first_turn_equals_a_direct_generate(loaded, plain):
    import openvino as ov
    image = _image(1)
    answer = _answer(loaded, [Turn(QUESTION, (image,))], HistoryStore())
    direct = plain.generate(QUESTION, images=[ov.Tensor(image.array)], max_new_tokens=N).texts[0]
    assert answer.text == direct and not answer.stopped
    assert answer.metrics["output_tokens"] == N and answer.metrics["images"] == 1
    assert {"ttft_ms", "tokens_per_s", "vision_encode_ms", "load_s", "image_prep_ms"} <= set(answer.metrics)


def test_two_images_in_one_turn(loaded, plain):
    import openvino as ov
    a, b = _image(2), _image(3, (48, 32, 3))
    answer = _answer(loaded, [Turn(QUESTION, (a, b))], HistoryStore())
    direct = plain.generate(QUESTION, images=[ov.Tensor(a.array), ov.Tensor(b.array)],
                                      max_new_tokens=N).texts[0]
    assert answer.text == direct
    assert answer.text != _answer(loaded, [Turn(QUESTION, (a,))], HistoryStore()).text, "the second image counts"


def test_new_images_in_later_turns_grown_and_rebuilt(loaded):
    a, b = _image(4), _image(5)
    plan = [(QUESTION, [a]), ("And what about this one?", [b]), ("Compare them.", [])]
    expected = _direct_chat(loaded.pipeline, plan)

    store = HistoryStore()
    turns: list[Turn] = []
    for (text, images), reference in zip(plan, expected):
        answer = _answer(loaded, [*turns, Turn(text, tuple(images))], store)
        assert answer.text == reference, "turn by turn, as a direct ChatHistory user gets it"
        assert "context_rebuild_ms" not in answer.metrics, "a continued conversation is not rebuilt"
        turns.append(Turn(text, tuple(images), answer.text))

    # The same conversation unknown to the pipeline (another app, an API client's history): rebuilt, same answer.
    rebuilt = _answer(loaded, [*turns[:2], Turn("Compare them.")], HistoryStore())
    assert rebuilt.text == expected[2] and rebuilt.metrics["context_rebuild_ms"] > 0


def test_interleaved_conversations_do_not_mix(loaded):
    a, b = _image(6), _image(7)
    store = HistoryStore()
    first_a = _answer(loaded, [Turn(QUESTION, (a,))], store)
    first_b = _answer(loaded, [Turn(QUESTION, (b,))], store)
    follow = "Describe it."
    second_a = _answer(loaded, [Turn(QUESTION, (a,), first_a.text), Turn(follow)], store)
    second_b = _answer(loaded, [Turn(QUESTION, (b,), first_b.text), Turn(follow)], store)
    assert second_a.text == _direct_chat(loaded.pipeline, [(QUESTION, [a]), (follow, [])])[1]
    assert second_b.text == _direct_chat(loaded.pipeline, [(QUESTION, [b]), (follow, [])])[1]
    assert second_a.text != second_b.text


def test_stop_ends_the_answer_and_the_pipeline_stays_usable(loaded):
    image = _image(8)
    store = HistoryStore()
    stop = threading.Event()
    chunks = 0
    answer = None
    for item in stream_answer(loaded, [Turn(QUESTION, (image,))], Settings(400), stop, store=store):
        if isinstance(item, Answer):
            answer = item
        else:
            chunks += 1
            stop.set()
    assert answer is not None and answer.stopped and answer.metrics["stopped"] is True
    assert answer.metrics["output_tokens"] < 400
    full = _answer(loaded, [Turn(QUESTION, (image,))], HistoryStore(), tokens=400).text
    assert full.startswith(answer.text) and len(answer.text) < len(full)
    assert len(store) == 0, "a stopped turn is not kept (genai rolled its images back)"


def test_closing_the_stream_stops_generation(loaded):
    stream = stream_answer(loaded, [Turn(QUESTION, (_image(9),))], Settings(3000), store=HistoryStore())
    next(stream)
    stream.close()  # a client that went away
    assert loaded.lock.acquire(timeout=5), "the generation ended and released the pipeline"
    loaded.lock.release()


@pytest.mark.unit
def test_history_in_messages_format_becomes_turns():
    from demos.ui.uploads import upload_folder
    a, b = str(upload_folder() / "x" / "a.png"), str(upload_folder() / "y" / "b.png")  # uploads only (issue 11)
    file_a = {"path": a, "orig_name": "a.png", "meta": {"_type": "gradio.FileData"}}
    file_b = {"path": b, "meta": {"_type": "gradio.FileData"}}
    turns = history_turns([
        {"role": "user", "content": {"type": "file", "file": file_a}},  # Gradio Chatbot: a file per message
        {"role": "user", "content": "What is this?"},
        {"role": "assistant", "content": "A cat."},
        {"role": "assistant", "content": "Tiny stats", "metadata": {"title": "stats"}},
        {"role": "user", "content": [{"type": "text", "text": "And this?"}, {"type": "image", "image": file_b}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A dog."}]},
    ])
    assert turns == [ChatTurn("What is this?", (FileRef(a, "a.png"),), "A cat."),
                     ChatTurn("And this?", (FileRef(b, "b.png"),), "A dog.")]


@pytest.mark.unit
@pytest.mark.parametrize("history, message", [
    ([{"role": "user", "content": [{"path": "/etc/passwd"}]}, {"role": "assistant", "content": "x"}],
     "send files with gradio_client.handle_file"),
    ([{"role": "assistant", "content": "hi"}], "must follow a user message"),
    ([{"role": "user", "content": "hi"}], "must end with the assistant's reply"),
    ([{"role": "system", "content": "be brief"}], "role 'system' is not supported"),
    (["hello"], "must be a dict with 'role' and 'content'"),
])
def test_bad_histories_are_explained(history, message):
    with pytest.raises(ValueError, match=message):
        history_turns(history)


@pytest.mark.unit
def test_genai_errors_are_explained():
    tag = explain(RuntimeError("Exception from src/x.cpp:1:\nCheck 'idx < n' failed at y:\n"
                               "Missing image/video with index 1"))
    assert isinstance(tag, ValueError) and "image tag" in str(tag)
    npu = explain(RuntimeError("VLM pipeline on NPU may only process input embeddings up to 1024 tokens. "
                               "2000 is passed."))
    assert "2000 tokens, the limit is 1024" in str(npu)
    assert isinstance(tag, UserError) and isinstance(npu, UserError)
    other = RuntimeError("Exception from src/a.cpp:3:\nsomething broke\n")
    assert explain(other) is other  # not the user's doing: stays a failure, logged with its traceback


def test_show_code_python_runs_and_reproduces_the_answer(loaded, kit, tmp_path):
    """The Python of 'Show code' is a runnable script that answers exactly what the panel answered."""
    import subprocess
    import sys

    from PIL import Image

    from demos.core.catalog import VisionEntry
    from demos.core.images import prepare
    from demos.panels.vision.code import CodeRequest, python_code
    from demos.panels.vision.models import facts

    picture = np.random.default_rng(12).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "photo.png")
    budget = facts(kit.vlm.ov).budget
    image = ImageIn(prepare(tmp_path / "photo.png", budget).array, "d", "photo.png")
    expected = _answer(loaded, [Turn(QUESTION, (image,))], HistoryStore()).text
    entry = VisionEntry(id="tiny-vlm", source=str(kit.vlm.ov), generation={"max_new_tokens": N, "temperature": 0})
    code = python_code(CodeRequest(entry=entry, device="CPU", model_dir=kit.vlm.ov,
                                   properties={"INFERENCE_PRECISION_HINT": "f32"}, turns=[(QUESTION, ["photo.png"])],
                                   max_new_tokens=N, temperature=0.0, top_p=1.0, budget=budget, local=True))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(expected + "\nTTFT ")
