"""Planner: curve sources, curve model, target and budget modes, bad inputs, CLI. Pure numpy; seconds."""

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from planner.__main__ import run
from planner.backtest import backtest
from planner.budget import Option, allocate, greedy_steps, solve
from planner.curves import (
    PlannerError,
    curves_from_results,
    curves_to_csv,
    make_curve,
    read_curves_csv,
    reference_curves,
    write_curves_csv,
)
from planner.cache import cached_library, clear_memory, library_key
from planner.model import Calibration, HyperParams, fit_curve, in_window, learn_library, learn_scale
from planner.plots import plot_allocation, plot_backtest, plot_curves
from planner.target import recommend, safe_amount

LEVELS = np.array([0, 0.02, 0.05, 0.10, 0.25, 0.50, 1.0])


def synthetic(group, name, a, b, eps=0.01, size=10000, noise=0.0, seed=0):
    """A curve that is exactly log-linear in ln(u + eps) (plus optional noise)."""
    rng = np.random.default_rng(seed)
    y = a + b * np.log(LEVELS + eps) + rng.normal(0, noise, LEVELS.size)
    return make_curve(group, name, LEVELS * size, y, corpus_size=size, language=group, scheme=name.split("/")[-1])


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Learned-library cache files go to a per-test folder, never to the user's cache."""
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(tmp_path / "planner-cache"))
    clear_memory()


@pytest.fixture(scope="module")
def reference():
    return reference_curves()


@pytest.fixture(scope="module")
def ref_library(reference):
    return learn_library(reference)


# ---------------------------------------------------------------- sources
def test_reference_curves_shapes(reference):
    assert len(reference) == 16
    per_lang = [c for c in reference if c.unit == "utterances"]
    shared = [c for c in reference if c.unit == "source_utterances"]
    assert len(per_lang) == 6 and len(shared) == 10
    slurp = [c for c in reference if c.group == "slurp"]
    # the 0% text-only point is shared by both schemes; 2% of 50,628 recordings is 1,013 utterances
    assert slurp[0].score[0] == slurp[1].score[0] and slurp[0].x[1] == 1013
    assert all(not c.allocatable for c in shared)


def test_curves_csv_round_trip(reference, tmp_path):
    path = tmp_path / "curves.csv"
    write_curves_csv(path, reference)
    back = read_curves_csv(path)
    assert [c.name for c in back] == [c.name for c in reference]
    for a, b in zip(reference, back):
        np.testing.assert_allclose(a.x, b.x)
        np.testing.assert_allclose(a.score, b.score, atol=1e-6)
        assert np.array_equal(np.isfinite(a.ci95), np.isfinite(b.ci95))
        assert a.unit == b.unit and a.corpus_size == b.corpus_size


def test_results_table_seeds_aggregate_with_t_interval():
    rows = []
    for scheme, pct, n, scores in [
        ("text", 0, 0, [0.70, 0.71, 0.72]),
        ("direct", 10, 100, [0.74, 0.76]),
        ("curriculum", 10, 100, [0.75, 0.77, 0.78]),
        ("oracle", 0, 0, [0.9]),
    ]:
        for seed, s in enumerate(scores):
            rows.append(
                {
                    "corpus": "synth",
                    "language": "en",
                    "scheme": scheme,
                    "speech_percent": pct,
                    "n_speech": n,
                    "seed": seed,
                    "split": "test",
                    "slu_f1": s,
                }
            )
    curves = curves_from_results(rows)
    assert sorted(c.scheme for c in curves) == ["curriculum", "direct"]  # oracle left out
    cur = next(c for c in curves if c.scheme == "curriculum")
    assert cur.x.tolist() == [0, 100] and cur.corpus_size == 1000 and cur.unit == "utterances"
    sample = np.array([0.75, 0.77, 0.78])
    half = stats.t.ppf(0.975, 2) * sample.std(ddof=1) / math.sqrt(3)
    assert cur.score[1] == pytest.approx(sample.mean()) and cur.ci95[1] == pytest.approx(half)
    direct = next(c for c in curves if c.scheme == "direct")
    assert direct.score[0] == cur.score[0] == pytest.approx(0.71)  # text-only shared


# ---------------------------------------------------------------- bad inputs
def test_bad_curves_raise_clear_errors():
    with pytest.raises(PlannerError, match="duplicate level"):
        make_curve("g", "c", [0, 10, 10], [0.5, 0.6, 0.61])
    with pytest.raises(PlannerError, match="divide by 100"):
        make_curve("g", "c", [0, 10], [55.0, 61.0])
    with pytest.raises(PlannerError, match=r"\[0, 1\]"):
        make_curve("g", "c", [0, 10], [-0.1, 0.5])
    with pytest.raises(PlannerError, match="numbers"):
        make_curve("g", "c", [0, 10], [0.5, float("nan")])
    one = make_curve("g", "c", [10], [0.5])
    assert any("one level" in w for w in one.warnings)
    with pytest.raises(PlannerError, match="one level only"):
        fit_curve(one, HyperParams())


def test_non_monotone_and_missing_ci_are_flagged_and_fit_monotone():
    c = make_curve("g", "c", [0, 20, 50, 100, 250, 500, 1000], [0.60, 0.66, 0.65, 0.68, 0.67, 0.70, 0.69])
    assert any("non-monotone" in w for w in c.warnings) and any("no CIs" in w for w in c.warnings)
    fit = fit_curve(c, HyperParams(), Calibration(np.linspace(-0.01, 0.01, 21), np.linspace(-0.005, 0.005, 21)))
    grid = np.geomspace(20, 8000, 300)
    pred = fit.predict(grid)
    assert np.all(np.isfinite(pred)) and np.all(np.diff(pred) >= -1e-12)
    lo, hi = fit.band(grid)
    assert np.all(lo <= pred + 1e-12) and np.all(hi >= pred - 1e-12)


def test_first_level_below_text_only_is_kept():
    """0% is its own regime: a dip at the first speech level is not pooled into the text-only score."""
    c = make_curve("g", "c", [0, 20, 50, 100], [0.72, 0.71, 0.74, 0.75], [0.002] * 4, [5] * 4)
    fit = fit_curve(c, HyperParams())
    assert fit.predict(0)[0] == pytest.approx(0.72) and fit.predict(20)[0] == pytest.approx(0.71)


# ---------------------------------------------------------------- the model learns across curves
def test_learned_model_extrapolates_exact_log_linear_family():
    """Curves from one log-linear family with a shared eps: held-out extrapolation must be near exact."""
    curves = [synthetic(f"g{i}", f"g{i}/direct", 0.80 + 0.02 * i, 0.01 + 0.003 * i) for i in range(4)]
    res = backtest(curves)
    assert res["mae_extrap_10"] < 0.15 and res["mae_extrap_25"] < 0.15
    assert all(h["learned"] for h in res["hyper"])


def test_backtest_on_reference_reports_every_key(reference):
    res = backtest(reference)
    for key in (
        "mae_extrap_10",
        "mae_extrap_25",
        "mae_at_full_10",
        "bias_10",
        "mae_interp_loo",
        "coverage80_10",
        "coverage80_25",
        "width80_10",
        "within2x_10",
        "safe_fail_rate_10",
        "safe_overcollect_median_10",
        "allocation_regret",
    ):
        assert res[key] is not None and math.isfinite(res[key]), key
    assert res["mae_extrap_10"] < 1.21  # plain log-linear on x > 0 scores ~1.2: the model must beat it
    assert 0 <= res["coverage80_10"] <= 1


def test_conformal_quantile_finite_sample():
    cal = Calibration(np.arange(1, 10, dtype=float), np.zeros(3))
    assert cal.quantile(0.1, extrapolating=True) == 1.0  # floor(10 * 0.1) = 1st smallest
    assert cal.quantile(0.9, extrapolating=True) == 9.0
    assert cal.quantile(0.05, extrapolating=True) == -math.inf  # too few residuals to back 5%


# ---------------------------------------------------------------- target mode
def test_recommend_amounts_are_consistent(reference, ref_library):
    fits = [ref_library.fit(c) for c in reference if c.group == "slurp"]
    rec = recommend(fits, target=0.75, avg_seconds=3.0, cost_per_hour=50.0, language="en")
    assert rec.status == "within corpus" and rec.best_scheme in ("direct", "curriculum")
    exp, safe = rec.best_expected, rec.best_safe
    assert 0 < exp["amount"] <= safe["amount"]
    assert exp["hours"] == pytest.approx(exp["utterances"] * 3 / 3600, rel=1e-3)
    assert exp["money"] == pytest.approx(exp["hours"] * 50)
    best_fit = next(f for f in fits if f.curve.scheme == rec.best_scheme)
    assert best_fit.predict(exp["amount"])[0] >= 0.75 - 1e-9 > best_fit.predict(exp["amount"] * 0.95)[0]


def test_unreachable_and_text_only_targets(reference, ref_library):
    fits = [ref_library.fit(c) for c in reference if c.group == "italic"]
    rec = recommend(fits, target=0.99, language="it")
    assert rec.status == "not reachable" and rec.best_expected["amount"] is None
    assert all(0 < a.p_reach_corpus < 0.1 for a in rec.answers)
    json.dumps(rec.to_dict())  # no NaN/objects that break JSON
    low = recommend(fits, target=0.60, language="it")
    assert low.status == "text-only suffices" and low.best_expected["amount"] == 0


# ---------------------------------------------------------------- budget mode
def test_dp_is_exact_against_brute_force():
    rng = np.random.default_rng(3)
    options = {}
    for lang in "abc":
        costs = np.concatenate([[0], np.sort(rng.uniform(1, 50, 4))])
        scores = np.concatenate([[0.5], 0.5 + np.sort(rng.uniform(0, 0.2, 4))])
        options[lang] = [Option(lang, c, c, s, "x") for c, s in zip(costs, scores)]
    for budget in (0, 10, 40, 90, 200):
        for objective, agg in (("mean", sum), ("worst", min)):
            feasible = [combo for combo in itertools.product(*options.values()) if sum(o.cost for o in combo) <= budget]
            best = max(agg(o.score for o in combo) for combo in feasible)
            got = solve(options, budget, objective)
            assert agg(o.score for o in got) == pytest.approx(best)
            assert sum(o.cost for o in got) <= budget + 1e-9
        steps = greedy_steps(options, budget)
        assert all(s.gain > 0 for s in steps) and (not steps or steps[-1].spent <= budget + 1e-9)


def test_allocate_zero_budget_and_unit_errors(reference, ref_library):
    fits = {g: [ref_library.fit(c) for c in reference if c.group == g] for g in ("slurp", "italic")}
    alloc = allocate(fits, 0)
    assert all(r["amount"] == 0 and r["scheme"] == "text" for r in alloc.choice)
    assert any("zero" in n for n in alloc.notes)
    with pytest.raises(PlannerError, match="avg-seconds"):
        allocate(fits, 10, budget_unit="hours")
    shared = {"de": [ref_library.fit(c) for c in reference if c.group == "de"]}
    with pytest.raises(PlannerError, match="shared axis"):
        allocate(shared, 100)
    fig = plot_allocation(allocate(fits, 2000))
    assert len(fig.data) == 2


# ---------------------------------------------------------------- plots and CLI
def test_plot_curves_marks_recommendation(reference, ref_library):
    fits = [ref_library.fit(c) for c in reference if c.group == "speech-massive-fr"]
    rec = recommend(fits, target=0.73, language="fr")
    fig = plot_curves(fits, rec)
    assert len(fig.data) == 4 * len(fits)
    shapes = [s for s in fig.layout.shapes if s.type == "line"]
    assert any(s.x0 == pytest.approx(rec.best_expected["amount"]) for s in shapes)


def test_plot_backtest_splits_covered_and_missed_points(reference):
    res = backtest(reference)
    fig = plot_backtest(res)
    for w, tag in ((0.10, "10"), (0.25, "25")):
        n = res[f"n_points_{tag}"]
        axis = "x" if w == 0.10 else "x2"
        covered = [len(t.x) for t in fig.data if t.name == "80% band covered" and t.xaxis == axis]
        assert sum(covered) == round(res[f"coverage80_{tag}"] * n)
    p = res["points"][0]
    assert p["lo80"] <= p["pred"] <= p["hi80"]
    assert len(res["points"]) == res["n_points_10"] + res["n_points_25"]


def test_cli_commands_and_bad_input(tmp_path, capsys):
    out = tmp_path / "ref.csv"
    assert run(["curves", "--reference", "--out", str(out)]) == 0
    curves = read_curves_csv(out)
    small = tmp_path / "small.csv"
    small.write_text(curves_to_csv([c for c in curves if c.group in ("slurp", "italic", "de")]))
    capsys.readouterr()
    assert (
        run(
            [
                "recommend",
                "--curves",
                str(small),
                "--library",
                str(small),
                "--language",
                "en",
                "--target",
                "0.75",
                "--json",
            ]
        )
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["best_expected"]["amount"] > 0 and rec["library"]["hyper"]["learned"]
    assert (
        run(
            [
                "allocate",
                "--curves",
                str(small),
                "--library",
                str(small),
                "--languages",
                "en,it",
                "--budget",
                "1500",
                "--json",
            ]
        )
        == 0
    )
    alloc = json.loads(capsys.readouterr().out)
    assert sum(r["cost"] for r in alloc["choice"]) <= 1500 and alloc["steps"]
    page = tmp_path / "bt.html"
    assert run(["backtest", "--curves", str(small), "--plot", str(page)]) == 0
    assert "back-test (leave-one-group-out)" in capsys.readouterr().out
    assert "plotly" in page.read_text()[:5000].lower()
    assert run(["recommend", "--curves", str(small), "--language", "xx", "--target", "0.7"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("group,curve,x,score\ng,c,0,60\ng,c,10,70\n")
    assert run(["backtest", "--curves", str(bad)]) == 2
    assert "divide by 100" in capsys.readouterr().err
    one = tmp_path / "one.csv"
    one.write_text("group,curve,x,score\ng,c,10,0.6\n")
    assert run(["recommend", "--curves", str(one), "--library", str(small), "--language", "g", "--target", "0.7"]) == 2
    assert "two levels" in capsys.readouterr().err


def test_cli_on_a_results_table(tmp_path, capsys):
    """A sweep's results table (seeds at several levels) drives recommend and backtest end to end."""
    from evaluation.results import write_results

    rng = np.random.default_rng(0)
    rows = []
    for corpus, lang, base in (("synth", "en-US", 0.70), ("synth", "fr-FR", 0.64)):
        for scheme in ("direct", "curriculum"):
            for pct in (0, 2, 5, 10, 25, 50, 100):
                for seed in range(3):
                    score = base + 0.012 * np.log(pct / 100 + 0.003) + rng.normal(0, 0.002)
                    rows.append(
                        {
                            "corpus": corpus,
                            "language": lang,
                            "scheme": "text" if pct == 0 else scheme,
                            "speech_percent": pct,
                            "n_speech": round(pct / 100 * 4000),
                            "seed": seed,
                            "split": "test",
                            "slu_f1": float(np.clip(score + 0.1, 0, 1)),
                            "run_dir": f"r{len(rows)}",
                        }
                    )
    path = tmp_path / "results.csv"
    write_results(path, rows)
    capsys.readouterr()
    assert (
        run(["recommend", "--results", str(path), "--language", "fr-FR", "--share", "--target", "0.98", "--json"]) == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["best_expected"]["unit"] == "utterances" and 0 < rec["best_expected"]["amount"] <= 4000
    assert run(["backtest", "--results", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_curves"] == 4 and res["n_groups"] == 2


# ---------------------------------------------------------------- second shift: windows, bands, safe amount, cache
def test_rounded_level_counts_inside_its_window(reference):
    """round(0.10 * 50,628) = 5,063 utterances is u = 0.100004: it must be part of the <=10% fit."""
    slurp = next(c for c in reference if c.group == "slurp")
    assert slurp.u[3] > 0.10 and in_window(slurp.u, 0.10).sum() == 4
    assert not in_window(np.array([0.11]), 0.10)[0]


def test_growth_law_is_learned_from_residuals():
    rng = np.random.default_rng(0)
    d = np.tile([0.5, 1.0, 2.0, 3.0, 4.0], 60)
    sigma = np.full(d.size, 1e-4)  # seeded curves with negligible noise: all the error is the model's
    growing = rng.laplace(0, 0.01 * (0.5 + d))
    sc = learn_scale(growing, d, sigma)
    assert 0.6 <= sc.gamma <= 1.5
    flat = rng.laplace(0, 0.01, d.size)
    assert learn_scale(flat, d, sigma).gamma <= 0.2


def test_single_run_noise_is_learned_apart_from_model_error():
    """Seeded residuals carry little noise, single-run ones a lot: the learned noise is the single runs' sd."""
    rng = np.random.default_rng(1)
    d = np.tile([0.5, 1.0, 2.0, 3.0], 100)
    model = rng.laplace(0, 0.002 * (0.5 + d) ** 0.5)
    seeded = np.arange(d.size) % 2 == 0
    sigma = np.where(seeded, 5e-4, np.nan)
    true_noise = 0.008
    r = model + np.where(seeded, 0.0, rng.laplace(0, true_noise, d.size))
    sc = learn_scale(r, d, sigma)
    assert 0.5 * true_noise <= sc.noise_single <= 2 * true_noise
    assert sc.s0 < true_noise / 2  # the model part stays small: the noise was not blamed on it


def test_single_runs_get_wider_bands_than_seed_means(reference, ref_library):
    """The reference library has both kinds; the same curve as a 5-seed mean is surer than as a single run."""
    assert 0.002 <= ref_library.calibration.noise_single <= 0.015  # Table 3 single runs: about 0.8 points
    slurp = next(c for c in reference if c.name == "slurp/en/direct").subset(in_window(reference[0].u, 0.10))
    single = make_curve("x", "x/direct", slurp.x, slurp.score, corpus_size=slurp.corpus_size)
    assert slurp.seeded and not single.seeded
    x = [slurp.corpus_size]
    lo_s, hi_s = ref_library.fit(slurp).band(x)
    lo_1, hi_1 = ref_library.fit(single).band(x)
    assert (hi_1 - lo_1)[0] > (hi_s - lo_s)[0]


def test_library_of_seed_means_only_takes_single_run_noise_from_the_seed_sd():
    curves = [
        make_curve(
            f"g{i}",
            f"g{i}/direct",
            LEVELS * 1000,
            0.7 + 0.01 * np.log(LEVELS + 0.01) + 0.001 * i,
            ci95=np.full(LEVELS.size, 0.004),
            n_seeds=np.full(LEVELS.size, 5),
            corpus_size=1000,
        )
        for i in range(3)
    ]
    lib = learn_library(curves)
    seed_sd = 0.004 / stats.t.ppf(0.975, 4) * math.sqrt(5)
    assert lib.calibration.noise_single == pytest.approx(seed_sd, rel=1e-6)
    assert any("seed sd" in n for n in lib.notes)


def test_band_uses_the_pool_of_the_nearest_fit_window():
    cal = Calibration(
        np.zeros(0),
        np.zeros(3),
        gamma=0.0,
        offset=1.0,
        pools=((0.10, np.linspace(-0.05, 0.05, 99)), (0.25, np.linspace(-0.01, 0.01, 99))),
    )
    assert cal.quantile(0.9, extrapolating=True, u_last=0.1) == pytest.approx(0.04, abs=2e-3)
    assert cal.quantile(0.9, extrapolating=True, u_last=0.5) == pytest.approx(0.008, abs=5e-4)
    c = make_curve("g", "c", [0, 20, 50, 100], [0.70, 0.72, 0.73, 0.74], corpus_size=1000)
    lo10, hi10 = fit_curve(c, HyperParams(), cal).band([1000])
    c25 = make_curve("g", "c", [0, 20, 50, 100, 250], [0.70, 0.72, 0.73, 0.74, 0.75], corpus_size=1000)
    lo25, hi25 = fit_curve(c25, HyperParams(), cal).band([1000])
    assert (hi25 - lo25)[0] < (hi10 - lo10)[0] / 2


def test_safe_amount_stays_in_corpus_and_reports_probability(reference, ref_library):
    fits = [ref_library.fit(c.subset(in_window(c.u, 0.10))) for c in reference if c.group == "italic"]
    size = fits[0].curve.corpus_size  # a subset keeps the full corpus size
    near = recommend(fits, target=0.745, risk=0.1, language="it")
    for a, f in zip(near.answers, fits):
        if a.safe["amount"] is not None:
            assert a.safe["amount"] <= size * (1 + 1e-9)
            n = ref_library.calibration.residuals(extrapolating=True, u_last=f.u_last).size
            assert f.prob_reach(a.safe["amount"], near.target) >= 0.9 - 1 / (n + 1)
    # 0.77 is reachable by extrapolating a few corpora further, but no amount *within* the corpus is safe
    assert any(math.isfinite(safe_amount(f, 0.77, 0.1, 8 * size)) for f in fits)
    far = recommend(fits, target=0.77, risk=0.1, language="it")
    assert far.best_expected["amount"] is not None and far.best_safe["amount"] is None
    assert all(a.safe["amount"] is None and 0 < a.p_reach_corpus < 0.9 for a in far.answers)
    assert any("whole corpus reaches it with probability" in n for n in far.notes)


def test_backtest_counts_unanswered_targets_both_ways(reference):
    res = backtest(reference)
    assert res["safe_answer_rate_10"] + res["safe_unreachable_rate_10"] == pytest.approx(1.0)
    assert res["safe_fail_rate_strict_10"] >= res["safe_unreachable_rate_10"] - 1e-12
    assert res["n_probes_10"] == 2 * 16 and 0 <= res["probe_safe_claim_rate_10"] <= 1
    assert res["p_reach_probe_10"] < res["p_reach_target_10"]  # unreachable probes judged less likely
    assert res["n_targets_10"] + res["n_targets_text_only_10"] == 48
    assert 0.70 <= res["coverage80_10"] <= 0.90 and 0.70 <= res["coverage80_25"] <= 0.90


def test_library_cache_memory_disk_and_invalidation(tmp_path):
    curves = [
        synthetic(f"g{i}", f"g{i}/direct", 0.80 + 0.02 * i, 0.01 + 0.003 * i, noise=0.002, seed=i) for i in range(3)
    ]
    first = cached_library(curves)
    assert cached_library(list(reversed(curves))) is first  # same content, any order: memory hit
    files = list((tmp_path / "planner-cache").glob("*.json"))
    assert [f.stem for f in files] == [library_key(curves)]
    clear_memory()
    again = cached_library(curves)  # from disk
    assert again is not first and again.hyper == first.hyper
    np.testing.assert_allclose(again.calibration.extrap, first.calibration.extrap)
    assert [w for w, _ in again.calibration.pools] == [w for w, _ in first.calibration.pools]
    changed = curves[:2] + [synthetic("g2", "g2/direct", 0.85, 0.01, noise=0.002, seed=9)]
    assert library_key(changed) != library_key(curves)
    files[0].write_text("{not json")
    clear_memory()
    relearned = cached_library(curves)  # a broken cache file is ignored and rewritten
    assert relearned.hyper == first.hyper and json.loads(files[0].read_text())["hyper"]["learned"]
