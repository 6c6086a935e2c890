"""Which checkpoints the app serves: the configured ones, checked at start-up, and the run folders under --runs-dir.

A request (from the page or the API) names a checkpoint; `Catalog.resolve` turns the name into a `Checkpoint` or
refuses it, so no caller can make the server load an arbitrary folder or hub id.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEMO = "demo"  # the embedded tiny twin of Qwen2-Audio (models/tiny.py): random weights, built in memory
# Where the lead's trained "Mini-LALM" demo run folders land (issue 12). When it holds run folders they become the
# default checkpoints and its examples/ folder the example clips: that swap is this one constant.
DEMO_RUNS_DIR = Path(__file__).resolve().parent.parent / "demo"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class AppError(ValueError):
    """A request or setting the app cannot serve; the message names the problem and the fix."""


def is_run_folder(path: Path) -> bool:
    """A training run folder: config.json and curves.csv side by side (training/run_folder.py)."""
    return (path / "config.json").is_file() and (path / "curves.csv").is_file()


def find_runs(runs_dir: str | os.PathLike | None) -> list[Path]:
    """Run folders below ``runs_dir`` (any depth), sorted; none when the folder does not exist."""
    if not runs_dir:
        return []
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("curves.csv") if is_run_folder(p.parent))


def default_checkpoints() -> list[str]:
    """The checkpoints served when --checkpoints is not given: the trained demo run folders when present (best,
    text-only, low-speech, then any other), else the untrained twin so that the app still starts."""
    from models.demo_assets import DEMO_RUNS

    runs = find_runs(DEMO_RUNS_DIR)
    if not runs:
        return [DEMO]
    rank = {name: i for i, name in enumerate(DEMO_RUNS)}
    return [str(p) for p in sorted(runs, key=lambda p: (rank.get(p.name, len(rank)), str(p)))]


@dataclass(frozen=True)
class Checkpoint:
    name: str  # what the page shows as the value and what the API takes
    label: str  # what the dropdown shows
    load: str  # DEMO, a model folder, or a hub id
    run_dir: Path | None = None  # the run folder, for its curves, metrics and config

    @property
    def is_demo(self) -> bool:
        return self.load == DEMO


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")


def _from_run(run: Path, root: Path | None = None) -> Checkpoint:
    label = str(run.relative_to(root)) if root is not None and run.is_relative_to(root) else run.name
    return Checkpoint(str(run), f"{label} (run)", str(run / "model"), run)


def check_checkpoint(spec: str) -> Checkpoint:
    """One configured checkpoint, or AppError saying why it cannot be served and what to do."""
    if spec == DEMO:
        return Checkpoint(DEMO, "demo (untrained tiny twin)", DEMO)
    path = Path(spec).expanduser()
    if path.is_dir():
        if is_run_folder(path):
            return _from_run(path)
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return Checkpoint(spec, path.name or spec, str(path))
        raise AppError(
            f"{spec}: the folder holds no checkpoint (no config.json or adapter_config.json); pass a "
            "model folder written by save_pretrained, or a run folder (config.json + curves.csv)"
        )
    if _HUB_ID.match(spec) and not path.exists() and not spec.startswith((".", "~")):
        if not _hub_cached(spec) and _offline():
            raise AppError(
                f"{spec}: not in the local Hugging Face cache, and the app runs offline; download it "
                f"once with `huggingface-cli download {spec}` (or start with HF_HUB_OFFLINE=0 to let "
                "the first request download it)"
            )
        return Checkpoint(spec, spec, spec)
    raise AppError(
        f"{spec}: no such folder; check the path, or pass 'demo' or a hub id such as Qwen/Qwen2-Audio-7B-Instruct"
    )


class Catalog:
    """The configured checkpoints plus the run folders found under ``runs_dir`` at the time of each request."""

    def __init__(self, specs: list[str], runs_dir: str | os.PathLike | None = None):
        problems, configured = [], []
        for spec in specs:
            try:
                configured.append(check_checkpoint(spec))
            except AppError as err:
                problems.append(str(err))
        if problems:
            raise AppError("cannot serve these checkpoints:\n  " + "\n  ".join(problems))
        if not configured:
            raise AppError("no checkpoints to serve: give 'demo', a hub id, a model folder or a run folder")
        self.configured = configured
        self.runs_dir = Path(runs_dir) if runs_dir else None

    def runs(self) -> list[Checkpoint]:
        root = self.runs_dir
        return [_from_run(p, root) for p in find_runs(root)]

    def all(self) -> list[Checkpoint]:
        seen, out = set(), []
        for c in self.configured + self.runs():
            key = str(Path(c.run_dir).resolve()) if c.run_dir else c.name
            if key not in seen:
                seen.add(key)
                out.append(c)
        return out

    def choices(self) -> list[tuple[str, str]]:
        return [(c.label, c.name) for c in self.all()]

    def resolve(self, name: str) -> Checkpoint:
        name = (name or "").strip()
        if not name:
            raise AppError("no checkpoint chosen; pick one from the list")
        known = self.all()
        for c in known:
            if name in (c.name, c.label):
                return c
        path = Path(name).expanduser()
        if path.exists():
            real = path.resolve()
            for c in known:
                if c.run_dir is not None and Path(c.run_dir).resolve() == real:
                    return c
        listed = ", ".join(c.name for c in known)
        raise AppError(
            f"{name}: not a checkpoint this app serves (it serves: {listed}); restart the app with "
            f"--checkpoints {name} or put the run folder under --runs-dir"
        )
