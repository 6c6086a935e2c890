"""The app's embedded default model: works with no download.

If the project ships a demo checkpoint (``models/demo_checkpoint/``, a tiny twin of Qwen2-Audio fine-tuned on the
synthetic espeak-ng corpus by ``python -m models.demo --train``), it is loaded through the same ``load_model`` path as
real weights. Otherwise an untrained tiny twin is built in memory, and its answers are noise: point the app at a
real checkpoint with ``--checkpoints``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_DIR = Path(__file__).resolve().parent / "demo_checkpoint"


def load_demo() -> tuple[Any, Any]:
    if (DEMO_DIR / "config.json").is_file():
        from models.loading import load_model

        return load_model(DEMO_DIR, device="cpu")
    from models.tiny import build_tiny

    return build_tiny(seed=0)
