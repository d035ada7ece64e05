"""Example pictures for the Vision panel, drawn with PIL on first use (no binary files in the repository).

A scene to describe and a sign to read: enough for a one-click first question on stage. Drawing both takes a few
milliseconds; they are written once to the app's temp folder and reused.
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from demos.core import files


def _scene(path: Path) -> None:
    image = Image.new("RGB", (640, 426), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 300, 640, 426], fill=(88, 160, 72))                       # grass
    draw.ellipse([500, 40, 580, 120], fill=(255, 214, 64))                       # sun
    draw.rectangle([150, 200, 330, 330], fill=(196, 78, 58))                     # house
    draw.polygon([(130, 205), (240, 120), (350, 205)], fill=(110, 60, 40))      # roof
    draw.rectangle([220, 260, 260, 330], fill=(90, 55, 30))                      # door
    draw.rectangle([170, 225, 205, 255], fill=(200, 230, 255))                   # window
    draw.rectangle([420, 220, 445, 330], fill=(110, 75, 40))                     # trunk
    draw.ellipse([375, 140, 490, 250], fill=(40, 120, 50))                       # crown
    draw.ellipse([40, 60, 150, 100], fill=(250, 250, 250))                       # cloud
    image.save(path, quality=92)


def _sign(path: Path) -> None:
    image = Image.new("RGB", (640, 360), (60, 60, 70))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([40, 60, 600, 300], radius=24, fill=(250, 250, 245), outline=(20, 90, 170), width=8)
    big, small = ImageFont.load_default(size=56), ImageFont.load_default(size=32)
    draw.text((320, 150), "OpenVINO GenAI", fill=(20, 90, 170), font=big, anchor="mm")
    draw.text((320, 225), "Vision demo - 2026", fill=(40, 40, 40), font=small, anchor="mm")
    image.save(path, quality=92)


def sample_images() -> list[Path]:
    """Paths of the example pictures, drawing any that are missing."""
    folder = files.folder("samples")  # the app's own: a planted link at a fixed name is never written through
    paths = []
    for name, draw in (("scene.jpg", _scene), ("sign.jpg", _sign)):
        path = folder / name
        if not path.exists():
            partial = path.with_name(f".{path.stem}.{os.getpid()}.jpg")
            draw(partial)
            partial.replace(path)  # atomic: another process never sees half a file
        paths.append(path)
    return paths
