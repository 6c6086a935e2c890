"""Pytest fixtures for data: a small synthetic spoken corpus made once per session (owner: data).

``synth_corpus_dir``: a folder with ``manifest.jsonl`` and 16 kHz wavs made by ``data.synth`` (en + fr, 2 utterances
per intent and language: 48 recordings over 12 intents, split train/dev/test; about 2 s on 2 cores). Load it with
``load_corpus("manifest", path=synth_corpus_dir / "manifest.jsonl")``. Skipped when espeak-ng is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SYNTH_LANGUAGES = "en,fr"
SYNTH_PER_INTENT = 2
SYNTH_SEED = 0


@pytest.fixture(scope="session")
def synth_corpus_dir(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from data.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synth_corpus")
    synthesize(
        SynthConfig(out=str(out), languages=SYNTH_LANGUAGES, per_intent=SYNTH_PER_INTENT, seed=SYNTH_SEED, workers=2)
    )
    return out
