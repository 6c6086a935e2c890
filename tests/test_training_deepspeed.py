"""DeepSpeed ZeRO-3 with two CPU processes over gloo (tests/deepspeed_cpu_worker.py): the project's real loop with
micro-batch 2 and 2 micro-batches per optimizer step (the paper's 2 x 8, scaled down), compared with one process
that sees the same micro-batches per step; checkpoint, resume, final model and dev decoding. Skipped without
deepspeed (GPU users install it; CI does not)."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from tests.distributed import run_workers
from tests.test_training_run import tiny_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (pip install deepspeed)"
    ),
]
TIME_LIMIT_S = 1500  # generous: the CPUs of a shared test machine can be heavily loaded
SETTINGS = dict(
    scheme="direct",
    n_speech=4,
    limit_train_texts=12,
    epochs=2,
    per_device_batch_size=2,
    grad_accum_steps=2,
    ensure_audio="yes",
    eval_splits=["test"],
    eval_max_examples=2,
    max_new_tokens=4,
    save_every_steps=1,
    log_every_steps=1,
    save_total_limit=10,
)


def _launch(
    tmp_path: Path, cfg, counts: Path | None = None, mixed_precision: str = "no"
) -> subprocess.CompletedProcess | None:
    path = tmp_path / f"{Path(cfg.output_dir).name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    env = {"DS_ACCELERATOR": "cpu", "DS_WORKER_MIXED_PRECISION": mixed_precision}
    if counts is not None:
        env["DS_WORKER_COUNTS"] = str(counts)
    return run_workers("deepspeed_cpu_worker.py", "train", str(path), timeout=TIME_LIMIT_S, env=env)


def _rows(run_dir: Path, kind: str) -> list[dict]:
    with open(run_dir / "curves.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["kind"] == kind]


def test_zero3_trains_steps_per_window_matches_one_process_resumes_and_saves(synth_corpus_dir, tmp_path):
    from models.loading import load_model
    from models.tiny import build_tiny
    from training.checkpoint import list_checkpoints
    from training.loop import run

    counts = tmp_path / "counts.json"
    ds_dir = tmp_path / "zero3"
    done = _launch(tmp_path, tiny_config(synth_corpus_dir, ds_dir, keep_resumable=True, **SETTINGS), counts)
    assert done is not None, f"2-process ZeRO-3 run hung for {TIME_LIMIT_S} s"
    assert done.returncode == 0, done.stderr[-4000:]
    meta = json.loads((ds_dir / "config.json").read_text())
    assert meta["world_size"] == 2 and meta["effective_batch_size"] == 8

    # DeepSpeed's optimizer stepped once per accumulation window, not once per micro-batch.
    seen = json.loads(counts.read_text())
    n_steps = sum(meta["steps_per_epoch"])
    assert meta["steps_per_epoch"] == [2, 2]  # 16 items / (2 x 2 x 2); step 1 is warmup (LR 0), 2-4 move weights
    assert seen["optimizer_steps"] == n_steps
    assert seen["backward"] == 2 * n_steps  # every window here is full: 2 micro-batches
    assert seen["boundaries"] == [2 * (i + 1) for i in range(n_steps)]

    # One process with 4 micro-batches per step sees the same micro-batches per step (the ranks' interleaved
    # shares together): the same losses, step by step, up to float summation order.
    one_dir = tmp_path / "one"
    run(tiny_config(synth_corpus_dir, one_dir, **{**SETTINGS, "grad_accum_steps": 4}))
    ds_loss = [float(r["loss"]) for r in _rows(ds_dir, "train")]
    one_loss = [float(r["loss"]) for r in _rows(one_dir, "train")]
    assert len(ds_loss) == len(one_loss) == n_steps
    assert ds_loss == pytest.approx(one_loss, rel=1e-4, abs=1e-5)

    # Dev decoding ran on the partitioned model at each epoch end; the final test evaluation too.
    assert [r["n"] for r in _rows(ds_dir, "eval")] == ["2", "2"]
    assert json.loads((ds_dir / "done.json").read_text())["metrics"]

    # The final model folder loads with the project's loader; weights moved and match the one-process run.
    model, _ = load_model(ds_dir / "model", device="cpu", dtype=torch.float32)
    final = model.state_dict()
    reference, _ = load_model(one_dir / "model", device="cpu", dtype=torch.float32)
    base = build_tiny(seed=0)[0].state_dict()
    assert any(not torch.equal(final[k], base[k]) for k in base if base[k].is_floating_point())
    diff = max((final[k] - v).abs().max().item() for k, v in reference.state_dict().items() if v.is_floating_point())
    assert diff < 1e-4

    # Every rank's ZeRO partition is in each checkpoint.
    ckpts = list_checkpoints(ds_dir)
    assert len(ckpts) == n_steps
    assert len(list((ckpts[-1] / "ranks" / "zero").glob("*optim_states.pt"))) == 2

    # Killed after step 3 (mid-epoch; AdamW's moments matter), resumed: the uninterrupted run's final weights.
    killed = tmp_path / "killed"
    first = _launch(tmp_path, tiny_config(synth_corpus_dir, killed, stop_after_steps=3, **SETTINGS))
    assert first is not None and first.returncode == 0, first.stderr[-4000:] if first else "hung"
    resumed = _launch(tmp_path, tiny_config(synth_corpus_dir, killed, resume=True, **SETTINGS))
    assert resumed is not None and resumed.returncode == 0, resumed.stderr[-4000:] if resumed else "hung"
    again = load_model(killed / "model", device="cpu", dtype=torch.float32)[0].state_dict()
    assert all(torch.allclose(again[k], final[k], rtol=0, atol=1e-6) for k in final)


def test_zero3_bf16_checkpoints_and_final_model_hold_the_float32_masters(synth_corpus_dir, tmp_path):
    """DeepSpeed's bf16 mode keeps bf16 module weights: saving those (accelerate's 16-bit gather) wrote bf16
    checkpoints and a bf16 final model. The saved weights are the float32 masters: after updates, most of them are
    not bf16 values."""
    from safetensors.torch import load_file

    from training.checkpoint import list_checkpoints, load_tensors

    out = tmp_path / "bf16"
    done = _launch(
        tmp_path,
        tiny_config(synth_corpus_dir, out, keep_resumable=True, **{**SETTINGS, "eval_splits": []}),
        mixed_precision="bf16",
    )
    assert done is not None and done.returncode == 0, done.stderr[-4000:] if done else "hung"
    final = load_file(str(out / "model" / "model.safetensors"))
    ckpt = load_tensors(list_checkpoints(out)[-1], "model.pt")
    for state in (final, ckpt):
        assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
        floats = [v for v in state.values() if v.is_floating_point()]
        off_bf16 = sum(int((v != v.bfloat16().float()).sum()) for v in floats) / sum(v.numel() for v in floats)
        assert off_bf16 > 0.3, off_bf16  # 0 when the bf16 module copies were saved
