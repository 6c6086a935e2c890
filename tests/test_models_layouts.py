"""The adapter finds the audio encoder, projector and language model in both transformers module layouts.

transformers 5.x nests them under ``model.`` (``model.audio_tower``, ``model.language_model`` = the bare decoder,
``lm_head`` on top); 4.x keeps them at the top level (``audio_tower``, ``language_model`` = a causal LM holding
``.model`` and ``.lm_head``). The 4.x tree is built here from the same tiny modules, arranged as 4.x arranges them.
"""

from __future__ import annotations

import copy

import pytest
import torch

from models.registry import AdapterError, QWEN2_AUDIO, check_transformers
from models.trainable import LoraSettings, TrainableError, audio_modules, set_trainable

pytestmark = pytest.mark.usefixtures("single_thread")


class _CausalLM(torch.nn.Module):
    def __init__(self, decoder, lm_head):
        super().__init__()
        self.model = decoder
        self.lm_head = lm_head


class _V4Layout(torch.nn.Module):
    """Qwen2AudioForConditionalGeneration as transformers 4.x lays it out."""

    def __init__(self, v5):
        super().__init__()
        self.config = v5.config
        self.audio_tower = v5.model.audio_tower
        self.multi_modal_projector = v5.model.multi_modal_projector
        self.language_model = _CausalLM(v5.model.language_model, v5.lm_head)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_5x_layout_is_the_installed_one(tiny_model):
    model = tiny_model[0]
    assert QWEN2_AUDIO.for_model(model) is QWEN2_AUDIO
    assert audio_modules(model) == ("model.audio_tower", "model.multi_modal_projector")


@pytest.mark.parametrize("layout", ["5.x", "4.x"])
def test_phases_freeze_the_same_weights_in_both_layouts(tiny_model, layout):
    v5 = copy.deepcopy(tiny_model[0])
    model = v5 if layout == "5.x" else _V4Layout(v5)
    prefix = "model." if layout == "5.x" else ""
    text = set_trainable(model, train_audio=False)
    names = _trainable(model)
    assert text.audio_trainable == 0 and names
    assert not any(n.startswith((f"{prefix}audio_tower.", f"{prefix}multi_modal_projector.")) for n in names)
    speech = set_trainable(model, train_audio=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {f"{prefix}audio_tower.embed_positions.weight"}
    assert (
        speech.audio_trainable > 0
        and speech.trainable
        == speech.total - model.get_parameter(f"{prefix}audio_tower.embed_positions.weight").numel()
    )


@pytest.mark.parametrize("layout", ["5.x", "4.x"])
def test_lora_goes_into_the_language_model_only_in_both_layouts(tiny_model, layout):
    v5 = copy.deepcopy(tiny_model[0])
    model = v5 if layout == "5.x" else _V4Layout(v5)
    summary = set_trainable(model, train_audio=False, lora=LoraSettings(r=2))
    lora = [n for n, _ in model.named_parameters() if ".lora_" in n]
    decoder = "model.language_model.layers." if layout == "5.x" else "language_model.model.layers."
    assert lora and all(n.startswith(decoder) for n in lora)
    assert summary.trainable == summary.lora == sum(p.numel() for n, p in model.named_parameters() if ".lora_" in n)
    assert audio_modules(model) == tuple(
        f"{'model.' if layout == '5.x' else ''}{m}" for m in ("audio_tower", "multi_modal_projector")
    )


def test_an_unknown_layout_is_refused_with_the_paths_and_version(tiny_model):
    other = torch.nn.Module()
    other.encoder = copy.deepcopy(tiny_model[0].model.audio_tower)
    with pytest.raises(TrainableError, match=r"model\.audio_tower.*\| audio_tower.*transformers \d"):
        set_trainable(other, train_audio=False)


def test_transformers_range_is_checked_at_start():
    import transformers

    assert check_transformers() == transformers.__version__
    assert check_transformers("5.0.0") == "5.0.0"
    for old in ("4.57.3", "4.50.0", "6.0.0"):
        with pytest.raises(AdapterError, match=rf"transformers {old} is installed; .*pip install"):
            check_transformers(old)
