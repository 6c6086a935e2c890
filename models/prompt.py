"""The one instruction and the prompt/target pair for an example, with or without its audio.

The seed paper (Fig. 1a) uses a unified prompt for both modalities: with speech the audio sits in the user turn;
text-only training and oracle decoding put the gold transcript in its place. The target is the same string in both
cases, ``frame.to_target()`` followed by the end-of-turn token. The instruction names the output structure but does
not list the label inventory: the labels are learnt from the targets.
"""

from __future__ import annotations

from typing import Any

from data.example import SLUExample
from models.registry import ModelAdapter, get_adapter

INSTRUCTION = (
    "Identify the scenario, action and entities of the utterance. Answer with one JSON object with the keys "
    '"scenario", "action" and "entities", where entities is a list of {"type": ..., "filler": ...} objects '
    "in the order they occur (an empty list if there are none)."
)


class PromptError(ValueError):
    """An example that cannot be turned into a prompt in the requested modality."""


def chat_template(processor: Any, adapter: ModelAdapter) -> str:
    """The processor's own chat template, or the adapter's equivalent when the checkpoint ships none."""
    return getattr(processor, "chat_template", None) or adapter.chat_template


def build_prompt(processor: Any, example: SLUExample, use_audio: bool, adapter: str | ModelAdapter = "qwen2-audio",
                 instruction: str = INSTRUCTION):
    """The rendered prompt text up to and including the assistant header (the generation prompt). ``instruction``
    defaults to the SLU instruction; the alignment stage (training/pretrain.py) asks for transcripts instead."""
    adapter = get_adapter(adapter)
    if use_audio and not example.has_audio:
        raise PromptError(
            f"example {example.id!r} has no audio but use_audio=True; pass use_audio=False for the text path"
        )
    transcript = None if use_audio else example.transcript
    if transcript is not None and not transcript.strip():
        raise PromptError(f"example {example.id!r} has an empty transcript; text-only prompts need one")
    messages = adapter.messages(instruction, transcript)
    return processor.apply_chat_template(
        messages, chat_template=chat_template(processor, adapter), tokenize=False, add_generation_prompt=True
    )


def build_target(example: SLUExample, adapter: str | ModelAdapter = "qwen2-audio") -> str:
    """The assistant's answer: the one-line JSON frame and the end-of-turn token."""
    return example.frame.to_target() + get_adapter(adapter).end_of_turn
