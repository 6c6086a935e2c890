"""Alignment pre-training of a Mini-LALM: teach a fresh audio LLM to link speech and text before any SLU label.

The seed paper's premise is that an LALM arrives already aligned (Qwen2-Audio was pre-trained on large amounts of
speech-text data); that is why text-only SLU fine-tuning transfers to speech at all. A model built from random
weights has no such alignment, so this stage gives it one, on the training recordings and their transcripts, plus the
clips of ``--alignment-manifest`` (transcribed speech heard by this stage only, e.g. the demo corpus's
alignment.jsonl; a clip that speaks a dev or test sentence is refused). No intent or slot label is seen, and a
corpus's text-only rows are left to the SLU schemes. SpecAugment (``--spec-augment``, on by default;
training/specaugment.py) perturbs every training clip, and the held-out test clips are transcribed once at the end
(``test`` in pretrain.json: how well it hears voices it never heard):

* listening (``--encoder-epochs``, first): the audio encoder alone learns to spell what it hears, with a CTC loss over
  characters on its last layer (50 frames a second, before the pooling that feeds the LLM; at the LLM's 25 tokens
  a second there are barely more frames than characters, which CTC learns slowly). Cheap: no LLM in the step;
* transcription: the clip in the user turn, "Transcribe the audio." as the instruction, the transcript as the target
  (encoder, projector and LLM all train);
* repetition: the transcript in the user turn (the same place the text-only SLU scheme puts it), "Repeat the
  transcript." as the instruction, the transcript as the target, so the LLM treats a transcript and the audio of it
  alike (and learns to copy words from its prompt, which slot filling needs).

The character CTC stays on during transcription (``--ctc-weight``), so the encoder keeps spelling while the LLM
learns to read it. Its small output head is a training aid: it is kept in ``OUT/state`` for resuming, not in the
model folder.

    python -m training.pretrain --manifest demo_corpus/manifest.jsonl --out runs/mini-base [--epochs 6]

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

from data.textio import atomic_write_text

TRANSCRIBE = "Transcribe the audio."
REPEAT = "Repeat the transcript."
# One instruction for both tasks: the input's modality is then the only difference between transcribing a clip and
# repeating its transcript, as between the SLU prompt with audio and with the transcript in its place.
WRITE_DOWN = "Write down the words of the utterance."
ALIGN_PROMPTS = {"separate": (TRANSCRIBE, REPEAT), "shared": (WRITE_DOWN, WRITE_DOWN)}


class PretrainError(RuntimeError):
    """The alignment stage cannot run as asked; the message says why and what to do."""


@dataclass
class PretrainConfig:
    manifest: str = field(default="", metadata={"help": "corpus manifest (its train split is used; dev for WER)"})
    out: str = field(default="runs/mini-base", metadata={"help": "output folder"})
    epochs: int = field(
        default=8, metadata={"help": "passes over the training speech with the LLM (0 = listen only: --encoder-epochs)"}
    )
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
    init_from: str = field(
        default="",
        metadata={
            "help": "start from this model folder (weights and tokenizer) "
            "with a fresh optimizer and schedule, e.g. a second "
            "alignment round"
        },
    )
    encoder_epochs: int = field(
        default=0, metadata={"help": "encoder-only character CTC epochs before the LLM stage (0 = none)"}
    )
    encoder_lr: float = field(default=2e-3, metadata={"help": "peak learning rate of the encoder-only stage"})
    ctc_weight: float = field(
        default=0.0, metadata={"help": "weight of the character CTC loss on the encoder during transcription (0 = off)"}
    )
    alignment_manifest: str = field(
        default="",
        metadata={
            "help": "more transcribed clips for this stage only, e.g. the demo corpus's alignment.jsonl "
            "(all its speech rows are used; labels ignored)"
        },
    )
    spec_augment: bool = field(
        default=True, metadata={"help": "SpecAugment (frequency warp, frequency and time masks) on training clips"}
    )
    spec_warp: str = field(
        default="0.9,1.1",
        metadata={"help": "SpecAugment's frequency-warp range LO,HI (a vocal-tract-length stand-in; 1,1 = no warp)"},
    )
    align_prompt: str = field(
        default="separate",
        metadata={
            "help": "instructions of the two tasks: separate ('Transcribe the audio.' / 'Repeat the transcript.') "
            "or shared (one instruction, the input's modality the only difference)"
        },
    )
    slu_target: str = field(
        default="frame",
        metadata={
            "help": "the SLU answer layout the model is set up for "
            "(its config.slu_target): frame (the paper's) or "
            "transcript+frame (the words heard, then the frame)"
        },
    )


def _edit_distance(ref, hyp) -> int:
    """Levenshtein distance between two sequences (words or characters)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER: word edit distance summed over utterances / reference words."""
    errors = sum(_edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    return errors / max(sum(len(r.split()) for r in refs), 1)


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

    prompts = [INSTRUCTION, TRANSCRIBE, REPEAT, WRITE_DOWN, "You are a helpful assistant.", "Transcript: "]
    texts = tokenizer_texts([t.transcript for t in train_texts], [t.frame.to_target() for t in train_texts], prompts)
    return build_mini(texts, size=_size(size_name), seed=seed)


def alignment_texts(train_texts, speech) -> list:
    """The sentences alignment learns from: those of the training recordings, in corpus order. Alignment stands in
    for an LALM's speech-text pre-training; labelled text-only rows (a corpus's plentiful text) are SLU data, left to
    the schemes, so they shape neither the tokenizer nor the repetition task."""
    spoken = {s.text_id for s in speech}
    return [t for t in train_texts if t.text_id in spoken] or [s.as_text() for s in speech]


def _batches(speech, texts, cfg: PretrainConfig, epoch: int) -> list[tuple[str, list]]:
    """This epoch's batches: transcription batches grouped by clip length, plus repetition batches, shuffled."""
    from training.plan import group_by_length

    rng = random.Random(f"lalm-slu-pretrain:{cfg.seed}:{epoch}")
    items = [(s, True) for s in speech]
    rng.shuffle(items)
    ordered = group_by_length(items, cfg.batch_size, seed=cfg.seed, epoch=epoch)
    batches = [("asr", ordered[i : i + cfg.batch_size]) for i in range(0, len(ordered), cfg.batch_size)]
    n_repeat = round(cfg.repeat_share * len(batches))
    pool = [(t, False) for t in texts]
    for _ in range(n_repeat):
        batches.append(("repeat", rng.sample(pool, min(cfg.batch_size, len(pool)))))
    rng.shuffle(batches)
    return batches


def transcribe(
    model, processor, clips, batch_size: int = 16, max_new_tokens: int = 48, instruction: str = TRANSCRIBE
) -> list[str]:
    """Greedy transcriptions of ``clips`` (speech examples) with the transcription instruction."""
    import torch

    from models.collate import SLUCollator

    collator = SLUCollator(processor, instruction=instruction)
    stop = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(clips), batch_size):
            batch = collator.for_generation([(c, True) for c in clips[start : start + batch_size]])
            with torch.inference_mode():
                gen = model.generate(
                    **batch,
                    num_beams=1,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    eos_token_id=stop,
                    pad_token_id=collator.pad_id,
                )
            out += [
                t.strip()
                for t in processor.tokenizer.batch_decode(
                    gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
                )
            ]
    finally:
        model.train(was_training)
    return out


CTC_CHARS = " abcdefghijklmnopqrstuvwxyz'0123456789"  # index + 1 (0 is the CTC blank)


def ctc_targets(text: str) -> list[int]:
    """The transcript as character ids for the CTC head: lowercased; characters outside the inventory dropped."""
    return [CTC_CHARS.index(ch) + 1 for ch in " ".join(text.lower().split()) if ch in CTC_CHARS]


def ctc_greedy(ids: list[int]) -> str:
    """Collapse repeats, drop blanks: the best path of a CTC output as text."""
    out, prev = [], 0
    for i in ids:
        if i != prev and i != 0:
            out.append(CTC_CHARS[i - 1])
        prev = i
    return "".join(out)


class CharCTC:
    """A character CTC head on the audio encoder's last layer (before its average pooling: 50 frames a second).

    A forward hook keeps that layer's output on every forward pass of the encoder (the full model's or the encoder's
    alone); ``loss`` scores it against transcripts. ``head`` is a linear layer the optimizer trains with the model.
    """

    def __init__(self, model) -> None:
        import torch

        self.tower = _audio_tower(model)
        self.head = torch.nn.Linear(self.tower.config.d_model, len(CTC_CHARS) + 1)
        self.value = None
        self.handle = self.tower.layers[-1].register_forward_hook(self._hook)

    def _hook(self, _module, _inputs, output) -> None:
        self.value = output[0] if isinstance(output, tuple) else output

    def frames(self, feature_attention_mask):
        """Valid encoder frames per clip (after the stride-2 convolution)."""
        feat_lengths, _ = self.tower._get_feat_extract_output_lengths(feature_attention_mask.sum(-1))
        return feat_lengths.long()

    def log_probs(self):
        return self.head(self.value).float().log_softmax(-1)

    def loss(self, feature_attention_mask, transcripts: list[str]):
        import torch

        if self.value is None:
            return None
        log_probs = self.log_probs().transpose(0, 1)  # (T, N, C)
        targets = [ctc_targets(t) for t in transcripts]
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        self.value = None
        return torch.nn.functional.ctc_loss(
            log_probs, flat, self.frames(feature_attention_mask), lengths, blank=0, zero_infinity=True
        )

    def decode(self, feature_attention_mask) -> list[str]:
        best = self.log_probs().argmax(-1)
        frames = self.frames(feature_attention_mask)
        self.value = None
        return [ctc_greedy(best[i, : int(frames[i])].tolist()) for i in range(best.shape[0])]


def _audio_tower(model):
    inner = getattr(model, "model", model)
    return getattr(inner, "audio_tower", None) or model.audio_tower


def encode(model, batch) -> None:
    """Run the audio encoder alone on a batch's clips (padding masked as the full model masks it)."""
    import torch

    tower = _audio_tower(model)
    features, mask = batch["input_features"], batch["feature_attention_mask"]
    frames, _ = tower._get_feat_extract_output_lengths(mask.sum(-1))
    width = (features.shape[-1] - 2) // 2 + 1
    padded = torch.arange(width)[None, :] >= frames[:, None]
    additive = torch.zeros(features.shape[0], 1, width, width, dtype=features.dtype)
    additive.masked_fill_(padded[:, None, None, :], torch.finfo(features.dtype).min)
    tower(features, attention_mask=additive)


def character_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Corpus CER: character edit distance summed over utterances / reference characters."""
    return sum(_edit_distance(r, h) for r, h in zip(refs, hyps)) / max(sum(len(r) for r in refs), 1)


def _save_state(
    out: Path, model, processor, optimizer, scheduler, epoch: int, history: list, ctc=None, listening: bool = False
) -> None:
    """Model folder + optimizer/scheduler/epoch (+ the CTC head), each written whole (temporary name, then rename)."""
    import torch

    from models.loading import save_model

    save_model(model, processor, out / "state" / "model")
    tmp = out / "state" / ".trainer.pt.tmp"
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "listening": listening,
            **({"ctc_head": ctc.head.state_dict()} if ctc is not None else {}),
        },
        tmp,
    )
    tmp.replace(out / "state" / "trainer.pt")


def _optimizer(model, ctc, cfg: PretrainConfig, speech, texts, listening: bool):
    """AdamW + cosine schedule for one stage: the encoder (and CTC head) alone, or the whole model."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    if listening:
        params = [p for p in _audio_tower(model).parameters() if p.requires_grad] + list(ctc.head.parameters())
        steps = math.ceil(len(speech) / cfg.batch_size) * cfg.encoder_epochs
        lr = cfg.encoder_lr
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        params += list(ctc.head.parameters()) if ctc is not None else []
        steps = len(_batches(speech, texts, cfg, 0)) * cfg.epochs
        lr = cfg.peak_lr
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * steps), steps)
    return optimizer, scheduler, params


def _step(loss, optimizer, scheduler, params) -> None:
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _warp_range(text: str) -> tuple[float, float]:
    """``"LO,HI"`` -> ``(LO, HI)``, with 0 < LO <= HI."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise PretrainError(f"--spec-warp must be LO,HI (e.g. 0.9,1.1), got {text!r}") from None
    if not 0 < lo <= hi:
        raise PretrainError(f"--spec-warp needs 0 < LO <= HI, got {text!r}")
    return lo, hi


def _augmenter(cfg: PretrainConfig, epoch: int):
    """``batch -> batch`` with SpecAugment on its clips (seeded by seed and epoch, so a resumed run draws alike),
    or the identity when --spec-augment is off."""
    import torch

    from data.seeds import stable_seed
    from training.specaugment import SpecAugment, spec_augment

    settings = SpecAugment(warp=_warp_range(cfg.spec_warp))
    generator = torch.Generator().manual_seed(stable_seed("pretrain-spec-augment", cfg.seed, epoch) >> 1)

    def apply(batch):
        if cfg.spec_augment and "input_features" in batch:
            batch["input_features"] = spec_augment(
                batch["input_features"], batch["feature_attention_mask"], generator, settings
            )
        return batch

    return apply


def _listen_epoch(model, ctc, collator, speech, cfg, epoch, optimizer, scheduler, params, total_epochs) -> dict:
    """One epoch of character CTC on the encoder alone (speech only, batches grouped by clip length)."""
    from tqdm.auto import tqdm

    batches = [rows for kind, rows in _batches(speech, [], cfg, epoch) if kind == "asr"]
    losses = []
    augment = _augmenter(cfg, epoch)
    bar = tqdm(batches, desc=f"listen epoch {epoch + 1}/{total_epochs}", unit="step")
    for rows in bar:
        batch = augment(collator(rows))
        encode(model, batch)
        loss = ctc.loss(batch["feature_attention_mask"], [e.transcript for e, _ in rows])
        _step(loss, optimizer, scheduler, params)
        losses.append(loss.item())
        bar.set_postfix(ctc=f"{losses[-1]:.3f}")
    return {"epoch": epoch + 1, "stage": "listen", "ctc_loss": sum(losses) / max(len(losses), 1)}


def _llm_epoch(model, ctc, asr, rep, speech, texts, cfg, epoch, optimizer, scheduler, params, total_epochs) -> dict:
    """One epoch of transcription and repetition through the LLM (plus the character CTC on transcription)."""
    from tqdm.auto import tqdm

    losses: dict[str, list[float]] = {"asr": [], "repeat": [], "ctc": []}
    augment = _augmenter(cfg, epoch)
    bar = tqdm(_batches(speech, texts, cfg, epoch), desc=f"align epoch {epoch + 1}/{total_epochs}", unit="step")
    for kind, rows in bar:
        batch = augment((asr if kind == "asr" else rep)(rows))
        loss = model(**batch).loss
        losses[kind].append(loss.item())
        if ctc is not None and kind == "asr" and cfg.ctc_weight > 0:
            extra = ctc.loss(batch["feature_attention_mask"], [e.transcript for e, _ in rows])
            losses["ctc"].append(extra.item())
            loss = loss + cfg.ctc_weight * extra
        _step(loss, optimizer, scheduler, params)
        bar.set_postfix(loss=f"{losses[kind][-1]:.3f}", kind=kind)
    record = {"epoch": epoch + 1, "stage": "align"}
    for key in ("asr", "repeat", "ctc"):
        if losses[key]:
            record[f"{key}_loss"] = sum(losses[key]) / len(losses[key])
    return record


def _dev_cer(model, ctc, collator, clips, batch_size: int = 16) -> float:
    """Character error rate of the CTC head's greedy output on dev clips (how well the encoder hears)."""
    import torch

    refs, hyps = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(clips), batch_size):
                rows = [(c, True) for c in clips[start : start + batch_size]]
                batch = collator(rows)
                encode(model, batch)
                hyps += ctc.decode(batch["feature_attention_mask"])
                refs += [" ".join(c.transcript.lower().split()) for c, _ in rows]
    finally:
        model.train(was_training)
    return character_error_rate(refs, hyps)


def _test_report(model, processor, ctc, collator, clips, with_llm: bool, instruction: str) -> dict:
    """WER of the LLM's transcripts (when it was trained) and the CTC head's CER, overall and per speaker."""
    report: dict = {"clips": len(clips)}
    if with_llm:
        hyps = transcribe(model, processor, clips, instruction=instruction)
        report["wer"] = word_error_rate([c.transcript for c in clips], hyps)
        report["examples"] = [{"ref": c.transcript, "hyp": h} for c, h in list(zip(clips, hyps))[:5]]
    if ctc is not None:
        report["cer_ctc"] = _dev_cer(model, ctc, collator, clips)
        from data.synth_voices import voice_of_speaker

        by_voice: dict[str, list] = {}
        for c in clips:
            by_voice.setdefault(voice_of_speaker(c.speaker or "unknown"), []).append(c)
        if len(by_voice) > 1:
            report["cer_ctc_by_speaker"] = {v: _dev_cer(model, ctc, collator, by_voice[v]) for v in sorted(by_voice)}
    return report


def pretrain(cfg: PretrainConfig) -> Path:
    import torch

    from data.corpus import CorpusError, load_corpus
    from models.collate import SLUCollator

    if not cfg.manifest:
        raise PretrainError("--manifest is required: a corpus manifest, e.g. the one `python -m data.synth` writes")
    from models.prompt import SLU_TARGETS

    if cfg.slu_target not in SLU_TARGETS:
        raise PretrainError(f"--slu-target {cfg.slu_target!r} is not one of {', '.join(SLU_TARGETS)}")
    if cfg.align_prompt not in ALIGN_PROMPTS:
        raise PretrainError(f"--align-prompt {cfg.align_prompt!r} is not one of {', '.join(ALIGN_PROMPTS)}")
    _warp_range(cfg.spec_warp)
    if cfg.epochs < 0 or cfg.encoder_epochs < 0 or cfg.epochs + cfg.encoder_epochs < 1:
        raise PretrainError("--epochs and --encoder-epochs must be >= 0, and at least one of them >= 1")
    if cfg.batch_size < 1 or cfg.peak_lr <= 0:
        raise PretrainError("--batch-size must be >= 1 and --peak-lr > 0")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        corpus = load_corpus("manifest", path=cfg.manifest)
    except (CorpusError, OSError) as exc:
        raise PretrainError(f"cannot read the corpus: {exc}") from None
    train, dev = corpus.split("train"), corpus.split("dev")
    speech = sorted(train.speech, key=lambda x: x.id)
    train_ids = {s.id for s in speech}
    if cfg.alignment_manifest:
        try:
            extra = load_corpus("manifest", path=cfg.alignment_manifest).speech
        except (CorpusError, OSError) as exc:
            raise PretrainError(f"cannot read --alignment-manifest: {exc}") from None
        if not extra:
            raise PretrainError(f"--alignment-manifest {cfg.alignment_manifest} has no speech rows")
        from data.frames import normalize_text

        held = {normalize_text(x.transcript) for x in corpus.speech + corpus.texts if x.split != "train"}
        clash = sorted({x.id for x in extra if normalize_text(x.transcript) in held})
        if clash:
            raise PretrainError(
                f"--alignment-manifest: {len(clash)} clip(s) ({', '.join(clash[:3])}{', ...' if len(clash) > 3 else ''}) "
                f"speak a dev or test sentence of {cfg.manifest}; alignment must not hear them (drop those rows)"
            )
        speech += sorted((s for s in extra if s.id not in train_ids), key=lambda x: x.id)
        train_texts = list(train.texts) + [s.as_text() for s in extra]
    else:
        train_texts = list(train.texts)
    texts = alignment_texts(train_texts, speech)  # every recorded sentence, whatever --max-speech keeps
    if cfg.max_speech > 0:
        speech = random.Random(cfg.seed).sample(speech, min(cfg.max_speech, len(speech)))
    if not speech:
        raise PretrainError(f"{cfg.manifest} has no training speech: alignment needs recordings with transcripts")
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
        model, processor = build_base(texts, cfg.size, cfg.seed)
        saved = None
    n_params = sum(p.numel() for p in model.parameters())
    asr_instruction, repeat_instruction = ALIGN_PROMPTS[cfg.align_prompt]
    asr = SLUCollator(processor, instruction=asr_instruction, target_fn=lambda e: e.transcript)
    rep = SLUCollator(processor, instruction=repeat_instruction, target_fn=lambda e: e.transcript)
    for p in model.parameters():
        p.requires_grad_(True)
    fixed = "audio_tower.embed_positions"  # sinusoidal positions, never trained (as in the real model)
    for n, p in model.named_parameters():
        if fixed in n:
            p.requires_grad_(False)
    ctc = CharCTC(model) if (cfg.ctc_weight > 0 or cfg.encoder_epochs > 0) else None
    if ctc is not None and saved is not None and "ctc_head" in saved:
        ctc.head.load_state_dict(saved["ctc_head"])
    dev_clips = sorted(dev.speech, key=lambda x: x.id)[: cfg.eval_examples] if cfg.eval_examples > 0 else []
    total_epochs = cfg.encoder_epochs + cfg.epochs
    print(
        f"alignment pre-training: {n_params / 1e6:.2f}M parameters, {len(speech)} clips + {len(texts)} "
        f"transcripts; {cfg.encoder_epochs} encoder epochs, then {cfg.epochs} epochs with the LLM",
        flush=True,
    )
    started = time.time() - (history[-1]["seconds"] if history else 0.0)
    model.train()
    stage = None
    for epoch in range(start_epoch, total_epochs):
        listening = epoch < cfg.encoder_epochs
        if stage != listening:  # a new stage: its own optimizer and schedule (restored once when resuming)
            stage = listening
            optimizer, scheduler, params = _optimizer(model, ctc, cfg, speech, texts, listening)
            if saved is not None and saved.get("listening", False) == listening:
                optimizer.load_state_dict(saved["optimizer"])
                scheduler.load_state_dict(saved["scheduler"])
            saved = None
        if listening:
            record = _listen_epoch(model, ctc, asr, speech, cfg, epoch, optimizer, scheduler, params, total_epochs)
        else:
            record = _llm_epoch(
                model, ctc, asr, rep, speech, texts, cfg, epoch, optimizer, scheduler, params, total_epochs
            )
        record["seconds"] = round(time.time() - started, 1)
        if dev_clips and ctc is not None:
            record["dev_cer_ctc"] = _dev_cer(model, ctc, asr, dev_clips)
        if dev_clips and not listening:
            hyps = transcribe(model, processor, dev_clips, instruction=asr_instruction)
            record["dev_wer"] = word_error_rate([c.transcript for c in dev_clips], hyps)
            record["dev_example"] = {"ref": dev_clips[0].transcript, "hyp": hyps[0]}
        history.append(record)
        print(json.dumps(record), flush=True)
        _save_state(out, model, processor, optimizer, scheduler, epoch + 1, history, ctc, listening)
    from models.loading import save_model

    model.config.slu_target = cfg.slu_target  # read back by training and decoding (models/prompt.py slu_target_of)
    final = save_model(model, processor, out / "model")
    seconds = round(time.time() - started, 1)
    summary = {
        "config": asdict(cfg),
        "parameters": n_params,
        "clips": len(speech),
        "alignment_only_clips": sum(s.id not in train_ids for s in speech),
        "instructions": {"transcribe": asr_instruction, "repeat": repeat_instruction},
        "history": history,
        "seconds": seconds,
    }
    test_clips = sorted(corpus.split("test").speech, key=lambda x: x.id)[: 2 * cfg.eval_examples]
    if test_clips:  # reported once at the end (never used to choose anything): how well it hears unseen voices
        summary["test"] = _test_report(model, processor, ctc, asr, test_clips, cfg.epochs > 0, asr_instruction)
        print(json.dumps({"test": {k: v for k, v in summary["test"].items() if k != "examples"}}), flush=True)
    atomic_write_text(out / "pretrain.json", json.dumps(summary, indent=2) + "\n")
    return final


def main(argv: list[str] | None = None) -> int:
    """The CLI: flags from PretrainConfig; our errors become one ``error:`` line and exit status 2."""
    from data.cli import run_cli

    return run_cli(
        lambda cfg: print(pretrain(cfg)),
        PretrainConfig,
        (PretrainError,),
        argv=argv,
        prog="python -m training.pretrain",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
