"""Alignment pre-training (training/pretrain.py) on the synthetic corpus with the tiny size: it runs, writes a
loadable model and its history, resumes across its two stages (encoder-only listening, then the LLM), and its
character CTC head spells what it is trained on."""

import dataclasses
import json

import pytest

from training.pretrain import (
    CTC_CHARS,
    PretrainConfig,
    PretrainError,
    alignment_texts,
    character_error_rate,
    ctc_greedy,
    ctc_targets,
    pretrain,
    word_error_rate,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_config(corpus_dir, out, **overrides) -> PretrainConfig:
    """One listening and one LLM epoch of the tiny size on the synthetic corpus, the CTC head on."""
    values = dict(
        manifest=str(corpus_dir / "manifest.jsonl"),
        out=str(out),
        encoder_epochs=1,
        epochs=1,
        batch_size=4,
        eval_examples=2,
        size="tiny",
        ctc_weight=0.3,
    )
    return PretrainConfig(**{**values, **overrides})


def test_word_error_rate():
    assert word_error_rate(["a b c"], ["a b c"]) == 0.0
    assert word_error_rate(["a b c"], ["a x c d"]) == pytest.approx(2 / 3)  # one substitution, one insertion
    assert word_error_rate(["a b", "c"], ["", "c"]) == pytest.approx(2 / 3)


def test_alignment_learns_only_the_sentences_of_its_recordings():
    from data.example import AudioRef, SLUExample
    from data.frames import SLUFrame

    frame = SLUFrame("alarm", "set", ())

    def text(i):
        return SLUExample(f"t{i}", "c", "en-US", "train", f"sentence {i}", frame, None, f"t{i}")

    def clip(i, k):
        return SLUExample(
            f"r{i}{k}", "c", "en-US", "train", f"sentence {i}", frame, AudioRef(path="x.wav", duration_s=1.0), f"t{i}"
        )

    texts = [text(i) for i in range(4)]  # t2 and t3 are text-only rows: labelled, never spoken
    speech = [clip(1, 0), clip(0, 0), clip(1, 1)]
    assert [t.id for t in alignment_texts(texts, speech)] == ["t0", "t1"]  # corpus order, each sentence once
    assert all(t.audio is None for t in alignment_texts([], speech))  # no text rows: the clips' transcripts


def test_character_ctc_helpers():
    ids = ctc_targets("Olly, set  an alarm!")
    assert "".join(CTC_CHARS[i - 1] for i in ids) == "olly set an alarm"  # lowercased, punctuation dropped
    assert 0 not in ids  # 0 is the blank
    a, b = CTC_CHARS.index("a") + 1, CTC_CHARS.index("b") + 1
    assert ctc_greedy([0, a, a, 0, a, b, b, 0]) == "aab"  # repeats collapse unless a blank separates them
    assert character_error_rate(["abc"], ["abd"]) == pytest.approx(1 / 3)
    assert character_error_rate(["a b"], ["ab"]) == pytest.approx(1 / 3)  # the space counts


def test_pretrain_runs_resumes_and_records_ctc(synth_corpus_dir, tmp_path):
    import torch

    from models.loading import load_model

    out = tmp_path / "base"
    cfg = tiny_config(synth_corpus_dir, out, max_speech=8)
    model_dir = pretrain(cfg)
    history = json.loads((out / "pretrain.json").read_text())["history"]
    assert [(h["epoch"], h["stage"]) for h in history] == [(1, "listen"), (2, "align")]
    assert history[0]["ctc_loss"] > 0 and "dev_cer_ctc" in history[0] and "dev_wer" not in history[0]
    assert history[1]["ctc_loss"] > 0 and "dev_wer" in history[1]
    model, processor = load_model(model_dir, device="cpu")
    # the BPE was trained on this corpus: its transcripts' words are single tokens more often than bytes
    assert len(processor.tokenizer) <= 768 + 10
    # the CTC head is a training aid: kept for resuming, not part of the model folder
    assert not any("ctc" in n for n, _ in model.named_parameters())
    assert "ctc_head" in torch.load(out / "state" / "trainer.pt", weights_only=False)
    cfg.epochs, cfg.resume = 2, True
    pretrain(cfg)
    history = json.loads((out / "pretrain.json").read_text())["history"]
    assert [(h["epoch"], h["stage"]) for h in history] == [(1, "listen"), (2, "align"), (3, "align")]


def test_listening_stage_learns_and_leaves_the_llm_alone(synth_corpus_dir, tmp_path):
    """The encoder-only stage (--epochs 0: listening only) lowers the CTC loss on the clips it trains on and does
    not touch the LLM's weights; the held-out voices' CTC error is reported per speaker, and no WER without an LLM
    stage."""
    import torch

    from models.loading import load_model

    out = tmp_path / "listen"
    pretrain(
        tiny_config(synth_corpus_dir, out, encoder_epochs=12, epochs=0, max_speech=8, eval_examples=4, encoder_lr=3e-3)
    )
    summary = json.loads((out / "pretrain.json").read_text())
    history = summary["history"]
    assert {h["stage"] for h in history} == {"listen"} and len(history) == 12
    listen = [h["ctc_loss"] for h in history]
    assert listen[-1] < 0.7 * listen[0]
    test = summary["test"]
    assert "wer" not in test and "examples" not in test
    by_speaker = test["cer_ctc_by_speaker"]
    assert len(by_speaker) > 1 and all(0 <= v for v in by_speaker.values())
    assert min(by_speaker.values()) <= test["cer_ctc"] <= max(by_speaker.values())
    model, _ = load_model(out / "model", device="cpu")
    from training.pretrain import build_base
    from data.corpus import load_corpus

    fresh, _ = build_base(
        load_corpus("manifest", path=str(synth_corpus_dir / "manifest.jsonl")).split("train").texts, "tiny", 0
    )
    trained = dict(model.named_parameters())
    for name, p in fresh.named_parameters():
        if "audio_tower" in name and "embed_positions" not in name and name.endswith("fc1.weight"):
            assert not torch.allclose(p, trained[name])  # the encoder learned
        if "embed_tokens" in name:
            assert torch.equal(p, trained[name])  # the LLM's embeddings never moved


def test_alignment_manifest_adds_clips_heard_by_alignment_only(synth_corpus_dir, tmp_path):
    """--alignment-manifest: its clips join the training clips (and their sentences the repetition texts); the
    held-out test voices are transcribed once at the end and recorded."""
    rows = [json.loads(x) for x in (synth_corpus_dir / "manifest.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train" and r.get("audio")]
    dev = train[:5]  # training sentences spoken again as alignment-only clips (dev/test sentences are refused)
    extra = tmp_path / "alignment.jsonl"
    audio_root = synth_corpus_dir
    extra.write_text(
        "".join(
            json.dumps(
                {
                    **r,
                    "id": f"align-{i}",
                    "text_id": f"align-t{i}",
                    "split": "train",
                    "audio": str(audio_root / r["audio"]),
                }
            )
            + "\n"
            for i, r in enumerate(dev)
        )
    )
    out = tmp_path / "base"
    cfg = tiny_config(synth_corpus_dir, out, alignment_manifest=str(extra), batch_size=8)
    pretrain(cfg)
    summary = json.loads((out / "pretrain.json").read_text())
    assert summary["alignment_only_clips"] == len(dev) and summary["clips"] == len(train) + len(dev)
    assert summary["test"]["clips"] > 0 and 0 <= summary["test"]["cer_ctc"] and summary["test"]["wer"] >= 0
    leak = tmp_path / "leak.jsonl"  # a clip that speaks a test sentence of the corpus: refused
    test_row = next(r for r in rows if r["split"] == "test" and r.get("audio"))
    leak.write_text(
        json.dumps({**test_row, "id": "x1", "split": "train", "audio": str(audio_root / test_row["audio"])})
    )
    with pytest.raises(PretrainError, match="speak a dev or test sentence"):
        pretrain(dataclasses.replace(cfg, alignment_manifest=str(leak), out=str(tmp_path / "leak")))
    with pytest.raises(PretrainError, match="cannot read --alignment-manifest"):
        pretrain(
            PretrainConfig(
                manifest=cfg.manifest,
                alignment_manifest=str(tmp_path / "nope.jsonl"),
                out=str(tmp_path / "x"),
                size="tiny",
            )
        )


def test_shared_prompt_asks_both_tasks_alike(synth_corpus_dir, tmp_path):
    """--align-prompt shared: transcription and repetition use one instruction (recorded in pretrain.json), and the
    run trains and transcribes its dev clips."""
    from training.pretrain import ALIGN_PROMPTS, WRITE_DOWN

    assert ALIGN_PROMPTS["shared"] == (WRITE_DOWN, WRITE_DOWN) and len(set(ALIGN_PROMPTS["separate"])) == 2
    out = tmp_path / "shared"
    pretrain(tiny_config(synth_corpus_dir, out, max_speech=8, encoder_epochs=0, align_prompt="shared"))
    summary = json.loads((out / "pretrain.json").read_text())
    assert summary["instructions"] == {"transcribe": WRITE_DOWN, "repeat": WRITE_DOWN}
    assert "dev_wer" in summary["history"][-1]


def test_pretrain_bad_input(tmp_path):
    with pytest.raises(PretrainError, match="--manifest is required"):
        pretrain(PretrainConfig(manifest="", out=str(tmp_path)))
    with pytest.raises(PretrainError, match="cannot read the corpus"):
        pretrain(PretrainConfig(manifest=str(tmp_path / "missing.jsonl"), out=str(tmp_path)))
    with pytest.raises(PretrainError, match="--align-prompt 'joint' is not one of separate, shared"):
        pretrain(PretrainConfig(manifest=str(tmp_path / "m.jsonl"), out=str(tmp_path), align_prompt="joint"))
    with pytest.raises(PretrainError, match="at least one of them >= 1"):
        pretrain(PretrainConfig(manifest=str(tmp_path / "m.jsonl"), out=str(tmp_path), epochs=0, encoder_epochs=0))
    for bad in ("1.1", "1.2,0.8", "0,1", "a,b"):
        with pytest.raises(PretrainError, match="--spec-warp"):
            pretrain(PretrainConfig(manifest=str(tmp_path / "m.jsonl"), out=str(tmp_path), spec_warp=bad))


def test_spec_warp_reaches_the_augmenter():
    """--spec-warp sets the frequency warp the alignment stage draws from: same seed and epoch, a different warp
    range, different features; the padding stays as it was."""
    import torch

    from training.pretrain import _augmenter

    features = torch.randn(2, 128, 60)
    mask = torch.ones(2, 60, dtype=torch.long)
    mask[1, 40:] = 0

    def augmented(warp):
        cfg = PretrainConfig(manifest="m.jsonl", spec_warp=warp)
        return _augmenter(cfg, epoch=3)({"input_features": features.clone(), "feature_attention_mask": mask})

    same, wide = augmented("1,1"), augmented("0.7,0.7")
    assert torch.equal(same["input_features"], augmented("1,1")["input_features"])  # seeded
    assert not torch.allclose(same["input_features"], wide["input_features"])
    assert torch.equal(wide["input_features"][1, :, 40:], features[1, :, 40:])
