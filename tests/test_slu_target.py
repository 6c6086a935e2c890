"""The SLU answer layouts (models/prompt.py): the paper's frame, and the transcript+frame layout the Mini-LALM uses.

Run: pytest tests/test_slu_target.py
"""

import json

import pytest
import torch

from data.frames import ParseStatus, parse_output
from models.collate import IGNORE_INDEX, SLUCollator
from models.decode import generate_frames
from models.loading import load_model, save_model
from models.prompt import (
    INSTRUCTION,
    INSTRUCTION_WITH_TRANSCRIPT,
    PromptError,
    build_target,
    slu_target_of,
    target_text,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_transcript_layout_round_trips_through_the_parser(slu_examples):
    for example in slu_examples:
        text = target_text(example, "transcript+frame")
        obj = json.loads(text)
        assert list(obj)[0] == "transcript" and obj["transcript"] == example.transcript.strip()
        parsed = parse_output(text)
        # the extra key is part of the layout: the answer is clean, not "repaired"
        assert parsed.status is ParseStatus.CLEAN
        assert parsed.frame == example.frame
        assert parsed.transcript == " ".join(example.transcript.lower().split())
        # the paper's layout has no transcript, and parses to the same frame
        plain = parse_output(target_text(example, "frame"))
        assert plain.frame == example.frame and plain.transcript is None


def test_unknown_layout_and_missing_transcript_are_clear_errors(slu_examples):
    with pytest.raises(PromptError, match="transcript\\+frame"):
        target_text(slu_examples[0], "words-then-frame")
    blank = slu_examples[0].__class__(**{**slu_examples[0].__dict__, "transcript": " "})
    with pytest.raises(PromptError, match="no transcript"):
        target_text(blank, "transcript+frame")


def test_collator_teaches_the_layout_the_model_carries(tiny_model, slu_examples):
    processor = tiny_model[1]
    tok = processor.tokenizer
    items = [(slu_examples[0], True), (slu_examples[1], False)]
    batch = SLUCollator(processor, slu_target="transcript+frame")(items)
    for row, (example, _) in enumerate(items):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert kept == tok(build_target(example, fmt="transcript+frame"), add_special_tokens=False)["input_ids"]
        prompt = tok.decode(batch["input_ids"][row][batch["labels"][row] == IGNORE_INDEX])
        assert INSTRUCTION_WITH_TRANSCRIPT in prompt and INSTRUCTION not in prompt
    plain = SLUCollator(processor)(items)
    assert INSTRUCTION in tok.decode(plain["input_ids"][0])


def test_layout_is_saved_with_the_model_and_used_by_decoding(tiny_model, slu_examples, tmp_path):
    model, processor = tiny_model
    assert slu_target_of(model) == "frame"  # unset: the paper's layout
    model.config.slu_target = "transcript+frame"
    try:
        folder = save_model(model, processor, tmp_path / "m")
    finally:
        del model.config.slu_target
    loaded, loaded_processor = load_model(folder, device="cpu", dtype=torch.float32)
    assert slu_target_of(loaded) == "transcript+frame"
    # Decoding prompts with the layout's instruction: the token ids the model receives are captured by a torch
    # forward pre-hook on the model.
    seen = []

    def grab(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[-1] > 1:
            seen.append(loaded_processor.tokenizer.decode(ids[0]))

    items = [(slu_examples[1], False)]
    handle = loaded.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        generate_frames(loaded, loaded_processor, items, num_beams=1, max_new_tokens=2, progress=False)
        assert seen and INSTRUCTION_WITH_TRANSCRIPT in seen[0]
        seen.clear()
        loaded.config.slu_target = "frame"
        generate_frames(loaded, loaded_processor, items, num_beams=1, max_new_tokens=2, progress=False)
        assert seen and INSTRUCTION in seen[0] and INSTRUCTION_WITH_TRANSCRIPT not in seen[0]
    finally:
        handle.remove()
    loaded.config.slu_target = "bogus"
    with pytest.raises(PromptError, match="slu_target"):
        generate_frames(loaded, loaded_processor, items, num_beams=1, max_new_tokens=2, progress=False)
