"""Learning curves (SLU-F1 versus amount of paired speech): the one type the planner works on, and its three sources.

A `Curve` is one scheme on one corpus/language: a score per speech level, with the 95% CI over seeds when known.
Sources:
- `reference_curves()`: the paper's measured curves, shipped in ``planner/reference`` (Choi et al., MAUM AI,
  Tables 1-3). Table 2 gives 6 curves (SLURP, ITALIC, Speech-MASSIVE FR x direct, curriculum; the 0% text-only
  point is shared by both schemes). Table 3 gives 10 curves (5 target languages x recipes T, T+S) whose x axis is
  the amount of *source-language (French) speech*, shared by every target language: those curves say how source
  speech helps a target language, not how much target speech to record, so their unit is ``source_utterances``
  and the budget split never allocates over them.
- `curves_from_results(rows)`: the user's results table (``evaluation/results.py``), seeds aggregated to a mean and a
  t-distribution 95% CI.
- `read_curves_csv(path)`: a generic file with columns ``group, curve, x, score`` and optional
  ``ci95, n_seeds, unit, corpus_size`` (and ``language, scheme``); `write_curves_csv` writes the same format.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.special import stdtrit  # the t quantile; scipy.stats would cost ~1 s of import per CLI call

from data.subsets import n_for_fraction

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
CURVE_COLUMNS = ("group", "curve", "x", "score", "ci95", "n_seeds", "unit", "corpus_size", "language", "scheme")
REQUIRED_COLUMNS = ("group", "curve", "x", "score")
# x units whose axis is another language's speech: plotted and back-tested, never allocated by the budget split.
SHARED_AXIS_PREFIX = "source_"


class PlannerError(ValueError):
    """Bad input to the planner; the message names the problem and the fix."""


@dataclass(frozen=True)
class Curve:
    """Score per speech level for one scheme; arrays are sorted by x, levels unique."""

    group: str  # the unit a back-test holds out: a corpus, or a target language
    name: str  # unique curve id, e.g. "slurp/en/curriculum"
    x: np.ndarray  # speech amount per level, in `unit`
    score: np.ndarray  # mean score per level, in [0, 1]
    ci95: np.ndarray  # 95% CI half-width per level; NaN where unknown
    n_seeds: np.ndarray  # runs behind each level; 0 where unknown
    unit: str = "utterances"  # unit of x
    corpus_size: float = 0.0  # x of the full corpus (the 100% level)
    language: str = ""
    scheme: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def u(self) -> np.ndarray:
        """Levels as a fraction of the full corpus."""
        return self.x / self.corpus_size

    @property
    def has_zero(self) -> bool:
        return bool(self.x.size and self.x[0] == 0)

    @property
    def allocatable(self) -> bool:
        return not self.unit.startswith(SHARED_AXIS_PREFIX)

    @property
    def seeded(self) -> bool:
        """Whether any level has a seed CI (a mean over runs); False for single runs and unknown noise."""
        return math.isfinite(self.seed_se())

    def seed_se(self) -> float:
        """The curve's measurement noise: median standard error over its levels; NaN without CIs."""
        se = self.std_err()
        return float(np.nanmedian(se)) if np.any(np.isfinite(se)) else math.nan

    def std_err(self) -> np.ndarray:
        """Standard error of each mean: CI half-width / t(0.975, n-1); NaN where unknown."""
        se = np.full(self.x.shape, np.nan)
        ok = np.isfinite(self.ci95) & (self.n_seeds >= 2)
        se[ok] = self.ci95[ok] / stdtrit(self.n_seeds[ok] - 1, 0.975)
        return se

    def subset(self, mask: np.ndarray) -> "Curve":
        return Curve(
            self.group,
            self.name,
            self.x[mask],
            self.score[mask],
            self.ci95[mask],
            self.n_seeds[mask],
            self.unit,
            self.corpus_size,
            self.language,
            self.scheme,
            self.warnings,
        )


def make_curve(
    group: str,
    name: str,
    x: Sequence[float],
    score: Sequence[float],
    ci95: Sequence[float] | None = None,
    n_seeds: Sequence[float] | None = None,
    *,
    unit: str = "utterances",
    corpus_size: float | None = None,
    language: str = "",
    scheme: str = "",
) -> Curve:
    """Validate and build a curve. Raises PlannerError for input that cannot be planned on; flags the rest."""
    x_arr = np.asarray(x, dtype=float)
    y_arr = np.asarray(score, dtype=float)
    n = x_arr.size
    ci = np.full(n, np.nan) if ci95 is None else np.asarray(ci95, dtype=float)
    ns = np.zeros(n) if n_seeds is None else np.nan_to_num(np.asarray(n_seeds, dtype=float), nan=0.0)
    where = f"curve {name!r} (group {group!r})"
    if n == 0:
        raise PlannerError(f"{where} has no points; give at least two speech levels")
    if not (x_arr.shape == y_arr.shape == ci.shape == ns.shape):
        raise PlannerError(f"{where}: x, score, ci95 and n_seeds must have the same length")
    if not np.all(np.isfinite(x_arr)) or np.any(x_arr < 0):
        raise PlannerError(f"{where}: speech amounts x must be finite and >= 0, got {x_arr.tolist()}")
    if not np.all(np.isfinite(y_arr)):
        raise PlannerError(f"{where}: scores must be numbers, got {y_arr.tolist()} (fill or drop the empty levels)")
    if np.any((y_arr < 0) | (y_arr > 1)):
        hint = " (they look like percentages: divide by 100)" if np.all(y_arr <= 100) and np.any(y_arr > 1) else ""
        raise PlannerError(f"{where}: scores must lie in [0, 1], got {sorted(set(y_arr.round(4).tolist()))}{hint}")
    order = np.argsort(x_arr, kind="stable")
    x_arr, y_arr, ci, ns = x_arr[order], y_arr[order], ci[order], ns[order]
    dup = x_arr[1:][np.diff(x_arr) == 0]
    if dup.size:
        raise PlannerError(
            f"{where}: duplicate level(s) x={sorted(set(dup.tolist()))}; give one row per level (average the seeds "
            "and put their 95% CI in ci95, or pass the results table, which aggregates seeds for you)"
        )
    if np.any(ci[np.isfinite(ci)] < 0):
        raise PlannerError(f"{where}: ci95 half-widths must be >= 0")
    size = float(corpus_size) if corpus_size else float(x_arr.max())
    if size <= 0:
        raise PlannerError(f"{where}: needs a level above 0 or a corpus_size; only text-only (x=0) was given")
    if x_arr.max() > size * (1 + 1e-9):
        raise PlannerError(f"{where}: level x={x_arr.max():g} exceeds corpus_size={size:g}")
    warnings = []
    if n < 2:
        warnings.append("one level only: nothing can be fitted; measure at least two levels (e.g. 0% and 5%)")
    pos = x_arr > 0
    if np.any(np.diff(y_arr[pos]) < 0):
        warnings.append("non-monotone scores above 0%: the fit pools the dips (weighted isotonic) as seed noise")
    if not np.any(np.isfinite(ci)):
        warnings.append("no CIs: bands come from the library's held-out residuals only")
    return Curve(group, name, x_arr, y_arr, ci, ns, unit, size, language, scheme, tuple(warnings))


def t_interval(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, 95% t-interval half-width (NaN for one value) and count of a sample of seeds."""
    arr = np.asarray(values, dtype=float)
    n = arr.size
    mean = float(arr.mean())
    if n < 2:
        return mean, float("nan"), n
    half = float(stdtrit(n - 1, 0.975) * arr.std(ddof=1) / math.sqrt(n))
    return mean, half, n


# ---------------------------------------------------------------- the paper's curves
def _read_csv(path: Path) -> list[dict[str, str]]:
    """A CSV through the project's one text reader (data/textio.py): a non-UTF-8 or binary file is one
    PlannerError line naming the file, the line and the byte, never a UnicodeDecodeError traceback."""
    from data.textio import read_text

    return list(csv.DictReader(io.StringIO(read_text(path, PlannerError, what="curves file"), newline="")))


def reference_curves(metric: str = "slu_f1") -> list[Curve]:
    """The paper's 16 learning curves (Tables 2 and 3), x in utterances (Table 1 sizes, N_p = round(p * N))."""
    sizes = {
        (r["corpus"], r["language"]): int(r["n_speech"])
        for r in _read_csv(REFERENCE_DIR / "paper_table1_corpora.csv")
        if r["split"] == "train"
    }
    curves = []
    table2 = [r for r in _read_csv(REFERENCE_DIR / "paper_table2_monolingual.csv") if r["metric"] == metric]
    if not table2:
        raise PlannerError(f"no reference rows for metric {metric!r}; Table 2 has intent_accuracy, entity_f1, slu_f1")
    by_corpus: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in table2:
        by_corpus[(r["dataset"], r["language"])].append(r)
    for (dataset, lang), rows in by_corpus.items():
        size = sizes[(dataset, lang)]
        group = dataset if dataset != "speech-massive" else f"speech-massive-{lang}"
        text = [r for r in rows if r["scheme"] == "text"]
        for scheme in ("direct", "curriculum"):
            pts = text + [r for r in rows if r["scheme"] == scheme]
            curves.append(
                make_curve(
                    group,
                    f"{group}/{lang}/{scheme}",
                    [n_for_fraction(float(r["speech_percent"]) / 100, size) for r in pts],
                    [float(r["mean"]) for r in pts],
                    [float(r["ci95_halfwidth"]) for r in pts],
                    [5] * len(pts),  # Table 2: five seeds per cell
                    unit="utterances",
                    corpus_size=size,
                    language=lang,
                    scheme=scheme,
                )
            )
    if metric == "slu_f1":
        fr_size = sizes[("speech-massive", "fr")]
        table3 = _read_csv(REFERENCE_DIR / "paper_table3_fewshot.csv")
        for recipe in ("T", "T+S"):  # only these have the full source-speech sweep; +M rows have 0% and 100% only
            for lang in sorted({r["target_language"] for r in table3}):
                pts = [
                    r
                    for r in table3
                    if r["target_data"] == recipe
                    and r["target_language"] == lang
                    and r["source_speech_percent"] != "none"
                ]
                curves.append(
                    make_curve(
                        lang,
                        f"fr->{lang}/{recipe}",
                        [n_for_fraction(float(r["source_speech_percent"]) / 100, fr_size) for r in pts],
                        [float(r["slu_f1"]) for r in pts],
                        unit="source_utterances",
                        corpus_size=fr_size,
                        language=lang,
                        scheme=recipe,  # T: text-only target data; T+S: with target speech (curriculum)
                    )
                )
    return curves


# ---------------------------------------------------------------- the user's results table
def curves_from_results(
    rows: Iterable[Mapping[str, Any]], *, metric: str = "slu_f1", split: str | None = None
) -> list[Curve]:
    """Curves from results-table rows: one per (corpus, language, recipe, source, scheme), seeds averaged.

    The text-only (0%) runs of a corpus/language become the 0% point of every speech scheme of it. Oracle rows
    (gold transcripts) are not on the speech axis and are left out. x is ``n_speech`` when recorded, else percent.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise PlannerError("the results table is empty; run a sweep first (python -m training.sweep ...)")
    splits = sorted({r.get("split") or "" for r in rows})
    if split is None:
        split = "test" if "test" in splits else splits[0]
    rows = [r for r in rows if (r.get("split") or "") == split and r.get("scheme") != "oracle"]
    rows = [r for r in rows if r.get(metric) is not None and r.get(metric) != ""]
    if not rows:
        raise PlannerError(f"no rows with {metric!r} on split {split!r}; splits present: {splits}")
    buckets: dict[tuple, dict[str, dict[float, list[dict]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in rows:
        key = (r["corpus"], r["language"], r.get("recipe") or "mono", r.get("source_language") or "")
        pct = float(r["speech_percent"] or 0.0)
        buckets[key]["text" if pct == 0 else r["scheme"]][pct].append(r)
    curves = []
    for (corpus, lang, recipe, source), schemes in sorted(buckets.items()):
        level_rows = [r for levels in schemes.values() for rs in levels.values() for r in rs]
        ratios = [
            float(r["n_speech"]) / (float(r["speech_percent"]) / 100)
            for r in level_rows
            if r.get("n_speech") and float(r["speech_percent"] or 0) > 0
        ]
        size = float(np.median(ratios)) if ratios else 100.0
        unit = "utterances" if ratios else "percent"
        if source:
            unit = SHARED_AXIS_PREFIX + unit
        group = lang if source else f"{corpus}-{lang}"
        zero = schemes.get("text", {}).get(0.0, [])
        speech_schemes = [s for s in schemes if s != "text"] or ["text"]
        for scheme in sorted(speech_schemes):
            levels = dict(schemes[scheme]) if scheme != "text" else {}
            if zero:
                levels[0.0] = zero
            xs, ys, cis, ns = [], [], [], []
            for pct, rs in sorted(levels.items()):
                mean, half, n = t_interval([float(r[metric]) for r in rs])
                n_sp = [float(r["n_speech"]) for r in rs if r.get("n_speech") not in (None, "")]
                xs.append(float(np.mean(n_sp)) if (ratios and n_sp) else (pct / 100 * size))
                ys.append(mean)
                cis.append(half)
                ns.append(n)
            name = "/".join(p for p in (corpus, lang, recipe if recipe != "mono" else "", scheme) if p)
            curves.append(
                make_curve(
                    group,
                    name,
                    xs,
                    ys,
                    cis,
                    ns,
                    unit=unit,
                    corpus_size=max(size, max(xs)),
                    language=lang,
                    scheme=scheme,
                )
            )
    return curves


def read_results_curves(path: str | os.PathLike, *, metric: str = "slu_f1", split: str | None = None) -> list[Curve]:
    from evaluation.results import ResultsError, read_results  # no torch behind it

    try:
        rows = read_results(path)
    except ResultsError as exc:
        raise PlannerError(str(exc)) from None
    return curves_from_results(rows, metric=metric, split=split)


# ---------------------------------------------------------------- the generic curves file
def _num(value: str | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise PlannerError(f"not a number: {value!r}") from None


def read_curves_csv(path: str | os.PathLike) -> list[Curve]:
    path = Path(path)
    if not path.is_file():
        raise PlannerError(f"curves file not found: {path}")
    rows = _read_csv(path)
    header = set(rows[0]) if rows else set()
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise PlannerError(f"{path}: missing column(s) {missing}; the format is {', '.join(CURVE_COLUMNS)}")
    by_curve: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for lineno, r in enumerate(rows, start=2):
        if not r["group"] or not r["curve"]:
            raise PlannerError(f"{path}, line {lineno}: group and curve must not be empty")
        by_curve[(r["group"], r["curve"])].append(r)
    curves = []
    for (group, name), rs in by_curve.items():
        try:
            sizes = {_num(r.get("corpus_size")) for r in rs} - {None}
            units = {r.get("unit") or "" for r in rs} - {""}
            if len(sizes) > 1 or len(units) > 1:
                raise PlannerError(f"curve {name!r}: one corpus_size and one unit per curve, got {sizes} {units}")
            curves.append(
                make_curve(
                    group,
                    name,
                    [_num(r["x"]) for r in rs],
                    [_num(r["score"]) for r in rs],
                    [_num(r.get("ci95")) if _num(r.get("ci95")) is not None else np.nan for r in rs],
                    [_num(r.get("n_seeds")) or 0 for r in rs],
                    unit=units.pop() if units else "utterances",
                    corpus_size=sizes.pop() if sizes else None,
                    language=rs[0].get("language") or group,
                    scheme=rs[0].get("scheme") or "",
                )
            )
        except PlannerError as exc:
            raise PlannerError(f"{path}: {exc}") from None
    if not curves:
        raise PlannerError(f"{path}: no curves in the file")
    return curves


def curves_to_csv(curves: Sequence[Curve]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CURVE_COLUMNS)
    for c in curves:
        for i in range(c.x.size):
            ci = "" if not np.isfinite(c.ci95[i]) else f"{c.ci95[i]:.6g}"
            ns = "" if c.n_seeds[i] <= 0 else str(int(c.n_seeds[i]))
            w.writerow(
                [
                    c.group,
                    c.name,
                    f"{c.x[i]:g}",
                    f"{c.score[i]:.6g}",
                    ci,
                    ns,
                    c.unit,
                    f"{c.corpus_size:g}",
                    c.language,
                    c.scheme,
                ]
            )
    return buf.getvalue()


def write_curves_csv(path: str | os.PathLike, curves: Sequence[Curve]) -> None:
    from data.textio import atomic_write_text

    atomic_write_text(path, curves_to_csv(curves))
