"""The curve model: SLU-F1 as a function of the amount of paired speech, with calibrated uncertainty.

Why this shape (see the README's planner section and the back-test): curves start high at text-only, rise steeply over the
first few percent and then gain a little per doubling. On the paper's curves a power law or a saturating form fitted
per curve extrapolates badly (Mahmood et al. 2022's forms: 2.3-3.6 points), plain log-linear does better (1.2).
So the model is:

- Inside the measured range: weighted isotonic regression of the levels above 0 (seed CIs as weights), then
  monotone PCHIP in ln(u + eps), u = fraction of the corpus. The 0% point is its own regime (frozen encoder, no
  speech): it is never pooled with the speech levels, and the stretch between 0 and the first speech level is linear
  in ln(u + eps), which tolerates a first level below text-only (direct mixing at 2% can dip).
- Beyond it: the mean of three simple members, each with one parameter shared across curves:
  (A) log-linear in ln(u + eps); (B) the same slope damped by `damping` beyond the last level; (C) a saturating
  a + b u / (u + half_sat). The ensemble is shifted by `anchor` times its gap to the last interpolated level.
  That is the library model; for a curve it explains badly it is one candidate of a stack with the curve's own
  extrapolators (`planner.shift`, weighted by the curve's own leave-last-levels-out validation).
- Bands: split-conformal quantiles of signed residuals measured on held-out groups (the library model's and the open
  stack's, blended by a fit's gate). An extrapolation error is model
  error growing with the horizon plus the run-to-run noise of the measured score, so residuals are normalised by
  sqrt((s0 (offset + doublings past the last level) ** gamma) ** 2 + sigma ** 2) and, in quadrature, the fit's own
  evidence on its error (its stack's validation error; normalised split conformal: a band is a quantile of the
  library's normalised residuals times the fit's own difficulty, `CurveFit._ext_scale`), with sigma the curve's seed
  standard error, or for single runs (no CIs) a noise learned from the library's single-run curves; the four scale
  parameters are learned by maximum likelihood on the held-out errors. Residuals are pooled per fit window (a curve
  uses the pool of the window nearest its last level); interpolation residuals come from leave-one-level-out.
  Without the noise term, one pool served curves of 5-seed means and single runs alike: single runs were
  under-covered, and safe amounts on them failed 2 of 13 times in the back-test.

All four curve hyper-parameters are learned leave-one-group-out on the curve library given (`learn_library`); nothing is
fixed to the paper's curves. The defaults below are generic priors used only when a library has fewer than 2 groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import isotonic_regression
from scipy.special import ndtr, ndtri

from planner.curves import Curve, PlannerError
from planner.shift import Candidates, StackFit, StackParams, candidates, combine, learn_params

WINDOWS = (0.10, 0.25)  # fit on levels up to these fractions of the corpus, predict the rest (the back-test's)
EPS_GRID = tuple(np.geomspace(1e-4, 0.1, 19))
DAMPING_GRID = tuple(np.linspace(0.0, 1.0, 11))
HALF_SAT_GRID = tuple(np.geomspace(1e-3, 1.0, 19))
ANCHOR_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# How far the extrapolated gain may exceed what the curve's own recent slope supports (`HyperParams.own_cap`);
# the top of the grid almost never binds, so a library that gains nothing from the cap can switch it off.
OWN_CAP_GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 4.0)
CAP_PARSIMONY = 0.10  # a stronger cap must beat the weakest one within 10% of the best MAE on the library
_TOL = 1e-9
# A level counts as inside a window when within 0.1% of it: levels are rounded counts (round(0.10 * 50,628) = 5,063
# utterances is u = 0.100004), and an absolute 1e-9 silently dropped SLURP's 10% level from its <=10% window.
_WINDOW_RTOL = 1e-3


def in_window(u: np.ndarray, window: float) -> np.ndarray:
    """Which levels (fractions of the corpus) lie inside a fit window such as 0.10."""
    return np.asarray(u) <= window * (1 + _WINDOW_RTOL)


_SE_FLOOR = 0.002  # 0.2 points: keeps one tiny CI from dominating the isotonic fit


@dataclass(frozen=True)
class HyperParams:
    eps: float = 0.003  # offset in ln(u + eps), as a fraction of the corpus
    damping: float = 0.5  # share of the log-linear slope kept beyond the last level (member B)
    half_sat: float = 0.05  # half-saturation point of member C, as a fraction of the corpus
    anchor: float = 1.0  # 1: the extrapolation continues from the last interpolated level; 0: raw ensemble
    learned: bool = False  # False: generic priors (library too small to learn from)
    # The extrapolated gain is capped at own_cap x the gain the curve's own recent slope supports (its last three
    # levels, per unit of ln(u + eps)): how far the library is trusted beyond what the curve itself shows.
    own_cap: float = 1.0

    def to_dict(self) -> dict:
        return {
            "eps": self.eps,
            "damping": self.damping,
            "half_sat": self.half_sat,
            "anchor": self.anchor,
            "learned": self.learned,
            "own_cap": self.own_cap,
        }


@dataclass(frozen=True)
class Calibration:
    """Held-out residuals (truth - prediction) and the scale they are measured in.

    An extrapolation error has two parts: the model's error, growing with the horizon, and the run-to-run noise of
    the measured score itself (a single run is noisier than a mean over seeds). So an error at horizon d on a curve
    with noise sd `sigma` is measured in units of

        b(d, sigma) = sqrt((s0 * (offset + d) ** gamma) ** 2 + sigma ** 2),

    d = doublings past the last fitted level. sigma is the curve's own seed standard error when it has CIs, else
    `noise_single`, the noise of a single run learned from the library's curves without CIs. (s0, offset, gamma,
    noise_single) are learned by maximum likelihood (`learn_scale`); the residuals stored are divided by b and the
    fit's own evidence in quadrature (`CurveFit._ext_scale`), so a band is a quantile times that difficulty.
    With the defaults (s0 = 1, no noise) b is the plain growth law and residuals are in score units.
    """

    extrap: np.ndarray = field(default_factory=lambda: np.zeros(0))  # normalised by a fit's difficulty, see above
    interp: np.ndarray = field(default_factory=lambda: np.zeros(0))  # leave-one-level-out inside the range
    gamma: float = 1.0  # residual growth with the horizon, learned
    offset: float = 1.0  # learned with gamma; a small offset lets the first doubling be much surer than the third

    # Held-out residuals per fit window (window, normalised residuals): a curve fitted on levels up to u_last is
    # judged by the pool of the nearest window, since fitting on more levels also makes the errors smaller (a
    # growth law in the horizon alone left <=10% fits under-covered and <=25% fits over-covered).
    pools: tuple[tuple[float, np.ndarray], ...] = ()
    s0: float = 1.0  # model-error scale at the last fitted level (score units), learned
    noise_single: float = 0.0  # sd of a single run's score (score units) for curves without CIs, learned
    # How unlike the library a curve may be before its bands widen: the SHIFT_QUANTILE quantile, over the
    # library's held-out cases, of `shift_ratio` (own back-test error / the error the library expects one doubling
    # out). A curve above it has its extrapolation scale multiplied by ratio / shift_ref. inf: never widen.
    shift_ref: float = math.inf
    # Stacking (planner.shift), learned on the library's held-out cases; None: the library model alone (a fit made
    # while learning, or a calibration from before stacking).
    stack: StackParams | None = None
    # The largest gain per doubling beyond the last fitted level seen on the library's held-out cases (its 95%
    # quantile, score units): a predicted gain above it is added to the band's scale (the library never saw it).
    slope_max: float = math.inf
    # How much evidence of error the library's own held-out curves carry: the EVIDENCE_QUANTILE quantile, over its
    # cases, of (the curve's own evidence / the library's law) one doubling out. It marks the edge of the library's
    # range for `CurveFit.inflation` (the widening reported to the user); the bands themselves take every fit's
    # evidence in (`CurveFit._ext_scale`).
    evidence_ref: float = math.inf
    # How much further below the prediction than the lower band a safe amount beyond the measurements is drawn
    # (`learn_claim_margin`): 1 keeps the band, more corrects for claims being a selected subset.
    claim_margin: float = 1.0
    # The same held-out cases' residuals of the stack with its gate open (`planner.shift`), aligned with `extrap`
    # and `pools`: blended with them by a fit's gate (`residuals`).
    extrap_stack: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pools_stack: tuple[tuple[float, np.ndarray], ...] = ()

    def growth(self, doublings: np.ndarray) -> np.ndarray:
        """How a one-doubling-out error grows with the horizon, in the library's law (1 at one doubling)."""
        return ((self.offset + np.asarray(doublings, float)) / (self.offset + 1.0)) ** self.gamma

    def shift_ratio(self, self_error: float, u_last: float, sigma: float) -> float:
        """A curve's own back-test error in units of the error the library expects one doubling past u_last."""
        return float(self_error / error_scale(1.0, sigma, self.s0, self.offset, self.gamma))

    def inflation(self, self_error: float, u_last: float, sigma: float) -> float:
        """Factor (>= 1) widening the extrapolation band of a curve unlike the library (see `shift_ref`)."""
        if not math.isfinite(self.shift_ref) or self.shift_ref <= 0:
            return 1.0
        return max(1.0, self.shift_ratio(self_error, u_last, sigma) / self.shift_ref)

    def noise(self, curve: Curve) -> float:
        """The measurement noise sd of a curve's scores: its seed standard error, else a single run's."""
        se = curve.seed_se()
        return se if math.isfinite(se) else self.noise_single

    def scale(self, u: np.ndarray, u_last: float, sigma: float = 0.0, inflation: float = 1.0) -> np.ndarray:
        return inflation * error_scale(_doublings(u, u_last), sigma, self.s0, self.offset, self.gamma)

    def residuals(self, *, extrapolating: bool, u_last: float | None = None, gate: float = 0.0) -> np.ndarray:
        """The held-out residuals a fit is judged by. Extrapolating with a stack whose gate is `gate`: the
        library's cases' residuals of the same blend, (1 - gate) x the library model's + gate x the open stack's
        (a residual is linear in the prediction), so a curve left to the library model keeps the library model's
        residuals and one leaning on its own extrapolators gets the stack's."""
        if not extrapolating:
            return self.interp
        i = None
        if self.pools and u_last is not None and u_last > 0:
            i = min(range(len(self.pools)), key=lambda k: abs(math.log(self.pools[k][0]) - math.log(u_last)))
        lib = self.pools[i][1] if i is not None else self.extrap
        if gate <= 0 or not self.pools_stack and not self.extrap_stack.size:
            return lib
        stk = self.pools_stack[i][1] if i is not None and self.pools_stack else self.extrap_stack
        return (1 - gate) * lib + gate * stk if stk.shape == lib.shape else lib

    def quantile(self, q: float, *, extrapolating: bool, u_last: float | None = None, gate: float = 0.0) -> float:
        """Split-conformal signed quantile; -inf/+inf when too few residuals to back that level."""
        s = np.sort(self.residuals(extrapolating=extrapolating, u_last=u_last, gate=gate))
        n = s.size
        if n == 0:
            return -math.inf if q < 0.5 else math.inf
        if q < 0.5:
            k = math.floor((n + 1) * q)
            return -math.inf if k < 1 else float(s[k - 1])
        k = math.ceil((n + 1) * q)
        return math.inf if k > n else float(s[k - 1])

    def prob_at_least(
        self, gap: float, scale: float, *, extrapolating: bool, u_last: float | None = None, gate: float = 0.0
    ) -> float:
        """P(truth >= prediction + gap) from the residuals, kept inside [1/(n+1), n/(n+1)]."""
        s = self.residuals(extrapolating=extrapolating, u_last=u_last, gate=gate)
        n = s.size
        if n == 0:
            return 0.5
        p = float(np.mean(s * scale >= gap))
        return min(max(p, 1 / (n + 1)), n / (n + 1))


# ---------------------------------------------------------------- pieces
def _weights(curve: Curve) -> np.ndarray:
    se = curve.std_err()
    if np.all(~np.isfinite(se)):
        return np.ones(curve.x.size)
    fill = np.nanmedian(se)
    se = np.where(np.isfinite(se), se, fill)
    return 1.0 / np.maximum(se, _SE_FLOOR) ** 2


def _ls2(g: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares y = a + b g with b >= 0 (more speech never predicted to hurt beyond the data)."""
    gm, ym = g.mean(), y.mean()
    var = float(((g - gm) ** 2).sum())
    b = float(((g - gm) * (y - ym)).sum() / var) if var > 0 else 0.0
    b = max(b, 0.0)
    return float(ym - b * gm), b


class Interpolator:
    """Monotone interpolation of a curve's levels; never used beyond the last level."""

    def __init__(self, u: np.ndarray, y: np.ndarray, w: np.ndarray, eps: float):
        self.eps = eps
        pos = u > 0
        self.y0 = float(y[~pos][0]) if np.any(~pos) else None
        self.u_pos = u[pos]
        self.iso = isotonic_regression(y[pos], weights=w[pos]).x if pos.sum() else np.zeros(0)
        self.z_pos = np.log(self.u_pos + eps)
        self._pchip = PchipInterpolator(self.z_pos, self.iso) if self.u_pos.size >= 2 else None

    @property
    def last(self) -> float:
        return float(self.iso[-1]) if self.iso.size else float(self.y0)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if self.u_pos.size == 0:
            return np.full(u.shape, self.y0)
        z = np.log(np.clip(u, 0, self.u_pos[-1]) + self.eps)
        out = np.empty(u.shape)
        inside = z >= self.z_pos[0]
        out[inside] = self._pchip(z[inside]) if self._pchip is not None else self.iso[0]
        below = ~inside
        if self.y0 is None:
            out[below] = self.iso[0]  # no text-only point: do not invent the 0% regime
        else:
            z0 = math.log(self.eps)
            t = (z[below] - z0) / (self.z_pos[0] - z0)
            out[below] = self.y0 + t * (self.iso[0] - self.y0)
        return out


def _members(u: np.ndarray, y: np.ndarray, u_last: float, hp: HyperParams, u_eval: np.ndarray) -> np.ndarray:
    """Predictions of the three members at u_eval (shape 3 x len(u_eval))."""
    z = np.log(u + hp.eps)
    a, b = _ls2(z, y)
    z_last = math.log(u_last + hp.eps)
    z_ev = np.log(u_eval + hp.eps)
    loglin = a + b * z_ev
    damped = a + b * z_last + hp.damping * b * (z_ev - z_last)
    g = u / (u + hp.half_sat)
    c, d = _ls2(g, y)
    sat = c + d * u_eval / (u_eval + hp.half_sat)
    return np.vstack([loglin, damped, sat])


def _doublings(u: np.ndarray, u_last: float) -> np.ndarray:
    return np.log2(np.maximum(u, u_last) / u_last)


def own_slope(u_pos: np.ndarray, iso: np.ndarray, y0: float | None, eps: float) -> float:
    """The curve's own recent gain per unit of ln(u + eps): the least-squares slope (>= 0) of its last three
    isotonic speech levels; with one speech level, the rise from text-only to it; inf when nothing shows it."""
    if iso.size >= 2:
        return _ls2(np.log(u_pos[-3:] + eps), iso[-3:])[1]
    if iso.size == 1 and y0 is not None:
        return max(0.0, (float(iso[0]) - y0) / (math.log(u_pos[0] + eps) - math.log(eps)))
    return math.inf


def capped(ext: np.ndarray, last: float, slope: float, cap: float, z_gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, disagreement): the library's extrapolation `ext` capped at the gain the curve's own slope
    supports (cap x slope x z_gap), never below the last level; the disagreement |ext - own| in score units."""
    if not math.isfinite(slope):
        return np.maximum(ext, last), np.zeros(np.shape(ext))
    own = last + cap * slope * z_gap
    return np.maximum(np.minimum(ext, own), last), np.abs(ext - own)


OFFSET_GRID = (0.25, 0.5, 1.0, 2.0)
GAMMA_GRID = tuple(np.linspace(0.0, 1.5, 31))
S0_GRID = tuple(np.geomspace(0.05, 4.0, 40))  # times the median |residual|
NOISE_GRID = (0.0,) + tuple(np.geomspace(2e-4, 0.03, 30))  # single-run sd: 0.02 to 3 points


EVIDENCE_QUANTILE = 0.95  # the edge of the library's range of evidence ratios, for the widening reported (`inflation`)
SHIFT_QUANTILE = 0.9  # a curve whose own back-test error ratio exceeds this quantile of the library's is "unlike" it


def error_scale(doublings, sigma, s0, offset, gamma):
    """b(d, sigma) of `Calibration`: model error growing with the horizon, plus measurement noise (broadcasts)."""
    return np.sqrt((s0 * (offset + doublings) ** gamma) ** 2 + sigma**2)


@dataclass(frozen=True)
class Scale:
    offset: float = 1.0
    gamma: float = 1.0
    s0: float = 1.0
    noise_single: float = 0.0


def learn_scale(residuals: np.ndarray, doublings: np.ndarray, sigma: np.ndarray | None = None) -> Scale:
    """How held-out errors grow with the horizon and with the noise of the measured truth.

    Maximum likelihood of a Laplace model |r| ~ b(d, sigma) (see `Calibration`) over small grids. `sigma` is each
    residual's measurement noise sd, NaN where unknown (curves without CIs): those share one learned
    `noise_single`. Fitting one law to every window's residuals lets a band learned on <=10% fits serve <=25% fits.
    """
    r = np.abs(np.asarray(residuals, float)) + 1e-5
    d = np.asarray(doublings, float)
    sig = np.full(r.shape, np.nan) if sigma is None else np.asarray(sigma, float)
    unknown = ~np.isfinite(sig)
    known = np.where(unknown, 0.0, sig)
    if r.size < 6 or np.ptp(d) == 0:
        # too little to tell: errors grow like a slope error (the cautious choice), all of it model error
        return Scale(1.0, 1.0, float(np.median(r)) if r.size else 1.0, 0.0)
    s0s = np.asarray(S0_GRID)[:, None, None] * float(np.median(r))
    noise = np.where(unknown[None, :], np.asarray(NOISE_GRID)[:, None], known[None, :])[None]  # 1 x N x n
    if not unknown.any():
        noise = noise[:, :1]
    best, best_nll = Scale(), math.inf
    for off in OFFSET_GRID:
        for g in GAMMA_GRID:
            b = error_scale(d, noise, s0s, off, g)  # S x N x n
            nll = (np.log(b) + r / b).sum(axis=-1)
            i, j = np.unravel_index(int(np.argmin(nll)), nll.shape)
            if nll[i, j] < best_nll - 1e-12:
                best_nll = float(nll[i, j])
                best = Scale(off, float(g), float(s0s[i, 0, 0]), float(NOISE_GRID[j]) if unknown.any() else 0.0)
    return best


# ---------------------------------------------------------------- the fitted curve
@dataclass
class CurveFit:
    """A curve fitted for prediction; `x` arguments are in the curve's own unit."""

    curve: Curve
    hyper: HyperParams
    calibration: Calibration
    interp: Interpolator
    u_last: float
    _ens_last: float
    _u_fit: np.ndarray
    _y_fit: np.ndarray
    own_slope: float = math.inf  # the curve's own recent gain per unit of ln(u + eps) (`own_slope`)
    self_error: float = 0.0  # RMS error of the same model predicting this curve's own last levels from earlier ones
    library: str = ""  # which library calibrated this fit (`Library.describe`), "" when fitted directly
    _stack: StackFit | None = None
    _stack_built: bool = False

    @property
    def stack(self) -> StackFit | None:
        """The stacked extrapolation (planner.shift) when the calibration has stacking, else None (built once)."""
        if not self._stack_built:
            self._stack_built = True
            params = self.calibration.stack
            if params is not None and params.enabled:
                self._stack = combine(self.candidates(), params.for_window(self.u_last))
        return self._stack

    @property
    def gate(self) -> float:
        """The stack's share against the library model alone (0 without a stack)."""
        st = self.stack
        return st.gate if st is not None else 0.0

    def candidates(self) -> Candidates:
        """The library model and the curve's own extrapolators, validated on the curve's last levels."""
        curve, hyper = self.curve, self.hyper

        def validate(mask: np.ndarray):
            f = fit_curve(curve.subset(mask), hyper, check_self=False)
            return lambda u: f._beyond(np.asarray(u, float))[0]

        return candidates(
            curve.u,
            curve.score,
            lambda u: self._beyond(np.asarray(u, float))[0],
            validate,
            self.calibration.noise(curve),
        )

    def _evidence(self, u: np.ndarray) -> np.ndarray:
        """The curve's own evidence on the error at levels u beyond the last one (score units): the stack's
        validation error grown with the horizon, the spread of the candidates, and the predicted gain beyond the
        largest gain per doubling the library has seen."""
        st = self.stack
        if st is None:
            return np.zeros(np.shape(u))
        d = _doublings(u, self.u_last)
        val = (st.error if math.isfinite(st.error) else 0.0) * self.calibration.growth(d)
        gain = st.predict(u) - self.interp.last
        excess = (
            np.maximum(0.0, gain - self.calibration.slope_max * np.maximum(d, 0.0))
            if math.isfinite(self.calibration.slope_max)
            else np.zeros(np.shape(u))
        )
        return np.sqrt(val**2 + st.spread(u) ** 2 + excess**2)

    def _lib_scale(self, u: np.ndarray) -> np.ndarray:
        """The scale the library's held-out residuals are measured in at levels u: its error law (without a stack,
        widened by `inflation`, the pre-stacking guard)."""
        base = self.calibration.scale(np.asarray(u, float), self.u_last, self.sigma)
        return base * self.calibration.inflation(self.unlikeness, self.u_last, self.sigma)

    def _ext_scale(self, u: np.ndarray) -> np.ndarray:
        """The difficulty of this fit at levels u beyond the last one, one sd-like unit (score units): the library's
        law (`_lib_scale`) and, when stacked, the curve's own evidence on its error (`_evidence`), in quadrature.
        The library's held-out residuals are divided by the same difficulty of their own fits (`learn_library`), so
        a band is a conformal quantile times this: normalised split conformal, with the curve's own back-test as
        its difficulty estimate. A curve whose own levels show errors the library's curves never did gets bands as
        much wider; a smooth one gets narrower ones."""
        lib = self._lib_scale(u)
        if self.stack is None:
            return lib
        return np.sqrt(lib**2 + self._evidence(u) ** 2)

    def _offset(self, u: np.ndarray, q_pool: float, q: float) -> np.ndarray:
        """The q-quantile's distance from the prediction at levels u beyond the last one: the library's conformal
        quantile `q_pool` (clipped to hold the prediction) times this fit's difficulty (`_ext_scale`)."""
        q_pool = min(q_pool, 0.0) if q < 0.5 else max(q_pool, 0.0)
        return q_pool * self._ext_scale(u)

    @property
    def evidence_ratio(self) -> float:
        """The curve's own evidence on its error (`_evidence`) over the library's law, one doubling out."""
        u1 = np.array([2 * self.u_last])
        base = float(self.calibration.scale(u1, self.u_last, self.sigma)[0])
        return float(self._evidence(u1)[0] / base) if base > 0 else 0.0

    def range_warning(self) -> str:
        """A warning when this curve is unlike the library that calibrated it (its bands were widened), else ""."""
        f = self.inflation
        if self.shift_ratio <= self.calibration.shift_ref:
            return ""
        lib = self.library or "the library"
        return (
            f"curve {self.curve.name!r} is outside the range of the library that calibrated it ({lib}): "
            f"the model's error on its own levels is {self.shift_ratio:.1f}x the error the library expects, "
            f"more than {100 * SHIFT_QUANTILE:.0f}% of the library's curves; its bands are {f:.1f}x the "
            "library's at one doubling out, and its extrapolation leans on its own levels. "
            "Measure one more level, or learn on curves like yours (--library)"
        )

    def _ensemble(self, u: np.ndarray) -> np.ndarray:
        return _members(self._u_fit, self._y_fit, self.u_last, self.hyper, u).mean(axis=0)

    def _beyond(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, |library extrapolation - own-slope extrapolation|) at levels u beyond the last one."""
        shift = self.hyper.anchor * (self.interp.last - self._ens_last)
        ext = self._ensemble(u) + shift
        z_gap = np.log(u + self.hyper.eps) - math.log(self.u_last + self.hyper.eps)
        # never below the last measured level, never above what the curve's own recent slope supports
        return capped(ext, self.interp.last, self.own_slope, self.hyper.own_cap, z_gap)

    def predict(self, x: Sequence[float] | float) -> np.ndarray:
        u = np.atleast_1d(np.asarray(x, dtype=float)) / self.curve.corpus_size
        out = self.interp(u)
        beyond = u > self.u_last * (1 + _TOL)
        if np.any(beyond):
            st = self.stack
            out[beyond] = st.predict(u[beyond]) if st is not None else self._beyond(u[beyond])[0]
        return np.clip(out, 0.0, 1.0)

    @property
    def inflation(self) -> float:
        """How much wider this curve's extrapolation band is, one doubling out, than that of a curve at the edge of
        the library's range (1: within it): the pre-stacking guard, and the curve's own evidence beyond the library's
        `evidence_ref` quantile."""
        u1 = np.array([2 * self.u_last])
        law = float(self.calibration.scale(u1, self.u_last, self.sigma)[0])
        ref = self.calibration.evidence_ref if self.stack is not None else 0.0
        edge = law * math.sqrt(1.0 + (ref**2 if math.isfinite(ref) else 0.0))
        return max(1.0, float(self._ext_scale(u1)[0]) / edge) if edge > 0 else 1.0

    @property
    def shift_ratio(self) -> float:
        """This curve's own back-test error over the error the library expects (see `Calibration.shift_ref`)."""
        return self.calibration.shift_ratio(self.unlikeness, self.u_last, self.sigma)

    @property
    def unlikeness(self) -> float:
        """How badly the library explains this curve (score units): the larger of its own back-test error
        (`self_error`) and the gap, one doubling past the last level, between the library's extrapolation and the
        curve's own recent slope."""
        u1 = np.array([2 * self.u_last])
        gap = float(self._beyond(u1)[1][0]) if math.isfinite(self.own_slope) else 0.0
        return max(self.self_error, gap)

    @property
    def sigma(self) -> float:
        return self.calibration.noise(self.curve)

    def extrapolating(self, x: Sequence[float] | float) -> np.ndarray:
        u = np.atleast_1d(np.asarray(x, dtype=float)) / self.curve.corpus_size
        return u > self.u_last * (1 + _TOL)

    def quantile(self, x: Sequence[float] | float, q: float) -> np.ndarray:
        """The q-quantile of the score at x (conformal; +-inf where the library cannot back it)."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        pred = self.predict(x)
        ext = self.extrapolating(x)
        q_ext = self.calibration.quantile(q, extrapolating=True, u_last=self.u_last, gate=self.gate)
        q_int = self.calibration.quantile(q, extrapolating=False)
        # the band always holds the prediction (`_offset`): residual pools of one sign (a library whose curves all
        # rise more than a stack leaning on its last value predicts) would otherwise put a lower band above it
        with np.errstate(invalid="ignore"):
            off = (
                self._offset(x / self.curve.corpus_size, q_ext, q) if math.isfinite(q_ext) else np.full(x.shape, q_ext)
            )
        return np.where(ext, pred + off, pred + q_int)

    def own_claim_distance(self, u: np.ndarray, risk: float) -> np.ndarray:
        """How far below the prediction the bound a safe amount beyond the measurements must clear lies at least, at
        levels u (fractions of the corpus), on the curve's own evidence: the normal risk-quantile of this fit's
        difficulty (`_ext_scale`: the library's law and the curve's own back-test error, the stack's validation
        error grown with the horizon with the candidates' spread). inf where the curve has no back-test of its own
        (too few levels to validate on): a guarantee would rest on the library alone, which knows nothing of this
        curve. 0 without a stack (a calibration without stacking has no such evidence)."""
        u = np.asarray(u, float)
        st = self.stack
        if st is None:
            return np.zeros(u.shape)
        if not math.isfinite(st.error):
            return np.full(u.shape, math.inf)
        return abs(float(ndtri(risk))) * self._ext_scale(u)

    def safe_quantile(self, x: Sequence[float] | float, risk: float) -> np.ndarray:
        """The lower bound a safe amount beyond the measurements must clear: the conformal risk-quantile's distance
        below the prediction times the library's `claim_margin`, or the curve's own floor (`own_claim_distance`),
        whichever is further. The conformal quantile is calibrated over the library's curves (marginal coverage);
        a guarantee for this curve must also survive its own evidence taken as a normal error."""
        x = np.atleast_1d(np.asarray(x, dtype=float))
        pred = self.predict(x)
        lib = self.calibration.claim_margin * (pred - self.quantile(x, risk))
        with np.errstate(invalid="ignore"):
            return pred - np.maximum(lib, self.own_claim_distance(x / self.curve.corpus_size, risk))

    def band(self, x: Sequence[float] | float, level: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        lo = self.quantile(x, (1 - level) / 2)
        hi = self.quantile(x, (1 + level) / 2)
        return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)

    def prob_reach(self, x: float, target: float) -> float:
        pred = float(self.predict(x)[0])
        ext = bool(self.extrapolating(x)[0])
        if not ext:
            return self.calibration.prob_at_least(target - pred, 1.0, extrapolating=False)
        u = np.array([x / self.curve.corpus_size])
        scale = float(self._ext_scale(u)[0])
        p = self.calibration.prob_at_least(target - pred, scale, extrapolating=True, u_last=self.u_last, gate=self.gate)
        st = self.stack
        if st is not None and math.isfinite(st.error) and scale > 0:
            # the curve's own evidence as a normal error, as the safe amount's floor takes it (`own_claim_distance`):
            # the smaller of the two, so "no safe amount at risk r" never comes with P(reach) above 1 - r
            p = min(p, float(ndtr((pred - target) / scale)))
        return p


def self_error(curve: Curve, hyper: HyperParams, n_last: int = 2) -> float:
    """RMS error (score units) of the model predicting each of the curve's last `n_last` levels from the levels
    before it (which must include a speech level): the curve's own small back-test, 0 when it has none."""
    errs = []
    for j in range(max(1, curve.x.size - n_last), curve.x.size):
        before = np.arange(curve.x.size) < j
        if before.sum() < 2 or not np.any(curve.x[before] > 0):
            continue
        fit = fit_curve(curve.subset(before), hyper, check_self=False)
        errs.append(curve.score[j] - float(fit.predict(curve.x[j])[0]))
    return float(np.sqrt(np.mean(np.square(errs)))) if errs else 0.0


def fit_curve(
    curve: Curve, hyper: HyperParams, calibration: Calibration | None = None, *, check_self: bool = True
) -> CurveFit:
    """Fit one curve. Raises PlannerError when it has fewer than two levels. `check_self` measures its
    `self_error` (the curve's own small back-test; False inside that measurement)."""
    if curve.x.size < 2:
        raise PlannerError(
            f"curve {curve.name!r} has one level only (x={curve.x.tolist()}); measure at least two levels, "
            "e.g. text-only and 5% speech"
        )
    if not np.any(curve.x > 0):
        raise PlannerError(f"curve {curve.name!r} has no level with speech; add at least one level above 0")
    u, y = curve.u, curve.score
    interp = Interpolator(u, y, _weights(curve), hyper.eps)
    u_last = float(u.max())
    ens_last = float(_members(u, y, u_last, hyper, np.array([u_last])).mean())
    slope = own_slope(interp.u_pos, interp.iso, interp.y0, hyper.eps)
    err = self_error(curve, hyper) if check_self else 0.0
    return CurveFit(curve, hyper, calibration or Calibration(), interp, u_last, ens_last, u, y, slope, err)


# ---------------------------------------------------------------- learning across curves
@dataclass(frozen=True)
class _Case:
    curve: Curve
    u_fit: np.ndarray
    y_fit: np.ndarray
    w_fit: np.ndarray
    u_last: float
    u_eval: np.ndarray
    y_eval: np.ndarray
    window: float


def extrapolation_cases(curves: Sequence[Curve], windows: Sequence[float] = WINDOWS) -> list[_Case]:
    """Fit-on-window / predict-the-rest problems: at least one speech level inside, one outside."""
    cases = []
    for c in curves:
        if c.x.size < 3:
            continue
        u = c.u
        w_all = _weights(c)
        for win in windows:
            inside = in_window(u, win)
            if (u[inside] > 0).sum() < 1 or inside.sum() < 2 or inside.all():
                continue
            cases.append(
                _Case(
                    c,
                    u[inside],
                    c.score[inside],
                    w_all[inside],
                    float(u[inside].max()),
                    u[~inside],
                    c.score[~inside],
                    win,
                )
            )
    return cases


def _case_iso(case: _Case) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(speech levels, their isotonic fit, the 0% score or None) of a case's fit window, as `Interpolator` has."""
    pos = case.u_fit > 0
    y0 = float(case.y_fit[~pos][0]) if np.any(~pos) else None
    return case.u_fit[pos], isotonic_regression(case.y_fit[pos], weights=case.w_fit[pos]).x, y0


def _case_iso_last(case: _Case) -> float:
    return float(_case_iso(case)[1][-1])


def learn_hyper(curves: Sequence[Curve], windows: Sequence[float] = WINDOWS) -> HyperParams:
    """Pick eps, damping, half_sat and anchor minimising extrapolation MAE on `curves` (coordinate-wise grids)."""
    cases = extrapolation_cases(curves, windows)
    if not cases:
        return HyperParams()
    y_true = np.concatenate([c.y_eval for c in cases])
    iso_last = np.array([_case_iso_last(c) for c in cases])

    def loglin_parts(eps: float):
        preds, slopes, at_last = [], [], []
        for c in cases:
            z = np.log(c.u_fit + eps)
            a, b = _ls2(z, c.y_fit)
            preds.append(a + b * np.log(c.u_eval + eps))
            slopes.append((a, b))
            at_last.append(a + b * math.log(c.u_last + eps))
        return preds, slopes, at_last

    # member A: eps
    best = min(EPS_GRID, key=lambda e: np.abs(np.concatenate(loglin_parts(e)[0]) - y_true).mean())
    eps = float(best)
    a_pred, slopes, a_last = loglin_parts(eps)

    # member B: damping, with A's eps
    def damped(d: float) -> list[np.ndarray]:
        return [
            al + d * b * (np.log(c.u_eval + eps) - math.log(c.u_last + eps))
            for c, (_, b), al in zip(cases, slopes, a_last)
        ]

    damping = float(min(DAMPING_GRID, key=lambda d: np.abs(np.concatenate(damped(d)) - y_true).mean()))
    b_pred = damped(damping)

    # member C: half-saturation point
    def saturating(h: float) -> tuple[list[np.ndarray], list[float]]:
        preds, at_last = [], []
        for c in cases:
            a, b = _ls2(c.u_fit / (c.u_fit + h), c.y_fit)
            preds.append(a + b * c.u_eval / (c.u_eval + h))
            at_last.append(a + b * c.u_last / (c.u_last + h))
        return preds, at_last

    half_sat = float(min(HALF_SAT_GRID, key=lambda h: np.abs(np.concatenate(saturating(h)[0]) - y_true).mean()))
    c_pred, c_last = saturating(half_sat)

    ens = [(pa + pb + pc) / 3 for pa, pb, pc in zip(a_pred, b_pred, c_pred)]
    ens_last = (np.array(a_last) * 2 + np.array(c_last)) / 3  # A and B agree at the last level

    def anchored(lam: float) -> np.ndarray:
        return np.concatenate([np.maximum(e + lam * (il - el), il) for e, il, el in zip(ens, iso_last, ens_last)])

    anchor = float(min(ANCHOR_GRID, key=lambda lam: np.abs(anchored(lam) - y_true).mean()))

    # how far to trust the library beyond the curve's own recent slope
    isos = [_case_iso(c) for c in cases]
    slopes_own = [own_slope(up, iso, y0, eps) for up, iso, y0 in isos]
    raw = [e + anchor * (il - el) for e, il, el in zip(ens, iso_last, ens_last)]
    gaps = [np.log(c.u_eval + eps) - math.log(c.u_last + eps) for c in cases]

    def with_cap(k: float) -> np.ndarray:
        return np.concatenate([capped(r, il, s, k, zg)[0] for r, il, s, zg in zip(raw, iso_last, slopes_own, gaps)])

    # the weakest cap within CAP_PARSIMONY of the best MAE: trust the curve over the library only where the
    # library's own curves clearly say so (a small gain on a few curves is not evidence enough)
    mae = {k: float(np.abs(with_cap(k) - y_true).mean()) for k in OWN_CAP_GRID}
    best_mae = min(mae.values())
    own_cap = max(k for k, v in mae.items() if v <= best_mae * (1 + CAP_PARSIMONY) + 1e-9)  # 1e-9: rounding
    return HyperParams(eps, damping, half_sat, anchor, learned=True, own_cap=own_cap)


def case_errors(case: _Case, hyper: HyperParams) -> tuple[np.ndarray, np.ndarray, float]:
    """Signed residuals (truth - prediction) of one case, the doublings past the last level of each, and the
    fit's own back-test error (`self_error`)."""
    sub = case.curve.subset(in_window(case.curve.u, case.window))
    fit = fit_curve(sub, hyper)
    x = case.u_eval * case.curve.corpus_size
    return case.y_eval - fit.predict(x), _doublings(case.u_eval, case.u_last), fit.unlikeness


def case_residuals(case: _Case, hyper: HyperParams) -> tuple[np.ndarray, np.ndarray]:
    """Signed residuals (truth - prediction) of one case and the doublings past the last level of each."""
    return case_errors(case, hyper)[:2]


def interp_residuals(curve: Curve, hyper: HyperParams) -> np.ndarray:
    """Leave-one-level-out interpolation residuals for the speech levels strictly inside the range."""
    out = []
    for i in range(curve.x.size - 1):
        if curve.x[i] <= 0:
            continue
        keep = np.ones(curve.x.size, bool)
        keep[i] = False
        sub = curve.subset(keep)
        if not np.any(sub.x > 0):
            continue
        fit = fit_curve(sub, hyper)
        out.append(curve.score[i] - float(fit.predict(curve.x[i])[0]))
    return np.array(out)


MAX_FOLDS = 10  # a library with more groups holds them out in this many folds (round-robin over sorted groups)


def group_folds(groups: Sequence[str], max_folds: int = MAX_FOLDS) -> list[tuple[str, ...]]:
    """Groups held out together: one each (leave-one-group-out) up to `max_folds` groups, else `max_folds` folds
    dealt round-robin over the sorted groups (deterministic, so a library learns the same way every time)."""
    groups = sorted(set(groups))
    if len(groups) <= max_folds:
        return [(g,) for g in groups]
    return [tuple(groups[i::max_folds]) for i in range(max_folds)]


@dataclass(frozen=True)
class Library:
    """What the planner learned from a curve library: hyper-parameters and calibration residuals."""

    hyper: HyperParams
    calibration: Calibration
    groups: tuple[str, ...]
    notes: tuple[str, ...] = ()
    name: str = ""  # what the library is, for the user ("the paper's 16 curves + your 4"); see `describe`

    def fit(self, curve: Curve) -> CurveFit:
        fit = fit_curve(curve, self.hyper, self.calibration)
        fit.library = self.describe()
        return fit

    def describe(self) -> str:
        shown = ", ".join(self.groups[:6]) + (f", ... ({len(self.groups)} in all)" if len(self.groups) > 6 else "")
        return f"{self.name or 'curve library'} (groups: {shown or 'none'})"


def learn_library(curves: Sequence[Curve], windows: Sequence[float] = WINDOWS) -> Library:
    """Hyper-parameters learned on all groups; calibration residuals measured leave-one-group-out (each group
    predicted with hyper-parameters learned on the other groups), so the bands are honest out-of-sample."""
    usable = [c for c in curves if c.x.size >= 3 and np.any(c.x > 0)]
    groups = tuple(sorted({c.group for c in usable}))
    notes = []
    if len(groups) < 2:
        notes.append(
            f"library has {len(groups)} usable group(s): hyper-parameters are generic priors, not learned; "
            "bands are in-sample and likely too narrow"
        )
        hyper = learn_hyper(usable, windows) if usable else HyperParams()
        per_group = {g: hyper for g in groups}
    else:
        hyper = learn_hyper(usable, windows)
        per_group = {}
        for fold in group_folds(groups):
            hp = learn_hyper([c for c in usable if c.group not in fold], windows)
            per_group.update({g: hp for g in fold})
    # every held-out case: the library model fitted on the window (hyper-parameters learned without its group), its
    # stacking candidates validated on the window, and the levels beyond it
    cases, itp = [], [np.zeros(0)]
    for c in usable:
        hp = per_group[c.group]
        for case in extrapolation_cases([c], windows):
            fit = fit_curve(case.curve.subset(in_window(case.curve.u, case.window)), hp)
            cases.append((case, fit, fit.candidates(), c.seed_se()))
        itp.append(interp_residuals(c, hp))
    params = (
        learn_params([(cands, case.u_eval, case.y_eval) for case, _, cands, _ in cases]) if cases else StackParams()
    )
    # per fit window where enough held-out cases back it (a library of a few curves keeps one set for all windows)
    by_window = {
        w: [(cands, case.u_eval, case.y_eval) for case, _, cands, _ in cases if case.window == w]
        for w in sorted({case.window for case, *_ in cases})
    }
    if by_window and all(len(v) >= MIN_WINDOW_CASES for v in by_window.values()):
        params = replace(params, windows=tuple((float(w), learn_params(v)) for w, v in by_window.items()))
    stacks = [combine(cands, params.for_window(case.u_last)) for case, _, cands, _ in cases]
    hor = [_doublings(case.u_eval, case.u_last) for case, *_ in cases]
    win = [np.full(case.u_eval.size, case.window) for case, *_ in cases]
    sig = [np.full(case.u_eval.size, s) for case, *_, s in cases]
    hor_all, win_all, sig_all = (np.concatenate([np.zeros(0)] + a) for a in (hor, win, sig))
    # residuals of the library model alone and of the stack with its gate open: a fit's band blends them by its
    # gate (`Calibration.residuals`). The error law is learned on the library model's (as before stacking).
    res_lib = [case.y_eval - fit.predict(case.u_eval * case.curve.corpus_size) for case, fit, *_ in cases]
    res_stk = [case.y_eval - st.predict_open(case.u_eval) for (case, *_), st in zip(cases, stacks)]
    sc = learn_scale(np.concatenate([np.zeros(0)] + res_lib), hor_all, sig_all)  # sig NaN: no CIs
    if np.all(np.isfinite(sig_all)):
        # no single-run curve to learn a run's noise from: a run's score varies like one seed, sd = se * sqrt(n)
        sd = [float(np.nanmedian(c.std_err() * np.sqrt(c.n_seeds))) for c in usable if c.seeded]
        sc = replace(sc, noise_single=float(np.median(sd)) if sd else 0.0)
        notes.append(
            "no curve without CIs in the library: a single run's noise is taken as the seed sd of the "
            f"curves with CIs ({100 * sc.noise_single:.2f} points)"
        )
    # the largest gain per doubling the library's curves showed beyond a fit window (95% quantile)
    gains = [(case.y_eval - fit.interp.last) / np.maximum(h, 1.0) for (case, fit, *_), h in zip(cases, hor)]
    gains_all = np.concatenate([np.zeros(0)] + gains)
    slope_max = float(np.quantile(gains_all, 0.95)) if gains_all.size >= 5 else math.inf
    cal = Calibration(
        gamma=sc.gamma, offset=sc.offset, s0=sc.s0, noise_single=sc.noise_single, stack=params, slope_max=slope_max
    )
    fits = [replace(fit, calibration=cal, _stack=st, _stack_built=True) for (_, fit, *_), st in zip(cases, stacks)]
    evidence = [f.evidence_ratio for f in fits]
    if len(evidence) >= 5:
        cal = replace(cal, evidence_ref=float(np.quantile(evidence, EVIDENCE_QUANTILE)))
    # each residual in units of its own fit's difficulty (`CurveFit._ext_scale`: the library's law and the fit's own
    # evidence on its error): normalised split conformal, so a fit's band is a quantile of these times its difficulty
    scales = [f._ext_scale(case.u_eval) for (case, *_), f in zip(cases, fits)]
    norm_lib = [r / b for r, b in zip(res_lib, scales)]
    norm_stk = [r / b for r, b in zip(res_stk, scales)]
    lib_all, stk_all = (np.concatenate([np.zeros(0)] + a) for a in (norm_lib, norm_stk))
    windows_seen = sorted(set(win_all.tolist()))
    cal = replace(
        cal,
        extrap=lib_all,
        interp=np.concatenate(itp),
        extrap_stack=stk_all,
        pools=tuple((float(w), lib_all[win_all == w]) for w in windows_seen),
        pools_stack=tuple((float(w), stk_all[win_all == w]) for w in windows_seen),
    )
    # the range of "own back-test error / expected error" the library's calibration has seen (for the warning)
    ratios = [
        cal.shift_ratio(fit.unlikeness, 0.0, s if math.isfinite(s) else sc.noise_single) for _, fit, _, s in cases
    ]
    if len(ratios) >= 5:
        cal = replace(cal, shift_ref=float(np.quantile(ratios, SHIFT_QUANTILE)))
    if fits:
        cal = replace(
            cal,
            claim_margin=learn_claim_margin(
                [
                    (case, replace(f, calibration=cal), a, b)
                    for (case, *_), f, a, b in zip(cases, fits, norm_lib, norm_stk)
                ],
                risk=CLAIM_RISK,
            ),
        )
    if cal.extrap.size < 10:
        notes.append(f"only {cal.extrap.size} held-out extrapolation residuals: wide or open-ended bands")
    return Library(hyper, cal, groups, tuple(notes))


MIN_WINDOW_CASES = 30  # held-out cases per fit window needed to learn the stacking parameters per window

CLAIM_RISK = 0.1  # the risk the claim margin is learned at (the planner's default --risk)
CLAIM_MARGIN_GRID = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)
CLAIM_PROBES = (0.005, 0.01)  # unreachable targets: this far above a held-out curve's best measured score


def _conformal_low(residuals: np.ndarray, q: float) -> float:
    s = np.sort(residuals)
    k = math.floor((s.size + 1) * q)
    return -math.inf if k < 1 else float(s[k - 1])


def learn_claim_margin(
    cases: Sequence[tuple[_Case, "CurveFit", np.ndarray, np.ndarray]], risk: float = CLAIM_RISK
) -> float:
    """The smallest multiplier m of the lower band's distance below the prediction (`CurveFit.safe_quantile`, with
    the curve's own evidence as a floor, as there) with which safe amounts claimed beyond the fit window fall short at most `risk` of the time on the library's held-out
    cases.

    A safe amount is only given where the lower band clears the target within the corpus, and those answers are a
    selected subset: a target is claimed more often when the band happens to sit high, so at m = 1 the claims miss
    more often than `risk`, although the band covers as promised per level. Per case, every measured score beyond
    the window is a target (its true need: the first level reaching it) plus unreachable probes above the curve's
    best score; with the lower band rising along x, a target is claimed when the band at the corpus clears it, and
    the claim falls short when the band already clears it at a level before its need. No amount is searched. Each
    case's band is drawn from the residuals of the other groups' cases of its window (its own would flatter it)."""
    counts = {m: [0, 0] for m in CLAIM_MARGIN_GRID}  # claims, fails
    for case, fit, *_ in cases:
        c = case.curve
        x = case.u_eval * c.corpus_size
        pred = fit.predict(x)
        g = fit.gate
        others = [(1 - g) * a + g * b for k, _, a, b in cases if k.window == case.window and k.curve.group != c.group]
        q = _conformal_low(np.concatenate([np.zeros(0)] + others), risk)
        lo = fit._offset(case.u_eval, q, risk) if math.isfinite(q) else np.full(x.shape, -np.inf)
        if not np.all(np.isfinite(lo)):
            continue
        own = fit.own_claim_distance(case.u_eval, risk)  # the same floor as `CurveFit.safe_quantile`
        best = float(c.score.max())
        targets = [(t, float(c.x[np.nonzero(c.score >= t - 1e-12)[0][0]])) for t in case.y_eval]
        targets += [(best + d, math.inf) for d in CLAIM_PROBES if best + d <= 1]
        inside = fit.curve.score
        for t, need in targets:
            if inside[-1] >= t - 1e-12:
                continue  # reached inside the window: answered by a measured level, never short
            for m in CLAIM_MARGIN_GRID:
                lower = np.maximum.accumulate(pred - np.maximum(-m * lo, own))
                if lower[-1] >= t - 1e-12:
                    counts[m][0] += 1
                    counts[m][1] += bool(np.any(lower[x < need * (1 - 1e-9)] >= t - 1e-12))
    for m in CLAIM_MARGIN_GRID:
        claims, fails = counts[m]
        if claims == 0 or fails / claims <= risk:
            return float(m)
    return float(CLAIM_MARGIN_GRID[-1])


def with_hyper(library: Library, **changes) -> Library:
    return replace(library, hyper=replace(library.hyper, **changes))
