"""Shared fixtures: tiny models (cached between runs), an isolated hub cache, the app as a subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kit():
    """Every tiny model, built once per machine (cached under ~/.cache/ov-genai-demos-tests)."""
    from tests.kit import build_all
    return build_all()


@pytest.fixture(scope="session")
def tiny_catalog_path(kit, tmp_path_factory) -> Path:
    from tests.kit import write_catalog
    return write_catalog(kit, tmp_path_factory.mktemp("tiny-catalog"))


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Hugging Face cache for this test; never the user's."""
    from huggingface_hub import constants
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppProcess:
    """``python app.py`` running in a subprocess, with its output kept for failure messages."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self._log = open(log_path, "w") if log_path else subprocess.DEVNULL
        full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--port", str(self.port)],
                                     cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> "AppProcess":
        import urllib.request
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"app did not answer on {self.url} within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()


@pytest.fixture(scope="session")
def tiny_app(tiny_catalog_path, tmp_path_factory):
    """The app on the tiny catalog, launched once per session as a user would."""
    folder = tmp_path_factory.mktemp("app")
    app = AppProcess(["--models", str(tiny_catalog_path), "--cache-dir", str(folder / "cache")],
                     env={"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=folder / "app.log")
    try:
        yield app.wait_ready()
    finally:
        app.stop()
