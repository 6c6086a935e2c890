"""Seeds from stable digests: a draw that depends on what it is for (seed, item id, step), not on iteration order,
worker count or Python's salted ``hash``. The corpora (data/synth.py, data/synth_demo.py) and training's per-step
SpecAugment draws take their generators from here."""

from __future__ import annotations

import hashlib
import random
from typing import Any


def stable_seed(*parts: Any) -> int:
    """A 64-bit integer from the parts' text (``"a:b:c"``), the same on every machine and run."""
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def stable_rng(*parts: Any) -> random.Random:
    """A ``random.Random`` seeded by ``stable_seed(*parts)``."""
    return random.Random(stable_seed(*parts))
