"""``python -m demos.panels.chat --models models.yaml``: the Chat tab alone, for development."""
import sys

from demos.ui.standalone import main

sys.exit(main("chat"))
