"""Turn SLU examples into model batches: training batches with masked labels, left-padded generation batches.

An item is ``(SLUExample, use_audio)``: with ``use_audio`` the example's audio goes in the user turn, without it the
transcript stands in (text-only training, oracle decoding). A bare ``SLUExample`` means "use its audio if it has any".
Batches may mix both kinds; ``input_features`` holds only the clips that exist, in row order, which is how
Qwen2-Audio pairs clips with the expanded audio placeholder tokens.

Labels: -100 everywhere except the target tokens and the end-of-turn token that follows them, so the loss sees
exactly the answer (not the system prompt, the instruction, the audio placeholders or the padding).

``ensure_audio=True``: a training batch without any audio gets a short silent clip appended after the last real
token of row 0, attended to by nothing real and labelled -100. The loss is unchanged, but the audio encoder and
projector take part in the forward pass, so every data-parallel rank produces (zero) gradients for them; otherwise
DDP waits forever for gradients that one rank never computes, and ZeRO-3/FSDP stall gathering their shards.

``encoder_trim=True`` (the default): a batch's mel features cover its longest clip plus a small margin instead of
Whisper's fixed 30 s, so the audio encoder's work follows the real audio (models/encoder_trim.py explains why the
LLM receives the same embeddings). ``encoder_trim=False`` gives the stock 3,000-frame window.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from data.example import SLUExample
from models import encoder_trim as encoder_trim_module
from models.prompt import build_prompt, build_target, check_slu_target, instruction_for
from models.registry import SAMPLE_RATE_HZ, ModelAdapter, get_adapter

IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss's default ignore_index
Item = tuple[SLUExample, bool]


class CollateError(ValueError):
    """A batch that cannot be built; the message names the example and the fix."""


def as_items(items: Iterable[SLUExample | Item]) -> list[Item]:
    """Normalise to ``(example, use_audio)`` pairs; a bare example uses its audio when it has some."""
    out = []
    for item in items:
        if isinstance(item, SLUExample):
            out.append((item, item.has_audio))
        else:
            example, use_audio = item
            out.append((example, bool(use_audio)))
    return out


def _default_audio_loader(ref):
    from data.audio import load_audio

    return load_audio(ref, target_sr=SAMPLE_RATE_HZ)


class SLUCollator:
    """Callable collator: ``collator(items)`` for training, ``collator.for_generation(items)`` for decoding."""

    def __init__(
        self,
        processor: Any,
        adapter: str | ModelAdapter = "qwen2-audio",
        audio_loader: Callable[[Any], np.ndarray] | None = None,
        ensure_audio: bool = False,
        encoder_trim: bool = True,
        instruction: str | None = None,
        target_fn: Callable[[SLUExample], str] | None = None,
        slu_target: str = "frame",
    ) -> None:
        self.processor = processor
        self.adapter = get_adapter(adapter)
        self.audio_loader = audio_loader or _default_audio_loader
        self.ensure_audio = ensure_audio
        self.encoder_trim = encoder_trim
        # Another task over the same examples (the alignment stage's transcription): its instruction and its target
        # text (the end-of-turn token is appended here). Default: the SLU instruction and the JSON frame.
        # ``slu_target``: the SLU answer's layout (models/prompt.py SLU_TARGETS), the model's config.slu_target.
        self.slu_target = check_slu_target(slu_target)
        self.instruction = instruction if instruction is not None else instruction_for(self.slu_target)
        self.target_fn = target_fn
        if encoder_trim:
            encoder_trim_module.install()
        self.tokenizer = processor.tokenizer
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.convert_tokens_to_ids(self.adapter.end_of_turn)

    # ---------------------------------------------------------------------------------------------------------

    def _waveform(self, example: SLUExample) -> np.ndarray:
        wave = np.asarray(self.audio_loader(example.audio), dtype=np.float32)
        if wave.ndim != 1 or wave.size < self.adapter.min_audio_seconds * SAMPLE_RATE_HZ:
            raise CollateError(
                f"audio of example {example.id!r} has {wave.size} samples (shape {wave.shape}); the encoder needs a "
                f"mono clip of at least {self.adapter.min_audio_seconds} s at {SAMPLE_RATE_HZ} Hz"
            )
        return wave

    def _encode_prompts(self, items: list[Item], add_dummy: bool) -> tuple[list[list[int]], dict[str, Any], list[int]]:
        """Token ids of every prompt (audio placeholders expanded), the audio features, and the dummy's ids."""
        texts, waves = [], []
        for example, use_audio in items:
            texts.append(build_prompt(self.processor, example, use_audio, self.adapter, self.instruction))
            if use_audio:
                waves.append(self._waveform(example))
        if add_dummy:
            texts.append(self.adapter.audio_placeholder)
            waves.append(np.zeros(int(self.adapter.dummy_audio_seconds * SAMPLE_RATE_HZ), dtype=np.float32))
        kwargs: dict[str, Any] = {"text": texts, "padding": False}
        if waves:
            kwargs.update(audio=waves, **self.adapter.processor_kwargs)
            if self.encoder_trim:
                longest = max(len(w) for w in waves)
                kwargs["audio_kwargs"] = {"max_length": encoder_trim_module.trimmed_samples(longest)}
        encoded = self.processor(**kwargs)
        ids = [list(map(int, row)) for row in encoded["input_ids"]]
        features = {}
        if waves:
            import torch

            features = {
                "input_features": torch.as_tensor(np.asarray(encoded["input_features"]), dtype=torch.float32),
                "feature_attention_mask": torch.as_tensor(np.asarray(encoded["feature_attention_mask"])).long(),
            }
        dummy_ids = ids.pop() if add_dummy else []
        return ids, features, dummy_ids

    # ---------------------------------------------------------------------------------------------------------

    def __call__(self, items: Sequence[SLUExample | Item]) -> dict[str, Any]:
        """A right-padded training batch: input_ids, attention_mask, labels (+ input_features, feature_attention_mask
        when any clip is used)."""
        import torch

        items = as_items(items)
        if not items:
            raise CollateError("empty batch: the collator needs at least one example")
        add_dummy = self.ensure_audio and not any(use_audio for _, use_audio in items)
        prompt_ids, features, dummy_ids = self._encode_prompts(items, add_dummy)
        if self.target_fn is None:
            targets = [build_target(example, self.adapter, self.slu_target) for example, _ in items]
        else:
            targets = [self.target_fn(example) + self.adapter.end_of_turn for example, _ in items]
        target_ids = self.tokenizer(targets, add_special_tokens=False)["input_ids"]

        rows = [p + list(t) for p, t in zip(prompt_ids, target_ids)]
        width = max(len(r) for r in rows) + len(dummy_ids)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, (row, prompt) in enumerate(zip(rows, prompt_ids)):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention[i, : len(row)] = 1
            labels[i, len(prompt) : len(row)] = torch.tensor(row[len(prompt) :])
        if dummy_ids:
            # After all real tokens and padding of row 0: causal attention means no real token can see the clip.
            input_ids[0, width - len(dummy_ids) :] = torch.tensor(dummy_ids)
            attention[0, width - len(dummy_ids) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels, **features}

    def for_generation(self, items: Sequence[SLUExample | Item]) -> dict[str, Any]:
        """A left-padded batch of prompts ending in the assistant header, ready for ``model.generate``."""
        import torch

        items = as_items(items)
        if not items:
            raise CollateError("empty batch: the collator needs at least one example")
        prompt_ids, features, _ = self._encode_prompts(items, add_dummy=False)
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(items), width), dtype=torch.long)
        for i, row in enumerate(prompt_ids):
            # Left padding: every row's last prompt token sits in the last column, where generation continues.
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention[i, width - len(row) :] = 1
        return {"input_ids": input_ids, "attention_mask": attention, **features}
