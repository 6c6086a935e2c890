"""SLURP loader: the release's ``train.jsonl`` / ``devel.jsonl`` / ``test.jsonl`` plus the ``slurp_real`` audio folder.

Real recordings only (the paper's setting; ``train_synthetic.jsonl`` and ``slurp_synth`` are never read). One text
item per ``slurp_id`` and one speech item per recording, whose id is the recording's file name (the key of SLURP's
prediction files). The gold frame follows the official scorer: scenario and action from their fields (not from the
``intent`` field), entity fillers from the token surfaces of each span, lowercased and joined by spaces.

Audio: ``audio_dir`` (default: the release layout's ``audio/slurp_real`` two levels above the jsonl folder, if it
exists). Recordings whose file is not there are counted in the report and, by ``missing_audio``, kept (their path
points where the file should be), dropped (counted), or refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

from data.corpus import Corpus, CorpusError, iter_jsonl
from data.example import AudioRef, SLUExample
from data.frames import Entity, SLUFrame

SPLIT_FILES = {"train": "train.jsonl", "dev": "devel.jsonl", "test": "test.jsonl"}
LANGUAGE = "en-US"


def slurp_frame(row: dict[str, Any]) -> SLUFrame:
    """Gold frame of one SLURP row, built as the official scorer builds it."""
    surfaces = {tok["id"]: tok["surface"] for tok in row["tokens"]}
    entities = []
    for ent in row.get("entities", []):
        filler = " ".join(surfaces[i].lower() for i in ent["span"])
        entities.append(Entity(ent["type"], filler))
    return SLUFrame(row["scenario"], row["action"], tuple(entities))


def _default_audio_dir(jsonl_dir: Path) -> Path | None:
    for candidate in (
        jsonl_dir.parent.parent / "audio" / "slurp_real",
        jsonl_dir / "slurp_real",
        jsonl_dir / "audio" / "slurp_real",
    ):
        if candidate.is_dir():
            return candidate
    return None


def _split_files(path: Path, splits: Iterable[str]) -> list[tuple[str, Path]]:
    if path.is_file():
        name = {v: k for k, v in SPLIT_FILES.items()}.get(path.name)
        if name is None:
            raise CorpusError(f"{path}: not a SLURP split file; expected one of {', '.join(SPLIT_FILES.values())}")
        return [(name, path)]
    if not path.is_dir():
        raise CorpusError(f"SLURP path not found: {path}; pass the release's dataset/slurp folder or one jsonl file")
    found = [(s, path / SPLIT_FILES[s]) for s in splits if (path / SPLIT_FILES[s]).is_file()]
    if not found:
        raise CorpusError(
            f"{path}: none of {', '.join(SPLIT_FILES[s] for s in splits)} found; pass the SLURP "
            f"release's dataset/slurp folder"
        )
    return found


CORPUS_LOADER = "load_slurp"  # registers this module as corpus "slurp" (data.corpus.discover_corpora)


def load_slurp(
    path: str | Path,
    audio_dir: str | Path | None = None,
    splits: Iterable[str] = ("train", "dev", "test"),
    missing_audio: str = "keep",
) -> Corpus:
    """Load SLURP from a folder of split jsonl files (or one file); see the module docstring."""
    if missing_audio not in ("keep", "drop", "error"):
        raise CorpusError(f"missing_audio must be keep, drop or error, got {missing_audio!r}")
    path = Path(path)
    splits = [s if s in SPLIT_FILES else {"devel": "dev", "validation": "dev"}.get(s, s) for s in splits]
    unknown = [s for s in splits if s not in SPLIT_FILES]
    if unknown:
        raise CorpusError(f"unknown SLURP split(s) {unknown}; choose from train, dev, test")
    files = _split_files(path, splits)
    jsonl_dir = files[0][1].parent
    if audio_dir is not None:
        audio_root: Path | None = Path(audio_dir)
        if not audio_root.is_dir():
            raise CorpusError(
                f"SLURP audio folder not found: {audio_root}; download slurp_real with the "
                f"release's scripts/download_audio.sh, or omit audio_dir for text only"
            )
    else:
        audio_root = _default_audio_dir(jsonl_dir)
    present = {p.name for p in audio_root.iterdir()} if audio_root is not None else set()

    texts: list[SLUExample] = []
    speech: list[SLUExample] = []
    report: dict[str, Any] = {"corpus": "slurp", "audio_dir": str(audio_root) if audio_root else None, "splits": {}}
    for split, file in files:
        n_rec = n_missing = 0
        missing_examples: list[str] = []
        for lineno, row in iter_jsonl(file):
            try:
                frame = slurp_frame(row)
                text_id = str(row["slurp_id"])
                transcript = row["sentence"]
                recordings = row.get("recordings", [])
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{file}, line {lineno}: not a SLURP row ({exc!r})") from None
            texts.append(SLUExample(text_id, "slurp", LANGUAGE, split, transcript, frame, None, text_id))
            for rec in recordings:
                name = rec["file"]
                n_rec += 1
                if name not in present:
                    n_missing += 1
                    if len(missing_examples) < 5:
                        missing_examples.append(name)
                    if missing_audio == "drop":
                        continue
                where = str(audio_root / name) if audio_root is not None else name
                speech.append(
                    SLUExample(name, "slurp", LANGUAGE, split, transcript, frame, AudioRef(path=where), text_id)
                )
        report["splits"][split] = {
            "texts": sum(1 for t in texts if t.split == split),
            "recordings": n_rec,
            "audio_found": n_rec - n_missing,
            "audio_missing": n_missing,
            "missing_examples": missing_examples,
            "missing_handling": missing_audio,
        }
    total_missing = sum(s["audio_missing"] for s in report["splits"].values())
    report["audio_missing"] = total_missing
    if total_missing:
        where = f"in {audio_root}" if audio_root is not None else "(no slurp_real folder found)"
        msg = (
            f"SLURP: {total_missing} of {sum(s['recordings'] for s in report['splits'].values())} recordings "
            f"have no audio file {where}"
        )
        if missing_audio == "error":
            raise CorpusError(msg + "; pass audio_dir=<.../audio/slurp_real> or missing_audio='keep'/'drop'")
        warnings.warn(
            f"{msg}; {'dropped' if missing_audio == 'drop' else 'kept without a readable file'}", stacklevel=2
        )
    return Corpus(texts, speech, report)
