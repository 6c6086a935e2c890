"""A real kill: ``python -m training.train`` in a subprocess, SIGKILLed once a checkpoint exists, then ``--resume``.

The resumed run must end with the same weights (loaded through plain transformers) as an uninterrupted run, and
crash debris (a ``.tmp-step-*`` folder with a garbage model file, a step folder without ``state.json``) must never be
picked up. Marked slow: it starts Python three times.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _argv(corpus_dir: Path, out: Path) -> list[str]:
    return [
        "--model",
        "tiny",
        "--corpus",
        "manifest",
        "--corpus_args.path",
        str(corpus_dir / "manifest.jsonl"),
        "--language",
        "en-US",
        "--limit_train_texts",
        "8",
        "--scheme",
        "text",
        "--epochs",
        "2",
        "--peak_lr",
        "5e-3",
        "--per_device_batch_size",
        "2",
        "--grad_accum_steps",
        "1",
        "--eval_splits",
        "test",
        "--eval_max_examples",
        "2",
        "--num_beams",
        "1",
        "--max_new_tokens",
        "4",
        "--save_every_steps",
        "1",
        "--log_every_steps",
        "1",
        "--seed",
        "3",
        "--output_dir",
        str(out),
    ]


def _train(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "training.train", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import Qwen2AudioForConditionalGeneration

    return Qwen2AudioForConditionalGeneration.from_pretrained(run_dir / "model").state_dict()


def test_sigkilled_training_resumes_to_the_uninterrupted_weights(synth_corpus_dir, tmp_path):
    from training.checkpoint import list_checkpoints

    killed = tmp_path / "killed"
    proc = _train(_argv(synth_corpus_dir, killed))
    deadline = time.monotonic() + 300
    try:
        while not list_checkpoints(killed):  # complete checkpoints only (renamed, with state.json)
            assert proc.poll() is None, f"training ended before any checkpoint:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "done.json").exists() and not (killed / "model").exists()
    complete = list_checkpoints(killed)
    assert complete

    # Debris of a crash mid-save, newer than any good checkpoint: resuming from it would fail or diverge.
    tmp = killed / "checkpoints" / ".tmp-step-00000099"
    tmp.mkdir(exist_ok=True)
    (tmp / "model.pt").write_bytes(b"half-written")
    (killed / "checkpoints" / "step-00000098").mkdir()
    (killed / "checkpoints" / "step-00000098" / "model.pt").write_bytes(b"half-written")

    resumed = _train(_argv(synth_corpus_dir, killed) + ["--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    newest = complete[-1]
    assert f"resuming from checkpoints/{newest.name} (step {int(newest.name.split('-')[1])} of" in out, out
    assert (killed / "done.json").is_file()

    reference = tmp_path / "reference"
    uninterrupted = _train(_argv(synth_corpus_dir, reference))
    out, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, out

    a, b = _weights(reference), _weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    # The debris was left alone (never loaded, never renamed into a checkpoint).
    assert all(p.name not in ("step-00000098", "step-00000099") for p in list_checkpoints(killed))
