"""Two-process CPU data parallelism (gloo): a rank whose micro-batch holds only text while the audio encoder trains.

Known failure elsewhere: DDP waits forever (or aborts) when one rank's backward never touches the audio encoder.
Here the collator adds a masked silent clip on such ranks (``ensure_audio``), so the run must finish within the
time limit; with the safeguard switched off (``--ensure_audio no``) the same run must fail, which shows that the
setting really is text-only on one rank.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from data.cli import from_mapping
from training.config import TrainConfig

pytestmark = pytest.mark.slow
TIME_LIMIT_S = 240


def _config(corpus_dir, out) -> TrainConfig:
    return from_mapping(
        TrainConfig,
        dict(  # the flat option names: still accepted
            output_dir=str(out),
            model="tiny",
            corpus="manifest",
            corpus_args={"path": str(corpus_dir / "manifest.jsonl")},
            language="en-US",
            limit_train_texts=6,
            scheme="curriculum",
            n_speech=1,
            epochs=2,
            peak_lr=3e-3,
            per_device_batch_size=1,
            grad_accum_steps=1,
            eval_splits=[],
            eval_max_examples=2,
            num_beams=1,
            max_new_tokens=4,
            save_every_steps=0,
            seed=1,
        ),
    )


def _launch(cfg_file, *extra) -> subprocess.CompletedProcess | None:
    accelerate = shutil.which("accelerate") or os.path.join(os.path.dirname(sys.executable), "accelerate")
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "training.train",
        "--config",
        str(cfg_file),
        *extra,
    ]
    try:
        return subprocess.run(
            cmd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT_S,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
    except subprocess.TimeoutExpired:
        return None


def _has_text_only_rank_step(cfg: TrainConfig) -> bool:
    """Whether, in the speech phase, some optimizer step gives one rank audio and the other none."""
    from training.plan import epoch_items, plan_epochs, rank_micro_batches
    from training.schemes import build_phases
    from training.sources import load_run_data

    data = load_run_data(cfg)
    last = plan_epochs(build_phases(cfg.scheme, len(data.speech), cfg.schedule))[-1]
    items = epoch_items(data.texts, data.speech, last.phase.speech_per_epoch, seed=cfg.seed, epoch=last.global_epoch)
    ranks = [rank_micro_batches(items, 1, 2, r) for r in range(2)]
    return any(any(a for _, a in b0) != any(a for _, a in b1) for b0, b1 in zip(*ranks))


def test_two_rank_gloo_run_with_a_text_only_rank_finishes(synth_corpus_dir, tmp_path):
    cfg = _config(synth_corpus_dir, tmp_path / "run")
    assert _has_text_only_rank_step(cfg)
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict()))
    done = _launch(cfg_file)
    assert done is not None, f"2-process run hung for {TIME_LIMIT_S} s"
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "done.json").is_file()
    assert 'world_size": 2' in (tmp_path / "run" / "config.json").read_text()

    # Negative control: the same run without the safeguard must not succeed (it aborts or hangs).
    cfg_off = _config(synth_corpus_dir, tmp_path / "off")
    off_file = tmp_path / "off.yaml"
    off_file.write_text(yaml.safe_dump({**cfg_off.to_dict(), "ensure_audio": "no"}))
    failed = _launch(off_file)
    assert failed is None or failed.returncode != 0
