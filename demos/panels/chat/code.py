"""'Show code': the openvino_genai Python and C++ that reproduce the chat panel's current settings."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from demos.core import lora_modes
from demos.core.catalog import ChatEntry
from demos.panels.chat.engine import Settings, is_npu
from demos.core.showcode import ModelRef, draft_reference, file_reference, model_reference
from demos.core.snippets import cpp_value
from demos.core.suite import Suite


@dataclass(frozen=True)
class Refs:
    model: ModelRef
    adapters: dict[str, ModelRef] = field(default_factory=dict)
    draft: ModelRef | None = None


def refs_for(suite: Suite, entry: ChatEntry, device: str, settings: Settings) -> Refs:
    """The model and draft as ``showcode`` resolves them; adapters from their local file or the hub."""
    model = model_reference(suite, entry, device or suite.default_device)
    adapters = {}
    for adapter in entry.adapters:
        local = suite.catalog.local_path(adapter.source)
        if local is not None and adapter.file:
            local = local / adapter.file
        adapters[adapter.id] = file_reference(local, adapter.source, adapter.file or "")
    draft = None
    if settings.draft:
        entry_draft = next((d for d in entry.drafts if d.id == settings.draft), None)
        if entry_draft is not None:
            draft = draft_reference(suite, entry_draft)
    return Refs(model, adapters, draft)


def _setup(refs: Refs, kind: str) -> list[str]:
    """The setup lines of the model, the draft and the adapters, each once (``kind``: python_setup, cpp_setup)."""
    refs_used = [refs.model, *([refs.draft] if refs.draft is not None else []), *refs.adapters.values()]
    return list(dict.fromkeys(line for ref in refs_used for line in getattr(ref, kind)))


def _properties(entry: ChatEntry, device: str) -> dict[str, Any]:
    """The main pipeline's properties as the app passes them (``Suite.properties``: on NPU the prompt bounds from
    the entry's ``npu`` settings unless its own properties set them)."""
    properties: dict[str, Any] = {}
    if is_npu(device):
        properties.update(MAX_PROMPT_LEN=entry.npu.max_prompt_len, MIN_RESPONSE_LEN=entry.npu.min_response_len)
    return {**properties, **entry.properties}


def _var(adapter_id: str) -> str:
    return "adapter_" + "".join(c if c.isalnum() else "_" for c in adapter_id)


def _py_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def python_code(entry: ChatEntry, device: str, draft_device: str, settings: Settings, refs: Refs,
                system_prompt: str, prompt: str) -> str:
    """A runnable script: build the pipeline as the app does, then stream one answer with these settings."""
    lines = [*_setup(refs, "python_setup"), "import openvino_genai as ov_genai", ""]
    for adapter in entry.adapters:
        lines.append(f"{_var(adapter.id)} = ov_genai.Adapter({refs.adapters[adapter.id].python})")
    args = [refs.model.python, json.dumps(device)]
    if entry.adapters:
        args.append(f"adapters=ov_genai.AdapterConfig([{', '.join(_var(a.id) for a in entry.adapters)}], "
                    f"{lora_modes.python_mode(lora_modes.mode_for(entry), 'chat')})")
        if not is_npu(device):
            args.append("scheduler_config=ov_genai.SchedulerConfig()  # no prefix caching: adapters switch per call")
    if settings.draft and refs.draft is not None:
        draft_args = [refs.draft.python, json.dumps(draft_device)]
        draft_args += [f"{k}={_py_value(v)}" for k, v in entry.properties.items()]
        if entry.adapters:
            draft_args.append("adapters=ov_genai.AdapterConfig()")
        args.append(f"draft_model=ov_genai.draft_model({', '.join(draft_args)})")
    if settings.prompt_lookup:
        args.append("prompt_lookup=True  # candidates copied from the prompt, no draft model")
    args += [f"{k}={_py_value(v)}" for k, v in _properties(entry, device).items()]
    lines.append("pipe = ov_genai.LLMPipeline(")
    for arg in args:
        code, _, comment = arg.partition("  # ")
        lines.append(f"    {code},{'  # ' + comment if comment else ''}")
    lines.append(")")
    lines += ["", "config = pipe.get_generation_config()", f"config.max_new_tokens = {settings.max_new_tokens}"]
    if settings.temperature > 0:
        lines += ["config.do_sample = True", f"config.temperature = {settings.temperature}",
                  f"config.top_p = {settings.top_p}"]
        if settings.top_k > 0:
            lines.append(f"config.top_k = {settings.top_k}")
        lines.append(f"config.rng_seed = {settings.seed}")
    else:
        lines.append("config.do_sample = False  # greedy")
    lines.append(f"config.repetition_penalty = {settings.repetition_penalty}")  # set always: the model's may differ
    if settings.draft:
        if settings.confidence_threshold > 0:
            lines.append(f"config.assistant_confidence_threshold = {settings.confidence_threshold}")
        else:
            lines.append(f"config.num_assistant_tokens = {settings.assistant_tokens}")
    if settings.prompt_lookup:
        lines += [f"config.num_assistant_tokens = {settings.assistant_tokens}",
                  f"config.max_ngram_size = {settings.max_ngram_size}"]
    if settings.json_schema or settings.regex:
        field, value = ("json_schema", settings.json_schema) if settings.json_schema else ("regex", settings.regex)
        lines.append(f"config.structured_output_config = ov_genai.StructuredOutputConfig({field}={value!r})")
    if entry.adapters:
        if settings.adapters:
            pairs = ", ".join(f"({_var(a)}, {alpha})" for a, alpha in settings.adapters)
            lines.append(f"config.adapters = ov_genai.AdapterConfig([{pairs}])  # switched per call, no recompile")
        else:
            lines.append("config.adapters = ov_genai.AdapterConfig()  # no adapter for this answer")
    lines += ["", "chat = ov_genai.ChatHistory()"]
    if system_prompt.strip():
        lines.append(f'chat.append({{"role": "system", "content": {json.dumps(system_prompt.strip())}}})')
    lines += [f'chat.append({{"role": "user", "content": {json.dumps(prompt or "Hello!")}}})', "",
              "def streamer(text: str) -> ov_genai.StreamingStatus:",
              '    print(text, end="", flush=True)',
              "    return ov_genai.StreamingStatus.RUNNING  # STOP ends the answer here", "",
              "result = pipe.generate(chat, config, streamer)",
              'chat.append({"role": "assistant", "content": result.texts[0]})', "",
              "perf = result.perf_metrics",
              'print(f"\\nTTFT {perf.get_ttft().mean:.0f} ms, TPOT {perf.get_tpot().mean:.1f} ms, "',
              '      f"{perf.get_throughput().mean:.1f} tokens/s")']
    if settings.draft:  # (LLMPipeline reports no acceptance for prompt lookup: its extended metrics are None)
        lines += ["sd = result.extended_perf_metrics",
                  'print(f"accepted {sd.get_num_accepted_tokens()} of {sd.get_num_draft_tokens()} draft tokens")']
    return "\n".join(lines) + "\n"


def _cpp_property(name: str, value: Any) -> str:
    return f'{{"{name}", {cpp_value(value)}}}'


def cpp_code(entry: ChatEntry, device: str, draft_device: str, settings: Settings, refs: Refs,
             system_prompt: str, prompt: str) -> str:
    """The same as ``python_code`` with the C++ API (link openvino::genai)."""
    lines = ["#include <iostream>", "#include \"openvino/genai/llm_pipeline.hpp\""]
    if settings.draft:
        lines.append("#include \"openvino/genai/speculative_decoding/perf_metrics.hpp\"")
    lines += _setup(refs, "cpp_setup")
    lines += ["", "int main() {"]
    for adapter in entry.adapters:
        lines.append(f"    ov::genai::Adapter {_var(adapter.id)}({refs.adapters[adapter.id].cpp});")
    props = []
    if entry.adapters:
        mode = lora_modes.MODES[lora_modes.mode_for(entry)]
        props.append(f"ov::genai::adapters({', '.join(_var(a.id) for a in entry.adapters)}, "
                     f"ov::genai::AdapterConfig::{mode})")
        if not is_npu(device):
            props.append("ov::genai::scheduler_config(ov::genai::SchedulerConfig{})  // no prefix caching")
    if settings.draft and refs.draft is not None:
        draft_props = [_cpp_property(k, v) for k, v in entry.properties.items()]
        if entry.adapters:
            draft_props.append("ov::genai::adapters()")
        extra = f", ov::AnyMap{{{', '.join(draft_props)}}}" if draft_props else ""
        props.append(f"ov::genai::draft_model({refs.draft.cpp}, {json.dumps(draft_device)}{extra})")
    if settings.prompt_lookup:
        props.append("ov::genai::prompt_lookup(true)  // candidates copied from the prompt, no draft model")
    props += [_cpp_property(k, v) for k, v in _properties(entry, device).items()]
    lines.append("    ov::AnyMap properties{")
    for prop in props:
        code, _, comment = prop.partition("  //")
        lines.append(f"        {code},{'  //' + comment if comment else ''}")
    lines += ["    };",
              f"    ov::genai::LLMPipeline pipe({refs.model.cpp}, {json.dumps(device)}, properties);", "",
              "    ov::genai::GenerationConfig config = pipe.get_generation_config();",
              f"    config.max_new_tokens = {settings.max_new_tokens};"]
    if settings.temperature > 0:
        lines += ["    config.do_sample = true;", f"    config.temperature = {settings.temperature}f;",
                  f"    config.top_p = {settings.top_p}f;"]
        if settings.top_k > 0:
            lines.append(f"    config.top_k = {settings.top_k};")
        lines.append(f"    config.rng_seed = {settings.seed};")
    else:
        lines.append("    config.do_sample = false;  // greedy")
    lines.append(f"    config.repetition_penalty = {settings.repetition_penalty}f;")
    if settings.draft:
        if settings.confidence_threshold > 0:
            lines.append(f"    config.assistant_confidence_threshold = {settings.confidence_threshold}f;")
        else:
            lines.append(f"    config.num_assistant_tokens = {settings.assistant_tokens};")
    if settings.prompt_lookup:
        lines += [f"    config.num_assistant_tokens = {settings.assistant_tokens};",
                  f"    config.max_ngram_size = {settings.max_ngram_size};"]
    if settings.json_schema or settings.regex:
        field, value = ("json_schema", settings.json_schema) if settings.json_schema else ("regex", settings.regex)
        lines += ["    ov::genai::StructuredOutputConfig structured;",
                  f'    structured.{field} = R"__({value})__";',
                  "    config.structured_output_config = structured;"]
    if entry.adapters:
        if settings.adapters:
            lines.append("    config.adapters = ov::genai::AdapterConfig();")
            for adapter_id, alpha in settings.adapters:
                lines.append(f"    config.adapters->add({_var(adapter_id)}, {alpha}f);")
        else:
            lines.append("    config.adapters = ov::genai::AdapterConfig();  // no adapter for this answer")
    lines += ["", "    ov::genai::ChatHistory chat;"]
    if system_prompt.strip():
        system = json.dumps(system_prompt.strip())
        lines.append(f'    chat.push_back({{{{"role", "system"}}, {{"content", {system}}}}});')
    lines += [f'    chat.push_back({{{{"role", "user"}}, {{"content", {json.dumps(prompt or "Hello!")}}}}});',
              "    auto streamer = [](std::string text) {",
              "        std::cout << text << std::flush;",
              "        return ov::genai::StreamingStatus::RUNNING;  // STOP ends the answer here",
              "    };",
              "    ov::genai::DecodedResults result = pipe.generate(chat, config, streamer);",
              '    chat.push_back({{"role", "assistant"}, {"content", result.texts[0]}});',
              '    std::cout << "\\nTTFT " << result.perf_metrics.get_ttft().mean << " ms, "',
              '              << result.perf_metrics.get_throughput().mean << " tokens/s\\n";']
    if settings.draft:
        lines += ["    auto sd = std::dynamic_pointer_cast<ov::genai::SDPerModelsPerfMetrics>("
                  "result.extended_perf_metrics);",
                  '    if (sd) std::cout << "accepted " << sd->get_num_accepted_tokens() << " draft tokens\\n";']
    lines.append("}")
    return "\n".join(lines) + "\n"
