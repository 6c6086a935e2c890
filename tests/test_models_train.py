"""Models: what trains per phase, LoRA save/load/merge, overfit sanity (run: pytest tests/test_models_train.py)."""

import copy

import pytest
import torch

from data.frames import ParseStatus
from models.collate import SLUCollator
from models.decode import generate_frames
from models.loading import load_model, save_model
from models.trainable import LoraSettings, TrainableError, has_lora, merge_lora, save_lora, set_trainable

AUDIO_PREFIXES = ("model.audio_tower.", "model.multi_modal_projector.")

pytestmark = pytest.mark.usefixtures("single_thread")


def _steps(model, batch, n=2, lr=1e-2):
    # The optimizer sees every parameter, as a careless training loop would: freezing must hold regardless.
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(n):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture()
def mixed_batch(tiny_model, slu_examples):
    return SLUCollator(tiny_model[1])([(slu_examples[2], True), (slu_examples[1], False)])


@pytest.fixture()
def text_batch(tiny_model, slu_examples):
    return SLUCollator(tiny_model[1])([(slu_examples[0], False), (slu_examples[1], False)])


def test_text_phase_freezes_audio_encoder_and_projector_bit_exactly(tiny_model, mixed_batch):
    model = copy.deepcopy(tiny_model[0])
    summary = set_trainable(model, train_audio=False)
    assert summary.audio_trainable == 0 and summary.lora == 0 and 0 < summary.trainable < summary.total
    before = _snapshot(model)
    _steps(model, mixed_batch)  # the batch has audio, so the encoder would get gradients if it were not frozen
    for name, param in model.named_parameters():
        if name.startswith(AUDIO_PREFIXES):
            assert torch.equal(param, before[name]), name
        else:
            assert not torch.equal(param, before[name]), name


def test_speech_phase_trains_everything_but_fixed_positions(tiny_model, mixed_batch):
    model = copy.deepcopy(tiny_model[0])
    set_trainable(model, train_audio=False)
    summary = set_trainable(model, train_audio=True)  # a later phase re-enables the encoder
    positions = model.model.audio_tower.embed_positions.weight.numel()
    assert summary.trainable == summary.total - positions and summary.audio_trainable > 0
    before = _snapshot(model)
    _steps(model, mixed_batch)
    for name, param in model.named_parameters():
        moved = not torch.equal(param, before[name])
        assert moved == (name != "model.audio_tower.embed_positions.weight"), name


def test_lora_trains_only_adapters_then_saves_reloads_and_merges(tiny_model, tiny_model_dir, text_batch, tmp_path):
    mixed_batch = text_batch  # the audio path is frozen here; text keeps the test fast
    model = copy.deepcopy(tiny_model[0])
    summary = set_trainable(model, train_audio=False, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    lora_names = [n for n, _ in model.named_parameters() if ".lora_" in n]
    assert lora_names and all(n.startswith("model.language_model.layers.") for n in lora_names)
    assert summary.trainable == summary.lora > 0 and summary.audio_trainable == 0
    before = _snapshot(model)
    _steps(model, mixed_batch)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) != (".lora_B" in name or ".lora_A" in name), name

    with torch.no_grad():
        trained = model(**mixed_batch).logits
    lora_dir = save_lora(model, tmp_path / "lora")
    assert (lora_dir / "adapter_model.safetensors").stat().st_size < 200_000
    reloaded, _ = load_model(lora_dir, device="cpu")  # base from adapter_config.json + the adapter
    assert has_lora(reloaded)
    with torch.no_grad():
        assert torch.allclose(reloaded(**mixed_batch).logits, trained, atol=1e-5)

    # the folder is a standard peft adapter too
    from peft import PeftModel

    base, _ = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        assert torch.allclose(PeftModel.from_pretrained(base, str(lora_dir))(**mixed_batch).logits, trained, atol=1e-5)

    merged = merge_lora(reloaded)
    assert not has_lora(merged) and type(merged).__name__ == "Qwen2AudioForConditionalGeneration"
    with torch.no_grad():
        assert torch.allclose(merged(**mixed_batch).logits, trained, atol=1e-4)
    serving, processor = load_model(save_model(merged, tiny_model[1], tmp_path / "merged"), device="cpu")
    with torch.no_grad():
        assert torch.allclose(serving(**mixed_batch).logits, trained, atol=1e-4)
    # the base checkpoint itself is untouched
    with torch.no_grad():
        assert not torch.allclose(tiny_model[0](**mixed_batch).logits, trained, atol=1e-4)


def test_lora_persists_across_phases_and_audio_can_train_with_it(tiny_model):
    model = copy.deepcopy(tiny_model[0])
    set_trainable(model, train_audio=False, lora=LoraSettings(r=2))
    assert not any(m.training for m in model.modules())  # injected dropout follows the model's eval mode
    summary = set_trainable(model, train_audio=True)  # no new LoRA settings: keep the adapters
    assert summary.lora > 0 and summary.audio_trainable > 0
    assert summary.trainable == summary.lora + summary.audio_trainable
    with pytest.raises(TrainableError):
        LoraSettings(r=0)


def test_overfit_two_examples_until_the_model_emits_the_target(tiny_overfit):
    model, processor, items, losses = tiny_overfit
    assert losses[-1] < 0.05 * losses[0]
    preds = generate_frames(model, processor, items, max_new_tokens=48, progress=False)
    assert [p.frame for p in preds] == [ex.frame for ex, _ in items]
    assert all(p.parse.status is ParseStatus.CLEAN for p in preds)
