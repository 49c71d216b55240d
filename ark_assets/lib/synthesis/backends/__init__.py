"""Teacher backends: ``rules`` (offline, deterministic), ``openai`` (any OpenAI-compatible
endpoint) and ``transformers`` (a local Hugging Face chat model)."""
