"""Plotly figures for the planner: learning curves with bands and recommendations, a budget split, a back-test.

Pure presentation over `planner.model` / `planner.target` / `planner.budget` results; each function returns a
`plotly.graph_objects.Figure` (the app puts it in `gr.Plot`, the CLI writes it to HTML). No maths here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from planner.backtest import window_tag
from planner.budget import Allocation
from planner.model import CurveFit
from planner.target import Recommendation

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def plot_curves(
    fits: Sequence[CurveFit], recommendation: Recommendation | None = None, *, level: float = 0.8, title: str = ""
) -> go.Figure:
    """Measured points with 95% CIs, the fitted curve with its `level` band, and the recommended amounts.

    The x axis is logarithmic; the text-only (0) level is drawn at the left edge and labelled as such.
    """
    fig = go.Figure()
    if not fits:
        fig.update_layout(title="no curves to plot")
        return fig
    unit = fits[0].curve.unit
    x_hi = max(f.curve.corpus_size for f in fits)
    if recommendation is not None and recommendation.best_expected.get("amount"):
        x_hi = max(x_hi, recommendation.best_expected["amount"] * 1.2)
    x_lo = min(float(f.curve.x[f.curve.x > 0].min()) for f in fits) / 2
    x_text = x_lo / 1.5  # where the 0% point is drawn on the log axis
    for i, f in enumerate(fits):
        color = _COLORS[i % len(_COLORS)]
        c = f.curve
        name = c.scheme or c.name
        grid = np.geomspace(x_lo, x_hi, 200)
        lo, hi = f.band(grid, level)
        ok = np.isfinite(lo) & np.isfinite(hi)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([grid[ok], grid[ok][::-1]]),
                y=100 * np.concatenate([hi[ok], lo[ok][::-1]]),
                fill="toself",
                fillcolor=_rgba(color, 0.15),
                line={"width": 0},
                hoverinfo="skip",
                name=f"{name}: {int(level * 100)}% band",
                legendgroup=name,
            )
        )
        measured_to = c.x.max()
        inside = grid <= measured_to
        fig.add_trace(
            go.Scatter(
                x=grid[inside],
                y=100 * f.predict(grid[inside]),
                mode="lines",
                line={"color": color},
                name=f"{name}: interpolated",
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=grid[~inside],
                y=100 * f.predict(grid[~inside]),
                mode="lines",
                line={"color": color, "dash": "dash"},
                name=f"{name}: extrapolated",
                legendgroup=name,
            )
        )
        xs = np.where(c.x > 0, c.x, x_text)
        err = np.where(np.isfinite(c.ci95), c.ci95, 0.0) * 100
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=100 * c.score,
                mode="markers",
                marker={"color": color, "size": 8},
                error_y={"type": "data", "array": err, "visible": bool(np.any(err > 0))},
                name=f"{name}: measured (95% CI)",
                legendgroup=name,
                text=["text-only (0)" if v == 0 else f"{v:g} {c.unit}" for v in c.x],
                hoverinfo="text+y",
            )
        )
    if recommendation is not None:
        fig.add_hline(
            y=100 * recommendation.target,
            line={"dash": "dot", "color": "grey"},
            annotation_text=f"target {100 * recommendation.target:.1f}",
        )
        for key, label, dash in (("best_expected", "expected", "dash"), ("best_safe", "safe", "dot")):
            amount = getattr(recommendation, key).get("amount")
            if amount:
                fig.add_vline(
                    x=amount, line={"dash": dash, "color": "black"}, annotation_text=f"{label}: {amount:,.0f} {unit}"
                )
    fig.update_layout(
        title=title or (f"{fits[0].curve.language or fits[0].curve.group}: SLU-F1 vs speech"),
        xaxis={"type": "log", "title": f"speech ({unit}; leftmost point = text-only)"},
        yaxis={"title": "score (points)"},
        template="plotly_white",
        legend={"groupclick": "toggleitem"},
    )
    return fig


def plot_allocation(allocation: Allocation) -> go.Figure:
    """Per language: the amount of speech bought and the predicted score there, with the scheme to train."""
    rows = allocation.choice
    langs = [r["language"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("speech to collect", "predicted score"))
    fig.add_trace(
        go.Bar(
            x=langs,
            y=[r["amount"] for r in rows],
            name="amount",
            text=[f"{r['amount']:,.0f} {r['unit']}" for r in rows],
            marker_color=_COLORS[0],
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(
            x=langs,
            y=[100 * r["predicted_score"] for r in rows],
            name="score",
            text=[f"{100 * r['predicted_score']:.1f} ({r['scheme']})" for r in rows],
            marker_color=_COLORS[2],
        ),
        1,
        2,
    )
    fig.update_layout(
        title=f"{allocation.objective} objective, budget {allocation.budget:,.4g} {allocation.budget_unit}: "
        f"mean {100 * allocation.mean_score:.1f}, worst {100 * allocation.worst_score:.1f}",
        showlegend=False,
        template="plotly_white",
    )
    return fig


def plot_backtest(result: dict) -> go.Figure:
    """Predicted versus measured score for every held-out level of a back-test, one panel per fit window.

    Each point is one level beyond the window, with the 80% band as a horizontal error bar; points on the diagonal
    were predicted exactly, and a band that crosses the diagonal covered the truth (green; red where it missed).
    """
    points = result.get("points") or []
    windows = sorted({p["window"] for p in points})
    if not windows:
        fig = go.Figure()
        fig.update_layout(title="no held-out points to plot")
        return fig
    titles = [
        f"fit on <= {w:.0%}: MAE {result.get(f'mae_extrap_{window_tag(w)}', float('nan')):.2f} pts, "
        f"80% band covers {result.get(f'coverage80_{window_tag(w)}', float('nan')):.0%}"
        for w in windows
    ]
    fig = make_subplots(rows=1, cols=len(windows), subplot_titles=titles, shared_yaxes=True)
    lo_all = 100 * min(min(p["truth"], p["lo80"]) for p in points)
    hi_all = 100 * max(max(p["truth"], p["hi80"]) for p in points)
    for col, w in enumerate(windows, 1):
        for hit, color, label in ((True, _COLORS[2], "covered"), (False, _COLORS[1], "missed")):
            sel = [p for p in points if p["window"] == w and (p["lo80"] <= p["truth"] <= p["hi80"]) == hit]
            if not sel:
                continue
            pred = np.array([100 * p["pred"] for p in sel])
            fig.add_trace(
                go.Scatter(
                    x=pred,
                    y=[100 * p["truth"] for p in sel],
                    mode="markers",
                    marker={"color": color, "size": 7},
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": [100 * p["hi80"] - v for p, v in zip(sel, pred)],
                        "arrayminus": [v - 100 * p["lo80"] for p, v in zip(sel, pred)],
                        "thickness": 1,
                    },
                    text=[f"{p['curve']} at {p['u']:.0%}" for p in sel],
                    hoverinfo="text+x+y",
                    name=f"80% band {label}",
                    legendgroup=label,
                    showlegend=col == 1,
                ),
                1,
                col,
            )
        fig.add_trace(
            go.Scatter(
                x=[lo_all, hi_all],
                y=[lo_all, hi_all],
                mode="lines",
                line={"color": "grey", "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
            ),
            1,
            col,
        )
        fig.update_xaxes(title_text="predicted (points)", row=1, col=col)
    fig.update_yaxes(title_text="measured (points)", row=1, col=1)
    fig.update_layout(
        title=f"back-test ({result.get('mode', '')}): {result.get('n_curves', 0)} curves, "
        f"{result.get('n_groups', 0)} groups",
        template="plotly_white",
    )
    return fig
