"""Precision: bf16 compute with float32 master weights trains at the paper's learning rate; pure bf16 does not.

AdamW's first steps move every weight by about the learning rate (5e-6). A bf16 weight keeps 8 significant bits, so
such an update rounds away for almost every weight; float32 master weights keep it. The training path must load
float32 weights (``training.loop.build_model``) whatever the compute dtype, and refuse trainable bf16 weights.
"""

from __future__ import annotations

import copy

import pytest
import torch

from training.config import TrainConfig
from training.parallel import ParallelError, adamw_fraction_moved, float32_master_check

pytestmark = pytest.mark.usefixtures("single_thread")

PAPER_LR = 5e-6


@pytest.fixture()
def text_batches(tiny_model, slu_examples):
    from models.collate import SLUCollator

    collate = SLUCollator(tiny_model[1])
    return [
        collate([(slu_examples[0], False), (slu_examples[1], False)]),
        collate([(slu_examples[2], False), (slu_examples[3], False)]),
    ]


def test_bf16_compute_with_float32_master_weights_moves_almost_every_weight(tiny_model, text_batches):
    from models.trainable import set_trainable

    model = copy.deepcopy(tiny_model[0]).float()
    set_trainable(model, train_audio=False)
    moved = adamw_fraction_moved(model, text_batches, lr=PAPER_LR, steps=3, compute_dtype=torch.bfloat16)
    assert moved > 0.99, moved


def test_pure_bf16_weights_lose_most_updates_at_the_paper_lr(tiny_model, text_batches):
    """Negative control: the same steps on bf16 weights (what training did before) move only a few weights."""
    from models.trainable import set_trainable

    model = copy.deepcopy(tiny_model[0]).to(torch.bfloat16)
    set_trainable(model, train_audio=False)
    moved = adamw_fraction_moved(model, text_batches, lr=PAPER_LR, steps=3, compute_dtype=torch.bfloat16)
    assert moved < 0.3, moved
    with pytest.raises(ParallelError, match="not float32"):
        float32_master_check(model)


def test_training_builds_float32_weights_for_bf16_compute(tmp_path):
    from training.loop import build_model, compute_precision

    cfg = TrainConfig(output_dir=str(tmp_path / "run"), model="tiny", mixed_precision="bf16")
    model, _ = build_model(cfg, torch.device("cpu"))
    assert compute_precision(cfg) == "bf16"
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    float32_master_check(model)  # no error
