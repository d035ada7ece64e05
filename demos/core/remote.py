"""Catalog entries served by a model server (OpenVINO Model Server, or another instance of this app's ``/v1``).

An entry with ``backend: {url, model, api_key_env}`` has no local pipeline: ``Suite.load`` hands the panels a
``Handle`` whose ``pipeline`` is one of the classes below, shaped like the genai pipeline the panel drives
(``generate`` with the same arguments, the same result fields, ``perf_metrics`` with the figures a client can
measure), and which makes the request through the ``openai`` SDK. So the panels, their ``serving`` jobs (stop,
streaming, throttle) and the ``/v1`` routes run unchanged; only what a local pipeline alone can do (device,
LoRA, drafts, Show code of the pipeline) is refused or marked unavailable, with ``UNAVAILABLE`` saying why.

Every request is bounded: ``CONNECT_S`` to connect, the entry's ``backend.timeout_s`` per read, no retries (a
user sees the failure now, not after three hidden attempts). A server that is down, slow or answering 4xx/5xx is
a ``BackendError`` (a ``UserError``) naming the URL and what it said. No Gradio here.
"""
from __future__ import annotations

import io
import logging
import os
import threading
import time
import wave
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from demos.core.catalog import Backend, Entry
from demos.core.errors import UserError

CONNECT_S = 5.0      # a server that does not accept the connection in this long is down or unreachable
PING_S = 3.0         # the Models tab's "does it answer" probe
MAX_ERROR_CHARS = 300  # what a server said, quoted in the message

UNAVAILABLE = ("{title} is served by the model server at {url} (model {model!r}), which runs its pipeline; "
               "not available for it here: {what}")

log = logging.getLogger("demos.core.remote")


class BackendError(UserError):
    """The model server behind an entry is down, too slow, or refused the request."""

    kind = "backend"


def unavailable(entry: Entry, what: str) -> str:
    """Why ``what`` (a device, LoRA adapters, a draft, Show code) is not offered for a remote entry."""
    backend = _backend(entry)
    return UNAVAILABLE.format(title=entry.title, url=backend.url, model=backend.model, what=what)


def _backend(entry: Entry) -> Backend:
    if entry.backend is None:
        raise ValueError(f"{entry.id} has no backend")
    return entry.backend


# ------------------------------------------------------------------------------------------------------------
# The client and its errors


_clients: dict[tuple[str, str, float], Any] = {}
_clients_lock = threading.Lock()


def client(backend: Backend) -> Any:
    """An ``openai.OpenAI`` for ``backend`` (one per URL, key and timeout: its connection pool is reused)."""
    import openai

    key = os.environ.get(backend.api_key_env, "") if backend.api_key_env else ""
    ident = (backend.url, key, backend.timeout_s)
    with _clients_lock:
        found = _clients.get(ident)
        if found is None:
            timeout = openai.Timeout(backend.timeout_s, connect=CONNECT_S)  # the SDK's own httpx
            # The SDK refuses an empty key; a server without --api-key ignores the header.
            found = _clients[ident] = openai.OpenAI(base_url=backend.url, api_key=key or "none", timeout=timeout,
                                                   max_retries=0)
        return found


def failure(backend: Backend, exc: BaseException) -> BaseException:
    """``exc`` raised by the SDK as a ``BackendError`` naming the server; anything else unchanged (a bug)."""
    import openai

    where = f"the model server at {backend.url}"
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"{where} did not answer within {backend.timeout_s:g} s (model {backend.model!r}); it "
                            "may be overloaded or stuck: try again, or raise backend.timeout_s")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        said = f" ({_clip(str(cause))})" if cause and str(cause) else ""
        return BackendError(f"{where} cannot be reached{said}: start it, or fix backend.url of this model in "
                            "models.yaml")
    if isinstance(exc, openai.APIStatusError):
        return BackendError(f"{where} answered {exc.status_code} for model {backend.model!r}: {_said(exc)}")
    if isinstance(exc, openai.APIError):
        return BackendError(f"{where} sent a broken answer: {_clip(str(exc))}")
    return exc


def _said(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return _clip(str(message))
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return _clip(text or str(exc))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def _call(backend: Backend, request: Callable[[], Any]) -> Any:
    try:
        return request()
    except Exception as exc:  # noqa: BLE001 - the SDK's errors become BackendError, anything else is re-raised
        mapped = failure(backend, exc)
        if mapped is exc:
            raise
        log.info("backend %s: %s", backend.url, mapped)
        raise mapped from None


def ping(backend: Backend) -> str:
    """'' when the server answers ``GET /models`` (and lists the model), else what is wrong (the Models tab)."""
    import httpx

    key = os.environ.get(backend.api_key_env, "") if backend.api_key_env else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(f"{backend.url}/models", headers=headers, timeout=httpx.Timeout(PING_S))
    except httpx.HTTPError as exc:
        return f"no answer ({_clip(str(exc)) or type(exc).__name__})"
    if response.status_code >= 400:
        return f"answered {response.status_code}"
    try:
        names = [item.get("id") for item in response.json().get("data", [])]
    except (ValueError, AttributeError):
        return ""  # it answers; a server whose list is not OpenAI's shape may still serve the model
    return "" if not names or backend.model in names else f"answers, but does not list {backend.model!r}"


# ------------------------------------------------------------------------------------------------------------
# What the client measures, shaped as genai's PerfMetrics


@dataclass(frozen=True)
class _Mean:
    mean: float
    std: float = 0.0


@dataclass
class ClientPerf:
    """Figures measured on this side of the wire: TTFT and durations include the network."""

    started: float = field(default_factory=time.perf_counter)
    first_s: float | None = None
    ended_s: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def first(self) -> None:
        if self.first_s is None:
            self.first_s = time.perf_counter() - self.started

    def end(self) -> None:
        self.ended_s = time.perf_counter() - self.started

    def _total_ms(self) -> float:
        return 1000 * (self.ended_s if self.ended_s is not None else time.perf_counter() - self.started)

    def get_ttft(self) -> _Mean:
        return _Mean(1000 * (self.first_s if self.first_s is not None else self._total_ms() / 1000))

    def get_tpot(self) -> _Mean:
        rest = self._total_ms() - self.get_ttft().mean
        return _Mean(rest / (self.output_tokens - 1) if self.output_tokens > 1 else 0.0)

    def get_throughput(self) -> _Mean:
        tpot = self.get_tpot().mean
        return _Mean(1000 / tpot if tpot > 0 else 0.0)

    def get_num_input_tokens(self) -> int:
        return self.input_tokens

    def get_num_generated_tokens(self) -> int:
        return self.output_tokens

    def get_generate_duration(self) -> _Mean:
        return _Mean(self._total_ms())


# ------------------------------------------------------------------------------------------------------------
# Pipelines


@dataclass
class TextResult:
    """What ``LLMPipeline.generate`` / ``VLMPipeline.generate`` return, as far as the panels read it."""

    texts: list[str]
    perf_metrics: ClientPerf


def _messages_of(history: Any) -> list[dict[str, Any]]:
    if hasattr(history, "get_messages"):
        return list(history.get_messages())
    if isinstance(history, str):
        return [{"role": "user", "content": history}]
    return list(history)


def _sampling(config: Any) -> dict[str, Any]:
    """The OpenAI request fields for a genai ``GenerationConfig``."""
    fields: dict[str, Any] = {"max_tokens": int(config.max_new_tokens)}
    if getattr(config, "do_sample", False):
        fields.update(temperature=float(config.temperature), top_p=float(config.top_p), seed=int(config.rng_seed))
    else:
        fields["temperature"] = 0.0
    stop = sorted(getattr(config, "stop_strings", ()) or ())
    if stop:
        fields["stop"] = stop
    return fields


class RemoteChat:
    """``LLMPipeline``/``VLMPipeline``-shaped: ``generate(chat, config, streamer)`` streams a chat completion."""

    remote = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._images: dict[int, list[str]] = {}  # user message index -> its images as PNG data URLs

    def get_generation_config(self) -> Any:
        import openvino_genai as ov_genai
        return ov_genai.GenerationConfig()

    def generate(self, history: Any, config: Any = None, streamer: Callable[[str], Any] | None = None,
                 images: list[Any] | None = None, generation_config: Any = None, **kwargs: Any) -> TextResult:
        """As genai's: ``images`` belong to the last user message of ``history`` (and stay with it, as a
        ``VLMPipeline`` remembers them for a ``ChatHistory``); the request sends every message with its images."""
        config = generation_config or config or self.get_generation_config()
        for name, value in kwargs.items():
            setattr(config, name, value)
        messages = _messages_of(history)
        if images:
            self._images[len(messages) - 1] = [_png_data_url(image) for image in images]
        wire = [self._with_images(index, message) for index, message in enumerate(messages)]
        return self.stream(wire, _sampling(config), streamer)

    def _with_images(self, index: int, message: dict[str, Any]) -> dict[str, Any]:
        urls = self._images.get(index)
        if not urls:
            return {"role": message["role"], "content": message.get("content", "")}
        parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return {"role": message["role"], "content": [*parts, {"type": "text", "text": message.get("content", "")}]}

    def stream(self, messages: list[dict[str, Any]], fields: dict[str, Any],
               streamer: Callable[[str], Any] | None) -> TextResult:
        """One streamed completion; ``streamer(piece)`` answering STOP closes the stream (the server then stops)."""
        backend, perf, pieces = self.backend, ClientPerf(), []
        stream = _call(backend, lambda: client(backend).chat.completions.create(
            model=backend.model, messages=messages, stream=True, stream_options={"include_usage": True}, **fields))
        try:
            for chunk in _chunks(backend, stream):
                if chunk.usage is not None:
                    perf.input_tokens = int(chunk.usage.prompt_tokens or 0)
                    perf.output_tokens = int(chunk.usage.completion_tokens or 0)
                piece = "".join(c.delta.content or "" for c in chunk.choices if c.delta is not None)
                if not piece:
                    continue
                perf.first()
                pieces.append(piece)
                if streamer is not None and _stop_asked(streamer(piece)):
                    break
        finally:
            stream.close()  # a stopped answer: closing the connection is how an OpenAI server learns to stop
            perf.end()
        if not perf.output_tokens:
            perf.output_tokens = len(pieces)  # no usage (stopped, or a server without it): one piece per token
        return TextResult(["".join(pieces)], perf)


def _png_data_url(image: Any) -> str:
    """An ``ov.Tensor`` [1, H, W, 3] / [H, W, 3] u8 (or an array) as a lossless PNG data URL."""
    import base64

    import numpy as np
    from PIL import Image

    array = np.asarray(getattr(image, "data", image), dtype=np.uint8)
    if array.ndim == 4:
        array = array[0]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _chunks(backend: Backend, stream: Any) -> Iterable[Any]:
    iterator = iter(stream)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - a read timeout or a dropped connection mid-answer
            mapped = failure(backend, exc)
            if mapped is exc:
                raise
            raise mapped from None
        yield chunk


def _stop_asked(status: Any) -> bool:
    return status is not None and getattr(status, "name", str(status)).upper().endswith("STOP")


@dataclass(frozen=True)
class Chunk:
    """A timed piece of a transcript, as genai's ``WhisperDecodedResultChunk``."""

    start_ts: float
    end_ts: float
    text: str


@dataclass
class SpeechResult:
    texts: list[str]
    chunks: list[Chunk] | None
    words: list[Any] | None
    language: str
    perf_metrics: ClientPerf


@dataclass(frozen=True)
class _SpeechConfig:
    lang_to_id: dict[str, int]
    is_multilingual: bool = True


class RemoteSpeech:
    """``WhisperPipeline``-shaped: ``generate(samples, language=, task=, ...)`` posts 16 kHz WAV to
    ``/audio/transcriptions`` (or ``/translations``). The server decides what it knows, so every Whisper language
    is offered; the text comes at the end (no token stream over this route)."""

    remote = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def get_generation_config(self) -> _SpeechConfig:
        """No languages of its own: the speech panel offers all of Whisper's (the server refuses what it lacks)."""
        return _SpeechConfig({})

    def get_tokenizer(self) -> None:
        return None

    def generate(self, samples: Any, streamer: Any = None, language: str | None = None, task: str = "transcribe",
                 return_timestamps: bool = False, word_timestamps: bool = False, initial_prompt: str | None = None,
                 **_: Any) -> SpeechResult:
        backend, perf = self.backend, ClientPerf()
        if word_timestamps:
            raise UserError("word timestamps are not offered for a model served by a model server; use segments",
                            param="timestamps")
        fields: dict[str, Any] = {"model": backend.model, "file": ("audio.wav", wav_bytes(samples), "audio/wav"),
                                  "response_format": "verbose_json" if return_timestamps else "json"}
        code = (language or "").strip("<|>")
        if code and task == "transcribe":
            fields["language"] = code
        if initial_prompt:
            fields["prompt"] = initial_prompt
        audio = client(backend).audio
        route = audio.translations if task == "translate" else audio.transcriptions
        answer = _call(backend, lambda: route.create(**fields))
        perf.first()
        perf.end()
        text = getattr(answer, "text", "") or ""
        segments = getattr(answer, "segments", None) or []
        chunks = [Chunk(float(_get(s, "start")), float(_get(s, "end")), str(_get(s, "text"))) for s in segments]
        return SpeechResult([text], chunks if return_timestamps else None, None,
                            str(getattr(answer, "language", "") or code), perf)


def _get(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name)


def wav_bytes(samples: Any, rate: int = 16000) -> bytes:
    """float samples in [-1, 1] as a 16-bit mono WAV file."""
    import numpy as np

    data = (np.clip(np.asarray(samples, dtype=np.float32), -1, 1) * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    return buffer.getvalue()


@dataclass(frozen=True)
class ImageTensor:
    """What ``Text2ImagePipeline.generate`` returns, as far as the image panel reads it: ``data[0]`` is HxWx3."""

    data: Any  # numpy uint8 [1, H, W, 3]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


class RemoteImage:
    """``Text2ImagePipeline``-shaped: ``generate(prompt, width=, height=, ...)`` asks ``/images/generations`` for one
    PNG. The server reports no steps: ``callback`` is told once, at the end, that all steps are done."""

    remote = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def generate(self, prompt: str, width: int = 0, height: int = 0, num_inference_steps: int = 0,
                 guidance_scale: float | None = None, rng_seed: int | None = None, negative_prompt: str = "",
                 callback: Callable[[int, int, Any], bool] | None = None, adapters: Any = None,
                 **_: Any) -> ImageTensor:
        import base64

        import numpy as np
        from PIL import Image

        backend = self.backend
        # OVMS names its extensions after genai (num_inference_steps, rng_seed); this app's /v1 takes steps and seed
        # (DESIGN §6b). Both are sent: each server reads its own and ignores the other's.
        extra: dict[str, Any] = {}
        if num_inference_steps:
            extra.update(num_inference_steps=int(num_inference_steps), steps=int(num_inference_steps))
        if rng_seed is not None:
            extra.update(rng_seed=int(rng_seed), seed=int(rng_seed))
        if guidance_scale is not None:
            extra["guidance_scale"] = float(guidance_scale)
        if negative_prompt:
            extra["negative_prompt"] = negative_prompt
        size = f"{int(width)}x{int(height)}" if width and height else None
        answer = _call(backend, lambda: client(backend).images.generate(
            model=backend.model, prompt=prompt, n=1, response_format="b64_json", extra_body=extra,
            **({"size": size} if size else {})))
        try:
            png = base64.b64decode(answer.data[0].b64_json)
            pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.uint8)
        except (AttributeError, IndexError, TypeError, ValueError, OSError):
            raise BackendError(f"the model server at {backend.url} answered without a PNG image in data[0].b64_json")
        if callback is not None and num_inference_steps:
            callback(int(num_inference_steps) - 1, int(num_inference_steps), None)
        return ImageTensor(pixels[None])

    def get_performance_metrics(self) -> Any:
        raise BackendError("a model server reports no step times")  # the panel shows none


# ------------------------------------------------------------------------------------------------------------
# Handles


@dataclass(frozen=True)
class RemoteKey:
    """What ``runtime.PipelineKey`` tells the panels: where it runs (the server)."""

    panel: str
    device: str
    draft_dir: None = None
    draft_device: None = None
    batched: bool = False  # the server batches; this app's batcher never steps a remote entry
    properties: tuple = ()  # no construction properties here (prompt lookup, …): the server built its pipeline
    lora_mode: str = ""


@dataclass(eq=False)
class RemoteLoaded:
    """``runtime.Loaded``-shaped. One per request: its own lock, so its own ``serving`` lane: requests to a server
    run at once (the server batches them), not in turn behind one lock of this app."""

    pipeline: Any
    key: RemoteKey
    lock: threading.Lock = field(default_factory=threading.Lock)
    adapters: dict[str, Any] = field(default_factory=dict)
    load_seconds: float = 0.0


PIPELINES = {"chat": RemoteChat, "vision": RemoteChat, "speech": RemoteSpeech, "image": RemoteImage}


def loaded(entry: Entry) -> RemoteLoaded:
    """A pipeline-shaped client for ``entry``; ``BackendError`` for a panel no remote path exists for yet."""
    backend = _backend(entry)
    maker = PIPELINES.get(entry.panel)
    if maker is None:
        raise BackendError(f"{entry.title}: the {entry.panel} panel cannot use a model server yet; give it a source")
    return RemoteLoaded(maker(backend), RemoteKey(entry.panel, f"server {backend.url}"))
