"""Checkpoints and curves on disk: write order under a kill, how many checkpoints stay, what a finished run keeps.

A kill right after a checkpoint is committed must not lose training-loss rows: curves.csv is written first, so the
checkpoint never claims steps its curves lack. The kill is simulated in-process at the exact point: ``os.replace``
renames the checkpoint into place, then the "process dies" (an exception no code catches).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from tests.test_training_run import tiny_config

pytestmark = pytest.mark.slow


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _small(corpus_dir: Path, out: Path, **overrides):
    values = dict(
        scheme="text",
        n_speech=0,
        limit_train_texts=4,
        epochs=1,
        per_device_batch_size=1,
        save_every_steps=2,
        log_every_steps=1,
        eval_splits=[],
        eval_max_examples=1,
        max_new_tokens=2,
    )
    values.update(overrides)
    return tiny_config(corpus_dir, out, **values)


def _train_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "curves.csv", newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh) if r["kind"] == "train"]


def test_kill_right_after_a_checkpoint_commit_loses_no_curve_rows(synth_corpus_dir, tmp_path, monkeypatch):
    from training.checkpoint import latest_checkpoint, read_position
    from training.loop import run

    out = tmp_path / "run"
    real_replace = os.replace

    def replace_then_die(src, dst):
        real_replace(src, dst)
        if re.fullmatch(r"step-\d{8}", Path(dst).name):
            raise _Killed

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(_Killed):
        run(_small(synth_corpus_dir, out))
    monkeypatch.setattr(os, "replace", real_replace)

    committed, _ = read_position(latest_checkpoint(out))
    assert committed.global_step == 2
    assert (out / "curves.csv").is_file(), "the checkpoint was committed before any curve was written"
    assert set(range(1, committed.global_step + 1)) <= set(_train_steps(out))

    run(_small(synth_corpus_dir, out, resume=True))
    assert _train_steps(out) == [1, 2, 3, 4]  # every step once: none lost, none doubled by the resume


def test_save_total_limit_keeps_the_newest_and_a_finished_run_keeps_only_its_model(synth_corpus_dir, tmp_path):
    from training.checkpoint import list_checkpoints
    from training.loop import TrainingError, run

    out = tmp_path / "run"
    stopped = run(_small(synth_corpus_dir, out, save_every_steps=1, save_total_limit=1, stop_after_steps=3))
    assert stopped["stopped"]
    assert [p.name for p in list_checkpoints(out)] == ["step-00000003"]
    run(_small(synth_corpus_dir, out, save_every_steps=1, save_total_limit=1, resume=True))
    assert (out / "done.json").is_file() and (out / "model" / "model.safetensors").is_file()
    assert not (out / "checkpoints").exists()  # ~100 GB per checkpoint at 7B: gone once the run is done
    with pytest.raises(TrainingError, match="finished run"):
        run(_small(synth_corpus_dir, out, resume=True))  # nothing to resume; never retrain a finished run

    kept = tmp_path / "kept"
    run(_small(synth_corpus_dir, kept, save_every_steps=1, save_total_limit=2, keep_resumable=True))
    assert [p.name for p in list_checkpoints(kept)] == ["step-00000003", "step-00000004"]


def test_old_run_configs_with_keep_checkpoints_still_load():
    from data.cli import from_mapping, parse_config
    from training.config import TrainConfig

    assert from_mapping(TrainConfig, {"keep_checkpoints": 3, "model": "tiny"}).save_total_limit == 3
    assert parse_config(TrainConfig, ["--keep-checkpoints", "4"]).save_total_limit == 4  # the old flag too


class _FakeModel:
    def save_pretrained(self, folder, state_dict):
        (Path(folder) / "model.safetensors").write_text(state_dict["w"])


class _FakeProcessor:
    def save_pretrained(self, folder):
        (Path(folder) / "preprocessor_config.json").write_text("{}")


def _final_save(run_dir: Path, weights: str) -> None:
    """The training loop's final save on the main process, with stand-ins for accelerate, the model and processor."""
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from training.loop import _Run

    run = SimpleNamespace(
        acc=SimpleNamespace(
            get_state_dict=lambda model: {"w": weights}, distributed_type=DistributedType.NO, num_processes=1
        ),
        main=True,
        dir=run_dir,
        model=None,
        processor=_FakeProcessor(),
    )
    _Run.save_final_model(run, _FakeModel())


def test_the_final_model_save_replaces_the_folder_and_leaves_no_temporary_folder(tmp_path):
    _final_save(tmp_path, "first")
    _final_save(tmp_path, "second")
    assert (tmp_path / "model" / "model.safetensors").read_text() == "second"
    assert (tmp_path / "model" / "preprocessor_config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_kill_while_the_new_model_is_renamed_into_place_keeps_the_previous_model(tmp_path, monkeypatch):
    _final_save(tmp_path, "old")
    real_rename = Path.rename

    def rename(self, target):
        if Path(target).name == "model" and self.name != ".model.old":
            raise _Killed  # the new folder is complete; the process dies before it is in place
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(_Killed):
        _final_save(tmp_path, "new")
    monkeypatch.undo()
    assert (tmp_path / "model" / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    _final_save(tmp_path, "new")  # and the next save goes through
    assert (tmp_path / "model" / "model.safetensors").read_text() == "new"
