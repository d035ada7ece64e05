"""The Vision panel: VLMPipeline chat about images."""
