"""A user's own data: a JSONL or CSV manifest, one row per utterance (the format most users bring).

Columns (JSONL keys or CSV header; only ``transcript`` and the labels are required):

- ``transcript``: what was said (may be omitted when ``annotation`` is given);
- ``audio``: path to the recording, relative to the manifest's folder (or absolute); empty for text-only rows;
- ``split``: train / dev / test (default: ``default_split``); ``language``: a locale such as ``en-US``;
- labels, either ``scenario`` + ``action`` (or ``intent`` = ``scenario_action``) with optional ``entities``
  (a list of ``{"type", "filler"}``; in CSV a JSON string), or ``annotation``, a MASSIVE-style bracketed transcript
  ``wake me up at [time : five am]`` (entities are read from it);
- optional ``id`` (default ``<manifest name>-<row>``), ``text_id`` (rows that share it are recordings of one text),
  ``speaker``, ``duration_s``, ``corpus``.

Every row gives a speech item when it has audio; text items are one per ``text_id`` (default: the row's id).
Fillers are normalised (lowercase, single spaces), like every other corpus.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

from data.corpus import Corpus, CorpusError, iter_jsonl, normalize_split
from data.example import AudioRef, SLUExample
from data.textio import read_text
from data.frames import Entity, SLUFrame, normalize_text, parse_annotation, split_intent, strip_annotation

FIELDS = (
    "id",
    "text_id",
    "transcript",
    "audio",
    "split",
    "language",
    "scenario",
    "action",
    "intent",
    "entities",
    "annotation",
    "speaker",
    "duration_s",
    "corpus",
)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(path, CorpusError, what="manifest"), newline=""))
        try:
            if not reader.fieldnames:
                raise CorpusError(f"{path}: empty CSV; the first line must be a header")
            for row in reader:
                if None in row:
                    raise CorpusError(f"{path}, line {reader.line_num}: more fields than the header has columns")
                yield reader.line_num, {k.strip(): v for k, v in row.items()}
        except csv.Error as exc:
            raise CorpusError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
        return
    yield from iter_jsonl(path)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(row: dict[str, Any], key: str, where: str) -> str | None:
    """A column's value as stripped text, None when blank; a list, object or true/false is refused by name."""
    value = row.get(key)
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CorpusError(f"{where}: column {key!r} must be text, got {type(value).__name__} {str(value)[:60]!r}")
    return str(value).strip()


def _entities(value: Any, where: str) -> tuple[Entity, ...]:
    if _blank(value):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise CorpusError(f'{where}: entities must be a JSON list of {{"type", "filler"}} objects') from None
    if not isinstance(value, list):
        raise CorpusError(f'{where}: entities must be a list of {{"type", "filler"}} objects')
    out = []
    for ent in value:
        if isinstance(ent, dict) and "type" in ent and "filler" in ent:
            etype, filler = ent["type"], ent["filler"]
        elif isinstance(ent, (list, tuple)) and len(ent) == 2:
            etype, filler = ent
        else:
            raise CorpusError(f'{where}: bad entity {ent!r}; use {{"type": ..., "filler": ...}}')
        etype, filler = normalize_text(str(etype)), normalize_text(str(filler))
        if not etype or not filler:
            raise CorpusError(f"{where}: entity {ent!r} has an empty type or filler")
        out.append(Entity(etype, filler))
    return tuple(out)


def _audio_path(audio: str, base: Path, where: str) -> tuple[Path, bool]:
    """The audio column as a path (absolute as given, else relative to ``base``) and whether a relative path climbs
    out of the manifest's folder (``../../etc/x.wav``), which the loader reports by name."""
    if "\x00" in audio or len(audio) > 4096:
        raise CorpusError(
            f"{where}: the audio column is not a usable path ({len(audio)} characters"
            f"{', with a NUL character' if chr(0) in audio else ''}); give the recording's file path"
        )
    path = Path(audio)
    if path.is_absolute():
        return path, False
    return base / path, not (base / path).resolve().is_relative_to(base.resolve())


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system: it cannot be there
        return False


def _duration(value: str | None, where: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise CorpusError(f"{where}: duration_s must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise CorpusError(f"{where}: duration_s must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def row_frame(row: dict[str, Any], where: str) -> SLUFrame:
    """Gold frame of one manifest row (labels as described in the module docstring)."""
    scenario, action = _text(row, "scenario", where), _text(row, "action", where)
    if not scenario or not action:
        intent = _text(row, "intent", where)
        if not intent:
            raise CorpusError(f"{where}: no labels; give scenario and action (or intent=scenario_action)")
        scenario, action = split_intent(intent)
    annotation = _text(row, "annotation", where)
    entities = _entities(row.get("entities"), where)
    if annotation:
        if entities:
            raise CorpusError(f"{where}: give entities or annotation, not both")
        entities = parse_annotation(annotation)
    return SLUFrame(scenario, action, entities)


CORPUS_LOADER = "load_manifest"  # registers this module as corpus "manifest" (data.corpus.discover_corpora)


def load_manifest(
    path: str | Path,
    default_split: str = "train",
    default_language: str = "en-US",
    corpus: str = "manifest",
    missing_audio: str = "keep",
) -> Corpus:
    """Load a JSONL or CSV manifest (format in the module docstring); audio paths resolve from its folder."""
    path = Path(path)
    if path.is_dir():
        candidates = [p for p in (path / "manifest.jsonl", path / "manifest.csv") if p.is_file()]
        if not candidates:
            raise CorpusError(f"{path}: no manifest.jsonl or manifest.csv in this folder")
        path = candidates[0]
    if not path.is_file():
        raise CorpusError(f"manifest not found: {path}")
    if missing_audio not in ("keep", "drop", "error"):
        raise CorpusError(f"missing_audio must be keep, drop or error, got {missing_audio!r}")
    base = path.parent
    texts: dict[tuple[str, str, str], SLUExample] = {}
    speech: list[SLUExample] = []
    report: dict[str, Any] = {
        "corpus": corpus,
        "manifest": str(path),
        "rows": 0,
        "audio_missing": 0,
        "missing_examples": [],
        "unknown_columns": [],
        "audio_outside_folder": [],
    }
    unknown: set[str] = set()
    for lineno, row in _rows(path):
        where = f"{path}, line {lineno}"
        report["rows"] += 1
        unknown |= set(row) - set(FIELDS)
        frame = row_frame(row, where)
        transcript = _text(row, "transcript", where)
        if not transcript:
            annotation = _text(row, "annotation", where)
            if not annotation:
                raise CorpusError(f"{where}: empty transcript; every row needs a transcript (or an annotation)")
            transcript = strip_annotation(annotation)
        transcript = " ".join(transcript.split())
        item_id = _text(row, "id", where) or f"{path.stem}-{lineno}"
        text_id = _text(row, "text_id", where) or item_id
        split_name = _text(row, "split", where)
        split = normalize_split(split_name) if split_name else default_split
        language = _text(row, "language", where) or default_language
        name = _text(row, "corpus", where) or corpus
        speaker = _text(row, "speaker", where)
        key = (language, split, text_id)
        text = SLUExample(text_id, name, language, split, transcript, frame, None, text_id)
        if key in texts:
            if texts[key].frame != frame:
                raise CorpusError(
                    f"{where}: text_id {text_id!r} was labelled differently on an earlier row; rows "
                    f"sharing a text_id must share their labels"
                )
        else:
            texts[key] = text
        audio = _text(row, "audio", where)
        if not audio:
            continue
        audio_path, outside = _audio_path(audio, base, where)
        if outside:
            report["audio_outside_folder"].append({"id": item_id, "audio": audio})
        if not _is_file(audio_path):
            report["audio_missing"] += 1
            if len(report["missing_examples"]) < 5:
                report["missing_examples"].append(str(audio_path))
            if missing_audio == "error":
                raise CorpusError(
                    f"{where}: audio file not found: {audio_path} (paths are relative to the manifest's folder)"
                )
            if missing_audio == "drop":
                continue
        duration = _duration(_text(row, "duration_s", where), where)
        speech.append(
            SLUExample(
                item_id,
                name,
                language,
                split,
                transcript,
                frame,
                AudioRef(path=str(audio_path), duration_s=duration),
                text_id,
                speaker,
            )
        )
    if report["rows"] == 0:
        raise CorpusError(f"{path}: the manifest has no rows")
    report["unknown_columns"] = sorted(unknown)
    if report["audio_outside_folder"]:
        first = report["audio_outside_folder"][0]
        warnings.warn(
            f"{path}: {len(report['audio_outside_folder'])} audio path(s) leave the manifest's folder "
            f"(e.g. {first['id']}: {first['audio']}); check they point where you mean",
            stacklevel=2,
        )
    if report["audio_missing"]:
        warnings.warn(
            f"{path}: {report['audio_missing']} audio file(s) not found (e.g. "
            f"{report['missing_examples'][0]}); {'dropped' if missing_audio == 'drop' else 'kept'}",
            stacklevel=2,
        )
    return Corpus(list(texts.values()), speech, report)
