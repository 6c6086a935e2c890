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


def make_example(idx, transcript, frame, audio_seconds=None, seed=0):
    """An SLUExample; with ``audio_seconds`` it carries a WAV (noise at 16 kHz) inline as bytes."""
    import numpy as np

    from data.audio import to_wav_bytes
    from data.example import AudioRef, SLUExample

    audio = None
    if audio_seconds:
        rng = np.random.default_rng(seed + idx)
        wave = (0.1 * rng.standard_normal(int(audio_seconds * 16000))).astype(np.float32)
        audio = AudioRef(data=to_wav_bytes(wave), duration_s=audio_seconds)
    return SLUExample(
        id=f"utt-{idx}", corpus="toy", language="en-US", split="train", transcript=transcript, frame=frame, audio=audio
    )


@pytest.fixture(scope="session")
def slu_examples():
    """Four examples of different lengths: two with audio (1.0 s, 0.4 s), two text-only."""
    from data.frames import SLUFrame

    return [
        make_example(0, "wake me up at five am", SLUFrame("alarm", "set", (("time", "five am"),)), 1.0),
        make_example(1, "what's the weather", SLUFrame("weather", "query", ())),
        make_example(
            2,
            "email anna about the meeting tomorrow at ten",
            SLUFrame("email", "sendemail", (("person", "anna"), ("event_name", "meeting"), ("date", "tomorrow"))),
            0.4,
        ),
        make_example(3, "play jazz", SLUFrame("play", "music", (("music_genre", "jazz"),))),
    ]
