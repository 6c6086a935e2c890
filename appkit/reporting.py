"""The Results tab: the Table-2-style report of a results table (evaluation.report) and SLU-F1 versus speech level."""

from __future__ import annotations

import os
from pathlib import Path

from appkit.catalog import AppError

SCHEME_COLORS = {"text": "#7f7f7f", "direct": "#1f77b4", "curriculum": "#d62728", "oracle": "#2ca02c"}


def results_path(results: str | None, runs_dir: str | os.PathLike | None) -> Path | None:
    """The results table the app reports on: --results, else RUNS/results.csv."""
    if results:
        return Path(results)
    if runs_dir:
        return Path(runs_dir) / "results.csv"
    return None


def read_table(path: Path | None, split: str = "", metrics: tuple[str, ...] = ()):
    from evaluation.report import DEFAULT_METRICS, build_table
    from evaluation.results import ResultsError, read_results

    if path is None or not path.is_file():
        raise AppError(
            f"no results table at {path or '(none given)'}: run a sweep into the runs folder "
            "(python -m training.sweep ... --out RUNS), or start the app with --results FILE"
        )
    try:
        rows = read_results(path)
        return build_table(rows, tuple(metrics) or DEFAULT_METRICS, split)
    except ResultsError as err:
        raise AppError(f"{path.name}: {err}".replace("--split", "the split choice")) from None


def report(path: Path | None, split: str = ""):
    """(markdown report, figure) for the results table at ``path``."""
    from evaluation.report import to_markdown

    table = read_table(path, split)
    return to_markdown(table), level_figure(table)


def level_figure(table, metric: str = "slu_f1"):
    """Mean score (points, 95% CI bars) against speech level per scheme; one panel per corpus and language."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from evaluation.report import CORPUS_LABELS, SCHEME_LABELS

    cols = table.columns
    titles = [f"{CORPUS_LABELS.get(c, c)} {lang}".strip() for c, lang in cols]
    fig = make_subplots(rows=1, cols=max(1, len(cols)), subplot_titles=titles or ["no rows"], shared_yaxes=True)
    if metric not in table.metrics:
        fig.update_layout(title=f"{metric} is not in this report")
        return fig
    schemes = sorted(
        {s for _, s in table.rows}, key=lambda s: list(SCHEME_COLORS).index(s) if s in SCHEME_COLORS else 99
    )
    for j, col in enumerate(cols, 1):
        for scheme in schemes:
            pts = sorted(
                (lvl, table.cells[((lvl, sch), col, metric)])
                for lvl, sch in table.rows
                if sch == scheme and ((lvl, sch), col, metric) in table.cells
            )
            if not pts:
                continue
            color = SCHEME_COLORS.get(scheme, "#9467bd")
            name = SCHEME_LABELS.get(scheme, scheme)
            if pts[0][0] is None:  # the oracle: no speech level, a reference line
                cell = pts[0][1]
                fig.add_hline(
                    y=100 * cell.value.mean,
                    line={"dash": "dot", "color": color},
                    row=1,
                    col=j,
                    annotation_text=f"{name} {100 * cell.value.mean:.1f}",
                )
                continue
            base = table.cells.get(((0.0, "text"), col, metric))
            if scheme in ("direct", "curriculum") and base is not None and pts[0][0] > 0:
                pts = [(0.0, base)] + pts  # both schemes start from the text-only (0%) model
            fig.add_trace(
                go.Scatter(
                    x=[lvl for lvl, _ in pts],
                    y=[100 * c.value.mean for _, c in pts],
                    mode="lines+markers",
                    marker={"color": color, "size": 9, "symbol": ["star" if c.dagger else "circle" for _, c in pts]},
                    line={"color": color},
                    error_y={"type": "data", "array": [100 * (c.value.half_width or 0) for _, c in pts]},
                    text=[f"{c.value.format(4)}{' †' if c.dagger else ''} (n={c.value.n})" for _, c in pts],
                    hoverinfo="text+x",
                    name=name,
                    legendgroup=scheme,
                    showlegend=j == 1,
                ),
                row=1,
                col=j,
            )
        fig.update_xaxes(title_text="speech used (% of the corpus)", row=1, col=j)
    fig.update_yaxes(title_text="SLU-F1 (points, mean ± 95% CI)", row=1, col=1)
    fig.update_layout(
        height=420,
        template="plotly_white",
        margin={"t": 70, "b": 50},
        title="SLU-F1 vs speech level per scheme (a star marks a †)",
    )
    return fig
