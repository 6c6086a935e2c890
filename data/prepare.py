"""Turn any supported corpus into a prepared folder with a summary and a validation report.

    python -m data.prepare slurp --path slurp/dataset/slurp --audio-dir slurp/audio/slurp_real --out prepared/slurp
    python -m data.prepare speech_massive --path sm_parquet --locales fr-FR,de-DE --out prepared/sm
    python -m data.prepare italic --path italic_parquet --massive-path massive/1.0/data --out prepared/italic
    python -m data.prepare massive --path massive/1.0/data --locales de-DE --splits train --out prepared/massive_de
    python -m data.prepare manifest --path my_data/manifest.jsonl --out prepared/mine

The folder format is described in ``data/prepared.py``; read it back with ``load_corpus("prepared", path=OUT)``.
Prints the summary; exits 2 with one line on stderr for bad input, 1 when validation found problems and
``--strict`` is set.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from data.audio import AudioError
from data.cli import run_cli
from data.corpus import CORPORA, CorpusError, load_corpus, normalize_split
from data.prepared import problems_line, write_prepared


@dataclass
class PrepareConfig:
    corpus: str = field(
        default="manifest",
        metadata={"help": "slurp, speech_massive, italic, massive or manifest", "positional": True, "required": True},
    )
    out: str = field(default="", metadata={"help": "output folder"})
    path: str = field(default="", metadata={"help": "corpus location (folder or file; see the README)"})
    audio_dir: str = field(default="", metadata={"help": "SLURP: the slurp_real audio folder"})
    massive_path: str = field(default="", metadata={"help": "ITALIC: MASSIVE it-IT (raw jsonl or hub parquet)"})
    locales: str = field(default="", metadata={"help": "comma-separated locales to keep (default: all)"})
    splits: str = field(default="", metadata={"help": "comma-separated splits to keep (default: all)"})
    check_audio: str = field(default="header", metadata={"help": "header (fast), decode (thorough) or none"})
    strict: bool = field(default=False, metadata={"help": "exit 1 when the validation report finds problems"})

    def __post_init__(self) -> None:
        if self.corpus not in CORPORA or self.corpus == "prepared":
            raise CorpusError(
                f"unknown corpus {self.corpus!r}; choose one of {', '.join(c for c in CORPORA if c != 'prepared')}"
            )
        if not self.out:
            raise CorpusError("--out is required: the folder to write the prepared corpus to")
        if not self.path and self.corpus not in ("speech_massive",):
            raise CorpusError(f"--path is required for {self.corpus}")
        if self.corpus == "italic" and not self.massive_path:
            raise CorpusError("--massive-path is required for italic: its entities come from MASSIVE it-IT")
        if self.check_audio not in ("header", "decode", "none"):
            raise CorpusError(f"--check-audio must be header, decode or none, got {self.check_audio!r}")

    def loader_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"path": self.path or None}
        lists = {"locales": self.locales, "splits": self.splits}
        if self.corpus == "slurp":
            kw["audio_dir"] = self.audio_dir or None
            if self.splits:
                kw["splits"] = self.splits.split(",")
        elif self.corpus == "italic":
            kw["massive_path"] = self.massive_path
            if self.splits:
                kw["splits"] = self.splits.split(",")
        elif self.corpus in ("speech_massive", "massive"):
            kw.update({k: v.split(",") for k, v in lists.items() if v})
        return kw


def main(cfg: PrepareConfig) -> dict[str, Any]:
    corpus = load_corpus(cfg.corpus, **cfg.loader_kwargs())
    if cfg.corpus == "manifest":
        if cfg.locales:
            keep = set(cfg.locales.split(","))
            corpus = corpus.filter(lambda x: x.language in keep)
        if cfg.splits:
            keep_splits = {normalize_split(s) for s in cfg.splits.split(",") if s.strip()}
            corpus = corpus.filter(lambda x: x.split in keep_splits)
    if cfg.splits:
        absent = sorted({normalize_split(s) for s in cfg.splits.split(",") if s.strip()} - set(corpus.splits))
        if absent:
            raise CorpusError(
                f"--splits: no items in split(s) {', '.join(map(repr, absent))}; the corpus has "
                f"{', '.join(corpus.splits) or 'no items'} (known names: train, dev, test, train_115)"
            )
    result = write_prepared(
        corpus, cfg.out, meta={"corpus": cfg.corpus, "config": asdict(cfg)}, audio_check=cfg.check_audio
    )
    summary, validation = result["summary"], result["validation"]
    print(json.dumps({k: summary[k] for k in ("items", "texts", "speech", "speech_hours")}, indent=2))
    details = problems_line(validation)
    print(
        f"wrote {cfg.out}: validation {'ok' if validation['ok'] else 'found problems'}"
        f"{': ' + details if details else ''} (details in validation.json)",
        file=sys.stderr,
    )
    if cfg.strict and not validation["ok"]:
        raise SystemExit(1)
    return result


def cli(argv: list[str] | None = None) -> int:
    return run_cli(
        main,
        PrepareConfig,
        (CorpusError, AudioError, OSError),
        argv=argv,
        prog="python -m data.prepare",
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(cli())
