"""The planner's target and budget modes for the Planner tab: named-column tables, rounded amounts, cost, figures, CSV.

Library calls only (planner.curves, planner.cache, planner.target, planner.budget, planner.plots). Inputs are
checked here with messages in the page's words (no CLI flags); the target is entered in points, as plotted.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from appkit.catalog import AppError

PAPER = "paper"  # the shipped curves of Choi et al. (Tables 2 and 3)
RUNS = "runs"  # the results table of the runs folder
UNITS = ("utterances", "hours", "money")
OBJECTIVES = ("mean", "worst")


def load_curves(source: str, results: str | os.PathLike | None):
    from planner.curves import PlannerError, read_results_curves, reference_curves

    if source == PAPER:
        return reference_curves()
    if source != RUNS:
        raise AppError(f"unknown curve source {source!r}; choose {PAPER!r} or {RUNS!r}")
    if not results or not Path(results).is_file():
        raise AppError(
            f"no results table at {results or '(none given)'}; run a sweep into the runs folder "
            "(python -m training.sweep ... --out RUNS) or plan on the paper's curves"
        )
    try:
        return read_results_curves(results)
    except PlannerError as err:
        raise AppError(f"{results}: {err}") from None


def languages(curves, allocatable_only: bool = False) -> list[str]:
    return sorted({c.language or c.group for c in curves if c.allocatable or not allocatable_only})


def _select(curves, language: str):
    chosen = [c for c in curves if language in (c.language, c.group) and c.x.size >= 2 and (c.x > 0).any()]
    if not chosen:
        raise AppError(
            f"no curve with two or more speech levels for language {language!r}; the curves have "
            f"{', '.join(languages(curves))}"
        )
    return chosen


def _library(curves):
    """The paper's curves plus the user's, learned once (cached); named as the command line names it."""
    import dataclasses

    from planner.cache import cached_library
    from planner.curves import reference_curves

    ref = reference_curves()
    pool = {c.name: c for c in ref}
    pool.update({c.name: c for c in curves})
    own = len(pool) - len(ref)
    name = f"the paper's {len(ref)} curves" + (f" + {own} of yours" if own else "")
    return dataclasses.replace(cached_library(list(pool.values())), name=name)


def _number(value: Any, what: str, *, low: float = 0.0, high: float = math.inf, strict: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AppError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < low or x > high or (strict and x == low):
        bound = f"{'above' if strict else 'at least'} {low:g}" + ("" if high == math.inf else f" and at most {high:g}")
        raise AppError(f"{what} must be {bound}, got {value!r}")
    return x


def _planner_message(err: Exception) -> str:
    import re

    return re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", " "), str(err))


def _ceil(x: float | None) -> int | None:
    return None if x is None else int(math.ceil(x - 1e-9))


def _round(x: float | None, nd: int) -> float | None:
    return None if x is None else round(float(x), nd)


def _write_csv(frame, stem: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="lalm-slu-app-"))
    path = folder / f"{stem}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def plan_target(
    source: str,
    results: str | None,
    language: str,
    target_points: float,
    share: bool,
    risk: float,
    avg_seconds: float,
    cost_per_hour: float,
):
    """(summary markdown, table, figure, CSV path) for "how much speech for this target"."""
    import pandas as pd

    from planner.curves import PlannerError
    from planner.plots import plot_curves
    from planner.target import recommend

    what = "target share of the best full-corpus score (%)" if share else "target SLU-F1 (points)"
    target = _number(target_points, what, low=0, high=100, strict=True) / 100
    risk = _number(risk, "risk of missing the target", low=0.01, high=0.49)
    avg = _number(avg_seconds or 0, "average utterance length (s)")
    cost = _number(cost_per_hour or 0, "cost per hour of speech")
    curves = load_curves(source, results)
    fits = [_library(curves).fit(c) for c in _select(curves, language)]
    try:
        rec = recommend(
            fits,
            target=target,
            share=share,
            risk=risk,
            avg_seconds=avg or None,
            cost_per_hour=cost or None,
            language=language,
        )
    except PlannerError as err:
        raise AppError(_planner_message(err)) from None
    unit = fits[0].curve.unit.replace("_", " ")
    rows = []
    for a in rec.answers:
        e, s = a.expected, a.safe
        rows.append(
            {
                "scheme": a.scheme,
                "status": a.status,
                f"expected ({unit})": _ceil(e["amount"]),
                f"safe ({unit})": _ceil(s["amount"]),
                "expected hours": _round(e["hours"], 1),
                "safe hours": _round(s["hours"], 1),
                "expected cost": _round(e["money"], 0),
                "safe cost": _round(s["money"], 0),
                "P(reach with whole corpus)": round(a.p_reach_corpus, 2),
                "score with whole corpus (points)": round(100 * a.score_at_corpus, 2),
            }
        )
    table = pd.DataFrame(rows)
    best_e, best_s = rec.best_expected, rec.best_safe
    amount = f"{_ceil(best_e['amount']):,} {unit}" if best_e["amount"] is not None else "no amount"
    safe = f"{_ceil(best_s['amount']):,} {unit}" if best_s["amount"] is not None else "none within the corpus"
    extra = []
    if best_e.get("hours") is not None:
        extra.append(f"{best_e['hours']:,.1f} h")
    if best_e.get("money") is not None:
        extra.append(f"cost {best_e['money']:,.0f}")
    summary = (
        f"### {language}: {rec.status}\n"
        f"Target SLU-F1 **{100 * rec.target:.1f}** points. Scheme to train: **{rec.best_scheme or '-'}**. "
        f"Expected amount: **{amount}**{' (' + ', '.join(extra) + ')' if extra else ''}; safe amount "
        f"(missed with probability about {risk:.0%}): **{safe}**."
    )
    if rec.notes:
        summary += "\n\n" + "\n".join(f"- {n}" for n in rec.notes)
    summary += f"\n\n_Calibrated by {rec.calibrated_by}._"
    if rec.out_of_range:
        summary += "\n\n" + "\n".join(f"- **Warning:** {w}" for w in rec.out_of_range)
    if not avg:
        summary += "\n\n_Give the average utterance length to see hours, and a cost per hour to see the cost._"
    fig = plot_curves(fits, rec, title=f"{language}: SLU-F1 vs paired speech ({unit})")
    fig.update_layout(height=440, margin={"t": 60, "b": 50})
    return summary, table, fig, _write_csv(table, f"plan-{language}")


def plan_budget(
    source: str,
    results: str | None,
    langs: list[str] | str,
    budget: float,
    unit: str,
    avg_seconds: float,
    cost_per_hour: float,
    objective: str,
):
    """(summary markdown, table, figure, CSV path) for "split this budget over these languages"."""
    import pandas as pd

    from planner.budget import allocate
    from planner.curves import PlannerError
    from planner.plots import plot_allocation

    if isinstance(langs, str):
        langs = [x.strip() for x in langs.split(",")]
    langs = [x for x in dict.fromkeys(x.strip() for x in langs or []) if x]
    if not langs:
        raise AppError("choose at least one language to split the budget over")
    if unit not in UNITS:
        raise AppError(f"budget unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if objective not in OBJECTIVES:
        raise AppError(f"objective must be 'mean' or 'worst', got {objective!r}")
    budget = _number(budget, f"budget ({unit})")
    avg = _number(avg_seconds or 0, "average utterance length (s)")
    cost = _number(cost_per_hour or 0, "cost per hour of speech")
    if unit in ("hours", "money") and not avg:
        raise AppError(f"a budget in {unit} needs the average utterance length (s) to turn utterances into hours")
    if unit == "money" and not cost:
        raise AppError("a budget in money needs the cost per hour of speech")
    curves = load_curves(source, results)
    lib = _library(curves)
    fits = {lang: [lib.fit(c) for c in _select(curves, lang)] for lang in langs}
    try:
        alloc = allocate(
            fits, budget, budget_unit=unit, avg_seconds=avg or None, cost_per_hour=cost or None, objective=objective
        )
    except PlannerError as err:
        raise AppError(_planner_message(err)) from None
    rows = []
    for r in alloc.choice:
        utt = r["amount"] if r["unit"] == "utterances" else None
        hours = utt * avg / 3600 if utt is not None and avg else (r["amount"] if r["unit"] == "hours" else None)
        rows.append(
            {
                "language": r["language"],
                "speech to collect": _ceil(r["amount"]),
                "unit": r["unit"],
                "hours": _round(hours, 1),
                "cost": _round(hours * cost, 0) if hours is not None and cost else None,
                f"budget used ({unit})": _round(r["cost"], 1 if unit == "hours" else 0),
                "predicted SLU-F1 (points)": round(100 * r["predicted_score"], 2),
                "scheme to train": r["scheme"],
            }
        )
    table = pd.DataFrame(rows)
    summary = (
        f"### Budget {budget:,g} {unit}, objective: {objective}\n"
        f"Spent **{alloc.spent:,.1f} {unit}**; predicted SLU-F1 mean **{100 * alloc.mean_score:.1f}**, "
        f"worst language **{100 * alloc.worst_score:.1f}** points."
    )
    if alloc.notes:
        summary += "\n\n" + "\n".join(f"- {n}" for n in alloc.notes)
    fig = plot_allocation(alloc)
    fig.update_layout(height=400, margin={"t": 70, "b": 40})
    return summary, table, fig, _write_csv(table, "budget-split")
