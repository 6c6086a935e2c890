"""Stacked extrapolation: the library model and the curve's own extrapolators, weighted by how well each one
predicts the curve's own last levels.

The library model (`planner.model`) is learned on a library of curves; a curve unlike that library (it starts lower,
rises longer, flattens sooner) is extrapolated badly by it, and its bands, calibrated on the library, are too sure.
So beyond the last measured level the prediction is a weighted mean of candidates:

- ``library``: the library model's extrapolation;
- the anchors of `planner.anchors` (``last_value``, ``pow4``, ``mmf4``), fitted on the curve's own levels.

Each candidate is judged on the curve itself (`candidates`): fitted on the levels up to half the last one
(`VALIDATE_DOUBLINGS`), it predicts the later levels; its validation error is the RMS of those errors. A
4-parameter form is a candidate only where it can be fitted with a degree of freedom to spare (more levels than
parameters) both there and on all the levels; else it is left out (it would be the last value counted twice).

How the validation errors become weights (`combine`, with `StackParams` learned on the library's held-out cases):
- each candidate's validation error is multiplied by its `ratio`, the library's held-out extrapolation error of that
  candidate over its validation error (a candidate that validates well one step out but extrapolates badly, such as
  the last value on rising curves, is discounted as much as the library shows);
- the weights are the inverse squares of those, each error floored at the curve's measurement noise;
- a curve the library model itself predicts as well as it predicts the library's own curves (its validation error
  at most `familiar`, a quantile of the library's) keeps the library model: the stack's share shrinks as
  (familiar / error) ** GATE_POWER;
- and the stack opens only as far as another candidate validates clearly better than the library model: not at all
  while the library model's scaled error is the smallest, fully once it is `ADVANTAGE` (25%) above another's.
So the paper's curves keep the library model, and a curve the library explains badly leans on its own
extrapolators.

What the stack gives the bands (`StackFit.error`, `StackFit.spread`): its own validation error and the spread of the
candidates at each level; `planner.model` adds the part of that evidence beyond what the library's own curves showed
to the library's conformal band, in quadrature, as a normal error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from planner.anchors import FORMS, fit_anchor

N_VALIDATE = 2  # without a halving split: the last levels each candidate predicts from the levels before it
LIBRARY = "library"
NOISE_FLOOR = 0.002  # 0.2 points: the smallest validation error counted (a perfect fit of two points is luck)


VALIDATE_DOUBLINGS = 1.0  # validation fits on levels up to u_last / 2 and predicts the later ones
GATE_QUANTILE = 0.75  # `StackParams.familiar`: this quantile of the library model's validation error on the library
GATE_POWER = 4
ADVANTAGE = 0.25  # the stack is fully open once the library model's scaled error is 25% above another candidate's


@dataclass(frozen=True)
class StackParams:
    """What the library teaches about stacking (`learn_params`); the defaults stack with no library knowledge."""

    ratios: tuple[tuple[str, float], ...] = ()  # candidate -> held-out extrapolation RMS / validation RMS
    familiar: float = 0.0  # library-model validation error up to which the library model is kept alone
    enabled: bool = True
    # the same learned per fit window (window, params), as the residual pools are: a candidate can validate alike and
    # extrapolate very differently from a short and a long window (mmf4 on LCDB); empty: these params everywhere
    windows: tuple = ()

    def ratio(self, name: str) -> float:
        return dict(self.ratios).get(name, 1.0)

    def for_window(self, u_last: float) -> "StackParams":
        """The params of the fit window nearest `u_last` (in log), or these."""
        if not self.windows or not u_last > 0:
            return self
        return min(self.windows, key=lambda wp: abs(math.log(wp[0]) - math.log(u_last)))[1]

    def to_dict(self) -> dict:
        return {
            "ratios": dict(self.ratios),
            "familiar": self.familiar,
            "enabled": self.enabled,
            "windows": [[w, p.to_dict()] for w, p in self.windows],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StackParams":
        return cls(
            tuple((str(k), float(v)) for k, v in d["ratios"].items()),
            float(d["familiar"]),
            bool(d["enabled"]),
            tuple((float(w), cls.from_dict(p)) for w, p in d.get("windows", [])),
        )


@dataclass(frozen=True)
class Candidate:
    name: str
    predict: Callable[[np.ndarray], np.ndarray]  # in u (fraction of the corpus)
    error: float  # RMS validation error (score units); nan: not validated
    val_preds: tuple = ()  # predictions of the validation levels (aligned with `Candidates.val_y`), nan where none


@dataclass(frozen=True)
class Candidates:
    """A curve's candidates and their validation, before weighting."""

    items: tuple[Candidate, ...]
    val_y: np.ndarray  # the validation levels' measured scores
    noise: float  # the curve's measurement noise sd

    def get(self, name: str) -> Candidate | None:
        return next((c for c in self.items if c.name == name), None)


@dataclass(frozen=True)
class StackFit:
    """The candidates of one curve, their weights, and what they say about the uncertainty."""

    candidates: tuple[Candidate, ...]
    weights: np.ndarray
    error: float  # the stacked predictor's own RMS validation error (score units); nan: none
    gate: float = 1.0  # the stack's share against the library model alone (0: library model only)
    open_weights: np.ndarray | None = None  # the weights with the gate fully open (gate 1), for calibration

    def predict_open(self, u: np.ndarray) -> np.ndarray:
        """The stack with its gate fully open (`open_weights`)."""
        w = self.weights if self.open_weights is None else self.open_weights
        preds = np.vstack([c.predict(np.asarray(u, float)) for c in self.candidates])
        return w @ preds

    def _preds(self, u: np.ndarray) -> np.ndarray:
        return np.vstack(
            [c.predict(u) if w > 0 else np.zeros(np.shape(u)) for c, w in zip(self.candidates, self.weights)]
        )

    def predict(self, u: np.ndarray) -> np.ndarray:
        return self.weights @ self._preds(np.asarray(u, float))

    def spread(self, u: np.ndarray) -> np.ndarray:
        """Weighted standard deviation of the candidates around the stacked prediction (score units)."""
        preds = self._preds(np.asarray(u, float))
        mean = self.weights @ preds
        return np.sqrt(np.maximum(self.weights @ (preds - mean) ** 2, 0.0))

    def weight_of(self) -> dict[str, float]:
        return {c.name: float(w) for c, w in zip(self.candidates, self.weights)}


def stack_weights(errors, floor: float) -> np.ndarray:
    """Inverse mean squared validation errors, each error floored at `floor`, normalised to sum 1."""
    e = np.maximum(np.asarray(errors, float), max(floor, 1e-9))
    w = 1.0 / e**2
    return w / w.sum()


def _form(name: str):
    return next(f for f in FORMS if f.name == name)


def validation_splits(
    u: np.ndarray, doublings: float | None = None, n_last: int = N_VALIDATE
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(levels fitted, levels predicted) masks of the leave-last-levels-out validation.

    With `doublings`: one split, fitted on the levels up to u_last / 2^doublings and predicting every later level,
    so the candidates are judged over a horizon like the one they extrapolate (when that leaves fewer than two levels
    or no speech level in the fit, the per-level splits below stand in). Without: each of the last `n_last` speech
    levels predicted from the levels before it."""
    u = np.asarray(u, float)
    if doublings is not None and u.size and u[-1] > 0:
        fit = u <= u[-1] / 2**doublings * (1 + 1e-9)
        if fit.sum() >= 2 and np.any(u[fit] > 0) and not fit.all():
            return [(fit, ~fit)]
    out = []
    for j in range(max(1, u.size - n_last), u.size):
        before = np.arange(u.size) < j
        if before.sum() >= 2 and np.any(u[before] > 0) and u[j] > 0:
            out.append((before, np.arange(u.size) == j))
    return out


def candidates(
    u: np.ndarray,
    y: np.ndarray,
    library_predict: Callable[[np.ndarray], np.ndarray],
    library_validate: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]],
    noise: float,
    doublings: float | None = VALIDATE_DOUBLINGS,
) -> Candidates:
    """The candidates of one curve with levels u (fractions of the corpus, sorted) and scores y, validated.

    `library_predict` is the library model fitted on all the levels; `library_validate(mask)` fits it on the
    levels in `mask` and returns its predictor (in u). `noise` is the curve's measurement noise sd."""
    u = np.asarray(u, float)
    y = np.asarray(y, float)
    splits = validation_splits(u, doublings)
    val_y = np.concatenate([y[ev] for _, ev in splits]) if splits else np.zeros(0)
    lib_val = [np.asarray(library_validate(fit)(u[ev]), float) for fit, ev in splits]
    items = []
    for name in (LIBRARY,) + tuple(f.name for f in FORMS):
        n_params = 0 if name == LIBRARY else _form(name).n_params
        if n_params and u.size <= n_params:
            continue  # cannot be fitted with a degree of freedom to spare: it would be the last value again
        preds = []
        for i, (fit, ev) in enumerate(splits):
            p = np.full(int(ev.sum()), np.nan)
            if name == LIBRARY:
                p = lib_val[i]
            elif not (n_params and fit.sum() <= n_params):
                f, fitted = fit_anchor(name, u[fit], y[fit])
                if fitted:
                    p = np.asarray(f(u[ev]), float)
            preds.append(p)
        vp = np.concatenate(preds) if preds else np.zeros(0)
        ok = np.isfinite(vp)
        if n_params and not ok.any():
            continue  # never validated: no evidence to weight it by
        if name == LIBRARY:
            predict = library_predict
        else:
            predict, fitted = fit_anchor(name, u, y)
            if not fitted and n_params:
                continue
        err = float(np.sqrt(np.mean(np.square(val_y[ok] - vp[ok])))) if ok.any() else math.nan
        items.append(Candidate(name, predict, err, tuple(vp.tolist())))
    return Candidates(tuple(items), val_y, noise)


def combine(cands: Candidates, params: StackParams) -> StackFit:
    """Weights of the candidates (see the module's docstring) and the stacked predictor's validation error."""
    items = cands.items
    lib = [i for i, c in enumerate(items) if c.name == LIBRARY]
    only_lib = np.array([1.0 if c.name == LIBRARY else 0.0 for c in items])
    errs = np.array([c.error for c in items])
    lib_err = errs[lib[0]] if lib else math.nan
    if not params.enabled or not np.isfinite(errs).any():
        return StackFit(items, only_lib, lib_err, 0.0)
    worst = np.nanmax(errs)
    # a candidate without validation takes the worst validated error (no credit for being untested)
    scaled = np.array([(e if math.isfinite(e) else worst) * params.ratio(c.name) for c, e in zip(items, errs)])
    w = stack_weights(scaled, max(cands.noise, NOISE_FLOOR))
    gate = 1.0
    if math.isfinite(lib_err) and params.familiar > 0:
        gate = min(1.0, (lib_err / params.familiar) ** GATE_POWER) if lib_err > 0 else 0.0
    if lib and len(items) > 1:
        # and only as far as another candidate validates clearly better than the library model (by ADVANTAGE)
        best_other = min(e for i, e in enumerate(scaled) if i != lib[0])
        lead = (scaled[lib[0]] - best_other) / (ADVANTAGE * best_other) if best_other > 0 else 1.0
        gate *= float(np.clip(lead, 0.0, 1.0))
    open_w = w
    w = gate * w + (1 - gate) * only_lib
    # the stacked predictor's own validation error (a candidate that could not predict a level is left out of that
    # level's weighted mean)
    vp = np.array([c.val_preds for c in items], float).reshape(len(items), -1)
    e = []
    for k in range(cands.val_y.size):
        have = np.isfinite(vp[:, k]) & (w > 0)
        if have.any():
            e.append(cands.val_y[k] - float(w[have] @ vp[have, k] / w[have].sum()))
    return StackFit(items, w, float(np.sqrt(np.mean(np.square(e)))) if e else math.nan, gate, open_w)


def learn_params(cases: list[tuple[Candidates, np.ndarray, np.ndarray]]) -> StackParams:
    """Stacking parameters from the library's held-out cases: (candidates fitted on the window, the levels beyond
    it in u, their measured scores). `ratios`: per candidate, RMS extrapolation error / RMS validation error;
    `familiar`: the GATE_QUANTILE quantile of the library model's validation error."""
    ext, val = {}, {}
    lib_errs = []
    for cands, u_eval, y_eval in cases:
        for c in cands.items:
            if not math.isfinite(c.error):
                continue
            ext.setdefault(c.name, []).append(float(np.mean(np.square(c.predict(u_eval) - y_eval))))
            val.setdefault(c.name, []).append(c.error**2)
            if c.name == LIBRARY:
                lib_errs.append(c.error)
    ratios = tuple(
        (n, float(math.sqrt(np.mean(ext[n]) / max(np.mean(val[n]), 1e-12)))) for n in sorted(ext) if len(ext[n]) >= 3
    )
    familiar = float(np.quantile(lib_errs, GATE_QUANTILE)) if len(lib_errs) >= 3 else 0.0
    return StackParams(ratios, familiar)
