"""ITALIC loader (Koudounas et al., Interspeech 2023): Italian speech with intents; entities joined from MASSIVE it-IT.

ITALIC's parquet rows carry ``utt``, ``audio`` ({bytes, path}), ``intent`` and speaker metadata, but no slots, while
the paper reports entity F1 on it: gold entities come from MASSIVE it-IT's ``annot_utt``. The join uses
an ``id`` column when ITALIC has one that MASSIVE knows, otherwise the normalised utterance (preferring a MASSIVE row
of the same partition when the text occurs more than once). The report counts matches, misses (with examples),
ambiguous texts, intent disagreements and how many ITALIC splits agree with MASSIVE's partition (the ``massive``
config is said to be reshuffled). Unmatched rows are dropped and counted (``on_miss="drop"``) or refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

from data.corpus import Corpus, CorpusError
from data.example import SLUExample
from data.frames import normalize_text, split_intent
from data.hub import class_names, fetch_from_hub, find_shards, inline_audio, iter_rows, shard_split
from data.massive import load_massive

HUB_ID = "RiTA-nlp/ITALIC"
LANGUAGE = "it-IT"


def _shards(path: str | Path | None, config: str, splits: Iterable[str] | None, hub_id: str) -> tuple[Path, list[Path]]:
    """The parquet folder (the hub's when ``path`` is None) and its shards of the wanted splits."""
    root = fetch_from_hub(hub_id, [f"{config}/*.parquet"], local_hint="path") if path is None else Path(path)
    if not root.is_dir():
        raise CorpusError(f"ITALIC folder not found: {root}; pass the folder holding the hub's parquet files")
    shards = find_shards(root, config)
    wanted = {s if s != "validation" else "dev" for s in splits} if splits else None
    shards = [s for s in shards if wanted is None or shard_split(s) in wanted]
    if not shards:
        raise CorpusError(f"{root}: no ITALIC parquet shards (config {config!r}, splits {sorted(wanted or [])})")
    return root, shards


class _MassiveIndex:
    """MASSIVE it-IT's texts by id and by normalised utterance: where ITALIC rows find their entities."""

    def __init__(self, massive_path: str | Path) -> None:
        massive = load_massive(massive_path, locales=[LANGUAGE])
        self.by_id = {x.id: x for x in massive.texts}
        self.by_text: dict[str, list[SLUExample]] = {}
        for x in massive.texts:
            self.by_text.setdefault(normalize_text(x.transcript), []).append(x)

    def match(self, row: dict[str, Any], split: str, rep: dict[str, Any]) -> SLUExample | None:
        """The MASSIVE text of an ITALIC row: by id, else by text (same partition first); None when there is none."""
        gold = self.by_id.get(str(row["id"])) if row.get("id") is not None else None
        if gold is not None:
            rep["matched_by_id"] += 1
            return gold
        candidates = self.by_text.get(normalize_text(row.get("utt") or ""), [])
        if len({c.frame for c in candidates}) > 1:
            rep["ambiguous"] += 1
        same = [c for c in candidates if c.split == split]
        return (same or candidates or [None])[0]


def _frame(row: dict[str, Any], gold: SLUExample, intent_names: list[str] | None, rep: dict[str, Any]):
    """MASSIVE's frame with ITALIC's intent: the audio was labelled with it; the entities describe the same text."""
    intent = row.get("intent")
    if isinstance(intent, int) and intent_names:
        intent = intent_names[intent]
    frame = gold.frame
    if isinstance(intent, str) and intent:
        scenario, action = split_intent(intent)
        if (scenario, action) != (frame.scenario, frame.action):
            rep["intent_disagreements"] += 1
            frame = type(frame)(scenario, action, frame.entities)
    return frame


def _examples(
    row: dict[str, Any], n: int, split: str, gold: SLUExample, frame, rep: dict[str, Any]
) -> tuple[SLUExample, SLUExample | None]:
    """The text item of a matched row, and its speech item when the row carries audio bytes."""
    utt = row.get("utt") or ""
    text_id = str(row.get("id") if row.get("id") is not None else gold.id)
    speaker = str(row["speaker"]) if row.get("speaker") is not None else None
    text = SLUExample(text_id, "italic", LANGUAGE, split, utt, frame, None, text_id, speaker)
    audio = row.get("audio") or {}
    data = audio.get("bytes") if isinstance(audio, dict) else None
    if not data:
        return text, None
    rec = Path(audio["path"]).name if audio.get("path") else f"{split}-{n}"
    return text, SLUExample(rec, "italic", LANGUAGE, split, utt, frame, inline_audio(data, rep), text_id, speaker)


CORPUS_LOADER = "load_italic"  # registers this module as corpus "italic" (data.corpus.discover_corpora)


def load_italic(
    path: str | Path | None,
    massive_path: str | Path,
    config: str = "massive",
    splits: Iterable[str] | None = None,
    on_miss: str = "drop",
    hub_id: str = HUB_ID,
) -> Corpus:
    """Load ITALIC (local parquet folder, or ``hub_id`` when ``path`` is None) with entities from MASSIVE it-IT."""
    if on_miss not in ("drop", "error"):
        raise CorpusError(f"on_miss must be 'drop' or 'error', got {on_miss!r}")
    root, shards = _shards(path, config, splits, hub_id)
    index = _MassiveIndex(massive_path)
    texts: list[SLUExample] = []
    speech: list[SLUExample] = []
    rep: dict[str, Any] = {
        "corpus": "italic",
        "root": str(root),
        "config": config,
        "rows": 0,
        "matched": 0,
        "matched_by_id": 0,
        "missed": 0,
        "miss_examples": [],
        "ambiguous": 0,
        "intent_disagreements": 0,
        "same_partition": 0,
        "unreadable_audio_header": 0,
    }
    for shard in shards:
        split = shard_split(shard)
        intent_names = class_names(shard, "intent")
        for n, row in enumerate(iter_rows(shard, ["id", "utt", "audio", "intent", "speaker"])):
            rep["rows"] += 1
            gold = index.match(row, split, rep)
            if gold is None:
                rep["missed"] += 1
                if len(rep["miss_examples"]) < 5:
                    rep["miss_examples"].append(f"{split}: {row.get('utt') or ''!r}")
                continue
            rep["matched"] += 1
            rep["same_partition"] += gold.split == split
            text, rec = _examples(row, n, split, gold, _frame(row, gold, intent_names, rep), rep)
            texts.append(text)
            if rec is not None:
                speech.append(rec)
    if rep["missed"]:
        msg = (
            f"ITALIC: {rep['missed']} of {rep['rows']} rows have no MASSIVE it-IT match "
            f"(e.g. {rep['miss_examples'][0]})"
        )
        if on_miss == "error":
            raise CorpusError(msg + "; check massive_path points at MASSIVE it-IT, or load with on_miss='drop'")
        warnings.warn(msg + "; dropped", stacklevel=2)
    rep["coverage"] = rep["matched"] / rep["rows"] if rep["rows"] else 0.0
    return Corpus(texts, speech, rep)
