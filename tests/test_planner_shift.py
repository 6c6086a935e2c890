"""The stacked extrapolation (planner/shift.py) on synthetic curves: a curve that flattens is not extrapolated with
the library's gains, a curve unlike the library gets wider bands than one like it, the weights follow the curves' own
validation, 4-parameter forms are left out when too few levels back them, and no safe amount is invented (inside the
measured range it is a measured level that reached the target). Pure numpy; seconds."""

import math
from dataclasses import replace

import numpy as np
import pytest

from planner.anchors import FORMS
from planner.cache import clear_memory, library_from_dict, library_to_dict
from planner.curves import make_curve
from planner.model import learn_library
from planner.shift import (
    LIBRARY,
    Candidate,
    Candidates,
    StackParams,
    candidates,
    combine,
    learn_params,
    validation_splits,
)
from planner.target import measured_safe, recommend, safe_amount

LEVELS = np.array([0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0])
SIZE = 10000


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANNER_CACHE_DIR", str(tmp_path / "planner-cache"))
    clear_memory()


def loglin(group, a, b, eps=0.01):
    return make_curve(
        group, f"{group}/s", LEVELS * SIZE, a + b * np.log(LEVELS + eps), corpus_size=SIZE, language=group
    )


@pytest.fixture(scope="module")
def library():
    """Eight steadily rising log-linear curves: the library's idea of a curve is "keeps gaining"."""
    return learn_library([loglin(g, 0.75 + 0.01 * i, 0.015 + 0.001 * (i % 3)) for i, g in enumerate("abcdefgh")])


def flattening_curve(top=0.8, knee=0.08):
    """Rises to `top` by `knee` of the corpus, then stays flat: its recent levels still rise, so the library model
    extrapolates gains the curve never gives."""
    y = top - 0.12 * np.clip(np.log(knee / LEVELS), 0, None) / math.log(knee / LEVELS[0])
    return make_curve("flat", "flat/s", LEVELS * SIZE, y, corpus_size=SIZE)


def library_only(fit):
    """The same fit with stacking switched off: the library model alone, as before the stack."""
    return replace(fit, calibration=replace(fit.calibration, stack=None), _stack=None, _stack_built=False)


def test_a_flattening_curve_is_not_extrapolated_with_the_librarys_gains(library):
    curve = flattening_curve()
    fit = library.fit(curve.subset(LEVELS <= 0.16))
    alone = library_only(fit)
    beyond = LEVELS[LEVELS > 0.16] * SIZE
    truth = curve.score[LEVELS > 0.16]
    stacked, lib = fit.predict(beyond), alone.predict(beyond)
    # the library model expects the gains of its steady curves; the stack follows the curve's own flat levels
    assert np.all(lib - truth > 0.005)
    assert np.max(np.abs(stacked - truth)) < 0.002
    assert fit.stack.gate == pytest.approx(1.0)
    assert fit.stack.weight_of()[LIBRARY] < 0.1


def test_a_curve_like_the_library_keeps_the_library_model(library):
    fit = library.fit(loglin("z", 0.76, 0.016).subset(LEVELS <= 0.16))
    assert fit.stack.gate == 0.0 and fit.stack.weight_of()[LIBRARY] == 1.0
    x = LEVELS[LEVELS > 0.16] * SIZE
    assert np.allclose(fit.predict(x), library_only(fit).predict(x))


def test_bands_are_wider_on_a_shifted_curve_than_on_a_library_like_one(library):
    like = library.fit(loglin("z", 0.76, 0.016).subset(LEVELS <= 0.16))
    odd = library.fit(noisy_curve())
    w_like, w_odd = (float(np.subtract(*f.band(float(SIZE))[::-1])[0]) for f in (like, odd))
    assert w_odd > 3 * w_like
    assert like.inflation == pytest.approx(1.0) and odd.inflation > 2
    assert odd.range_warning() and not like.range_warning()


def test_stacking_weights_favour_the_candidate_that_validates_best():
    flat = lambda u: np.zeros(np.shape(u))  # noqa: E731 - predictions are not used by the weights
    cands = Candidates(
        (
            Candidate(LIBRARY, flat, 0.04, (0.5,)),
            Candidate("last_value", flat, 0.01, (0.53,)),
            Candidate("pow4", flat, 0.02, (0.52,)),
        ),
        np.array([0.54]),
        0.001,
    )
    st = combine(cands, StackParams())
    w = st.weight_of()
    assert w["last_value"] > w["pow4"] > w[LIBRARY]
    assert w["last_value"] / w["pow4"] == pytest.approx(4.0)  # inverse squared errors
    # a library ratio saying last_value extrapolates 3x worse than it validates turns the order around
    st2 = combine(cands, StackParams(ratios=(("last_value", 3.0),)))
    assert st2.weight_of()["pow4"] > st2.weight_of()["last_value"]
    # the stacked predictor's validation error is that of the weighted mean on the validation level
    assert st.error == pytest.approx(abs(0.54 - float(np.dot(st.weights, [0.5, 0.53, 0.52]))))


def test_a_curve_of_a_candidates_own_form_leans_on_it():
    u = np.geomspace(0.01, 1.0, 14)
    pow4 = next(f for f in FORMS if f.name == "pow4")
    y = pow4(np.array([0.9, 0.05, 0.5, 0.001]), u)  # rises long after the window
    lib_pred = lambda v: np.full(np.shape(v), y[-1])  # noqa: E731 - a library that expects no more gain
    st = combine(
        candidates(u, y, lib_pred, lambda mask: lambda v: np.full(np.shape(v), y[mask][-1]), 0.001), StackParams()
    )
    w = st.weight_of()
    # pow4 (its own form) and mmf4 both validate at the noise floor; the flat library and last value do not
    assert w["pow4"] >= w["mmf4"] - 1e-9 and w["pow4"] + w["mmf4"] > 0.95 and w[LIBRARY] < 0.03


def test_four_parameter_forms_need_a_spare_level():
    u = np.array([0.0, 0.01, 0.02, 0.05, 0.1])
    y = np.array([0.6, 0.65, 0.68, 0.7, 0.71])
    lib = lambda v: np.full(np.shape(v), 0.72)  # noqa: E731
    names = {c.name for c in candidates(u, y, lib, lambda mask: lib, 0.001).items}
    # the validation fit (levels up to 0.05) has 4 levels: no degree of freedom to spare for pow4 or mmf4
    assert names == {LIBRARY, "last_value"}
    assert validation_splits(u, 1.0)[0][0].tolist() == [True, True, True, True, False]


def test_learned_ratios_and_familiarity_come_from_the_cases():
    f = lambda c: lambda v: np.full(np.shape(v), c)  # noqa: E731
    cases = []
    for k in range(4):
        cands = Candidates(
            (Candidate(LIBRARY, f(0.5), 0.01, ()), Candidate("last_value", f(0.45), 0.01, ())), np.zeros(0), 0.001
        )
        cases.append((cands, np.array([0.5, 1.0]), np.array([0.52, 0.52])))
    p = learn_params(cases)
    assert p.ratio(LIBRARY) == pytest.approx(2.0) and p.ratio("last_value") == pytest.approx(7.0)
    assert p.familiar == pytest.approx(0.01)


def noisy_curve():
    rng = np.random.default_rng(0)
    y = 0.7 + 0.015 * np.log(LEVELS + 0.01) + rng.choice([-0.03, 0.03], LEVELS.size)
    return make_curve("q", "q/s", LEVELS * SIZE, y, corpus_size=SIZE).subset(LEVELS <= 0.16)


def test_no_safe_amount_is_invented(library):
    # steeper than the library's curves and jagged: its own extrapolators lead, with wide bands
    y = 0.85 + 0.04 * np.log(LEVELS + 0.01) + 0.01 * np.resize([1, -1], LEVELS.size)
    fit = library.fit(make_curve("r", "r/s", LEVELS * SIZE, y, corpus_size=SIZE).subset(LEVELS <= 0.16))
    # expected within the corpus, but the lower band never clears it there: no safe amount, P(reach) and a note
    target = float(fit.predict(0.5 * SIZE)[0])
    assert target > fit.curve.score[-1] and math.isinf(measured_safe(fit, target))  # not answered by a level
    assert float(fit.safe_quantile(float(SIZE), 0.1)[0]) < target  # the bound a safe amount must clear
    assert math.isinf(safe_amount(fit, target, 0.1))
    rec = recommend([fit], target=target, language="q")
    assert rec.status == "within corpus" and rec.best_safe["amount"] is None
    note = next(n for n in rec.notes if "no amount within the corpus" in n)
    p = rec.answers[0].p_reach_corpus
    assert 0 < p < 1 and f"probability {p:.2f}" in note


def test_inside_the_measured_range_the_safe_amount_is_a_measured_level_that_reached_it(library):
    y = np.array([0.60, 0.66, 0.70, 0.69, 0.72, 0.73])  # 0.70 reached at the third level, lost at the fourth
    x = LEVELS[:6] * SIZE
    fit = library.fit(make_curve("m", "m/s", x, y, corpus_size=SIZE))
    assert measured_safe(fit, 0.70) == x[4]  # not x[2]: the next level fell below it again
    assert safe_amount(fit, 0.70, 0.1) == x[4]
    assert safe_amount(fit, 0.66, 0.1) == x[1]
    assert math.isinf(measured_safe(fit, 0.74))  # beyond the last level: only the lower band can answer


def test_stack_survives_the_cache_round_trip(library):
    again = library_from_dict(library_to_dict(library))
    assert again.calibration.stack == library.calibration.stack
    assert again.calibration.claim_margin == library.calibration.claim_margin
    curve = flattening_curve().subset(LEVELS <= 0.16)
    x = np.array([0.32, 1.0]) * SIZE
    a, b = library.fit(curve), again.fit(curve)
    assert np.allclose(a.predict(x), b.predict(x)) and np.allclose(a.band(x)[0], b.band(x)[0])


def test_a_measured_level_that_reaches_the_target_only_by_noise_is_not_a_safe_amount(library):
    # five seeds, CI half-width 2 points (se ~0.7 points): the last level clears 0.71 by 0.05 points, well within its
    # noise; the level before it dipped below. Before issue 16's fix that one lucky level was the safe amount.
    x = LEVELS[:6] * SIZE
    y = np.array([0.60, 0.66, 0.69, 0.705, 0.700, 0.7105])
    fit = library.fit(make_curve("n", "n/s", x, y, np.full(6, 0.02), np.full(6, 5), corpus_size=SIZE))
    assert math.isinf(measured_safe(fit, 0.71))
    assert safe_amount(fit, 0.71, 0.1) != x[-1]  # not the lucky level: only the band beyond it may answer
    # a target the levels clear by more than their noise, from a level on, is still answered by that level
    assert measured_safe(fit, 0.69) == x[3]  # 0.69 itself (x[2]) reached it only by a hair


def test_a_curve_too_short_to_back_test_itself_gets_no_safe_amount_beyond_its_levels(library):
    # two levels: no level is left to validate its extrapolators on, so nothing of the curve's own says how far
    # its extrapolation can be trusted; a target just above its last level got a "safe" amount from the library's
    # band alone before the fix
    curve = loglin("s", 0.76, 0.016).subset(LEVELS <= 0.01)
    fit = library.fit(curve)
    assert not math.isfinite(fit.stack.error)
    target = float(curve.score[-1]) + 0.002
    assert float(fit.predict(float(SIZE))[0]) > target + 0.02  # the model expects it well within the corpus
    assert math.isinf(safe_amount(fit, target, 0.1))
    assert fit.prob_reach(float(SIZE), target) > 0.5  # the probability still says it is likely


def test_a_safe_amount_beyond_the_levels_clears_the_curves_own_error(library):
    # jagged levels: the curve's own back-test error is large; the bound a safe amount must clear lies at least the
    # normal risk-quantile of that error (with the library's law) below the prediction
    fit = library.fit(noisy_curve())
    u = np.array([0.32, 0.64, 1.0])
    pred = fit.predict(u * SIZE)
    floor = 1.2815515 * fit._ext_scale(u)
    assert np.all(fit.safe_quantile(u * SIZE, 0.1) <= pred - floor + 1e-9)
    assert np.all(fit._ext_scale(u) > 2 * library.fit(loglin("z", 0.76, 0.016).subset(LEVELS <= 0.16))._ext_scale(u))
