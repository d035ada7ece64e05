"""``python app.py --ovms-config [DIR]``: the OpenVINO Model Server configuration that serves a catalog's local entries.

What OVMS 2026.3 documents for generative models (``docs/starting_server.md``, ``docs/parameters.md``,
``demos/common/export_models/export_model.py`` of openvinotoolkit/model_server at tag v2026.3):

- a model repository with one folder per servable, ``<name>/``, holding the OpenVINO model files and a
  ``graph.pbtxt`` (a MediaPipe graph whose node is the task's calculator: ``HttpLLMCalculator`` for chat and vision
  (the pipeline type is detected: LLM or VLM), ``ImageGenCalculator`` for images, ``S2tCalculator`` for speech)
  with ``models_path: "./"``;
- ``config.json`` listing every servable in ``model_config_list`` as ``{"config": {"name", "base_path"}}``, the
  base path relative to the config file;
- the model files come from the same sources the app uses: a hub repo in OpenVINO format is downloaded as it is,
  a PyTorch checkpoint is exported with ``optimum-cli export openvino`` with the entry's ``export`` options, a local
  folder is copied. ``fetch_models.sh`` holds those commands (the app's own loader cache is not OVMS's layout).

The servable names are the catalog ids, so the generated ``models.remote.yaml`` (the same catalog with a
``backend`` per entry) points this app at OVMS under the same ids. Entries that already have a ``backend`` are
served elsewhere and left out. No network here: this only writes text.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from demos.core.catalog import Catalog, ChatEntry, Entry, ExportOptions, ImageEntry, SpeechEntry, VisionEntry

OVMS_VERSION = "2026.3"
OVMS_IMAGE = f"openvino/model_server:{OVMS_VERSION}"
REST_PORT = 8000
DEFAULT_URL = f"http://ovms:{REST_PORT}/v3"  # OVMS's OpenAI-compatible routes; "ovms" is the compose service
CONFIG = "config.json"
FETCH = "fetch_models.sh"
REMOTE_CATALOG = "models.remote.yaml"
TASKS = {"chat": "text_generation", "vision": "text_generation", "image": "image_generation",
         "speech": "speech2text"}

_LOOPBACK_HANDLER = """  input_stream_handler {
    input_stream_handler: "SyncSetInputStreamHandler",
    options {
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] {
        sync_set {
          tag_index: "LOOPBACK:0"
        }
      }
    }
  }"""


@dataclass(frozen=True)
class Servable:
    """One entry as OVMS serves it: its folder's graph and the commands that fill the folder."""

    name: str
    panel: str
    task: str
    graph: str
    fetch: list[str]


def _q(text: str) -> str:
    """A string inside a protobuf text-format literal."""
    return json.dumps(text)


def _plugin_config(entry: Entry) -> str:
    return json.dumps({key: value for key, value in sorted(entry.properties.items())})


def text_generation_graph(entry: ChatEntry | VisionEntry, device: str) -> str:
    """``HttpLLMCalculator`` with continuous batching; prefix caching on (OVMS's default) unless the entry has LoRA
    adapters (DESIGN §10: with adapters, genai's prefix cache reused KV computed under another adapter)."""
    prefix = "false" if getattr(entry, "adapters", []) else "true"
    lines = [f"          models_path: {_q('./')},",
             f"          plugin_config: '{_plugin_config(entry)}',",
             f"          enable_prefix_caching: {prefix},",
             "          cache_size: 0,",  # 0: the KV cache grows as needed (OVMS docs/parameters.md)
             "          max_num_seqs: 256,",
             f"          device: {_q(device)},"]
    drafts = getattr(entry, "drafts", [])
    if drafts:  # OVMS takes one draft per graph: the entry's first
        draft = drafts[0]
        lines += [f"          draft_models_path: {_q('./' + draft.id)},",
                  f"          draft_device: {_q(draft.device or device)},"]
    options = "\n".join(lines)
    return f"""# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# {entry.id}: {entry.title} ({entry.pipeline}); written by python app.py --ovms-config for OVMS {OVMS_VERSION}
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: {{
    tag_index: 'LOOPBACK:0',
    back_edge: true
  }}
  node_options: {{
      [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {{
{options}
      }}
  }}
{_LOOPBACK_HANDLER}
}}
"""


def image_generation_graph(entry: ImageEntry, device: str) -> str:
    """``ImageGenCalculator`` with the entry's defaults and its LoRA adapters (switched per request: DYNAMIC)."""
    gen = entry.generation
    lines = [f"      models_path: {_q('./')},"]
    if entry.properties:
        lines.append(f"      plugin_config: '{_plugin_config(entry)}',")
    lines += [f"      device: {_q(device)},",
              f"      default_resolution: '{gen.width}x{gen.height}',",
              f"      default_num_inference_steps: {gen.num_inference_steps},"]
    for adapter in entry.adapters:
        lines.append(f"      lora_adapters {{ alias: {_q(adapter.id)} path: {_q(_lora_path(adapter))} "
                     f"alpha: {adapter.alpha:g} mode: DYNAMIC }}")
    options = "\n".join(lines)
    return f"""# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# {entry.id}: {entry.title} ({entry.pipeline}); written by python app.py --ovms-config for OVMS {OVMS_VERSION}
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"

node: {{
  name: "ImageGenExecutor"
  calculator: "ImageGenCalculator"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "IMAGE_GEN_NODE_RESOURCES:pipes"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  node_options: {{
    [type.googleapis.com / mediapipe.ImageGenCalculatorOptions]: {{
{options}
    }}
  }}
}}
"""


def speech2text_graph(entry: SpeechEntry, device: str) -> str:
    """``S2tCalculator`` (Whisper) behind ``/v3/audio/transcriptions`` and ``/translations``."""
    return f"""# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
# {entry.id}: {entry.title} ({entry.pipeline}); written by python app.py --ovms-config for OVMS {OVMS_VERSION}
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"
node {{
  name: "S2tExecutor"
  input_side_packet: "STT_NODE_RESOURCES:s2t_servable"
  calculator: "S2tCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: {{
    tag_index: 'LOOPBACK:0',
    back_edge: true
  }}
  node_options: {{
    [type.googleapis.com / mediapipe.S2tCalculatorOptions]: {{
      models_path: {_q('./')},
      plugin_config: '{_plugin_config(entry)}',
      target_device: {_q(device)},
      enable_word_timestamps: false,
    }}
  }}
{_LOOPBACK_HANDLER}
}}
"""


def _lora_path(adapter: Any) -> str:
    return f"loras/{adapter.id}/{Path(adapter.file or adapter.source).name}"


# ------------------------------------------------------------------------------------------------------------
# Fetching the files


def _fetch_source(catalog: Catalog, source: str, revision: str | None, export: ExportOptions | None,
                  target: str) -> str:
    """The shell command that puts ``source`` into ``target`` (relative to the repository) as OpenVINO files."""
    local = catalog.local_path(source)
    dest = f'"$REPO/{target}"'
    if export is not None:
        flags = [f"--weight-format {export.weight_format}"]
        if export.group_size is not None:
            flags.append(f"--group-size {export.group_size}")
        if export.ratio is not None:
            flags.append(f"--ratio {export.ratio:g}")
        if export.sym:
            flags.append("--sym")
        if export.task:
            flags.append(f"--task {shlex.quote(export.task)}")
        model = shlex.quote(str(local) if local is not None else source)
        return f"optimum-cli export openvino --model {model} {' '.join(flags)} {dest}"
    if local is not None:
        return f"mkdir -p {dest} && cp -a {shlex.quote(str(local))}/. {dest}/"
    rev = f" --revision {shlex.quote(revision)}" if revision else ""
    return f"hf download {shlex.quote(source)}{rev} --local-dir {dest}"


def _fetch_adapter(catalog: Catalog, adapter: Any, owner: str) -> str:
    target = f'"$REPO/{owner}/loras/{adapter.id}"'
    local = catalog.local_path(adapter.source)
    if local is not None:
        path = local / adapter.file if adapter.file else local
        return f"mkdir -p {target} && cp -a {shlex.quote(str(path))} {target}/"
    rev = f" --revision {shlex.quote(adapter.revision)}" if adapter.revision else ""
    return f"hf download {shlex.quote(adapter.source)} {shlex.quote(adapter.file or '')}{rev} --local-dir {target}"


def servable(catalog: Catalog, entry: Entry, device: str) -> Servable:
    source, revision, export = entry.source_for(device)
    assert source is not None
    fetch = [_fetch_source(catalog, source, revision, export, entry.id)]
    if isinstance(entry, (ChatEntry, VisionEntry)):
        graph = text_generation_graph(entry, device)
        for draft in getattr(entry, "drafts", [])[:1]:
            fetch.append(_fetch_source(catalog, draft.source, draft.revision, draft.export, f"{entry.id}/{draft.id}"))
    elif isinstance(entry, ImageEntry):
        graph = image_generation_graph(entry, device)
        fetch += [_fetch_adapter(catalog, adapter, entry.id) for adapter in entry.adapters]
    elif isinstance(entry, SpeechEntry):
        graph = speech2text_graph(entry, device)
    else:  # a panel added to the catalog without an OVMS task: say so rather than write a wrong graph
        raise ValueError(f"no OVMS task for the {entry.panel} panel")
    return Servable(entry.id, entry.panel, TASKS[entry.panel], graph, fetch)


def servables(catalog: Catalog, device: str | None = None) -> list[Servable]:
    """Every entry with a local pipeline (a source and no backend), in catalog order; panels this configuration
    has no OVMS graph for (voice: text to speech) stay with the app."""
    device = device or catalog.settings.device
    return [servable(catalog, entry, device) for entry in catalog.entries()
            if entry.backend is None and entry.source is not None and entry.panel in TASKS]


# ------------------------------------------------------------------------------------------------------------
# The files


def config_json(items: list[Servable]) -> str:
    return json.dumps({"model_config_list": [{"config": {"name": s.name, "base_path": s.name}} for s in items]},
                      indent=2) + "\n"


def fetch_script(items: list[Servable]) -> str:
    lines = ["#!/bin/sh",
             "# Fills the OVMS model repository (this folder) with each servable's OpenVINO files, from the same",
             "# sources as models.yaml. Needs `hf` (huggingface_hub) and, for exports, optimum-intel (optimum-cli).",
             "# Alternative for OpenVINO/* repos: OVMS pulls them itself, e.g.",
             f"#   docker run --rm -v \"$PWD\":/models:rw {OVMS_IMAGE} --pull --source_model <repo> "
             "--model_repository_path /models --model_name <name> --task <task>",
             "# (it then writes its own graph.pbtxt next to the files).",
             "set -eu",
             'REPO="$(cd "$(dirname "$0")" && pwd)"']
    for item in items:
        lines.append(f"echo '{item.name} ({item.task})'")
        lines += item.fetch
    return "\n".join(lines) + "\n"


def remote_catalog(catalog: Catalog, items: list[Servable], url: str) -> str:
    """The catalog this app runs on to use OVMS: every served entry gets ``backend`` (its OVMS name is its id) and
    loses what only a local pipeline has (adapters, drafts, variants, export options); the rest stays."""
    served = {item.name for item in items}
    data: dict[str, Any] = {"settings": catalog.settings.model_dump(exclude_defaults=True)}
    for panel in catalog.panels():
        rows = []
        for entry in catalog.entries(panel):
            row = entry.model_dump(exclude_defaults=True, exclude_none=True)
            if entry.id in served:
                for local_only in ("adapters", "drafts", "variants", "export", "revision", "source", "npu",
                                   "properties"):
                    row.pop(local_only, None)
                row["backend"] = {"url": url, "model": entry.id}
            rows.append(row)
        data[panel] = rows
    header = (f"# Generated by python app.py --ovms-config from {catalog.path.name}: the same models, served by\n"
              f"# OpenVINO Model Server at {url}. Run: python app.py --models {REMOTE_CATALOG}\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def docker_run(directory: str, port: int = REST_PORT) -> str:
    """The command that serves ``directory`` (the repository with config.json) with OVMS's OpenAI-compatible API."""
    return (f"docker run -d --rm -p {port}:{REST_PORT} -v {shlex.quote(directory)}:/models:ro {OVMS_IMAGE} "
            f"--config_path /models/{CONFIG} --rest_port {REST_PORT}")


def files(catalog: Catalog, url: str = DEFAULT_URL, device: str | None = None) -> dict[str, str]:
    """Relative path -> text of every file of the configuration."""
    items = servables(catalog, device)
    out = {CONFIG: config_json(items), FETCH: fetch_script(items),
           REMOTE_CATALOG: remote_catalog(catalog, items, url)}
    for item in items:
        out[f"{item.name}/graph.pbtxt"] = item.graph
    return out


def write(catalog: Catalog, directory: Path, url: str = DEFAULT_URL, device: str | None = None) -> list[Path]:
    """Write the configuration into ``directory`` (created if needed); return the paths written."""
    written = []
    for relative, text in files(catalog, url, device).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if relative == FETCH:
            path.chmod(0o755)
        written.append(path)
    return written


def dump(catalog: Catalog, url: str = DEFAULT_URL, device: str | None = None) -> str:
    """Every file as one text (for standard output), each under a ``# ==> path <==`` line."""
    return "".join(f"# ==> {relative} <==\n{text}\n" for relative, text in files(catalog, url, device).items())
