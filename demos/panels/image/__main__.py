"""``python -m demos.panels.image --models models.yaml``: the Image tab alone, for development."""
import sys

from demos.ui.standalone import main

sys.exit(main("image"))
