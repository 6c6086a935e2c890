"""The prepared-corpus folder: any corpus written in one format, with a summary and a validation report.

Layout (``format_version`` 1)::

    DIR/prepared.json    what was prepared: format_version, corpus, loader arguments
    DIR/texts.jsonl      one text item per line: id, corpus, language, split, transcript, scenario, action,
                         entities [{type, filler}], text_id, speaker
    DIR/speech.jsonl     one recording per line: the same keys plus audio (path; relative to DIR when inside it)
                         and duration_s
    DIR/audio/...        recordings that arrived as bytes inside parquet rows, written out as files
    DIR/summary.json     items per split and language, speech hours, label inventory with counts
    DIR/validation.json  missing and unreadable audio, empty transcripts, unknown splits, entity fillers not in
                         their transcript, audio paths outside the manifest's folder, unknown labels, duplicate ids
    DIR/report.json      what the loader reported (e.g. missing audio, join coverage)

``load_corpus("prepared", path=DIR)`` reads it back.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from tqdm import tqdm

from data.audio import AudioError, AudioMissingError, audio_duration, load_audio
from data.corpus import (
    SPLIT_ALIASES,
    Corpus,
    CorpusError,
    duplicate_ids,
    example_from_dict,
    example_to_dict,
    iter_jsonl,
)
from data.example import AudioRef, SLUExample
from data.labels import ENTITY_TYPE_SET, INTENT_SET, SCENARIO_SET
from data.textio import read_text
from data.textio import atomic_write_text

FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _jsonl(items: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items)


def _ext(data: bytes) -> str:
    for magic, ext in ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3")):
        if data.startswith(magic):
            return ext
    return ".audio"


def materialise_audio(speech: list[SLUExample], out_dir: Path) -> list[SLUExample]:
    """Write in-memory audio to ``out_dir/audio/<language>/<split>/<id>`` and point the items at the files."""
    out = []
    for x in tqdm(speech, desc="writing audio", unit="clip", disable=len(speech) < 500):
        if x.audio is None or x.audio.data is None:
            out.append(x)
            continue
        folder = out_dir / "audio" / _UNSAFE.sub("_", x.language) / _UNSAFE.sub("_", x.split)
        folder.mkdir(parents=True, exist_ok=True)
        stem = _UNSAFE.sub("_", Path(x.id).stem) or "clip"
        file = folder / (stem + _ext(x.audio.data))
        file.write_bytes(x.audio.data)
        out.append(replace(x, audio=AudioRef(path=str(file), duration_s=x.audio.duration_s)))
    return out


def check_audio(
    speech: list[SLUExample], mode: str = "header", missing: list[dict[str, str]] | None = None
) -> tuple[list[SLUExample], list[dict[str, str]]]:
    """Fill in durations and list unreadable recordings. ``mode``: header (fast), decode (thorough), none.

    Files that are not there are listed in ``missing`` (when given) instead of among the unreadable ones: a missing
    file and a corrupt one need different fixes. With ``mode="none"`` only that cheap existence check runs.
    """
    if mode not in ("header", "decode", "none"):
        raise CorpusError(f"check_audio must be header, decode or none, got {mode!r}")
    checked, bad = [], []
    for x in tqdm(speech, desc=f"checking audio ({mode})", unit="clip", disable=len(speech) < 500 or mode == "none"):
        assert x.audio is not None
        entry = {"id": x.id, "language": x.language, "split": x.split}
        try:
            if x.audio.data is None and not _exists(x.audio.path):
                raise AudioMissingError(f"{x.audio.path}: audio file not found")
            if mode == "decode":
                duration = len(load_audio(x.audio, max_seconds=None)) / 16000
                x = replace(x, audio=replace(x.audio, duration_s=duration))
            elif mode == "header":
                duration = audio_duration(x.audio.data if x.audio.data is not None else x.audio.path)
                x = replace(x, audio=replace(x.audio, duration_s=duration))
        except AudioMissingError:
            (missing if missing is not None else bad).append(
                {**entry, "audio": str(x.audio.path), "problem": "audio file not found"}
            )
        except AudioError as exc:
            bad.append({**entry, "problem": str(exc)})
        checked.append(x)
    return checked, bad


def _exists(path: str | None) -> bool:
    try:
        return path is not None and Path(path).exists()
    except (OSError, ValueError):
        return False


def _squash(text: str) -> str:
    """Letters and digits only, lowercased: "Five a.m." and "five am" compare equal; a wrong filler does not."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def fillers_not_in_transcript(items: Iterable[SLUExample]) -> list[dict[str, str]]:
    """Entities whose filler does not occur in the item's transcript (ignoring case, spaces and punctuation): a
    label that belongs to another utterance, or a typo in the filler or the transcript."""
    out = []
    for x in items:
        said = _squash(x.transcript)
        for e in x.frame.entities:
            if _squash(e.filler) not in said:
                out.append(
                    {
                        "id": x.id,
                        "language": x.language,
                        "split": x.split,
                        "type": e.type,
                        "filler": e.filler,
                        "transcript": x.transcript,
                    }
                )
    return out


def summarize(corpus: Corpus) -> dict[str, Any]:
    items: dict[str, dict[str, dict[str, float]]] = {}
    for kind, group in (("texts", corpus.texts), ("speech", corpus.speech)):
        for x in group:
            cell = items.setdefault(x.split, {}).setdefault(x.language, {"texts": 0, "speech": 0, "speech_hours": 0.0})
            cell[kind] += 1
            if kind == "speech" and x.audio is not None and x.audio.duration_s:
                cell["speech_hours"] += x.audio.duration_s / 3600
    labelled = corpus.texts or corpus.speech
    return {
        "items": items,
        "texts": len(corpus.texts),
        "speech": len(corpus.speech),
        "speech_hours": round(sum(x.audio.duration_s or 0.0 for x in corpus.speech if x.audio) / 3600, 4),
        "speech_without_duration": sum(1 for x in corpus.speech if x.audio and x.audio.duration_s is None),
        "labels": {
            "scenarios": dict(Counter(x.frame.scenario for x in labelled).most_common()),
            "intents": dict(Counter(x.frame.intent for x in labelled).most_common()),
            "entity_types": dict(Counter(e.type for x in labelled for e in x.frame.entities).most_common()),
        },
    }


KNOWN_SPLITS = frozenset(SPLIT_ALIASES.values())


def validate(
    corpus: Corpus, unreadable: list[dict[str, str]], missing: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The validation report: every problem by name (ids, paths), and ``ok`` when none makes the corpus unfit."""
    everything = corpus.texts + corpus.speech
    unknown = {
        "scenarios": dict(Counter(x.frame.scenario for x in everything if x.frame.scenario not in SCENARIO_SET)),
        "intents": dict(Counter(x.frame.intent for x in everything if x.frame.intent not in INTENT_SET)),
        "entity_types": dict(
            Counter(e.type for x in everything for e in x.frame.entities if e.type not in ENTITY_TYPE_SET)
        ),
    }
    report = {
        "unreadable_audio": unreadable,
        "missing_audio": list(missing or []),
        "empty_transcripts": [x.id for x in everything if not x.transcript.strip()],
        "unknown_labels": unknown,
        "unknown_splits": dict(Counter(x.split for x in everything if x.split not in KNOWN_SPLITS)),
        "fillers_not_in_transcript": fillers_not_in_transcript(corpus.texts),
        "audio_outside_folder": list(corpus.report.get("audio_outside_folder") or []),
        "duplicate_ids": {
            "texts": [list(k) for k in duplicate_ids(corpus.texts)],
            "speech": [list(k) for k in duplicate_ids(corpus.speech)],
        },
    }
    # Reported but not failed: unknown labels (a user's own label set), an audio path outside the manifest's folder
    # (a shared audio folder may be meant) and fillers not in the transcript (the official SLURP devel split has two,
    # e.g. "rihana" in "tell me about rihanna", and is scored as it is). Everything else makes the corpus unfit.
    report["ok"] = not (
        report["unreadable_audio"]
        or report["missing_audio"]
        or report["empty_transcripts"]
        or report["unknown_splits"]
        or report["duplicate_ids"]["texts"]
        or report["duplicate_ids"]["speech"]
    )
    return report


def problems_line(validation: dict[str, Any]) -> str:
    """The validation report in one line, each problem by name with its first example ("" when there is none)."""
    parts = []

    def add(items: Any, what: str, example: Callable[[Any], str]) -> None:
        if items:
            first = next(iter(items.items())) if isinstance(items, dict) else items[0]
            parts.append(f"{len(items)} {what} (e.g. {example(first)})")

    add(validation.get("missing_audio"), "missing audio file(s)", lambda m: f"{m['id']}: {m.get('audio', '')}")
    add(validation.get("unreadable_audio"), "unreadable/corrupt audio file(s)", lambda m: m["problem"][:120])
    add(validation.get("empty_transcripts"), "empty transcript(s)", str)
    add(
        validation.get("unknown_splits"),
        "unknown split name(s)",
        lambda kv: f"{kv[0]!r} on {kv[1]} item(s); known: {', '.join(sorted(KNOWN_SPLITS))}",
    )
    add(
        validation.get("fillers_not_in_transcript"),
        "entity filler(s) not in the transcript (warning)",
        lambda m: f"{m['id']}: {m['type']} {m['filler']!r} in {m['transcript'][:60]!r}",
    )
    dup = validation.get("duplicate_ids") or {}
    add((dup.get("texts") or []) + (dup.get("speech") or []), "duplicate id(s)", lambda k: "/".join(map(str, k)))
    add(
        validation.get("audio_outside_folder"),
        "audio path(s) outside the manifest's folder (warning)",
        lambda m: f"{m['id']}: {m['audio']}",
    )
    unknown = {k: len(v) for k, v in (validation.get("unknown_labels") or {}).items() if v}
    if unknown:
        parts.append("unknown labels (allowed) " + ", ".join(f"{n} {k}" for k, n in unknown.items()))
    return "; ".join(parts)


def write_prepared(
    corpus: Corpus, out_dir: str | Path, *, meta: dict[str, Any] | None = None, audio_check: str = "header"
) -> dict[str, Any]:
    """Write ``corpus`` as a prepared folder; returns ``{"summary", "validation"}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    speech = materialise_audio(corpus.speech, out)
    missing: list[dict[str, str]] = []
    speech, unreadable = check_audio(speech, audio_check, missing)
    corpus = Corpus(corpus.texts, speech, corpus.report)
    root = out.resolve()

    def rel(x: SLUExample) -> str:
        p = Path(x.audio.path).resolve()  # type: ignore[union-attr, arg-type]
        return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)

    summary, validation = summarize(corpus), validate(corpus, unreadable, missing)
    atomic_write_text(out / "texts.jsonl", _jsonl(example_to_dict(x) for x in corpus.texts))
    atomic_write_text(out / "speech.jsonl", _jsonl(example_to_dict(x, audio_path=rel(x)) for x in speech))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    atomic_write_text(out / "validation.json", json.dumps(validation, indent=2, ensure_ascii=False))
    atomic_write_text(out / "report.json", json.dumps(corpus.report, indent=2, ensure_ascii=False, default=str))
    names = sorted({x.corpus for x in corpus.texts} | {x.corpus for x in corpus.speech})
    atomic_write_text(
        out / "prepared.json",
        json.dumps({"format_version": FORMAT_VERSION, **(meta or {}), "corpus_names": names}, indent=2, default=str),
    )
    return {"summary": summary, "validation": validation}


def _read_jsonl(file: Path, resolve: Callable[[str], str]) -> list[SLUExample]:
    items = []
    for lineno, row in iter_jsonl(file):
        try:
            items.append(example_from_dict(row, resolve=resolve))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(f"{file}, line {lineno}: not a prepared item ({exc!r})") from None
    return items


def _read_meta(root: Path) -> dict[str, Any]:
    meta_file = root / "prepared.json"
    if not meta_file.is_file():
        raise CorpusError(
            f"{root}: not a prepared corpus folder (no prepared.json); make one with "
            f"`python -m data.prepare CORPUS --path ... --out {root}`"
        )
    try:
        meta = json.loads(read_text(meta_file, CorpusError))
    except (ValueError, RecursionError) as exc:
        raise CorpusError(f"{meta_file}: not valid JSON ({exc}); prepare the folder again") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CorpusError(
            f"{root}: prepared format {version} is not {FORMAT_VERSION}; prepare it again with this version"
        )
    return meta


def prepared_corpus_name(path: str | Path) -> str:
    """The name of the corpus in a prepared folder (``slurp``, ``italic``, ``speech_massive``, a manifest's own name;
    several joined by ``+``), from ``prepared.json``; what results rows and reports call it."""
    meta = _read_meta(Path(path))
    names = meta.get("corpus_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return "+".join(names)
    return str(meta.get("corpus") or "prepared")


CORPUS_LOADER = "load_prepared"  # registers this module as corpus "prepared" (data.corpus.discover_corpora)


def load_prepared(path: str | Path) -> Corpus:
    """Read a prepared folder back into a Corpus (audio paths resolved against the folder)."""
    root = Path(path)
    meta = _read_meta(root)

    def resolve(p: str) -> str:
        return p if Path(p).is_absolute() else str(root / p)

    report_file = root / "report.json"
    try:
        report = json.loads(read_text(report_file, CorpusError)) if report_file.is_file() else {}
    except (ValueError, RecursionError) as exc:
        raise CorpusError(f"{report_file}: not valid JSON ({exc}); prepare the folder again") from None
    return Corpus(
        _read_jsonl(root / "texts.jsonl", resolve),
        _read_jsonl(root / "speech.jsonl", resolve),
        {"prepared": meta, "loader": report},
    )
