"""Seed statistics: a hand-worked five-seed example, the † rule, and n = 1.

Run: pytest tests/test_stats.py
"""

import math
import random
import statistics

import pytest

from evaluation.stats import MeanCI, dagger, mean_ci, non_overlapping, t_quantile


def test_worked_five_seed_example():
    ci = mean_ci([0.7200, 0.7210, 0.7195, 0.7220, 0.7205])
    assert ci.n == 5
    assert ci.mean == pytest.approx(0.7206, abs=1e-12)
    # s² = 3.70e-6 / 4 = 9.25e-7; h = t(0.975, 4) · s / √5
    assert ci.half_width == pytest.approx(2.776445 * math.sqrt(9.25e-7) / math.sqrt(5), rel=1e-6)
    assert ci.half_width == pytest.approx(1.1942e-3, abs=1e-7)
    assert ci.format() == "0.7206 ± 0.0012"
    assert (round(ci.low, 4), round(ci.high, 4)) == (0.7194, 0.7218)


@pytest.mark.parametrize("n,t", [(2, 12.706205), (3, 4.302653), (5, 2.776445), (6, 2.570582), (10, 2.262157)])
def test_t_quantiles(n, t):
    assert t_quantile(n) == pytest.approx(t, abs=1e-6)


def test_uses_sample_sd_ddof_1():
    rng = random.Random(0)
    xs = [rng.random() for _ in range(7)]
    ci = mean_ci(xs)
    assert ci.half_width == pytest.approx(t_quantile(7) * statistics.stdev(xs) / math.sqrt(7))
    assert ci.half_width > t_quantile(7) * statistics.pstdev(xs) / math.sqrt(7)


def test_single_seed_has_no_interval_and_never_marks():
    one = mean_ci([0.8])
    assert one.half_width is None and one.low is None and one.format() == "0.8000 (n=1)"
    many = mean_ci([0.1, 0.11, 0.12])
    assert not non_overlapping(one, many) and not dagger(many, one) and not dagger(one, many)


def test_identical_seeds_have_zero_width():
    ci = mean_ci([0.5] * 5)
    assert ci.half_width == 0.0
    assert dagger(mean_ci([0.6] * 5), ci)


def test_dagger_rule_is_strict_non_overlap():
    low, high = MeanCI(0.5, 0.125, 5), MeanCI(0.75, 0.125, 5)  # binary-exact values
    assert not non_overlapping(low, high)  # |diff| = 0.25 = 0.125 + 0.125: touching counts as overlap
    higher = MeanCI(0.7501, 0.125, 5)
    assert non_overlapping(low, higher) and dagger(higher, low) and not dagger(low, higher)
    # Touching up to float noise is still touching: 0.8678 - 0.8618 is 0.006000000000000005 in floats.
    assert not non_overlapping(MeanCI(0.8678, 0.0037, 5), MeanCI(0.8618, 0.0023, 5))


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [float("inf"), 1.0]])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ValueError):
        mean_ci(bad)
