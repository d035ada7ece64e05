"""``python -m demos.panels.vision --models models.yaml``: the Vision tab alone, for development."""
import sys

from demos.ui.standalone import main

sys.exit(main("vision"))
