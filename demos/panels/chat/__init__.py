"""The Chat panel: LLMPipeline chat with LoRA switching, speculative decoding and Compare."""
