"""Evaluate a finished (or resumable) run alone: ``python -m training.evaluate RUN --split test [--oracle]``.

Loads ``RUN/model`` and the run's own config.json (same corpus, language, decoding settings), decodes the split,
and writes ``RUN/eval/<split>[-oracle]/metrics.json`` + ``predictions.jsonl`` and a results row.
``--oracle`` feeds the gold transcripts through the text path (the paper's upper bound, Table 2).
Options: ``--num_beams N``, ``--batch_size N``, ``--max_new_tokens N``, ``--results_csv FILE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from training.config import ConfigError


def evaluate_run(run_dir: str | Path, split: str = "test", *, oracle: bool = False, num_beams: int | None = None,
                 batch_size: int | None = None, max_new_tokens: int | None = None,
                 results_csv: str | None = None) -> dict:
    """Evaluate ``run_dir/model`` on ``split``; returns {eval folder name: metrics}."""
    from models.loading import ModelLoadError, load_model
    from training.loop import _Run, evaluate_sets, load_run_config
    from training.run_folder import read_json
    from training.sources import load_run_data

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    changes = {"output_dir": str(run_dir), "eval_splits": [split], "resume": False}
    for key, value in (("num_beams", num_beams), ("eval_batch_size", batch_size),
                       ("max_new_tokens", max_new_tokens), ("results_csv", results_csv)):
        if value is not None:
            changes[key] = value
    cfg = dataclasses.replace(cfg, **changes)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} has no final model yet ({model_dir}); finish training with --resume first")
    run = _Run(cfg)
    run.meta = read_json(run_dir / "config.json")
    run.meta["config"] = cfg.to_dict()
    run.data = load_run_data(cfg)
    try:
        run.model, run.processor = load_model(model_dir, adapter=cfg.adapter, device=run.acc.device)
    except ModelLoadError as exc:
        raise ConfigError(str(exc)) from None
    return evaluate_sets(run, oracle=oracle, splits=[split])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run folder written by python -m training.train")
    ap.add_argument("--split", default="test", help="split to evaluate (default: test)")
    ap.add_argument("--oracle", action="store_true", help="decode gold transcripts through the text path")
    ap.add_argument("--num_beams", type=int, default=None)
    ap.add_argument("--batch_size", type=int, default=None)
    ap.add_argument("--max_new_tokens", type=int, default=None)
    ap.add_argument("--results_csv", default=None)
    args = ap.parse_args(argv)
    try:
        evaluate_run(args.run_dir, args.split, oracle=args.oracle, num_beams=args.num_beams,
                     batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, results_csv=args.results_csv)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
