"""Pytest fixtures for models: a tiny Qwen2-Audio checkpoint made once per session (owner: models).

``tiny_model_dir`` is a saved checkpoint folder (what ``python -m models.tiny --out DIR`` writes); ``tiny_model`` is
``(model, processor)`` loaded from it through ``models.loading.load_model``, the path real weights take. The loaded
model is shared: tests that train must work on a copy (``copy.deepcopy(model)``) or load their own.
"""

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from models.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("models") / "tiny-qwen2-audio", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from models.loading import load_model

    return load_model(tiny_model_dir, device="cpu")
