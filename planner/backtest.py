"""The back-test: how well the planner predicts curves it has not seen.

Leave-one-group-out: each group (a corpus, or a target language) is held out; hyper-parameters and calibration
residuals are learned on the other groups only (`learn_library`), then the held-out group's curves are fitted on
their levels up to 10% (and 25%) of the corpus and judged on the rest. With a separate `library`, everything is
learned on the library once and judged on all the given curves.

Figures (errors in score points = 100 x score):
- mae_extrap_W, mae_at_full_W, bias_W (prediction minus truth), coverage80_W and width80_W of the 80% band;
- mae_interp_loo: leave-one-level-out interpolation inside the measured range;
- for "how much speech for a target" (fit <= 10%): the targets are every held-out measured score of the curve
  (levels above the window), reachable within the corpus by construction; the truth is the first measured level
  reaching the target (targets already reached at 0% are left out and counted in n_targets_text_only_10).
  within2x_10: the expected amount is within a factor 2 of the truth. The safe amount (risk 0.1) is searched
  within the corpus only; where the planner finds none it says so and reports P(reach | whole corpus). Reported
  both ways, nothing dropped silently:
  safe_answer_rate_10 / safe_unreachable_rate_10: share of targets with / without a safe amount in the corpus;
  safe_fail_rate_10, safe_overcollect_median_10: over the targets given a safe amount (the claims), the share
  falling short and the median safe / true amount;
  safe_fail_rate_strict_10: over all targets, counting "no safe amount" as a failure too;
  safe_overcollect_median_all_10: over all targets, "no safe amount" answered with the whole corpus (never short
  here, since every target is reachable, hence the probes below);
  safe_fail_rate_uncapped_10, safe_overcollect_median_uncapped_10: the safe amount searched up to
  SEARCH_LIMIT x the corpus, over all targets (inf where none is found): the quantile's own promise, a miss rate
  of about `risk` per target. Among only the answers within the corpus (safe_fail_rate_10) the miss rate is
  higher than `risk` whenever few targets get one: every miss is an answer, but not every target is.
  probes: per curve, targets 0.5 and 1 point above its best measured score (unreachable within the corpus):
  probe_safe_claim_rate_10 (given a safe amount: a failure), p_reach_probe_10 / p_reach_target_10 (mean
  P(reach | corpus) on probes / on real targets) and p_reach_brier_10 over both;
- points: every held-out level predicted (curve, window, u, truth, pred, 80% band), for `plot_backtest`;
- anchors (`planner.anchors`), each fitted per curve on the same window and judged on the same held-out levels:
  anchor_mae_extrap_W / anchor_bias_W, {anchor: figure}, for the naive last value, pow4 and mmf4;
  anchor_fallbacks_W: cases where a 4-parameter form could not be fitted (fewer than 4 levels, or no
  convergence) and the last value stood in; best_anchor_W: the anchor with the smallest MAE;
- library_* : what calibrated the answers (the library's groups, its learned hyper-parameters);
- allocation_regret: mean points of mean score lost against the oracle split (DP on the measured scores), for the
  groups sharing one per-language unit, six budgets, curves fitted on <= 10%.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from planner.anchors import ANCHORS, fit_anchor
from planner.budget import Option, solve
from planner.curves import Curve, PlannerError
from planner.model import (
    WINDOWS,
    Library,
    extrapolation_cases,
    fit_curve,
    group_folds,
    in_window,
    interp_residuals,
    learn_library,
)
from planner.target import SEARCH_LIMIT, expected_amount, safe_amount

BUDGET_SHARES = (0.03, 0.06, 0.1, 0.2, 0.35, 0.6)  # of the cost of every group's full corpus
RISK = 0.1
PROBE_POINTS = (0.005, 0.01)  # unreachable targets: this far above a curve's best measured score


def window_tag(w: float) -> str:
    """The suffix of a window's figures: 0.10 -> "10" (mae_extrap_10)."""
    return f"{round(w * 100):d}"


@dataclass
class _Fold:
    library: Library
    curves: list[Curve]


def _folds(curves: Sequence[Curve], library: Sequence[Curve] | None, progress: bool, max_folds: int = 0) -> list[_Fold]:
    if library is not None:
        return [_Fold(learn_library(library), list(curves))]
    groups = sorted({c.group for c in curves})
    if len(groups) < 2:
        raise PlannerError(
            f"leave-one-group-out needs at least 2 groups, got {groups}; add curves from another "
            "corpus or language, or pass --library"
        )
    folds = group_folds(groups, max_folds) if max_folds >= 2 else [(g,) for g in groups]
    return [
        _Fold(learn_library([c for c in curves if c.group not in f]), [c for c in curves if c.group in f])
        for f in tqdm(folds, desc="back-test folds", disable=not progress)
    ]


def _true_need(curve: Curve, target: float) -> float:
    hit = np.nonzero(curve.score >= target - 1e-12)[0]
    return float(curve.x[hit[0]]) if hit.size else math.inf


def _allocation_regret(folds: Sequence[_Fold], window: float) -> dict:
    """Regret of DP on predicted curves (fitted on <= window) against DP on the measured scores."""
    fits, truth = defaultdict(list), defaultdict(list)
    for fold in folds:
        for c in fold.curves:
            if not c.allocatable or c.x.size < 3 or not c.has_zero:
                continue
            sub = c.subset(in_window(c.u, window))
            if sub.x.size < 2:
                continue
            fits[(c.unit, c.group)].append(fit_curve(sub, fold.library.hyper))
            truth[(c.unit, c.group)].append(c)
    by_unit = defaultdict(list)
    for unit, group in fits:
        by_unit[unit].append(group)
    out = {}
    for unit, groups in by_unit.items():
        if len(groups) < 2:
            continue
        pred_opts, true_opts = {}, {}
        for g in groups:
            levels = sorted(set.intersection(*[set(c.x.tolist()) for c in truth[(unit, g)]]))
            p, t = [], []
            for x in levels:
                preds = {c.name: float(f.predict(x)[0]) for f, c in zip(fits[(unit, g)], truth[(unit, g)])}
                trues = {c.name: float(c.score[c.x == x][0]) for c in truth[(unit, g)]}
                pick = max(preds, key=preds.get)
                # the planner's option carries its predicted score; its true value is the measured score
                p.append((Option(g, x, x, preds[pick], pick), trues[pick]))
                best = max(trues, key=trues.get)
                t.append(Option(g, x, x, trues[best], best))
            pred_opts[g], true_opts[g] = p, t
        total = sum(max(c.x.max() for c in truth[(unit, g)]) for g in groups)
        regrets = []
        for share in BUDGET_SHARES:
            budget = share * total
            oracle = solve(true_opts, budget)
            chosen = solve({g: [o for o, _ in v] for g, v in pred_opts.items()}, budget)
            true_of = {(o.language, o.x): tv for g, v in pred_opts.items() for o, tv in v}
            got = np.mean([true_of[(o.language, o.x)] for o in chosen])
            regrets.append(100 * (np.mean([o.score for o in oracle]) - got))
        out[unit] = float(np.mean(regrets))
    return out


@dataclass
class _WindowTally:
    """What one fit window's cases add up to: the planner's errors and bands, and each anchor's errors."""

    errors: list = field(default_factory=list)  # prediction - truth, points, every held-out level
    at_full: list = field(default_factory=list)  # |error| at the curve's largest level
    covered: list = field(default_factory=list)  # truth inside the 80% band
    widths: list = field(default_factory=list)  # width of the 80% band, points
    anchor_errors: dict = field(default_factory=lambda: {a: [] for a in ANCHORS})
    anchor_fallbacks: dict = field(default_factory=lambda: {a: 0 for a in ANCHORS})


@dataclass
class _TargetTally:
    """The "how much speech for a target" figures of the first window: real targets and unreachable probes."""

    within: list = field(default_factory=list)  # expected amount within 2x of the true need
    answered: list = field(default_factory=list)  # a safe amount exists within the corpus
    fails: list = field(default_factory=list)  # over answered targets: the safe amount falls short
    over: list = field(default_factory=list)  # over answered targets: safe / true amount
    over_all: list = field(default_factory=list)  # over all targets, "no safe amount" answered with the corpus
    fails_uncapped: list = field(default_factory=list)  # safe amount searched up to SEARCH_LIMIT x the corpus
    over_uncapped: list = field(default_factory=list)
    text_only: int = 0  # targets already reached at 0%
    probe_claims: list = field(default_factory=list)  # a safe amount claimed for an unreachable probe
    p_target: list = field(default_factory=list)  # P(reach | corpus) on real targets
    p_probe: list = field(default_factory=list)  # P(reach | corpus) on probes


def _judge_case(c: Curve, case, fit, tally: _WindowTally, anchors: bool) -> tuple[np.ndarray, list[dict]]:
    """The planner's (and the anchors') predictions of one case's held-out levels, added to `tally`; returns the
    planner's errors (points) and the predicted points for plots."""
    xs = case.u_eval * c.corpus_size
    pred = fit.predict(xs)
    lo, hi = fit.band(xs, 0.8)
    err = (pred - case.y_eval) * 100
    tally.errors.extend(err)
    tally.at_full.append(abs(err[-1]))
    tally.covered.extend((case.y_eval >= lo) & (case.y_eval <= hi))
    tally.widths.extend((hi - lo) * 100)
    for name in ANCHORS if anchors else ():
        f, fitted = fit_anchor(name, case.u_fit, case.y_fit)
        tally.anchor_errors[name].extend((f(case.u_eval) - case.y_eval) * 100)
        tally.anchor_fallbacks[name] += not fitted
    points = [
        {
            "curve": c.name,
            "group": c.group,
            "window": case.window,
            "u": float(u),
            "truth": float(y),
            "pred": float(p),
            "lo80": float(a),
            "hi80": float(b),
        }
        for u, y, p, a, b in zip(case.u_eval, case.y_eval, pred, lo, hi)
    ]
    return err, points


def _judge_targets(c: Curve, case, fit, risk: float, tally: _TargetTally) -> None:
    """Every held-out measured score of the case as a target, and the probes above the curve's best score."""
    size = c.corpus_size
    for target in case.y_eval:
        need = _true_need(c, target)
        if need == 0:
            tally.text_only += 1
            continue
        est = expected_amount(fit, target)
        safe = safe_amount(fit, target, risk)
        tally.within.append(need / 2 <= est <= need * 2)
        tally.p_target.append(fit.prob_reach(size, target))
        tally.answered.append(math.isfinite(safe))
        if math.isfinite(safe):
            tally.fails.append(safe < need * (1 - 1e-9))
            tally.over.append(safe / need)
        tally.over_all.append((safe if math.isfinite(safe) else size) / need)
        unc = safe if math.isfinite(safe) else safe_amount(fit, target, risk, SEARCH_LIMIT * size)
        tally.fails_uncapped.append(unc < need * (1 - 1e-9))
        tally.over_uncapped.append(unc / need)
    for delta in PROBE_POINTS:
        probe = float(c.score.max()) + delta
        if probe > 1:
            continue
        tally.probe_claims.append(math.isfinite(safe_amount(fit, probe, risk)))
        tally.p_probe.append(fit.prob_reach(size, probe))


def _window_figures(t: str, tally: _WindowTally, anchors: bool) -> dict:
    e = np.array(tally.errors)
    out = {
        f"mae_extrap_{t}": float(np.mean(np.abs(e))) if e.size else None,
        f"mae_at_full_{t}": float(np.mean(tally.at_full)) if tally.at_full else None,
        f"bias_{t}": float(np.mean(e)) if e.size else None,
        f"coverage80_{t}": float(np.mean(tally.covered)) if tally.covered else None,
        f"width80_{t}": float(np.mean(tally.widths)) if tally.widths else None,
        f"n_points_{t}": int(e.size),
    }
    if anchors and e.size:
        mae = {a: float(np.mean(np.abs(v))) for a, v in tally.anchor_errors.items()}
        out[f"anchor_mae_extrap_{t}"] = mae
        out[f"anchor_bias_{t}"] = {a: float(np.mean(v)) for a, v in tally.anchor_errors.items()}
        out[f"anchor_fallbacks_{t}"] = {a: n for a, n in tally.anchor_fallbacks.items() if a != "last_value"}
        out[f"best_anchor_{t}"] = min(mae, key=mae.get)
    return out


def _target_figures(t: str, tally: _TargetTally) -> dict:
    g = tally
    n_claims = len(g.fails) + sum(g.probe_claims)
    brier = [(1 - p) ** 2 for p in g.p_target] + [p**2 for p in g.p_probe]
    return {
        f"within2x_{t}": float(np.mean(g.within)) if g.within else None,
        f"safe_fail_rate_{t}": (sum(g.fails) + sum(g.probe_claims)) / n_claims if n_claims else None,
        f"safe_overcollect_median_{t}": float(np.median(g.over)) if g.over else None,
        f"safe_answer_rate_{t}": float(np.mean(g.answered)) if g.answered else None,
        f"safe_unreachable_rate_{t}": 1 - float(np.mean(g.answered)) if g.answered else None,
        f"safe_fail_rate_strict_{t}": (
            (sum(g.fails) + g.answered.count(False)) / len(g.answered) if g.answered else None
        ),
        f"safe_overcollect_median_all_{t}": float(np.median(g.over_all)) if g.over_all else None,
        f"safe_fail_rate_uncapped_{t}": float(np.mean(g.fails_uncapped)) if g.fails_uncapped else None,
        f"safe_overcollect_median_uncapped_{t}": float(np.median(g.over_uncapped)) if g.over_uncapped else None,
        f"n_safe_claims_{t}": n_claims,
        f"probe_safe_claim_rate_{t}": float(np.mean(g.probe_claims)) if g.probe_claims else None,
        f"p_reach_target_{t}": float(np.mean(g.p_target)) if g.p_target else None,
        f"p_reach_probe_{t}": float(np.mean(g.p_probe)) if g.p_probe else None,
        f"p_reach_brier_{t}": float(np.mean(brier)) if brier else None,
        f"n_targets_{t}": len(g.within),
        f"n_probes_{t}": len(g.probe_claims),
        f"n_targets_text_only_{t}": g.text_only,
    }


def backtest(
    curves: Sequence[Curve],
    library: Sequence[Curve] | None = None,
    *,
    windows: Sequence[float] = WINDOWS,
    risk: float = RISK,
    progress: bool = False,
    anchors: bool = True,
    max_folds: int = 0,
) -> dict:
    """Run the back-test; returns the figures as a flat dict (errors in points), plus per-curve details."""
    usable = [c for c in curves if c.x.size >= 3 and np.any(c.x > 0)]
    skipped = sorted(c.name for c in curves if c not in usable)
    if not usable:
        raise PlannerError("no curve has 3 or more levels with speech; nothing to back-test")
    folds = _folds(usable, library, progress, max_folds)
    res: dict = {
        "n_curves": len(usable),
        "n_groups": len({c.group for c in usable}),
        "skipped_curves": skipped,
        "mode": "library" if library is not None else "leave-one-group-out",
    }
    tallies = {w: _WindowTally() for w in windows}
    targets = _TargetTally()
    interp, points = [], []
    per_curve = defaultdict(dict)
    first = min(windows)
    for fold in folds:
        lib = fold.library
        for c in fold.curves:
            interp.extend(np.abs(interp_residuals(c, lib.hyper)) * 100)
            for case in extrapolation_cases([c], windows):
                fit = fit_curve(c.subset(in_window(c.u, case.window)), lib.hyper, lib.calibration)
                err, case_points = _judge_case(c, case, fit, tallies[case.window], anchors)
                per_curve[c.name][f"mae_extrap_{window_tag(case.window)}"] = float(np.mean(np.abs(err)))
                points.extend(case_points)
                if case.window == first:
                    _judge_targets(c, case, fit, risk, targets)
    for w in windows:
        res.update(_window_figures(window_tag(w), tallies[w], anchors))
    res["mae_interp_loo"] = float(np.mean(interp)) if interp else None
    res.update(_target_figures(window_tag(first), targets))
    regret = _allocation_regret(folds, first)
    res["allocation_regret"] = float(np.mean(list(regret.values()))) if regret else None
    res["allocation_regret_by_unit"] = regret
    res["hyper"] = [f.library.hyper.to_dict() for f in folds]
    res["per_curve"] = dict(per_curve)
    res["points"] = points  # every held-out prediction, for plots (planner.plots.plot_backtest)
    return res
