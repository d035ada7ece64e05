"""The Image panel: Text2ImagePipeline with blended LoRA styles, batches and Compare."""
