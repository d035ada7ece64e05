"""The house rules of DESIGN §2, read from the imports of every module under demos/.

- ``demos/core`` imports neither gradio nor fastapi, nor ``demos.panels``, ``demos.ui`` or ``demos.api``;
- a panel never imports another panel, and never reaches past ``Suite`` into the loader or the runtime;
- ``demos/api`` (the OpenAI-compatible routes) imports no gradio and no ``demos.ui``, and of the panels only their
  Gradio-free modules (engines, checks, settings): one behaviour behind the UI and the API, never a second copy.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DEMOS = Path(__file__).resolve().parents[1] / "demos"
CORE_FORBIDDEN = ("gradio", "fastapi", "starlette", "demos.panels", "demos.ui", "demos.api")
PAST_SUITE = ("demos.core.loader", "demos.core.runtime")
API_FORBIDDEN = ("gradio", "demos.ui")


def imports_gradio(panel_module: str) -> bool:
    """Whether the panel module ``demos.panels.<panel>.<name>`` imports gradio itself (its layout, its handlers)."""
    path = DEMOS.parent / (panel_module.replace(".", "/") + ".py")
    if not path.is_file():
        return False
    names = imports(path.read_text(encoding="utf-8"), panel_module)
    return any(_within(name, ("gradio",)) for name in names)


def module_name(path: Path) -> str:
    parts = path.relative_to(DEMOS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module ``source`` imports (relative imports resolved against ``module``), in or out of functions."""
    found: list[str] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.append(target)
            # "from demos.panels import chat" imports the module demos.panels.chat
            found += [f"{target}.{alias.name}" for alias in node.names]
    return found


def _within(name: str, roots: tuple[str, ...]) -> str | None:
    return next((root for root in roots if name == root or name.startswith(root + ".")), None)


def violations(module: str, names: list[str]) -> list[str]:
    problems = []
    if module == "demos.core" or module.startswith("demos.core."):
        problems += [f"{module} imports {name} (core imports no UI or web framework)"
                     for name in names if _within(name, CORE_FORBIDDEN)]
    if module.startswith("demos.panels."):
        own = ".".join(module.split(".")[:3])
        for name in names:
            if name.startswith("demos.panels.") and not (name == own or name.startswith(own + ".")):
                if len(name.split(".")) >= 3:
                    problems.append(f"{module} imports another panel: {name}")
            if _within(name, PAST_SUITE):
                problems.append(f"{module} reaches past Suite into {name}")
    if module == "demos.api" or module.startswith("demos.api."):
        problems += [f"{module} imports {name} (the API imports no UI code)" for name in names
                     if _within(name, API_FORBIDDEN)]
        problems += [f"{module} imports {name}, a panel module with Gradio in it (the API uses the engines)"
                     for name in names if name.startswith("demos.panels.") and len(name.split(".")) == 4
                     and imports_gradio(name)]
    return problems


def all_modules() -> list[tuple[str, Path]]:
    return [(module_name(path), path) for path in sorted(DEMOS.rglob("*.py"))]


def test_the_floors_exist() -> None:
    for floor in ("core", "panels", "ui", "api"):
        assert (DEMOS / floor / "__init__.py").is_file(), floor
    panels = {p.name for p in (DEMOS / "panels").iterdir() if (p / "__init__.py").is_file()}
    assert {"chat", "image", "speech", "vision"} <= panels
    assert not [p.name for p in DEMOS.glob("*.py") if p.name != "__init__.py"], "modules left on the top floor"


@pytest.mark.parametrize("module, path", all_modules(), ids=[m for m, _ in all_modules()])
def test_imports_keep_the_floors(module: str, path: Path) -> None:
    names = imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")
    assert violations(module, names) == []


@pytest.mark.parametrize("module, source, expected", [
    ("demos.core.suite", "import gradio as gr", "core imports no UI"),
    ("demos.core.suite", "from ..ui.widgets import guarded", "core imports no UI"),
    ("demos.core.suite", "def f():\n    from fastapi import FastAPI", "core imports no UI"),
    ("demos.panels.chat.layout", "from demos.panels.vision import engine", "another panel"),
    ("demos.panels.chat.layout", "from ...panels.image.settings import x", "another panel"),
    ("demos.panels.chat.engine", "from demos.core.loader import ProgressFn", "past Suite"),
    ("demos.panels.chat.engine", "from ...core import runtime", "past Suite"),
    ("demos.api.chat", "import gradio as gr", "no UI code"),
    ("demos.api.chat", "from demos.ui.widgets import entry_for", "no UI code"),
    ("demos.api.chat", "from demos.panels.chat.handlers import ChatPanel", "Gradio in it"),
    ("demos.api.chat", "from demos.panels.vision import layout", "Gradio in it"),
])
def test_the_rules_catch_a_violation(module: str, source: str, expected: str) -> None:
    found = violations(module, imports(source, module))
    assert found and expected in found[0]


def test_the_api_may_use_the_panels_engines() -> None:
    source = "from demos.panels.chat import engine\nfrom demos.panels.vision.answering import answers\n" \
             "from demos.core import serving"
    assert violations("demos.api.chat", imports(source, "demos.api.chat")) == []


def test_a_panel_may_use_its_own_package_and_the_suite() -> None:
    source = "from demos.panels.chat import engine\nfrom .code import x\nfrom demos.core.suite import Suite"
    assert violations("demos.panels.chat.layout", imports(source, "demos.panels.chat.layout")) == []
