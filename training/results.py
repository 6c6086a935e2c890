"""The results table: one row per evaluated run, written by training and sweeps, read by reports and the planner.

Stored as CSV (``results.csv``). Appends are atomic (write a temporary file, then rename), so a crash never leaves a
half-written table. The schema is documented in the README; ``RESULT_COLUMNS`` is its single source of truth.
No torch here: the planner and the report read this module.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from training.metrics import METRIC_KEYS

# (name, type, meaning)
SCHEMA: tuple[tuple[str, type, str], ...] = (
    ("corpus", str, "corpus name: slurp, speech_massive, italic, massive, synth, or a manifest's name"),
    ("language", str, "locale evaluated, e.g. en-US, fr-FR"),
    ("scheme", str, "text, direct, curriculum, or oracle (text-only model scored on gold transcripts)"),
    ("recipe", str, "training data recipe: mono, or cross-lingual T, T+S, T+M, T+S+M"),
    ("source_language", str, "cross-lingual source locale; empty for monolingual runs"),
    ("speech_percent", float, "share of the training speech used, in percent (0-100)"),
    ("n_speech", int, "number of distinct speech-label pairs used (N_p = round(p*N))"),
    ("seed", int, "random seed of the run"),
    ("split", str, "evaluated split: dev or test"),
    ("intent_accuracy", float, "exact match of scenario_action"),
    ("scenario_accuracy", float, "exact match of scenario"),
    ("action_accuracy", float, "exact match of action"),
    ("entity_f1", float, "SLURP span F1 (the paper's entity F1)"),
    ("word_f1", float, "SLURP span-distance F1 with word distance"),
    ("char_f1", float, "SLURP span-distance F1 with char distance"),
    ("slu_f1", float, "SLURP SLU-F1 (word and char confusion counts summed)"),
    ("slu_precision", float, "precision behind slu_f1"),
    ("slu_recall", float, "recall behind slu_f1"),
    ("n_scored", int, "gold items that had a prediction"),
    ("n_missing", int, "gold items without a prediction (skipped, as the official toolkit does)"),
    ("n_invalid", int, "model outputs that needed repair or were unusable"),
    ("run_dir", str, "run folder, relative to the results file when possible"),
)
RESULT_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in SCHEMA)
_TYPES = {name: typ for name, typ, _ in SCHEMA}
METRIC_COLUMNS = METRIC_KEYS


# What identifies one evaluated run: appending a row with the same key replaces the old one (a re-evaluation).
ROW_KEY: tuple[str, ...] = (
    "corpus",
    "language",
    "scheme",
    "recipe",
    "source_language",
    "speech_percent",
    "seed",
    "split",
    "run_dir",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("corpus", "scheme")  # must be non-empty in every row


class ResultsError(ValueError):
    """A results file or row that does not follow the documented schema."""


def _coerce(name: str, value: Any) -> Any:
    typ = _TYPES[name]
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return "" if typ is str else None
    if typ is str:
        return str(value)
    number = float(value)
    if typ is int:
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(number)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def normalize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every schema column, typed; unknown keys are rejected so typos do not vanish silently."""
    unknown = set(row) - set(RESULT_COLUMNS)
    if unknown:
        raise ResultsError(f"unknown result column(s) {sorted(unknown)}; known: {', '.join(RESULT_COLUMNS)}")
    out = {}
    for name in RESULT_COLUMNS:
        try:
            out[name] = _coerce(name, row.get(name))
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"column {name!r}: {exc}") from None
    for name in REQUIRED_COLUMNS:
        if not out[name]:
            raise ResultsError(f"column {name!r} is empty; every row needs {', '.join(REQUIRED_COLUMNS)}")
    percent = out["speech_percent"]
    if percent is not None and not 0 <= percent <= 100:
        raise ResultsError(f"column 'speech_percent' must be in [0, 100] (a percent, not a fraction), got {percent}")
    if not out["recipe"]:
        out["recipe"] = "mono"
    return out


def row_key(row: Mapping[str, Any]) -> tuple:
    """The identity of a (normalised) row: see ``ROW_KEY``."""
    return tuple(row[name] for name in ROW_KEY)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a results CSV; missing optional columns are allowed, required identity columns are not."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file not found: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        required = {"corpus", "language", "scheme", "speech_percent", "seed"}
        missing = required - set(header)
        if missing:
            raise ResultsError(f"{path}: missing column(s) {sorted(missing)}; the schema is in the README")
        rows = []
        for lineno, raw in enumerate(reader, start=2):
            if None in raw:
                raise ResultsError(f"{path}, line {lineno}: more fields than the header has columns")
            # Unknown columns are ignored on reading, so a newer file stays readable by older code.
            known = {k: v for k, v in raw.items() if k in _TYPES}
            try:
                rows.append(normalize_row(known))
            except ResultsError as exc:
                raise ResultsError(f"{path}, line {lineno}: {exc}") from None
    return rows


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see either the old or the new content, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        norm = normalize_row(row)
        writer.writerow([_format(norm[c]) for c in RESULT_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def append_results(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add rows, replacing any earlier row with the same ``ROW_KEY`` (re-evaluating a run overwrites its row for
    that split, never duplicates it). The whole table is rewritten atomically."""
    path = Path(path)
    existing = read_results(path) if path.is_file() else []
    new = {row_key(r): r for r in (normalize_row(r) for r in rows)}
    kept = [r for r in existing if row_key(r) not in new]
    write_results(path, kept + list(new.values()))
