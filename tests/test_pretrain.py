"""Alignment pre-training (training/pretrain.py) on the synthetic corpus with the tiny size: it runs, writes a
loadable model and its history, resumes, and its auxiliary CTC loss is computed on the audio tokens."""

import json

import pytest

from training.pretrain import PretrainConfig, PretrainError, pretrain, word_error_rate

pytestmark = pytest.mark.usefixtures("single_thread")


def test_word_error_rate():
    assert word_error_rate(["a b c"], ["a b c"]) == 0.0
    assert word_error_rate(["a b c"], ["a x c d"]) == pytest.approx(2 / 3)  # one substitution, one insertion
    assert word_error_rate(["a b", "c"], ["", "c"]) == pytest.approx(2 / 3)


def test_pretrain_runs_resumes_and_records_ctc(synth_corpus_dir, tmp_path):
    from models.loading import load_model

    out = tmp_path / "base"
    cfg = PretrainConfig(manifest=str(synth_corpus_dir / "manifest.jsonl"), out=str(out), epochs=1, batch_size=4,
                         max_speech=8, eval_examples=2, size="tiny", ctc_weight=0.3)
    model_dir = pretrain(cfg)
    history = json.loads((out / "pretrain.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1]
    assert history[0]["ctc_loss"] > 0 and "dev_wer" in history[0]
    model, processor = load_model(model_dir, device="cpu")
    # the BPE was trained on this corpus: its transcripts' words are single tokens more often than bytes
    assert len(processor.tokenizer) <= 768 + 10
    cfg.epochs, cfg.resume = 2, True
    pretrain(cfg)
    history = json.loads((out / "pretrain.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_pretrain_bad_input(tmp_path):
    with pytest.raises(PretrainError, match="--manifest is required"):
        pretrain(PretrainConfig(manifest="", out=str(tmp_path)))
    with pytest.raises(PretrainError, match="cannot read the corpus"):
        pretrain(PretrainConfig(manifest=str(tmp_path / "missing.jsonl"), out=str(tmp_path)))
