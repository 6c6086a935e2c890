"""The local executor for real: a 4-cell sweep of the tiny model, two cells at a time, one cell SIGKILLed mid-run.

The killed cell must be requeued, resume from its newest checkpoint and end with the same weights as an uninterrupted
run; every cell logs to trackio under one project named after the sweep; ``status`` reports a mix of cell states and
rebuilds results.csv and report.md from the finished runs. (The Oracle step a text cell owes is checked through
``--print-commands`` in test_training_sweep_cluster.py; the Oracle evaluation itself in test_training_run.py.)
Marked slow: five training processes start, two at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import yaml

from training import sweep
from training.executors import read_state, state_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
KILLED = "text-p0-s1"
CELLS = {"text-p0-s1", "direct-p50-s1", "text-p0-s2", "direct-p50-s2"}


def _base(corpus_dir: Path, path: Path) -> Path:
    # configs/tiny_cpu.yaml made smaller; its speech_percent (50) must not leak into the text-only rows.
    values = yaml.safe_load((ROOT / "configs" / "tiny_cpu.yaml").read_text())
    values.update(
        corpus_args={"path": str(corpus_dir / "manifest.jsonl")},
        limit_train_texts=8,
        epochs=1,
        per_device_batch_size=2,
        eval_max_examples=2,
        eval_batch_size=4,
        num_beams=1,
        max_new_tokens=4,
        save_every_steps=1,
        log_every_steps=1,
        peak_lr=5e-3,
        final_peak_lr=3e-3,
    )
    assert values["speech_percent"] == 50
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def local_sweep(synth_corpus_dir, tmp_path_factory):
    from training.checkpoint import list_checkpoints

    root = tmp_path_factory.mktemp("local_sweep")
    base = _base(synth_corpus_dir, root / "base.yaml")
    out = root / "tiny-grid"
    argv = [
        "--config",
        str(base),
        "--out",
        str(out),
        "--schemes",
        "text,direct",
        "--speech-percent",
        "50",
        "--seeds",
        "1,2",
        "--executor",
        "local",
        "--max-parallel",
        "2",
        "--devices",
        "",
        "--track",
        "trackio",
    ]
    saved = {k: os.environ.get(k) for k in ("TRACKIO_DIR", "OMP_NUM_THREADS")}
    os.environ["TRACKIO_DIR"] = str(root / "trackio")
    os.environ["OMP_NUM_THREADS"] = "1"
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("rc", sweep.main(argv)))
    worker.start()
    killed_pid = None
    deadline = time.monotonic() + 600
    try:
        while worker.is_alive() and killed_pid is None:
            state = read_state(out, KILLED)
            run = out / KILLED
            if (
                state.get("state") == "running"
                and state.get("pid")
                and list_checkpoints(run)
                and not (run / "done.json").exists()
            ):
                os.kill(state["pid"], signal.SIGKILL)
                killed_pid = state["pid"]
            assert time.monotonic() < deadline, "the cell made no checkpoint within 600 s"
            time.sleep(0.05)
        worker.join(timeout=900)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert not worker.is_alive(), "the sweep did not finish within 15 minutes"
    assert killed_pid is not None, "the cell finished before it could be killed"
    return {"out": out, "rc": result.get("rc"), "base": base, "store": root / "trackio", "root": root}


def test_longest_cells_first():
    cells = sweep.grid(["text", "direct", "curriculum"], [2, 10, 100], [1, 2])
    order = [c.name() for c in sweep.longest_first(cells)]
    assert order[:4] == ["direct-p100-s1", "curriculum-p100-s1", "direct-p100-s2", "curriculum-p100-s2"]
    assert order[-2:] == ["text-p0-s1", "text-p0-s2"] and sorted(order) == sorted(c.name() for c in cells)


def test_four_cells_ran_two_at_a_time(local_sweep):
    out = local_sweep["out"]
    assert local_sweep["rc"] == 0
    assert set(json.loads((out / ".sweep" / "cells.json").read_text())["cells"]) == CELLS
    spans = [(a["started"], a["ended"]) for name in CELLS for a in read_state(out, name)["history"]]
    assert len(spans) == 5  # four cells, one of them started twice
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2  # parallel, and never more than --max-parallel
    # the cells that hear speech (the long ones) start first, the text-only ones after them
    first = {name: read_state(out, name)["history"][0]["started"] for name in CELLS}
    assert max(t for n, t in first.items() if n.startswith("direct")) < min(
        t for n, t in first.items() if n.startswith("text")
    )
    for name in CELLS:
        assert (out / name / "done.json").is_file() and read_state(out, name)["state"] == "done"


def test_killed_cell_is_requeued_and_ends_with_the_uninterrupted_weights(local_sweep, capsys):
    from safetensors.torch import load_file

    from training import train

    out = local_sweep["out"]
    state = read_state(out, KILLED)
    assert state["attempt"] == 2 and [a["attempt"] for a in state["history"]] == [1, 2]
    log = (out / "logs" / f"{KILLED}.log").read_text()
    assert "attempt 2" in log and "resuming from checkpoints/step-" in log
    assert "-m training.train" in log.split("attempt 2", 1)[1].splitlines()[0]
    assert log.split("attempt 2", 1)[1].splitlines()[0].rstrip().endswith("--resume")
    # The same run without any kill, as a lone `training.train` with the YAML's speech_percent 50.
    reference = local_sweep["root"] / "reference" / "text-alone"
    assert (
        train.cli(
            ["--config", str(local_sweep["base"]), "--scheme", "text", "--seed", "1", "--output_dir", str(reference)]
        )
        == 0
    )
    assert "recording speech_percent 0 (not 50)" in capsys.readouterr().out
    a = load_file(str(reference / "model" / "model.safetensors"))
    b = load_file(str(out / KILLED / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    import torch

    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    from evaluation.results import read_results

    (row,) = read_results(reference.parent / "results.csv")
    assert row["scheme"] == "text" and row["speech_percent"] == 0.0  # a lone text run: no "50% Text" row


def test_results_and_report(local_sweep):
    from evaluation.results import read_results

    out = local_sweep["out"]
    rows = read_results(out / "results.csv")
    got = sorted((r["scheme"], r["speech_percent"], r["seed"]) for r in rows)
    assert got == [("direct", 50.0, 1), ("direct", 50.0, 2), ("text", 0.0, 1), ("text", 0.0, 2)]
    report = (out / "report.md").read_text()
    assert "Text" in report and "Direct" in report and "50" in report


def test_every_cell_logged_to_one_trackio_project(local_sweep):
    pytest.importorskip("trackio")
    db = sqlite3.connect(local_sweep["store"] / "tiny-grid.db")
    keys: dict[str, set] = {}
    for run, metrics in db.execute("select run_name, metrics from metrics"):
        keys.setdefault(run, set()).update(json.loads(metrics))
    assert set(keys) == CELLS
    for run, seen in keys.items():
        assert {"train/loss", "train/lr", "dev/slu_f1", "dev/intent_accuracy"} <= seen, (run, seen)
    configs = {run: json.loads(c) for run, c in db.execute("select run_name, config from configs")}
    assert configs["direct-p50-s2"]["seed"] == 2 and configs["direct-p50-s2"]["speech_percent"] == 50


def test_status_for_a_mix_of_cell_states(local_sweep, tmp_path, capsys):
    from evaluation.results import read_results

    src = local_sweep["out"]
    out = tmp_path / "grid"
    shutil.copytree(src, out)
    expected = sorted(map(str, read_results(src / "results.csv")), key=str)
    # direct-p50-s2 failed for good; text-p0-s2 is running (a live pid); direct-p50-s1 never started.
    shutil.rmtree(out / "direct-p50-s2" / "model")
    (out / "direct-p50-s2" / "done.json").unlink()
    (out / "logs" / "direct-p50-s2.log").write_text("step 1\nRuntimeError: CUDA out of memory\n")
    state = json.loads(state_path(out, "direct-p50-s2").read_text())
    state.update(state="failed", error="")
    state_path(out, "direct-p50-s2").write_text(json.dumps(state))
    (out / "text-p0-s2" / "done.json").unlink()
    state_path(out, "text-p0-s2").write_text(json.dumps({"state": "running", "attempt": 1, "pid": os.getpid()}))
    (out / "logs" / "text-p0-s2.log").write_text("epoch 2/2:  50%|#####     | 2/4 [00:01<00:01]\r\n")
    shutil.rmtree(out / "direct-p50-s1")
    state_path(out, "direct-p50-s1").unlink()
    (out / "results.csv").unlink()
    (out / "report.md").unlink()

    assert sweep.main(["status", str(out)]) == 0
    printed = capsys.readouterr().out
    table = {line.split()[0]: line for line in printed.splitlines() if line.split() and line.split()[0] in CELLS}
    assert table["text-p0-s1"].split()[1] == "done" and table["text-p0-s1"].split()[2] == "2"
    assert table["direct-p50-s2"].split()[1] == "failed"
    assert table["direct-p50-s2"].endswith("RuntimeError: CUDA out of memory")
    assert table["text-p0-s2"].split()[1] == "running" and f"pid {os.getpid()}" in table["text-p0-s2"]
    assert table["text-p0-s2"].endswith("epoch 2/2:  50%|#####     | 2/4 [00:01<00:01]")
    assert table["direct-p50-s1"].split()[1] == "queued"
    assert "1 done, 1 running, 1 queued, 1 failed of 4 cells" in printed
    # Rebuilt from the one finished run folder: its test row, as the sweep had written it.
    rebuilt = read_results(out / "results.csv")
    assert [(r["scheme"], r["seed"]) for r in rebuilt] == [("text", 1)]
    assert all(str(r) in expected for r in rebuilt)
    assert (out / "report.md").is_file() and "Text" in (out / "report.md").read_text()
    # A running cell whose process is gone (the sweep was stopped) shows as queued, to be resumed.
    state_path(out, "text-p0-s2").write_text(json.dumps({"state": "running", "attempt": 1, "pid": 2**22 + 17}))
    assert sweep.main(["status", str(out), "--no-rebuild"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("text-p0-s2"))
    assert line.split()[1] == "queued" and "rerun the sweep" in line
