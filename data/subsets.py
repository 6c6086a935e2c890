"""Nested, seeded speech subsets and the paper's cross-lingual training mixes.

``select_speech(speech, fraction=p, seed=s)`` keeps round(p*N) recordings. Every recording gets a rank from a
keyed hash of (seed, language, id), and a subset is the lowest-ranked items, so for one seed the 2 % subset lies
inside the 5 % one, inside 10 %, 25 %, 50 % and 100 % (the paper compares speech amounts on nested subsets), and an
item's membership does not depend on the input order. ``count=n`` takes the n lowest-ranked instead (e.g. 115 per
language for few-shot). ``per_language=True`` applies the fraction or count within each language.

``cross_lingual_mix`` builds the training data of the paper's few-shot rows (Table 3): source-language text plus a
fraction of source speech, plus target data by recipe: ``T`` target transcripts, ``T+S`` also target speech,
``T+M`` also target MASSIVE text, ``T+S+M`` all three. ``source=None`` is the paper's "No Source" row.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

from data.corpus import Corpus, CorpusError
from data.example import SLUExample

FRACTIONS = (0.02, 0.05, 0.10, 0.25, 0.50, 1.0)  # the paper's speech amounts (Table 2)


def _rank_key(seed: int, x: SLUExample) -> tuple[bytes, str]:
    digest = hashlib.blake2b(
        f"{x.language}\x00{x.split}\x00{x.id}".encode(), digest_size=16, key=str(seed).encode()
    ).digest()
    return digest, x.id  # the id breaks (astronomically unlikely) ties deterministically


def n_for_fraction(fraction: float, n_total: int) -> int:
    """N_p = round(p * N), the paper's speech count for a fraction p: the project's one definition (training's
    schemes, these subsets and the planner's reference curves all call it).

    Halves round up (``round()`` would round 0.5 to even: for p = 0.1 and N = 45 it gives 4, not 5), computed on the
    decimal value of ``fraction`` so float error cannot move a tie (0.1 * 45 is 4.5000000000000004 in floats).
    """
    if not 0.0 <= fraction <= 1.0:
        raise CorpusError(f"speech fraction must be in [0, 1], got {fraction} (did you pass a percent?)")
    if n_total < 0:
        raise CorpusError(f"corpus size must be >= 0, got {n_total}")
    exact = Fraction(repr(float(fraction))) * n_total
    return int(math.floor(exact + Fraction(1, 2)))


def _select(items: Sequence[SLUExample], fraction: float | None, count: int | None, seed: int) -> list[SLUExample]:
    if (fraction is None) == (count is None):
        raise CorpusError("give exactly one of fraction= or count=")
    n = n_for_fraction(fraction, len(items)) if fraction is not None else count
    assert n is not None
    if n < 0:
        raise CorpusError(f"count must be >= 0, got {n}")
    if n > len(items):
        raise CorpusError(f"asked for {n} speech items but only {len(items)} exist")
    ranked = sorted(items, key=lambda x: _rank_key(seed, x))
    return ranked[:n]


def select_speech(
    speech: Sequence[SLUExample],
    *,
    fraction: float | None = None,
    count: int | None = None,
    seed: int = 0,
    per_language: bool = False,
) -> list[SLUExample]:
    """A nested, seeded subset of speech items (see the module docstring); returned in rank order."""
    if not per_language:
        return _select(speech, fraction, count, seed)
    groups: dict[str, list[SLUExample]] = defaultdict(list)
    for x in speech:
        groups[x.language].append(x)
    return [x for lang in sorted(groups) for x in _select(groups[lang], fraction, count, seed)]


RECIPES: dict[str, tuple[bool, bool]] = {  # recipe -> (target speech, target MASSIVE text)
    "T": (False, False),
    "T+S": (True, False),
    "T+M": (False, True),
    "T+S+M": (True, True),
}


@dataclass(frozen=True)
class MixSpec:
    """One cross-lingual training mix."""

    recipe: str = "T+S"  # T, T+S, T+M or T+S+M
    source_speech_fraction: float | None = 0.0  # share of source speech; None = no source data at all
    target_speech_count: int | None = None  # cap on target speech (None = all given, e.g. train_115)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise CorpusError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")


def cross_lingual_mix(
    spec: MixSpec,
    *,
    source: Corpus | None,
    target: Corpus,
    massive: Corpus | None = None,
) -> Corpus:
    """Training data for one cross-lingual row: pass the training splits (e.g. fr-FR train, target train_115)."""
    with_speech, with_massive = RECIPES[spec.recipe]
    if with_massive and (massive is None or not massive.texts):
        raise CorpusError(f"recipe {spec.recipe} needs target MASSIVE text: pass massive=load_corpus('massive', ...)")
    texts: list[SLUExample] = []
    speech: list[SLUExample] = []
    composition: dict[str, Any] = {"recipe": spec.recipe, "seed": spec.seed}
    if source is not None and spec.source_speech_fraction is not None:
        source_speech = select_speech(source.speech, fraction=spec.source_speech_fraction, seed=spec.seed)
        texts += source.texts
        speech += source_speech
        composition.update(
            source_texts=len(source.texts), source_speech=len(source_speech), source_speech_total=len(source.speech)
        )
    texts += target.texts
    composition["target_texts"] = len(target.texts)
    if with_speech:
        target_speech = list(target.speech)
        if spec.target_speech_count is not None:
            target_speech = select_speech(
                target_speech, count=spec.target_speech_count, seed=spec.seed, per_language=True
            )
        speech += target_speech
        composition["target_speech"] = len(target_speech)
    if with_massive:
        assert massive is not None
        texts += massive.texts
        composition["massive_texts"] = len(massive.texts)
    return Corpus(texts, speech, {"mix": composition})
