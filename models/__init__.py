"""Audio language models: loading, tiny twins for tests, prompts, batching, freezing, decoding."""
