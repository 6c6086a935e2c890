"""SLU-F1 (or another metric) versus speech level per scheme, as a small self-contained SVG (no plotting library,
no script, renders anywhere a README is shown): ``python -m training.plots RESULTS.csv --out curves.svg``.

Each scheme is a line of seed means with 95% t-interval bars (evaluation.stats); text-only and the oracle are
horizontal reference lines. Speech levels sit at evenly spaced positions (the paper's levels are roughly
logarithmic: 2, 5, 10, 25, 50, 100 %).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape

COLORS = {"direct": "#d95f02", "curriculum": "#1b9e77", "text": "#7570b3", "oracle": "#666666"}


def _mean_ci(values: list[float]) -> tuple[float, float]:
    from evaluation.stats import mean_ci

    ci = mean_ci(values)
    return ci.mean, ci.half_width or 0.0


def scheme_curves_svg(rows: list[dict], metric: str = "slu_f1", split: str = "test", title: str = "") -> str:
    cells: dict[tuple[str, float], list[float]] = defaultdict(list)
    for r in rows:
        if r.get("split") != split or r.get(metric) in (None, ""):
            continue
        cells[(r["scheme"], float(r.get("speech_percent") or 0))].append(float(r[metric]))
    if not cells:
        raise ValueError(f"no {split!r} rows with {metric!r} to plot")
    levels = sorted({p for (s, p) in cells if s in ("direct", "curriculum")})
    stats = {k: _mean_ci(v) for k, v in cells.items()}
    lo = min(m - h for m, h in stats.values())
    hi = max(m + h for m, h in stats.values())
    pad = max((hi - lo) * 0.08, 0.01)
    lo, hi = max(lo - pad, 0.0), min(hi + pad, 1.0)
    W, H, L, R, T, B = 560, 340, 60, 140, 36, 46

    def x(i: int) -> float:
        return L + (W - L - R) * (i / max(len(levels) - 1, 1))

    def y(v: float) -> float:
        return T + (H - T - B) * (1 - (v - lo) / (hi - lo if hi > lo else 1))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
        f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="20" font-size="14">{escape(title or f"{metric} vs speech ({split})")}</text>',
    ]
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        out.append(
            f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
            f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3f}</text>'
        )
    for i, p in enumerate(levels):
        out.append(f'<text x="{x(i):.1f}" y="{H - B + 18}" text-anchor="middle">{p:g}%</text>')
    out.append(
        f'<text x="{(L + W - R) / 2:.0f}" y="{H - 8}" text-anchor="middle">speech used (share of the '
        f"training recordings)</text>"
    )
    legend_y = T + 10
    for scheme in ("text", "oracle"):
        key = (scheme, 0.0)
        if key in stats:
            m, h = stats[key]
            out.append(
                f'<line x1="{L}" x2="{W - R}" y1="{y(m):.1f}" y2="{y(m):.1f}" stroke="{COLORS[scheme]}" '
                f'stroke-dasharray="5,4"/>'
            )
            out.append(f'<text x="{W - R + 8}" y="{legend_y}" fill="{COLORS[scheme]}">{scheme} {m:.3f}</text>')
            legend_y += 18
    for scheme in ("direct", "curriculum"):
        pts = [(i, stats[(scheme, p)]) for i, p in enumerate(levels) if (scheme, p) in stats]
        if not pts:
            continue
        color = COLORS[scheme]
        path = " ".join(f"{'M' if j == 0 else 'L'}{x(i):.1f},{y(m):.1f}" for j, (i, (m, h)) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, (m, h) in pts:
            out.append(
                f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(m - h):.1f}" y2="{y(m + h):.1f}" '
                f'stroke="{color}"/><circle cx="{x(i):.1f}" cy="{y(m):.1f}" r="3" fill="{color}"/>'
            )
        out.append(f'<text x="{W - R + 8}" y="{legend_y}" fill="{color}">{scheme}</text>')
        legend_y += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"


@dataclass
class PlotConfig:
    results: str = field(
        default="", metadata={"help": "a results.csv written by the sweeps", "positional": True, "required": True}
    )
    out: str = field(default="", metadata={"help": "SVG file to write", "required": True})
    metric: str = field(
        default="slu_f1", metadata={"help": "metric plotted", "choices": ("slu_f1", "intent_accuracy", "entity_f1")}
    )
    split: str = field(default="test", metadata={"help": "split plotted"})
    title: str = field(default="", metadata={"help": "title above the plot"})


def main(argv: list[str] | None = None) -> int:
    from data.textio import atomic_write_text
    from evaluation.results import ResultsError, read_results

    from data.cli import run_cli

    def plot(args: PlotConfig) -> None:
        atomic_write_text(args.out, scheme_curves_svg(read_results(args.results), args.metric, args.split, args.title))
        print(args.out)

    return run_cli(
        plot,
        PlotConfig,
        (ResultsError, ValueError, OSError),
        argv=argv,
        prog="python -m training.plots",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
