"""``python -m demos.panels.voice --models models.yaml``: the Voice tab alone, for development."""
import sys

from demos.ui.standalone import main

sys.exit(main("voice"))
