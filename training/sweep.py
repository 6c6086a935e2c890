"""Run the paper's grid: schemes x speech levels x seeds, then the results table and the Table-2-style report.

    python -m training.sweep --config configs/paper_slurp_qwen2audio.yaml \\
        --schemes text,direct,curriculum --speech-percent 0,2,5,10,25,50,100 --seeds 1,2,3,4,5 \\
        [--out runs/slurp] [--oracle] [--print-commands] [--launch "accelerate launch --config_file ..."] \\
        [--key value ...]   # any TrainConfig flag, applied to every run

Cells: the text-only scheme ignores speech, so it runs once per seed at 0 %; direct and curriculum run at every
level above 0 % (as in the paper's Table 2). Each run lives in ``<out>/<scheme>-p<percent>-s<seed>``; finished runs
(``done.json``) are skipped, runs with checkpoints are resumed, the rest start fresh. Every run appends its rows to
``<out>/results.csv``; the sweep then writes ``<out>/report.md``. ``--oracle`` also scores each text-only run on gold
transcripts (the Oracle row). ``--print-commands`` prints one accelerate command per pending run (for a cluster
scheduler) and runs nothing; ``--launch CMD`` runs each pending run as ``CMD -m training.train ...`` in a
subprocess (multi-GPU); without it runs execute in this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from training.config import ConfigError, TrainConfig, config_from_mapping, load_yaml, parse_flags
from training.run_folder import DONE
from training.schemes import canonical_scheme


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


def _numbers(text: str, kind, flag: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{flag}: expected comma-separated numbers, got {text!r}") from None


def cell_config(base: TrainConfig, out: Path, cell: Cell) -> TrainConfig:
    run_dir = out / cell.name()
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step-*"))
    return dataclasses.replace(base, scheme=cell.scheme, speech_percent=cell.speech_percent, seed=cell.seed,
                               output_dir=str(run_dir), results_csv=str(out / "results.csv"), resume=resume,
                               stop_after_steps=0)


def status(cfg: TrainConfig) -> str:
    run_dir = Path(cfg.output_dir)
    if (run_dir / DONE).is_file():
        return "done"
    return "resume" if cfg.resume else "new"


def command(cfg: TrainConfig, config_file: str | None, overrides: dict, launcher: str) -> str:
    args = shlex.split(launcher) + ["-m", "training.train"]
    if config_file:
        args += ["--config", config_file]
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else str(value)]
    args += ["--scheme", cfg.scheme, "--speech_percent", f"{cfg.speech_percent:g}", "--seed", str(cfg.seed),
             "--output_dir", cfg.output_dir, "--results_csv", cfg.results_csv]
    if cfg.resume:
        args.append("--resume")
    return shlex.join(args)


def write_report(out: Path) -> Path | None:
    results = out / "results.csv"
    if not results.is_file():
        return None
    from training.report import build_table, to_markdown
    from training.results import ResultsError, atomic_write_text, read_results

    try:
        text = to_markdown(build_table(read_results(results)))
    except ResultsError as exc:
        print(f"report skipped: {exc}", file=sys.stderr)
        return None
    atomic_write_text(out / "report.md", text)
    return out / "report.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="base TrainConfig YAML shared by every run")
    ap.add_argument("--schemes", default="text,direct,curriculum")
    ap.add_argument("--speech-percent", "--speech_percent", dest="percents", default="0,2,5,10,25,50,100")
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--out", help="sweep folder (default: the config's output_dir)")
    ap.add_argument("--oracle", action="store_true", help="also score text-only runs on gold transcripts")
    ap.add_argument("--print-commands", action="store_true", help="print the launch command per pending run")
    ap.add_argument("--launch", default="", help="run each run as '<LAUNCH> -m training.train ...' in a subprocess")
    args, rest = ap.parse_known_args(argv)
    try:
        overrides, _ = parse_flags(rest)
        values = load_yaml(args.config) if args.config else {}
        values.update(overrides)
        base = config_from_mapping(values)
        schemes = [canonical_scheme(s) for s in args.schemes.split(",") if s.strip()]
        cells = grid(schemes, _numbers(args.percents, float, "speech-percent"), _numbers(args.seeds, int, "seeds"))
        out = Path(args.out or base.output_dir)
        configs = [cell_config(base, out, c) for c in cells]
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pending = [c for c in configs if status(c) != "done"]
    if args.print_commands:
        launcher = args.launch or "accelerate launch"
        for cfg in pending:
            print(command(cfg, args.config, overrides, launcher))
        return 0
    print(f"sweep: {len(configs)} runs, {len(configs) - len(pending)} finished, {len(pending)} to run -> {out}")
    failed = []
    for i, cfg in enumerate(pending, 1):
        print(f"[{i}/{len(pending)}] {Path(cfg.output_dir).name} ({status(cfg)})", flush=True)
        try:
            if args.launch:
                rc = subprocess.run(shlex.split(command(cfg, args.config, overrides, args.launch))).returncode
                if rc != 0:
                    failed.append((cfg.output_dir, f"exit status {rc}"))
                    continue
            else:
                from training.loop import run

                run(cfg)
            if args.oracle and cfg.scheme == "text":
                from training.evaluate import evaluate_run

                for split in cfg.eval_splits:
                    evaluate_run(cfg.output_dir, split, oracle=True)
        except (ConfigError, ValueError, OSError, RuntimeError) as exc:
            failed.append((cfg.output_dir, str(exc)))
            print(f"run failed: {cfg.output_dir}: {exc}", file=sys.stderr)
    report = write_report(out)
    if report is not None:
        print(f"results: {out / 'results.csv'}\nreport: {report}")
    if failed:
        print(f"error: {len(failed)} run(s) failed; rerun the same command to resume them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
