"""The local Hub stand-in (tests/hubserver.py) against the real huggingface_hub download code."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hubserver import HubServer

REPO = "OpenVINO/tiny-test-ov"
GATED = "gated-org/locked-ov"
TOKEN = "hf_test_token_0123456789"


def make_repo(folder: Path, weight_bytes: int = 4096) -> Path:
    """A small repo with nested folders and a binary (LFS-like) file of deterministic content."""
    (folder / "tokenizer" / "extra").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "tiny"}\n')
    (folder / "openvino_model.bin").write_bytes(bytes(i % 251 for i in range(weight_bytes)))
    (folder / "tokenizer" / "tokenizer.json").write_text('{"vocab": {}}\n')
    (folder / "tokenizer" / "extra" / "notes.txt").write_text("nested file\n")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file, following the cache's symlinks."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def hub_cache(hf_home, monkeypatch) -> Path:
    """An empty HF cache with no token anywhere, so only what a test passes is sent."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    return hf_home / "hub"


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def hub(repo, tmp_path, hub_cache):
    """The server with one public and one gated repo, as huggingface_hub's default endpoint."""
    gated = make_repo(tmp_path / "gated")
    with HubServer({REPO: repo, GATED: gated}, gated={GATED}, tokens={TOKEN}) as server:
        with server.as_default_endpoint():
            yield server


def content_gets(hub: HubServer) -> int:
    return sum(hub.downloads.values())


def test_snapshot_download_nested_then_second_call_downloads_nothing(hub, repo, hub_cache):
    path = Path(snapshot_download(REPO))
    assert path == hub_cache / "models--OpenVINO--tiny-test-ov" / "snapshots" / hub.commit_sha(REPO)
    assert tree(path) == tree(repo)
    assert hub.downloads == {(REPO, name): 1 for name in tree(repo)}

    hub.reset_stats()
    assert Path(snapshot_download(REPO)) == path
    assert content_gets(hub) == 0
    # Only the repo info is asked again: a cached file for a known sha needs no HEAD.
    assert [(r.method, r.path) for r in hub.requests] == [("GET", f"/api/models/{REPO}/revision/main")]


def test_hf_hub_download_and_model_info(hub, repo):
    local = hf_hub_download(REPO, "tokenizer/extra/notes.txt")
    assert Path(local).read_text() == "nested file\n"
    assert hub.downloads == {(REPO, "tokenizer/extra/notes.txt"): 1}

    info = HfApi().model_info(REPO)
    assert info.sha == hub.commit_sha(REPO)
    assert {s.rfilename: s.size for s in info.siblings} == {k: len(v) for k, v in tree(repo).items()}
    assert next(s for s in info.siblings if s.rfilename == "openvino_model.bin").lfs is not None
    # The module-level functions use an HfApi built at import; as_default_endpoint patches it too.
    import huggingface_hub
    assert huggingface_hub.model_info(REPO).sha == info.sha
    listed = {f.path for f in HfApi().list_repo_tree(REPO, recursive=True)}
    assert listed == set(tree(repo)) | {"tokenizer", "tokenizer/extra"}
    assert {f.path for f in HfApi().list_repo_tree(REPO, path_in_repo="tokenizer")} == \
        {"tokenizer/tokenizer.json", "tokenizer/extra"}


def test_missing_repo_file_and_revision(hub):
    with pytest.raises(RepositoryNotFoundError) as error:
        snapshot_download("OpenVINO/no-such-model")
    assert not isinstance(error.value, GatedRepoError)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("OpenVINO/no-such-model", "config.json")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "no_such_file.json")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="v9")


def test_gated_repo_needs_the_configured_token(hub):
    with pytest.raises(GatedRepoError):
        snapshot_download(GATED)
    with pytest.raises(GatedRepoError):
        hf_hub_download(GATED, "config.json", token="hf_someone_else")
    assert {r.status for r in hub.requests if "/resolve/" in r.path} == {401, 403}
    assert content_gets(hub) == 0

    path = Path(snapshot_download(GATED, token=TOKEN))
    assert (path / "tokenizer" / "extra" / "notes.txt").read_text() == "nested file\n"
    assert all(r.authorized for r in hub.requests if r.status == 200 and "/resolve/" in r.path)


def test_offline_after_download_uses_cache_without_requests(hub, monkeypatch):
    path = snapshot_download(REPO)
    hub.reset_stats()
    assert snapshot_download(REPO, local_files_only=True) == path
    assert hf_hub_download(REPO, "config.json", local_files_only=True) == str(Path(path) / "config.json")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert snapshot_download(REPO) == path
    assert Path(hf_hub_download(REPO, "tokenizer/tokenizer.json")).is_file()
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(GATED)
    assert hub.requests == []


def test_changed_repo_gets_new_sha_and_only_changed_file_downloads(hub, repo):
    first = Path(snapshot_download(REPO))
    (repo / "config.json").write_text('{"model_type": "tiny", "v": 2}\n')
    hub.reset_stats()
    second = Path(snapshot_download(REPO))
    assert second != first and second.name == hub.commit_sha(REPO)
    assert (second / "config.json").read_text().endswith('"v": 2}\n')
    # Unchanged files have the same ETag, so their blobs are reused after a HEAD.
    assert hub.downloads == {(REPO, "config.json"): 1}


def test_throttle_slows_the_download(repo, hub_cache):
    size = 200_000
    (repo / "openvino_model.bin").write_bytes(os.urandom(size))
    with HubServer({REPO: repo}, bytes_per_second=500_000, chunk_size=16_384) as hub:
        started = time.monotonic()
        local = hf_hub_download(REPO, "openvino_model.bin", endpoint=hub.url)
        elapsed = time.monotonic() - started
    assert Path(local).read_bytes() == (repo / "openvino_model.bin").read_bytes()
    assert 0.3 < elapsed < 5, elapsed
    assert hub.bytes_sent == size


def test_dropped_connection(repo, hub_cache):
    with HubServer({REPO: repo}, fail_after_bytes=1000, fail_files={"openvino_model.bin"}) as hub:
        url = f"{hub.url}/{REPO}/resolve/main/openvino_model.bin"
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(url)
        assert httpx.get(f"{hub.url}/{REPO}/resolve/main/config.json").status_code == 200

        # One drop: huggingface_hub retries (after a 1 s pause) and gets the whole file.
        hub.fail_times = 1
        local = hf_hub_download(REPO, "openvino_model.bin", endpoint=hub.url)
        assert Path(local).read_bytes() == (repo / "openvino_model.bin").read_bytes()
        assert hub.downloads[(REPO, "openvino_model.bin")] == 3  # the raw GET, the dropped one, the retry


def test_range_and_head(repo):
    data = (repo / "openvino_model.bin").read_bytes()
    with HubServer({REPO: repo}) as hub:
        url = f"{hub.url}/{REPO}/resolve/main/openvino_model.bin"
        part = httpx.get(url, headers={"Range": "bytes=100-"})
        assert part.status_code == 206 and part.content == data[100:]
        assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
        head = httpx.head(url)
        assert head.headers["X-Repo-Commit"] == hub.commit_sha(REPO)
        assert head.headers["Content-Length"] == str(len(data))
        assert not any(name.lower().startswith("x-xet") for name in head.headers)
        missing = httpx.head(f"{hub.url}/nobody/nothing/resolve/main/x")
        assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "RepoNotFound")
        assert hub.downloads == {(REPO, "openvino_model.bin"): 1}  # HEAD is not a download


def test_lfs_redirect_like_the_cdn(repo, hub_cache):
    with HubServer({REPO: repo}, redirect_lfs=True) as hub:
        path = Path(snapshot_download(REPO, endpoint=hub.url))
        assert tree(path) == tree(repo)
        assert any(r.status == 302 for r in hub.requests)
        assert any(r.path.startswith(f"/_lfs/{REPO}/") and r.status == 200 for r in hub.requests)


def test_subprocess_downloads_through_hf_endpoint(repo, tmp_path):
    script = textwrap.dedent(f"""
        from huggingface_hub import snapshot_download
        print(snapshot_download({REPO!r}))
    """)
    with HubServer({REPO: repo}) as hub:
        env = {**os.environ, **hub.env(), "HF_HOME": str(tmp_path / "sub-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        env.pop("HF_TOKEN", None)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert tree(Path(done.stdout.strip().splitlines()[-1])) == tree(repo)
        assert content_gets(hub) == len(tree(repo))


def test_start_stop_and_stop_during_a_slow_download(repo):
    hub = HubServer({REPO: repo}, bytes_per_second=1000, chunk_size=256).start()
    port = hub.port
    with httpx.stream("GET", f"{hub.url}/{REPO}/resolve/main/openvino_model.bin") as response:
        assert response.status_code == 200
        started = time.monotonic()
        hub.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
