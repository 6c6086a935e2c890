"""What the Compare tab shows about a run folder: dev score curves, test metrics and a config summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appkit.catalog import Checkpoint

METRICS = ("intent_accuracy", "entity_f1", "slu_f1")
COLORS = ("#4f46e5", "#dc2626", "#16a34a", "#d97706")  # one per compared run: its score and loss lines share it
METRIC_NAMES = {"intent_accuracy": "intent acc.", "entity_f1": "entity F1", "slu_f1": "SLU-F1"}


def _find(obj: Any, key: str) -> Any:
    """A key anywhere in a (possibly nested) config dict: flat and nested TrainConfig layouts both work."""
    if isinstance(obj, dict):
        if key in obj and not isinstance(obj[key], dict):
            return obj[key]
        for value in obj.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def read_config(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def config_summary(ckpt: Checkpoint) -> dict[str, Any]:
    """Scheme, speech %, seed, corpus, language, base model and epochs of a run (dashes for non-runs)."""
    row: dict[str, Any] = {"checkpoint": ckpt.label}
    meta = read_config(ckpt.run_dir) if ckpt.run_dir else {}
    cfg = meta.get("config", meta)
    corpus = _find(cfg, "corpus")
    data = cfg.get("data", cfg) if isinstance(cfg, dict) else {}  # nested layout, or the flat one of older runs
    path = _find(data.get("corpus_args", {}) if isinstance(data, dict) else {}, "path")
    row.update(
        {
            "scheme": _find(cfg, "scheme") or "-",
            "speech %": _find(cfg, "speech_percent") if _find(cfg, "speech_percent") is not None else "-",
            "speech items": meta.get("n_speech_used", "-"),
            "seed": _find(cfg, "seed") if _find(cfg, "seed") is not None else "-",
            "corpus": (f"{corpus} ({Path(str(path)).name})" if path else corpus) or "-",
            "language": meta.get("language") or _find(cfg, "language") or "-",
            "base model": _find(cfg, "model") or ("tiny twin, untrained" if ckpt.is_demo else ckpt.load),
            "epochs": _find(cfg, "epochs") or "-",
        }
    )
    return row


def test_metrics(ckpt: Checkpoint) -> dict[str, Any]:
    """The run's scores on its test split (eval/test*/metrics.json), in points; dashes when not evaluated."""
    row: dict[str, Any] = {"checkpoint": ckpt.label}
    found = {}
    if ckpt.run_dir:
        for path in sorted((Path(ckpt.run_dir) / "eval").glob("*/metrics.json")):
            try:
                found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
    name = "test" if "test" in found else next((k for k in found if not k.endswith("oracle")), None)
    m = found.get(name, {}) if name else {}
    row["split"] = name or "-"
    for key in METRICS:
        row[METRIC_NAMES[key]] = round(100 * m[key], 2) if isinstance(m.get(key), (int, float)) else "-"
    row["items"] = m.get("n_scored", "-")
    return row


def curves_figure(ckpts: list[Checkpoint], metric: str = "slu_f1"):
    """Dev score and training loss against optimizer step, one line per run folder."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from training.run_folder import read_curves

    fig = make_subplots(
        rows=1, cols=2, subplot_titles=(f"dev {METRIC_NAMES.get(metric, metric)} (points)", "training loss")
    )
    drawn = 0
    for ckpt in ckpts:
        if ckpt.run_dir is None:
            continue
        rows = read_curves(Path(ckpt.run_dir) / "curves.csv")
        evals = [r for r in rows if r.get("kind") == "eval" and r.get(metric) is not None]
        losses = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
        group, line = ckpt.label, {"color": COLORS[drawn % len(COLORS)]}
        fig.add_trace(
            go.Scatter(
                x=[r["step"] for r in evals],
                y=[100 * r[metric] for r in evals],
                line=line,
                mode="lines+markers",
                name=group,
                legendgroup=group,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=[r["step"] for r in losses],
                y=[r["loss"] for r in losses],
                mode="lines",
                line=line,
                name=group,
                legendgroup=group,
                showlegend=False,
            ),
            row=1,
            col=2,
        )
        drawn += 1
    fig.update_xaxes(title_text="optimizer step")
    title = "score curves of the run folders" if drawn else "no run folders chosen: no curves (demo and hub models)"
    fig.update_layout(height=360, margin={"t": 60, "b": 40, "l": 50, "r": 20}, template="plotly_white", title=title)
    return fig
