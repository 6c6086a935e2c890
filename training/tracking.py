"""Experiment tracking through accelerate's tracker API: TensorBoard, trackio, Weights & Biases, MLflow, ...

Tracking is optional. A run logs to the trackers named in the environment variable ``LALM_SLU_TRACK`` (a comma list
of accelerate logger names, e.g. ``trackio`` or ``tensorboard,wandb``; ``python -m training.sweep --track NAME``
sets it for every cell) plus ``tensorboard`` when ``--tensorboard`` is set. Each tracker is accelerate's own class
(``accelerate.tracking``), the same one ``Accelerator(log_with=NAME)`` builds, so its settings and viewers are the
ones a user already knows.

One experiment per sweep: the experiment (trackio/wandb project, TensorBoard log folder) is named after the folder
that holds the run folders (``runs/slurp`` for ``runs/slurp/curriculum-p5-s1``; ``LALM_SLU_EXPERIMENT`` overrides it),
and each run is one run in it, named after its folder. Logged: the run's config once, ``train/loss`` and
``train/lr`` every ``log_every_steps``, and ``dev/intent_accuracy``, ``dev/entity_f1``, ``dev/slu_f1`` at each dev
evaluation. TensorBoard writes to ``<run>/tensorboard`` (``tensorboard --logdir <sweep>`` shows them all); trackio
to its local store (``TRACKIO_DIR``, default under the Hugging Face cache; ``trackio show --project <sweep name>``).

A tracker whose package is missing stops the run before training with one line naming the package to install.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from data.cli import option_values
from training.config import ConfigError, TrainConfig

TRACK_ENV = "LALM_SLU_TRACK"
EXPERIMENT_ENV = "LALM_SLU_EXPERIMENT"
# accelerate logger name -> the package a user installs for it
PACKAGES = {
    "tensorboard": "tensorboard",
    "trackio": "trackio",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "aim": "aim",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
}


def parse_names(text: str) -> list[str]:
    """``"trackio, tensorboard"`` -> ``["trackio", "tensorboard"]``; unknown names are a ConfigError."""
    names = []
    for name in (n.strip().lower() for n in (text or "").split(",")):
        if not name:
            continue
        if name not in PACKAGES:
            raise ConfigError(f"--track: unknown tracker {name!r}; choose from {', '.join(PACKAGES)}")
        if name not in names:
            names.append(name)
    return names


def requested(cfg: TrainConfig, environ: dict | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    names = parse_names(env.get(TRACK_ENV, ""))
    if cfg.tensorboard and "tensorboard" not in names:
        names.append("tensorboard")
    return names


def check_available(names: Iterable[str]) -> None:
    """Raise one clear ConfigError for the first tracker whose package is not installed."""
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in available:
            raise ConfigError(
                f"tracking with {name} needs the {PACKAGES[name]} package: pip install {PACKAGES[name]} "
                f"(or drop --track {name} / --tensorboard)"
            )


def experiment_name(run_dir: Path, environ: dict | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(EXPERIMENT_ENV) or Path(run_dir).resolve().parent.name or "lalm-slu"


def flat_config(values: dict[str, Any]) -> dict[str, Any]:
    """Config values as the scalar types trackers accept (lists and mappings become JSON text)."""
    return {
        k: v if isinstance(v, (bool, int, float, str)) or v is None else json.dumps(v, sort_keys=True)
        for k, v in values.items()
    }


class RunTracker:
    """The trackers of one run behind the two calls the training loop makes: ``add_scalar`` and ``close``."""

    def __init__(self, trackers: list) -> None:
        self.trackers = trackers

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trackers]

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        for tracker in self.trackers:
            tracker.log({tag: float(value)}, step=int(step))

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()


def _make(name: str, experiment: str, run_name: str, run_dir: Path):
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    cls = LOGGER_TYPE_TO_CLASS[name]
    if name == "tensorboard":  # <run>/tensorboard; `tensorboard --logdir <sweep>` shows every run of the sweep
        return cls("tensorboard", Path(run_dir))
    if name == "trackio":  # a requeued cell continues its own run
        return cls(experiment, name=run_name, resume="allow")
    if name == "wandb":
        return cls(experiment, name=run_name, id=f"{experiment}-{run_name}"[:128], resume="allow")
    if cls.requires_logging_directory:
        return cls(experiment, Path(run_dir).resolve().parent / name)
    return cls(experiment)


def open_tracker(cfg: TrainConfig, run_dir: str | Path) -> RunTracker | None:
    """Start the trackers asked for (None when none is); logs the config. Call on the main process only."""
    names = requested(cfg)
    if not names:
        return None
    check_available(names)
    from accelerate import PartialState

    PartialState()  # accelerate's trackers log through its state (already made when the loop's Accelerator exists)
    run_dir = Path(run_dir)
    experiment, run_name = experiment_name(run_dir), run_dir.resolve().name
    trackers = []
    for name in names:
        tracker = _make(name, experiment, run_name, run_dir)
        tracker.start()
        tracker.store_init_configuration(flat_config(option_values(cfg)))
        trackers.append(tracker)
    return RunTracker(trackers)
