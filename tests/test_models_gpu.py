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
