"""``python -m demos.panels.speech --models models.yaml``: the Speech tab alone, for development."""
import sys

from demos.ui.standalone import main

sys.exit(main("speech"))
