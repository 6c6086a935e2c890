"""Speech-MASSIVE loader (Lee et al., Interspeech 2024): spoken MASSIVE in 12 locales, audio as WAV bytes in parquet.

Reads a local folder of the hub's parquet shards (``{locale}/{split}-NNNNN-of-NNNNN.parquet``; the gated ``test``
split lives in a separate repository, put its shards in the same folder), or fetches them from the hub when
``path`` is None and the machine is online. Splits: ``train`` (fr-FR, de-DE only), ``train_115`` (few-shot),
``validation`` (our ``dev``) and ``test``.

Each row is one recording of one MASSIVE utterance: it yields a text item (id = MASSIVE id) and a speech item whose
id is the recording's file name from the ``path`` column (falling back to the MASSIVE id) and whose audio is the
row's WAV bytes. Labels: scenario from ``scenario_str``, action from ``intent_str`` minus the scenario prefix,
entities parsed from ``annot_utt`` (``data.frames.parse_annotation``). Column names drift between revisions, so they are looked up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from data.corpus import Corpus, CorpusError
from data.example import SLUExample
from data.frames import SLUFrame, parse_annotation, strip_annotation
from data.hub import class_names, fetch_from_hub, label_name, find_shards, inline_audio, iter_rows, shard_split

HUB_ID = "FBK-MT/Speech-MASSIVE"
HUB_TEST_ID = "FBK-MT/Speech-MASSIVE-test"
LOCALES = ("ar-SA", "de-DE", "es-ES", "fr-FR", "hu-HU", "ko-KR", "nl-NL", "pl-PL", "pt-PT", "ru-RU", "tr-TR", "vi-VN")
COLUMNS = [
    "id",
    "locale",
    "scenario",
    "scenario_str",
    "intent_idx",
    "intent_str",
    "utt",
    "annot_utt",
    "audio",
    "path",
    "speaker_id",
]


def _label(row: dict[str, Any], str_col: str, int_col: str, names: list[str] | None) -> str:
    value = row.get(str_col)
    if isinstance(value, str) and value:
        return value
    name = label_name(row.get(int_col), names)
    if name is not None:
        return name
    raise CorpusError(
        f"row {row.get('id')!r}: no {str_col} column and no class names for {int_col}; the parquet "
        f"does not look like Speech-MASSIVE"
    )


def massive_frame(scenario: str, intent: str, annot_utt: str) -> SLUFrame:
    """Frame of a MASSIVE-family row: action = intent minus the ``scenario_`` prefix, entities from brackets."""
    prefix = scenario + "_"
    action = intent[len(prefix) :] if intent.startswith(prefix) else intent.partition("_")[2]
    return SLUFrame(scenario, action or "none", parse_annotation(annot_utt))


CORPUS_LOADER = "load_speech_massive"  # registers this module as corpus "speech_massive" (data.corpus.discover_corpora)


def load_speech_massive(
    path: str | Path | None = None,
    locales: Iterable[str] | None = None,
    splits: Iterable[str] | None = None,
    hub_id: str = HUB_ID,
) -> Corpus:
    """Load Speech-MASSIVE from a folder of hub parquet shards, or from ``hub_id`` when ``path`` is None."""
    locales = list(locales) if locales else None
    wanted = {s if s != "validation" else "dev" for s in splits} if splits else None
    if path is None:
        patterns = [f"{loc}/*.parquet" for loc in locales] if locales else ["*/*.parquet"]
        root = fetch_from_hub(hub_id, patterns, local_hint="path")
    else:
        root = Path(path)
        if not root.is_dir():
            raise CorpusError(
                f"Speech-MASSIVE folder not found: {root}; pass the folder holding the hub's <locale>/*.parquet files"
            )
    shards = [p for p in find_shards(root, None) if not locales or p.parent.name in locales]
    shards = [p for p in shards if wanted is None or shard_split(p) in wanted]
    if not shards:
        raise CorpusError(
            f"{root}: no parquet shards for locales={locales or 'any'} splits={sorted(wanted or [])}"
            f"; expected <locale>/<split>-NNNNN-of-NNNNN.parquet"
        )

    texts: list[SLUExample] = []
    speech: list[SLUExample] = []
    report: dict[str, Any] = {
        "corpus": "speech_massive",
        "root": str(root),
        "shards": len(shards),
        "annotation_mismatch": 0,
        "unreadable_audio_header": 0,
        "rows_without_audio": 0,
    }
    for shard in shards:
        split = shard_split(shard)
        names_scen = class_names(shard, "scenario")
        names_int = class_names(shard, "intent_idx")
        for row in iter_rows(shard, COLUMNS):
            locale = row.get("locale") or shard.parent.name
            scenario = _label(row, "scenario_str", "scenario", names_scen)
            intent = _label(row, "intent_str", "intent_idx", names_int)
            annot = row.get("annot_utt") or row.get("utt") or ""
            utt = row.get("utt") or strip_annotation(annot)
            if strip_annotation(annot).split() != utt.split():
                report["annotation_mismatch"] += 1
            frame = massive_frame(scenario, intent, annot)
            text_id = str(row["id"])
            speaker = row.get("speaker_id")
            texts.append(
                SLUExample(
                    text_id,
                    "speech_massive",
                    locale,
                    split,
                    utt,
                    frame,
                    None,
                    text_id,
                    str(speaker) if speaker is not None else None,
                )
            )
            audio = row.get("audio") or {}
            data = audio.get("bytes") if isinstance(audio, dict) else None
            if not data:
                report["rows_without_audio"] += 1
                continue
            rec_path = row.get("path") or (audio.get("path") if isinstance(audio, dict) else None)
            rec_id = Path(rec_path).name if rec_path else text_id
            speech.append(
                SLUExample(
                    rec_id,
                    "speech_massive",
                    locale,
                    split,
                    utt,
                    frame,
                    inline_audio(data, report),
                    text_id,
                    str(speaker) if speaker is not None else None,
                )
            )
    return Corpus(texts, speech, report)
