"""Videos in the Vision panel (issue 19): frames decoded with PyAV and sampled evenly, ``/ask_video`` on a tiny
Qwen2-VL compared with a direct ``VLMPipeline.generate(ChatHistory, videos=...)`` on the same frames, bad videos."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from demos.core import video
from tests import videos

QUESTION = "What happens in the video?"
N = 16  # the tiny entry's max_new_tokens


# -------------------------------------------------------------------------------------------------------------
# Decoding and sampling (no model)


@pytest.mark.unit
def test_sample_indices_are_evenly_spread_first_and_last_included():
    assert video.sample_indices(40, 8) == [int(i) for i in np.rint(np.linspace(0, 39, 8))]
    assert video.sample_indices(40, 8)[0] == 0 and video.sample_indices(40, 8)[-1] == 39
    assert video.sample_indices(5, 8) == [0, 1, 2, 3, 4], "more frames asked than there are: each frame once"
    assert video.sample_indices(100, 2) == [0, 99]


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov", ".mkv", ".gif"])
def test_every_container_gives_the_frames_at_the_sampled_indices(tmp_path, suffix):
    source = videos.frames(40)
    path = videos.write(tmp_path / f"clip{suffix}", source)
    sampled = video.decode(path, path.name, 8)
    assert sampled.indices == tuple(video.sample_indices(40, 8)) and sampled.total == 40
    assert sampled.array.shape == (8, 48, 64, 3) and sampled.array.dtype == np.uint8
    assert sampled.array.flags.c_contiguous
    # Lossy codecs move pixels a little; the frame each index names is far closer than any other frame.
    for row, index in enumerate(sampled.indices):
        errors = [np.abs(sampled.array[row].astype(int) - frame.astype(int)).mean() for frame in source]
        assert int(np.argmin(errors)) == index
    assert sampled.seconds == pytest.approx(4.0, abs=0.2)


@pytest.mark.unit
def test_seeking_gives_the_same_frames_as_decoding_everything(tmp_path):
    path = videos.write(tmp_path / "long.mp4", videos.frames(1200, 32, 48), fps=30, keyframe_every=30)
    info = video.probe(path, path.name)
    wanted = video.sample_indices(info.frames, 8)
    seeking = video._decode_seeking(path, path.name, wanted, info.pts)
    assert seeking is not None, "the wanted frames are far apart: they are reached by seeking"
    everything = video._decode_sequential(path, path.name, wanted)
    for index in wanted:
        assert np.array_equal(seeking[index].to_ndarray(format="rgb24"), everything[index].to_ndarray(format="rgb24"))


@pytest.mark.unit
def test_frames_far_above_the_budget_are_scaled_others_kept(tmp_path):
    from demos.core.images import Budget
    path = videos.write(tmp_path / "big.mkv", videos.frames(6, 240, 320))
    assert video.decode(path, path.name, 4, Budget(max_pixels=320 * 240)).array.shape == (4, 240, 320, 3)
    small = video.decode(path, path.name, 4, Budget(max_pixels=784)).array
    assert small.shape[1] * small.shape[2] < 240 * 320 / 4


def _bad_videos(folder: Path) -> dict[str, Path]:
    good = videos.write(folder / "good.mp4", videos.frames(20)).read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(good[: len(good) // 3])
    text = folder / "notes.webm"
    text.write_text("this is not a video")
    gif = folder / "broken.gif"
    gif.write_bytes(b"GIF89a" + b"\x00" * 40)
    from PIL import Image
    still = folder / "still.gif"
    Image.fromarray(videos.frames(1)[0]).save(still)
    return {"cut": cut, "text": text, "audio": videos.write_audio_only(folder / "song.mp4"),
            "one frame": videos.write(folder / "one.mp4", videos.frames(1)), "broken gif": gif, "still gif": still,
            "too long": videos.write(folder / "long.mp4", videos.frames(200, 16, 16), fps=1)}


BAD_MESSAGES = {"cut": "could not be read as a video", "text": "could not be read as a video",
                "audio": "has no video stream (it holds audio)", "one frame": "has a single frame: attach it as an image",
                "broken gif": "could not be read as a video", "still gif": "has a single frame",
                "too long": "is 3 min 20 s long; this model takes videos up to 1 min 00 s"}


@pytest.mark.unit
def test_unusable_videos_are_refused_with_what_to_do(tmp_path):
    for kind, path in _bad_videos(tmp_path).items():
        with pytest.raises(video.VideoError, match=re.escape(BAD_MESSAGES[kind])) as caught:
            video.decode(path, path.name, 8, max_seconds=60)
        assert caught.value.param == "video", kind


@pytest.mark.unit
def test_cached_frames_still_meet_each_entrys_length_limit(tmp_path):
    """Frames decoded for an entry that takes 30 min are not handed to one that takes 1 min from the cache."""
    long = videos.write(tmp_path / "long.mp4", videos.frames(200, 16, 16), fps=1)  # 3 min 20 s
    cache = video.FramesCache()
    frames, decoded = cache.get(long, long.name, 4, None, max_seconds=1800)
    assert decoded and len(frames.indices) == 4
    again, decoded = cache.get(long, long.name, 4, None, max_seconds=1800)
    assert again is frames and not decoded
    with pytest.raises(video.VideoError, match=re.escape(BAD_MESSAGES["too long"])):
        cache.get(long, long.name, 4, None, max_seconds=60)


# -------------------------------------------------------------------------------------------------------------
# /ask_video on the tiny Qwen2-VL


@pytest.fixture(scope="module")
def direct(kit):
    """The user's own pipeline on the same folder (f32, as the catalog entry)."""
    import openvino_genai as ov_genai
    return ov_genai.VLMPipeline(str(kit.qwen2vl.ov), "CPU", INFERENCE_PRECISION_HINT="f32")


@pytest.fixture(scope="module")
def client(tiny_app):
    from gradio_client import Client
    return Client(tiny_app.url, verbose=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return videos.write(tmp_path_factory.mktemp("video") / "clip.mp4", videos.frames(40))


def _direct_chat(pipeline, turns: list[tuple[str, np.ndarray | None]], reply_tokens: int = N) -> list[str]:
    """What a user of openvino_genai writes: one ChatHistory, each video with the turn it belongs to."""
    import openvino as ov
    import openvino_genai as ov_genai
    history, replies = ov_genai.ChatHistory(), []
    for text, frames in turns:
        history.append({"role": "user", "content": text})
        sent = [ov.Tensor(frames)] if frames is not None else []
        reply = pipeline.generate(history, videos=sent, max_new_tokens=reply_tokens).texts[0]
        history.append({"role": "assistant", "content": reply})
        replies.append(reply)
    return replies


def _frames(kit, path: Path, k: int) -> np.ndarray:
    """The reference frames, independently of the app's code: every frame decoded with PyAV, then those at
    round(linspace(0, N - 1, k)) (the test clips are within the tiny model's pixel budget: no scaling)."""
    import av
    with av.open(str(path)) as container:
        every = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack([every[i] for i in np.rint(np.linspace(0, len(every) - 1, k)).astype(int)])


def _ask(client, path, question=QUESTION, history=(), frames=8, model="tiny-qwen2vl"):
    from gradio_client import handle_file
    return client.predict(handle_file(str(path)) if path else None, question, model, list(history), frames, N, "",
                          api_name="/ask_video")


def test_ask_video_equals_a_direct_generate_on_the_same_frames(client, kit, direct, clip):
    reply, metrics = _ask(client, clip)
    assert reply == _direct_chat(direct, [(QUESTION, _frames(kit, clip, 8))])[0]
    assert metrics["frames"] == 8 and metrics["video_frames"] == 40 and metrics["video_decode_ms"] > 0
    assert metrics["output_tokens"] == N and "vision_encode_ms" in metrics


def test_the_frames_control_changes_what_is_sent(client, kit, direct, clip):
    reply, metrics = _ask(client, clip, frames=4)
    assert metrics["frames"] == 4
    four = _direct_chat(direct, [(QUESTION, _frames(kit, clip, 4))])[0]
    assert reply == four and reply != _ask(client, clip, frames=8)[0]
    short = videos.write(clip.with_name("short.webm"), videos.frames(5))
    assert _ask(client, short, frames=8)[1]["frames"] == 5, "a video shorter than k frames sends each frame once"


def test_a_follow_up_question_about_the_video(client, kit, direct, clip):
    from gradio_client import handle_file
    first, _ = _ask(client, clip)
    history = [{"role": "user", "content": [QUESTION, handle_file(str(clip))]}, {"role": "assistant", "content": first}]
    follow = "And at the end?"
    second, metrics = _ask(client, None, follow, history)
    expected = _direct_chat(direct, [(QUESTION, _frames(kit, clip, 8)), (follow, None)])
    assert [first, second] == expected
    assert "frames" not in metrics, "the follow-up sends no new video"


def test_bad_videos_and_requests_are_refused_with_messages(client, tmp_path, clip):
    from gradio_client.exceptions import AppError
    for kind, path in _bad_videos(tmp_path).items():
        if kind == "too long":
            continue  # the tiny entry allows 30 min; the unit test checks the message with a lower limit
        with pytest.raises(AppError, match=re.escape(BAD_MESSAGES[kind])):
            _ask(client, path)
    with pytest.raises(AppError, match="Tiny LLaVA takes no video"):
        _ask(client, clip, model="tiny-vlm")
    with pytest.raises(AppError, match="frames 100 is more than .* at most 32 frames"):
        _ask(client, clip, frames=100)
    with pytest.raises(AppError, match=re.escape("Attach an image first (or a video)")):
        _ask(client, None)


def test_show_code_python_reproduces_the_video_answer(client, kit, clip, tmp_path):
    """'Show code' for a video turn is a runnable script that answers exactly what /ask_video answered."""
    import shutil
    import subprocess
    import sys

    from demos.core.catalog import VisionEntry
    from demos.panels.vision.code import CodeRequest, python_code

    expected, _ = _ask(client, clip, frames=6)
    shutil.copy(clip, tmp_path / "clip.mp4")
    entry = VisionEntry(id="tiny-qwen2vl", source=str(kit.qwen2vl.ov), generation={"max_new_tokens": N})
    code = python_code(CodeRequest(entry=entry, device="CPU", model_dir=kit.qwen2vl.ov,
                                   properties={"INFERENCE_PRECISION_HINT": "f32"}, turns=[(QUESTION, [])],
                                   videos=[[("clip.mp4", 6)]], max_new_tokens=N, temperature=0.0, top_p=1.0,
                                   local=True))
    assert "videos=[read_video(v, k) for v, k in clips]" in code
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(expected + "\nTTFT "), run.stdout
