"""The LALM-SLU app: live SLU from the microphone, checkpoints side by side, the planner and the results.

    python app.py                                    # the default checkpoints (appkit.catalog.default_checkpoints)
    python app.py --runs-dir runs --results runs/results.csv
    python app.py --checkpoints runs/a,runs/b,Qwen/Qwen2-Audio-7B-Instruct   # run folders, model folders, hub ids

Tabs: Live (microphone or upload, or a typed transcript through the text path), Compare (two to four checkpoints
on one clip, with their dev curves, test metrics and settings), Planner (target and budget modes), Results (the
Table-2-style report of the runs folder). Named API endpoints: parse, compare, plan, allocate, report. The code
lives in appkit/ (one module per concern); this file only reads the settings and starts the server. Nothing heavy
happens at import; models load on first use.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from data.cli import parse_config, run_cli  # light: no torch behind it
from appkit.catalog import AppError  # light: no torch, transformers or gradio behind it

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@dataclass
class AppConfig:
    checkpoints: str = field(
        default="",
        metadata={
            "help": "comma-separated checkpoints: 'demo' (the untrained tiny twin), run folders, model folders or hub "
            "ids in the local cache (default: the demo run folders if present, and the tiny twin)"
        },
    )
    runs_dir: str = field(
        default="runs", metadata={"help": "folder searched for run folders; they can be compared and loaded too"}
    )
    results: str = field(
        default="", metadata={"help": "results table for the Planner and Results tabs (default: RUNS_DIR/results.csv)"}
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on (127.0.0.1 = this machine only)"})
    port: int = field(default=7860, metadata={"help": "port to serve on"})
    num_beams: int = field(default=3, metadata={"help": "beam size for decoding (the paper uses 3)"})
    max_models: int = field(default=3, metadata={"help": "models kept in memory at once (least recently used go)"})
    concurrency: int = field(default=2, metadata={"help": "requests decoded at once; the rest wait in the queue"})

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")
        for name in ("num_beams", "max_models", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.checkpoints.strip() and not self.checkpoint_list():
            raise ValueError("--checkpoints is empty: give 'demo', a run folder, a model folder or a hub id")

    def checkpoint_list(self) -> list[str]:
        if not self.checkpoints.strip():
            from appkit.catalog import default_checkpoints

            return default_checkpoints()
        return [c.strip() for c in self.checkpoints.split(",") if c.strip()]


def parse_args(argv: list[str] | None = None) -> AppConfig:
    """``--runs-dir`` and ``--runs_dir`` alike, or ``--config app.yaml`` (data.cli); ConfigError on bad input."""
    return parse_config(AppConfig, argv, prog="python app.py", description=__doc__.split("\n\n")[0])


def build(cfg: AppConfig):
    """The Blocks page for ``cfg`` (checkpoints checked here: a bad one raises AppError naming it)."""
    from appkit.ui import build_demo, make_state

    state = make_state(cfg.checkpoint_list(), cfg.runs_dir, cfg.results or None, cfg.num_beams, cfg.max_models)
    return build_demo(state)


def main(argv: list[str] | None = None) -> int:
    # The app never downloads weights behind a click: hub ids must be in the local cache (HF_HUB_OFFLINE=0 lifts it).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    built: list = []
    rc = run_cli(
        lambda cfg: built.append((cfg, build(cfg))),
        AppConfig,
        (ValueError, AppError),
        argv=argv,
        prog="python app.py",
        description=__doc__.split("\n\n")[0],
    )
    if rc or not built:
        return rc
    from appkit.ui import launch

    cfg, demo = built[0]
    launch(demo, host=cfg.host, port=cfg.port, concurrency=cfg.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
