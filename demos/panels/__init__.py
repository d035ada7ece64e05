"""One package per tab: layout.py (Gradio), engine/run code (no Gradio), code.py (Show code)."""
