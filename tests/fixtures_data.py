"""Pytest fixtures for data: a small synthetic spoken corpus made once per session (owner: data)."""
