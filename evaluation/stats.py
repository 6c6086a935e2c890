"""Seed statistics: mean ± 95% confidence half-width with the t-distribution, and the paper's † rule.

Over n seeds of one configuration: x̄ ± t(0.975, n−1)·s/√n with the sample standard deviation s (ddof = 1), as in
Choi et al. (2025, Table 2; five seeds, §3.2). A scheme earns † when its interval does not overlap the other
scheme's at the same speech level and its mean is higher: |x̄₁ − x̄₂| > h₁ + h₂ (a conservative visual test, not a
t-test). With a single seed there is no interval: ``half_width`` is None and nothing is ever marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half_width: float | None  # None when n < 2: one seed gives no interval
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def format(self, digits: int = 4) -> str:
        """``0.7206 ± 0.0012``; a single seed reads ``0.7206 (n=1)`` so it is never mistaken for a CI of zero."""
        if self.half_width is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"


@lru_cache(maxsize=None)
def t_quantile(n: int, confidence: float = 0.95) -> float:
    """The two-sided t critical value for n samples (df = n − 1), e.g. 2.776445 for n = 5."""
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    from scipy.stats import t  # imported here: scipy costs ~0.3 s and most callers of this module never need it

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean and t-based confidence half-width of per-seed values (NaN values are rejected, not averaged)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_ci needs at least one value")
    if any(not math.isfinite(x) for x in xs):
        raise ValueError(f"mean_ci got a non-finite value in {xs}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return MeanCI(mean, None, 1)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    return MeanCI(mean, t_quantile(n, confidence) * sd / math.sqrt(n), n)


# Intervals that touch to within float noise count as overlapping (e.g. the paper's SLURP 10% intent accuracy,
# 0.8678 ± 0.0037 vs 0.8618 ± 0.0023, touches exactly and carries no †).
OVERLAP_TOLERANCE = 1e-9


def non_overlapping(a: MeanCI, b: MeanCI) -> bool:
    """True when both intervals exist and do not overlap: |x̄a − x̄b| > ha + hb (touching counts as overlap)."""
    if a.half_width is None or b.half_width is None:
        return False
    return abs(a.mean - b.mean) - (a.half_width + b.half_width) > OVERLAP_TOLERANCE


def dagger(a: MeanCI, b: MeanCI) -> bool:
    """The paper's †: ``a`` is higher than ``b`` and their confidence intervals do not overlap."""
    return a.mean > b.mean and non_overlapping(a, b)
