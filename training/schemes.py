"""Fine-tuning schemes as data: a scheme is a short list of phases, and one training loop runs any list.

The three schemes of Choi et al., "Exploring fine-tuning of large audio language models for SLU under limited
speech data" (section 2.2), with N_p = round(p * N) speech-label pairs and E epochs:

- text-only: E epochs of transcripts only; audio encoder and projector frozen, only the LLM learns.
- direct mixing: E epochs, each with all transcripts plus the same N_p speech examples; the whole model learns.
- curriculum: E - 1 text-only epochs, then one epoch with all transcripts plus N_p * E speech examples (the N_p
  subset repeated E times), with its own lower peak learning rate and warmup (section 3.2: 3e-6, ratio 0.02).

So the per-epoch speech allocation is a_e = N_p (direct) and a_e = 0 for e < E, N_p * E for e = E (curriculum):
both expose the model to N_p * E speech examples in total. Nothing downstream branches on the scheme's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class SchemeError(ValueError):
    """A scheme name or scheme setting that cannot be built."""


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one learning-rate schedule and one set of trainable modules."""

    name: str  # a label for logs and curves ("text", "mixed", ...); never used for control flow
    epochs: int  # epochs in this phase; every epoch sees all transcripts once
    speech_per_epoch: int  # speech-label pairs added to each epoch (the speech subset cycled to this length)
    peak_lr: float  # peak learning rate of this phase's cosine schedule
    warmup_ratio: float  # share of this phase's optimizer steps spent warming up linearly from 0
    train_audio: bool  # whether the audio encoder and projector learn in this phase (the LLM always does)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise SchemeError(f"phase {self.name!r}: epochs must be >= 1, got {self.epochs}")
        if self.speech_per_epoch < 0:
            raise SchemeError(f"phase {self.name!r}: speech_per_epoch must be >= 0, got {self.speech_per_epoch}")
        if not self.peak_lr > 0:
            raise SchemeError(f"phase {self.name!r}: peak_lr must be > 0, got {self.peak_lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise SchemeError(f"phase {self.name!r}: warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass(frozen=True)
class ScheduleSettings:
    """Optimisation settings a scheme is built from; the defaults are the paper's (section 3.2)."""

    epochs: int = field(default=3, metadata={"help": "E: all experiments run three epochs"})
    peak_lr: float = field(default=5e-6, metadata={"help": "text-only, direct mixing, and curriculum's text epochs"})
    warmup_ratio: float = field(default=0.04, metadata={"help": "warmup share of those schedules"})
    final_peak_lr: float = field(
        default=3e-6, metadata={"help": "curriculum's last (speech) epoch: reduced to stabilise adaptation"}
    )
    final_warmup_ratio: float = field(default=0.02, metadata={"help": "curriculum's last epoch"})

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise SchemeError(f"--schedule.epochs must be >= 1, got {self.epochs}")


def speech_count(fraction: float, n_total: int) -> int:
    """N_p = round(p * N), halves up: ``data.subsets.n_for_fraction``, the project's one definition."""
    from data.corpus import CorpusError
    from data.subsets import n_for_fraction

    try:
        return n_for_fraction(fraction, n_total)
    except CorpusError as exc:
        raise SchemeError(str(exc)) from None


def text_only(n_speech: int, s: ScheduleSettings = ScheduleSettings()) -> list[Phase]:
    """Transcripts only; the speech budget is ignored (the paper runs it at 0 %)."""
    return [Phase("text", s.epochs, 0, s.peak_lr, s.warmup_ratio, train_audio=False)]


def direct(n_speech: int, s: ScheduleSettings = ScheduleSettings()) -> list[Phase]:
    """Every epoch: all transcripts plus the same N_p speech examples, mixed in batches; everything learns."""
    return [Phase("mixed", s.epochs, n_speech, s.peak_lr, s.warmup_ratio, train_audio=True)]


def curriculum(n_speech: int, s: ScheduleSettings = ScheduleSettings()) -> list[Phase]:
    """E - 1 text-only epochs, then one mixed epoch with the N_p subset repeated E times."""
    last = Phase("mixed", 1, n_speech * s.epochs, s.final_peak_lr, s.final_warmup_ratio, train_audio=True)
    if s.epochs == 1:
        return [last]
    return [Phase("text", s.epochs - 1, 0, s.peak_lr, s.warmup_ratio, train_audio=False), last]


SCHEMES: dict[str, Callable[[int, ScheduleSettings], list[Phase]]] = {
    "text": text_only,
    "direct": direct,
    "curriculum": curriculum,
}
# Spellings users type; each maps onto one canonical key above.
ALIASES = {"text-only": "text", "text_only": "text", "curr": "curriculum", "curr.": "curriculum", "mix": "direct"}


def canonical_scheme(name: str) -> str:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in SCHEMES:
        raise SchemeError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    return key


def build_phases(name: str, n_speech: int, settings: ScheduleSettings = ScheduleSettings()) -> list[Phase]:
    """The phase list of a scheme for N_p = ``n_speech`` speech examples."""
    if n_speech < 0:
        raise SchemeError(f"n_speech must be >= 0, got {n_speech}")
    return SCHEMES[canonical_scheme(name)](n_speech, settings)


def epoch_allocation(phases: list[Phase]) -> list[int]:
    """a_e: speech examples seen in each epoch, in training order (section 2.2's allocation)."""
    return [p.speech_per_epoch for p in phases for _ in range(p.epochs)]


def total_speech(phases: list[Phase]) -> int:
    return sum(epoch_allocation(phases))


def total_epochs(phases: list[Phase]) -> int:
    return sum(p.epochs for p in phases)
