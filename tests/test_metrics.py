"""SLURP metrics against hand-worked vectors and a naive second implementation on random corpora.

The vectors T1-T14 and the intent vector were derived by hand from the metric definitions (evaluation/metrics.py)
and checked against the official SLURP toolkit (github.com/pswietojanski/slurp, scripts/evaluation).
Run: pytest tests/test_metrics.py
"""

import json
import random
from fractions import Fraction as F

import pytest

from data.frames import Entity, SLUFrame
from evaluation.metrics import (
    MetricsInputError,
    char_distance,
    levenshtein,
    load_slurp_gold,
    read_predictions,
    score_frames,
    score_keyed,
    word_distance,
)


def E(t, f):
    return Entity(t, f)


def frame(*entities, intent="alarm_set"):
    return SLUFrame.from_intent(intent, entities)


def f1(tp, fp, fn):
    p = F(tp) / (tp + fp) if tp + fp else F(0)
    r = F(tp) / (tp + fn) if tp + fn else F(0)
    return 2 * p * r / (p + r) if p + r else F(0)


# (id, gold entities, predicted entities, span F1, word F1, char F1, SLU F1), worked by hand
VECTORS = [
    ("T1", [E("date", "tomorrow")], [E("date", "tomorrow")], 1, 1, 1, 1),
    ("T2", [], [], 0, 0, 0, 0),
    ("T3", [E("date", "tomorrow")], [E("date", "tomorrow"), E("time", "ten am")], F(2, 3), F(2, 3), F(2, 3), F(2, 3)),
    ("T4", [E("date", "friday")], [E("time", "friday")], 0, 0, 0, 0),
    ("T5", [E("time", "ten am")], [E("time", "ten pm")], 0, F(2, 3), F(6, 7), F(3, 4)),
    ("T6a", [E("person", "david")] * 2, [E("person", "david")], F(2, 3), F(2, 3), F(2, 3), F(2, 3)),
    ("T6b", [E("person", "david")], [E("person", "david")] * 2, F(2, 3), F(2, 3), F(2, 3), F(2, 3)),
    ("T7", [E("place_name", "york")], [E("place_name", "new york city")], 0, F(1, 3), F(13, 22), F(26, 61)),
    ("T8", [E("date", "tomorrow")], [], 0, 0, 0, 0),
    (
        "T9",
        [E("date", "a b"), E("date", "c")],
        [E("date", "a"), E("date", "a b")],
        F(1, 2),
        F(4, 9),
        F(6, 11),
        F(24, 49),
    ),
    ("T10", [E("date", "tomorrow")], [E("date", "Tomorrow")], 0, F(1, 2), F(8, 9), F(16, 25)),
    ("T11", [E("date", "tomorrow")], [E("date", "")], 0, F(1, 2), F(1, 2), F(1, 2)),
    ("T12", [], [E("time", "ten am")], 0, 0, 0, 0),
    (
        "T14",
        [E("date", "this friday"), E("event_name", "dentist appointment")],
        [E("date", "friday"), E("event_name", "dentist")],
        0,
        F(2, 3),
        F(418, 645),
        F(209, 318),
    ),
]


@pytest.mark.parametrize("vid,gold,pred,span,word,char,slu", VECTORS, ids=[v[0] for v in VECTORS])
def test_worked_vectors(vid, gold, pred, span, word, char, slu):
    s = score_frames([frame(*gold)], [frame(*pred)])
    assert s.entity_f1 == pytest.approx(float(span), abs=1e-12)
    assert s.word_f1 == pytest.approx(float(word), abs=1e-12)
    assert s.char_f1 == pytest.approx(float(char), abs=1e-12)
    assert s.slu_f1 == pytest.approx(float(slu), abs=1e-12)
    assert s.intent_accuracy == 1.0 and s.n_scored == 1


def test_t13_corpus_pools_counts_not_averages():
    by_id = {v[0]: v for v in VECTORS}
    items = [by_id[k] for k in ("T3", "T5", "T8", "T2")]
    s = score_frames([frame(*v[1]) for v in items], [frame(*v[2]) for v in items])
    assert s.entity_f1 == pytest.approx(1 / 3)
    assert s.word_f1 == pytest.approx(4 / 7)
    assert s.char_f1 == pytest.approx(12 / 19)
    assert s.slu_f1 == pytest.approx(3 / 5)
    # SLU TP/FP/FN = 4 / 8/3 / 8/3
    assert s.slu_precision == pytest.approx(float(F(4) / (4 + F(8, 3))))
    assert s.slu_recall == pytest.approx(float(F(4) / (4 + F(8, 3))))


def test_t5_precision_recall_and_partial_counts():
    s = score_frames([frame(E("time", "ten am"))], [frame(E("time", "ten pm"))])
    assert s.word_precision == pytest.approx(1 / 1.5) and s.word_recall == pytest.approx(1 / 1.5)
    assert s.char_precision == pytest.approx(6 / 7)


def test_t6a_precision_and_recall():
    s = score_frames([frame(E("person", "david"), E("person", "david"))], [frame(E("person", "david"))])
    assert s.entity_precision == 1.0 and s.entity_recall == 0.5


def test_intent_vector():
    gold = ["alarm_set", "weather_query", "play_music", "iot_hue_lightoff"]
    pred = ["alarm_set", "weather_query", "play_radio", "none_none"]
    s = score_frames([frame(intent=i) for i in gold], [frame(intent=i) for i in pred])
    assert s.intent_accuracy == pytest.approx(0.5)
    assert s.scenario_accuracy == pytest.approx(0.75)  # play == play
    assert s.action_accuracy == pytest.approx(0.5)


def test_intent_is_built_from_scenario_and_action():
    # "a_b"+"c" and "a"+"b_c" give the same intent string, as in the official scorer.
    s = score_frames([SLUFrame("a_b", "c")], [SLUFrame("a", "b_c")])
    assert s.intent_accuracy == 1.0 and s.scenario_accuracy == 0.0


def test_distances():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein(["a", "b"], ["b"]) == 1
    assert word_distance("york", "new york city") == 2.0
    assert word_distance("ten am", "") == 1.0
    assert word_distance("ten  am ", " ten am") == 0.0  # whitespace runs collapse
    assert word_distance("ten am", "Ten am") == 0.5  # no lowercasing
    assert char_distance("", "") == 1.0  # textdistance 4.1.5
    assert char_distance("a", "") == 1.0
    assert char_distance("tomorrow", "Tomorrow") == pytest.approx(1 / 8)


def test_macro_average_is_mean_of_per_label_f1():
    gold = [frame(E("date", "today"), E("time", "noon"))]
    pred = [frame(E("date", "today"), E("time", "dawn"))]
    micro, macro = score_frames(gold, pred), score_frames(gold, pred, average="macro")
    assert micro.entity_f1 == pytest.approx(0.5)
    assert macro.entity_f1 == pytest.approx((1 + 0) / 2)
    # word: date 1/0/0 -> 1; time 1/1/1 -> 0.5
    assert macro.word_f1 == pytest.approx(0.75)
    with pytest.raises(MetricsInputError):
        score_frames(gold, pred, average="weighted")


def test_score_frames_needs_aligned_lists():
    with pytest.raises(MetricsInputError, match="score_keyed"):
        score_frames([frame()], [])


def test_keyed_missing_predictions_skipped_or_strict():
    gold = {"a": frame(E("date", "today")), "b": frame(intent="weather_query"), "c": frame()}
    pred = {"a": frame(E("date", "today")), "b": frame(intent="weather_query"), "zzz": frame()}
    lenient = score_keyed(gold, pred)
    assert (lenient.n_scored, lenient.n_missing) == (2, 1)
    assert lenient.intent_accuracy == 1.0
    strict = score_keyed(gold, pred, strict=True)
    assert (strict.n_scored, strict.n_missing) == (3, 1)
    assert strict.intent_accuracy == pytest.approx(2 / 3)
    assert set(lenient.to_dict()) == {
        "intent_accuracy", "scenario_accuracy", "action_accuracy", "entity_f1", "word_f1", "char_f1",
        "slu_f1", "slu_precision", "slu_recall", "n_scored", "n_missing",
    }  # fmt: skip


def test_empty_corpus_scores_zero():
    s = score_frames([], [])
    assert s.n_scored == 0 and s.intent_accuracy == 0.0 and s.slu_f1 == 0.0


# ---------------------------------------------------------------------------------------------------------------
# A deliberately naive second implementation, straight from the definitions (exact fractions): Levenshtein by the
# full table, each predicted entity greedily paired with the closest unused gold entity of its type.


def naive_lev(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[len(a)][len(b)]


def naive_wer(g, h):
    return F(naive_lev(g.split(), h.split()), len(g.split()))


def naive_cdist(g, h):
    m = max(len(g), len(h))
    return F(1) if m == 0 else F(naive_lev(g, h), m)


def naive_score(items):
    """items: list of (gold_intent, gold_entities, pred_intent, pred_entities), entities as (type, filler) tuples."""
    span = [0, 0, 0]
    dist = {"wer": [F(0), F(0), F(0)], "cd": [F(0), F(0), F(0)]}
    correct = 0
    for gi, gents, pi, pents in items:
        correct += gi == pi
        inter = 0
        rest = list(gents)
        for e in pents:
            if e in rest:
                rest.remove(e)
                inter += 1
        span[0] += inter
        span[1] += len(pents) - inter
        span[2] += len(gents) - inter
        for name, D in (("wer", naive_wer), ("cd", naive_cdist)):
            pool = list(gents)
            for t, f in pents:
                cands = [(D(gf, f), j) for j, (gt, gf) in enumerate(pool) if gt == t]
                if cands:
                    d, j = min(cands)  # smallest distance, then smallest index
                    dist[name][0] += 1
                    dist[name][1] += d
                    dist[name][2] += d
                    pool.pop(j)
                else:
                    dist[name][1] += 1
            dist[name][2] += len(pool)
    slu = [dist["wer"][i] + dist["cd"][i] for i in range(3)]
    return {
        "intent_accuracy": F(correct, len(items)),
        "entity_f1": f1(*span),
        "word_f1": f1(*dist["wer"]),
        "char_f1": f1(*dist["cd"]),
        "slu_f1": f1(*slu),
    }


def random_corpus(rng):
    types = ["date", "time", "person", "place_name"]
    words = ["a", "b", "ten", "am", "new", "york", "x"]
    intents = ["alarm_set", "alarm_query", "weather_query"]

    def filler():
        return " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))

    items = []
    for _ in range(rng.randint(1, 6)):
        gold = [(rng.choice(types[:2]), filler()) for _ in range(rng.randint(0, 3))]
        pred = []
        for _ in range(rng.randint(0, 3)):
            roll = rng.random()
            if gold and roll < 0.4:
                pred.append(rng.choice(gold))  # exact copies, including duplicates
            elif gold and roll < 0.7:
                pred.append((rng.choice(gold)[0], filler()))  # right type, other filler
            else:
                pred.append((rng.choice(types), filler()))
        items.append((rng.choice(intents), gold, rng.choice(intents), pred))
    return items


def test_random_corpora_match_naive_implementation():
    rng = random.Random(1234)
    for _ in range(400):
        items = random_corpus(rng)
        got = score_frames(
            [SLUFrame.from_intent(gi, ge) for gi, ge, _, _ in items],
            [SLUFrame.from_intent(pi, pe) for _, _, pi, pe in items],
        )
        want = naive_score(items)
        for name, value in want.items():
            assert getattr(got, name) == pytest.approx(float(value), abs=1e-12), (name, items)


# ---------------------------------------------------------------------------------------------------------------
# SLURP files


def test_gold_from_release_uses_token_surfaces_per_recording(slurp_devel_path):
    per_file = load_slurp_gold(slurp_devel_path)
    per_text = load_slurp_gold(slurp_devel_path, load_gold=True)
    assert len(per_text) == 2033 and len(per_file) == 8690
    with open(slurp_devel_path, encoding="utf-8") as fh:
        first = json.loads(fh.readline())
    gold = per_text[str(first["slurp_id"])]
    assert gold.scenario == first["scenario"] and gold.action == first["action"]
    assert [e.filler for e in gold.entities] == ["american dollar", "japanese yen"]
    assert all(per_file[r["file"]] == gold for r in first["recordings"])
    # Clitics are split in the official gold ("jessica 's"), never rejoined.
    assert any(" 's" in e.filler for g in per_text.values() for e in g.entities)


@pytest.fixture
def slurp_devel_path():
    from pathlib import Path

    return Path(__file__).parent / "fixtures" / "slurp" / "devel.jsonl"


def test_read_predictions_formats_and_errors(tmp_path):
    path = tmp_path / "pred.jsonl"
    path.write_text(
        '{"file": "a.flac", "scenario": "alarm", "action": "set", "entities": [{"type": "date", "filler": "Today"}]}\n'
        "\n"
        '{"file": "b.flac", "scenario": "x", "action": "y", "entities": [{"type": "d", "filler": "t", "span": [1]}]}\n',
        encoding="utf-8",
    )
    preds = read_predictions(path)
    assert preds["a.flac"].entities == (Entity("date", "Today"),)  # no normalisation
    # An entity with extra keys never span-matches (the official scorer compares whole dicts) ...
    gold = {"b.flac": SLUFrame("x", "y", (Entity("d", "t"),))}
    s = score_keyed(gold, preds)
    assert s.entity_f1 == 0.0
    # ... but the distance metrics use its type and filler.
    assert s.word_f1 == 1.0

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"file": "a", "scenario": "s", "action": "a", "entities": []}\n{"file": "b", "scen\n')
    with pytest.raises(MetricsInputError, match=r"bad\.jsonl:2"):
        read_predictions(bad)
    bad.write_text('{"slurp_id": 3, "scenario": "s", "action": "a", "entities": []}\n')
    with pytest.raises(MetricsInputError, match="--load-gold"):
        read_predictions(bad)
    bad.write_text('{"file": "a", "scenario": "s", "action": null, "entities": []}\n')
    with pytest.raises(MetricsInputError, match=r":1: 'action' must be a string"):
        read_predictions(bad)
    bad.write_text('{"file": "a", "scenario": "s", "action": "a", "entities": [{"type": "t"}]}\n')
    with pytest.raises(MetricsInputError, match=r"entities\[0\]"):
        read_predictions(bad)
    with pytest.raises(MetricsInputError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl")


def test_malformed_gold_line_names_file_and_line(tmp_path):
    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"slurp_id": 1, "scenario": "a"}\n')
    with pytest.raises(MetricsInputError, match=r"gold\.jsonl:1: not a SLURP release line"):
        load_slurp_gold(bad)
