"""The Voice panel: text to speech with Text2SpeechPipeline, and Talk (microphone -> Whisper -> LLM -> speech)."""
