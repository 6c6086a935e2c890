"""Budget mode: split a speech budget across languages to maximise mean (or worst-language) SLU-F1.

Each language offers a handful of candidate levels (amount, cost, predicted score, best scheme there); picking one
per language under a total cost is a multiple-choice knapsack. `solve` is exact: a dynamic programme over the
Pareto frontier of (cost, total score) partial allocations. For the worst-language objective the largest feasible
minimum is found first (threshold search), then the mean is maximised among allocations that keep it.
`greedy_steps` replays the greedy marginal-gain-per-cost path on each language's concave hull: near-optimal and the
explanation shown to the user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from planner.curves import PlannerError
from planner.model import CurveFit

OBJECTIVES = ("mean", "worst")


@dataclass(frozen=True)
class Option:
    language: str
    x: float  # speech amount in the curve's unit
    cost: float  # in the budget's unit
    score: float  # predicted score at x with `scheme`
    scheme: str


def candidate_options(
    language: str, fits: Sequence[CurveFit], cost_of: Callable[[float], float], n_levels: int = 14
) -> list[Option]:
    """Levels 0, the measured levels and a log grid up to the corpus; the best predicted scheme at each."""
    size = min(f.curve.corpus_size for f in fits)
    xs = {0.0} if all(f.curve.has_zero for f in fits) else set()
    for f in fits:
        xs.update(float(v) for v in f.curve.x if v <= size)
    xs.update(float(round(v)) for v in np.geomspace(size * 0.005, size, n_levels))
    opts = []
    for x in sorted(xs):
        preds = {f.curve.scheme or f.curve.name: float(f.predict(x)[0]) for f in fits if x > 0 or f.curve.has_zero}
        if not preds:
            continue
        scheme = max(preds, key=preds.get)
        opts.append(Option(language, x, float(cost_of(x)), preds[scheme], "text" if x == 0 else scheme))
    return opts


def _mean_dp(options: Mapping[str, Sequence[Option]], budget: float) -> tuple[float, tuple[Option, ...]] | None:
    states: list[tuple[float, float, tuple[Option, ...]]] = [(0.0, 0.0, ())]
    tol = 1e-9 * max(1.0, budget)
    for lang in options:
        grown = [
            (c + o.cost, v + o.score, ch + (o,))
            for c, v, ch in states
            for o in options[lang]
            if c + o.cost <= budget + tol
        ]
        grown.sort(key=lambda s: (s[0], -s[1]))
        states, best = [], -math.inf
        for s in grown:  # keep the Pareto frontier: more cost must buy more score
            if s[1] > best + 1e-12:
                states.append(s)
                best = s[1]
        if not states:
            return None
    total, choice = max(((v, ch) for _, v, ch in states), key=lambda t: t[0])
    return total, choice


def solve(options: Mapping[str, Sequence[Option]], budget: float, objective: str = "mean") -> tuple[Option, ...]:
    """The exact best choice of one option per language within `budget`."""
    if objective not in OBJECTIVES:
        raise PlannerError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if budget < 0 or not math.isfinite(budget):
        raise PlannerError(f"the budget must be a number >= 0, got {budget}")
    if objective == "worst":
        thresholds = sorted({o.score for opts in options.values() for o in opts}, reverse=True)
        for t in thresholds:
            cheapest = [min((o.cost for o in opts if o.score >= t), default=math.inf) for opts in options.values()]
            if sum(cheapest) <= budget * (1 + 1e-9):
                options = {k: [o for o in v if o.score >= t] for k, v in options.items()}
                break
    found = _mean_dp(options, budget)
    if found is None:
        cheapest = {k: min(o.cost for o in v) for k, v in options.items() if v}
        raise PlannerError(
            f"budget {budget:g} cannot cover even the cheapest level of every language "
            f"(cheapest costs: {cheapest}); raise the budget or drop a language"
        )
    return found[1]


def _upper_hull(opts: Sequence[Option]) -> list[Option]:
    pts = sorted(opts, key=lambda o: (o.cost, -o.score))
    hull: list[Option] = []
    for o in pts:
        if hull and o.score <= hull[-1].score:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies under the chord a-o (not concave)
            if (b.score - a.score) * (o.cost - a.cost) <= (o.score - a.score) * (b.cost - a.cost):
                hull.pop()
            else:
                break
        hull.append(o)
    return hull


@dataclass
class Step:
    language: str
    from_x: float
    to_x: float
    cost: float
    gain: float
    gain_per_cost: float
    spent: float


def greedy_steps(options: Mapping[str, Sequence[Option]], budget: float) -> list[Step]:
    """Greedy upgrades by marginal gain per unit cost along each language's concave hull."""
    hulls = {k: _upper_hull(v) for k, v in options.items() if v}
    pos = {k: 0 for k in hulls}
    spent = sum(h[0].cost for h in hulls.values())
    steps = []
    while True:
        best = None
        for k, h in hulls.items():
            i = pos[k]
            if i + 1 >= len(h):
                continue
            dc = h[i + 1].cost - h[i].cost
            dg = h[i + 1].score - h[i].score
            if spent + dc > budget * (1 + 1e-9):
                continue
            ratio = dg / dc if dc > 0 else math.inf
            if best is None or ratio > best[0]:
                best = (ratio, k, dc, dg)
        if best is None:
            return steps
        ratio, k, dc, dg = best
        spent += dc
        steps.append(Step(k, hulls[k][pos[k]].x, hulls[k][pos[k] + 1].x, dc, dg, ratio, spent))
        pos[k] += 1


@dataclass
class Allocation:
    budget: float
    budget_unit: str
    objective: str
    choice: list[dict]
    mean_score: float
    worst_score: float
    spent: float
    steps: list[dict]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def allocate(
    fits_by_language: Mapping[str, Sequence[CurveFit]],
    budget: float,
    *,
    budget_unit: str = "utterances",
    avg_seconds: Mapping[str, float] | float | None = None,
    cost_per_hour: Mapping[str, float] | float | None = None,
    objective: str = "mean",
) -> Allocation:
    """Split `budget` (utterances, hours or money) across languages; costs per language from duration and rate."""
    if not fits_by_language:
        raise PlannerError("no languages to allocate over")
    from planner.target import check_rates

    check_rates(avg_seconds, cost_per_hour)

    def per_lang(v, lang):
        return v.get(lang) if isinstance(v, Mapping) else v

    notes = []
    options = {}
    for lang, fits in fits_by_language.items():
        shared = [f for f in fits if not f.curve.allocatable]
        if shared:
            raise PlannerError(
                f"{lang}: curve(s) {[f.curve.name for f in shared]} measure source-language speech "
                "(a shared axis), not speech in this language; they cannot be allocated"
            )
        unit = fits[0].curve.unit
        sec, rate = per_lang(avg_seconds, lang), per_lang(cost_per_hour, lang)
        if budget_unit == unit:
            cost_of = lambda x: x  # noqa: E731
        elif budget_unit == "hours" and unit == "utterances":
            if not sec:
                raise PlannerError(f"a budget in hours needs --avg-seconds for {lang} (average utterance duration)")
            cost_of = lambda x, s=sec: x * s / 3600  # noqa: E731
        elif budget_unit == "money" and unit in ("utterances", "hours"):
            if rate is None or (unit == "utterances" and not sec):
                raise PlannerError(f"a budget in money needs --cost-per-hour and --avg-seconds for {lang}")
            cost_of = (lambda x, s=sec, r=rate: x * s / 3600 * r) if unit == "utterances" else (lambda x, r=rate: x * r)
        else:
            raise PlannerError(
                f"cannot convert {lang}'s unit {unit!r} into a budget in {budget_unit!r}; "
                "use --budget-unit utterances, hours or money"
            )
        options[lang] = candidate_options(lang, fits, cost_of)
    if budget == 0:
        notes.append("budget is zero: text-only (0% speech) everywhere")
    choice = solve(options, budget, objective)
    steps = greedy_steps(options, budget)
    rows = [
        {
            "language": o.language,
            "amount": o.x,
            "unit": fits_by_language[o.language][0].curve.unit,
            "cost": o.cost,
            "predicted_score": o.score,
            "scheme": o.scheme,
        }
        for o in choice
    ]
    scores = [o.score for o in choice]
    greedy_value = _greedy_value(options, steps)
    if greedy_value is not None and sum(scores) - greedy_value > 1e-9:
        notes.append(
            f"the exact split beats the greedy path by {100 * (sum(scores) - greedy_value) / len(scores):.2f}"
            " points of mean score"
        )
    return Allocation(
        budget,
        budget_unit,
        objective,
        rows,
        float(np.mean(scores)),
        float(min(scores)),
        float(sum(o.cost for o in choice)),
        [s.__dict__ for s in steps],
        notes,
    )


def _greedy_value(options: Mapping[str, Sequence[Option]], steps: Sequence[Step]) -> float | None:
    hulls = {k: _upper_hull(v) for k, v in options.items() if v}
    total = sum(h[0].score for h in hulls.values())
    return total + sum(s.gain for s in steps)
