"""The OpenAI-compatible routes (``/v1``, DESIGN §6b) and the MCP wiring, on the same core as the UI.

The routes call the panels' engines (never their Gradio layouts) through the serving core's jobs: one behaviour,
two doors. ``server.routes`` is what ``app.py`` mounts; ``cors.around`` is installed only with ``--cors``.
"""
