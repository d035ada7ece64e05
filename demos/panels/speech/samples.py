"""A sample clip for the Speech panel, spoken by espeak-ng on first use (no audio file in the repository).

On stage the Audio box opens with it, so Transcribe is the first click and it has something to transcribe. Speaking
one sentence takes a fraction of a second; the wav is written once to the app's private temp folder and reused.
Without espeak-ng (``apt-get install espeak-ng``) there is no sample and the box opens empty.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from demos.core import files

log = logging.getLogger("demos")

SENTENCE = "OpenVINO GenAI turns speech into text on this laptop, with no internet connection."


def sample_clip() -> Path | None:
    """The path of the spoken sample (22.05 kHz mono wav), or None where espeak-ng is missing or fails."""
    path = files.folder("samples") / "speech-sample.wav"  # the app's own folder: no planted file is read
    if path.exists():
        return path
    binary = shutil.which("espeak-ng")
    if binary is None:
        log.info("no speech sample: espeak-ng is not installed (apt-get install espeak-ng)")
        return None
    partial = path.with_name(f".{path.stem}.{os.getpid()}.wav")
    try:
        subprocess.run([binary, "-v", "en-us", "-s", "150", "-w", str(partial), SENTENCE], check=True,
                       capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        log.warning("no speech sample: espeak-ng failed", exc_info=True)
        partial.unlink(missing_ok=True)
        return None
    partial.replace(path)  # atomic: another process never sees half a file
    return path
