"""Score a SLURP-format prediction file against SLURP gold: a drop-in for the official evaluation toolkit.

    python -m evaluation.score --gold devel.jsonl --pred predictions.jsonl [--load-gold] [--json] [--strict]

GOLD is a SLURP release jsonl; PRED has one ``{"file"|"slurp_id", "scenario", "action", "entities"}`` object per
line. Gold items without a prediction are skipped, as the official toolkit does, and a loud warning says how many;
``--strict`` scores them as ``none_none`` with no entities instead. Exit status 2 with a one-line message on bad
input. The metric definitions are in ``evaluation/metrics.py``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from data.cli import run_cli
from evaluation.metrics import AVERAGES, MetricsInputError, SLUScores, load_slurp_gold, read_predictions, score_keyed


@dataclass
class ScoreConfig:
    gold: str = field(default="", metadata={"help": "SLURP release jsonl (e.g. test.jsonl)"})
    pred: str = field(default="", metadata={"help": "prediction jsonl, one object per line"})
    load_gold: bool = field(
        default=False, metadata={"help": "key by slurp_id (one item per text), not per recording file"}
    )
    json: bool = field(default=False, metadata={"help": "print one JSON object instead of a table"})
    strict: bool = field(
        default=False, metadata={"help": "count missing predictions as errors (none_none, no entities)"}
    )
    average: str = field(
        default="micro", metadata={"help": "micro (official default, what papers report) or macro", "choices": AVERAGES}
    )

    def __post_init__(self) -> None:
        if not self.gold:
            raise MetricsInputError("--gold is required: a SLURP release jsonl")
        if not self.pred:
            raise MetricsInputError("--pred is required: a prediction jsonl")
        if self.average not in AVERAGES:
            raise MetricsInputError(f"--average must be one of {', '.join(AVERAGES)}, got {self.average!r}")


def format_table(scores: SLUScores) -> str:
    """A readable table: accuracies, then P/R/F1 of the entity metrics."""
    s = scores
    lines = [
        f"{'metric':<22}{'accuracy':>10}",
        f"{'scenario':<22}{s.scenario_accuracy:>10.4f}",
        f"{'action':<22}{s.action_accuracy:>10.4f}",
        f"{'intent':<22}{s.intent_accuracy:>10.4f}",
        "",
        f"{'metric':<22}{'precision':>10}{'recall':>10}{'f1':>10}",
    ]
    for name, p, r, f in (
        ("entities (span F1)", s.entity_precision, s.entity_recall, s.entity_f1),
        ("word distance F1", s.word_precision, s.word_recall, s.word_f1),
        ("char distance F1", s.char_precision, s.char_recall, s.char_f1),
        ("SLU-F1", s.slu_precision, s.slu_recall, s.slu_f1),
    ):
        lines.append(f"{name:<22}{p:>10.4f}{r:>10.4f}{f:>10.4f}")
    lines += ["", f"scored {s.n_scored} items ({s.average} average); {s.n_missing} gold items had no prediction"]
    return "\n".join(lines)


def main(cfg: ScoreConfig) -> dict[str, Any]:
    """Score and print; returns the full score dict (plus ``n_gold`` and ``n_unmatched_predictions``)."""
    gold = load_slurp_gold(cfg.gold, load_gold=cfg.load_gold)
    key = "slurp_id" if cfg.load_gold else "file"
    preds = read_predictions(cfg.pred, key=key)
    scores = score_keyed(gold, preds, strict=cfg.strict, average=cfg.average)
    unmatched = sum(1 for k in preds if k not in gold)
    if scores.n_scored == 0:
        hint = "" if cfg.load_gold else " (predictions keyed by slurp_id need --load-gold)"
        raise MetricsInputError(f"no prediction in {cfg.pred} matches a gold {key} in {cfg.gold}{hint}")
    if scores.n_missing:
        treatment = "scored as errors (--strict)" if cfg.strict else "SKIPPED, as the official toolkit does"
        print(
            f"WARNING: {scores.n_missing} of {len(gold)} gold items have no prediction: {treatment}. "
            "Scores over an incomplete prediction file are not comparable.",
            file=sys.stderr,
        )
    if unmatched:
        print(f"warning: {unmatched} predictions match no gold {key} and were ignored", file=sys.stderr)
    out = {**scores.to_dict(full=True), "n_gold": len(gold), "n_unmatched_predictions": unmatched}
    print(json.dumps(out) if cfg.json else format_table(scores))
    return out


def run(argv: Sequence[str] | None = None) -> int:
    """Parse argv, run, and turn input errors into one line on stderr and exit status 2."""
    return run_cli(
        main,
        ScoreConfig,
        MetricsInputError,
        argv=argv,
        prog="python -m evaluation.score",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(run())
