"""The Speech panel: WhisperPipeline transcription and translation with subtitles."""
