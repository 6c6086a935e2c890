"""Nested seeded speech subsets (the paper's 2-100 % amounts, few-shot counts) and cross-lingual mixes."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from data.corpus import Corpus, CorpusError, load_corpus
from data.subsets import FRACTIONS, MixSpec, cross_lingual_mix, n_for_fraction, select_speech

DEVEL = Path(__file__).parent / "fixtures" / "slurp" / "devel.jsonl"


@pytest.fixture(scope="module")
def slurp_speech():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_corpus("slurp", path=DEVEL).speech


def ids(items):
    return {x.id for x in items}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_fractions_are_nested_and_sized_round_p_n(slurp_speech, seed):
    n = len(slurp_speech)
    subsets = [select_speech(slurp_speech, fraction=p, seed=seed) for p in FRACTIONS]
    for p, sub in zip(FRACTIONS, subsets):
        assert len(sub) == n_for_fraction(p, n) == int(p * n + 0.5)  # halves up (the issue-10 fix)
        assert len(ids(sub)) == len(sub)
    for small, big in zip(subsets, subsets[1:]):
        assert ids(small) < ids(big)
    assert ids(subsets[-1]) == ids(slurp_speech)


def test_seeds_differ_and_input_order_does_not_matter(slurp_speech):
    a = ids(select_speech(slurp_speech, fraction=0.05, seed=0))
    b = ids(select_speech(slurp_speech, fraction=0.05, seed=1))
    assert a != b and len(a & b) < len(a) // 2  # independent draws overlap by about 5 %, not wholesale
    shuffled = list(slurp_speech)
    random.Random(3).shuffle(shuffled)
    assert ids(select_speech(shuffled, fraction=0.05, seed=0)) == a
    assert select_speech(slurp_speech, fraction=0.05, seed=0) == select_speech(slurp_speech, fraction=0.05, seed=0)


def test_counts_per_language_nest_with_fractions(slurp_speech):
    few = select_speech(slurp_speech, count=115, seed=0)
    assert len(few) == 115
    assert ids(few) <= ids(select_speech(slurp_speech, count=400, seed=0))
    with pytest.raises(CorpusError, match="only 8690 exist"):
        select_speech(slurp_speech, count=9000)
    with pytest.raises(CorpusError, match="exactly one"):
        select_speech(slurp_speech, fraction=0.1, count=3)
    with pytest.raises(CorpusError, match=r"\[0, 1\]"):
        select_speech(slurp_speech, fraction=1.5)


def test_per_language_selection(synth_corpus_dir):
    speech = load_corpus("manifest", path=synth_corpus_dir / "manifest.jsonl").split("train").speech
    per_lang = select_speech(speech, count=5, seed=0, per_language=True)
    assert sorted({x.language for x in per_lang}) == ["en-US", "fr-FR"]
    assert all(sum(x.language == lang for x in per_lang) == 5 for lang in ("en-US", "fr-FR"))


def test_cross_lingual_recipes(synth_corpus_dir):
    corpus = load_corpus("manifest", path=synth_corpus_dir / "manifest.jsonl").split("train")
    source, target = corpus.language("fr-FR"), corpus.language("en-US")
    massive = Corpus([x for x in target.texts[:5]], [], {})  # stands in for target MASSIVE text
    sizes = {}
    for recipe in ("T", "T+S", "T+M", "T+S+M"):
        mix = cross_lingual_mix(
            MixSpec(recipe, source_speech_fraction=0.5, seed=0), source=source, target=target, massive=massive
        )
        sizes[recipe] = (len(mix.texts), len(mix.speech))
        expected_source_speech = n_for_fraction(0.5, len(source.speech))
        assert sum(x.language == "fr-FR" for x in mix.speech) == expected_source_speech
        assert sum(x.language == "fr-FR" for x in mix.texts) == len(source.texts)
    nt, ns = len(target.texts), len(target.speech)
    base_t, base_s = sizes["T"]
    assert sizes["T+S"] == (base_t, base_s + ns)
    assert sizes["T+M"] == (base_t + 5, base_s)
    assert sizes["T+S+M"] == (base_t + 5, base_s + ns)
    no_source = cross_lingual_mix(
        MixSpec("T+S", source_speech_fraction=None, target_speech_count=3), source=source, target=target
    )
    assert (len(no_source.texts), len(no_source.speech)) == (nt, 3)
    with pytest.raises(CorpusError, match="needs target MASSIVE text"):
        cross_lingual_mix(MixSpec("T+M"), source=source, target=target)
    with pytest.raises(CorpusError, match="unknown recipe"):
        MixSpec("S+T")
