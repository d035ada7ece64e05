"""The live player: each sentence plays as soon as it is made, while the next are still being made.

Gradio's streaming audio output needs an ``ffmpeg`` executable on the server (it re-encodes to AAC), which a fresh
machine or Space may not have. This player needs nothing: each finished sentence is appended to an ``gr.HTML``
value as a WAV data URL (diffs only: Gradio sends a streamed string as a diff from its last value), and a small
script, installed once by ``js_on_load``, plays the sentences in order with one ``Audio`` element. A new run (its
``data-run`` id) stops what was playing and starts over.
"""
from __future__ import annotations

import base64
import html
import uuid

import gradio as gr

from demos.panels.voice import wav
from demos.panels.voice.speaker import Spoken

_JS = """
let run = null, queue = [], seen = new Set(), playing = null;
function next() {
  if (playing) return;
  const item = queue.shift();
  if (!item) return;
  playing = new Audio(item.dataset.src);
  item.classList.add('playing');
  const done = () => { item.classList.remove('playing'); item.classList.add('played'); playing = null; next(); };
  playing.onended = done;
  playing.onerror = done;
  playing.play().catch(() => { item.classList.remove('playing'); playing = null; });
}
function scan() {
  const list = element.querySelector('[data-run]');
  const id = list ? list.dataset.run : null;
  if (id !== run) {
    run = id; queue = []; seen = new Set();
    if (playing) { playing.pause(); playing = null; }
  }
  if (!list) return;
  list.querySelectorAll('[data-src]').forEach((item) => {
    if (!seen.has(item.dataset.i)) { seen.add(item.dataset.i); queue.push(item); }
  });
  next();
}
new MutationObserver(scan).observe(element, {childList: true, subtree: true, attributes: true});
scan();
"""

_CSS = """
.voice-live ol { margin: 0; padding-left: 1.6em; }
.voice-live li { opacity: 0.6; }
.voice-live li.playing { opacity: 1; font-weight: 600; }
.voice-live li.played { opacity: 0.85; }
"""


def player(elem_id: str) -> gr.HTML:
    return gr.HTML("", js_on_load=_JS, css_template=_CSS, elem_id=elem_id, elem_classes=["voice-live"],
                   min_height=40)


class Run:
    """The live player's value for one run: a list of the sentences made so far."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.items: list[str] = []

    def add(self, spoken: Spoken) -> str:
        data = base64.b64encode(wav.to_bytes(spoken.samples, spoken.rate)).decode()
        self.items.append(f'<li data-i="{len(self.items)}" data-src="data:audio/wav;base64,{data}">'
                          f"{html.escape(spoken.text)}</li>")
        return self.html()

    def html(self) -> str:
        return f'<ol data-run="{self.id}">{"".join(self.items)}</ol>'
