"""Decode a split with a model, score it with the SLURP metrics, and write metrics.json + predictions.jsonl.

End-to-end evaluation decodes the split's recordings (audio path, predictions keyed by recording ``file``).
Oracle evaluation decodes the split's gold transcripts through the text path (keyed by text id): the paper's upper
bound (Table 2, "Oracle"). A split without recordings (e.g. MASSIVE) can only be evaluated on text.

With several processes each rank decodes an interleaved share and the results are gathered on every rank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from data.example import SLUExample
from data.frames import ParseStatus, SLUFrame
from data.textio import atomic_write_text
from models.decode import Prediction, generate_frames, write_predictions
from evaluation.metrics import SLUScores, score_keyed
from training.plan import Item, subsample


class EvaluationError(ValueError):
    """A split that cannot be evaluated as asked."""


@dataclass
class EvalResult:
    split: str
    oracle: bool
    scores: SLUScores
    predictions: list[Prediction]
    n_invalid: int  # outputs that needed repair or were unusable
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**self.scores.to_dict(), "n_invalid": self.n_invalid}

    def one_line(self) -> str:
        s = self.scores
        kind = "oracle" if self.oracle else "speech"
        return (
            f"{self.split} ({kind}, n={s.n_scored}): intent acc {s.intent_accuracy:.4f} | entity F1 "
            f"{s.entity_f1:.4f} | SLU-F1 {s.slu_f1:.4f} | invalid {self.n_invalid}"
        )


def eval_items(
    texts: Sequence[SLUExample],
    speech: Sequence[SLUExample],
    *,
    oracle: bool,
    split: str,
    limit: int = 0,
    seed: int = 0,
) -> tuple[list[Item], dict[str, SLUFrame]]:
    """Items to decode and gold frames keyed by id; ``limit > 0`` takes a seeded subset (for score curves)."""
    if oracle or not speech:
        pool, use_audio = list(texts), False
    else:
        pool, use_audio = list(speech), True
    if not pool:
        raise EvaluationError(
            f"split {split!r} has no {'transcripts' if oracle else 'examples'} to evaluate; "
            "check --eval_splits/--dev_split against the corpus's splits"
        )
    pool = subsample(pool, limit, seed)
    return [(x, use_audio) for x in pool], {x.id: x.frame for x in pool}


@dataclass(frozen=True)
class DecodeSettings:
    """How a split is decoded (passed on to ``models.decode.generate_frames``)."""

    adapter: str
    batch_size: int
    num_beams: int
    max_new_tokens: int
    progress: bool = True
    audio_loader: Callable[[Any], Any] | None = None
    generate_kwargs: dict[str, Any] | None = None  # to model.generate, e.g. synced_gpus for sharded models


def decode_and_score(
    model,
    processor,
    items: list[Item],
    gold: dict[str, SLUFrame],
    *,
    split: str,
    oracle: bool,
    decode: DecodeSettings,
    accelerator=None,
) -> EvalResult:
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    if world > 1:
        # Every rank decodes the same number of batches (padded by wrapping), so sharded models stay in step.
        per_rank = -(-len(items) // world)
        padded = [items[i % len(items)] for i in range(per_rank * world)]
        mine = padded[rank::world]
    else:
        mine = items
    preds = generate_frames(
        model,
        processor,
        mine,
        batch_size=decode.batch_size,
        num_beams=decode.num_beams,
        max_new_tokens=decode.max_new_tokens,
        adapter=decode.adapter,
        progress=decode.progress,
        audio_loader=decode.audio_loader,
        generate_kwargs=decode.generate_kwargs,
    )
    if world > 1:
        from accelerate.utils import gather_object

        preds = gather_object(preds)
    unique: dict[str, Prediction] = {}
    for p in preds:
        unique.setdefault(p.id, p)
    ordered = [unique[x.id] for x, _ in items if x.id in unique]
    scores = score_keyed(gold, {p.id: p.frame for p in ordered})
    n_invalid = sum(1 for p in ordered if p.parse.status is not ParseStatus.CLEAN)
    return EvalResult(split, oracle, scores, ordered, n_invalid)


def eval_dir_name(split: str, oracle: bool) -> str:
    return f"{split}-oracle" if oracle else split


def write_eval(out_dir: Path, result: EvalResult) -> Path:
    """``<out_dir>/metrics.json`` and ``predictions.jsonl`` (SLURP prediction format)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.jsonl", result.predictions, key="slurp_id" if result.oracle else "file")
    payload = {
        "split": result.split,
        "oracle": result.oracle,
        **result.scores.to_dict(full=True),
        "n_invalid": result.n_invalid,
        **result.meta,
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(payload, indent=2))
    return out_dir
