"""The one CLI and config helper (data/cli.py) and every entry point that uses it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from data.cli import ConfigError, from_mapping, parse_config, run_cli, to_flags

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "fixtures" / "slurp" / "devel.jsonl"

# Every command-line entry point of the project (module, function taking argv); the planner's commands below.
ENTRY_POINTS = [
    ("training.train", "cli"),
    ("training.sweep", "main"),
    ("training.sweep_status", "main"),
    ("training.evaluate", "main"),
    ("training.plots", "main"),
    ("training.pretrain", "main"),
    ("training.demo", "main"),
    ("evaluation.score", "run"),
    ("evaluation.report", "run"),
    ("data.prepare", "cli"),
    ("data.synth", "cli"),
    ("models.tiny", "main"),
    ("app", "main"),
    ("benchmarks.bench_decode", "main"),
    ("benchmarks.bench_train_step", "main"),
    ("benchmarks.bench_score", "cli"),
    ("benchmarks.gpu_throughput", "main"),
    ("benchmarks.gpu_7b_checks", "main"),
]


def _entry(module: str, name: str):
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module, name", ENTRY_POINTS)
def test_every_entry_point_names_an_unknown_option_in_one_line(module, name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing may be written into the checkout
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _entry(module, name)(["--bogus-option", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown option --bogus_option; known options: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("module, name", ENTRY_POINTS)
def test_every_entry_point_names_a_missing_config_file(module, name, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # (the sweep's --config is the base TrainConfig YAML of every run)
    assert _entry(module, name)(["--config", "nope.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --config: nope.yaml does not exist; pass the path of a YAML file (see configs/)"


@pytest.mark.parametrize("command", ["recommend", "allocate", "backtest", "curves", "lcdb"])
def test_every_planner_command_goes_through_the_same_helper(command, capsys, monkeypatch, tmp_path):
    from planner.__main__ import run

    monkeypatch.chdir(tmp_path)
    assert run([command, "--bogus-option", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown option --bogus_option; known options: "), err
    assert len(err.strip().splitlines()) == 1
    assert run([command, "--config", "nope.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: --config: nope.yaml does not exist")


def test_planner_unknown_command_names_the_closest_one(capsys):
    from planner.__main__ import run

    assert run(["recomend", "--target", "0.7"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: unknown command 'recomend' (did you mean recommend?); choose one of recommend, allocate, backtest, "
        "curves, lcdb"
    ]
    assert run([]) == 2 and "commands:" in capsys.readouterr().err


def test_yaml_file_then_flags_for_a_torch_free_entry_point(tmp_path, capsys):
    pred = tmp_path / "pred.jsonl"
    pred.write_text("", encoding="utf-8")
    config = tmp_path / "score.yaml"
    config.write_text(f"gold: {GOLD}\npred: {pred}\naverage: macro\n", encoding="utf-8")
    # An empty prediction file: the scorer's own error, reached only when the YAML filled --gold and --pred.
    assert _entry("evaluation.score", "run")(["--config", str(config)]) == 2
    assert "no prediction in" in capsys.readouterr().err
    assert _entry("evaluation.score", "run")(["--config", str(config), "--average", "weighted"]) == 2
    assert "--average: 'weighted' is not one of micro, macro" in capsys.readouterr().err


def test_bad_values_name_the_option(capsys):
    assert _entry("app", "main")(["--port", "eighty"]) == 2
    assert capsys.readouterr().err.startswith("error: --port: cannot use 'eighty'")
    assert _entry("training.plots", "main")(["r.csv"]) == 2  # --out is required
    assert capsys.readouterr().err.startswith("error: --out is required: SVG file to write")
    assert _entry("training.sweep_status", "main")([]) == 2
    assert capsys.readouterr().err.startswith("error: --out is required")
    assert _entry("models.tiny", "main")(["--seed", "1.5", "--out", "x"]) == 2
    assert "--seed: cannot use '1.5'" in capsys.readouterr().err
    # A near miss is named, also through the sweep, whose other flags are the training options.
    assert _entry("training.sweep", "main")(["--num-beam", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --num_beam (did you mean --decoding.num_beams?)" in err and "job_name, and every" in err


def test_module_entry_point_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "training.plots", "r.csv", "--out", str(tmp_path / "x.svg"), "--metric", "wer"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --metric: 'wer' is not one of slu_f1, intent_accuracy, entity_f1"


def test_help_lists_options_with_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        _entry("evaluation.report", "run")(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--format" in out and "default: 'markdown'" in out and "one of markdown, csv" in out


# ------------------------------------------------------------------------------------------------ the helper itself


@dataclass
class Schedule:
    peak_lr: float = 5e-6
    epochs: int = 3


@dataclass
class Demo:
    ALIASES: ClassVar[dict[str, str]] = {"peak_lr": "schedule.peak_lr", "n_epochs": "schedule.epochs"}

    name: str = field(default="", metadata={"positional": True})
    schedule: Schedule = field(default_factory=Schedule)
    corpus_args: dict = field(default_factory=dict)
    splits: list = field(default_factory=lambda: ["test"])
    resume: bool = False
    mode: str = field(default="a", metadata={"choices": ("a", "b")})
    tag: list = field(default_factory=list, metadata={"repeat": True})
    track: str = field(default="", metadata={"env": "DEMO_TRACK"})


def test_nested_dotted_dict_list_bool_and_positional_flags():
    cfg = parse_config(
        Demo,
        [
            "x",
            "--schedule.peak_lr",
            "1e-3",
            "--corpus_args.path",
            "d/x",
            "--corpus-args.n",
            "3",
            "--resume",
            "--splits",
            "dev,test",
            "--tag",
            "a=1",
            "--tag=b",
        ],
        environ={},
    )
    assert cfg == Demo(
        name="x",
        schedule=Schedule(1e-3, 3),
        corpus_args={"path": "d/x", "n": 3},
        splits=["dev", "test"],
        resume=True,
        tag=["a=1", "b"],
    )
    assert parse_config(Demo, ["--resume", "false"], environ={}).resume is False
    assert parse_config(Demo, ["--no-resume"], environ={}).resume is False


def test_aliases_work_as_flags_yaml_keys_and_recorded_configs(tmp_path):
    assert parse_config(Demo, ["--peak-lr=2", "--n_epochs", "4"], environ={}).schedule == Schedule(2.0, 4)
    path = tmp_path / "c.yaml"
    path.write_text("peak_lr: 0.5\nschedule: {epochs: 7}\ncorpus_args: {path: a, n: 1}\n")
    cfg = parse_config(Demo, ["--config", str(path), "--corpus_args.path", "b"], environ={})
    assert cfg.schedule == Schedule(0.5, 7) and cfg.corpus_args == {"path": "b", "n": 1}  # flags refine the YAML
    assert from_mapping(Demo, {"n_epochs": 2, "schedule": {"peak_lr": 1}}).schedule == Schedule(1.0, 2)


def test_environment_sits_between_yaml_and_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("track: yaml\n")
    assert parse_config(Demo, ["--config", str(path)], environ={}).track == "yaml"
    assert parse_config(Demo, ["--config", str(path)], environ={"DEMO_TRACK": "env"}).track == "env"
    assert parse_config(Demo, ["--config", str(path), "--track", "flag"], environ={"DEMO_TRACK": "env"}).track == "flag"


@pytest.mark.parametrize("argv, message", [
    (["--nope", "1"], "unknown option --nope; known options: name, schedule.peak_lr, schedule.epochs"),
    (["--schedule.nope", "1"], "unknown option --schedule.nope"),
    (["--mode", "c"], "--mode: 'c' is not one of a, b"),
    (["--schedule.epochs", "x"], "--schedule.epochs (--n_epochs): cannot use 'x'"),  # and its older name
    (["--schedule.epochs"], "--schedule.epochs needs a value"),
    (["a", "b"], "unexpected argument(s) b"),
    (["-x"], "unknown option -x"),
    (["--resume.deep", "1"], "unknown option --resume.deep"),
])  # fmt: skip
def test_errors_name_the_option(argv, message):
    with pytest.raises(ConfigError) as err:
        parse_config(Demo, argv, environ={})
    assert message in str(err.value)


def test_yaml_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not readable YAML"):
        parse_config(Demo, ["--config", str(bad)], environ={})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse_config(Demo, ["--config", str(bad)], environ={})
    bad.write_text("schedule: {warmup: 1}\n")
    with pytest.raises(ConfigError, match=r"unknown option --schedule\.warmup"):
        parse_config(Demo, ["--config", str(bad)], environ={})
    bad.write_text("schedule: 3\n")
    with pytest.raises(ConfigError, match="--schedule is a group of options"):
        parse_config(Demo, ["--config", str(bad)], environ={})


def test_to_flags_round_trips(tmp_path):
    cfg = Demo(schedule=Schedule(0.25, 5), corpus_args={"path": "p", "n": 2}, splits=["dev"], mode="b")
    values = {
        "schedule": {"peak_lr": 0.25, "epochs": 5},
        "corpus_args": {"path": "p", "n": 2},
        "splits": ["dev"],
        "mode": "b",
    }
    assert parse_config(Demo, to_flags(values), environ={}) == cfg


def test_run_cli_returns_mains_status_and_turns_listed_errors_into_one_line(capsys):
    assert run_cli(lambda cfg: 3, Demo, argv=[], environ={}) == 3
    assert run_cli(lambda cfg: None, Demo, argv=[], environ={}) == 0

    def fail(cfg):
        raise KeyError("two\nlines")

    assert run_cli(fail, Demo, KeyError, argv=[], environ={}) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(ZeroDivisionError):  # errors not listed are bugs: their traceback stays
        run_cli(lambda cfg: 1 / 0, Demo, KeyError, argv=[], environ={})


def test_sweep_hands_its_train_flags_on_to_every_run_under_their_current_names(tmp_path, capsys):
    from training import sweep

    argv = [
        "--model",
        "tiny",
        "--corpus_args.path",
        "m.jsonl",
        "--keep_checkpoints",
        "4",
        "--schemes",
        "direct",
        "--speech-percent",
        "50",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--print-commands",
    ]
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1  # one pending run
    assert (
        "--model tiny --data.corpus_args.path m.jsonl --save_total_limit 4 --scheme direct --speech_percent 50"
        in lines[0]
    )
