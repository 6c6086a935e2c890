"""Target mode: how much speech a language needs to reach a target SLU-F1, and with which scheme.

For each scheme curve of the language: the expected amount (the fitted curve crosses the target), the safe amount
(its `risk`-quantile crosses the target: with probability about 1 - risk the target is met, which is the single-round
answer Mahmood et al., NeurIPS 2022, recommend over the point estimate), and the probability of reaching the target
with the whole corpus. Amounts are given in the curve's unit and, with an average utterance duration and a cost per
hour, in hours and money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.special import ndtri

from planner.curves import PlannerError
from planner.model import CurveFit

SEARCH_LIMIT = 8.0  # search amounts up to this many times the corpus: beyond it the model says nothing useful


def check_rates(avg_seconds, cost_per_hour, where: str = "") -> None:
    """Refuse a negative or non-finite utterance duration or hourly cost (they would print negative hours/money)."""
    for flag, v in (("--avg-seconds", avg_seconds), ("--cost-per-hour", cost_per_hour)):
        vals = v.values() if isinstance(v, dict) else [v]
        for val in vals:
            if val is not None and (not math.isfinite(val) or val < 0):
                what = "seconds per utterance" if flag == "--avg-seconds" else "the cost of one hour of speech"
                raise PlannerError(f"{flag}{where} ({what}) must be a number >= 0, got {val:g}")


def amounts(x: float | None, unit: str, avg_seconds: float | None, cost_per_hour: float | None) -> dict:
    """One amount in utterances, hours and money where the inputs allow; None where they do not."""
    if x is None or not math.isfinite(x):
        return {"amount": None, "unit": unit, "utterances": None, "hours": None, "money": None}
    base = unit.removeprefix("source_")
    utt = x if base == "utterances" else None
    hours = x if base == "hours" else (utt * avg_seconds / 3600 if utt is not None and avg_seconds else None)
    money = hours * cost_per_hour if hours is not None and cost_per_hour is not None else None
    return {
        "amount": float(x),
        "unit": unit,
        "utterances": None if utt is None else int(math.ceil(utt - 1e-9)),
        "hours": hours,
        "money": money,
    }


def first_crossing(f: Callable[[np.ndarray], np.ndarray], target: float, x_max: float, x_min: float) -> float:
    """Smallest x in [0, x_max] with f(x) >= target (grid then bisection); inf when there is none."""
    grid = np.concatenate([[0.0], np.geomspace(x_min, x_max, 400)])
    vals = f(grid)
    hit = np.nonzero(vals >= target - 1e-12)[0]
    if hit.size == 0:
        return math.inf
    i = int(hit[0])
    if i == 0:
        return 0.0
    lo, hi = grid[i - 1], grid[i]
    for _ in range(30):
        mid = (lo + hi) / 2
        if f(np.array([mid]))[0] >= target - 1e-12:
            hi = mid
        else:
            lo = mid
    return float(hi)


def expected_amount(fit: CurveFit, target: float, x_max: float | None = None) -> float:
    size = fit.curve.corpus_size
    return first_crossing(fit.predict, target, x_max or SEARCH_LIMIT * size, size * 1e-4)


def measured_safe(fit: CurveFit, target: float, risk: float = 0.1) -> float:
    """Inside the measured range a safe amount is a measured level that reached the target beyond its own
    measurement noise, and from which every later measured level did too (no single lucky level); inf when the
    last measured level falls short.

    A level "reached" the target when its score minus the normal risk-quantile of its noise (its seed standard
    error, else the curve's noise: a single run's, learned on the library) still clears it: a measured mean is an
    estimate, and one that clears the target by less than its noise reached it by luck as often as not."""
    x, y = fit.curve.x, fit.curve.score
    se = fit.curve.std_err()
    se = np.where(np.isfinite(se), se, fit.sigma)
    reached = y - abs(float(ndtri(risk))) * se >= target - 1e-12
    if not reached.size or not reached[-1]:
        return math.inf
    short = np.nonzero(~reached)[0]
    first = int(short[-1]) + 1 if short.size else 0
    return float(x[first])


def safe_amount(fit: CurveFit, target: float, risk: float, x_max: float | None = None) -> float:
    """The safe amount for a target: with probability about 1 - risk the target is met there; inf if none.

    Inside the measured range it is a measured level that reached the target beyond its noise (`measured_safe`):
    the model is not asked where the measurements already answer. Beyond the last measured level it is the (1 - risk)-quantile of
    the amount needed, searched up to `x_max` (default: the corpus): the amount needed D is random through the
    curve, P(D <= x) = P(score(x) >= target), and with the band's quantiles moving together along x, D's
    (1 - risk)-quantile is where the risk-quantile of the score crosses the target (Mahmood et al., NeurIPS 2022:
    collect a quantile of D, not the point estimate). So a safe amount beyond the measurements exists only where the
    lower band clears the target, and the curve's own back-test error as well (`CurveFit.safe_quantile`); a curve
    too short to back-test itself gets none beyond its measurements. The default cap is the corpus: beyond it no curve was ever measured, and a "safe"
    amount resting on several doublings of extrapolation is not one; `recommend` then reports the probability of
    reaching the target with the whole corpus instead, with a note.
    """
    inside = measured_safe(fit, target, risk)
    if math.isfinite(inside):
        return inside
    size = fit.curve.corpus_size
    x_last = float(fit.curve.x.max())

    def lower(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return np.where(x > x_last * (1 + 1e-9), fit.safe_quantile(x, risk), -np.inf)

    return first_crossing(lower, target, x_max or size, size * 1e-4)


@dataclass
class SchemeAnswer:
    curve: str
    scheme: str
    status: str  # "text-only suffices", "within corpus", "beyond corpus", "not reachable"
    expected: dict
    safe: dict
    p_reach_corpus: float  # probability of reaching the target with the whole corpus
    score_at_corpus: float
    warnings: list[str] = field(default_factory=list)
    band_widening: float = 1.0  # > 1: the curve is unlike the library, its bands were widened this much
    # how the extrapolation beyond the last level is made (planner.shift): each candidate's weight, and the gate
    # (0: the library model alone; 1: fully stacked on the curve's own validation)
    extrapolation: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _extrapolation(fit: CurveFit) -> dict:
    st = fit.stack
    if st is None:
        return {"weights": {"library": 1.0}, "gate": 0.0}
    return {"weights": {k: round(v, 4) for k, v in st.weight_of().items()}, "gate": round(st.gate, 4)}


@dataclass
class Recommendation:
    language: str
    target: float
    risk: float
    answers: list[SchemeAnswer]
    best_scheme: str | None  # scheme with the smallest expected amount
    best_expected: dict
    best_safe: dict
    scheme_at_amount: str | None  # scheme predicted best at the recommended (expected) amount
    status: str
    notes: list[str] = field(default_factory=list)
    calibrated_by: str = ""  # which curve library calibrated the answer (hyper-parameters and bands)
    out_of_range: list[str] = field(default_factory=list)  # warnings: curves unlike that library

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["answers"] = [a.to_dict() for a in self.answers]
        return d


def recommend(
    fits: Sequence[CurveFit],
    *,
    target: float,
    share: bool = False,
    risk: float = 0.1,
    avg_seconds: float | None = None,
    cost_per_hour: float | None = None,
    language: str = "",
) -> Recommendation:
    """Answer target mode for one language from the fitted curves of its schemes.

    `target` is an absolute score in [0, 1], or with `share=True` a share of the best full-corpus score.
    """
    if not fits:
        raise PlannerError(f"no curves for language {language!r}")
    if not 0 < risk < 0.5:
        raise PlannerError(f"--risk must be in (0, 0.5), got {risk}")
    if not 0 < target <= 1:
        raise PlannerError(f"--target must be in (0, 1] (a score, or a share with --share), got {target}")
    check_rates(avg_seconds, cost_per_hour)
    full = max(float(f.predict(f.curve.corpus_size)[0]) for f in fits)
    goal = target * full if share else target
    answers = []
    for f in fits:
        size = f.curve.corpus_size
        exp_x = expected_amount(f, goal)
        safe_x = safe_amount(f, goal, risk)
        if exp_x == 0:
            status = "text-only suffices"
        elif exp_x <= size * (1 + 1e-9):
            status = "within corpus"
        elif math.isfinite(exp_x):
            status = "beyond corpus"
        else:
            status = "not reachable"
        answers.append(
            SchemeAnswer(
                f.curve.name,
                f.curve.scheme or f.curve.name,
                status,
                amounts(exp_x, f.curve.unit, avg_seconds, cost_per_hour),
                amounts(safe_x, f.curve.unit, avg_seconds, cost_per_hour),
                f.prob_reach(size, goal),
                float(f.predict(size)[0]),
                list(f.curve.warnings),
                f.inflation,
                _extrapolation(f),
            )
        )
    ranked = sorted(answers, key=lambda a: a.expected["amount"] if a.expected["amount"] is not None else math.inf)
    best = ranked[0]
    notes = []
    if best.expected["amount"] is None:
        status = "not reachable"
        notes.append(
            f"no scheme reaches {goal:.4f} within {SEARCH_LIMIT:g}x the corpus; best full-corpus score "
            f"{full:.4f}: lower the target or add text/other data"
        )
        scheme_at = None
    else:
        status = best.status
        x_best = best.expected["amount"]
        scores = {a.scheme: float(f.predict(x_best)[0]) for a, f in zip(answers, fits)}
        scheme_at = max(scores, key=scores.get)
        if status == "beyond corpus":
            notes.append("the expected amount exceeds the corpus: the answer is an extrapolation, collect in rounds")
    if any(f.curve.unit.startswith("source_") for f in fits):
        notes.append("x is source-language speech (a shared axis), not speech in this language")
    if best.safe["amount"] is None and best.expected["amount"] is not None:
        p_best = max(a.p_reach_corpus for a in answers)
        notes.append(
            f"no amount within the corpus reaches the target with risk <= {risk:g}; the whole corpus "
            f"reaches it with probability {p_best:.2f} (best scheme): collect in rounds and refit"
        )
    out_of_range = [w for w in (f.range_warning() for f in fits) if w]
    calibrated_by = "; ".join(sorted({f.library for f in fits if f.library})) or "no library (generic priors)"
    return Recommendation(
        language,
        goal,
        risk,
        answers,
        best.scheme if best.expected["amount"] is not None else None,
        best.expected,
        best.safe,
        scheme_at,
        status,
        notes,
        calibrated_by,
        out_of_range,
    )
