"""The one instruction and the prompt/target pair for an example, with or without its audio.

The seed paper (Fig. 1a) uses a unified prompt for both modalities: with speech the audio sits in the user turn;
text-only training and oracle decoding put the gold transcript in its place. The target is the same string in both
cases, ``frame.to_target()`` followed by the end-of-turn token. The instruction names the output structure but does
not list the label inventory: the labels are learnt from the targets.
"""

from __future__ import annotations

import json
from typing import Any

from data.example import SLUExample
from models.registry import ModelAdapter, get_adapter

INSTRUCTION = (
    "Identify the scenario, action and entities of the utterance. Answer with one JSON object with the keys "
    '"scenario", "action" and "entities", where entities is a list of {"type": ..., "filler": ...} objects '
    "in the order they occur (an empty list if there are none)."
)


# The answer's layout, a property of the model (``model.config.slu_target``, saved in its config.json):
# - "frame": the paper's one JSON object with scenario, action and entities (the default; the 7B path);
# - "transcript+frame": the same object with the words heard first, under "transcript". A small model that already
#   transcribes (the Mini-LALM after alignment) then reads its own transcript to fill the slots, so entity fillers
#   are copied from what it heard instead of recalled from training; the app can show what the model heard.
SLU_TARGETS = ("frame", "transcript+frame")
INSTRUCTION_WITH_TRANSCRIPT = (
    "Transcribe the utterance, then identify its scenario, action and entities. Answer with one JSON object with the "
    'keys "transcript", "scenario", "action" and "entities", where entities is a list of {"type": ..., "filler": ...} '
    "objects in the order they occur (an empty list if there are none)."
)


class PromptError(ValueError):
    """An example that cannot be turned into a prompt in the requested modality."""


def check_slu_target(fmt: str) -> str:
    if fmt not in SLU_TARGETS:
        raise PromptError(
            f"unknown SLU answer layout {fmt!r}: use one of {', '.join(SLU_TARGETS)} (model.config.slu_target)"
        )
    return fmt


def slu_target_of(model: Any) -> str:
    """The answer layout a model was trained for: ``model.config.slu_target``, "frame" when unset."""
    config = getattr(model, "config", None)
    return check_slu_target(getattr(config, "slu_target", None) or "frame")


def instruction_for(fmt: str = "frame") -> str:
    return INSTRUCTION_WITH_TRANSCRIPT if check_slu_target(fmt) == "transcript+frame" else INSTRUCTION


def chat_template(processor: Any, adapter: ModelAdapter) -> str:
    """The processor's own chat template, or the adapter's equivalent when the checkpoint ships none."""
    return getattr(processor, "chat_template", None) or adapter.chat_template


def build_prompt(
    processor: Any,
    example: SLUExample,
    use_audio: bool,
    adapter: str | ModelAdapter = "qwen2-audio",
    instruction: str = INSTRUCTION,
):
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


def target_text(example: SLUExample, fmt: str = "frame") -> str:
    """The answer without the end-of-turn token: the one-line JSON frame, with the transcript first for
    "transcript+frame"."""
    if check_slu_target(fmt) == "frame":
        return example.frame.to_target()
    if not (example.transcript or "").strip():
        raise PromptError(f"example {example.id!r} has no transcript; the transcript+frame layout needs one")
    return json.dumps({"transcript": example.transcript.strip(), **example.frame.to_dict()}, ensure_ascii=False)


def build_target(example: SLUExample, adapter: str | ModelAdapter = "qwen2-audio", fmt: str = "frame") -> str:
    """The assistant's answer (see ``target_text``) and the end-of-turn token."""
    return target_text(example, fmt) + get_adapter(adapter).end_of_turn
