"""Issue 11, defects 6 and 9: the disk cannot be filled through the app, and its temp files are its own.

The app runs with ``TMPDIR`` pointing at a test folder where the old fixed-name temp folders are pre-planted as
symlinks to a "victim" folder (as another local user could plant them); small upload limits and a short temp
age come from the catalog's ``settings``. Everything is driven over raw HTTP.
"""
from __future__ import annotations

import base64
import io
import os
import stat
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests import media
from tests.conftest import AppProcess
from tests.rawhttp import call

MB = 1 << 20
LIMITS = {"max_upload_mb": 1, "max_audio_mb": 0.5, "max_image_mb": 0.25, "temp_keep_seconds": 2}
OLD_FIXED_NAMES = ["openvino-genai-demos-images", "ov-genai-demos-vision-uploads", "ov-genai-demos-vision-samples"]
APP_PREFIX = "ov-genai-demos-"


@pytest.fixture(scope="module")
def world(kit, tmp_path_factory):
    """The launched app, its TMPDIR (with the planted symlinks) and the victim folder they point to."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("harden-disk")
    tmpdir, victim = folder / "tmp", folder / "victim"
    tmpdir.mkdir()
    (victim / "hour-old-run").mkdir(parents=True)
    (victim / "hour-old-run" / "keep.txt").write_text("someone else's file")
    (victim / "keep.png").write_bytes(b"not ours")
    old = time.time() - 7200
    for path in (victim / "hour-old-run" / "keep.txt", victim / "keep.png", victim / "hour-old-run"):
        os.utime(path, (old, old))
    for name in OLD_FIXED_NAMES:
        (tmpdir / name).symlink_to(victim, target_is_directory=True)
    catalog = catalog_dict(kit, folder / "cache")
    catalog["settings"].update(LIMITS)
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    env = {"HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmpdir)}
    app = AppProcess(["--models", str(path)], env=env, log_path=folder / "app.log")
    try:
        yield {"app": app.wait_ready(), "tmpdir": tmpdir, "victim": victim}
    finally:
        app.stop()


def _tree(root: Path) -> dict[str, float]:
    """Every path under ``root`` (links not followed) with its mtime."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = path.lstat().st_mtime
    return found


def _files_holding(root: Path, marker: bytes) -> list[Path]:
    """Regular files under ``root`` (links not followed) whose bytes contain ``marker``."""
    hits = []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            if marker in path.read_bytes():
                hits.append(path)
    return hits


def _left_behind(world: dict, marker: bytes) -> list[Path]:
    """Files holding ``marker`` in the app's TMPDIR or where its planted links point."""
    return _files_holding(world["tmpdir"], marker) + _files_holding(world["victim"], marker)


def _upload(base_url: str, name: str, data: bytes) -> tuple[int, str]:
    """POST one file to ``/gradio_api/upload`` as the browser does; (status, body text)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base_url.rstrip("/") + "/gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _file_data(path: str, name: str) -> dict:
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _uploaded(base_url: str, name: str, data: bytes) -> dict:
    import json
    status, text = _upload(base_url, name, data)
    assert status == 200, text
    return _file_data(json.loads(text)[0], name)


def _wav(seconds: float, folder: Path, rate: int = 16000) -> bytes:
    return media.write_wav(folder / "clip.wav", media.signal(seconds, rate), rate).read_bytes()


def _png_data_url(side: int, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _app_folders(tmpdir: Path) -> list[Path]:
    return [p for p in tmpdir.iterdir() if p.name.startswith(APP_PREFIX) and p.name not in OLD_FIXED_NAMES]


def _transcribe_ui(base_url: str, data: bytes, name: str = "talk.wav"):
    return call(base_url, "transcribe_ui", [_uploaded(base_url, name, data), None, "tiny-whisper", "CPU", "auto",
                                            "transcribe", "segments", "", "", False])


# -------------------------------------------------------------------------------------------------------------
# Defect 6: the disk cannot be filled


def test_an_upload_over_the_limit_is_refused_naming_it_and_leaves_nothing(world):
    marker = uuid.uuid4().hex.encode()
    data = marker + os.urandom(int(1.5 * MB))
    status, text = _upload(world["app"].url, "big.bin", data)
    assert status == 413, (status, text[:200])
    assert str(LIMITS["max_upload_mb"] * MB) in text, text  # Gradio's message gives the limit in bytes
    assert _left_behind(world, marker) == []


def test_speech_refuses_audio_over_its_limit_in_its_words_and_drops_the_upload(world, tmp_path):
    data = _wav(20, tmp_path)  # 0.61 MB: under the global upload cap, over the Speech panel's 0.5 MB
    assert LIMITS["max_audio_mb"] * MB < len(data) < LIMITS["max_upload_mb"] * MB
    file = _uploaded(world["app"].url, "long-talk.wav", data)
    outcome = call(world["app"].url, "transcribe", [file, "tiny-whisper", "", "transcribe", False, "", "", "", False])
    assert outcome.event == "error", outcome.data
    assert "0.5 MB" in outcome.message and "long-talk.wav" in outcome.message, outcome.message
    assert "Traceback" not in outcome.message
    assert not Path(file["path"]).exists(), "the refused upload stays on disk"


def test_vision_refuses_an_uploaded_image_over_its_limit_and_drops_it(world):
    png = base64.b64decode(_png_data_url(400, seed=5).split(",", 1)[1])  # ~0.46 MB: over max_image_mb only
    file = _uploaded(world["app"].url, "huge.png", png)
    outcome = call(world["app"].url, "ask_image", [file, "What is it?", "tiny-vlm", [], 4, ""])
    assert outcome.event == "error", outcome.data
    assert "huge.png" in outcome.message and "0.25 MB" in outcome.message, outcome.message
    assert not Path(file["path"]).exists(), "the refused upload stays on disk"


def test_a_refused_data_url_history_image_leaves_no_file(world):
    small, too_large = _png_data_url(32, seed=2), _png_data_url(400, seed=3)  # 400 px of noise: ~0.46 MB
    cases = ((small, "", "Type a question"),                 # a good image, refused for the empty question
             (too_large, "And now?", "0.25 MB"))              # refused for its size, saying the limit
    for url, question, words in cases:
        history = [{"role": "user", "content": ["What is this?", {"type": "image_url", "image_url": {"url": url}}]},
                   {"role": "assistant", "content": "A picture."}]
        outcome = call(world["app"].url, "ask_image", [None, question, "tiny-vlm", history, 4, ""])
        assert outcome.event == "error", outcome.data
        assert words in outcome.message, outcome.message
        payload = base64.b64decode(url.split(",", 1)[1])
        assert _left_behind(world, payload[-2048:]) == [], words


# -------------------------------------------------------------------------------------------------------------
# Defect 9: the app's temp folder is its own


def test_the_app_temp_folder_is_private(world):
    folders = _app_folders(world["tmpdir"])
    assert len(folders) == 1, folders
    info = folders[0].lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert folders[0].name not in OLD_FIXED_NAMES


def test_planted_symlinks_at_the_old_names_are_never_followed(world, tmp_path):
    url, victim = world["app"].url, world["victim"]
    before = _tree(victim)
    picture = call(url, "generate_image", ["a red square", "tiny-sd", "", {}, 64, 64, 2, 1.0, 7, ""])
    assert picture.event == "complete", picture.data
    answer = call(url, "ask_image", [_png_data_url(32, seed=1), "What is it?", "tiny-vlm", [], 4, ""])
    assert answer.event == "complete", answer.data
    heard = _transcribe_ui(url, _wav(2, tmp_path))
    assert heard.event == "complete", heard.data
    assert _tree(victim) == before


def test_twenty_transcriptions_keep_the_temp_folder_bounded(world, tmp_path):
    url, tmpdir = world["app"].url, world["tmpdir"]
    clip = _wav(1, tmp_path)

    def transcript_folders() -> set[Path]:
        return {Path(p).parent for p in _tree(tmpdir) if p.endswith("talk.txt") and "gradio" not in Path(p).parts}

    for _ in range(10):
        assert _transcribe_ui(url, clip).event == "complete"
    first = transcript_folders()
    time.sleep(LIMITS["temp_keep_seconds"] + 1)  # let the first ten age past the sweep's limit
    for _ in range(10):
        assert _transcribe_ui(url, clip).event == "complete"
    now = transcript_folders()
    assert not (first & now), "transcripts older than temp_keep_seconds were not swept"
    assert len(now) <= 10


def test_data_url_images_are_swept_too(world):
    url = world["app"].url
    first, second = _png_data_url(24, seed=11), _png_data_url(24, seed=12)
    tail = base64.b64decode(first.split(",", 1)[1])[-256:]
    assert call(url, "ask_image", [first, "What is it?", "tiny-vlm", [], 4, ""]).event == "complete"
    assert _left_behind(world, tail), "the accepted image is kept (for the next question of the conversation)"
    time.sleep(LIMITS["temp_keep_seconds"] + 1)
    assert call(url, "ask_image", [second, "What is it?", "tiny-vlm", [], 4, ""]).event == "complete"
    assert not _left_behind(world, tail), "a data-URL image older than temp_keep_seconds was not swept"


def test_the_app_temp_folder_is_removed_at_exit(world):
    folders = _app_folders(world["tmpdir"])
    assert folders
    world["app"].stop()
    assert not any(folder.exists() for folder in folders)
    assert _tree(world["victim"])  # the victim is still there


@pytest.mark.unit
def test_the_sweep_removes_old_links_without_following_them(tmp_path):
    from demos.core import files

    victim, swept = tmp_path / "victim", tmp_path / "swept"
    (victim / "old").mkdir(parents=True)
    (victim / "old" / "keep.txt").write_text("not ours")
    (swept / "old-run").mkdir(parents=True)
    (swept / "old-run" / "inner-link").symlink_to(victim, target_is_directory=True)
    (swept / "old-link").symlink_to(victim, target_is_directory=True)
    (swept / "fresh").mkdir()
    old = time.time() - 7200
    for path in (victim / "old", swept / "old-run"):
        os.utime(path, (old, old))
    os.utime(swept / "old-link", (old, old), follow_symlinks=False)
    assert files.sweep(swept, max_age=60) == 2
    assert sorted(p.name for p in swept.iterdir()) == ["fresh"]
    assert (victim / "old" / "keep.txt").read_text() == "not ours"
