"""What each epoch trains on, and in which order: a pure function of the phases, the data and the seed.

Every epoch holds all training transcripts (as text) plus the phase's speech allocation (the N_p speech subset
cycled to ``speech_per_epoch`` items), shuffled together with a generator seeded by (seed, epoch index). Because
the order depends on nothing else, a resumed run rebuilds exactly the batches an uninterrupted run would see and
skips the ones already trained on.

Multi-process: the epoch's item list is padded (by wrapping round to its start) to whole global batches of
``batch_size * world_size``; micro-batch ``i`` of rank ``r`` is slice ``(i * world_size + r) * batch_size``. All
ranks therefore run the same number of steps (a rank that runs out first would hang the others).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

from data.example import SLUExample
from training.schemes import Phase

Item = tuple[SLUExample, bool]  # (example, use_audio): the collator's input


class PlanError(ValueError):
    """Training data that cannot fill the phases asked for."""


@dataclass(frozen=True)
class EpochPlan:
    phase_index: int  # which phase this epoch belongs to
    epoch_in_phase: int  # 0-based within the phase
    global_epoch: int  # 0-based over the whole run (seeds the shuffle)
    phase: Phase


def plan_epochs(phases: Sequence[Phase]) -> list[EpochPlan]:
    out, g = [], 0
    for pi, phase in enumerate(phases):
        for e in range(phase.epochs):
            out.append(EpochPlan(pi, e, g, phase))
            g += 1
    return out


def epoch_items(
    texts: Sequence[SLUExample], speech: Sequence[SLUExample], n_speech: int, *, seed: int, epoch: int
) -> list[Item]:
    """All transcripts as text plus ``n_speech`` speech items (the subset cycled), shuffled for this epoch."""
    if n_speech > 0 and not speech:
        raise PlanError(
            f"this epoch needs {n_speech} speech examples but the speech subset is empty; "
            "raise --speech_percent/--n_speech or use the text scheme"
        )
    items: list[Item] = [(t.as_text() if t.has_audio else t, False) for t in texts]
    items += [(speech[i % len(speech)], True) for i in range(n_speech)]
    if not items:
        raise PlanError("an epoch has no training items: the training split holds no transcripts and no speech")
    random.Random(f"lalm-slu:{seed}:{epoch}").shuffle(items)
    return items


def epoch_counts(items: Sequence[Item], target_languages: Sequence[str] = ()) -> dict[str, int]:
    """What an epoch feeds the model, by role and modality: ``{source,target}_{text,speech}`` plus
    ``target_massive_text`` (MASSIVE transcripts, counted apart from the target corpus's own transcripts).

    An item is "target" when its language is one of ``target_languages``; a text item is one fed without audio.
    """
    targets = set(target_languages)
    counts = {"source_text": 0, "source_speech": 0, "target_text": 0, "target_speech": 0, "target_massive_text": 0}
    for example, use_audio in items:
        role = "target" if example.language in targets else "source"
        if use_audio:
            counts[f"{role}_speech"] += 1
        elif role == "target" and example.corpus == "massive":
            counts["target_massive_text"] += 1
        else:
            counts[f"{role}_text"] += 1
    return counts


def n_micro_batches(n_items: int, batch_size: int, world_size: int) -> int:
    """Micro-batches per rank in an epoch of ``n_items`` (the last global batch is padded)."""
    return math.ceil(n_items / (batch_size * world_size))


def n_optimizer_steps(n_items: int, batch_size: int, world_size: int, grad_accum: int) -> int:
    return math.ceil(n_micro_batches(n_items, batch_size, world_size) / grad_accum)


def rank_micro_batches(items: Sequence[Item], batch_size: int, world_size: int, rank: int) -> list[list[Item]]:
    """This rank's micro-batches for an epoch, in order."""
    n_mb = n_micro_batches(len(items), batch_size, world_size)
    total = n_mb * batch_size * world_size
    padded = [items[i % len(items)] for i in range(total)]
    return [
        padded[(i * world_size + rank) * batch_size : (i * world_size + rank + 1) * batch_size] for i in range(n_mb)
    ]


def step_groups(micro_batches: Sequence[list[Item]], grad_accum: int) -> list[list[list[Item]]]:
    """Micro-batches grouped into optimizer steps (the last step of an epoch may hold fewer)."""
    return [list(micro_batches[i : i + grad_accum]) for i in range(0, len(micro_batches), grad_accum)]


def subsample(items: Sequence[SLUExample], count: int, seed: int) -> list[SLUExample]:
    """A seeded subset of ``count`` items (order kept); ``count <= 0`` keeps everything."""
    if count <= 0 or count >= len(items):
        return list(items)
    keep = sorted(random.Random(f"lalm-slu-texts:{seed}").sample(range(len(items)), count))
    return [items[i] for i in keep]


def _clip_seconds(example: SLUExample) -> float:
    """A clip's duration for grouping: the known duration, else an estimate from the transcript (~15 chars/s)."""
    if example.audio is not None and example.audio.duration_s:
        return float(example.audio.duration_s)
    return len(example.transcript) / 15.0


def group_by_length(
    items: Sequence[Item], batch_size: int, *, seed: int, epoch: int, megabatch: int = 50
) -> list[Item]:
    """The same items reordered so that every micro-batch of ``batch_size`` holds one modality and, for speech,
    clips of similar length: text rows are then not padded to a clip's length, and a batch of speech is encoded at
    its longest clip (models/encoder_trim.py) with little padding.

    As in Hugging Face's length-grouped sampler, speech is cut (in its shuffled order) into megabatches of
    ``megabatch * batch_size`` items, each sorted by duration and cut into batches, so batches stay random across
    the epoch; the batches of both modalities are then shuffled together. A pure function of the items, the seed
    and the epoch, so a resumed run rebuilds the same order. At most one batch per modality is partial; those two
    are placed last.
    """
    if batch_size < 1:
        raise PlanError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(f"lalm-slu-groups:{seed}:{epoch}")
    speech = [it for it in items if it[1]]
    text = [it for it in items if not it[1]]
    span = max(megabatch, 1) * batch_size
    speech_sorted: list[Item] = []
    for start in range(0, len(speech), span):
        speech_sorted += sorted(speech[start : start + span], key=lambda it: _clip_seconds(it[0]), reverse=True)

    def cut(rows: list[Item]) -> tuple[list[list[Item]], list[Item]]:
        n_full = len(rows) // batch_size * batch_size
        return [rows[i : i + batch_size] for i in range(0, n_full, batch_size)], rows[n_full:]

    speech_batches, speech_rest = cut(speech_sorted)
    text_batches, text_rest = cut(text)
    batches = speech_batches + text_batches
    rng.shuffle(batches)
    out = [it for batch in batches for it in batch]
    return out + text_rest + speech_rest
