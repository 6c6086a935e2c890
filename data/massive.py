"""MASSIVE loader (FitzGerald et al., 2022): text only, the paper's "+M" target-language text.

Two layouts: the raw release (``1.0/data/{locale}.jsonl``, every partition in one file per locale; ``path`` may be
that folder or one file) and the hub's parquet (``{locale}/massive-{split}.parquet`` or any ``*.parquet`` under a
locale folder, with integer ``scenario``/``intent`` class labels decoded from the schema metadata).
Labels: scenario, action = intent minus the ``scenario_`` prefix, entities parsed from ``annot_utt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from data.corpus import Corpus, CorpusError, iter_jsonl, normalize_split
from data.example import SLUExample
from data.frames import strip_annotation
from data.hub import class_names, find_shards, iter_rows, label_name, shard_split
from data.speech_massive import massive_frame


def _label(value: Any, names: list[str] | None, what: str, where: str) -> str:
    name = label_name(value, names)
    if name is not None:
        return name
    raise CorpusError(
        f"{where}: {what}={value!r} is an integer label without class names in the parquet "
        f"metadata; export MASSIVE with string labels or use the raw jsonl release"
    )


def _example(row: dict[str, Any], split: str, scenario: str, intent: str) -> SLUExample:
    annot = row.get("annot_utt") or row.get("utt") or ""
    utt = row.get("utt") or strip_annotation(annot)
    text_id = str(row["id"])
    return SLUExample(
        text_id, "massive", row["locale"], split, utt, massive_frame(scenario, intent, annot), None, text_id
    )


CORPUS_LOADER = "load_massive"  # registers this module as corpus "massive" (data.corpus.discover_corpora)


def load_massive(
    path: str | Path,
    locales: Iterable[str] | None = None,
    splits: Iterable[str] | None = None,
) -> Corpus:
    """Load MASSIVE text from the raw jsonl release or the hub's parquet files (see the module docstring)."""
    root = Path(path)
    locales = set(locales) if locales else None
    wanted = {normalize_split(s) for s in splits} if splits else None
    texts: list[SLUExample] = []
    report: dict[str, Any] = {"corpus": "massive", "root": str(root)}
    if root.is_file() or (root.is_dir() and any(root.glob("*.jsonl"))):
        files = [root] if root.is_file() else sorted(root.glob("*.jsonl"))
        files = [f for f in files if locales is None or f.stem in locales]
        report["layout"] = "jsonl"
        for file in files:
            for lineno, row in iter_jsonl(file):
                try:
                    split = normalize_split(row["partition"])
                    if (wanted is None or split in wanted) and (locales is None or row["locale"] in locales):
                        texts.append(_example(row, split, row["scenario"], row["intent"]))
                except (ValueError, KeyError, TypeError) as exc:
                    raise CorpusError(f"{file}, line {lineno}: not a MASSIVE row ({exc!r})") from None
    elif root.is_dir():
        shards = [p for p in find_shards(root, None) if locales is None or p.parent.name in locales]
        shards = [p for p in shards if wanted is None or shard_split(p) in wanted]
        if not shards:
            raise CorpusError(f"{root}: no MASSIVE jsonl or parquet files for locales={sorted(locales or [])}")
        report["layout"] = "parquet"
        for shard in shards:
            split = shard_split(shard)
            scen_names, int_names = class_names(shard, "scenario"), class_names(shard, "intent")
            for row in iter_rows(shard, ["id", "locale", "partition", "scenario", "intent", "utt", "annot_utt"]):
                row.setdefault("locale", shard.parent.name)
                row["locale"] = row["locale"] or shard.parent.name
                texts.append(
                    _example(
                        row,
                        split,
                        _label(row["scenario"], scen_names, "scenario", str(shard)),
                        _label(row["intent"], int_names, "intent", str(shard)),
                    )
                )
    else:
        raise CorpusError(
            f"MASSIVE path not found: {root}; pass the release's data/ folder, one <locale>.jsonl, "
            f"or a folder of the hub's parquet files"
        )
    if not texts:
        raise CorpusError(f"{root}: no MASSIVE rows for locales={sorted(locales or [])} splits={sorted(wanted or [])}")
    return Corpus(texts, [], report)
