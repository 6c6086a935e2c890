"""Models: the collator's labels, loss, padding and dummy audio (run: pytest tests/test_models_collate.py)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from models.collate import IGNORE_INDEX, CollateError, SLUCollator
from models.prompt import build_target

pytestmark = pytest.mark.usefixtures("single_thread")


def _mixed(examples):
    # audio item, text item, audio example used on the text path, text item
    return [(examples[0], True), (examples[1], False), (examples[2], False), (examples[3], False)]


def test_labels_are_exactly_the_target_and_end_of_turn(tiny_model, slu_examples):
    processor = tiny_model[1]
    tok = processor.tokenizer
    items = _mixed(slu_examples)
    batch = SLUCollator(processor)(items)
    # only the one clip that is used, at its own length (1.0 s + margin, whole groups of 4 frames), not 30 s
    assert batch["input_features"].shape == (1, 128, 108)
    assert SLUCollator(processor, encoder_trim=False)(items)["input_features"].shape == (1, 128, 3000)
    for row, (example, _) in enumerate(items):
        want = tok(example.frame.to_target() + "<|im_end|>", add_special_tokens=False)["input_ids"]
        labels, mask = batch["labels"][row], batch["attention_mask"][row]
        kept = labels[labels != IGNORE_INDEX].tolist()
        assert kept == want
        n_real = int(mask.sum())
        assert mask[:n_real].all() and not mask[n_real:].any()  # right padding for training
        assert batch["input_ids"][row, n_real - len(want) : n_real].tolist() == want  # the target ends the row
        assert (labels[: n_real - len(want)] == IGNORE_INDEX).all()
    audio_id = tok.convert_tokens_to_ids("<|AUDIO|>")
    n_placeholders = (batch["input_ids"] == audio_id).sum(dim=1).tolist()
    assert n_placeholders[0] > 2 and n_placeholders[1:] == [0, 0, 0]
    assert (batch["labels"][batch["input_ids"] == audio_id] == IGNORE_INDEX).all()


def test_loss_is_cross_entropy_over_exactly_the_target_tokens(tiny_model, slu_examples):
    model, processor = tiny_model
    items = _mixed(slu_examples)
    batch = SLUCollator(processor)(items)
    tok = processor.tokenizer
    with torch.no_grad():
        out = model(**batch)
    # Manual: each row's target token ids at the end of its real tokens, predicted from the position before.
    losses = []
    for row, (example, _) in enumerate(items):
        target = tok(build_target(example), add_special_tokens=False)["input_ids"]
        end = int(batch["attention_mask"][row].sum())
        positions = torch.arange(end - len(target), end)
        logits = out.logits[row, positions - 1]
        losses.append(F.cross_entropy(logits, torch.tensor(target), reduction="none"))
    manual = torch.cat(losses).mean()
    assert torch.allclose(out.loss, manual, atol=1e-5), (out.loss, manual)


def test_generation_batches_are_left_padded_prompts(tiny_model, slu_examples):
    processor = tiny_model[1]
    collator = SLUCollator(processor)
    items = _mixed(slu_examples)
    gen = collator.for_generation(items)
    train = collator(items)
    assert "labels" not in gen and gen["attention_mask"][:, -1].all()
    for row, (example, _) in enumerate(items):
        n_prompt = int(gen["attention_mask"][row].sum())
        assert not gen["attention_mask"][row, : gen["input_ids"].shape[1] - n_prompt].any()
        prompt = gen["input_ids"][row, -n_prompt:]
        assert torch.equal(prompt, train["input_ids"][row, :n_prompt])  # same tokens as the training prompt
        assert (train["labels"][row, :n_prompt] == IGNORE_INDEX).all()
        assert processor.tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert torch.equal(gen["input_features"], train["input_features"])


def test_dummy_clip_keeps_audio_encoder_in_the_graph_without_changing_the_loss(tiny_model, slu_examples):
    model = copy.deepcopy(tiny_model[0]).train()
    processor = tiny_model[1]
    items = [(slu_examples[1], False), (slu_examples[3], False)]
    plain = SLUCollator(processor)(items)
    padded = SLUCollator(processor, ensure_audio=True)(items)
    assert "input_features" not in plain and padded["input_features"].shape[0] == 1
    assert torch.equal(plain["labels"], padded["labels"][:, : plain["labels"].shape[1]])
    assert (padded["labels"][:, plain["labels"].shape[1] :] == IGNORE_INDEX).all()

    audio_params = [p for n, p in model.named_parameters() if n.startswith("model.audio_tower") and p.requires_grad]
    audio_params += list(model.model.multi_modal_projector.parameters())

    loss_plain = model(**plain).loss
    loss_plain.backward()
    assert all(p.grad is None for p in audio_params)  # what makes DDP hang: no gradient on this rank
    model.zero_grad(set_to_none=True)

    loss_padded = model(**padded).loss
    loss_padded.backward()
    assert torch.allclose(loss_plain, loss_padded, atol=1e-6)
    assert all(p.grad is not None for p in audio_params)
    assert all(torch.count_nonzero(p.grad) == 0 for p in audio_params)  # masked: contributes nothing


def test_dummy_clip_is_only_added_when_the_batch_has_no_audio(tiny_model, slu_examples):
    collator = SLUCollator(tiny_model[1], ensure_audio=True)
    assert collator(_mixed(slu_examples))["input_features"].shape[0] == 1
    assert "input_features" not in collator.for_generation([(slu_examples[1], False)])


def test_bad_items_are_refused_with_the_example_named(tiny_model, slu_examples):
    collator = SLUCollator(tiny_model[1])
    with pytest.raises(ValueError, match="utt-1"):
        collator([(slu_examples[1], True)])
    with pytest.raises(CollateError, match="empty batch"):
        collator([])
    short = SLUCollator(tiny_model[1], audio_loader=lambda ref: torch.zeros(100).numpy())
    with pytest.raises(CollateError, match="utt-0"):
        short([(slu_examples[0], True)])
