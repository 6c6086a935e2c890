"""Reference extrapolators ("anchors") the back-test reports next to the planner, each fitted per curve on the same
levels (the fit window) and judged on the same held-out levels.

- ``last_value``: the naive anchor, every later level predicted at the last measured score in the window;
- ``pow4``: a - b (u + d)^(-c) (b, c, d > 0), the four-parameter power law of the learning-curve databases
  (Viering and Loog, 2023; LCDB, Mohr et al., 2022);
- ``mmf4``: (a b + c u^d) / (b + u^d) (b, d > 0), the Morgan-Mercer-Flodin curve, LCDB's other strong form.

u is the level as a fraction of the corpus. The 4-parameter forms are fitted by bounded least squares from a few
starting points (the best kept); with fewer than 4 levels, or when no start converges, they fall back to the
last value, and the count of fall-backs is reported, so no anchor is silently flattered or penalised. Each form is a
`Form` subclass listed in `FORMS`; the back-test reports every form in that list.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.optimize import least_squares


class Form:
    """One anchor form: its name, its parameter count, the function of (parameters, u), and the least-squares starting
    points with their bounds. A new form is a subclass and an entry in `FORMS`."""

    name = ""
    n_params = 0  # 0: nothing to fit, the last measured score stands

    def __call__(self, p: np.ndarray, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def starts(self, u: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, tuple, tuple]]:
        """(initial parameters, lower bounds, upper bounds) to start a fit from; the best fit is kept."""
        return []


def _shape(u: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(top score, lowest score, median speech level) of the fit window, which the starting points scale with."""
    u_pos = u[u > 0]
    return float(y.max()), float(y.min()), float(np.median(u_pos)) if u_pos.size else 0.05


class LastValue(Form):
    name = "last_value"


class Pow4(Form):
    name = "pow4"
    n_params = 4

    def __call__(self, p: np.ndarray, u: np.ndarray) -> np.ndarray:
        a, b, c, d = p
        return a - b * (u + d) ** (-c)

    def starts(self, u: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, tuple, tuple]]:
        top, low, u_mid = _shape(u, y)
        lo, hi = (-2.0, 1e-6, 1e-3, 1e-5), (3.0, 1e3, 5.0, 10.0)
        return [
            (np.array([top + 0.02, max(top - low, 1e-3) * (u_mid**0.5), 0.5, u_mid * 0.1]), lo, hi),
            (np.array([top + 0.1, 0.05, 0.3, 1e-3]), lo, hi),
            (np.array([min(1.0, top + 0.01), 0.01, 1.0, u_mid]), lo, hi),
        ]


class Mmf4(Form):
    name = "mmf4"
    n_params = 4

    def __call__(self, p: np.ndarray, u: np.ndarray) -> np.ndarray:
        a, b, c, d = p
        ud = u**d
        return (a * b + c * ud) / (b + ud)

    def starts(self, u: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, tuple, tuple]]:
        top, low, u_mid = _shape(u, y)
        lo, hi = (-2.0, 1e-8, -2.0, 1e-2), (3.0, 1e3, 3.0, 10.0)
        return [
            (np.array([low, u_mid, min(1.0, top + 0.05), 1.0]), lo, hi),
            (np.array([low, u_mid**0.5, top + 0.02, 0.5]), lo, hi),
            (np.array([low, 0.1 * u_mid, top + 0.1, 2.0]), lo, hi),
        ]


FORMS: tuple[Form, ...] = (LastValue(), Pow4(), Mmf4())
ANCHORS = tuple(form.name for form in FORMS)


def fit_anchor(form: str, u: np.ndarray, y: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], bool]:
    """(predictor in u, whether the named form was fitted rather than falling back to the last value)."""
    u = np.asarray(u, float)
    y = np.asarray(y, float)
    order = np.argsort(u)
    u, y = u[order], y[order]
    last = float(y[-1])

    def flat(v):
        return np.full(np.shape(v), last)

    f = next((candidate for candidate in FORMS if candidate.name == form), None)
    if f is None:
        raise ValueError(f"unknown anchor {form!r}; known: {ANCHORS}")
    if f.n_params == 0:
        return flat, True
    if u.size < f.n_params:
        return flat, False
    best, best_cost = None, math.inf
    with np.errstate(all="ignore"):
        for p0, lo, hi in f.starts(u, y):
            p0 = np.clip(p0, np.array(lo) + 1e-12, np.array(hi) - 1e-12)
            try:
                sol = least_squares(lambda p: f(p, u) - y, p0, bounds=(lo, hi), max_nfev=200)
            except (ValueError, FloatingPointError):
                continue
            if sol.success and np.isfinite(sol.cost) and sol.cost < best_cost:
                best, best_cost = sol.x, float(sol.cost)
    if best is None:
        return flat, False

    def predict(v):
        with np.errstate(all="ignore"):
            out = f(best, np.asarray(v, float))
        return np.clip(np.nan_to_num(out, nan=last), 0.0, 1.0)

    return predict, True
