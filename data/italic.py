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
    root = fetch_from_hub(hub_id, [f"{config}/*.parquet"], local_hint="path") if path is None else Path(path)
    if not root.is_dir():
        raise CorpusError(f"ITALIC folder not found: {root}; pass the folder holding the hub's parquet files")
    shards = find_shards(root, config)
    wanted = {s if s != "validation" else "dev" for s in splits} if splits else None
    shards = [s for s in shards if wanted is None or shard_split(s) in wanted]
    if not shards:
        raise CorpusError(f"{root}: no ITALIC parquet shards (config {config!r}, splits {sorted(wanted or [])})")

    massive = load_massive(massive_path, locales=[LANGUAGE])
    by_id = {x.id: x for x in massive.texts}
    by_text: dict[str, list[SLUExample]] = {}
    for x in massive.texts:
        by_text.setdefault(normalize_text(x.transcript), []).append(x)

    texts: list[SLUExample] = []
    speech: list[SLUExample] = []
    rep: dict[str, Any] = {"corpus": "italic", "root": str(root), "config": config, "rows": 0, "matched": 0,
                           "matched_by_id": 0, "missed": 0, "miss_examples": [], "ambiguous": 0,
                           "intent_disagreements": 0, "same_partition": 0, "unreadable_audio_header": 0}
    for shard in shards:
        split = shard_split(shard)
        intent_names = class_names(shard, "intent")
        for n, row in enumerate(iter_rows(shard, ["id", "utt", "audio", "intent", "speaker"])):
            rep["rows"] += 1
            utt = row.get("utt") or ""
            gold = by_id.get(str(row["id"])) if row.get("id") is not None else None
            if gold is not None:
                rep["matched_by_id"] += 1
            else:
                candidates = by_text.get(normalize_text(utt), [])
                if len({c.frame for c in candidates}) > 1:
                    rep["ambiguous"] += 1
                same = [c for c in candidates if c.split == split]
                gold = (same or candidates or [None])[0]
            if gold is None:
                rep["missed"] += 1
                if len(rep["miss_examples"]) < 5:
                    rep["miss_examples"].append(f"{split}: {utt!r}")
                continue
            rep["matched"] += 1
            rep["same_partition"] += gold.split == split
            intent = row.get("intent")
            if isinstance(intent, int) and intent_names:
                intent = intent_names[intent]
            frame = gold.frame
            if isinstance(intent, str) and intent:
                scenario, action = split_intent(intent)
                if (scenario, action) != (frame.scenario, frame.action):
                    rep["intent_disagreements"] += 1
                    # The audio was labelled with ITALIC's intent; MASSIVE's entities still describe the same text.
                    frame = type(frame)(scenario, action, frame.entities)
            text_id = str(row.get("id") if row.get("id") is not None else gold.id)
            speaker = str(row["speaker"]) if row.get("speaker") is not None else None
            texts.append(SLUExample(text_id, "italic", LANGUAGE, split, utt, frame, None, text_id, speaker))
            audio = row.get("audio") or {}
            data = audio.get("bytes") if isinstance(audio, dict) else None
            if not data:
                continue
            rec = Path(audio["path"]).name if audio.get("path") else f"{split}-{n}"
            speech.append(SLUExample(rec, "italic", LANGUAGE, split, utt, frame, inline_audio(data, rep), text_id,
                                     speaker))
    if rep["missed"]:
        msg = (f"ITALIC: {rep['missed']} of {rep['rows']} rows have no MASSIVE it-IT match "
               f"(e.g. {rep['miss_examples'][0]})")
        if on_miss == "error":
            raise CorpusError(msg + "; check massive_path points at MASSIVE it-IT, or load with on_miss='drop'")
        warnings.warn(msg + "; dropped", stacklevel=2)
    rep["coverage"] = rep["matched"] / rep["rows"] if rep["rows"] else 0.0
    return Corpus(texts, speech, rep)
