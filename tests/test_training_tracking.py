"""Optional experiment tracking (training/tracking.py): accelerate's tracker classes behind the loop's two calls.

A missing tracker package is one clear line, never a traceback; trackio (local-first) logs a run's config and scalars
into one project per sweep folder. The full path (every cell of a sweep logging to trackio) is checked in
tests/test_training_sweep_local.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training import sweep
from training.config import ConfigError, TrainConfig
from training.tracking import PACKAGES, TRACK_ENV, check_available, experiment_name, parse_names, requested

ROOT = Path(__file__).resolve().parent.parent


def _missing_tracker() -> str:
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    missing = [name for name in PACKAGES if name not in available]
    if not missing:
        pytest.skip("every tracker package is installed")
    return missing[0]


def test_names_come_from_the_environment_and_the_tensorboard_flag():
    assert parse_names(" trackio, tensorboard,trackio ") == ["trackio", "tensorboard"]
    with pytest.raises(ConfigError, match="unknown tracker 'mlfow'"):
        parse_names("mlfow")
    cfg = TrainConfig(tensorboard=True)
    assert requested(cfg, {TRACK_ENV: "trackio"}) == ["trackio", "tensorboard"]
    assert requested(TrainConfig(), {}) == []
    assert experiment_name(Path("runs/slurp/curriculum-p5-s1"), {}) == "slurp"


def test_a_missing_tracker_package_is_one_line(tmp_path, capsys):
    name = _missing_tracker()
    with pytest.raises(ConfigError, match=f"needs the {PACKAGES[name]} package: pip install {PACKAGES[name]}"):
        check_available([name])
    argv = [
        "--config",
        str(ROOT / "configs" / "tiny_cpu.yaml"),
        "--out",
        str(tmp_path / "s"),
        "--seeds",
        "1",
        "--track",
        name,
    ]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: tracking with") and len(err.splitlines()) == 1


def test_tensorboard_flag_without_tensorboard_stops_training_with_one_line(synth_corpus_dir, tmp_path, capsys):
    from accelerate.tracking import get_available_trackers

    if "tensorboard" in {str(t) for t in get_available_trackers()}:
        pytest.skip("tensorboard is installed")
    from training import train

    rc = train.cli(
        [
            "--config",
            str(ROOT / "configs" / "tiny_cpu.yaml"),
            "--corpus_args.path",
            str(synth_corpus_dir / "manifest.jsonl"),
            "--output_dir",
            str(tmp_path / "run"),
            "--tensorboard",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: tracking with tensorboard needs the tensorboard package: pip install tensorboard "
        "(or drop --track tensorboard / --tensorboard)"
    )


_TRACKIO_SCRIPT = """
import json, sqlite3, sys
from pathlib import Path
from data.cli import from_mapping
from training.config import TrainConfig
from training.tracking import open_tracker
run_dir = Path(sys.argv[1])
cfg = from_mapping(TrainConfig, {"output_dir": str(run_dir), "seed": 7, "eval_splits": ["test", "dev"]})
tracker = open_tracker(cfg, run_dir)
tracker.add_scalar("train/loss", 2.5, 1)
tracker.add_scalar("train/lr", 1e-3, 1)
tracker.add_scalar("dev/slu_f1", 0.25, 2)
tracker.close()
db = sqlite3.connect(Path(sys.argv[2]) / "my-sweep.db")
metrics = [(run, step, json.loads(m)) for run, step, m in db.execute("select run_name, step, metrics from metrics")]
configs = {run: json.loads(c) for run, c in db.execute("select run_name, config from configs")}
print("RESULT " + json.dumps({"names": tracker.names, "metrics": metrics, "configs": configs}))
"""


def test_trackio_logs_config_and_scalars_into_the_sweep_project(tmp_path):
    pytest.importorskip("trackio")
    store = tmp_path / "trackio"
    run_dir = tmp_path / "my-sweep" / "text-p0-s7"
    env = {**os.environ, TRACK_ENV: "trackio", "TRACKIO_DIR": str(store), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _TRACKIO_SCRIPT, str(run_dir), str(store)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert got["names"] == ["trackio"]
    logged = {(run, step, k): v for run, step, m in got["metrics"] for k, v in m.items() if not k.startswith("_")}
    assert logged == {
        ("text-p0-s7", 1, "train/loss"): 2.5,
        ("text-p0-s7", 1, "train/lr"): 1e-3,
        ("text-p0-s7", 2, "dev/slu_f1"): 0.25,
    }
    config = got["configs"]["text-p0-s7"]
    assert config["seed"] == 7 and json.loads(config["data.eval_splits"]) == ["test", "dev"]
