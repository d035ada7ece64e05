"""One click's worth of images: seeds ``seed, seed+1, …``, an optional no-style twin for Compare, as events.

Each image is generated as a ``serving`` job in the pipeline's lane, so the Gradio handler can keep yielding
progress and previews while genai runs; the step callback reports them to the job. The UI turns the events into
updates.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np

from demos.panels.image import files as image_files

from demos.panels.image import run as image_run

from demos.core import serving
from demos.panels.image.edit import Source, steps_run
from demos.panels.image.settings import MAX_SEED, Geometry, ImageSettings
from demos.core.suite import Handle


@dataclass(frozen=True)
class Step:
    """A denoising step finished."""

    done_total: int   # steps done over the whole batch
    total: int
    label: str        # "image 2/4" or "without styles"
    step: int
    steps: int


@dataclass(frozen=True)
class Preview:
    """A live preview of the image being generated (not saved)."""

    image: np.ndarray
    caption: str


@dataclass(frozen=True)
class Saved:
    """A finished image, written as PNG with its parameters (and, unless it is the Compare twin, a .json)."""

    path: Path
    meta: Path | None
    settings: ImageSettings
    caption: str
    text: str
    twin: bool


@dataclass(frozen=True)
class Stopped:
    """Stop was pressed (or the browser went away): the batch ends here."""

    result: image_run.Generated
    label: str
    caption: str


@dataclass(frozen=True)
class Queued:
    """The next image waits for the pipeline: ``ahead`` requests are before it."""

    ahead: int
    label: str


Event = Union[Step, Preview, Saved, Stopped, Queued]


def caption(settings: ImageSettings, suffix: str = "") -> str:
    styles = " + ".join(f"{name} {weight:g}" for name, weight in settings.styles) or "no style"
    return f"seed {settings.seed} · {styles}{suffix}"


@dataclass
class Batch:
    """The images one request asks for; ``run()`` yields events, ``results`` collects what genai returned."""

    handle: Handle
    geo: Geometry
    title: str
    settings: ImageSettings
    count: int = 1
    compare: bool = False          # also the first seed without styles (only meaningful with styles)
    preview_every: int = 0
    stop: "threading.Event | serving.Control" = field(default_factory=threading.Event)
    results: list[image_run.Generated] = field(default_factory=list)
    source: Source | None = None   # Transform / Inpaint: the picture (and mask) every image starts from

    def jobs(self) -> list[tuple[ImageSettings, bool]]:
        """(settings, is_twin) in generation order: the twin right after the first image, so Compare shows early."""
        jobs = [(self.settings.with_seed((self.settings.seed + i) % (MAX_SEED + 1)), False) for i in range(self.count)]
        if self.compare and self.settings.styles:
            jobs.insert(1, (jobs[0][0].without_styles(), True))
        return jobs

    def run(self) -> Iterator[Event]:
        folder = image_files.run_folder()
        jobs = self.jobs()
        per_image = steps_run(self.settings)
        total = per_image * len(jobs)
        finished = 0
        for index, (job, twin) in enumerate(jobs):
            label = "without styles" if twin else f"image {finished + 1}/{self.count}"
            for kind, payload in in_job(self.handle, job, self.stop, self.preview_every, self.source):
                if kind == "waiting":
                    yield Queued(payload, label)
                    continue
                if kind == "step":
                    done, steps, preview = payload
                    yield Step(index * per_image + done, total, label, done, steps)
                    if preview is not None:
                        yield Preview(preview, caption(job, f" · preview at step {done}/{steps}"))
                    continue
                result: image_run.Generated = payload
                self.results.append(result)
                if result.image is None:
                    suffix = f" · preview at step {result.preview_step}; stopped at {result.steps_done}"
                    yield Stopped(result, label, caption(job, suffix))
                    return
                # The run's id in the name: Gradio 6.31's gallery keeps showing the previous picture when an
                # update repeats an earlier one exactly (same pixels, so same cached address) — as A → none → A
                # does by design. Unique names make every run's update a new value.
                name = f"{index:02d}-seed{job.seed}{'-no-style' if twin else ''}-{folder.name[:6]}"
                path = image_files.save_png(result.image, folder / f"{name}.png", job, self.geo, self.title)
                meta = None
                if not twin:
                    meta = folder / f"{name}.json"
                    meta.write_text(json.dumps(image_files.parameters(job, self.geo, self.title), indent=2))
                    finished += 1
                yield Saved(path, meta, job, caption(job), image_files.parameters_text(job, self.geo), twin)


log = logging.getLogger("demos.panels.image")


def in_job(handle: Handle, settings: ImageSettings, stop: "threading.Event | serving.Control | None" = None,
           preview_every: int = 0, source: Source | None = None) -> Iterator[tuple[str, Any]]:
    """Run one generation as a job in the pipeline's lane; yield ("step", (done, total, preview)) (steps
    throttled, previews all), ("waiting", ahead) while others hold the pipeline, then ("done", Generated).
    An image stopped before it got the pipeline is a ``Generated`` with no step done."""
    control = serving.Control.of(stop)

    def work(ctx: serving.JobContext) -> image_run.Generated:
        def on_step(done: int, total: int, preview: np.ndarray | None) -> None:
            ctx.update((done, total))
            if preview is not None:
                ctx.emit((done, total, preview))

        return image_run.generate(handle, settings, stop=ctx.stop_event, preview_every=preview_every,
                                  on_step=on_step, locked=True, source=source)

    job = serving.submit(work, serving.lane_for(handle.loaded), control, name="image", logger=log)
    with job.stream() as events:
        for event in events:
            if isinstance(event, serving.Update):
                yield "step", (*event.value, None)
            elif isinstance(event, serving.Emitted):
                yield "step", event.value
            elif isinstance(event, serving.Waiting):
                yield "waiting", event.ahead
            elif isinstance(event, serving.Done):
                yield "done", event.result if event.started else \
                    image_run.Generated(settings, None, None, 0, 0, 0.0, None, True)
                return
