"""Models on a CUDA device: the tiny twin in bfloat16 through the real loading path (skipped without CUDA)."""

import pytest
import torch

from models.decode import generate_frames
from models.loading import attention_implementation, load_model

pytestmark = pytest.mark.gpu


def test_tiny_model_loads_in_bf16_on_cuda_and_decodes_batched(tiny_model_dir, slu_examples):
    model, processor = load_model(tiny_model_dir)  # default device and dtype: cuda, bfloat16
    assert model.device.type == "cuda" and model.dtype == torch.bfloat16
    assert model.config._attn_implementation == attention_implementation(model.device)
    items = [(slu_examples[0], True), (slu_examples[1], False), (slu_examples[2], True)]
    preds = generate_frames(model, processor, items, batch_size=3, max_new_tokens=16, progress=False)
    assert [p.id for p in preds] == [ex.id for ex, _ in items]
    assert all(isinstance(p.text, str) for p in preds)


def _precision_on(device, tmp_path):
    from training.config import TrainConfig
    from training.loop import build_model, compute_precision
    from training.parallel import adamw_fraction_moved, float32_master_check

    cfg = TrainConfig(output_dir=str(tmp_path / "run"), model="tiny")  # mixed_precision auto: bf16 on CUDA
    model, _ = build_model(cfg, device)
    assert compute_precision(cfg) == ("bf16" if device.type == "cuda" else "no")
    float32_master_check(model)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.text_config.vocab_size
    batches = []
    for _ in range(2):
        ids = torch.randint(0, vocab, (2, 32), generator=gen).to(device)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    moved = adamw_fraction_moved(model, batches, lr=5e-6, steps=3, compute_dtype=torch.bfloat16)
    model.to(torch.bfloat16)
    control = adamw_fraction_moved(model, batches, lr=5e-6, steps=3, compute_dtype=torch.bfloat16)
    return moved, control


def test_training_path_keeps_float32_masters_and_moves_weights_at_the_paper_lr_on_cuda(tmp_path):
    """bf16 compute on CUDA with float32 master weights: ~every touched weight moves at LR 5e-6; bf16 weights don't."""
    moved, control = _precision_on(torch.device("cuda"), tmp_path)
    assert moved > 0.99 and control < 0.5, (moved, control)
