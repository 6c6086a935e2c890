"""Reading the Hugging Face hub's parquet layout offline, and fetching it when online.

Hub datasets store parquet shards per config (``fr-FR/train-00000-of-00009.parquet``); integer class-label
columns keep their names in the schema's ``huggingface`` metadata. Audio columns are structs ``{bytes, path}`` and
are returned undecoded (``datasets``' own decoding needs torchcodec; see notes on audio I/O).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

from data.audio import AudioError, audio_duration
from data.corpus import CorpusError, normalize_split
from data.example import AudioRef


def label_name(value: Any, names: list[str] | None) -> str | None:
    """A label cell as its name: strings pass through, integers are looked up in `names`; None when neither works."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and names:
        return names[value]
    return None


def class_names(parquet_file: Path, column: str) -> list[str] | None:
    """Names of an integer ClassLabel column from the parquet's hub metadata, if recorded."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(parquet_file).metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return None
    try:
        features = json.loads(raw)["info"]["features"]
        feature = features[column]
    except (KeyError, ValueError, TypeError):
        return None
    return feature.get("names") if isinstance(feature, dict) else None


def iter_rows(parquet_file: Path, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows as dicts, one record batch at a time (keeps memory flat on big shards)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet_file)
    available = set(pf.schema_arrow.names)
    cols = [c for c in columns if c in available] if columns else None
    for batch in pf.iter_batches(columns=cols, batch_size=256):
        yield from batch.to_pylist()


_SHARD_RE = re.compile(r"^(?:massive-)?([A-Za-z0-9_]+?)(?:-\d{5}-of-\d{5})?$")


def shard_split(file: Path) -> str:
    """The split a hub shard belongs to, from its name: ``train_115-00000-of-00001`` -> ``train_115``."""
    m = _SHARD_RE.match(file.stem)
    return normalize_split(m.group(1) if m else file.stem)


def find_shards(root: Path, config: str | None) -> list[Path]:
    base = root / config if config and (root / config).is_dir() else root
    return sorted(base.rglob("*.parquet"))


def fetch_from_hub(repo_id: str, patterns: list[str], *, local_hint: str) -> Path:
    """Download parquet shards of a hub dataset repository, or explain how to work offline."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise CorpusError(
            f"cannot fetch {repo_id} from the hub: offline mode (HF_HUB_OFFLINE) is set. Download the parquet "
            f"files elsewhere (`huggingface-cli download {repo_id} --repo-type dataset --local-dir DIR`) and "
            f"pass {local_hint}=DIR"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - network, auth (gated repos) and missing-repo errors all end here
        raise CorpusError(
            f"cannot fetch {repo_id} from the hub ({type(exc).__name__}: {exc}). If you are offline, download "
            f"the parquet files elsewhere and pass {local_hint}=DIR; gated repositories need `huggingface-cli "
            f"login` after accepting their conditions"
        ) from None


def inline_audio(data: bytes, report: dict[str, Any]) -> AudioRef:
    """An AudioRef for encoded audio bytes from a parquet row, with its duration read from the header.

    An unreadable header is counted in ``report["unreadable_audio_header"]``, not fatal here: the validation step of
    ``data.prepare`` decodes every clip and names the bad ones.
    """
    try:
        duration = audio_duration(data)
    except AudioError:
        duration = None
        report["unreadable_audio_header"] += 1
    return AudioRef(data=data, duration_s=duration)
