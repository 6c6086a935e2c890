"""Training and evaluation data of a run, from the config: corpus loaders, the speech subset, cross-lingual recipes.

Monolingual: all training transcripts of ``corpus`` (optionally one ``language``) plus the speech subset
N_p = round(p * N) of its N training recordings, chosen by ``data.subsets.select_speech`` (nested across p for a
seed, so each larger level subsumes the smaller ones, as in the paper's section 3.2).

Cross-lingual (section 3.4): the same source-language data, plus for each target language of ``target_corpus``
(its few-shot split, ``train_115`` in Speech-MASSIVE):
  T: target transcripts; S: target few-shot recordings (all of them, every epoch they are scheduled);
  M: target MASSIVE transcripts (``massive_args``). Evaluation is on each target language's splits.
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


def load_run_data(cfg: TrainConfig) -> RunData:
    source = _languages(_load(cfg.corpus, cfg.corpus_args, "corpus"), cfg.language)
    train = source.split(cfg.train_split)
    if not train.texts and not train.speech:
        raise ConfigError(f"--train_split {cfg.train_split!r} is empty in corpus {cfg.corpus!r} "
                          f"(its splits: {', '.join(source.splits)})")
    texts = subsample(train.texts, cfg.limit_train_texts, cfg.seed)
    pool = list(train.speech)
    if cfg.limit_train_texts > 0:  # keep speech consistent with the kept texts when texts are subsampled
        kept = {t.text_id or t.id for t in texts}
        pool = [s for s in pool if (s.text_id or s.id) in kept]
    n_p = cfg.n_speech if cfg.n_speech >= 0 else speech_count(cfg.speech_fraction(), len(pool))
    if n_p > len(pool):
        raise ConfigError(f"--n_speech {n_p} exceeds the {len(pool)} training recordings")
    needs_speech = cfg.scheme != "text"
    subset = select_speech(pool, n_p, cfg.seed) if (n_p and needs_speech) else []
    language = cfg.language or ",".join(source.languages)

    evals: dict[str, list[EvalSet]] = {}
    dev = None
    speech = list(subset)
    report: dict[str, Any] = {"source": source.counts(), "n_speech_pool": len(pool), "n_speech": len(subset)}
    if cfg.recipe == "mono":
        for split in cfg.eval_splits:
            part = source.split(split)
            evals[split] = [EvalSet(split, split, language, part.texts, part.speech)]
        d = source.split(cfg.dev_split)
        if d.texts or d.speech:
            dev = EvalSet(cfg.dev_split, cfg.dev_split, language, d.texts, d.speech)
    else:
        target_all = _load(cfg.target_corpus or cfg.corpus, cfg.target_corpus_args or cfg.corpus_args,
                           "target_corpus")
        missing = [lang for lang in cfg.target_languages if lang not in target_all.languages]
        if missing:
            raise ConfigError(f"--target_languages {missing} not in the target corpus "
                              f"(it has {', '.join(target_all.languages)})")
        from data.corpus import Corpus, merge_corpora
        from data.subsets import MixSpec, cross_lingual_mix

        targets = [target_all.language(lang) for lang in cfg.target_languages]
        few = merge_corpora(t.split(cfg.target_split) for t in targets)
        massive = None
        if "M" in cfg.recipe:
            m = _load("massive", cfg.massive_args, "massive_args").split("train")
            massive = merge_corpora(m.language(lang) for lang in cfg.target_languages)
        if cfg.recipe != "zero":  # zero-shot: source data only, scored on the targets
            # The source subset is already N_p = round(p * N) recordings; fraction 1.0 keeps it whole.
            mix = cross_lingual_mix(MixSpec(recipe=cfg.recipe, source_speech_fraction=1.0, seed=cfg.seed),
                                    source=Corpus(texts, speech), target=few, massive=massive)
            texts, speech = list(mix.texts), list(mix.speech)
            report["mix"] = mix.report.get("mix")
        for lang, tgt in zip(cfg.target_languages, targets):
            for split in cfg.eval_splits:
                part = tgt.split(split)
                evals.setdefault(split, []).append(EvalSet(f"{split}-{lang}", split, lang, part.texts, part.speech))
        # Score curves follow the first target language (zero/few-shot is what the run is for).
        first = target_all.language(cfg.target_languages[0]).split(cfg.dev_split)
        if first.texts or first.speech:
            dev = EvalSet(cfg.dev_split, cfg.dev_split, cfg.target_languages[0], first.texts, first.speech)
        report["target_languages"] = list(cfg.target_languages)
        language = ",".join(cfg.target_languages)
    report["n_texts"] = len(texts)
    report["n_speech_scheduled"] = len(speech)
    return RunData(texts, speech, len(pool), len(subset), language, dev, evals, report)
