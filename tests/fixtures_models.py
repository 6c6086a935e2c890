"""Pytest fixtures for models: a tiny Qwen2-Audio checkpoint made once per session (owner: models)."""
