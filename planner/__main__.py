"""Command line of the annotation-budget planner.

    python -m planner recommend --language en --target 0.75 [--results results.csv | --curves FILE] [--json]
    python -m planner allocate --languages en,it,fr --budget 3000 [--budget-unit utterances|hours|money] [--json]
    python -m planner backtest --curves FILE [--library FILE] [--json]      (or --reference)
    python -m planner curves --reference --out reference_curves.csv
    python -m planner lcdb --out lcdb_curves.csv [--max-curves N --seed S]   (needs: pip install --no-deps lcdb)

Curves come from the user's results table (--results), a generic curves CSV (--curves) or, by default, the paper's
shipped curves (--reference). Hyper-parameters are learned leave-one-group-out on --library if given, else on the
shipped reference curves plus the input curves. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.cli import run_cli
from planner.backtest import backtest
from planner.budget import OBJECTIVES, allocate
from planner.curves import (
    Curve,
    PlannerError,
    curves_to_csv,
    read_curves_csv,
    read_results_curves,
    reference_curves,
    write_curves_csv,
)
from planner.cache import cached_library
from planner.model import Library
from planner.target import check_rates, recommend


def _help(text: str, default: Any = None) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class SourceConfig:
    curves: str = _help("generic curves CSV (group, curve, x, score[, ci95, n_seeds, unit, corpus_size])", "")
    results: str = _help("results table CSV written by training/sweeps", "")
    reference: bool = _help("use the paper's shipped curves (the default when no other source is given)", False)
    library: str = _help("curves CSV to learn hyper-parameters on (default: reference curves + the input)", "")
    metric: str = _help("results-table metric to plan on", "slu_f1")
    split: str = _help("results-table split (default: test if present)", "")
    json: bool = _help("print JSON instead of tables", False)

    def __post_init__(self):
        if sum(bool(v) for v in (self.curves, self.results, self.reference)) > 1:
            raise PlannerError("give only one of --curves, --results, --reference")


@dataclass
class RecommendConfig(SourceConfig):
    language: str = _help("language (or group) to plan for, e.g. en, it, fr, de", "")
    target: float = _help("target score in [0, 1], or a share of the full-corpus score with --share", 0.0)
    share: bool = _help("read --target as a share of the best full-corpus score (e.g. 0.98)", False)
    risk: float = _help("accepted chance of missing the target with the safe amount", 0.1)
    avg_seconds: float = _help("average utterance duration in seconds (for hours)", None)
    cost_per_hour: float = _help("cost per hour of recorded and annotated speech (for money)", None)
    plot: str = _help("write the curve figure to this HTML file", "")

    def __post_init__(self):
        super().__post_init__()
        if not self.language:
            raise PlannerError("--language is required (e.g. --language en)")
        if self.target <= 0:
            raise PlannerError("--target is required: a score in (0, 1], e.g. --target 0.75")
        check_rates(self.avg_seconds, self.cost_per_hour)


@dataclass
class AllocateConfig(SourceConfig):
    languages: str = _help("comma-separated languages (or groups) to split the budget over", "")
    budget: float = _help("total budget, in --budget-unit", None)
    budget_unit: str = _help("utterances, hours or money", "utterances")
    avg_seconds: str = _help("average utterance seconds: one number, or per language en=3.2,it=4.1", "")
    cost_per_hour: str = _help("cost per hour: one number, or per language en=40,it=55", "")
    objective: str = _help("mean or worst (maximise the worst language)", "mean")
    plot: str = _help("write the budget figure to this HTML file", "")

    def __post_init__(self):
        super().__post_init__()
        if not self.languages:
            raise PlannerError("--languages is required, e.g. --languages en,it,fr")
        if self.budget is None or not math.isfinite(self.budget) or self.budget < 0:
            raise PlannerError(f"--budget must be a number >= 0, got {self.budget}")
        if self.objective not in OBJECTIVES:
            raise PlannerError(f"--objective must be one of {OBJECTIVES}")
        if self.budget_unit not in ("utterances", "hours", "money"):
            raise PlannerError("--budget-unit must be utterances, hours or money")


@dataclass
class BacktestConfig(SourceConfig):
    plot: str = _help("write the predicted-versus-measured figure to this HTML file", "")
    folds: int = _help("hold the groups out in this many folds instead of one at a time (large libraries)", 0)
    no_anchors: bool = _help("skip the pow4/mmf4/last-value anchors (they take ~0.1 s a curve)", False)

    def __post_init__(self):
        super().__post_init__()
        if self.folds < 0 or self.folds == 1:
            raise PlannerError(f"--folds must be 0 (leave one group out) or >= 2, got {self.folds}")


@dataclass
class CurvesConfig(SourceConfig):
    out: str = _help("write the curves CSV here (default: stdout)", "")


@dataclass
class LcdbConfig:
    out: str = _help("write the curves CSV here (required)", "")
    lcdb_dir: str = _help("folder holding LCDB's database-<metric>.csv (default: the installed lcdb package)", "")
    metric: str = _help("LCDB metric: accuracy, f1 or auc", "accuracy")
    split: str = _help("LCDB score column: test, valid or train", "test")
    max_curves: int = _help("keep a seeded random sample of this many (data set, learner) curves", None)
    seed: int = _help("seed of the sample", 0)

    def __post_init__(self):
        if not self.out:
            raise PlannerError("--out is required: the curves CSV to write, e.g. --out lcdb_curves.csv")


# ---------------------------------------------------------------- library calls
def load_input(cfg: SourceConfig) -> list[Curve]:
    if cfg.results:
        return read_results_curves(cfg.results, metric=cfg.metric, split=cfg.split or None)
    if cfg.curves:
        return read_curves_csv(cfg.curves)
    return reference_curves(cfg.metric)


def load_library(cfg: SourceConfig, curves: list[Curve]) -> Library:
    if cfg.library:
        lib_curves = read_curves_csv(cfg.library)
        return dataclasses.replace(cached_library(lib_curves), name=f"{cfg.library} ({len(lib_curves)} curves)")
    ref = reference_curves()
    pool = {c.name: c for c in ref}
    pool.update({c.name: c for c in curves})
    own = len(pool) - len(ref)
    name = f"the paper's {len(ref)} curves" + (f" + {own} of yours" if own else "")
    return dataclasses.replace(cached_library(list(pool.values())), name=name)


def select(curves: list[Curve], language: str) -> list[Curve]:
    chosen = [c for c in curves if language in (c.language, c.group)]
    if not chosen:
        known = sorted({c.language or c.group for c in curves} | {c.group for c in curves})
        raise PlannerError(f"unknown language {language!r}; the curves have: {', '.join(known)}")
    fittable = [c for c in chosen if c.x.size >= 2 and np.any(c.x > 0)]
    if not fittable:
        raise PlannerError(
            f"{language}: every curve has fewer than two levels ({[c.name for c in chosen]}); "
            "measure at least text-only and one speech level"
        )
    return fittable


def _per_language(text: str, flag: str) -> dict[str, float] | float | None:
    if not text:
        return None
    try:
        if "=" not in text:
            return float(text)
        return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in text.split(","))}
    except ValueError:
        raise PlannerError(f"{flag}: expected a number or lang=number pairs, got {text!r}") from None


def _write_html(path: str, fig) -> None:
    from data.textio import atomic_write_text

    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))


def _fmt(v: Any, nd: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def main_recommend(cfg: RecommendConfig) -> dict:
    curves = load_input(cfg)
    chosen = select(curves, cfg.language)
    lib = load_library(cfg, curves)
    fits = [lib.fit(c) for c in chosen]
    rec = recommend(
        fits,
        target=cfg.target,
        share=cfg.share,
        risk=cfg.risk,
        avg_seconds=cfg.avg_seconds,
        cost_per_hour=cfg.cost_per_hour,
        language=cfg.language,
    )
    out = rec.to_dict()
    out["library"] = {
        "name": lib.describe(),
        "groups": list(lib.groups),
        "hyper": lib.hyper.to_dict(),
        "notes": list(lib.notes),
    }
    if cfg.plot:
        from planner.plots import plot_curves

        _write_html(cfg.plot, plot_curves(fits, rec))
    if cfg.json:
        print(json.dumps(out, indent=2, default=float))
        return out
    print(
        f"{cfg.language}: target SLU-F1 {100 * rec.target:.2f}  (safe = reached with probability ~{1 - rec.risk:.0%})"
    )
    head = (
        f"{'curve':32} {'status':20} {'expected':>10} {'safe':>10} {'unit':>18} {'hours':>8} {'money':>10}"
        f" {'P(reach|corpus)':>16} {'score@corpus':>12}"
    )
    print(head)
    for a in rec.answers:
        print(
            f"{a.curve:32} {a.status:20} {_fmt(a.expected['amount']):>10} {_fmt(a.safe['amount']):>10} "
            f"{a.expected['unit']:>18} {_fmt(a.expected['hours'], 1):>8} {_fmt(a.expected['money']):>10} "
            f"{a.p_reach_corpus:>16.2f} {100 * a.score_at_corpus:>12.2f}"
        )
    print(
        f"recommended: {rec.status}; scheme {rec.best_scheme or '-'} (best at that amount: "
        f"{rec.scheme_at_amount or '-'}); expected {_fmt(rec.best_expected['amount'])}, "
        f"safe {_fmt(rec.best_safe['amount'])} {rec.best_expected['unit']}"
    )
    print(f"calibrated by: {rec.calibrated_by}")
    for warning in rec.out_of_range:
        print(f"warning: {warning}")
    for note in rec.notes + [w for a in rec.answers for w in a.warnings] + list(lib.notes):
        print(f"note: {note}")
    return out


def main_allocate(cfg: AllocateConfig) -> dict:
    curves = load_input(cfg)
    langs = [s.strip() for s in cfg.languages.split(",") if s.strip()]
    if len(set(langs)) != len(langs):
        raise PlannerError(f"--languages lists a language twice: {langs}")
    chosen = {lang: select(curves, lang) for lang in langs}
    lib = load_library(cfg, curves)
    fits = {lang: [lib.fit(c) for c in cs] for lang, cs in chosen.items()}
    alloc = allocate(
        fits,
        cfg.budget,
        budget_unit=cfg.budget_unit,
        avg_seconds=_per_language(cfg.avg_seconds, "--avg-seconds"),
        cost_per_hour=_per_language(cfg.cost_per_hour, "--cost-per-hour"),
        objective=cfg.objective,
    )
    out = alloc.to_dict()
    out["library"] = {"groups": list(lib.groups), "hyper": lib.hyper.to_dict(), "notes": list(lib.notes)}
    if cfg.plot:
        from planner.plots import plot_allocation

        _write_html(cfg.plot, plot_allocation(alloc))
    if cfg.json:
        print(json.dumps(out, indent=2, default=float))
        return out
    print(
        f"budget {cfg.budget:,g} {cfg.budget_unit}, objective {cfg.objective}: spent {alloc.spent:,.1f}; "
        f"mean {100 * alloc.mean_score:.2f}, worst {100 * alloc.worst_score:.2f}"
    )
    print(f"{'language':10} {'amount':>10} {'unit':>12} {'cost':>12} {'predicted':>10} {'scheme':>12}")
    for r in alloc.choice:
        print(
            f"{r['language']:10} {r['amount']:>10,.0f} {r['unit']:>12} {r['cost']:>12,.4g} "
            f"{100 * r['predicted_score']:>10.2f} {r['scheme']:>12}"
        )
    print("greedy marginal-gain path (gain per unit cost on each language's concave hull):")
    for i, s in enumerate(alloc.steps, 1):
        print(
            f"  {i:2d}. {s['language']:8} {s['from_x']:>8,.0f} -> {s['to_x']:>8,.0f}  cost {s['cost']:>10,.4g}  "
            f"gain {100 * s['gain']:+.2f} pts  ({100 * s['gain_per_cost']:.2e} pts/unit)  spent {s['spent']:,.1f}"
        )
    for note in alloc.notes:
        print(f"note: {note}")
    return out


BACKTEST_KEYS = (
    "mae_extrap_10",
    "mae_extrap_25",
    "mae_at_full_10",
    "mae_at_full_25",
    "bias_10",
    "bias_25",
    "mae_interp_loo",
    "coverage80_10",
    "coverage80_25",
    "width80_10",
    "width80_25",
    "within2x_10",
    "safe_fail_rate_10",
    "safe_overcollect_median_10",
    "safe_answer_rate_10",
    "safe_unreachable_rate_10",
    "n_safe_claims_10",
    "safe_fail_rate_strict_10",
    "safe_overcollect_median_all_10",
    "safe_fail_rate_uncapped_10",
    "safe_overcollect_median_uncapped_10",
    "probe_safe_claim_rate_10",
    "p_reach_target_10",
    "p_reach_probe_10",
    "p_reach_brier_10",
    "allocation_regret",
)


def main_backtest(cfg: BacktestConfig) -> dict:
    curves = load_input(cfg)
    library = read_curves_csv(cfg.library) if cfg.library else None
    res = backtest(curves, library, progress=not cfg.json, anchors=not cfg.no_anchors, max_folds=cfg.folds)
    if cfg.plot:
        from planner.plots import plot_backtest

        _write_html(cfg.plot, plot_backtest(res))
    if cfg.json:
        print(json.dumps(res, indent=2, default=float))
        return res
    print(f"back-test ({res['mode']}): {res['n_curves']} curves in {res['n_groups']} groups; errors in points")
    for k in BACKTEST_KEYS:
        v = res.get(k)
        shown = "-" if v is None else str(v) if isinstance(v, int) else f"{v:.3f}"
        print(f"  {k:38} {shown}")
    for t in ("10", "25"):
        if f"anchor_mae_extrap_{t}" in res:
            shown = ", ".join(f"{a} {v:.3f}" for a, v in res[f"anchor_mae_extrap_{t}"].items())
            print(
                f"  anchors, extrapolation MAE <= {t}%: {shown} (fall-backs to last value: "
                f"{res[f'anchor_fallbacks_{t}']})"
            )
    if res["skipped_curves"]:
        print(f"  skipped (fewer than 3 levels): {', '.join(res['skipped_curves'])}")
    return res


def main_curves(cfg: CurvesConfig) -> str:
    text = curves_to_csv(load_input(cfg))
    if cfg.out:
        from data.textio import atomic_write_text

        atomic_write_text(cfg.out, text)
        print(f"wrote {cfg.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return text


def main_lcdb(cfg: LcdbConfig) -> list[Curve]:
    from planner.lcdb import read_lcdb, summary

    curves = read_lcdb(
        cfg.lcdb_dir or None, metric=cfg.metric, split=cfg.split, max_curves=cfg.max_curves, seed=cfg.seed
    )
    write_curves_csv(cfg.out, curves)
    print(f"wrote {cfg.out}: {summary(curves)}", file=sys.stderr)
    return curves


COMMANDS = {
    "recommend": (RecommendConfig, main_recommend, "how much speech to reach a target score"),
    "allocate": (AllocateConfig, main_allocate, "split a budget across languages"),
    "backtest": (BacktestConfig, main_backtest, "judge the curve model on curves it has not seen"),
    "curves": (CurvesConfig, main_curves, "export curves in the generic CSV format"),
    "lcdb": (LcdbConfig, main_lcdb, "convert the Learning Curve Database (pip install --no-deps lcdb) to curves"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return (
        __doc__.split("\n\n")[0]
        + "\n\ncommands:\n"
        + "\n".join(f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items())
        + "\n\n`python -m planner COMMAND --help` lists a command's options."
    )


def run(argv: list[str]) -> int:
    """Dispatch on the command word; its options go through the project's one CLI helper (data/cli.py): defaults
    live only in the command's dataclass, and bad options or input are one ``error: ...`` line and exit status 2."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"error: unknown command {name!r}{hint}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    cls, fn, help_text = COMMANDS[name]
    return run_cli(fn, cls, PlannerError, argv=argv[1:], prog=f"python -m planner {name}", description=help_text)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
