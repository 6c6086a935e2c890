"""Batched beam-search decoding into SLU frames, and predictions files in the SLURP format.

``generate_frames`` decodes ``(SLUExample, use_audio)`` items (``use_audio=False`` is the oracle/text path from the
gold transcript) with beam search (3 beams, as in the seed paper), left-padded batches so every row continues from
its own last prompt token, and a bound on new tokens. Each output is parsed by ``data.frames.parse_output``, which
never raises; unusable outputs become the ``none`` frame and are counted by the caller through ``parse.status``.

``write_predictions`` writes one JSON object per line, ``{"file": id, "scenario", "action", "entities": [{"type",
"filler"}]}``, which the official SLURP scorer reads (``key="slurp_id"`` for its text-level ``--load-gold`` mode).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from data.example import SLUExample
from data.frames import ParseResult, SLUFrame, parse_output
from models.collate import Item, SLUCollator, as_items
from models.registry import ModelAdapter, get_adapter


class DecodeError(ValueError):
    """Bad decoding settings."""


@dataclass(frozen=True)
class Prediction:
    id: str  # the example id (a recording name for speech items, the text id for text items)
    text: str  # the generated text, special tokens removed
    parse: ParseResult

    @property
    def frame(self) -> SLUFrame:
        return self.parse.frame


def _stop_ids(processor: Any, adapter: ModelAdapter) -> list[int]:
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(adapter.end_of_turn)]
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    return ids


def generate_frames(
    model: Any,
    processor: Any,
    items: Sequence[SLUExample | Item],
    *,
    batch_size: int = 8,
    num_beams: int = 3,
    max_new_tokens: int = 128,
    adapter: str | ModelAdapter = "qwen2-audio",
    audio_loader: Callable[[Any], Any] | None = None,
    progress: bool = True,
    generate_kwargs: dict[str, Any] | None = None,
) -> list[Prediction]:
    """Decode every item (in input order) and parse it into a frame.

    ``generate_kwargs`` go to ``model.generate`` (e.g. ``synced_gpus=True`` for sharded multi-process models).
    """
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1 or num_beams < 1 or max_new_tokens < 1:
        raise DecodeError(
            f"batch_size, num_beams and max_new_tokens must be >= 1 (got {batch_size}, {num_beams}, {max_new_tokens})"
        )
    adapter = get_adapter(adapter)
    items = as_items(items)
    collator = SLUCollator(processor, adapter=adapter, audio_loader=audio_loader)
    stop = _stop_ids(processor, adapter)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predictions: list[Prediction] = []
    try:
        starts = range(0, len(items), batch_size)
        for start in tqdm(starts, desc="decoding", unit="batch", disable=not progress or len(starts) < 2):
            chunk = items[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collator.for_generation(chunk).items()}
            with torch.inference_mode():
                out = model.generate(
                    **batch,
                    num_beams=num_beams,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stop,
                    pad_token_id=collator.pad_id,
                    **(generate_kwargs or {}),
                )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for (example, _), text in zip(chunk, texts):
                text = text.strip()
                predictions.append(Prediction(id=example.id, text=text, parse=parse_output(text)))
    finally:
        model.train(was_training)
    return predictions


def write_predictions(
    path: str | os.PathLike,
    predictions: Iterable[Prediction],
    key: str = "file",
) -> Path:
    """Write predictions as JSON lines in the SLURP prediction format, atomically (all or nothing)."""
    from training.metrics import prediction_record
    from training.results import atomic_write_text

    if key not in ("file", "slurp_id"):
        raise DecodeError(f"key must be 'file' (per recording) or 'slurp_id' (per text, --load-gold), got {key!r}")
    lines = [json.dumps(prediction_record(p.id, p.frame, key=key), ensure_ascii=False) for p in predictions]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
