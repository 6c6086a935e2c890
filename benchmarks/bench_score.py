"""Time the SLURP scorer on a test-set-sized pair of files (13,078 recordings, the size of SLURP test).

    python -m benchmarks.bench_score [--repeats 5]

The gold is the SLURP dev annotations in tests/fixtures (8,690 recordings) with texts replicated under new
recording names until there are 13,078 recordings; the predictions are the gold with about a third of the items
corrupted (wrong action, truncated or retyped fillers, dropped and spurious entities) so every code path runs.
Prints the best of ``repeats`` for: reading both files and scoring (the library path), scoring alone, and the
whole ``python -m evaluation.score`` command (interpreter start-up included).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from data.cli import run_cli
from evaluation.metrics import load_slurp_gold, prediction_record, read_predictions, score_keyed

ROOT = Path(__file__).resolve().parents[1]
DEVEL = ROOT / "tests" / "fixtures" / "slurp" / "devel.jsonl"
N_TEST_RECORDINGS = 13_078  # SLURP test recordings (Bastianelli et al., 2020)


def build_gold(out: Path, n_recordings: int = N_TEST_RECORDINGS) -> Path:
    rows = [json.loads(line) for line in DEVEL.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines, total, copy = [], 0, 0
    while total < n_recordings:
        for row in rows:
            if total >= n_recordings:
                break
            row = dict(row)
            recs = row["recordings"][: n_recordings - total]
            row["recordings"] = [{**r, "file": f"c{copy}-{r['file']}"} for r in recs]
            row["slurp_id"] = f"{copy}-{row['slurp_id']}"
            lines.append(json.dumps(row))
            total += len(recs)
        copy += 1
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def build_predictions(gold_path: Path, out: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = []
    for key, frame in load_slurp_gold(gold_path).items():
        rec = prediction_record(key, frame)
        roll = rng.random()
        if roll < 0.1:
            rec["action"] = "query"
        elif roll < 0.2 and rec["entities"]:
            ent = rec["entities"][0]
            ent["filler"] = ent["filler"].split(" ")[-1] + " extra words"
        elif roll < 0.25 and rec["entities"]:
            rec["entities"][0]["type"] = "date"
        elif roll < 0.3:
            rec["entities"] = rec["entities"][1:] + [{"type": "time", "filler": "ten am"}]
        records.append(rec)
    out.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return out


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(repeats: int = 5) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        gold_path = build_gold(Path(tmp) / "gold.jsonl")
        pred_path = build_predictions(gold_path, Path(tmp) / "pred.jsonl")
        gold, pred = load_slurp_gold(gold_path), read_predictions(pred_path)
        assert len(gold) == N_TEST_RECORDINGS
        scores = score_keyed(gold, pred)
        figures = {
            "read_and_score_s": best_of(
                repeats, lambda: score_keyed(load_slurp_gold(gold_path), read_predictions(pred_path))
            ),
            "score_only_s": best_of(repeats, lambda: score_keyed(gold, pred)),
            "cli_s": best_of(
                repeats,
                lambda: subprocess.run(
                    [sys.executable, "-m", "evaluation.score", "--gold", str(gold_path), "--pred", str(pred_path)],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                ),  # fmt: skip
            ),
        }
    print(f"{N_TEST_RECORDINGS} recordings, SLU-F1 {scores.slu_f1:.4f}, intent accuracy {scores.intent_accuracy:.4f}")
    for name, seconds in figures.items():
        print(f"{name:<18}{seconds:.3f} s (best of {repeats})")
    return figures


@dataclass
class ScoreBench:
    repeats: int = field(default=5, metadata={"help": "timed runs per figure; the best is reported"})


def cli(argv: list[str] | None = None) -> int:
    return run_cli(
        lambda args: main(args.repeats) and None,
        ScoreBench,
        argv=argv,
        prog="python -m benchmarks.bench_score",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(cli())
