"""The pipeline pool under real concurrency: ``max_pipelines`` is a true bound, only idle pipelines are released,
a build that cannot work releases nothing, and one session cannot open more than its share of requests."""
from __future__ import annotations

import threading

import pytest
import yaml

from demos.core import batching, serving
from demos.core.catalog import load_catalog
from demos.core.errors import UserError
from demos.core.runtime import Claim, DeviceError, PipelineKey, Runtime
from demos.core.suite import Suite

EXACT = {"INFERENCE_PRECISION_HINT": "f32"}
PROMPT = "Tell me a story about a cat."
WAIT_S = 120  # bound on every wait below: a failure, never a hang


def _two_model_suite(kit, tmp_path, max_pipelines: int) -> Suite:
    from tests.kit import catalog_dict
    catalog = catalog_dict(kit, tmp_path / "cache")
    catalog["settings"]["max_pipelines"] = max_pipelines
    catalog["chat"] = [
        {"id": "big", "label": "Big", "source": str(kit.llm.main_ov), "properties": EXACT},
        {"id": "small", "label": "Small", "source": str(kit.llm.draft_ov), "properties": EXACT},
    ]
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return Suite.from_catalog(load_catalog(path))


def _direct(folder, max_new_tokens: int) -> str:
    import openvino_genai as ov_genai
    pipe = ov_genai.LLMPipeline(str(folder), "CPU", **EXACT)
    chat = ov_genai.ChatHistory([{"role": "user", "content": PROMPT}])
    return pipe.generate(chat, max_new_tokens=max_new_tokens, do_sample=False).texts[0]


class _Hooked:
    """A job's context that calls ``on_token`` before each text piece: the batcher streams through ``ctx.text``
    on its stepping thread, so a hook that blocks there holds the batched job in the middle of its answer."""

    def __init__(self, ctx: serving.JobContext, on_token) -> None:
        self._ctx, self._on_token = ctx, on_token

    def text(self, piece: str) -> None:
        if self._on_token is not None:
            self._on_token()
        self._ctx.text(piece)

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)


def _answer_job(handle, max_new_tokens: int, on_token=None) -> serving.Job:
    """A greedy answer as a serving job, as the chat panel runs one on CPU: a request to the pipeline's batcher
    (``Suite.load`` gives chat a ContinuousBatchingPipeline), prompt templated as ``LLMPipeline`` does."""
    assert handle.loaded.key.batched, "chat on CPU is batched"

    def work(ctx: serving.JobContext) -> str:
        tokenizer = handle.pipeline.get_tokenizer()
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=False).input_ids
        config = handle.pipeline.get_config()
        config.max_new_tokens, config.do_sample = max_new_tokens, False
        request = batching.Request((ids,), config, _Hooked(ctx, on_token),
                                   tokens=int(ids.get_shape()[1]) + max_new_tokens)
        return batching.batcher_for(handle.loaded).run(request).text
    return serving.submit(work, None, name="pool-test")


def _result(job: serving.Job) -> str:
    done = [e for e in job.events() if isinstance(e, serving.Done)]
    return done[-1].result


def test_max_pipelines_one_two_models_at_once_nothing_dropped_while_generating(kit, tmp_path):
    """With one slot, a request for a second model waits (saying so) while the first generates, instead of
    dropping the pipeline in use; both answers equal direct ones; never more than one pipeline alive."""
    suite = _two_model_suite(kit, tmp_path, max_pipelines=1)
    big, small = suite.catalog.entry("big"), suite.catalog.entry("small")
    generating, small_waits = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    alive: list[int] = []
    build = suite.runtime._build

    def counting_build(key):  # how many pipelines are alive when a new one starts compiling
        alive.append(len(suite.runtime.loaded_keys()))
        return build(key)
    suite.runtime._build = counting_build

    def first_token() -> None:
        if not generating.is_set():
            generating.set()
            # Hold the answer in the middle of its generate until the other request has said it waits.
            seen["small waited"] = small_waits.wait(WAIT_S)
            seen["big kept"] = any(k.model_dir == str(kit.llm.main_ov) for k in suite.runtime.loaded_keys())

    def use_big() -> None:
        handle = suite.load(big, "CPU")
        seen["big"] = _result(_answer_job(handle, 24, first_token))

    def use_small() -> None:
        def progress(fraction, message: str) -> None:
            if message.startswith("Waiting for a free pipeline slot"):
                small_waits.set()
        handle = suite.load(small, "CPU", progress=progress)
        seen["small"] = _result(_answer_job(handle, 24))

    first = threading.Thread(target=use_big)
    first.start()
    assert generating.wait(WAIT_S), "the first answer never started"
    second = threading.Thread(target=use_small)
    second.start()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert seen.get("small waited"), "the second model's request did not wait for a free slot"
    assert seen.get("big kept"), "the pipeline was dropped while it was generating"
    assert alive == [0, 0], f"pipelines alive when each build started: {alive} (max_pipelines is 1)"
    assert seen["big"] == _direct(kit.llm.main_ov, 24)
    assert seen["small"] == _direct(kit.llm.draft_ov, 24)
    assert len(suite.runtime.loaded_keys()) == 1


def test_a_failed_build_evicts_nothing(kit, tmp_path):
    runtime = Runtime(tmp_path, max_pipelines=1, devices=lambda: ["CPU"])
    kept = PipelineKey.make("chat", kit.llm.main_ov, "CPU")
    runtime.get(kept)  # idle: the next build may release it, but only a build that can work
    with pytest.raises(DeviceError):
        runtime.get(PipelineKey.make("chat", kit.llm.draft_ov, "NPU"))
    with pytest.raises(UserError, match="folder missing-model is missing"):
        runtime.get(PipelineKey.make("chat", tmp_path / "missing-model", "CPU"))
    with pytest.raises(UserError, match="adapter"):
        runtime.get(PipelineKey.make("chat", kit.llm.draft_ov, "CPU", adapters=[tmp_path / "gone.safetensors"]))
    assert runtime.loaded_keys() == [kept] and runtime.builds[kept] == 1


def test_a_request_that_fills_every_slot_itself_is_told_instead_of_waiting_forever(kit, tmp_path):
    """Compare needs two pipelines at once; with ``max_pipelines: 1`` waiting for its own claim would never end."""
    runtime = Runtime(tmp_path, max_pipelines=1)
    first = PipelineKey.make("chat", kit.llm.main_ov, "CPU")
    claim = Claim()
    runtime.get(first, claim=claim)
    assert runtime.in_use(first) == 1
    with pytest.raises(UserError, match=r"more pipelines at once than max_pipelines \(1\)"):
        runtime.get(PipelineKey.make("chat", kit.llm.draft_ov, "CPU"), claim=Claim())
    del claim  # the request is over: its pipeline is idle and may be released
    assert runtime.in_use(first) == 0
    runtime.get(PipelineKey.make("chat", kit.llm.draft_ov, "CPU"))
    assert first not in runtime.loaded_keys()


@pytest.mark.unit
def test_one_session_may_open_only_its_share_of_requests():
    serving.configure(4)
    try:
        chat, image = serving.Sessions(), serving.Sessions()  # two panels: the limit is the session's, not a panel's
        mine = [chat.begin("s"), chat.begin("s"), image.begin("s"), image.begin("s")]
        with pytest.raises(UserError, match="^You already have 4 requests waiting; wait for one to finish or "
                                            "press Stop$") as refused:
            chat.begin("s")
        assert refused.value.kind == "limit"
        others = [chat.begin("t") for _ in range(4)]  # another visitor is not affected
        chat.finish("s", mine[0])
        again = chat.begin("s")  # one finished: there is room again
        with pytest.raises(UserError):
            image.begin("s")
        for control in [again, *mine[1:2]]:
            chat.finish("s", control)
        for control in mine[2:]:
            image.finish("s", control)
        for control in others:
            chat.finish("t", control)
        with chat.request("s"), chat.request("s"), image.request("s"), image.request("s"):
            with pytest.raises(UserError):
                with chat.request("s"):
                    pass
        assert serving._admission.open("s") == 0 and serving._admission.open("t") == 0
    finally:
        serving.configure(serving.DEFAULT_MAX_PER_SESSION)


@pytest.mark.unit
def test_a_waiting_request_knows_its_place_and_the_pipeline_its_users():
    """``Control.ahead`` (what every panel turns into "2 requests ahead of you") and ``Lane.in_use`` (what the pool
    asks before releasing a pipeline) follow the lane, with real worker threads."""
    lane = serving.Lane()
    release = threading.Event()
    first = serving.submit(lambda ctx: release.wait(WAIT_S), lane)
    controls = [serving.Control(), serving.Control()]
    waiting = [serving.submit(lambda ctx: "done", lane, control) for control in controls]
    streams = [job.events() for job in waiting]  # kept open: closing one would stop its job
    places = [next(e for e in stream if isinstance(e, serving.Waiting)).ahead for stream in streams]
    assert places == [1, 2] and [c.ahead for c in controls] == [1, 2]
    assert lane.in_use == 3
    assert serving.place_note(2) == "Waiting for the model: 2 requests ahead of you…"
    release.set()
    assert [[e.result for e in stream if isinstance(e, serving.Done)] for stream in streams] == [["done"], ["done"]]
    assert first.wait(WAIT_S) and all(job.wait(WAIT_S) for job in waiting)
    assert [c.ahead for c in controls] == [0, 0] and lane.in_use == 0


@pytest.mark.unit
def test_requests_waiting_on_one_preparation_see_its_progress(tmp_path):
    """Two users ask for a model being exported: it is prepared once, and the second sees the first one's progress
    as its own (not a silent wait). The loader stands in for an export that reports and then waits."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "openvino_model.xml").write_text("<net/>")  # a local folder the catalog accepts
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"chat": [{"id": "m", "source": str(tmp_path / "model")}]}))
    catalog = load_catalog(tmp_path / "models.yaml")

    class ExportingLoader:
        calls = 0
        reported, finish = threading.Event(), threading.Event()

        def model_dir(self, entry, device, progress, repair=False):
            self.calls += 1
            progress(0.5, "Exporting model 'm'… 12 s")
            self.reported.set()
            assert self.finish.wait(WAIT_S)
            return tmp_path / "model"

        def problem(self, folder):
            return None

    loader = ExportingLoader()
    suite = Suite(catalog, loader, Runtime(tmp_path, devices=lambda: ["CPU"]))
    entry = catalog.entry("m")
    first = threading.Thread(target=suite.prepare, args=(entry, "CPU"))
    first.start()
    assert loader.reported.wait(WAIT_S)
    heard, told = [], threading.Event()

    def progress(fraction, message):
        heard.append((fraction, message))
        told.set()
    second = threading.Thread(target=suite.prepare, args=(entry, "CPU", progress))
    second.start()
    shown = told.wait(WAIT_S)
    loader.finish.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert shown and heard[0] == (0.5, "Exporting model 'm'… 12 s")
    assert loader.calls == 1
