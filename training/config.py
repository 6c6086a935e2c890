"""The training run's configuration: one dataclass, filled from an optional YAML file and ``--key value`` flags.

Defaults reproduce the paper (Choi et al., section 3.2): Qwen2-Audio-7B-Instruct, AdamW, bf16 on GPU, cosine
schedule, peak LR 5e-6 / warmup 0.04 over 3 epochs, curriculum's last epoch 3e-6 / 0.02, per-device batch 2 x
gradient accumulation 8 (x 8 GPUs = 128), beam 3. Precedence: dataclass defaults < YAML file < command-line flags.

Options that belong together are small nested dataclasses, each default written once: ``schedule``
(``training.schemes.ScheduleSettings``: epochs, learning rates, warmups), ``lora`` (rank 0 = full fine-tuning),
``decoding`` (beams, generation cap, batch) and ``data`` (corpus, its arguments, language, splits). Their flags are
dotted, ``--schedule.peak_lr 3e-6 --data.corpus_args.path data/x``; the flat names of the layout before the groups
(``--peak_lr``, ``--lora_r``, ``--num_beams``, ``--eval_batch_size``, ``--corpus_args.path``, ...) stay accepted as
aliases in flags, YAML files and the config.json of older runs.

    cfg = parse_config(TrainConfig, ["--config", "configs/tiny_cpu.yaml", "--scheme", "direct", "--speech_percent", "10"])

The parsing (YAML, flags, types, aliases, errors) is ``data.cli``'s, shared by every entry point; ``ConfigError`` is
re-exported from there.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping

from data.cli import ConfigError
from models.trainable import LoraSettings
from training.schemes import SCHEMES, ScheduleSettings, SchemeError, canonical_scheme

# section 3.4: mono; zero = zero-shot (source data only, scored on the target languages); few-shot target data:
# T transcripts, +S few-shot speech, +M MASSIVE text. ``no_source`` drops the source data (the "No Source" row).
RECIPES = ("mono", "zero", "T", "T+S", "T+M", "T+S+M")
CROSS_LINGUAL_TARGET_RECIPES = ("T", "T+S", "T+M", "T+S+M")  # recipes that add target-language training data
SPLITS = ("train", "dev", "test", "train_115")


def _opt(default: Any, help_text: str, **meta: Any) -> Any:
    """A config field with its help text (what ``--help`` prints); list and dict defaults are copied per instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help_text, **meta})
    return field(default=default, metadata={"help": help_text, **meta})


@dataclass
class LoraOptions:
    """LoRA on the language model; alpha's and dropout's defaults are ``models.trainable.LoraSettings``'."""

    r: int = _opt(0, "0 = full fine-tuning (the paper); > 0 = LoRA rank on the language model")
    alpha: int = _opt(LoraSettings.alpha, "LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = _opt(LoraSettings.dropout, "dropout on the LoRA branch input")

    def __post_init__(self) -> None:
        if self.r < 0:
            raise ConfigError("--lora.r must be >= 0 (0 = full fine-tuning)")

    def settings(self) -> LoraSettings | None:
        """What ``models.trainable`` injects, or None for full fine-tuning."""
        return LoraSettings(r=self.r, alpha=self.alpha, dropout=self.dropout) if self.r > 0 else None


@dataclass
class DecodingOptions:
    """How the dev curves and final evaluations decode (the paper: beam search, width 3)."""

    num_beams: int = _opt(3, "beam search width (the paper: 3)")
    max_new_tokens: int = _opt(128, "generation cap")
    batch_size: int = _opt(8, "generation batch per process")

    def __post_init__(self) -> None:
        for name in ("num_beams", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--decoding.{name} must be >= 1")


@dataclass
class DataOptions:
    """The source corpus and its splits."""

    corpus: str = _opt(
        "slurp", "key of data.corpus.CORPORA (slurp, speech_massive, italic, massive, manifest, prepared)"
    )
    corpus_args: dict = _opt({}, "keyword arguments of load_corpus, e.g. --data.corpus_args.path data/slurp")
    language: str = _opt("", "keep only this locale (e.g. fr-FR) from a multilingual corpus; empty = all")
    train_split: str = _opt("train", "split trained on")
    dev_split: str = _opt("dev", "split for the score curves during training")
    eval_splits: list = _opt(["test"], "splits scored with the final model (comma list)")
    limit_train_texts: int = _opt(0, "> 0: keep this many training transcripts (seeded) for quick runs")


# Flat names of the options now in groups (the layout before the groups existed), and renamed options: flags, YAML
# files and the config.json of older runs keep working.
_FLAT_NAMES = {
    **{k: f"schedule.{k}" for k in ("epochs", "peak_lr", "warmup_ratio", "final_peak_lr", "final_warmup_ratio")},
    **{f"lora_{k}": f"lora.{k}" for k in ("r", "alpha", "dropout")},
    "num_beams": "decoding.num_beams",
    "max_new_tokens": "decoding.max_new_tokens",
    "eval_batch_size": "decoding.batch_size",
    **{
        k: f"data.{k}"
        for k in ("corpus", "corpus_args", "language", "train_split", "dev_split", "eval_splits", "limit_train_texts")
    },
    "keep_checkpoints": "save_total_limit",
}


@dataclass
class TrainConfig:
    ALIASES: ClassVar[dict[str, str]] = _FLAT_NAMES

    # --- run -------------------------------------------------------------------------------------------------
    output_dir: str = _opt("runs/run", "the run folder (checkpoints, curves, metrics, final model)")
    seed: int = _opt(1, "seeds the speech subset, data order and initialisation of new weights")
    resume: bool = _opt(False, "continue from the newest complete checkpoint in output_dir")
    results_csv: str = _opt("", "results table to append to; empty = <output_dir>/../results.csv")
    # --- model -----------------------------------------------------------------------------------------------
    model: str = _opt("Qwen/Qwen2-Audio-7B-Instruct", "hub id, local checkpoint folder, or 'tiny' (CPU tests)")
    adapter: str = _opt("qwen2-audio", "key of models.registry.ADAPTERS")
    lora: LoraOptions = field(default_factory=LoraOptions)
    gradient_checkpointing: bool = _opt(False, "trade compute for memory on large models")
    # --- data ------------------------------------------------------------------------------------------------
    data: DataOptions = field(default_factory=DataOptions)
    # --- cross-lingual (section 3.4) -------------------------------------------------------------------------
    recipe: str = _opt(
        "mono",
        "mono; zero (zero-shot on targets); or target data T, T+S, T+M, T+S+M added to the source",
        choices=RECIPES,
    )
    target_corpus: str = _opt("", "corpus holding the target languages' text/few-shot speech (e.g. speech_massive)")
    target_corpus_args: dict = _opt({}, "keyword arguments of load_corpus for the target corpus")
    target_languages: list = _opt([], "target locales, e.g. de-DE,es-ES")
    target_split: str = _opt("train_115", "split of the target corpus used for few-shot training data")
    massive_args: dict = _opt({}, "load_corpus('massive', ...) keyword arguments for the +M recipes")
    no_source: bool = _opt(
        False, "the paper's 'No Source' row: target data of the recipe only, no source text or speech"
    )
    # --- scheme ----------------------------------------------------------------------------------------------
    scheme: str = _opt("curriculum", "text, direct, or curriculum (training.schemes.SCHEMES)")
    speech_percent: float = _opt(0.0, "p in percent: N_p = round(p/100 * N) speech examples (nested across p)")
    n_speech: int = _opt(-1, ">= 0 overrides speech_percent with an exact count")
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)  # epochs and learning rates (the paper's)
    # --- optimisation ----------------------------------------------------------------------------------------
    per_device_batch_size: int = _opt(2, "micro-batch per process")
    grad_accum_steps: int = _opt(8, "micro-batches per optimizer step (x processes x batch = effective batch)")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    adam_beta1: float = _opt(0.9, "AdamW beta1")
    adam_beta2: float = _opt(0.999, "AdamW beta2")
    adam_eps: float = _opt(1e-8, "AdamW epsilon")
    max_grad_norm: float = _opt(1.0, "gradient clipping; 0 disables")
    mixed_precision: str = _opt(
        "auto",
        "compute dtype: auto (bf16 on GPU, fp32 on CPU), bf16, fp16, or no; weights "
        "and AdamW state are always float32 (master weights)",
        choices=("auto", "bf16", "fp16", "no"),
    )
    max_audio_seconds: float = _opt(30.0, "Qwen2-Audio's encoder window; longer clips are trimmed")
    group_by_length: bool = _opt(True, "micro-batches of one modality, speech grouped by clip length (training.plan)")
    spec_augment: bool = _opt(
        False, "SpecAugment on training speech: frequency warp, frequency and time masks (training/specaugment.py)"
    )
    ensure_audio: str = _opt(
        "auto",
        "auto/yes/no: add a masked silent clip to audio-free batches when audio trains",
        choices=("auto", "yes", "no"),
    )
    # --- evaluation and checkpoints --------------------------------------------------------------------------
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    eval_every_steps: int = _opt(0, "> 0: dev scores every this many optimizer steps (always at each epoch end)")
    eval_max_examples: int = _opt(500, "dev items scored for the curves (0 = all); final evals use all")
    save_every_steps: int = _opt(200, "> 0: resumable checkpoint every this many optimizer steps (and at epoch ends)")
    save_total_limit: int = _opt(2, "newest resumable checkpoints kept while training (~100 GB each at 7B)")
    keep_resumable: bool = _opt(
        False, "keep those checkpoints after the run finishes (default: delete; the model stays)"
    )
    log_every_steps: int = _opt(10, "training-loss rows in curves.csv")
    tensorboard: bool = _opt(False, "also log to <output_dir>/tensorboard")
    stop_after_steps: int = _opt(0, "> 0: stop (as if killed) after this many optimizer steps; for resume tests")

    def __post_init__(self) -> None:
        try:
            self.scheme = canonical_scheme(self.scheme)
        except SchemeError as exc:
            raise ConfigError(f"--scheme: {exc}") from None
        s = self.schedule
        checks = [
            (0.0 <= self.speech_percent <= 100.0, "speech_percent", "must be in [0, 100] (a percent)"),
            (s.peak_lr > 0 and s.final_peak_lr > 0, "schedule.peak_lr", "and --schedule.final_peak_lr must be > 0"),
            (
                0 <= s.warmup_ratio < 1 and 0 <= s.final_warmup_ratio < 1,
                "schedule.warmup_ratio",
                "and --schedule.final_warmup_ratio must be in [0, 1)",
            ),
            (self.per_device_batch_size >= 1, "per_device_batch_size", "must be >= 1"),
            (self.grad_accum_steps >= 1, "grad_accum_steps", "must be >= 1"),
            (
                self.mixed_precision in ("auto", "bf16", "fp16", "no"),
                "mixed_precision",
                "must be auto, bf16, fp16 or no",
            ),
            (self.ensure_audio in ("auto", "yes", "no"), "ensure_audio", "must be auto, yes or no"),
            (self.recipe in RECIPES, "recipe", f"must be one of {', '.join(RECIPES)}"),
            (
                self.recipe == "mono" or bool(self.target_languages),
                "target_languages",
                "a cross-lingual recipe needs target languages, e.g. --target_languages de-DE,es-ES",
            ),
            (
                not self.no_source or self.recipe in CROSS_LINGUAL_TARGET_RECIPES,
                "no_source",
                "needs a recipe with target training data: --recipe T, T+S, T+M or T+S+M (zero-shot without source "
                "data trains on nothing)",
            ),
            (
                not self.no_source or (self.speech_percent == 0 and self.n_speech <= 0),
                "no_source",
                "trains on no source data, so source speech cannot be asked for: pass --speech_percent 0 "
                "(and leave --n_speech unset)",
            ),
            (self.save_total_limit >= 1, "save_total_limit", "must be >= 1"),
            (bool(self.output_dir), "output_dir", "must name a folder"),
            (self.max_audio_seconds > 0, "max_audio_seconds", "must be > 0"),
        ]
        for ok, flag, why in checks:
            if not ok:
                raise ConfigError(f"--{flag} {why}")
        if isinstance(self.data.eval_splits, str):
            self.data.eval_splits = [x for x in self.data.eval_splits.split(",") if x]
        if isinstance(self.target_languages, str):
            self.target_languages = [x for x in self.target_languages.split(",") if x]

    def speech_fraction(self) -> float:
        return self.speech_percent / 100.0

    def to_dict(self) -> dict[str, Any]:
        """The nested record a run writes to config.json (``data.cli.from_mapping`` reads it, and the flat one)."""
        return asdict(self)


def flat_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded config, nested or of the old flat layout, with every grouped option also under its flat name
    (``data.corpus`` -> ``corpus``): what the results rows, model card and app read."""
    out = dict(record)
    for flat, path in _FLAT_NAMES.items():
        node: Any = record
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and "." in path:
            out.setdefault(flat, node)
    return out


def dump_config(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=False)


SCHEME_NAMES = tuple(SCHEMES)
