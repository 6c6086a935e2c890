"""Pytest fixtures for models: a tiny Qwen2-Audio checkpoint made once per session (owner: models).

``tiny_model_dir`` is a saved checkpoint folder (what ``python -m models.tiny --out DIR`` writes); ``tiny_model`` is
``(model, processor)`` loaded from it through ``models.loading.load_model``, the path real weights take. The loaded
model is shared: tests that train must work on a copy (``copy.deepcopy(model)``) or load their own.
"""

import contextlib

import pytest


@contextlib.contextmanager
def one_torch_thread():
    """Run with a single intra-op thread: the tiny model's ops are too small to gain from threads, and on a shared
    2-core machine two spinning threads per process made a 2 s training run take 35 s (measured under load 5)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def single_thread():
    """Use in model tests: ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    with one_torch_thread():
        yield


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


@pytest.fixture(scope="session")
def tiny_overfit(tiny_model, slu_examples):
    """``(model, processor, items, losses)``: a copy of the tiny model after 150 AdamW steps on two text items.

    Shared by the overfit sanity test (which checks the losses and the decoded frames) and the decoding tests
    (which need structured outputs rather than noise). Trained on the text path: 150 steps through the encoder's
    30 s window would take about a minute on 2 cores.
    """
    import copy

    import torch

    from models.collate import SLUCollator
    from models.trainable import set_trainable

    model = copy.deepcopy(tiny_model[0])
    processor = tiny_model[1]
    items = [(slu_examples[0], False), (slu_examples[3], False)]
    batch = SLUCollator(processor)(items)
    set_trainable(model, train_audio=False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    with one_torch_thread():
        for _ in range(150):
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
    return model.eval(), processor, items, losses
