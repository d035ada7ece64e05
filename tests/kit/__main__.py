"""``python -m tests.kit``: build the tiny models and print the path of a catalog that uses them.

Try the app without downloading anything:  python app.py --models "$(python -m tests.kit)"
"""
from __future__ import annotations

from . import build_all, write_catalog
from .common import cache_root

if __name__ == "__main__":
    print(write_catalog(build_all(), cache_root() / "tiny-catalog"))
