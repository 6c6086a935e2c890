"""Saving the same step twice never leaves a moment without a complete checkpoint of that step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from training import checkpoint as ckpt


def _state(value: float) -> dict:
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(value)
        layer.bias.fill_(value)
    return layer.state_dict()


def _save(run_dir: Path, step: int, value: float) -> Path:
    return ckpt.save_checkpoint(
        run_dir, ckpt.Position(step, 0, step, 0), _state(value), {"state": {}}, {"last_epoch": step}, keep=5
    )


def _weight(folder: Path) -> float:
    return float(ckpt.load_tensors(folder, "model.pt")["weight"][0, 0])


def test_saving_a_step_twice_replaces_it_and_leaves_no_aside_folder(tmp_path):
    _save(tmp_path, 4, 1.0)
    path = _save(tmp_path, 4, 2.0)
    assert _weight(path) == 2.0
    assert sorted(p.name for p in (tmp_path / ckpt.CHECKPOINT_DIR).iterdir()) == ["step-00000004"]


def test_a_crash_while_renaming_the_new_folder_in_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 4, 1.0)
    real_replace = os.replace

    def crash_on_commit(src, dst, *args, **kwargs):
        if Path(src).name.startswith(".tmp-step-"):  # the rename of the finished folder into place
            raise OSError("simulated crash during the rename")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash_on_commit)
    with pytest.raises(OSError, match="simulated crash"):
        _save(tmp_path, 4, 2.0)
    monkeypatch.setattr(os, "replace", real_replace)
    # The next process finds the step-4 checkpoint, intact, with the weights saved first.
    found = ckpt.resume_checkpoint(tmp_path, _state(0.0), log=None)
    assert found is not None and found.name == "step-00000004"
    assert ckpt.verify_checkpoint(found, _state(0.0)) is None
    assert _weight(found) == 1.0
    # And saving again afterwards works as usual.
    assert _weight(_save(tmp_path, 4, 3.0)) == 3.0
    assert sorted(p.name for p in (tmp_path / ckpt.CHECKPOINT_DIR).iterdir()) == ["step-00000004"]


def test_a_crash_before_the_old_folder_is_deleted_keeps_the_new_checkpoint(tmp_path, monkeypatch):
    import shutil

    _save(tmp_path, 4, 1.0)
    real_rmtree = shutil.rmtree

    def crash_on_cleanup(path, *args, **kwargs):
        if Path(path).name.startswith(".old-step-"):
            raise KeyboardInterrupt  # killed after the new folder is in place
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", crash_on_cleanup)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 4, 2.0)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    found = ckpt.resume_checkpoint(tmp_path, _state(0.0), log=None)
    assert found is not None and _weight(found) == 2.0
    assert _weight(_save(tmp_path, 4, 3.0)) == 3.0  # the stale aside folder is cleared by the next save
    assert sorted(p.name for p in (tmp_path / ckpt.CHECKPOINT_DIR).iterdir()) == ["step-00000004"]
