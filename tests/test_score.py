"""The scorer CLI on the real SLURP dev annotations with prediction files made here.

Run: pytest tests/test_score.py
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.metrics import load_slurp_gold, prediction_record
from evaluation.score import ScoreConfig, run

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "fixtures" / "slurp" / "devel.jsonl"


@pytest.fixture(scope="module")
def gold():
    return load_slurp_gold(GOLD)


def write_preds(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def perfect_records(gold, key="file"):
    return [prediction_record(k, frame, key=key) for k, frame in gold.items()]


def score_json(capsys, *args):
    rc = run(["--gold", str(GOLD), "--json", *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out), err


REQUIRED = {
    "intent_accuracy", "scenario_accuracy", "action_accuracy", "entity_f1", "word_f1", "char_f1",
    "slu_f1", "slu_precision", "slu_recall", "n_scored", "n_missing",
}  # fmt: skip


def test_perfect_predictions_score_one(tmp_path, gold, capsys):
    pred = write_preds(tmp_path / "pred.jsonl", perfect_records(gold))
    out, err = score_json(capsys, "--pred", str(pred))
    assert REQUIRED <= set(out)
    assert all(out[k] == 1.0 for k in REQUIRED - {"n_scored", "n_missing"})
    assert (out["n_scored"], out["n_missing"]) == (8690, 0)
    assert "WARNING" not in err


def test_table_output(tmp_path, gold, capsys):
    pred = write_preds(tmp_path / "pred.jsonl", perfect_records(gold))
    assert run(["--gold", str(GOLD), "--pred", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "SLU-F1" in out and "intent" in out and "1.0000" in out


def test_load_gold_scores_per_text(tmp_path, capsys):
    per_text = load_slurp_gold(GOLD, load_gold=True)
    pred = write_preds(tmp_path / "pred.jsonl", perfect_records(per_text, key="slurp_id"))
    out, _ = score_json(capsys, "--pred", str(pred), "--load-gold")
    assert out["n_scored"] == 2033 and out["slu_f1"] == 1.0
    # The same file without --load-gold matches nothing: a clear error, not a silent zero.
    assert run(["--gold", str(GOLD), "--pred", str(pred)]) == 2
    assert "--load-gold" in capsys.readouterr().err


def test_corrupted_copy(tmp_path, gold, capsys):
    records = perfect_records(gold)
    n = len(records)
    wrong_scenario = list(range(0, n, 10))
    for i in wrong_scenario:
        records[i]["scenario"] = "nonsense"
    with_entities = [i for i, r in enumerate(records) if r["entities"]]
    uppercased = with_entities[1::7]
    for i in uppercased:
        records[i]["entities"][0]["filler"] = records[i]["entities"][0]["filler"].upper()
    out, _ = score_json(capsys, "--pred", str(write_preds(tmp_path / "pred.jsonl", records)))
    assert out["scenario_accuracy"] == pytest.approx(1 - len(wrong_scenario) / n)
    assert out["intent_accuracy"] == pytest.approx(1 - len(wrong_scenario) / n)
    assert out["action_accuracy"] == 1.0
    # Upper-cased fillers are span misses (no normalisation) but keep their type, so distance F1s lose less.
    n_gold_ents = sum(len(f.entities) for f in gold.values())
    misses = sum(
        1 for i in uppercased if records[i]["entities"][0]["filler"] != gold[records[i]["file"]].entities[0].filler
    )
    assert out["entity_precision"] == pytest.approx((n_gold_ents - misses) / n_gold_ents)
    assert out["entity_f1"] < out["slu_f1"] < 1.0
    assert out["entity_f1"] < out["char_f1"] < 1.0


def test_missing_predictions_warn_and_strict_counts_them(tmp_path, gold, capsys):
    records = perfect_records(gold)
    dropped = records[:: len(records) // 10][:10]
    kept = [r for r in records if r not in dropped]
    pred = write_preds(tmp_path / "pred.jsonl", kept)
    out, err = score_json(capsys, "--pred", str(pred))
    assert "WARNING: 10 of 8690 gold items have no prediction" in err
    assert out["n_missing"] == 10 and out["n_scored"] == 8680 and out["intent_accuracy"] == 1.0
    out, err = score_json(capsys, "--pred", str(pred), "--strict")
    assert out["n_scored"] == 8690 and out["n_missing"] == 10
    assert out["intent_accuracy"] == pytest.approx(8680 / 8690)
    if any(r["entities"] for r in dropped):
        assert out["entity_recall"] < 1.0 and out["entity_precision"] == 1.0


def test_malformed_line_exits_2_naming_file_and_line(tmp_path, gold, capsys):
    lines = [json.dumps(r) for r in perfect_records(gold)[:6]]
    lines[4] = lines[4][:-7]  # truncated JSON on line 5
    pred = tmp_path / "broken.jsonl"
    pred.write_text("\n".join(lines) + "\n")
    assert run(["--gold", str(GOLD), "--pred", str(pred)]) == 2
    err = capsys.readouterr().err
    assert f"{pred}:5" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="--pred"):
        ScoreConfig(gold=str(GOLD))


def test_module_entry_point(tmp_path, gold):
    pred = write_preds(tmp_path / "pred.jsonl", perfect_records(gold)[:50])
    proc = subprocess.run(
        [sys.executable, "-m", "evaluation.score", "--gold", str(GOLD), "--pred", str(pred), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_scored"] == 50
    assert "8640 of 8690" in proc.stderr
