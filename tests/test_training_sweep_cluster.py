"""The sweep's cluster plumbing without a cluster and without training: Slurm parameters and the sbatch script that
submitit writes (a stand-in ``sbatch`` on PATH records the script instead of queueing it), the multi-node launcher,
preemption's requeue hook, ``--print-commands`` with ``--oracle``, tracker selection, and bad input (exit 2)."""

from __future__ import annotations

import os
import pickle
import stat
import sys
from pathlib import Path

import pytest
import yaml

from training import sweep
from data.cli import from_mapping, load_yaml
from training.config import ConfigError
from training.executors import (
    CellJob,
    SlurmConfig,
    device_sets,
    read_state,
    slurm_executor,
    slurm_launcher,
    slurm_parameters,
    time_minutes,
)

ROOT = Path(__file__).resolve().parent.parent


def _base_yaml(tmp_path: Path, **extra) -> Path:
    values = load_yaml(ROOT / "configs" / "tiny_cpu.yaml") | {"corpus_args": {"path": str(tmp_path / "m.jsonl")}}
    values.update(extra)
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _script_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            out[key] = value
    return out


def test_shipped_slurm_yamls_are_valid_and_name_existing_accelerate_configs():
    for path in sorted((ROOT / "configs" / "slurm").glob("*.yaml")):
        cfg = from_mapping(SlurmConfig, load_yaml(path))
        if cfg.accelerate_config:
            assert (ROOT / cfg.accelerate_config).is_file(), path


def test_sbatch_script_for_a_two_node_cell(tmp_path, fake_sbatch):
    cfg = from_mapping(SlurmConfig, load_yaml(ROOT / "configs" / "slurm" / "2node_fsdp.yaml"))
    cfg = SlurmConfig(
        **{**cfg.__dict__, "partition": "h100", "account": "lab", "sbatch": {"exclusive": True, "mail_type": "END"}}
    )
    params = slurm_parameters(cfg, "lalm-slurp")
    assert params["nodes"] == 2 and params["ntasks_per_node"] == 1 and params["gpus_per_node"] == 8
    assert params["cpus_per_task"] == 64 and params["time"] == 720
    script = slurm_executor(cfg, tmp_path / "%j", "lalm-slurp")._make_submission_file_text("CMD", "uid")
    lines = _script_lines(script)
    assert lines["nodes"] == "2" and lines["gpus-per-node"] == "8" and lines["ntasks-per-node"] == "1"
    assert lines["partition"] == "h100" and lines["account"] == "lab" and lines["time"] == "720"
    assert lines["signal"] == "USR2@300"  # the requeue warning, 5 minutes before the limit
    assert lines["cpus-per-task"] == "64" and lines["job-name"] == "lalm-slurp"
    assert "exclusive" in lines and lines["mail-type"] == "END"
    assert "source .venv/bin/activate" in script and "export NCCL_ASYNC_ERROR_HANDLING=1" in script


def test_multi_node_launcher_ranks_and_rendezvous():
    cfg = {"gpus_per_node": 8, "accelerate_config": "configs/accelerate/8gpu_fsdp.yaml", "main_process_port": 29511}
    second = slurm_launcher(cfg, node=1, nodes=2, master="gpu-a17")

    def opt(cmd, name):
        return cmd[cmd.index(name) + 1]

    assert second[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert opt(second, "--num_machines") == "2" and opt(second, "--num_processes") == "16"
    assert opt(second, "--machine_rank") == "1" and opt(second, "--main_process_ip") == "gpu-a17"
    assert opt(second, "--main_process_port") == "29511"
    assert opt(second, "--config_file") == "configs/accelerate/8gpu_fsdp.yaml"
    one_node = slurm_launcher(cfg, node=0, nodes=1, master="gpu-a17")
    assert opt(one_node, "--num_processes") == "8" and "--main_process_ip" not in one_node
    assert slurm_launcher({"gpus_per_node": 1}, node=0, nodes=1, master="") == [sys.executable]


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An ``sbatch`` that keeps the script it is given and answers like Slurm (no cluster needed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = tmp_path / "submitted"
    scripts.mkdir()
    exe = bin_dir / "sbatch"
    exe.write_text(f"#!/bin/sh\ncp \"$1\" {scripts}/\necho 'Submitted batch job 4242'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    srun = bin_dir / "srun"  # submitit looks for srun to tell it is on a Slurm cluster
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return scripts


def test_slurm_sweep_submits_one_job_array_of_pending_cells(tmp_path, fake_sbatch, capsys):
    base = _base_yaml(tmp_path)
    out = tmp_path / "sweep"
    (out / "text-p0-s2").mkdir(parents=True)
    (out / "text-p0-s2" / "done.json").write_text("{}")  # finished: not submitted again
    argv = [
        "--config",
        str(base),
        "--out",
        str(out),
        "--schemes",
        "text,direct",
        "--speech-percent",
        "0,50",
        "--seeds",
        "1,2",
        "--executor",
        "slurm",
        "--slurm-config",
        str(ROOT / "configs/slurm/8gpu_node.yaml"),
        "--partition",
        "gpu",
        "--time",
        "2:00:00",
        "--sbatch",
        "qos=high",
    ]
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    assert "submitted 3 cell(s) as a job array (4242)" in printed and f"status {out}" in printed
    (script_file,) = list(fake_sbatch.iterdir())
    lines = _script_lines(script_file.read_text())
    assert lines["array"] == "0-2%3" and lines["partition"] == "gpu" and lines["time"] == "120"
    assert lines["qos"] == "high" and lines["gpus-per-node"] == "8"
    states = {name: read_state(out, name) for name in ("text-p0-s1", "direct-p50-s1", "direct-p50-s2")}
    assert sorted(s["job_id"] for s in states.values()) == ["4242_0", "4242_1", "4242_2"]
    assert all(s["state"] == "queued" for s in states.values())
    # The pickled job is the cell itself: the train arguments of its run, resources for the launcher.
    pickles = sorted((out / "slurm").rglob("*_submitted.pkl"))
    assert len(pickles) == 3
    with open(pickles[0], "rb") as fh:
        job = pickle.load(fh).function
    assert isinstance(job, CellJob) and job.slurm["nodes"] == 1 and job.slurm["gpus_per_node"] == 8
    assert job.train_args[job.train_args.index("--output_dir") + 1] == str(out / job.name)
    # Preemption/time limit: submitit calls checkpoint(); the same cell comes back and is marked queued.
    again = job.checkpoint()
    assert again.function == job and read_state(out, job.name)["state"] == "queued"
    assert "newest checkpoint" in read_state(out, job.name)["note"]
    # Resume is decided when the job starts, from the disk: a complete checkpoint adds --resume.
    assert "--resume" not in job.train_command()
    ckpt = out / job.name / "checkpoints" / "step-00000004"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{}")
    assert job.train_command()[-1] == "--resume"


def test_without_slurm_the_sweep_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    argv = [
        "--config",
        str(_base_yaml(tmp_path)),
        "--out",
        str(tmp_path / "s"),
        "--schemes",
        "text",
        "--seeds",
        "1",
        "--executor",
        "slurm",
    ]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: submitting to Slurm failed:") and "srun" in err


def test_print_commands_keep_the_oracle_and_owe_it_for_finished_text_runs(tmp_path, capsys):
    base = _base_yaml(tmp_path)
    out = tmp_path / "sweep"
    argv = [
        "--config",
        str(base),
        "--out",
        str(out),
        "--schemes",
        "text,direct",
        "--speech-percent",
        "0,50",
        "--seeds",
        "1",
        "--oracle",
        "--print-commands",
    ]
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    text = next(line for line in lines if "--scheme text" in line)
    assert text.startswith("accelerate launch -m training.train") and "--speech_percent 0 " in text
    assert f"&& python -m training.evaluate {out / 'text-p0-s1'} --split test --oracle" in text
    assert "--oracle" not in next(line for line in lines if "--scheme direct" in line)
    # A finished text run without its Oracle evaluation still owes it (and only it).
    (out / "text-p0-s1").mkdir(parents=True)
    (out / "text-p0-s1" / "done.json").write_text("{}")
    (out / "direct-p50-s1").mkdir(parents=True)
    (out / "direct-p50-s1" / "done.json").write_text("{}")
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines() == [
        f"python -m training.evaluate {out / 'text-p0-s1'} --split test --oracle --results_csv {out / 'results.csv'}"
    ]
    oracle = out / "text-p0-s1" / "eval" / "test-oracle"
    oracle.mkdir(parents=True)
    (oracle / "metrics.json").write_text('{"split": "test", "oracle": true}')
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out.strip() == ""


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--executor", "slurm", "--time", "soon"], "slurm time: cannot read 'soon'"),
        (["--executor", "slurm", "--nodes", "0"], "slurm nodes must be >= 1"),
        (["--executor", "slurm", "--sbatch", "=x"], "--sbatch: cannot read '=x'"),
        (["--executor", "local", "--max-parallel", "0"], "--max-parallel and --max-attempts must be >= 1"),
        (["--executor", "local", "--devices", "0,1", "--gpus-per-cell", "4"], "--gpus-per-cell 4 needs at least"),
        (["--track", "tensorbored"], "--track: unknown tracker 'tensorbored'"),
        (["--n_speech", "4"], "the sweep sets speech by --speech-percent"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    argv = ["--config", str(_base_yaml(tmp_path)), "--out", str(tmp_path / "s"), "--seeds", "1"] + extra
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


def test_time_limits_and_device_sets():
    assert time_minutes("90") == 90 and time_minutes("1:30:00") == 90 and time_minutes("2-00:00:00") == 2880
    assert time_minutes("0:00:30") == 1
    with pytest.raises(ConfigError):
        time_minutes("0")
    assert device_sets(["0", "1", "2", "3", "4"], 2) == ["0,1", "2,3"]
    assert device_sets(["0", "1", "2", "3", "4", "5", "6", "7"], 8) == ["0,1,2,3,4,5,6,7"]


def test_status_of_a_folder_that_is_no_sweep(tmp_path, capsys):
    assert sweep.main(["status", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert sweep.main(["status", str(tmp_path)]) == 2
    assert "holds no sweep cells" in capsys.readouterr().err


def test_slurm_job_body_marks_a_failing_cell_failed_with_its_log_line(tmp_path):
    # What runs inside the Slurm job, called directly (outside a job: one node, no job id). The run's own
    # validation fails at once (exit status 2), so the cell fails for good: no retry, state and log say why.
    out = tmp_path / "sweep"
    job = CellJob(
        name="direct-p50-s1",
        out=str(out),
        train_args=["--model", "tiny", "--epochs", "0", "--output_dir", str(out / "direct-p50-s1")],
        max_attempts=3,
    )
    with pytest.raises(
        RuntimeError, match="cell direct-p50-s1 failed: exit status 2: error: --schedule.epochs must be >= 1"
    ):
        job()
    state = read_state(out, "direct-p50-s1")
    assert state["state"] == "failed" and state["attempt"] == 1
    assert state["error"] == "exit status 2: error: --schedule.epochs must be >= 1, got 0"
    log = (out / "logs" / "direct-p50-s1.log").read_text()
    assert log.count("=== ") == 1 and "attempt 1" in log  # one start: an error is not retried
    # A finished cell has nothing left to run: the job body only records it as done.
    (out / "text-p0-s1").mkdir()
    (out / "text-p0-s1" / "done.json").write_text("{}")
    done = CellJob(name="text-p0-s1", out=str(out), train_args=[])
    assert done() == "text-p0-s1" and read_state(out, "text-p0-s1")["state"] == "done"
