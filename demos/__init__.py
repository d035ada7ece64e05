"""OpenVINO GenAI demo suite: catalog, loader, runtime and one Gradio panel per modality."""
