"""ZeRO-3 configuration: explicit micro-batch and accumulation (accelerate cannot fill "auto" without a DataLoader),
the paper's 2 x 8 per GPU, DeepSpeed's own loss scaling compensated, and a clear error without deepspeed."""

from __future__ import annotations

import importlib.util

import pytest

from tests.distributed import zero3_plugin, zero3_yaml
from training.parallel import (
    DEEPSPEED,
    DDP,
    ParallelError,
    deepspeed_batch_settings,
    micro_batch_loss_scale,
    require_deepspeed,
)


def _plugin_config(tmp_path, monkeypatch) -> dict:
    """The DeepSpeed config accelerate builds from configs/accelerate/8gpu_zero3.yaml (as its launcher would)."""
    cfg = zero3_yaml()
    assert cfg["distributed_type"] == "DEEPSPEED" and cfg["mixed_precision"] == "bf16"
    ds = cfg["deepspeed_config"]
    assert ds["zero_stage"] == 3
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", str(ds.get("gradient_accumulation_steps", "auto")))
    plugin = zero3_plugin(ds)
    return dict(plugin.deepspeed_config)


def test_zero3_config_gets_the_papers_2_x_8_explicitly(tmp_path, monkeypatch):
    base = _plugin_config(tmp_path, monkeypatch)
    assert base["train_micro_batch_size_per_gpu"] == "auto"  # what made prepare(model, optimizer) fail
    out = deepspeed_batch_settings(base, micro_batch=2, grad_accum=8, world=8, max_grad_norm=1.0)
    assert out["train_micro_batch_size_per_gpu"] == 2
    assert out["gradient_accumulation_steps"] == 8  # DeepSpeed steps its optimizer every 8 micro-batches
    assert out["train_batch_size"] == 128  # = the paper's effective batch
    assert out["zero_optimization"]["stage"] == 3 and out["gradient_clipping"] == 1.0
    assert base["train_micro_batch_size_per_gpu"] == "auto"  # pure: the input is left as it was


def test_conflicting_numbers_in_the_deepspeed_file_are_errors():
    with pytest.raises(ParallelError, match="gradient_accumulation_steps=4 but the run needs 8"):
        deepspeed_batch_settings(
            {"gradient_accumulation_steps": 4}, micro_batch=2, grad_accum=8, world=8, max_grad_norm=1.0
        )
    with pytest.raises(ParallelError, match="train_micro_batch_size_per_gpu=4"):
        deepspeed_batch_settings(
            {"train_micro_batch_size_per_gpu": 4}, micro_batch=2, grad_accum=8, world=8, max_grad_norm=1.0
        )
    with pytest.raises(ParallelError, match="optimizer or scheduler"):
        deepspeed_batch_settings(
            {"optimizer": {"type": "AdamW"}}, micro_batch=2, grad_accum=8, world=8, max_grad_norm=1.0
        )


def test_loss_scale_gives_the_mean_over_each_steps_micro_batches():
    # DeepSpeed divides by its gradient_accumulation_steps (8): the factor makes full and short groups exact means.
    assert micro_batch_loss_scale(DEEPSPEED, 8, 8) / 8 == pytest.approx(1 / 8)
    assert micro_batch_loss_scale(DEEPSPEED, 3, 8) / 8 == pytest.approx(1 / 3)
    assert micro_batch_loss_scale(DDP, 3, 8) == pytest.approx(1 / 3)


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="deepspeed is installed here")
def test_missing_deepspeed_is_one_clear_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(ParallelError, match="pip install deepspeed"):
        require_deepspeed()
    from training.train import cli

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert cli(["--model", "tiny", "--output_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install deepspeed" in err and "Traceback" not in err
