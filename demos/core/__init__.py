"""The engine: catalog, loader, runtime, serving and suite. No gradio, no fastapi: usable from a plain script."""
