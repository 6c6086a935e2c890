"""The Learning Curve Database (LCDB; Mohr, Viering, Loog and van Rijn, 2022) as planner curves.

LCDB measured 20 scikit-learn learners on 246 OpenML classification data sets at training-set sizes (its
"anchors") growing by a factor sqrt(2) from 16 up to the whole training split, each with 5 outer x 5 inner seeds
(train/validation/test splits). The `lcdb` package on PyPI (0.1.0) ships every curve as CSV files inside the
package: ``database-accuracy.csv`` (and ``-f1``, ``-auc``, ``-logloss``), with columns
``openmlid, learner, size_train, size_test, outer_seed, inner_seed, traintime, score_train, score_valid,
score_test``, and ``datasets.csv`` (``openmlid, Name, ...``: the data sets' names). Importing the package itself
needs openml and func_timeout (not among its declared requirements), so this module never imports it: it finds the
package folder (`importlib.util.find_spec` does not run the package) and reads the CSV with pandas.

Conversion into the generic curves format (`planner.curves`):
- one curve per (data set, learner); ``group`` = the data set (``openml-<id>``: a back-test holds a data set out
  with all its learners), ``language`` = the data set's name, ``scheme`` = the learner's short name;
- ``x`` = training-set size in instances, written with unit ``utterances`` (one labelled example counts as one
  labelled utterance), ``corpus_size`` = the curve's largest anchor (its whole training split);
- ``score`` = the mean test score over the seeds at that size, ``ci95`` = the t-distribution 95% half-width,
  ``n_seeds`` = the number of seeds. There is no text-only (x = 0) level: LCDB starts at 16 examples.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.special import stdtrit

from planner.curves import Curve, PlannerError, make_curve

METRICS = ("accuracy", "f1", "auc")  # scores in [0, 1]; LCDB's logloss is not a score the planner can plan on
SPLITS = ("test", "valid", "train")
NEEDED = ("openmlid", "learner", "size_train", "outer_seed", "inner_seed")
INSTALL_HINT = (
    "pip install --no-deps lcdb (PyPI, 68 MB: the package ships the curves; --no-deps because only its "
    "CSV files are read), or pass --lcdb-dir FOLDER holding database-<metric>.csv"
)


def lcdb_folder() -> Path:
    """The installed `lcdb` package's folder (where its CSV files are), without importing the package."""
    spec = importlib.util.find_spec("lcdb")
    if spec is None or not spec.submodule_search_locations:
        raise PlannerError(f"the lcdb package is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def short_learner(name: str) -> str:
    """``sklearn.linear_model.Perceptron`` -> ``Perceptron``; ``SVC_rbf`` stays."""
    return name.rsplit(".", 1)[-1]


def _read(path: Path, columns: Sequence[str] | None = None):
    import pandas as pd  # only this command needs it

    if not path.is_file():
        raise PlannerError(f"LCDB file not found: {path}; {INSTALL_HINT}")
    try:
        head = pd.read_csv(path, nrows=0, encoding="utf-8")
        missing = [c for c in (columns or ()) if c not in head.columns]
        if missing:
            raise PlannerError(
                f"{path}: missing column(s) {missing}; an LCDB database file has "
                "openmlid, learner, size_train, outer_seed, inner_seed, score_<split>"
            )
        return pd.read_csv(path, usecols=list(columns) if columns else None, encoding="utf-8")
    except PlannerError:
        raise
    except UnicodeDecodeError as exc:
        raise PlannerError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); give LCDB's CSV file") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise PlannerError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None


def dataset_names(folder: Path) -> dict[int, str]:
    """openmlid -> data set name from ``datasets.csv``; empty when the file is absent."""
    path = folder / "datasets.csv"
    if not path.is_file():
        return {}
    df = _read(path, ("openmlid", "Name"))
    return {int(i): str(n) for i, n in zip(df["openmlid"], df["Name"])}


def read_lcdb(
    folder: str | Path | None = None,
    *,
    metric: str = "accuracy",
    split: str = "test",
    max_curves: int | None = None,
    seed: int = 0,
    min_levels: int = 3,
) -> list[Curve]:
    """LCDB's curves as planner curves (see the module doc); a seeded random sample of `max_curves` of them.

    Curves with fewer than `min_levels` sizes are left out (nothing to fit and judge). The sample is drawn over
    (data set, learner) pairs with `numpy.random.default_rng(seed)`, so the same seed gives the same curves.
    """
    if metric not in METRICS:
        raise PlannerError(f"--metric must be one of {METRICS} for LCDB (scores in [0, 1]), got {metric!r}")
    if split not in SPLITS:
        raise PlannerError(f"--split must be one of {SPLITS} for LCDB, got {split!r}")
    if max_curves is not None and max_curves < 1:
        raise PlannerError(f"--max-curves must be a whole number >= 1, got {max_curves}")
    folder = Path(folder) if folder else lcdb_folder()
    score_col = f"score_{split}"
    df = _read(folder / f"database-{metric}.csv", NEEDED + (score_col,))
    names = dataset_names(folder)
    df = df[np.isfinite(df[score_col].to_numpy(dtype=float))].drop_duplicates(subset=list(NEEDED))  # one row a seed
    if df.empty:
        raise PlannerError(f"{folder / f'database-{metric}.csv'}: no rows with a {score_col}")
    scores = df[score_col].to_numpy(dtype=float)
    if np.any((scores < 0) | (scores > 1)):
        raise PlannerError(f"{folder}: {score_col} outside [0, 1]; only {METRICS} can be planned on")
    pairs = sorted({(int(i), str(lr)) for i, lr in zip(df["openmlid"], df["learner"])})
    if max_curves is not None and max_curves < len(pairs):
        pick = np.random.default_rng(seed).choice(len(pairs), size=max_curves, replace=False)
        pairs = [pairs[i] for i in sorted(pick)]
    keep = set(pairs)
    key = list(zip(df["openmlid"].astype(int), df["learner"].astype(str)))
    df = df[[k in keep for k in key]]
    stats = df.groupby(["openmlid", "learner", "size_train"])[score_col].agg(["mean", "std", "count"]).reset_index()
    curves = []
    for (oid, learner), rows in stats.groupby(["openmlid", "learner"], sort=True):
        if len(rows) < min_levels:
            continue
        n = rows["count"].to_numpy(dtype=float)
        sd = rows["std"].to_numpy(dtype=float)
        ci = np.full(n.shape, np.nan)
        ok = n >= 2
        ci[ok] = stdtrit(n[ok] - 1, 0.975) * sd[ok] / np.sqrt(n[ok])
        name = names.get(int(oid), "")
        group = f"openml-{int(oid)}"
        curves.append(
            make_curve(
                group,
                f"lcdb/{group}/{short_learner(str(learner))}",
                rows["size_train"].to_numpy(dtype=float),
                rows["mean"].to_numpy(dtype=float),
                ci,
                n,
                unit="utterances",
                corpus_size=float(rows["size_train"].max()),
                language=name or group,
                scheme=short_learner(str(learner)),
            )
        )
    if not curves:
        raise PlannerError(f"{folder}: no LCDB curve with {min_levels} or more sizes")
    return curves


def summary(curves: Sequence[Curve]) -> str:
    """One line: how many curves, data sets and learners, and the sizes' range."""
    levels = [c.x.size for c in curves]
    return (
        f"{len(curves)} curves, {len({c.group for c in curves})} data sets, "
        f"{len({c.scheme for c in curves})} learners, {min(levels)}-{max(levels)} sizes per curve, "
        f"median {int(np.median(levels))}; seeds per size: median "
        f"{int(np.median([np.median(c.n_seeds) for c in curves]))}"
    )
