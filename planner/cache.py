"""A cache of learned libraries, keyed on the content of the curve library, so recommend/allocate learn once.

Learning a library (hyper-parameters plus leave-one-group-out calibration residuals) takes about a second; the
result depends only on the curves' content and the model code. So `cached_library(curves)` keys it on a SHA-256 of
every curve's values (group, name, levels, scores, CIs, seeds, unit, corpus size) plus `MODEL_VERSION`, keeps it in
memory for the process and in a small JSON file under the user's cache directory for later processes. Changing
any curve (a new sweep row) changes the key, so the library is re-learned whenever the curves change. A cache file
that cannot be read is ignored and rewritten: the cache can only cost a re-learn.

Cache directory: ``$PLANNER_CACHE_DIR``, else ``$XDG_CACHE_HOME/lalm-slu/planner``, else
``~/.cache/lalm-slu/planner``. Set ``PLANNER_CACHE_DIR=off`` to keep the cache in memory only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from planner.curves import Curve
from planner.model import WINDOWS, Calibration, HyperParams, Library, learn_library
from planner.shift import StackParams

# Bump when the model or the learning changes what a library holds: old cache files are then simply not found.
MODEL_VERSION = "planner-library-6"

_MEMORY: dict[str, Library] = {}


def cache_dir() -> Path | None:
    env = os.environ.get("PLANNER_CACHE_DIR")
    if env:
        return None if env.lower() == "off" else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lalm-slu" / "planner"


def library_key(curves: Sequence[Curve], windows: Sequence[float] = WINDOWS) -> str:
    """SHA-256 of everything learning reads; the curves' order does not matter."""
    h = hashlib.sha256(MODEL_VERSION.encode())
    h.update(repr(tuple(float(w) for w in windows)).encode())
    for c in sorted(curves, key=lambda c: (c.group, c.name)):
        h.update(repr((c.group, c.name, c.unit, float(c.corpus_size))).encode())
        for arr in (c.x, c.score, c.ci95, c.n_seeds):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def library_to_dict(lib: Library) -> dict:
    cal = lib.calibration
    return {
        "hyper": lib.hyper.to_dict(),
        "calibration": {
            "extrap": cal.extrap.tolist(),
            "interp": cal.interp.tolist(),
            "gamma": cal.gamma,
            "offset": cal.offset,
            "pools": [[w, r.tolist()] for w, r in cal.pools],
            "s0": cal.s0,
            "noise_single": cal.noise_single,
            "shift_ref": cal.shift_ref if math.isfinite(cal.shift_ref) else None,
            "stack": None if cal.stack is None else cal.stack.to_dict(),
            "slope_max": cal.slope_max if math.isfinite(cal.slope_max) else None,
            "evidence_ref": cal.evidence_ref if math.isfinite(cal.evidence_ref) else None,
            "claim_margin": cal.claim_margin,
            "extrap_stack": cal.extrap_stack.tolist(),
            "pools_stack": [[w, r.tolist()] for w, r in cal.pools_stack],
        },
        "groups": list(lib.groups),
        "notes": list(lib.notes),
    }


def library_from_dict(d: dict) -> Library:
    c = d["calibration"]
    cal = Calibration(
        np.asarray(c["extrap"], float),
        np.asarray(c["interp"], float),
        float(c["gamma"]),
        float(c["offset"]),
        tuple((float(w), np.asarray(r, float)) for w, r in c["pools"]),
        float(c["s0"]),
        float(c["noise_single"]),
        math.inf if c.get("shift_ref") is None else float(c["shift_ref"]),
        None if c.get("stack") is None else StackParams.from_dict(c["stack"]),
        math.inf if c.get("slope_max") is None else float(c["slope_max"]),
        math.inf if c.get("evidence_ref") is None else float(c["evidence_ref"]),
        float(c.get("claim_margin", 1.0)),
        np.asarray(c.get("extrap_stack", []), float),
        tuple((float(w), np.asarray(r, float)) for w, r in c.get("pools_stack", [])),
    )
    return Library(HyperParams(**d["hyper"]), cal, tuple(d["groups"]), tuple(d["notes"]))


def cached_library(curves: Sequence[Curve], windows: Sequence[float] = WINDOWS) -> Library:
    """`learn_library(curves)`, from memory or disk when these exact curves were learned before."""
    key = library_key(curves, windows)
    if key in _MEMORY:
        return _MEMORY[key]
    folder = cache_dir()
    path = folder / f"{key}.json" if folder is not None else None
    lib = None
    if path is not None and path.is_file():
        try:
            lib = library_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            lib = None  # unreadable or from an older layout: learn again and overwrite
    if lib is None:
        lib = learn_library(curves, windows)
        if path is not None:
            from data.textio import atomic_write_text  # no torch behind it

            try:
                atomic_write_text(path, json.dumps(library_to_dict(lib)))
            except OSError:
                pass  # a read-only home must not break planning; the memory cache still holds it
    _MEMORY[key] = lib
    return lib


def clear_memory() -> None:
    """Forget the in-process cache (the disk cache stays)."""
    _MEMORY.clear()
