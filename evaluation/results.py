"""The results table: one row per evaluated run, written by training and sweeps, read by reports and the planner.

Stored as CSV (``results.csv``). Appends are atomic (write a temporary file, then rename), so a crash never leaves a
half-written table, and hold a lock on the table (``table_lock``), so writers running at once lose no row.
``merge_duplicates`` keeps one row per experiment for everything that averages seeds. The schema is documented in the README; ``RESULT_COLUMNS`` is its single source of truth.
No torch here: the planner and the report read this module.
"""

from __future__ import annotations

import csv
import io
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

try:
    import fcntl
except ImportError:  # Windows: no flock; writes stay atomic but are not serialised
    fcntl = None  # type: ignore[assignment]

from data.textio import atomic_write_text, read_text
from evaluation.metrics import METRIC_KEYS

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


# One experiment: the row key without the run folder. Two rows that share it are the same seed of the same
# configuration (a copied run folder, a table concatenated twice); counting both would fake an extra seed.
EXPERIMENT_KEY: tuple[str, ...] = tuple(name for name in ROW_KEY if name != "run_dir")


def merge_duplicates(rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with each experiment (``EXPERIMENT_KEY``) once, and one note per merge.

    Rows that repeat an experiment with the same scores are merged into the first (and a note says so); rows that
    repeat it with different scores are refused with a ``ResultsError`` naming both run folders, since a seed that
    counts twice makes a confidence interval look tighter than it is.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        norm = normalize_row({k: v for k, v in row.items() if k in _TYPES})
        groups.setdefault(tuple(norm[k] for k in EXPERIMENT_KEY), []).append(norm)
    kept, notes = [], []
    for key, group in groups.items():
        kept.append(group[0])
        if len(group) == 1:
            continue
        what = ", ".join(f"{k}={v}" for k, v in zip(EXPERIMENT_KEY, key) if v not in ("", None))
        dirs = [g["run_dir"] or "?" for g in group]
        scores = {tuple(g[c] for c in RESULT_COLUMNS if c not in ROW_KEY) for g in group}
        if len(scores) > 1:
            raise ResultsError(
                f"{len(group)} rows for the same experiment ({what}) with different scores "
                f"(run_dir {', '.join(dirs)}); one seed must count once: delete the extra rows, "
                f"or give the runs different seeds"
            )
        notes.append(f"merged {len(group)} identical rows for {what} (run_dir {', '.join(dirs)}): counted as one seed")
    return kept, notes


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a results CSV; missing optional columns are allowed, required identity columns are not."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file not found: {path}")
    reader = csv.DictReader(io.StringIO(read_text(path, ResultsError, what="results file"), newline=""))
    rows = []
    try:
        header = reader.fieldnames or []
        required = {"corpus", "language", "scheme", "speech_percent", "seed"}
        missing = required - set(header)
        if missing:
            raise ResultsError(f"{path}: missing column(s) {sorted(missing)}; the schema is in the README")
        for raw in reader:
            lineno = reader.line_num
            if None in raw:
                raise ResultsError(f"{path}, line {lineno}: more fields than the header has columns")
            # Unknown columns are ignored on reading, so a newer file stays readable by older code.
            known = {k: v for k, v in raw.items() if k in _TYPES}
            try:
                rows.append(normalize_row(known))
            except ResultsError as exc:
                raise ResultsError(f"{path}, line {lineno}: {exc}") from None
    except csv.Error as exc:
        raise ResultsError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


@contextmanager
def table_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on a results table for a read-modify-write.

    The lock is ``fcntl.flock`` on a sidecar file (``.results.csv.lock`` beside the table), not on the table itself,
    because the table is replaced by a rename on every write and a lock on the old inode would not exclude a writer
    that opened the new one. The kernel drops the lock when its holder dies, so a killed writer never leaves a
    stale lock. It works between processes on one machine (Linux, macOS; NFS v4 emulates it); where ``fcntl`` is
    missing (Windows) writes are still atomic but not serialised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_unlocked(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    for row in rows:
        norm = normalize_row(row)
        writer.writerow([_format(norm[c]) for c in RESULT_COLUMNS])
    atomic_write_text(path, buf.getvalue())


def write_results(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace the table with ``rows`` (atomically, under the table's lock)."""
    rows = list(rows)
    with table_lock(path):
        _write_unlocked(path, rows)


def append_results(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Add rows, replacing any earlier row with the same ``ROW_KEY`` (re-evaluating a run overwrites its row for
    that split, never duplicates it). The read-modify-write holds the table's lock (``table_lock``), so writers
    running at once each see the others' rows; the table itself is rewritten atomically."""
    path = Path(path)
    new = {row_key(r): r for r in (normalize_row(r) for r in rows)}
    with table_lock(path):
        existing = read_results(path) if path.is_file() else []
        kept = [r for r in existing if row_key(r) not in new]
        _write_unlocked(path, kept + list(new.values()))
