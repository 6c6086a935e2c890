"""Models: registry, tiny twin, loading errors, prompts (run: pytest tests/test_models.py)."""

import os

import pytest
import torch

from data.frames import SLUFrame
from models.loading import ModelLoadError, load_model
from models.prompt import INSTRUCTION, PromptError, build_prompt, build_target
from models.registry import ADAPTERS, AdapterError, get_adapter
from models.tiny import build_tiny, main as tiny_main

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_checkpoint_reloads_through_the_real_loading_path(tiny_model, tiny_model_dir):
    model, processor = tiny_model
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2AudioProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert processor.feature_extractor.feature_size == 128
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.config.audio_token_id == processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    fresh, _ = build_tiny(seed=0)
    other, _ = build_tiny(seed=1)
    saved = model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in fresh.state_dict().items())
    assert not all(torch.equal(saved[k], v) for k, v in other.state_dict().items())
    assert (tiny_model_dir / "config.json").is_file() and (tiny_model_dir / "chat_template.jinja").is_file()


def test_tiny_cli_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert tiny_main(["--out", str(tmp_path / "ckpt"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip().endswith("ckpt")
    model, processor = load_model(tmp_path / "ckpt", device="cpu")
    assert model.config.text_config.vocab_size == len(processor.tokenizer)


def test_tiny_tokenizer_round_trips_targets_and_multilingual_text(tiny_model):
    tok = tiny_model[1].tokenizer
    target = SLUFrame("calendar", "set", (("person", "paweł"), ("time", "dix heures"), ("date", "내일"))).to_target()
    for text in (target, "¿qué tiempo hace? разбуди меня", 'o\'clock "quoted"\n\ttabs'):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    for special in ("<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    # label words and JSON keys are single tokens, which keeps targets short
    assert len(tok(target, add_special_tokens=False)["input_ids"]) < len(target) / 2


def test_missing_hub_weights_name_the_hub_id_and_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model("Qwen/Qwen2-Audio-7B-Instruct", device="cpu")
    msg = str(err.value)
    assert "hub id 'Qwen/Qwen2-Audio-7B-Instruct'" in msg
    assert "huggingface-cli download Qwen/Qwen2-Audio-7B-Instruct" in msg and "HF_HOME" in msg


def test_missing_or_incomplete_local_folders_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "no" / "such" / "ckpt"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path / "empty", device="cpu")
    msg = str(err.value)  # names the folder, what is missing, and what a checkpoint folder holds
    assert str(tmp_path / "empty") in msg and "no config.json" in msg and "save_pretrained" in msg


def test_registry_lookup():
    assert get_adapter("qwen2-audio") is ADAPTERS["qwen2-audio"]
    assert get_adapter(ADAPTERS["qwen2-audio"]) is ADAPTERS["qwen2-audio"]
    with pytest.raises(AdapterError, match="qwen2-audio"):
        get_adapter("no-such-model")


def test_adapter_modules_exist_in_the_real_class(tiny_model):
    model = tiny_model[0]
    adapter = get_adapter("qwen2-audio")
    names = dict(model.named_modules())
    for dotted in (*adapter.audio_modules, adapter.language_model_module):
        assert dotted in names


def test_prompts_put_audio_or_transcript_in_the_same_place(tiny_model, slu_examples):
    processor = tiny_model[1]
    example = slu_examples[0]
    with_audio = build_prompt(processor, example, use_audio=True)
    text_only = build_prompt(processor, example, use_audio=False)
    assert with_audio.count("<|AUDIO|>") == 1 and example.transcript not in with_audio
    assert "<|AUDIO|>" not in text_only and f"Transcript: {example.transcript}\n" in text_only
    for prompt in (with_audio, text_only):
        assert prompt.startswith("<|im_start|>system\n")
        assert prompt.endswith(INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n")
    # the text prompt is the audio prompt with the audio part replaced by the transcript
    audio_part = "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    assert with_audio.replace(audio_part, f"Transcript: {example.transcript}\n") == text_only
    assert build_target(example) == example.frame.to_target() + "<|im_end|>"
    with pytest.raises(PromptError, match="has no audio"):
        build_prompt(processor, slu_examples[1], use_audio=True)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LALM_SLU_QWEN2_AUDIO"), reason="set LALM_SLU_QWEN2_AUDIO to a local checkpoint")
def test_real_checkpoint_loads_and_decodes(slu_examples):
    from models.decode import generate_frames

    model, processor = load_model(os.environ["LALM_SLU_QWEN2_AUDIO"])
    expected = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    assert model.dtype == expected
    preds = generate_frames(model, processor, [(slu_examples[0], True), (slu_examples[1], False)], max_new_tokens=64)
    assert [p.id for p in preds] == ["utt-0", "utt-1"] and all(p.text for p in preds)


def test_twin_encoder_positions_are_whisper_sinusoids():
    """Frozen positions must carry order: Whisper's sinusoid table, not the library's random init (std 0.02)."""
    import torch

    from models.tiny import build_tiny, sinusoidal_positions

    model, _ = build_tiny(seed=0)
    table = model.model.audio_tower.embed_positions.weight
    assert torch.allclose(table, sinusoidal_positions(*table.shape))
    assert table[0, : table.shape[1] // 2].abs().max() == 0  # sin(0) = 0 on every timescale
    assert (table[1] - table[0]).norm() > 1.0  # neighbouring frames are distinguishable
