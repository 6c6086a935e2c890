"""Resumable checkpoints, written atomically: a half-written checkpoint is never mistaken for a good one.

A checkpoint is a folder ``<run>/checkpoints/step-00000042`` holding the model's state dict, the optimizer's and
scheduler's states, the random generators' states and ``state.json`` (where in the phase/epoch/step plan the run
stands). It is first written as ``.tmp-step-...`` and renamed only once every file is on disk; ``state.json`` is
written last. ``latest_checkpoint`` only ever returns renamed folders that hold ``state.json``. Saving a step that
already has a folder renames the old one aside, renames the new one in, then deletes the old one.

Resuming trusts nothing on disk: ``newest_valid`` checks each checkpoint, newest first, before it is used (every
file there and of the size ``state.json`` recorded, every archive readable, the model's tensors of the names and
shapes the model has) and returns the newest intact one with the list of those it skipped and why;
``resume_checkpoint`` prints that list and refuses, naming every checkpoint, when none is intact.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from data.textio import atomic_write_text

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{8})$")
FILES = ("model.pt", "optimizer.pt", "scheduler.pt", "rng.pt")


class CheckpointError(OSError):
    """No checkpoint can be resumed from; the message names each one, what is wrong with it, and the fix.

    An ``OSError``, so ``python -m training.train`` prints it as one line with exit status 2."""


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


def save_checkpoint(
    run_dir: Path,
    position: Position,
    model_state: dict,
    optimizer_state: dict,
    scheduler_state: dict,
    extra: dict | None = None,
    keep: int = 2,
    rank_state: Path | None = None,
) -> Path:
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
    sizes = {name: (tmp / name).stat().st_size for name in FILES}  # lets a resume spot a truncated file at once
    atomic_write_text(tmp / "state.json", json.dumps({**asdict(position), **(extra or {}), "files": sizes}, indent=2))
    _commit(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _commit(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` folder to ``final``; never a moment without one complete checkpoint of that step.

    The same step can be saved twice (an epoch end that is also a periodic save). The older folder is renamed aside
    to ``.old-step-N`` first, the new one renamed in, and only then is the old one deleted; a crash in between
    leaves either ``step-N`` or ``.old-step-N`` complete, and ``_recover`` puts the latter back.
    """
    aside = final.with_name(f".old-{final.name}")
    if aside.exists():  # left by an earlier crash after the new folder was renamed in
        shutil.rmtree(aside)
    if final.exists():
        os.replace(final, aside)
    os.replace(tmp, final)
    shutil.rmtree(aside, ignore_errors=True)


def _recover(root: Path) -> None:
    """Undo a save that crashed between its two renames: a ``.old-step-N`` without ``step-N`` is renamed back."""
    for aside in root.glob(".old-step-*"):
        final = root / aside.name[len(".old-") :]
        if _NAME.match(final.name) and aside.is_dir() and not final.exists():
            os.replace(aside, final)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders and folders without state.json are skipped)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    _recover(root)
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _step_folders(run_dir: Path) -> list[Path]:
    """Every ``step-N`` folder, newest first, whether complete or not (``.tmp-`` folders are never candidates)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    _recover(root)
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)), reverse=True)


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def verify_checkpoint(ckpt: Path, expected: Mapping[str, Any] | None = None) -> str | None:
    """None when ``ckpt`` can be resumed from, else why not (one phrase naming the file).

    ``expected``: the model's state dict (only names and shapes are used); when given, ``model.pt`` must hold
    exactly those tensors with those shapes. Archives are opened memory-mapped, so checking a 7B checkpoint reads
    its headers, not its 80 GB.
    """
    ckpt = Path(ckpt)
    if not any(ckpt.iterdir()):
        return "empty folder (a save that never started writing)"
    state_file = ckpt / "state.json"
    if not state_file.is_file():
        return "no state.json (a save that did not finish)"
    try:
        raw = json.loads(state_file.read_text(encoding="utf-8"))
        Position(**{k: int(raw[k]) for k in Position.__dataclass_fields__})
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        return f"state.json is damaged ({type(exc).__name__}: {str(exc)[:80]})"
    if not isinstance(raw, dict):
        return "state.json is damaged (not a JSON object)"
    sizes = raw.get("files") if isinstance(raw.get("files"), dict) else {}
    for name in FILES:
        file = ckpt / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if name in sizes and sizes[name] != size:
            return f"{name} is {size:,} bytes, {sizes[name]:,} were written (truncated or overwritten)"
        try:
            obj = torch.load(file, map_location="cpu", weights_only=False, mmap=True)
        except Exception as exc:  # noqa: BLE001 - any failure to read the archive means "do not resume from it"
            return f"{name} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:100]})"
        if name == "model.pt":
            problem = _compare_model_state(obj, expected)
            if problem:
                return f"model.pt {problem}"
    return None


def _compare_model_state(state: Any, expected: Mapping[str, Any] | None) -> str | None:
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "is not a state dict of tensors"
    if expected is None:
        return None
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        return (
            f"does not fit the model: {len(missing)} tensor(s) missing (e.g. {missing[:1]}), {len(extra)} "
            f"unexpected (e.g. {extra[:1]}); a checkpoint of another model or LoRA setting"
        )
    for key, value in expected.items():
        want, got = _shape(value), _shape(state[key])
        if want is not None and want != got:
            return (
                f"does not fit the model: {key} has shape {list(got or ())}, the model {list(want)} (a checkpoint "
                f"of another model size)"
            )
    return None


def newest_valid(
    run_dir: Path, expected: Mapping[str, Any] | None = None
) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint that passes ``verify_checkpoint``, and every newer one skipped with the reason."""
    skipped: list[tuple[Path, str]] = []
    for folder in _step_folders(run_dir):
        reason = verify_checkpoint(folder, expected)
        if reason is None:
            return folder, skipped
        skipped.append((folder, reason))
    return None, skipped


def resume_checkpoint(
    run_dir: Path, expected: Mapping[str, Any] | None = None, *, log: Callable[[str], Any] | None = print
) -> Path | None:
    """The checkpoint to resume from, saying which newer ones were skipped and why; ``None`` when there are none.

    Raises ``CheckpointError`` when checkpoints exist but none is intact: starting over silently would throw away
    the run's progress, so the user decides (the message lists each checkpoint and what is wrong with it).
    """
    found, skipped = newest_valid(run_dir, expected)
    for folder, reason in skipped:
        if log is not None:
            log(f"warning: skipping checkpoint {folder.parent.name}/{folder.name}: {reason}; it is left in place")
    if found is None and skipped:
        details = "; ".join(f"{f.name}: {r}" for f, r in skipped)
        raise CheckpointError(
            f"no intact checkpoint to resume from in {Path(run_dir) / CHECKPOINT_DIR} ({details}); "
            f"move that folder away to start the run afresh in {run_dir}"
        )
    if found is not None and skipped and log is not None:
        log(f"falling back to the newest intact checkpoint, {found.parent.name}/{found.name}")
    return found


def read_position(ckpt: Path) -> tuple[Position, dict]:
    raw = json.loads((Path(ckpt) / "state.json").read_text(encoding="utf-8"))
    keys = Position.__dataclass_fields__
    return Position(**{k: raw[k] for k in keys}), {k: v for k, v in raw.items() if k not in keys}


def load_tensors(ckpt: Path, name: str) -> Any:
    return torch.load(Path(ckpt) / name, map_location="cpu", weights_only=False)
