"""One panel alone, for development: ``python -m demos.panels.<panel> [app.py's options]``.

The panel's tab is built and served exactly as in the whole app (the same gate in front of every event, the same
temp folder, limits and launch options): this is ``python app.py --only <panel>``.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(panel: str, argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import app  # the command line lives in app.py at the repository's root
    return app.main([*(sys.argv[1:] if argv is None else argv), "--only", panel])
