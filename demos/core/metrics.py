"""One metric vocabulary for every panel: the keys of the metrics dict each endpoint returns, with their label,
unit and rounding, and the one function that builds such a dict. No Gradio here.

Clients read these keys (DESIGN §6): a key is never renamed. A panel may add keys; unknown ones are kept as given
and shown by name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Metric:
    """How one figure is returned and shown."""

    label: str
    unit: str = ""               # "s", "ms", "tokens/s", "%" (a fraction shown as percent), "×" …; "" for none
    decimals: int | None = None  # rounding of the returned figure; None: kept as it is (counts, text)
    shown: int | None = None     # decimals on the page; None: written as it is

    def text(self, value: Any) -> str:
        """``value`` as the page writes it: '35 ms', '41.2 tokens/s', '50%', '1.50×'."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)  # text ("n/a", a note): it carries no unit
        if self.shown is None:
            number = str(value)
        elif self.unit == "%":
            return f"{value:.{self.shown}%}"
        else:
            number = f"{value:.{self.shown}f}"
        if not self.unit:
            return number
        return number + self.unit if self.unit == "×" else f"{number} {self.unit}"


VOCABULARY: dict[str, Metric] = {
    "model": Metric("Model"),        # what produced the answer, in the catalog's labels (DESIGN §9)
    "adapters": Metric("Adapters"),  # 'LoRA A ×0.6 + LoRA B ×0.3', or 'none'
    "draft": Metric("Draft"),        # 'FastDraft 50M on CPU', or 'none'
    "load_s": Metric("Load", "s", 3, 1),
    "ttft_ms": Metric("TTFT", "ms", 1, 0),
    "tpot_ms": Metric("TPOT", "ms", 2, 1),
    "tokens_per_s": Metric("Throughput", "tokens/s", 2, 1),
    "input_tokens": Metric("Input", "tokens"),
    "output_tokens": Metric("Output", "tokens"),
    "generate_s": Metric("Generate", "s", 3, 2),
    "accepted_draft_tokens": Metric("Accepted draft tokens"),
    "draft_tokens": Metric("Draft tokens"),
    "acceptance_rate": Metric("Acceptance", "%", 4, 0),
    "speedup": Metric("Speedup", "×", 3, 2),
    "step_ms": Metric("Step", "ms", 1, 0),
    "images_per_min": Metric("Images", "/ min", 2, 1),
    "audio_s": Metric("Audio", "s", 3, 1),
    "real_time_factor": Metric("RTF", "", 4, 3),
    "processing_s": Metric("Processing", "s", 3, 2),
    "decode_ms": Metric("Audio decoding", "ms", 1, 0),
    "vad_ms": Metric("VAD", "ms", 1, 0),  # the voice-activity detector's own time (Speech: skip silence)
    "speech_s": Metric("Speech", "s", 3, 1),
    "silence_skipped_s": Metric("Silence skipped", "s", 3, 1),
    "vad": Metric("VAD"),  # a note when the detector could not run
    "language": Metric("Language"),
    "stopped_after_windows": Metric("Stopped after", "window(s)"),
    "warning": Metric("Note"),
    "vision_encode_ms": Metric("Vision encoding", "ms", 1, 0),
    "image_prep_ms": Metric("Image prep", "ms", 1, 0),
    "images": Metric("Images"),
    "frames": Metric("Frames"),  # video frames sent to the model
    "video_frames": Metric("Video length", "frames"),  # frames in the uploaded video
    "video_decode_ms": Metric("Video decoding", "ms", 1, 0),
    "context_rebuild_ms": Metric("Context rebuild", "ms", 1, 0),
    "batch": Metric("Batch size"),  # the most requests a batched answer was stepped together with (itself included)
    "device": Metric("Device"),
    "voice": Metric("Voice"),                                # text to speech: the speaker embedding used
    "first_audio_ms": Metric("Time to first audio", "ms", 1, 0),
    "sentences": Metric("Sentences"),
    "transcribe_ms": Metric("Transcription", "ms", 1, 0),    # Talk: Whisper's part of the turn
    "first_sentence_ms": Metric("First sentence's speech", "ms", 1, 0),  # Talk: generating the first sentence
    "npu_prompt": Metric("NPU prompt"),
}


def metric(key: str) -> Metric:
    """The vocabulary's entry for ``key``; an unknown key is labelled by its name."""
    return VOCABULARY.get(key) or Metric(key.replace("_", " ").capitalize())


def rounded(key: str, value: Any) -> Any:
    """``value`` rounded as the vocabulary says; None for a non-finite number (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if not math.isfinite(value):
        return None
    decimals = metric(key).decimals
    return round(float(value), decimals) if decimals is not None else value


def with_load(metrics: Mapping[str, Any], load_s: float, built_now: bool) -> dict[str, Any]:
    """``metrics`` with ``load_s`` first when this request built the pipeline, and without it otherwise: the load
    is reported once, by the request that paid for it."""
    rest = {k: v for k, v in metrics.items() if k != "load_s"}
    load = rounded("load_s", load_s) if built_now else None
    return {"load_s": load, **rest} if load is not None else rest


def generation_figures(perf: Any) -> dict[str, Any]:
    """What every streamed answer reports from genai's ``PerfMetrics`` (chat and vision alike), unrounded."""
    return {
        "ttft_ms": perf.get_ttft().mean,
        "tpot_ms": perf.get_tpot().mean,
        "tokens_per_s": perf.get_throughput().mean,
        "input_tokens": int(perf.get_num_input_tokens()),
        "output_tokens": int(perf.get_num_generated_tokens()),
        "generate_s": perf.get_generate_duration().mean / 1000,
    }


def build(figures: Mapping[str, Any], load_s: float = 0.0, built_now: bool = False) -> dict[str, Any]:
    """The metrics dict of one request: ``figures`` rounded by the vocabulary (None and non-finite numbers left out),
    with ``load_s`` only when ``built_now``."""
    values = {key: rounded(key, value) for key, value in figures.items()}
    return with_load({k: v for k, v in values.items() if v is not None}, load_s, built_now)


def markdown(metrics: Mapping[str, Any]) -> str:
    """A compact one-line card: '**TTFT** 35 ms · **Throughput** 41.2 tokens/s · …'."""
    parts = []
    for key, value in metrics.items():
        if value is None or value == "":
            continue
        entry = metric(key)
        try:
            shown = entry.text(value)
        except (ValueError, TypeError):  # a panel's own key with an odd value: shown as it is
            shown = str(value)
        parts.append(f"**{entry.label}** {shown}")
    return " · ".join(parts)
