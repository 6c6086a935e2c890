"""Run the paper's grid: schemes x speech levels x seeds, then the results table and the Table-2-style report.

    python -m training.sweep --config configs/paper_slurp_qwen2audio.yaml \\
        --schemes text,direct,curriculum --speech-percent 0,2,5,10,25,50,100 --seeds 1,2,3,4,5 \\
        [--out runs/slurp] [--oracle] [--print-commands] [--launch "accelerate launch --config_file ..."] \\
        [--executor inline|local|slurm] [--max-parallel N --devices 0,1,... --gpus-per-cell G] \\
        [--slurm-config configs/slurm/8gpu_node.yaml --partition P --account A --time 24:00:00 --sbatch K=V] \\
        [--track trackio] [--key value ...]   # any TrainConfig flag, applied to every run
    python -m training.sweep status OUT      # cells done / running / queued / failed; rebuilds results + report

Cells: the text-only scheme ignores speech, so it runs once per seed at 0 %; direct and curriculum run at every
level above 0 % (as in the paper's Table 2). Each run lives in ``<out>/<scheme>-p<percent>-s<seed>``; finished runs
(``done.json``) are skipped, runs with checkpoints are resumed, the rest start fresh. Every run appends its rows to
``<out>/results.csv``; the sweep then rebuilds it from the finished runs and writes ``<out>/report.md``.
``--oracle`` also scores each text-only run on gold transcripts (the Oracle row), finished runs included.
``--print-commands`` prints one shell line per pending run (for any scheduler) and runs nothing.
Executors (training/executors.py): ``inline`` runs cells in this process (the default); ``local`` runs them as
processes, ``--max-parallel`` at once with one device set each (the default with ``--launch CMD``, which starts each
run as ``CMD -m training.train ...``); ``slurm`` submits them as a submitit job array that requeues preempted or
timed-out cells, which resume from their newest checkpoint. ``--track`` names accelerate trackers for every run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from data.cli import from_mapping, load_yaml, option_names, parse_config, split_flags, to_flags
from training.config import ConfigError, TrainConfig
from training.executors import (
    STATE_DIR,
    CellJob,
    SlurmConfig,
    device_sets,
    read_state,
    run_local,
    submit_slurm,
    visible_devices,
)
from training.run_folder import DONE
from training.schemes import canonical_scheme
from training.tracking import TRACK_ENV, check_available, parse_names

EXECUTORS = ("inline", "local", "slurm")


@dataclass(frozen=True)
class Cell:
    scheme: str
    speech_percent: float
    seed: int

    def name(self) -> str:
        return f"{self.scheme}-p{self.speech_percent:g}-s{self.seed}"


def grid(schemes: list[str], percents: list[float], seeds: list[int]) -> list[Cell]:
    cells = []
    for seed in seeds:
        for scheme in schemes:
            levels = [0.0] if scheme == "text" else [p for p in percents if p > 0]
            cells += [Cell(scheme, p, seed) for p in levels]
    return cells


def longest_first(cells: list[Cell]) -> list[Cell]:
    """The cells by the speech they hear, most first, text-only last (the grid's order among equals): with several
    cells at once, the longest start first and no long cell is left running alone at the end (longest processing
    time first)."""
    return sorted(cells, key=lambda c: 0.0 if c.scheme == "text" else -c.speech_percent)


def _numbers(text: str, kind, flag: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{flag}: expected comma-separated numbers, got {text!r}") from None


def cell_config(base: TrainConfig, out: Path, cell: Cell) -> TrainConfig:
    run_dir = out / cell.name()
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step-*"))
    return dataclasses.replace(
        base,
        scheme=cell.scheme,
        speech_percent=cell.speech_percent,
        seed=cell.seed,
        output_dir=str(run_dir),
        results_csv=str(out / "results.csv"),
        resume=resume,
        stop_after_steps=0,
    )


def status(cfg: TrainConfig) -> str:
    run_dir = Path(cfg.output_dir)
    if (run_dir / DONE).is_file():
        return "done"
    return "resume" if cfg.resume else "new"


def train_args(cfg: TrainConfig, config_file: str | None, overrides: dict) -> list[str]:
    """The ``training.train`` arguments of one cell (without ``--resume``, which is decided when it starts)."""
    args = ["--config", config_file] if config_file else []
    return (
        args
        + to_flags(overrides)
        + [
            "--scheme",
            cfg.scheme,
            "--speech_percent",
            f"{cfg.speech_percent:g}",
            "--seed",
            str(cfg.seed),
            "--output_dir",
            cfg.output_dir,
            "--results_csv",
            cfg.results_csv,
            "--stop_after_steps",
            "0",
        ]
    )


def command(cfg: TrainConfig, config_file: str | None, overrides: dict, launcher: str) -> str:
    args = shlex.split(launcher) + ["-m", "training.train"] + train_args(cfg, config_file, overrides)
    if cfg.resume:
        args.append("--resume")
    return shlex.join(args)


def cell_job(
    cfg: TrainConfig,
    config_file: str | None,
    overrides: dict,
    *,
    launcher: str = "",
    oracle: bool = False,
    env: dict | None = None,
    max_attempts: int = 3,
) -> CellJob:
    run_dir = Path(cfg.output_dir)
    return CellJob(
        name=run_dir.name,
        out=str(run_dir.parent),
        train_args=train_args(cfg, config_file, overrides),
        oracle_splits=list(cfg.data.eval_splits) if oracle and cfg.scheme == "text" else [],
        launcher=shlex.split(launcher),
        env=dict(env or {}),
        max_attempts=max_attempts,
    )


def write_report(out: Path) -> Path | None:
    results = out / "results.csv"
    if not results.is_file():
        return None
    from evaluation.report import build_table, to_markdown
    from data.textio import atomic_write_text
    from evaluation.results import ResultsError, read_results

    try:
        text = to_markdown(build_table(read_results(results)))
    except ResultsError as exc:
        print(f"report skipped: {exc}", file=sys.stderr)
        return None
    atomic_write_text(out / "report.md", text)
    return out / "report.md"


def _slurm_config(args: SweepConfig) -> SlurmConfig:
    values = load_yaml(args.slurm_config, "--slurm-config") if args.slurm_config else {}
    for key in ("partition", "account", "qos", "time", "nodes", "gpus_per_node"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    for item in args.sbatch:
        flag, eq, value = item.lstrip("-").partition("=")
        if not flag:
            raise ConfigError(f"--sbatch: cannot read {item!r}; write FLAG=VALUE (e.g. --sbatch mail-type=END)")
        values.setdefault("sbatch", {})[flag] = value if eq else True
    return from_mapping(SlurmConfig, values)


def write_cell_list(out: Path, jobs: list[CellJob], executor: str) -> None:
    """``<out>/.sweep/cells.json``: every cell of the grid, so ``status`` can list the ones not started yet."""
    from data.textio import atomic_write_text

    path = out / STATE_DIR / "cells.json"
    known = []
    if path.is_file():
        try:
            known = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except ValueError:
            known = []
    cells = known + [j.name for j in jobs if j.name not in known]
    atomic_write_text(path, json.dumps({"cells": cells, "executor": executor}, indent=2) + "\n")


def _run_inline(jobs: list[CellJob], configs: dict[str, TrainConfig]) -> list[tuple[str, str]]:
    failed = []
    for i, job in enumerate(jobs, 1):
        cfg = dataclasses.replace(configs[job.name], resume=job.resumable())
        print(f"[{i}/{len(jobs)}] {job.name} ({status(cfg)})", flush=True)
        try:
            if not job.finished():
                from training.loop import run

                run(cfg)
            for split in job.missing_oracle():
                from training.evaluate import evaluate_run

                evaluate_run(cfg.output_dir, split, oracle=True, results_csv=cfg.results_csv)
        except (ConfigError, ValueError, OSError, RuntimeError) as exc:
            failed.append((cfg.output_dir, str(exc)))
            print(f"run failed: {cfg.output_dir}: {exc}", file=sys.stderr)
    return failed


def _opt(default, help_text: str, **meta):
    return field(default=default, metadata={"help": help_text, **meta})


@dataclass
class SweepConfig:
    """The sweep's own options; every other flag is a TrainConfig option applied to every run."""

    config: str = _opt("", "base TrainConfig YAML shared by every run")
    schemes: str = _opt("text,direct,curriculum", "schemes of the grid (comma list)")
    speech_percent: str = _opt("0,2,5,10,25,50,100", "speech levels in percent (comma list)")
    seeds: str = _opt("1,2,3,4,5", "seeds (comma list)")
    out: str = _opt("", "sweep folder (default: the config's output_dir)")
    oracle: bool = _opt(False, "also score text-only runs on gold transcripts")
    print_commands: bool = _opt(False, "print the launch command per pending run and run nothing")
    launch: str = _opt("", "run each run as '<LAUNCH> -m training.train ...' in a subprocess")
    executor: str = _opt(
        "",
        "inline (this process), local (parallel processes) or slurm (submitit job array); "
        "default: local with --launch, else inline",
        choices=("",) + EXECUTORS,
    )
    max_parallel: int = _opt(1, "local: most cells running at once")
    devices: str | None = _opt(None, "local: GPU ids to share out (default: all visible)")
    gpus_per_cell: int = _opt(1, "local: GPUs each cell holds")
    max_attempts: int = _opt(3, "starts of a cell ended by a signal before it fails")
    track: str = _opt("", "trackers for every run: trackio, tensorboard, wandb, ... (comma list)", env=TRACK_ENV)
    slurm_config: str = _opt("", "slurm: YAML of SlurmConfig fields (configs/slurm/*.yaml)")
    partition: str | None = _opt(None, "slurm: partition")
    account: str | None = _opt(None, "slurm: account")
    qos: str | None = _opt(None, "slurm: quality of service")
    time: str | None = _opt(None, "slurm: time limit per job: HH:MM:SS, D-HH:MM:SS or minutes")
    nodes: int | None = _opt(None, "slurm: nodes per cell")
    gpus_per_node: int | None = _opt(None, "slurm: GPUs per node")
    sbatch: list = _opt((), "slurm: extra sbatch flag FLAG=VALUE (repeatable)", repeat=True)
    job_name: str = _opt("", "slurm: job name (default: lalm-<sweep folder>)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "status":
        from training.sweep_status import main as status_main

        return status_main(argv[1:])
    try:
        args, rest = parse_config(
            SweepConfig, argv, prog="python -m training.sweep", description=__doc__, known_only=True
        )
        executor = args.executor or ("local" if args.launch else "inline")
        try:
            overrides, bare, _ = split_flags(TrainConfig, rest)  # the TrainConfig flags, handed on to every run
        except ConfigError as exc:
            unknown, _, known = str(exc).partition("; known options: ")
            if not known:
                raise
            raise ConfigError(
                f"{unknown}; known options: {', '.join(option_names(SweepConfig))}, and every "
                "training option (python -m training.train --help)"
            ) from None
        if bare:
            raise ConfigError(f"unexpected argument(s) {' '.join(bare)}; options are written --name value")
        base = parse_config(TrainConfig, (["--config", args.config] if args.config else []) + rest)
        if base.n_speech >= 0:
            raise ConfigError(
                "--n_speech is set, which would give every speech level the same count; the sweep "
                "sets speech by --speech-percent: remove n_speech from the config and flags"
            )
        schemes = [canonical_scheme(s) for s in args.schemes.split(",") if s.strip()]
        cells = grid(
            schemes, _numbers(args.speech_percent, float, "speech-percent"), _numbers(args.seeds, int, "seeds")
        )
        if not cells:
            raise ConfigError(
                "the grid is empty: give --schemes, --speech-percent (above 0 for direct and curriculum) and --seeds"
            )
        if executor == "local" and args.max_parallel > 1:
            cells = longest_first(cells)
        out = Path(args.out or base.output_dir)
        configs = {c.name(): cell_config(base, out, c) for c in cells}
        trackers = parse_names(args.track)
        check_available(trackers + (["tensorboard"] if base.tensorboard else []))
        env = {TRACK_ENV: ",".join(trackers)} if trackers else {}
        launcher = args.launch or ("accelerate launch" if args.print_commands else "")
        jobs = [
            cell_job(
                cfg,
                args.config or None,
                overrides,
                launcher=launcher,
                oracle=args.oracle,
                env=env,
                max_attempts=args.max_attempts,
            )
            for cfg in configs.values()
        ]
        slurm_cfg = _slurm_config(args) if executor == "slurm" and not args.print_commands else None
        if args.max_parallel < 1 or args.max_attempts < 1:
            raise ConfigError("--max-parallel and --max-attempts must be >= 1")
        devices: list[str] = []
        if executor == "local" and not args.print_commands:
            devices = (
                [d.strip() for d in args.devices.split(",") if d.strip()]
                if args.devices is not None
                else visible_devices()
            )
            if devices:
                device_sets(devices, args.gpus_per_cell)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pending = [j for j in jobs if j.pending()]
    if args.print_commands:
        for job in pending:
            print(job.shell_line())
        return 0
    print(
        f"sweep: {len(jobs)} runs, {len(jobs) - len(pending)} finished, {len(pending)} to run -> {out} ({executor})",
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_cell_list(out, jobs, executor)
    if executor == "slurm":
        if not pending:
            return 0
        try:
            ids = submit_slurm(pending, slurm_cfg, out, args.job_name or f"lalm-{out.resolve().name}")
        except (OSError, RuntimeError, ConfigError) as exc:  # sbatch missing or refusing the job
            print(f"error: submitting to Slurm failed: {exc}", file=sys.stderr)
            return 2
        print(
            f"submitted {len(ids)} cell(s) as a job array ({ids[0].split('_')[0]}); "
            f"follow them with: python -m training.sweep status {out}"
        )
        return 0
    if executor == "local":
        try:
            bad = run_local(pending, max_parallel=args.max_parallel, devices=devices, gpus_per_cell=args.gpus_per_cell)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        failed = [(j.run_dir, read_state(out, j.name).get("error", "")) for j in bad]
    else:
        if trackers:
            os.environ[TRACK_ENV] = ",".join(trackers)
        failed = _run_inline(pending, configs)
    from training.sweep_status import rebuild_results

    rebuild_results(out)  # every finished run's rows, even if a concurrent append had lost one
    report = write_report(out)
    if report is not None:
        print(f"results: {out / 'results.csv'}\nreport: {report}")
    if failed:
        for run_dir, why in failed:
            print(f"failed: {run_dir}: {why}", file=sys.stderr)
        print(
            f"error: {len(failed)} run(s) failed; rerun the same command to resume them "
            f"(python -m training.sweep status {out} shows each cell)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
