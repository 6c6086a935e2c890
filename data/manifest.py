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
import json
import warnings
from pathlib import Path
from typing import Any, Iterator

from data.corpus import Corpus, CorpusError, iter_jsonl, normalize_split
from data.example import AudioRef, SLUExample
from data.frames import Entity, SLUFrame, normalize_text, parse_annotation, split_intent, strip_annotation

FIELDS = ("id", "text_id", "transcript", "audio", "split", "language", "scenario", "action", "intent", "entities",
          "annotation", "speaker", "duration_s", "corpus")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise CorpusError(f"{path}: empty CSV; the first line must be a header")
            for lineno, row in enumerate(reader, start=2):
                yield lineno, {k.strip(): v for k, v in row.items() if k is not None}
        return
    yield from iter_jsonl(path)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _entities(value: Any, where: str) -> tuple[Entity, ...]:
    if _blank(value):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise CorpusError(f"{where}: entities must be a JSON list of {{\"type\", \"filler\"}} objects") from None
    if not isinstance(value, list):
        raise CorpusError(f"{where}: entities must be a list of {{\"type\", \"filler\"}} objects")
    out = []
    for ent in value:
        if isinstance(ent, dict) and "type" in ent and "filler" in ent:
            etype, filler = ent["type"], ent["filler"]
        elif isinstance(ent, (list, tuple)) and len(ent) == 2:
            etype, filler = ent
        else:
            raise CorpusError(f"{where}: bad entity {ent!r}; use {{\"type\": ..., \"filler\": ...}}")
        etype, filler = normalize_text(str(etype)), normalize_text(str(filler))
        if not etype or not filler:
            raise CorpusError(f"{where}: entity {ent!r} has an empty type or filler")
        out.append(Entity(etype, filler))
    return tuple(out)


def row_frame(row: dict[str, Any], where: str) -> SLUFrame:
    """Gold frame of one manifest row (labels as described in the module docstring)."""
    scenario, action = row.get("scenario"), row.get("action")
    if _blank(scenario) or _blank(action):
        if _blank(row.get("intent")):
            raise CorpusError(f"{where}: no labels; give scenario and action (or intent=scenario_action)")
        scenario, action = split_intent(str(row["intent"]).strip())
    annotation = row.get("annotation")
    entities = _entities(row.get("entities"), where)
    if not _blank(annotation):
        if entities:
            raise CorpusError(f"{where}: give entities or annotation, not both")
        entities = parse_annotation(annotation)
    return SLUFrame(str(scenario).strip(), str(action).strip(), entities)


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
    report: dict[str, Any] = {"corpus": corpus, "manifest": str(path), "rows": 0, "audio_missing": 0,
                              "missing_examples": [], "unknown_columns": []}
    unknown: set[str] = set()
    for lineno, row in _rows(path):
        where = f"{path}, line {lineno}"
        report["rows"] += 1
        unknown |= set(row) - set(FIELDS)
        frame = row_frame(row, where)
        transcript = row.get("transcript")
        if _blank(transcript):
            if _blank(row.get("annotation")):
                raise CorpusError(f"{where}: empty transcript; every row needs a transcript (or an annotation)")
            transcript = strip_annotation(row["annotation"])
        transcript = " ".join(str(transcript).split())
        item_id = str(row["id"]).strip() if not _blank(row.get("id")) else f"{path.stem}-{lineno}"
        text_id = str(row["text_id"]).strip() if not _blank(row.get("text_id")) else item_id
        split = normalize_split(row["split"]) if not _blank(row.get("split")) else default_split
        language = str(row["language"]).strip() if not _blank(row.get("language")) else default_language
        name = str(row["corpus"]).strip() if not _blank(row.get("corpus")) else corpus
        speaker = str(row["speaker"]).strip() if not _blank(row.get("speaker")) else None
        key = (language, split, text_id)
        text = SLUExample(text_id, name, language, split, transcript, frame, None, text_id)
        if key in texts:
            if texts[key].frame != frame:
                raise CorpusError(f"{where}: text_id {text_id!r} was labelled differently on an earlier row; rows "
                                  f"sharing a text_id must share their labels")
        else:
            texts[key] = text
        if _blank(row.get("audio")):
            continue
        audio_path = Path(str(row["audio"]).strip())
        if not audio_path.is_absolute():
            audio_path = base / audio_path
        if not audio_path.is_file():
            report["audio_missing"] += 1
            if len(report["missing_examples"]) < 5:
                report["missing_examples"].append(str(audio_path))
            if missing_audio == "error":
                raise CorpusError(f"{where}: audio file not found: {audio_path} (paths are relative to the "
                                  f"manifest's folder)")
            if missing_audio == "drop":
                continue
        duration = float(row["duration_s"]) if not _blank(row.get("duration_s")) else None
        speech.append(SLUExample(item_id, name, language, split, transcript, frame,
                                 AudioRef(path=str(audio_path), duration_s=duration), text_id, speaker))
    if report["rows"] == 0:
        raise CorpusError(f"{path}: the manifest has no rows")
    report["unknown_columns"] = sorted(unknown)
    if report["audio_missing"]:
        warnings.warn(f"{path}: {report['audio_missing']} audio file(s) not found (e.g. "
                      f"{report['missing_examples'][0]}); {'dropped' if missing_audio == 'drop' else 'kept'}",
                      stacklevel=2)
    return Corpus(list(texts.values()), speech, report)
