"""Where the embedded demo (the Mini-LALM checkpoints shipped in ``demo/``) lives, and what it holds.

``demo/`` is written by ``python -m training.demo`` (see demo/README.md for how it was made and what it scores):

    demo/runs/<name>/model/          a checkpoint folder (load_model reads it), float16 weights
    demo/runs/<name>/config.json     the run's settings (scheme, speech percent, seed, corpus)
    demo/runs/<name>/curves.csv      dev SLU-F1 and training loss over steps
    demo/runs/<name>/eval/<set>/     metrics.json (+ per voice) and predictions.jsonl on the held-out sets
    demo/examples/manifest.jsonl     example clips spoken by voices no model was trained on (manifest format)
    demo/results.csv, demo/report.md the mini Table 2 of the sweep the checkpoints come from

``DEMO_RUNS`` orders the runs as the app shows them: the best checkpoint first.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
DEMO_RUNS = ("best", "text-only", "low-speech")


class DemoMissing(FileNotFoundError):
    """The demo folder is absent or incomplete (a partial clone, or deleted files)."""


def demo_run_dir(name: str = "best", root: Path | None = None) -> Path:
    path = (root or DEMO_DIR) / "runs" / name
    if not (path / "model" / "config.json").is_file():
        raise DemoMissing(
            f"the demo checkpoint {name!r} is missing ({path / 'model'}); restore demo/ from git "
            "(`git checkout -- demo`) or rebuild it with `python -m training.demo`"
        )
    return path


def demo_model_dir(name: str = "best", root: Path | None = None) -> Path:
    return demo_run_dir(name, root) / "model"


def demo_runs(root: Path | None = None) -> list[Path]:
    """The demo run folders that are present, best first."""
    out = []
    for name in DEMO_RUNS:
        try:
            out.append(demo_run_dir(name, root))
        except DemoMissing:
            continue
    return out


def demo_clips(root: Path | None = None) -> list[dict]:
    """Example clips: ``[{"path", "transcript", "scenario", "action", "entities", "speaker"}]`` (may be empty)."""
    index = (root or DEMO_DIR) / "examples" / "manifest.jsonl"
    if not index.is_file():
        return []
    rows = []
    for line in index.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["path"] = str(index.parent / row["audio"])
            rows.append(row)
    return rows
