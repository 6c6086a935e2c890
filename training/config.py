"""The training run's configuration: one dataclass, filled from an optional YAML file and ``--key value`` flags.

Defaults reproduce the paper (Choi et al., section 3.2): Qwen2-Audio-7B-Instruct, AdamW, bf16 on GPU, cosine
schedule, peak LR 5e-6 / warmup 0.04 over 3 epochs, curriculum's last epoch 3e-6 / 0.02, per-device batch 2 x
gradient accumulation 8 (x 8 GPUs = 128), beam 3. Precedence: dataclass defaults < YAML file < command-line flags.

    cfg = parse_config(TrainConfig, ["--config", "configs/tiny_cpu.yaml", "--scheme", "direct", "--speech_percent", "10"])

The parsing (YAML, flags, types, aliases, errors) is ``data.cli``'s, shared by every entry point; ``ConfigError`` is
re-exported from there.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from data.cli import ConfigError
from training.schemes import SCHEMES, ScheduleSettings, SchemeError, canonical_scheme




# section 3.4: mono; zero = zero-shot (source data only, scored on the target languages); few-shot target data:
# T transcripts, +S few-shot speech, +M MASSIVE text. ``no_source`` drops the source data (the "No Source" row).
RECIPES = ("mono", "zero", "T", "T+S", "T+M", "T+S+M")
CROSS_LINGUAL_TARGET_RECIPES = ("T", "T+S", "T+M", "T+S+M")  # recipes that add target-language training data
SPLITS = ("train", "dev", "test", "train_115")


@dataclass
class TrainConfig:
    # Options renamed since runs were recorded: flags, YAML files and config.json files of older runs still work.
    ALIASES: ClassVar[dict[str, str]] = {"keep_checkpoints": "save_total_limit"}

    # --- run -------------------------------------------------------------------------------------------------
    output_dir: str = "runs/run"  # the run folder (checkpoints, curves, metrics, final model)
    seed: int = 1  # seeds the speech subset, data order and initialisation of new weights
    resume: bool = False  # continue from the newest complete checkpoint in output_dir
    results_csv: str = ""  # results table to append to; empty = <output_dir>/../results.csv
    # --- model -----------------------------------------------------------------------------------------------
    model: str = "Qwen/Qwen2-Audio-7B-Instruct"  # hub id, local checkpoint folder, or "tiny" (CPU tests)
    adapter: str = "qwen2-audio"  # key of models.registry.ADAPTERS
    lora_r: int = 0  # 0 = full fine-tuning (the paper); > 0 = LoRA rank on the language model
    lora_alpha: int = 32  # LoRA scaling numerator
    lora_dropout: float = 0.05  # LoRA dropout
    gradient_checkpointing: bool = False  # trade compute for memory on large models
    # --- data ------------------------------------------------------------------------------------------------
    corpus: str = "slurp"  # key of data.corpus.CORPORA (slurp, speech_massive, italic, massive, manifest, prepared)
    corpus_args: dict = field(default_factory=dict)  # keyword arguments of load_corpus, e.g. {path: data/slurp}
    language: str = ""  # keep only this locale (e.g. fr-FR) from a multilingual corpus; empty = all
    train_split: str = "train"  # split trained on
    dev_split: str = "dev"  # split for the score curves during training
    eval_splits: list = field(default_factory=lambda: ["test"])  # splits scored with the final model
    limit_train_texts: int = 0  # > 0: keep this many training transcripts (seeded) for quick runs
    # --- cross-lingual (section 3.4) -------------------------------------------------------------------------
    recipe: str = "mono"  # mono; zero (zero-shot on targets); or target data T, T+S, T+M, T+S+M added to the source
    target_corpus: str = ""  # corpus holding the target languages' text/few-shot speech (e.g. speech_massive)
    target_corpus_args: dict = field(default_factory=dict)  # keyword arguments of load_corpus for it
    target_languages: list = field(default_factory=list)  # target locales, e.g. [de-DE, es-ES]
    target_split: str = "train_115"  # split of the target corpus used for few-shot training data
    massive_args: dict = field(default_factory=dict)  # load_corpus("massive", ...) kwargs for the +M recipes
    no_source: bool = False  # the paper's "No Source" row: target data of the recipe only, no source text or speech
    # --- scheme ----------------------------------------------------------------------------------------------
    scheme: str = "curriculum"  # text, direct, or curriculum (training.schemes.SCHEMES)
    speech_percent: float = 0.0  # p in percent: N_p = round(p/100 * N) speech examples (nested across p)
    n_speech: int = -1  # >= 0 overrides speech_percent with an exact count
    epochs: int = 3  # E
    peak_lr: float = 5e-6  # peak LR of text-only, direct, and curriculum's text epochs
    warmup_ratio: float = 0.04  # warmup share of those schedules
    final_peak_lr: float = 3e-6  # curriculum's last epoch
    final_warmup_ratio: float = 0.02  # curriculum's last epoch
    # --- optimisation ----------------------------------------------------------------------------------------
    per_device_batch_size: int = 2  # micro-batch per process
    grad_accum_steps: int = 8  # micro-batches per optimizer step (x processes x batch = effective batch)
    weight_decay: float = 0.0  # AdamW weight decay
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables
    mixed_precision: str = "auto"  # compute dtype: auto (bf16 on GPU, fp32 on CPU), bf16, fp16, or no; weights
    #                                 and AdamW state are always float32 (master weights)
    max_audio_seconds: float = 30.0  # Qwen2-Audio's encoder window; longer clips are trimmed
    group_by_length: bool = True  # micro-batches of one modality, speech grouped by clip length (training.plan)
    ensure_audio: str = "auto"  # auto/yes/no: add a masked silent clip to audio-free batches when audio trains
    # --- evaluation and checkpoints --------------------------------------------------------------------------
    eval_every_steps: int = 0  # > 0: dev scores every this many optimizer steps (always at each epoch end)
    eval_max_examples: int = 500  # dev items scored for the curves (0 = all); final evals use all
    eval_batch_size: int = 8  # generation batch per process
    num_beams: int = 3  # beam search width (the paper: 3)
    max_new_tokens: int = 128  # generation cap
    save_every_steps: int = 200  # > 0: resumable checkpoint every this many optimizer steps (and at epoch ends)
    save_total_limit: int = 2  # newest resumable checkpoints kept while training (~100 GB each at 7B)
    keep_resumable: bool = False  # keep those checkpoints after the run finishes (default: delete; the model stays)
    log_every_steps: int = 10  # training-loss rows in curves.csv
    tensorboard: bool = False  # also log to <output_dir>/tensorboard
    stop_after_steps: int = 0  # > 0: stop (as if killed) after this many optimizer steps; for resume tests

    def __post_init__(self) -> None:
        try:
            self.scheme = canonical_scheme(self.scheme)
        except SchemeError as exc:
            raise ConfigError(f"--scheme: {exc}") from None
        checks = [
            (0.0 <= self.speech_percent <= 100.0, "speech_percent", "must be in [0, 100] (a percent)"),
            (self.epochs >= 1, "epochs", "must be >= 1"),
            (self.peak_lr > 0 and self.final_peak_lr > 0, "peak_lr", "peak_lr and final_peak_lr must be > 0"),
            (0 <= self.warmup_ratio < 1 and 0 <= self.final_warmup_ratio < 1, "warmup_ratio",
             "warmup_ratio and final_warmup_ratio must be in [0, 1)"),
            (self.per_device_batch_size >= 1, "per_device_batch_size", "must be >= 1"),
            (self.grad_accum_steps >= 1, "grad_accum_steps", "must be >= 1"),
            (self.num_beams >= 1, "num_beams", "must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size", "must be >= 1"),
            (self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1"),
            (self.lora_r >= 0, "lora_r", "must be >= 0 (0 = full fine-tuning)"),
            (self.mixed_precision in ("auto", "bf16", "fp16", "no"), "mixed_precision", "must be auto, bf16, fp16 or no"),
            (self.ensure_audio in ("auto", "yes", "no"), "ensure_audio", "must be auto, yes or no"),
            (self.recipe in RECIPES, "recipe", f"must be one of {', '.join(RECIPES)}"),
            (self.recipe == "mono" or bool(self.target_languages), "target_languages",
             "a cross-lingual recipe needs target languages, e.g. --target_languages de-DE,es-ES"),
            (not self.no_source or self.recipe in CROSS_LINGUAL_TARGET_RECIPES, "no_source",
             "needs a recipe with target training data: --recipe T, T+S, T+M or T+S+M (zero-shot without source "
             "data trains on nothing)"),
            (not self.no_source or (self.speech_percent == 0 and self.n_speech <= 0), "no_source",
             "trains on no source data, so source speech cannot be asked for: pass --speech_percent 0 "
             "(and leave --n_speech unset)"),
            (self.save_total_limit >= 1, "save_total_limit", "must be >= 1"),
            (bool(self.output_dir), "output_dir", "must name a folder"),
            (self.max_audio_seconds > 0, "max_audio_seconds", "must be > 0"),
        ]
        for ok, flag, why in checks:
            if not ok:
                raise ConfigError(f"--{flag} {why}")
        if isinstance(self.eval_splits, str):
            self.eval_splits = [s for s in self.eval_splits.split(",") if s]
        if isinstance(self.target_languages, str):
            self.target_languages = [s for s in self.target_languages.split(",") if s]

    # Derived values are methods, not stored copies.
    def schedule(self) -> ScheduleSettings:
        return ScheduleSettings(self.epochs, self.peak_lr, self.warmup_ratio, self.final_peak_lr,
                                self.final_warmup_ratio)

    def speech_fraction(self) -> float:
        return self.speech_percent / 100.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dump_config(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=False)


SCHEME_NAMES = tuple(SCHEMES)
