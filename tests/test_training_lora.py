"""A LoRA run of the tiny twin: the adapter saved beside the merged model reloads to the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.test_training_run import tiny_config

pytestmark = pytest.mark.slow


def test_lora_run_adapter_reloads_to_the_merged_model(synth_corpus_dir, tmp_path):
    from transformers import Qwen2AudioForConditionalGeneration

    from models.loading import load_model
    from models.trainable import has_lora, merge_lora
    from training.loop import run

    run_dir = tmp_path / "lora-run"
    result = run(
        tiny_config(synth_corpus_dir, run_dir, scheme="curriculum", epochs=2, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    )
    assert not result["stopped"]
    adapter = run_dir / "lora_adapter"
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).resolve() == (run_dir / "base_model").resolve()

    reloaded, _ = load_model(adapter, device="cpu")
    assert has_lora(reloaded)
    merged = merge_lora(reloaded).state_dict()
    final = Qwen2AudioForConditionalGeneration.from_pretrained(run_dir / "model").state_dict()
    assert merged.keys() == final.keys()
    # every trained weight comes back: the LoRA-merged language model and the audio tower the speech epoch trained
    for name, tensor in final.items():
        assert torch.allclose(merged[name].float(), tensor.float(), atol=1e-5), name
    from models.tiny import build_tiny

    untouched = build_tiny(seed=0)[0].state_dict()
    audio = [k for k in final if k.startswith("model.audio_tower.") and final[k].is_floating_point()]
    assert any(not torch.equal(final[k], untouched[k]) for k in audio)  # the speech phase did train audio
