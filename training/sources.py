"""Training and evaluation data of a run, from the config: corpus loaders, the speech subset, cross-lingual recipes.

Monolingual: all training transcripts of ``corpus`` (optionally one ``language``) plus the speech subset
N_p = round(p * N) of its N training recordings, chosen by ``data.subsets.select_speech`` (nested across p for a
seed, so each larger level subsumes the smaller ones, as in the paper's section 3.2).

Cross-lingual (section 3.4): the same source-language data, plus for each target language of ``target_corpus``
(its few-shot split, ``train_115`` in Speech-MASSIVE):
  T: target transcripts; S: target few-shot recordings (all of them, every epoch they are scheduled);
  M: target MASSIVE transcripts (``massive_args``). Evaluation is on each target language's splits, one
  evaluation set (and results row) per language. ``recipe="zero"`` trains on the source only; ``no_source=True``
  trains on the recipe's target data only (the paper's "No Source" row).
Target speech joins the phase's speech like the source subset, so the scheme decides when it is heard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from data.corpus import Corpus, load_corpus
from data.example import SLUExample
from training.config import ConfigError, TrainConfig
from training.plan import subsample
from training.schemes import speech_count


@dataclass
class EvalSet:
    name: str  # folder name under eval/: "<split>" or "<split>-<language>"
    split: str
    language: str
    texts: list[SLUExample]
    speech: list[SLUExample]


@dataclass
class RunData:
    texts: list[SLUExample]  # every transcript trained on (source + target text/MASSIVE)
    speech: list[SLUExample]  # the speech subset the scheme schedules (source N_p + target few-shot)
    n_speech_pool: int  # N: source training recordings available
    n_speech_source: int  # N_p actually selected from the source
    language: str  # evaluated/source locale(s) for the results table
    dev: EvalSet | None
    evals: dict[str, list[EvalSet]] = field(default_factory=dict)  # split -> sets
    report: dict[str, Any] = field(default_factory=dict)
    source_language: str = ""  # source locale(s) trained on; empty for the "No Source" row


def _load(name: str, args: dict, flag: str) -> Corpus:
    try:
        return load_corpus(name, **args)
    except Exception as exc:  # loaders raise their own errors; name the flag that chose them
        if isinstance(exc, (ValueError, OSError, KeyError)):
            raise ConfigError(f"--{flag} {name!r}: {exc}") from None
        raise


def _languages(corpus: Corpus, want: str) -> Corpus:
    if not want:
        return corpus
    if want not in corpus.languages:
        raise ConfigError(f"--language {want!r} is not in the corpus (it has {', '.join(corpus.languages) or 'none'})")
    return corpus.language(want)


def select_speech(pool: list[SLUExample], count: int, seed: int) -> list[SLUExample]:
    from data.subsets import select_speech as _select

    return list(_select(pool, count=count, seed=seed))


def _source_training(cfg: TrainConfig, source: Corpus) -> tuple[list[SLUExample], list[SLUExample]]:
    """(transcripts, speech pool) of the source's training split, texts subsampled if asked."""
    train = source.split(cfg.data.train_split)
    if not train.texts and not train.speech:
        raise ConfigError(
            f"--train_split {cfg.data.train_split!r} is empty in corpus {cfg.data.corpus!r} "
            f"(its splits: {', '.join(source.splits)})"
        )
    texts = subsample(train.texts, cfg.data.limit_train_texts, cfg.seed)
    pool = list(train.speech)
    if cfg.data.limit_train_texts > 0:  # keep speech consistent with the kept texts when texts are subsampled
        kept = {t.text_id or t.id for t in texts}
        pool = [s for s in pool if (s.text_id or s.id) in kept]
    return texts, pool


def _speech_subset(cfg: TrainConfig, pool: list[SLUExample]) -> list[SLUExample]:
    """The source speech the scheme hears: N_p of the pool (``--n_speech`` or ``--speech_percent``); none for text."""
    n_p = cfg.n_speech if cfg.n_speech >= 0 else speech_count(cfg.speech_fraction(), len(pool))
    if n_p > len(pool):
        raise ConfigError(f"--n_speech {n_p} exceeds the {len(pool)} training recordings")
    return select_speech(pool, n_p, cfg.seed) if (n_p and cfg.scheme != "text") else []


def _dev_set(cfg: TrainConfig, corpus: Corpus, language: str) -> EvalSet | None:
    """The split the score curves follow, or None when the corpus has none."""
    d = corpus.split(cfg.data.dev_split)
    if not (d.texts or d.speech):
        return None
    return EvalSet(cfg.data.dev_split, cfg.data.dev_split, language, d.texts, d.speech)


def _eval_sets(cfg: TrainConfig, corpora: list[tuple[str, Corpus]], *, per_language: bool) -> dict[str, list[EvalSet]]:
    """Split -> evaluation sets, one per (language, corpus); named ``<split>-<language>`` when ``per_language``."""
    evals: dict[str, list[EvalSet]] = {}
    for language, corpus in corpora:
        for split in cfg.data.eval_splits:
            part = corpus.split(split)
            one = EvalSet(f"{split}-{language}" if per_language else split, split, language, part.texts, part.speech)
            if per_language:
                evals.setdefault(split, []).append(one)
            else:
                evals[split] = [one]
    return evals


def _target_corpora(cfg: TrainConfig, source_items: list[SLUExample]) -> tuple[Corpus, list[Corpus]]:
    """The corpus holding the target languages and one corpus per target language, checked against the source."""
    if cfg.target_corpus:
        target_all = _load(cfg.target_corpus, cfg.target_corpus_args, "target_corpus")
    else:  # targets live in the source corpus (e.g. Speech-MASSIVE fr-FR -> de-DE): reload it unfiltered
        target_all = _load(cfg.data.corpus, cfg.data.corpus_args, "corpus")
    missing = [lang for lang in cfg.target_languages if lang not in target_all.languages]
    if missing:
        raise ConfigError(
            f"--target_languages {missing} not in the target corpus (it has {', '.join(target_all.languages)})"
        )
    both = sorted(set(cfg.target_languages) & {x.language for x in source_items})
    if both:
        raise ConfigError(
            f"--target_languages {both} also in the source training data; pick the source "
            f"locale with --language (e.g. --language en-US)"
        )
    return target_all, [target_all.language(lang) for lang in cfg.target_languages]


def _cross_lingual_mix(
    cfg: TrainConfig,
    texts: list[SLUExample],
    speech: list[SLUExample],
    target_all: Corpus,
    targets: list[Corpus],
    report: dict[str, Any],
) -> tuple[list[SLUExample], list[SLUExample]]:
    """The recipe's training data: source texts and speech plus the targets' few-shot data (and MASSIVE text)."""
    from data.corpus import merge_corpora
    from data.subsets import MixSpec, cross_lingual_mix

    few = merge_corpora(t.split(cfg.target_split) for t in targets)
    if cfg.recipe != "zero" and not few.texts and not few.speech:
        raise ConfigError(
            f"--target_split {cfg.target_split!r} holds no data for {cfg.target_languages} "
            f"(splits: {', '.join(target_all.splits)})"
        )
    massive = None
    if "M" in cfg.recipe:
        m = _load("massive", cfg.massive_args, "massive_args").split("train")
        massive = merge_corpora(m.language(lang) for lang in cfg.target_languages)
    if cfg.recipe == "zero":  # zero-shot: source data only, scored on the targets
        return texts, speech
    # The source subset is already N_p = round(p * N) recordings; fraction 1.0 keeps it whole, and fraction None is
    # the "No Source" row (data.subsets.MixSpec).
    fraction = None if cfg.no_source else 1.0
    mix = cross_lingual_mix(
        MixSpec(recipe=cfg.recipe, source_speech_fraction=fraction, seed=cfg.seed),
        source=None if cfg.no_source else Corpus(texts, speech),
        target=few,
        massive=massive,
    )
    report["mix"] = mix.report.get("mix")
    return list(mix.texts), list(mix.speech)


def load_run_data(cfg: TrainConfig) -> RunData:
    # "No Source" with its own target corpus never touches the source corpus (it may not even be on disk).
    need_source = not cfg.no_source or not cfg.target_corpus
    source = (
        _languages(_load(cfg.data.corpus, cfg.data.corpus_args, "corpus"), cfg.data.language) if need_source else None
    )
    if cfg.no_source:
        texts, pool = [], []
    else:
        assert source is not None
        texts, pool = _source_training(cfg, source)
    subset = _speech_subset(cfg, pool)
    source_language = "" if cfg.no_source else (cfg.data.language or ",".join(source.languages))
    report: dict[str, Any] = {
        "source": source.counts() if source is not None else {},
        "n_speech_pool": len(pool),
        "n_speech": len(subset),
    }
    if cfg.recipe == "mono":
        assert source is not None
        speech, language = list(subset), source_language
        evals = _eval_sets(cfg, [(language, source)], per_language=False)
        dev = _dev_set(cfg, source, language)
    else:
        target_all, targets = _target_corpora(cfg, texts + pool)
        texts, speech = _cross_lingual_mix(cfg, texts, list(subset), target_all, targets, report)
        evals = _eval_sets(cfg, list(zip(cfg.target_languages, targets)), per_language=True)
        # Score curves follow the first target language (zero/few-shot is what the run is for).
        dev = _dev_set(cfg, targets[0], cfg.target_languages[0])
        report["target_languages"] = list(cfg.target_languages)
        report["no_source"] = cfg.no_source
        language = ",".join(cfg.target_languages)
    if not texts and not speech:
        raise ConfigError("no training data: the recipe and splits chosen select nothing to train on")
    report["n_texts"] = len(texts)
    report["n_speech_scheduled"] = len(speech)
    return RunData(texts, speech, len(pool), len(subset), language, dev, evals, report, source_language=source_language)
