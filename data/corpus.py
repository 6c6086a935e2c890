"""A loaded corpus (text items + speech items + a loader report) and the registry of corpus loaders.

``load_corpus(name, **kwargs)`` dispatches through ``CORPORA``; the names are ``slurp``, ``speech_massive``,
``italic``, ``massive``, ``manifest`` and ``prepared``. Each loader lives in its own module, ``data/<name>.py``, which
declares ``CORPUS_LOADER = "load_<name>"``; ``CORPORA`` is found from those lines without importing anything, and a
loader is imported only when asked for, so reading a prepared folder does not import pyarrow.

Split names are normalised to ``train``, ``dev``, ``test`` (plus Speech-MASSIVE's ``train_115``): SLURP's ``devel``
and the hub's ``validation`` both become ``dev``.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from data.example import AudioRef, SLUExample
from data.frames import SLUFrame
from data.textio import iter_json_objects

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "devel": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
    "train_115": "train_115",
}


class CorpusError(ValueError):
    """A corpus that cannot be loaded as asked; the message names the problem and the fix."""


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSON-lines file; a bad line is a CorpusError naming it."""
    return iter_json_objects(path, CorpusError)


def normalize_split(name: str) -> str:
    """Map a corpus's split name onto ours; unknown names are kept lowercased (e.g. MASSIVE's ``mmnlu-22``)."""
    key = str(name).strip().lower()
    return SPLIT_ALIASES.get(key, key)


@dataclass
class Corpus:
    """Text items (one per distinct text) and speech items (one per recording), plus what the loader noticed."""

    texts: list[SLUExample] = field(default_factory=list)
    speech: list[SLUExample] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def filter(self, keep: Callable[[SLUExample], bool]) -> "Corpus":
        return Corpus([x for x in self.texts if keep(x)], [x for x in self.speech if keep(x)], dict(self.report))

    def split(self, name: str) -> "Corpus":
        name = normalize_split(name)
        return self.filter(lambda x: x.split == name)

    def language(self, locale: str) -> "Corpus":
        return self.filter(lambda x: x.language == locale)

    @property
    def splits(self) -> list[str]:
        return sorted({x.split for x in self.texts} | {x.split for x in self.speech})

    @property
    def languages(self) -> list[str]:
        return sorted({x.language for x in self.texts} | {x.language for x in self.speech})

    def __len__(self) -> int:
        return len(self.texts) + len(self.speech)

    def __add__(self, other: "Corpus") -> "Corpus":
        return merge_corpora([self, other])

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: {language: {"texts": n, "speech": n}}}``."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for kind, items in (("texts", self.texts), ("speech", self.speech)):
            for x in items:
                cell = out.setdefault(x.split, {}).setdefault(x.language, {"texts": 0, "speech": 0})
                cell[kind] += 1
        return out


def merge_corpora(corpora: Iterable[Corpus]) -> Corpus:
    corpora = list(corpora)
    return Corpus(
        [x for c in corpora for x in c.texts],
        [x for c in corpora for x in c.speech],
        {"merged": [c.report for c in corpora]},
    )


def duplicate_ids(items: Iterable[SLUExample]) -> list[tuple[str, str, str]]:
    """(language, split, id) keys that occur more than once."""
    seen = Counter((x.language, x.split, x.id) for x in items)
    return sorted(k for k, n in seen.items() if n > 1)


# --------------------------------------------------------------------------------------------------------------
# One example as a JSON-able dict (the prepared folder's line format)


def example_to_dict(x: SLUExample, *, audio_path: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": x.id,
        "corpus": x.corpus,
        "language": x.language,
        "split": x.split,
        "transcript": x.transcript,
        **x.frame.to_dict(),
        "text_id": x.text_id,
        "speaker": x.speaker,
    }
    if x.audio is not None:
        path = audio_path if audio_path is not None else x.audio.path
        if path is None:
            raise CorpusError(f"{x.id}: in-memory audio must be written to a file before serialising")
        out["audio"] = path
        out["duration_s"] = x.audio.duration_s
    return out


def example_from_dict(obj: dict[str, Any], *, resolve: Callable[[str], str] = str) -> SLUExample:
    audio = None
    if obj.get("audio"):
        audio = AudioRef(path=resolve(obj["audio"]), duration_s=obj.get("duration_s"))
    return SLUExample(
        id=str(obj["id"]),
        corpus=obj["corpus"],
        language=obj["language"],
        split=obj["split"],
        transcript=obj["transcript"],
        frame=SLUFrame.from_dict(obj),
        audio=audio,
        text_id=obj.get("text_id"),
        speaker=obj.get("speaker"),
    )


def with_split(x: SLUExample, split: str) -> SLUExample:
    return replace(x, split=split)


# --------------------------------------------------------------------------------------------------------------
# Registry


def _lazy(module: str, function: str) -> Callable[..., Corpus]:
    def load(**kwargs: Any) -> Corpus:
        return getattr(importlib.import_module(module), function)(**kwargs)

    load.__name__ = function
    load.__doc__ = f"Loads via {module}.{function} (imported on first use)."
    return load


_MARKER = re.compile(r"^CORPUS_LOADER = [\"'](\w+)[\"']", re.MULTILINE)


def discover_corpora(folder: str | Path, package: str) -> dict[str, Callable[..., Corpus]]:
    """Every module of ``folder`` that declares ``CORPUS_LOADER = "load_<name>"``, by module name, loaded lazily.

    The modules' text is searched, not imported, so listing the corpora imports no loader (nor pyarrow). Adding a
    corpus is one file: ``data/<name>.py`` with that line and its loader function.
    """
    found: dict[str, Callable[..., Corpus]] = {}
    for path in sorted(Path(folder).glob("*.py")):
        marker = _MARKER.search(path.read_text(encoding="utf-8"))
        if marker:
            found[path.stem] = _lazy(f"{package}.{path.stem}", marker.group(1))
    return found


CORPORA: dict[str, Callable[..., Corpus]] = discover_corpora(Path(__file__).parent, "data")


def load_corpus(name: str, **kwargs: Any) -> Corpus:
    """Load a corpus by name; keyword arguments go to its loader (``path=`` for every one of them)."""
    try:
        loader = CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}") from None
    try:
        return loader(**kwargs)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "required" in str(exc):
            raise CorpusError(f"load_corpus({name!r}): {exc}") from None
        raise
