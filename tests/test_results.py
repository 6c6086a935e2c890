"""The results table: typed round trip, atomic append that replaces a re-evaluated run, clear errors on bad rows.

Run: pytest tests/test_results.py
"""

import csv
import os

import pytest

from data.textio import atomic_write_text
from evaluation.metrics import SLUScores
from evaluation.results import (
    RESULT_COLUMNS,
    ResultsError,
    append_results,
    normalize_row,
    read_results,
    write_results,
)


def row(seed=0, split="test", run_dir="runs/a", language="en-US", **metrics):
    base = {
        "corpus": "slurp",
        "language": language,
        "scheme": "curriculum",
        "speech_percent": 10,
        "n_speech": 1152,
        "seed": seed,
        "split": split,
        "run_dir": run_dir,
        "intent_accuracy": 0.1 + seed / 7,  # not representable in a few decimals: tests the float round trip
        "slu_f1": 0.7529,
    }
    base.update(metrics)
    return base


def test_round_trip_is_typed_and_exact(tmp_path):
    path = tmp_path / "results.csv"
    rows = [row(seed=s) for s in range(3)]
    write_results(path, rows)
    back = read_results(path)
    assert [r["intent_accuracy"] for r in back] == [r["intent_accuracy"] for r in rows]
    first = back[0]
    assert first["seed"] == 0 and isinstance(first["seed"], int)
    assert first["speech_percent"] == 10.0 and isinstance(first["speech_percent"], float)
    assert first["recipe"] == "mono"  # default
    assert first["entity_f1"] is None  # an absent metric stays absent, not 0
    with path.open(newline="") as fh:
        assert tuple(next(csv.reader(fh))) == RESULT_COLUMNS


def test_scores_fit_the_table():
    scores = SLUScores(*([0.5] * 9), n_scored=10, n_missing=0)
    normalize_row({**row(), **scores.to_dict()})  # the metric keys are result columns


def test_append_replaces_same_run_and_split(tmp_path):
    path = tmp_path / "sub" / "results.csv"
    append_results(path, [row(seed=0), row(seed=1), row(seed=0, split="dev")])
    append_results(path, [row(seed=0, slu_f1=0.9)])  # re-evaluation of seed 0 on test
    back = read_results(path)
    assert len(back) == 3
    replaced = [r for r in back if r["seed"] == 0 and r["split"] == "test"]
    assert len(replaced) == 1 and replaced[0]["slu_f1"] == 0.9
    assert [r["slu_f1"] for r in back if r["split"] == "dev"] == [0.7529]
    # The same run evaluated on another language (cross-lingual) is a new row, not a replacement.
    append_results(path, [row(seed=0, language="de-DE")])
    assert len(read_results(path)) == 4
    # Duplicates within one append keep the last.
    append_results(path, [row(seed=5, slu_f1=0.1), row(seed=5, slu_f1=0.2)])
    assert [r["slu_f1"] for r in read_results(path) if r["seed"] == 5] == [0.2]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "results.csv"
    append_results(path, [row()])
    append_results(path, [row(seed=1)])
    # No temporary file is left; the hidden sidecar that table_lock flocks stays (removing it would race a waiter).
    assert sorted(os.listdir(tmp_path)) == [".results.csv.lock", "results.csv"]


def test_failed_append_keeps_the_old_table(tmp_path):
    path = tmp_path / "results.csv"
    append_results(path, [row()])
    before = path.read_text()
    with pytest.raises(ResultsError):
        append_results(path, [row(seed=1), {**row(seed=2), "seed": "two"}])
    assert path.read_text() == before


def test_atomic_write_text_replaces_content(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"slu_f1x": 0.5}, "unknown result column"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"slu_f1": "nan"}, "finite"),
        ({"speech_percent": 250}, "percent"),
        ({"corpus": ""}, "corpus"),
    ],
)
def test_bad_rows_are_rejected_clearly(bad, match):
    with pytest.raises(ResultsError, match=match):
        normalize_row({**row(), **bad})


def test_bad_files_name_the_line(tmp_path):
    path = tmp_path / "results.csv"
    write_results(path, [row(), row(seed=1)])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(",1,", ",one,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ResultsError, match=r"line 3: column 'seed'"):
        read_results(path)
    path.write_text("corpus,scheme\nslurp,text\n")
    with pytest.raises(ResultsError, match="missing column"):
        read_results(path)
    path.write_text("")
    with pytest.raises(ResultsError, match="missing column"):
        read_results(path)
    with pytest.raises(ResultsError, match="not found"):
        read_results(tmp_path / "nope.csv")
    write_results(path, [row()])
    path.write_text(path.read_text().rstrip("\n") + ",extra\n")
    with pytest.raises(ResultsError, match="more fields"):
        read_results(path)


def test_unknown_columns_in_a_file_are_ignored(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("corpus,language,scheme,speech_percent,seed,future_column\nslurp,en-US,text,0,1,x\n")
    (only,) = read_results(path)
    assert only["seed"] == 1 and "future_column" not in only
