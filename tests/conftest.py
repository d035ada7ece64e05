"""Shared fixtures: tiny models (cached between runs), an isolated hub cache, the app as a subprocess.

Tiers (see README "Tests"): ``unit`` tests are marked in their files; every other test is marked ``models`` here,
and ``tests/test_browser_*.py`` and tests named ``test_browser_*`` also ``browser``. A unit test needs no model
kit and imports no torch: asking for a kit fixture is a collection error, and building or importing one anyway
fails the test.

Isolation: every test runs with its own HF_HOME, and the whole session with a temporary HOME and XDG folders, so
no test reads or writes the user's ~/.cache (Hugging Face, openvino-genai-demos). The tiny model cache
(TINY_MODELS_CACHE, default ~/.cache/ov-genai-demos-tests of the real HOME) stays shared on purpose.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Fixtures that build or need the tiny models; a unit test asking for one is refused at collection.
MODEL_FIXTURES = frozenset({"kit", "tiny_catalog_path", "tiny_app"})
# What a unit test must not import (seconds each, and the point of the tier is not needing them).
HEAVY_MODULES = ("torch", "optimum", "transformers", "diffusers")
# Hugging Face variables that would point a test at a shared cache despite HF_HOME.
HF_CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "HF_DATASETS_CACHE",
                 "TRANSFORMERS_CACHE", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH")
REAL_TINY_MODELS_CACHE = os.environ.get("TINY_MODELS_CACHE") or str(Path.home() / ".cache" / "ov-genai-demos-tests")
# Playwright looks for its own browsers under HOME; keep the real place (the browser tests use Debian's chromium).
REAL_PLAYWRIGHT_BROWSERS = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(Path.home() / ".cache" / "ms-playwright")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under exactly ``-m unit``, skip importing test files that never say ``mark.unit``: they would only be
    deselected, after importing Gradio, the kit's helpers and the like (a third of the tier's time here)."""
    if config.getoption("markexpr", "").strip() != "unit" or collection_path.suffix != ".py" \
            or not collection_path.name.startswith("test_"):
        return None
    return "mark.unit" not in collection_path.read_text(encoding="utf-8", errors="replace") or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that is not ``unit`` as ``models`` (and browser tests, ``tests/test_browser_*.py`` and tests
    named ``test_browser_*``, ``browser``); refuse unit tests that
    ask for the model kit, so the fast tier cannot build models by construction."""
    wrong = []
    for item in items:
        if item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.models)
        elif MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            wrong.append(item.nodeid)
        if item.path.name.startswith("test_browser_") or getattr(item, "originalname", "").startswith("test_browser_"):
            item.add_marker(pytest.mark.browser)
    if wrong:
        raise pytest.UsageError("unit tests must not use the model kit (" + ", ".join(sorted(MODEL_FIXTURES))
                                + "); drop the unit marker or the fixture:\n  " + "\n  ".join(wrong))


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory):
    """HOME and XDG folders in a temporary directory for the whole session (session fixtures and launched apps
    included), so ``~/.cache/...`` defaults never reach the user's; the tiny model cache keeps its real place."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINY_MODELS_CACHE", REAL_TINY_MODELS_CACHE)
        patch.setenv("PLAYWRIGHT_BROWSERS_PATH", REAL_PLAYWRIGHT_BROWSERS)
        patch.setenv("HOME", str(home))
        xdg = {"XDG_CACHE_HOME": ".cache", "XDG_CONFIG_HOME": ".config", "XDG_DATA_HOME": ".local/share",
               "XDG_STATE_HOME": ".local/state"}
        for name, sub in xdg.items():
            patch.setenv(name, str(home / sub))
        patch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
        for name in HF_CACHE_VARS:
            patch.delenv(name, raising=False)
        yield home


def _point_hub_at(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HOME for this test; huggingface_hub reads it once at import, so patch its constants if it is loaded
    (and do not import it just for that: unit tests stay free of it)."""
    monkeypatch.setenv("HF_HOME", str(home))
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HOME", str(home))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(home / "hub"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))


def _refuse_kit(*_args, **_kwargs):
    raise RuntimeError("a unit test tried to build or open the tiny model kit; mark it models (drop `unit`)")


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Every test: its own empty HF_HOME. Unit tests: no model kit, and no torch & co. imported by the test."""
    _point_hub_at(tmp_path / "hf-home", monkeypatch)
    unit = request.node.get_closest_marker("unit") is not None
    if unit:
        import tests.kit.common  # cheap (no torch); patched so a direct build_all() fails instead of building
        monkeypatch.setattr(tests.kit.common, "cache_root", _refuse_kit)
    before = set(sys.modules)
    yield
    if unit:
        loaded = sorted(name for name in set(sys.modules) - before if name.split(".")[0] in HEAVY_MODULES)
        assert not loaded, f"a unit test imported {loaded[:5]}: mark it models (drop `unit`)"


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
    """A fresh, empty Hugging Face cache for this test (the autouse one), online even if the shell is offline."""
    from huggingface_hub import constants
    home = tmp_path / "hf-home"
    _point_hub_at(home, monkeypatch)
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


@contextlib.contextmanager
def app_on_catalog(kit, folder: Path, edit: Callable[[dict], None] | None = None,
                   args: tuple[str, ...] = ()) -> Iterator[AppProcess]:
    """``python app.py`` on the tiny catalog changed by ``edit(catalog)``, with its own cache, hub folder and log."""
    import yaml

    from tests.kit import catalog_dict
    catalog = catalog_dict(kit, folder / "cache")
    if edit is not None:
        edit(catalog)
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    app = AppProcess(["--models", str(path), "--cache-dir", str(folder / "cache"), *args],
                     env={"HF_HOME": str(folder / "hf-home"), "HF_HUB_OFFLINE": "1"}, log_path=folder / "app.log")
    try:
        yield app.wait_ready()
    finally:
        app.stop()


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
