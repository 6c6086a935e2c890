"""Planner on unfamiliar curves: the LCDB converter, the anchors, the own-slope cap, bands widened for curves unlike
the library, which library calibrated an answer, and refused negative rates. Pure numpy; seconds."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from planner.__main__ import run
from planner.anchors import fit_anchor
from planner.backtest import backtest
from planner.budget import allocate
from planner.cache import clear_memory
from planner.curves import PlannerError, make_curve, read_curves_csv
from planner.lcdb import read_lcdb
from planner.model import (
    OWN_CAP_GRID,
    HyperParams,
    fit_curve,
    group_folds,
    learn_hyper,
    learn_library,
    own_slope,
)
from planner.target import recommend

LCDB_FIXTURE = Path(__file__).parent / "fixtures" / "lcdb"  # real LCDB rows (3 curves x 5 sizes x 3 seeds)
LEVELS = np.array([0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0])


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(tmp_path / "planner-cache"))
    clear_memory()


def loglin(group, name, a, b, size=10000, eps=0.01):
    """A curve exactly log-linear in ln(u + eps): the library's own shape, so its cap should stay off."""
    return make_curve(group, name, LEVELS * size, a + b * np.log(LEVELS + eps), corpus_size=size, language=group)


def flattening(group, name, top=0.8, knee=0.05, size=10000):
    """Rises steeply, then flat from `knee` of the corpus on: a library extrapolation expects gains it never gives."""
    y = top - 0.1 * np.clip(np.log(knee / LEVELS), 0, None) / math.log(knee / LEVELS[0])
    return make_curve(group, name, LEVELS * size, y, corpus_size=size, language=group)


# ---------------------------------------------------------------- LCDB
def test_lcdb_fixture_converts_seeds_to_mean_and_ci():
    curves = read_lcdb(LCDB_FIXTURE)
    assert len(curves) == 3
    by_name = {c.name: c for c in curves}
    svc = by_name["lcdb/openml-3/SVC_linear"]
    assert svc.group == "openml-3" and svc.language == "kr-vs-kp" and svc.scheme == "SVC_linear"
    assert svc.x.tolist() == [16, 23, 32, 45, 64] and svc.corpus_size == 64 and svc.unit == "utterances"
    rows = list(csv.DictReader((LCDB_FIXTURE / "database-accuracy.csv").open()))
    at16 = [
        float(r["score_test"])
        for r in rows
        if r["openmlid"] == "3" and r["learner"] == "SVC_linear" and r["size_train"] == "16"
    ]
    assert len(at16) == 3 and svc.n_seeds[0] == 3
    assert svc.score[0] == pytest.approx(np.mean(at16))
    half = 4.302652729911275 * np.std(at16, ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert svc.ci95[0] == pytest.approx(half)
    assert "lcdb/openml-6/DecisionTreeClassifier" in by_name  # the sklearn module path is dropped


def test_lcdb_sample_is_seeded_and_sized():
    a = [c.name for c in read_lcdb(LCDB_FIXTURE, max_curves=2, seed=5)]
    b = [c.name for c in read_lcdb(LCDB_FIXTURE, max_curves=2, seed=5)]
    assert a == b and len(a) == 2
    assert {tuple(c.name for c in read_lcdb(LCDB_FIXTURE, max_curves=1, seed=s)) for s in range(12)} != {tuple(a[:1])}


def test_lcdb_command_writes_a_curves_file(tmp_path, capsys):
    out = tmp_path / "lcdb.csv"
    assert run(["lcdb", "--lcdb-dir", str(LCDB_FIXTURE), "--out", str(out), "--max-curves", "2", "--seed", "1"]) == 0
    back = read_curves_csv(out)
    assert len(back) == 2 and all(c.x.size == 5 for c in back)
    assert "2 curves" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--metric", "logloss"], "--metric must be one of"),
        (["--max-curves", "0"], "--max-curves must be"),
        (["--lcdb-dir", "/nonexistent/lcdb"], "LCDB file not found"),
    ],
)
def test_lcdb_bad_input_is_one_line(args, expect, tmp_path, capsys):
    argv = ["lcdb", "--out", str(tmp_path / "o.csv")] + (
        args if "--lcdb-dir" in args else ["--lcdb-dir", str(LCDB_FIXTURE)] + args
    )
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expect in err and "\n" not in err


def test_lcdb_file_missing_a_column_or_not_utf8(tmp_path):
    (tmp_path / "database-accuracy.csv").write_text("openmlid,learner,size_train\n3,SVC,16\n")
    with pytest.raises(PlannerError, match=r"missing column\(s\)"):
        read_lcdb(tmp_path)
    header = b"openmlid,learner,size_train,outer_seed,inner_seed,score_test\n"
    (tmp_path / "database-accuracy.csv").write_bytes(header + b"3,caf\xe9,16,0,0,0.5\n")
    with pytest.raises(PlannerError, match="not UTF-8"):
        read_lcdb(tmp_path)


# ---------------------------------------------------------------- anchors
def test_anchors_recover_their_own_forms():
    u = np.geomspace(0.01, 1.0, 12)
    pow4 = 0.9 - 0.05 * (u + 0.01) ** -0.4
    f, ok = fit_anchor("pow4", u[:7], pow4[:7])
    assert ok and np.abs(f(u[7:]) - pow4[7:]).max() < 0.01
    mmf4 = (0.3 * 0.05 + 0.9 * u**0.8) / (0.05 + u**0.8)
    f, ok = fit_anchor("mmf4", u[:7], mmf4[:7])
    assert ok and np.abs(f(u[7:]) - mmf4[7:]).max() < 0.01
    f, ok = fit_anchor("last_value", u[:7], mmf4[:7])
    assert ok and np.all(f(u[7:]) == mmf4[6])
    f, ok = fit_anchor("pow4", u[:3], pow4[:3])  # 4 parameters need 4 levels: the last value stands in
    assert not ok and np.all(f(u[7:]) == pow4[2])


def test_a_new_anchor_form_is_one_class_and_one_list_entry(monkeypatch):
    from planner import anchors

    class Line(anchors.Form):
        name = "line"
        n_params = 2

        def __call__(self, p, u):
            return p[0] + p[1] * u

        def starts(self, u, y):
            return [(np.array([0.5, 0.0]), (-2.0, -10.0), (3.0, 10.0))]

    monkeypatch.setattr(anchors, "FORMS", (*anchors.FORMS, Line()))
    u = np.linspace(0.0, 1.0, 6)
    f, ok = fit_anchor("line", u[:4], 0.6 + 0.2 * u[:4])
    assert ok and np.allclose(f(u[4:]), 0.6 + 0.2 * u[4:], atol=1e-6)
    f, ok = fit_anchor("line", u[:1], 0.6 + 0.2 * u[:1])  # fewer levels than parameters: the last value stands in
    assert not ok and np.all(f(u[4:]) == 0.6)
    with pytest.raises(ValueError, match="unknown anchor 'cubic'"):
        fit_anchor("cubic", u, u)


def test_backtest_reports_anchors_fitted_on_the_same_window():
    curves = [loglin(g, f"{g}/s", 0.8 + 0.01 * i, 0.02) for i, g in enumerate("abcd")]
    res = backtest(curves)
    for t in ("10", "25"):
        assert set(res[f"anchor_mae_extrap_{t}"]) == {"last_value", "pow4", "mmf4"}
        assert res[f"best_anchor_{t}"] in res[f"anchor_mae_extrap_{t}"]
    # these curves keep rising: the naive last value is far worse than the planner, whose shape they have
    assert res["anchor_mae_extrap_10"]["last_value"] > 3 * res["mae_extrap_10"]
    assert "anchor_mae_extrap_10" not in backtest(curves, anchors=False)


# ---------------------------------------------------------------- the own-slope cap
def test_flat_recent_levels_allow_no_extrapolated_gain():
    c = flattening("x", "x/s", knee=0.02)
    sub = c.subset(c.u <= 0.16)
    capped = fit_curve(sub, HyperParams(own_cap=1.0))
    free = fit_curve(sub, HyperParams(own_cap=1.0))
    free.own_slope = math.inf  # the same fit without the cap
    assert capped.own_slope == pytest.approx(0.0, abs=1e-9)
    beyond = np.array([0.32, 0.64, 1.0]) * c.corpus_size
    assert np.allclose(capped.predict(beyond), capped.interp.last)
    assert np.all(free.predict(beyond) > capped.predict(beyond) + 1e-3)  # the ensemble alone expects gains


def test_own_slope_reads_the_last_three_levels():
    u = np.array([0.01, 0.02, 0.04, 0.08])
    eps = 0.001
    y = 0.5 + 0.03 * np.log(u + eps)
    assert own_slope(u, y, None, eps) == pytest.approx(0.03)
    assert own_slope(u[:1], y[:1], None, eps) == math.inf  # one level, no text-only point: nothing to judge by
    assert own_slope(u[:1], y[:1], y[0] - 0.02, eps) > 0


def test_cap_is_learned_only_where_the_library_asks_for_it():
    # exactly log-linear: the curve's own recent slope is the true one, the ensemble's is not: the cap is learned
    steady = [loglin(g, f"{g}/s", 0.7 + 0.02 * i, 0.02 + 0.002 * i) for i, g in enumerate("abcdef")]
    assert learn_hyper(steady).own_cap < max(OWN_CAP_GRID)
    # flat from 10% on: the recent levels still rise steeply, the cap never lowers a prediction, so every cap
    # scores the same and the weakest (off) is kept
    late = [flattening(g, f"{g}/s", top=0.7 + 0.02 * i, knee=0.1) for i, g in enumerate("abcdef")]
    assert learn_hyper(late).own_cap == max(OWN_CAP_GRID)


# ---------------------------------------------------------------- unlike the library: wider bands, a warning
@pytest.fixture(scope="module")
def smooth_library():
    return learn_library(
        [loglin(g, f"{g}/s", 0.75 + 0.01 * i, 0.015 + 0.001 * (i % 3)) for i, g in enumerate("abcdefgh")]
    )


def test_a_curve_unlike_the_library_gets_wider_bands_and_a_warning(smooth_library):
    lib = smooth_library
    like = lib.fit(loglin("z", "z/s", 0.76, 0.016).subset(LEVELS <= 0.16))
    rng = np.random.default_rng(0)
    y = 0.7 + 0.015 * np.log(LEVELS + 0.01) + rng.choice([-0.03, 0.03], LEVELS.size)
    odd = lib.fit(make_curve("q", "q/s", LEVELS * 10000, y, corpus_size=10000).subset(LEVELS <= 0.16))
    assert like.inflation == 1.0 and like.range_warning() == ""
    assert odd.inflation > 1.5 and "outside the range of the library" in odd.range_warning()
    # the odd curve's own evidence (its validation error, its candidates' spread) widens its band; the library-like
    # curve keeps the library's
    w_odd, w_like = (np.subtract(*f.band(10000.0)[::-1])[0] for f in (odd, like))
    assert w_odd > 2 * w_like
    rec = recommend([odd], target=0.9, language="q")
    assert rec.out_of_range and rec.answers[0].band_widening == pytest.approx(odd.inflation)
    assert rec.calibrated_by.startswith("curve library (groups: a, b")


def test_recommend_names_the_library_on_the_command_line(capsys):
    assert run(["recommend", "--language", "en", "--target", "0.75"]) == 0
    assert "calibrated by: the paper's 16 curves" in capsys.readouterr().out


# ---------------------------------------------------------------- folds
def test_group_folds_cover_every_group_once():
    groups = [f"g{i:02d}" for i in range(23)]
    folds = group_folds(groups, 5)
    assert len(folds) == 5 and sorted(g for f in folds for g in f) == groups
    assert group_folds(groups[:4], 5) == [(g,) for g in groups[:4]]  # few groups: leave one out


# ---------------------------------------------------------------- issue 14: negative rates
@pytest.mark.parametrize("flag", ["--avg-seconds", "--cost-per-hour"])
def test_negative_rates_are_refused(flag, capsys):
    assert (
        run(
            [
                "recommend",
                "--language",
                "en",
                "--target",
                "0.75",
                "--avg-seconds",
                "3",
                "--cost-per-hour",
                "60",
                flag,
                "-1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag}") and ">= 0" in err and "\n" not in err
    assert (
        run(
            [
                "allocate",
                "--languages",
                "en,it",
                "--budget",
                "5",
                "--budget-unit",
                "money",
                "--avg-seconds",
                "3",
                "--cost-per-hour",
                "60",
                flag,
                "en=2,it=-4",
            ]
        )
        == 2
    )
    assert "-4" in capsys.readouterr().err


def test_library_functions_refuse_negative_rates(smooth_library):
    fit = smooth_library.fit(loglin("z", "z/s", 0.76, 0.016))
    with pytest.raises(PlannerError, match="--avg-seconds"):
        recommend([fit], target=0.7, avg_seconds=-2.0)
    with pytest.raises(PlannerError, match="--cost-per-hour"):
        allocate({"z": [fit]}, 10, budget_unit="money", avg_seconds=3.0, cost_per_hour=-1.0)
