"""Alignment pre-training of a Mini-LALM: teach a fresh audio LLM to link speech and text before any SLU label.

The seed paper's premise is that an LALM arrives already aligned (Qwen2-Audio was pre-trained on large amounts of
speech-text data); that is why text-only SLU fine-tuning transfers to speech at all. A model built from random
weights has no such alignment, so this stage gives it one, on transcripts only (no intent or slot label is seen):

* transcription: the clip in the user turn, "Transcribe the audio." as the instruction, the transcript as the target
  (encoder, projector and LLM all train);
* repetition: the transcript in the user turn (the same place the text-only SLU scheme puts it), "Repeat the
  transcript." as the instruction, the transcript as the target, so the LLM treats a transcript and the audio of it
  alike.

    python -m training.pretrain --manifest demo_corpus/manifest.jsonl --out runs/mini-base [--epochs 8]

writes ``OUT/model`` (a checkpoint folder ``load_model`` and ``python -m training.train --model OUT/model`` read),
``OUT/pretrain.json`` (settings, per-epoch loss and dev word error rate, wall time) and, after every epoch, a
resumable ``OUT/state`` (``--resume`` continues from it). Progress bars show steps, loss and time left.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data.textio import atomic_write_text

TRANSCRIBE = "Transcribe the audio."
REPEAT = "Repeat the transcript."


class PretrainError(RuntimeError):
    """The alignment stage cannot run as asked; the message says why and what to do."""


@dataclass
class PretrainConfig:
    manifest: str = field(default="", metadata={"help": "corpus manifest (its train split is used; dev for WER)"})
    out: str = field(default="runs/mini-base", metadata={"help": "output folder"})
    epochs: int = field(default=8, metadata={"help": "passes over the training speech"})
    batch_size: int = field(default=16, metadata={"help": "examples per step"})
    peak_lr: float = field(default=2e-3, metadata={"help": "peak learning rate (cosine schedule)"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps spent warming up"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    repeat_share: float = field(default=0.25, metadata={"help": "text repetition batches per transcription batch"})
    seed: int = field(default=0, metadata={"help": "random seed (initialisation and order)"})
    max_speech: int = field(default=0, metadata={"help": "use at most this many training clips (0 = all)"})
    eval_examples: int = field(default=48, metadata={"help": "dev clips transcribed after each epoch"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch's default)"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/state"})
    size: str = field(default="mini", metadata={"help": "model size preset: mini (~4M parameters) or tiny"})
    init_from: str = field(default="", metadata={"help": "start from this model folder (weights and tokenizer) "
                                                          "with a fresh optimizer and schedule, e.g. a second "
                                                          "alignment round"})
    ctc_weight: float = field(default=0.0, metadata={"help": "weight of an auxiliary CTC loss on the projector's "
                                                              "audio tokens (0 = off)"})


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: word edit distance summed over utterances / reference words."""
    errors = words = 0
    for ref, hyp in zip(refs, hyps):
        r, h = ref.split(), hyp.split()
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            prev, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
        errors += row[-1]
        words += len(r)
    return errors / max(words, 1)


def _size(name: str):
    from models.mini import MiniSize

    if name == "mini":
        return MiniSize()
    if name == "tiny":
        return MiniSize(audio_dim=64, audio_layers=2, text_dim=64, text_layers=2, ffn_dim=256, vocab_size=768)
    raise PretrainError(f"--size must be mini or tiny, got {name!r}")


def build_base(train_texts, size_name: str, seed: int):
    """A fresh mini model whose tokenizer is trained on the corpus's training transcripts, targets and prompts."""
    from models.mini import build_mini, tokenizer_texts
    from models.prompt import INSTRUCTION

    prompts = [INSTRUCTION, TRANSCRIBE, REPEAT, "You are a helpful assistant.", "Transcript: "]
    texts = tokenizer_texts([t.transcript for t in train_texts], [t.frame.to_target() for t in train_texts], prompts)
    return build_mini(texts, size=_size(size_name), seed=seed)


def _batches(speech, texts, cfg: PretrainConfig, epoch: int) -> list[tuple[str, list]]:
    """This epoch's batches: transcription batches grouped by clip length, plus repetition batches, shuffled."""
    from training.plan import group_by_length

    rng = random.Random(f"lalm-slu-pretrain:{cfg.seed}:{epoch}")
    items = [(s, True) for s in speech]
    rng.shuffle(items)
    ordered = group_by_length(items, cfg.batch_size, seed=cfg.seed, epoch=epoch)
    batches = [("asr", ordered[i:i + cfg.batch_size]) for i in range(0, len(ordered), cfg.batch_size)]
    n_repeat = round(cfg.repeat_share * len(batches))
    pool = [(t, False) for t in texts]
    for _ in range(n_repeat):
        batches.append(("repeat", rng.sample(pool, min(cfg.batch_size, len(pool)))))
    rng.shuffle(batches)
    return batches


def transcribe(model, processor, clips, batch_size: int = 16, max_new_tokens: int = 48) -> list[str]:
    """Greedy transcriptions of ``clips`` (speech examples) with the transcription instruction."""
    import torch

    from models.collate import SLUCollator

    collator = SLUCollator(processor, instruction=TRANSCRIBE)
    stop = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(clips), batch_size):
            batch = collator.for_generation([(c, True) for c in clips[start:start + batch_size]])
            with torch.inference_mode():
                gen = model.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=max_new_tokens,
                                     eos_token_id=stop, pad_token_id=collator.pad_id)
            out += [t.strip() for t in processor.tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1]:],
                                                                        skip_special_tokens=True)]
    finally:
        model.train(was_training)
    return out


class _AudioTokens:
    """Captures the projector's output (the audio tokens handed to the LLM) during a forward pass."""

    def __init__(self, model) -> None:
        inner = getattr(model, "model", model)
        self.module = getattr(inner, "multi_modal_projector", None) or model.multi_modal_projector
        self.value = None
        self.handle = self.module.register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output) -> None:
        self.value = output


def ctc_loss(model, processor, batch, audio_tokens, transcripts: list[str]):
    """CTC of the transcript's tokens on the audio tokens, scored through the LLM's own output head.

    An auxiliary alignment signal (as in CTC-regularised speech LLM adaptors): each audio token must carry the
    identity of the words it covers, which an attention decoder trained from scratch is slow to learn on its own.
    The blank is the padding token.
    """
    import torch

    feats = audio_tokens.value
    if feats is None:
        return None
    lengths = batch["feature_attention_mask"].sum(-1)
    enc = getattr(model, "model", model).audio_tower
    _, out_lengths = enc._get_feat_extract_output_lengths(lengths)
    logits = model.lm_head(feats).float().log_softmax(-1).transpose(0, 1)  # (T, N, V)
    tok = processor.tokenizer
    targets = [tok(t, add_special_tokens=False)["input_ids"] for t in transcripts]
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return torch.nn.functional.ctc_loss(logits, flat, out_lengths.long(), target_lengths, blank=tok.pad_token_id,
                                        zero_infinity=True)


def _save_state(out: Path, model, processor, optimizer, scheduler, epoch: int, history: list) -> None:
    """Model folder + optimizer/scheduler/epoch, each written whole (temporary name, then rename)."""
    import torch

    from models.loading import save_model

    save_model(model, processor, out / "state" / "model")
    tmp = out / "state" / ".trainer.pt.tmp"
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
                "history": history}, tmp)
    tmp.replace(out / "state" / "trainer.pt")


def pretrain(cfg: PretrainConfig) -> Path:
    import torch
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from data.corpus import CorpusError, load_corpus
    from models.collate import SLUCollator

    if not cfg.manifest:
        raise PretrainError("--manifest is required: a corpus manifest, e.g. the one `python -m data.synth` writes")
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.peak_lr <= 0:
        raise PretrainError("--epochs and --batch-size must be >= 1 and --peak-lr > 0")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        corpus = load_corpus("manifest", path=cfg.manifest)
    except (CorpusError, OSError) as exc:
        raise PretrainError(f"cannot read the corpus: {exc}") from None
    train, dev = corpus.split("train"), corpus.split("dev")
    speech = sorted(train.speech, key=lambda x: x.id)
    if cfg.max_speech > 0:
        speech = random.Random(cfg.seed).sample(speech, min(cfg.max_speech, len(speech)))
    if not speech:
        raise PretrainError(f"{cfg.manifest} has no training speech: alignment needs recordings with transcripts")
    texts = train.texts or [s.as_text() for s in speech]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    start_epoch, history = 0, []
    state = out / "state"
    if cfg.resume and (state / "trainer.pt").exists():
        from models.loading import load_model

        model, processor = load_model(state / "model", device="cpu")
        saved = torch.load(state / "trainer.pt", weights_only=False)
        start_epoch, history = saved["epoch"], saved["history"]
        print(f"resuming after epoch {start_epoch} from {state}", flush=True)
    elif cfg.init_from:
        from models.loading import ModelLoadError, load_model

        try:
            model, processor = load_model(cfg.init_from, device="cpu")
        except ModelLoadError as exc:
            raise PretrainError(f"--init-from: {exc}") from None
        saved = None
        print(f"starting from {cfg.init_from} (fresh optimizer and schedule)", flush=True)
    else:
        model, processor = build_base(train.texts or texts, cfg.size, cfg.seed)
        saved = None
    n_params = sum(p.numel() for p in model.parameters())
    asr = SLUCollator(processor, instruction=TRANSCRIBE, target_fn=lambda e: e.transcript)
    rep = SLUCollator(processor, instruction=REPEAT, target_fn=lambda e: e.transcript)
    for p in model.parameters():
        p.requires_grad_(True)
    fixed = "audio_tower.embed_positions"  # sinusoidal positions, never trained (as in the real model)
    params = [p for n, p in model.named_parameters() if fixed not in n]
    for n, p in model.named_parameters():
        if fixed in n:
            p.requires_grad_(False)
    optimizer = torch.optim.AdamW(params, lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(_batches(speech, texts, cfg, 0))
    total = steps_per_epoch * cfg.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total), total)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    dev_clips = sorted(dev.speech, key=lambda x: x.id)[: cfg.eval_examples] if cfg.eval_examples > 0 else []
    print(f"alignment pre-training: {n_params / 1e6:.2f}M parameters, {len(speech)} clips + {len(texts)} "
          f"transcripts, {cfg.epochs} epochs x {steps_per_epoch} steps", flush=True)
    started = time.time()
    model.train()
    audio_tokens = _AudioTokens(model) if cfg.ctc_weight > 0 else None
    for epoch in range(start_epoch, cfg.epochs):
        batches = _batches(speech, texts, cfg, epoch)
        losses = {"asr": [], "repeat": []}
        bar = tqdm(batches, desc=f"align epoch {epoch + 1}/{cfg.epochs}", unit="step")
        for kind, rows in bar:
            batch = (asr if kind == "asr" else rep)(rows)
            loss = model(**batch).loss
            losses[kind].append(loss.item())
            if audio_tokens is not None and kind == "asr":
                ctc = ctc_loss(model, processor, batch, audio_tokens, [e.transcript for e, _ in rows])
                audio_tokens.value = None
                if ctc is not None:
                    losses.setdefault("ctc", []).append(ctc.item())
                    loss = loss + cfg.ctc_weight * ctc
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{losses[kind][-1]:.3f}", kind=kind)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "asr_loss": sum(losses["asr"]) / max(len(losses["asr"]), 1),
            "repeat_loss": sum(losses["repeat"]) / max(len(losses["repeat"]), 1),
            **({"ctc_loss": sum(losses["ctc"]) / len(losses["ctc"])} if losses.get("ctc") else {}),
            "seconds": round(time.time() - started, 1),
        }
        if dev_clips:
            hyps = transcribe(model, processor, dev_clips)
            record["dev_wer"] = word_error_rate([c.transcript for c in dev_clips], hyps)
            record["dev_example"] = {"ref": dev_clips[0].transcript, "hyp": hyps[0]}
        history.append(record)
        print(json.dumps(record), flush=True)
        _save_state(out, model, processor, optimizer, scheduler, epoch + 1, history)
    from models.loading import save_model

    final = save_model(model, processor, out / "model")
    summary = {"config": asdict(cfg), "parameters": n_params, "history": history,
               "seconds": round(time.time() - started, 1)}
    atomic_write_text(out / "pretrain.json", json.dumps(summary, indent=2) + "\n")
    return final


def main() -> int:
    """The CLI: flags from PretrainConfig; our errors become one ``error:`` line and exit status 2."""
    from data.cli import run_cli

    run_cli(lambda cfg: print(pretrain(cfg)), PretrainConfig, (PretrainError,),
            description=__doc__.splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
