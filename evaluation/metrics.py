"""SLURP metrics, implemented from their definition: intent accuracy, span F1, span-distance F1s and SLU-F1.

The numbers are those of the official SLURP evaluation toolkit (Bastianelli et al., EMNLP 2020; its
``scripts/evaluation``), written from the definitions below rather than copied:

* scenario, action and intent accuracy: exact string match; the intent is ``f"{scenario}_{action}"``;
* span F1 (the seed paper's "entity F1"): multiset matching of exact (type, filler) pairs, corpus-level micro F1;
* word-F1 / char-F1: each predicted entity, in prediction order, greedily takes the gold entity of the same type with
  the smallest word (WER) or char (normalised Levenshtein) distance; it earns TP 1 and FP = FN = the distance;
* SLU-F1: the word and char confusion counts summed, then F1. It scores entities only (no intent term).

No normalisation happens here: comparisons are exact and case-sensitive, like the official scorer. Our own
predictions are normalised by ``data.frames.parse_output``. Gold items without a prediction are skipped and counted
(``n_missing``), as the official scorer does, unless ``strict`` counts them as ``none_none`` with no entities.

Pure functions, no model imports: training, the app, reports and the planner all call this.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterable, Mapping, Sequence

from data.frames import NONE_FRAME, Entity, SLUFrame, slurp_prediction_record
from data.textio import iter_json_objects

AVERAGES = ("micro", "macro")


class MetricsInputError(ValueError):
    """Gold or prediction input that cannot be scored (the message names the file, line and fix)."""


class ExtraKeyEntity(Entity):
    """A predicted entity whose JSON object had keys besides ``type`` and ``filler``.

    The official span F1 compares whole dicts, so such an entity never matches gold; the distance metrics still use
    its type and filler. (A dataclass subclass never compares equal to a plain ``Entity``.)
    """


# --------------------------------------------------------------------------------------------------------------
# Distances


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance with unit-cost substitution, insertion and deletion (over characters or words)."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


_WS_RUN = re.compile(r"\s\s+")


def _words(text: str) -> list[str]:
    # The WER transform of jiwer 2.0.0, which the official toolkit uses: collapse whitespace runs, strip, split on " ".
    return [w for w in _WS_RUN.sub(" ", text).strip().split(" ") if w]


def word_distance(gold: str, pred: str) -> float:
    """WER of ``pred`` against ``gold``: word edits over gold words; unbounded above, 1.0 for an empty prediction.

    An empty gold filler (never in SLURP; the official scorer crashes on it) scores 0.0 against an empty prediction
    and one error per predicted word otherwise.
    """
    if gold == pred:
        return 0.0
    g, p = _words(gold), _words(pred)
    if not g:
        return float(len(p))
    return levenshtein(g, p) / len(g)


def char_distance(gold: str, pred: str) -> float:
    """Character edits over the longer length, in [0, 1]; 1.0 when both are empty (textdistance 4.1.5)."""
    longest = max(len(gold), len(pred))
    if longest == 0:
        return 1.0
    if gold == pred:
        return 0.0
    return levenshtein(gold, pred) / longest


# --------------------------------------------------------------------------------------------------------------
# Confusion counts


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F1; each is 0 when its denominator is 0 (so no entities at all scores 0, not 1)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


class _Table:
    """Per-label TP/FP/FN accumulators, as in the official ErrorMetric."""

    def __init__(self) -> None:
        self.tp: dict[str, float] = defaultdict(float)
        self.fp: dict[str, float] = defaultdict(float)
        self.fn: dict[str, float] = defaultdict(float)

    def labels(self) -> list[str]:
        return list(dict.fromkeys([*self.tp, *self.fp, *self.fn]))

    def totals(self) -> tuple[float, float, float]:
        labels = self.labels()
        return (
            sum(self.tp.get(x, 0.0) for x in labels),
            sum(self.fp.get(x, 0.0) for x in labels),
            sum(self.fn.get(x, 0.0) for x in labels),
        )

    def add(self, other: "_Table") -> None:
        for mine, theirs in ((self.tp, other.tp), (self.fp, other.fp), (self.fn, other.fn)):
            for label, value in theirs.items():
                mine[label] += value

    def score(self, average: str) -> tuple[float, float, float]:
        if average == "micro":
            return prf(*self.totals())
        per_label = [prf(self.tp.get(x, 0.0), self.fp.get(x, 0.0), self.fn.get(x, 0.0)) for x in self.labels()]
        if not per_label:
            return 0.0, 0.0, 0.0
        n = len(per_label)
        return tuple(sum(v[i] for v in per_label) / n for i in range(3))  # type: ignore[return-value]


def _update_label(table: _Table, gold: str, pred: str) -> None:
    if gold == pred:
        table.tp[pred] += 1
    else:
        table.fp[pred] += 1
        table.fn[gold] += 1


def _span_key(entity: Entity) -> tuple[str, str] | Entity:
    # A plain entity matches on (type, filler); an ExtraKeyEntity only equals another ExtraKeyEntity (never gold).
    return (entity.type, entity.filler) if type(entity) is Entity else entity


def _update_span(table: _Table, gold: Sequence[Entity], pred: Sequence[Entity]) -> None:
    remaining = Counter(_span_key(e) for e in gold)
    for e in pred:
        key = _span_key(e)
        if remaining[key] > 0:
            remaining[key] -= 1
            table.tp[e.type] += 1
        else:
            table.fp[e.type] += 1
    for e in gold:
        key = _span_key(e)
        if remaining[key] > 0:
            remaining[key] -= 1
            table.fn[e.type] += 1


def _update_distance(
    table: _Table, gold: Sequence[Entity], pred: Sequence[Entity], distance: Callable[[str, str], float]
) -> None:
    pool = [(e.type, e.filler) for e in gold]
    for e in pred:
        best_j, best_d = -1, 0.0
        for j, (gtype, gfiller) in enumerate(pool):
            if gtype != e.type:
                continue
            d = distance(gfiller, e.filler)
            if best_j < 0 or d < best_d:  # strictly smaller: ties go to the earliest gold entity
                best_j, best_d = j, d
        if best_j < 0:
            table.fp[e.type] += 1
        else:
            table.tp[e.type] += 1
            table.fp[e.type] += best_d
            table.fn[e.type] += best_d
            pool.pop(best_j)
    for gtype, _ in pool:
        table.fn[gtype] += 1


# --------------------------------------------------------------------------------------------------------------
# Scores

# The scores a run reports (the metric columns of the results table), then the counts behind them.
METRIC_KEYS = (
    "intent_accuracy",
    "scenario_accuracy",
    "action_accuracy",
    "entity_f1",
    "word_f1",
    "char_f1",
    "slu_f1",
    "slu_precision",
    "slu_recall",
)
CONTRACT_KEYS = METRIC_KEYS + ("n_scored", "n_missing")


@dataclass(frozen=True)
class SLUScores:
    """Corpus-level SLURP scores. ``to_dict()`` gives the keys the results table stores."""

    intent_accuracy: float
    scenario_accuracy: float
    action_accuracy: float
    entity_f1: float
    word_f1: float
    char_f1: float
    slu_f1: float
    slu_precision: float
    slu_recall: float
    n_scored: int
    n_missing: int = 0
    entity_precision: float = 0.0
    entity_recall: float = 0.0
    word_precision: float = 0.0
    word_recall: float = 0.0
    char_precision: float = 0.0
    char_recall: float = 0.0
    average: str = "micro"

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """The contract keys (those of the results table); ``full=True`` adds the other precisions and recalls."""
        out = asdict(self)
        return out if full else {k: out[k] for k in CONTRACT_KEYS}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _score_pairs(pairs: Iterable[tuple[SLUFrame, SLUFrame]], n_missing: int, average: str) -> SLUScores:
    if average not in AVERAGES:
        raise MetricsInputError(f"average must be one of {AVERAGES}, got {average!r}")
    scenario, action, intent = _Table(), _Table(), _Table()
    span, word, char = _Table(), _Table(), _Table()
    n = 0
    for gold, pred in pairs:
        n += 1
        _update_label(scenario, gold.scenario, pred.scenario)
        _update_label(action, gold.action, pred.action)
        _update_label(intent, f"{gold.scenario}_{gold.action}", f"{pred.scenario}_{pred.action}")
        if gold.entities or pred.entities:
            _update_span(span, gold.entities, pred.entities)
            _update_distance(word, gold.entities, pred.entities, word_distance)
            _update_distance(char, gold.entities, pred.entities, char_distance)
    slu = _Table()  # official SLUF1: the word table, then the char table, summed label by label
    slu.add(word)
    slu.add(char)
    ep, er, ef = span.score(average)
    wp, wr, wf = word.score(average)
    cp, cr, cf = char.score(average)
    sp, sr, sf = slu.score(average)
    # With micro averaging P = R = F1 = accuracy (one label per item, gold and predicted); the F1 is what the official scorer reports.
    return SLUScores(
        intent_accuracy=intent.score(average)[2],
        scenario_accuracy=scenario.score(average)[2],
        action_accuracy=action.score(average)[2],
        entity_f1=ef,
        word_f1=wf,
        char_f1=cf,
        slu_f1=sf,
        slu_precision=sp,
        slu_recall=sr,
        n_scored=n,
        n_missing=n_missing,
        entity_precision=ep,
        entity_recall=er,
        word_precision=wp,
        word_recall=wr,
        char_precision=cp,
        char_recall=cr,
        average=average,
    )


def score_frames(gold: Sequence[SLUFrame], pred: Sequence[SLUFrame], *, average: str = "micro") -> SLUScores:
    """Score aligned lists of gold and predicted frames (item i of each is the same utterance)."""
    if len(gold) != len(pred):
        raise MetricsInputError(
            f"score_frames needs one prediction per gold frame: got {len(gold)} gold and {len(pred)} predicted; "
            "use score_keyed to match them by id"
        )
    return _score_pairs(zip(gold, pred), 0, average)


def score_keyed(
    gold: Mapping[str, SLUFrame],
    pred: Mapping[str, SLUFrame],
    strict: bool = False,
    *,
    average: str = "micro",
) -> SLUScores:
    """Score predictions matched to gold by key (recording file or slurp_id).

    Gold keys without a prediction are skipped and counted in ``n_missing`` (the official behaviour), or with
    ``strict`` scored as a ``none_none`` prediction with no entities (and still counted in ``n_missing``).
    Predictions whose key is not in gold are ignored, as the official scorer does.
    """
    pairs = []
    missing = 0
    for key, gold_frame in gold.items():
        pred_frame = pred.get(key)
        if pred_frame is None:
            missing += 1
            if not strict:
                continue
            pred_frame = NONE_FRAME
        pairs.append((gold_frame, pred_frame))
    return _score_pairs(pairs, missing, average)


# --------------------------------------------------------------------------------------------------------------
# SLURP files


def _json_lines(path: str | os.PathLike) -> Iterable[tuple[int, dict[str, Any]]]:
    return iter_json_objects(
        path, MetricsInputError, compact=True
    )  # one UTF-8, one JSON-lines reader for every input file


def gold_frame_from_release(example: Mapping[str, Any]) -> SLUFrame:
    """The official gold of one SLURP release line: fillers are the span's token surfaces, lowercased, joined by
    one space; the intent comes from ``scenario`` and ``action`` (never from the inconsistent ``intent`` field)."""
    tokens = example["tokens"]
    entities = tuple(
        Entity(ent["type"], " ".join(tokens[i]["surface"].lower() for i in ent["span"])) for ent in example["entities"]
    )
    return SLUFrame(example["scenario"], example["action"], entities)


def load_slurp_gold(path: str | os.PathLike, *, load_gold: bool = False) -> dict[str, SLUFrame]:
    """Gold frames from a SLURP release jsonl, keyed per recording ``file`` (default) or per ``slurp_id``
    (``load_gold=True``, the official ``--load-gold``)."""
    gold: dict[str, SLUFrame] = {}
    for lineno, obj in _json_lines(path):
        try:
            frame = gold_frame_from_release(obj)
            keys = [str(obj["slurp_id"])] if load_gold else [rec["file"] for rec in obj["recordings"]]
            if not all(isinstance(k, str) for k in keys):
                raise TypeError("recordings[].file must be a string")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise MetricsInputError(
                f"{path}:{lineno}: not a SLURP release line ({type(exc).__name__}: {exc}); expected slurp_id, "
                "scenario, action, tokens[].surface, entities[].span/type and recordings[].file"
            ) from None
        for key in keys:
            gold[key] = frame
    return gold


def _prediction_frame(obj: Mapping[str, Any], where: str) -> SLUFrame:
    for name in ("scenario", "action"):
        if not isinstance(obj.get(name), str):
            raise MetricsInputError(f"{where}: '{name}' must be a string, got {obj.get(name)!r}")
    raw = obj.get("entities")
    if not isinstance(raw, list):
        raise MetricsInputError(f"{where}: 'entities' must be a list of {{type, filler}} objects, got {raw!r}")
    entities = []
    for i, ent in enumerate(raw):
        if not isinstance(ent, dict) or not isinstance(ent.get("type"), str) or not isinstance(ent.get("filler"), str):
            raise MetricsInputError(
                f"{where}: entities[{i}] must be an object with string type and filler, got {ent!r}"
            )
        cls = Entity if len(ent) == 2 else ExtraKeyEntity
        entities.append(cls(ent["type"], ent["filler"]))
    return SLUFrame(obj["scenario"], obj["action"], tuple(entities))


def read_predictions(path: str | os.PathLike, *, key: str = "file") -> dict[str, SLUFrame]:
    """Predictions in the SLURP format (one ``{key, scenario, action, entities}`` object per line). Values are taken
    exactly as written (no normalisation); a later line with the same key replaces an earlier one."""
    preds: dict[str, SLUFrame] = {}
    for lineno, obj in _json_lines(path):
        where = f"{path}:{lineno}"
        if key not in obj:
            hint = " (use --load-gold for slurp_id keys)" if key == "file" and "slurp_id" in obj else ""
            raise MetricsInputError(f"{where}: missing key {key!r}{hint}")
        preds[str(obj[key])] = _prediction_frame(obj, where)
    return preds


prediction_record = slurp_prediction_record  # one definition, in data/frames.py (the format's home)
