"""One Show-code model resolver and one metric vocabulary for every panel (issue 12, item 3).

Show code: an entry that needs an export prints the optimum-cli line the loader would run (image, vision); a model
folder is written as a real string literal, and a local folder is never taken for a hub repo (speech).
Metrics: the same figure is rounded the same way by every panel, and ``load_s`` appears only on the request that
built the pipeline.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests import media
from tests.conftest import AppProcess

ODD = 'huggingface "odd\\ models'  # a local folder name with a quote, a backslash and "huggingface" in it


# ------------------------------------------------------------------------------------------------------------
# Show code: an export that has not run yet


def _catalog(tmp_path: Path, panel: str, entry: dict):
    from demos.core.catalog import load_catalog
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"settings": {"cache_dir": str(tmp_path / "cache"), "device": "CPU"},
                                    panel: [entry]}, sort_keys=False))
    return load_catalog(path)


def _optimum_line(code: str, comment: str) -> list[str]:
    """The tokens of the one ``optimum-cli`` command a snippet tells its reader to run first."""
    lines = [line for line in code.splitlines() if "optimum-cli" in line]
    assert len(lines) == 1, code
    command = lines[0].split("optimum-cli", 1)[1]
    assert lines[0].lstrip().startswith(comment), lines[0]
    return ["optimum-cli", *shlex.split(command)]


def _expected_command(source: str, export: dict, panel: str, target: str) -> list[str]:
    from demos.core.catalog import ExportOptions
    from demos.core.loader import _TASKS, export_command
    options = ExportOptions(**export)
    command = export_command(Path(source), Path(target), options, options.task or _TASKS[panel])
    return ["optimum-cli", *command[command.index("export"):]]


@pytest.mark.unit
def test_image_entry_not_exported_yet_prints_the_export_not_a_download(tmp_path):
    from demos.panels.image.layout import ImagePanel
    from demos.panels.image.settings import Geometry, resolve
    from demos.core.suite import Suite

    checkpoint = tmp_path / "sd-pytorch"
    checkpoint.mkdir()
    export = {"weight_format": "int8"}
    catalog = _catalog(tmp_path, "image", {"id": "sd-pt", "source": str(checkpoint), "export": export})
    suite = Suite.from_catalog(catalog)
    entry = catalog.entry("sd-pt", "image")
    python, cpp = ImagePanel([entry], suite).code(resolve(entry, Geometry(), device="CPU", prompt="a cat"))
    assert "snapshot_download" not in python and "hf_hub_download" not in python
    tokens = _optimum_line(python, "#")
    assert tokens == _expected_command(str(checkpoint), export, "image", tokens[-1])
    assert f'model_dir = "{tokens[-1]}"' in python
    assert _optimum_line(cpp, "//") == tokens and f'Text2ImagePipeline pipe("{tokens[-1]}"' in cpp
    compile(python, "show-code.py", "exec")


@pytest.mark.unit
@pytest.mark.parametrize("export", [{"weight_format": "int4", "group_size": 64, "ratio": 0.8, "sym": True},
                                    {"weight_format": "int8", "task": "image-text-to-text"}])
def test_vision_export_flags_are_the_loaders_export_command(tmp_path, export):
    from demos.core.catalog import VisionEntry
    from demos.panels.vision.code import CodeRequest, cpp_code, python_code

    entry = VisionEntry(id="vlm", source="org/some-vlm", export=export)
    request = CodeRequest(entry=entry, device="CPU", model_dir=None, properties={}, turns=[], max_new_tokens=8,
                          temperature=0.0, top_p=1.0)
    python, cpp = python_code(request), cpp_code(request)
    tokens = _optimum_line(python, "#")
    assert tokens == _expected_command("org/some-vlm", export, "vision", tokens[-1])
    assert "snapshot_download" not in python and _optimum_line(cpp, "//") == tokens
    assert f'model_dir = "{tokens[-1]}"' in python and f'"{tokens[-1]}"' in cpp


# ------------------------------------------------------------------------------------------------------------
# Show code: a local folder with an awkward name (speech, through the app)


@pytest.fixture(scope="module")
def odd_app(kit, tmp_path_factory):
    """The app with the tiny Whisper in a folder named ``ODD`` (a link to the kit's) and the tiny SD."""
    from tests.kit import catalog_dict

    folder = tmp_path_factory.mktemp("showcode-app")
    odd = folder / ODD / "whisper"
    odd.parent.mkdir()
    odd.symlink_to(kit.whisper.ov, target_is_directory=True)
    catalog = catalog_dict(kit, folder / "cache")
    speech = dict(catalog["speech"][0], source=str(odd))
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"settings": catalog["settings"], "speech": [speech], "image": catalog["image"]},
                                   sort_keys=False))
    process = AppProcess(["--models", str(path)], env={"HF_HOME": str(folder / "hf"), "HF_HUB_OFFLINE": "1"},
                         log_path=folder / "app.log")
    try:
        yield SimpleNamespace(app=process.wait_ready(), model=odd)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def odd_client(odd_app):
    from gradio_client import Client
    return Client(odd_app.app.url, verbose=False, download_files=str(odd_app.app.log_path.parent / "downloads"))


def _transcribe_ui(client, path: Path) -> tuple:
    from gradio_client import handle_file
    return client.predict(handle_file(str(path)), None, "tiny-whisper", "CPU", "auto", "transcribe", "off",
                          "", "", False, api_name="/transcribe_ui")


def _cpp_literal_value(literal: str, tmp_path: Path) -> str:
    """What a C++ compiler makes of ``literal`` (printed by a two-line program)."""
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    source = tmp_path / "literal.cpp"
    source.write_text(f"#include <cstdio>\nint main() {{ std::fputs({literal}, stdout); return 0; }}\n")
    subprocess.run(["g++", "-o", str(tmp_path / "literal"), str(source)], check=True, timeout=120)
    return subprocess.run([str(tmp_path / "literal")], capture_output=True, text=True, check=True).stdout


def test_speech_code_for_an_odd_local_folder_is_valid_python_and_cpp(odd_app, odd_client, tmp_path, capsys):
    path = media.write_wav(tmp_path / "a.wav", media.signal(3.0, seed=4), 16000)
    status, text, *_, code_py, code_cpp = _transcribe_ui(odd_client, path)
    assert "snapshot_download" not in code_py and "download" not in code_cpp, "a local folder is not a hub repo"
    scope: dict = {}
    exec(compile(code_py.replace('"audio.mp3"', repr(str(path))), "show-code", "exec"), scope)  # noqa: S102
    assert Path(scope["model_dir"]) == odd_app.model and scope["result"].texts[0] == text
    line = next(line for line in code_cpp.splitlines() if "ov::genai::WhisperPipeline pipe(" in line)
    literal = line.split("pipe(", 1)[1].rsplit(', "CPU"', 1)[0]
    assert _cpp_literal_value(literal, tmp_path) == str(odd_app.model)
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------------------
# Metrics: load_s only on the request that built the pipeline


def test_load_s_only_on_the_request_that_loaded(odd_client, tmp_path):
    path = media.write_wav(tmp_path / "b.wav", media.signal(2.0, seed=5), 16000)
    _transcribe_ui(odd_client, path)  # loaded now, if no test before did
    from gradio_client import handle_file
    again = odd_client.predict(handle_file(str(path)), "tiny-whisper", skip_silence=False, api_name="/transcribe")
    assert "load_s" not in again[-1] and again[-1]["device"] == "CPU"
    odd_client.predict("a red square", "tiny-sd", api_name="/generate_image")
    _, figures = odd_client.predict("a red square", "tiny-sd", api_name="/generate_image")
    assert "load_s" not in figures and figures["compiled"] is False and "generate_s" in figures


# ------------------------------------------------------------------------------------------------------------
# Metrics through each panel's own function (fake handles and perf objects: these are pure functions)


def _mean(value: float) -> SimpleNamespace:
    return SimpleNamespace(mean=value)


PERF = SimpleNamespace(get_ttft=lambda: _mean(12.34567), get_tpot=lambda: _mean(3.45678),
                       get_throughput=lambda: _mean(41.23456), get_num_input_tokens=lambda: 7,
                       get_num_generated_tokens=lambda: 9, get_generate_duration=lambda: _mean(1234.5678),
                       get_vision_encoding_duration=lambda: _mean(5.55555))
LOAD_S = 1.23456


def _handle(built_now: bool) -> SimpleNamespace:
    key = SimpleNamespace(device="CPU", draft_device=None, properties=())
    return SimpleNamespace(built_now=built_now, loaded=SimpleNamespace(load_seconds=LOAD_S, key=key))


def _chat(built_now: bool) -> dict:
    from demos.panels.chat.engine import reply_metrics
    opened = SimpleNamespace(handle=_handle(built_now), prompt_tokens=None, max_prompt_len=None, device="CPU")
    return reply_metrics(opened, SimpleNamespace(perf_metrics=PERF), SimpleNamespace(draft=None))


def _vision(built_now: bool) -> dict:
    from demos.panels.vision import engine as vision_chat
    from demos.panels.vision.layout import _answers_metrics
    figures = vision_chat.metrics(_handle(built_now).loaded, PERF, SimpleNamespace(images=()), 0.0, False)
    return _answers_metrics(figures, _handle(built_now))


def _speech(built_now: bool) -> dict:
    from demos.panels.speech import transcriber
    from demos.panels.speech.layout import _metrics
    raw = SimpleNamespace(texts=["hi"], chunks=None, words=None, perf_metrics=PERF, language="<|en|>")
    audio = SimpleNamespace(seconds=2.5, decode_s=0.0123456)
    options = SimpleNamespace(timestamps="off", language="")
    result = transcriber._result(raw, 1.2345678, audio, options, False, SimpleNamespace(windows=1))
    return _metrics(result, _handle(built_now), "")


def _image(built_now: bool) -> dict:
    from demos.panels.image.run import Generated, run_metrics
    result = Generated(None, object(), None, 0, 4, 1.2345678, 12.34567, False)
    return run_metrics([result], _handle(built_now))


PANELS = {"chat": _chat, "vision": _vision, "speech": _speech, "image": _image}


@pytest.mark.unit
@pytest.mark.parametrize("panel", PANELS)
def test_load_s_only_when_the_handle_was_built_now(panel):
    built, reused = PANELS[panel](True), PANELS[panel](False)
    assert built["load_s"] == 1.235 and "load_s" not in reused
    assert {k: v for k, v in built.items() if k != "load_s"} == reused


@pytest.mark.unit
def test_every_panel_rounds_a_figure_as_the_vocabulary_says():
    from demos.core.metrics import VOCABULARY, rounded
    seen: dict[str, set] = {}
    for make in PANELS.values():
        for key, value in make(True).items():
            if isinstance(value, float):
                assert value == rounded(key, value) and key in VOCABULARY, key
                seen.setdefault(key, set()).add(value)
    assert seen["ttft_ms"] == {12.3} and seen["generate_s"] == {1.235} and seen["tpot_ms"] == {3.46}
    assert seen["step_ms"] == {12.3} and seen["tokens_per_s"] == {41.23}


@pytest.mark.unit
def test_metrics_markdown_formats_from_the_vocabulary():
    from demos.core.metrics import VOCABULARY
    from demos.ui.widgets import metrics_markdown
    assert metrics_markdown({"load_s": 1.25, "ttft_ms": 35.4, "acceptance_rate": 0.5, "speedup": 1.5}) == \
        "**Load** 1.2 s · **TTFT** 35 ms · **Acceptance** 50% · **Speedup** 1.50×"
    assert metrics_markdown({"odd_thing": "x", "language": "de"}) == "**Odd thing** x · **Language** de"
    assert all(m.label for m in VOCABULARY.values())


# ------------------------------------------------------------------------------------------------------------
# The resolver's cases, one by one


@pytest.mark.unit
def test_resolver_cases(tmp_path):
    from demos.core.catalog import ExportOptions
    from demos.core.showcode import reference

    odd = tmp_path / ODD
    local = reference(str(odd), None, None, "speech", odd, None)
    assert eval(local.python) == str(odd) and not local.python_setup and not local.cpp_setup  # noqa: S307
    hub = reference("org/model", "abc", None, "vision", None, None)
    assert hub.python == 'snapshot_download("org/model", revision="abc")' and hub.cpp == '"model"'
    assert hub.python_setup == ("from huggingface_hub import snapshot_download",)
    assert hub.cpp_setup == ("// hf download org/model --revision abc --local-dir model",)
    done = reference("org/model", None, ExportOptions(), "chat", None, tmp_path / "exports" / "model-int8")
    assert eval(done.python) == str(tmp_path / "exports" / "model-int8") and not done.python_setup  # noqa: S307
    pinned = reference("org/model", "abc", ExportOptions(), "chat", None, None)
    assert pinned.python_setup == ("# first, once: hf download org/model --revision abc --local-dir model",
                                   "# then: optimum-cli export openvino --model model --weight-format int8 --task "
                                   "text-generation-with-past model-ov")


@pytest.mark.unit
def test_a_line_break_in_a_path_cannot_end_a_comment_and_become_code(tmp_path):
    from demos.panels.chat import code as chat_code
    from demos.panels.chat.engine import default_settings
    from demos.core.suite import Suite

    evil = tmp_path / "ckpt\nimport os; os.remove('x')"
    evil.mkdir()
    catalog = _catalog(tmp_path, "chat", {"id": "evil", "source": str(evil), "export": {"weight_format": "int8"}})
    suite = Suite.from_catalog(catalog)
    entry = catalog.entry("evil", "chat")
    settings = default_settings(entry)
    refs = chat_code.refs_for(suite, entry, "CPU", settings)
    python = chat_code.python_code(entry, "CPU", "CPU", settings, refs, "", "Hi")
    cpp = chat_code.cpp_code(entry, "CPU", "CPU", settings, refs, "", "Hi")
    assert "\nimport os" not in python and "\nimport os" not in cpp
    compile(python, "show-code.py", "exec")


@pytest.mark.unit
def test_hub_adapters_are_downloaded_alike_in_chat_and_image(tmp_path):
    from demos.panels.chat import code as chat_code
    from demos.panels.chat.engine import default_settings
    from demos.panels.image.layout import ImagePanel
    from demos.panels.image.settings import Geometry, resolve
    from demos.core.suite import Suite

    model = tmp_path / "model"
    model.mkdir()
    (model / "openvino_model.xml").write_text("<net/>")  # the catalog checks a local folder holds an IR
    adapters = [{"id": "style", "source": "org/loras", "file": "style.safetensors"}]
    chat_catalog = _catalog(tmp_path / "c", "chat", {"id": "m", "source": str(model), "adapters": adapters})
    image_catalog = _catalog(tmp_path / "i", "image", {"id": "m", "source": str(model), "adapters": adapters})
    chat_entry, image_entry = chat_catalog.entry("m", "chat"), image_catalog.entry("m", "image")
    settings = default_settings(chat_entry)
    refs = chat_code.refs_for(Suite.from_catalog(chat_catalog), chat_entry, "CPU", settings)
    chat_py = chat_code.python_code(chat_entry, "CPU", "CPU", settings, refs, "", "Hi")
    chat_cpp = chat_code.cpp_code(chat_entry, "CPU", "CPU", settings, refs, "", "Hi")
    image_py, image_cpp = ImagePanel([image_entry], Suite.from_catalog(image_catalog)).code(
        resolve(image_entry, Geometry(), device="CPU", prompt="a cat"))
    download = 'hf_hub_download("org/loras", "style.safetensors")'
    assert download in chat_py and download in image_py
    note = "// hf download org/loras style.safetensors --local-dir loras"
    assert note in chat_cpp and note in image_cpp
    assert 'Adapter adapter_style("loras/style.safetensors")' in chat_cpp
    assert 'Adapter style("loras/style.safetensors")' in image_cpp
    for code in (chat_py, image_py):
        assert code.count("from huggingface_hub import hf_hub_download") == 1
        compile(code, "show-code.py", "exec")
