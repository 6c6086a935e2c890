"""Resumable checkpoints, written atomically: a half-written checkpoint is never mistaken for a good one.

A checkpoint is a folder ``<run>/checkpoints/step-00000042`` holding the model's state dict, the optimizer's and
scheduler's states, the random generators' states and ``state.json`` (where in the phase/epoch/step plan the run
stands). It is first written as ``.tmp-step-...`` and renamed only once every file is on disk; ``state.json`` is
written last. ``latest_checkpoint`` only ever returns renamed folders that hold ``state.json``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.results import atomic_write_text

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{8})$")


@dataclass
class Position:
    """Where training resumes: the next optimizer step to run."""

    global_step: int = 0  # optimizer steps completed over the whole run
    global_epoch: int = 0  # epoch (over all phases) the next step belongs to
    step_in_epoch: int = 0  # optimizer steps of that epoch already done
    phase_index: int = 0  # phase of the optimizer/scheduler state saved beside this position


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, position: Position, model_state: dict, optimizer_state: dict,
                    scheduler_state: dict, extra: dict | None = None, keep: int = 2,
                    rank_state: Path | None = None) -> Path:
    """Write a checkpoint atomically and prune older ones, keeping the newest ``keep``. Call on one process.

    ``rank_state``: a folder every rank already wrote its optimizer shard into (sharded backends); it is moved into
    the checkpoint as ``ranks/`` before ``state.json``, so it is part of the same atomic commit.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{position.global_step:08d}"
    final = root / name
    tmp = root / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(model_state, tmp / "model.pt")
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler_state, tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    if rank_state is not None:
        os.replace(rank_state, tmp / "ranks")
    atomic_write_text(tmp / "state.json", json.dumps({**asdict(position), **(extra or {})}, indent=2))
    if final.exists():  # same step saved twice (an epoch end that is also a periodic save): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders and folders without state.json are skipped)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_position(ckpt: Path) -> tuple[Position, dict]:
    raw = json.loads((Path(ckpt) / "state.json").read_text(encoding="utf-8"))
    keys = Position.__dataclass_fields__
    return Position(**{k: raw[k] for k in keys}), {k: v for k, v in raw.items() if k not in keys}


def load_tensors(ckpt: Path, name: str) -> Any:
    return torch.load(Path(ckpt) / name, map_location="cpu", weights_only=False)
