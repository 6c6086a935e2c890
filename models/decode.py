"""Batched beam-search decoding into SLU frames, and predictions files in the SLURP format.

``generate_frames`` decodes ``(SLUExample, use_audio)`` items (``use_audio=False`` is the oracle/text path from the
gold transcript) with beam search (3 beams, as in the seed paper), left-padded batches so every row continues from
its own last prompt token, and a bound on new tokens. Each output is parsed by ``data.frames.parse_output``, which
never raises; unusable outputs become the ``none`` frame and are counted by the caller through ``parse.status``.

The audio encoder runs on each batch's longest clip, not Whisper's 30 s window (``encoder_trim``; see
models/encoder_trim.py); ``encoder_trim=False`` gives the stock path.

Beam search: ``generate`` would copy every prompt ``num_beams`` times before its first forward pass, running the
audio encoder and the prompt through the LLM three times for one answer. With ``prefill_once`` (the default) the
prompt (audio merged in) is encoded once per utterance, its key/value cache is copied to the beams, and ``generate``
continues from the last prompt token; the output is token for token the same (tested), 2-3x faster at batch 8+.

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
from models.prompt import slu_target_of
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
    encoder_trim: bool = True,
    prefill_once: bool = True,
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
    collator = SLUCollator(
        processor,
        adapter=adapter,
        audio_loader=audio_loader,
        encoder_trim=encoder_trim,
        slu_target=slu_target_of(model),
    )
    stop = _stop_ids(processor, adapter)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Batches of similar length: rows sorted by clip duration (text rows by prompt length) so a batch pads little
    # and its encoder runs at a length close to every clip's own; predictions go back in input order.
    order = sorted(range(len(items)), key=lambda i: _length_key(items[i]), reverse=True)
    by_position: dict[int, Prediction] = {}
    try:
        starts = range(0, len(items), batch_size)
        for start in tqdm(starts, desc="decoding", unit="batch", disable=not progress or len(starts) < 2):
            positions = order[start : start + batch_size]
            chunk = [items[i] for i in positions]
            batch = {k: v.to(device) for k, v in collator.for_generation(chunk).items()}
            with torch.inference_mode():
                # Sharded models decode through generate's own synced loop; the prefill shortcut is for the rest.
                shortcut = num_beams > 1 and prefill_once and not (generate_kwargs or {}).get("synced_gpus")
                extra = _prefill_once(model, batch, num_beams) if shortcut else {}
                inputs = (
                    batch if not extra else {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
                )
                out = model.generate(
                    **inputs,
                    **extra,
                    num_beams=num_beams,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stop,
                    pad_token_id=collator.pad_id,
                    **(generate_kwargs or {}),
                )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for position, (example, _), text in zip(positions, chunk, texts):
                text = text.strip()
                by_position[position] = Prediction(id=example.id, text=text, parse=parse_output(text))
    finally:
        model.train(was_training)
    return [by_position[i] for i in range(len(items))]


class _Embeds(Exception):
    """Carries the LLM's input embeddings out of a forward pass that is stopped right there."""


def _language_model(model: Any):
    inner = getattr(model, "model", None)
    for owner in (inner, model):
        lm = getattr(owner, "language_model", None) if owner is not None else None
        if lm is not None:
            return lm
    raise DecodeError(
        "cannot find the language model inside this audio LLM (expected .model.language_model or .language_model)"
    )


def _prefill_once(model: Any, batch: dict, num_beams: int) -> dict:
    """Encode each prompt once (audio merged in by the model's own code), run all but its last token through the
    LLM at batch size, and copy the cache to the beams. Returns ``generate`` keyword arguments ({} when the cache
    type cannot be copied, and ``generate`` then does the plain thing)."""
    import transformers

    def stop(_module, _args, kwargs):
        raise _Embeds(kwargs["inputs_embeds"])

    handle = _language_model(model).register_forward_pre_hook(stop, with_kwargs=True)
    try:
        model(**batch, use_cache=False)
        raise DecodeError("the model's forward pass did not reach its language model")
    except _Embeds as captured:
        embeds = captured.args[0]
    finally:
        handle.remove()
    mask = batch["attention_mask"]
    # generate's own convention for left-padded rows: positions count real tokens only.
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        inputs_embeds=embeds[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
    )
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    if cache is None or not hasattr(cache, "batch_repeat_interleave"):
        return {}
    cache.batch_repeat_interleave(num_beams)
    key = "cache" if int(transformers.__version__.split(".")[0]) >= 5 else "past_key_values"
    return {key: cache}


def _length_key(item: Item) -> tuple[int, float]:
    """Sort key for batching: speech rows by clip duration (known, else estimated), text rows by transcript."""
    example, use_audio = item
    if use_audio and example.audio is not None:
        return (1, example.audio.duration_s or len(example.transcript) / 15.0)
    return (0, float(len(example.transcript)))


def write_predictions(
    path: str | os.PathLike,
    predictions: Iterable[Prediction],
    key: str = "file",
) -> Path:
    """Write predictions as JSON lines in the SLURP prediction format, atomically (all or nothing)."""
    from data.frames import slurp_prediction_record as prediction_record
    from data.textio import atomic_write_text

    if key not in ("file", "slurp_id"):
        raise DecodeError(f"key must be 'file' (per recording) or 'slurp_id' (per text, --load-gold), got {key!r}")
    lines = [json.dumps(prediction_record(p.id, p.frame, key=key), ensure_ascii=False) for p in predictions]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path
