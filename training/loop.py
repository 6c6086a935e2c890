"""One training loop for any phase list, on plain accelerate (1 CPU, 1 GPU, DDP, FSDP or DeepSpeed via its launcher).

``run(cfg)`` builds the data and phases from the config, then for every phase: sets what trains
(``models.trainable.set_trainable``), builds AdamW and a cosine schedule with linear warmup over the phase's
optimizer steps, and trains epoch by epoch on the seeded epoch plan (``training.plan``). Nothing here asks which
scheme it runs. It evaluates on dev every ``eval_every_steps`` and at each epoch end (curves.csv), saves resumable
checkpoints atomically, and at the end writes the final model, the per-split evaluations and the results rows.

Precision: weights and AdamW state are float32 on every backend; bf16 (``--mixed_precision bf16``, the default on
GPU) is the compute dtype only (``training.parallel``).

Data-parallel safety: with one process or DDP the model is re-wrapped at each phase start, so DDP registers exactly
the parameters that train in that phase; FSDP and DeepSpeed ZeRO-3 are prepared once and switch phases through the
optimizer's parameter groups (``training.parallel.start_phase_in_place``), never re-wrapping a sharded model. While
the audio encoder trains with more than one process, the collator adds a masked silent clip to any audio-free
micro-batch (``ensure_audio``), so every rank computes gradients for the same parameters and no rank waits for an
all-reduce that never comes (a DDP hang). Decoding on sharded models runs all ranks in lockstep
(``synced_gpus``) over equally many padded batches.

Write order (a kill can come between any two writes): curves.csv is written before a checkpoint is committed, so a
checkpoint never claims steps whose curve rows are missing; a finished run deletes its resumable checkpoints after
``done.json`` (``--keep_resumable`` keeps them) and keeps the final model.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from training import checkpoint as ckpt
from training import parallel
from data.cli import from_mapping, option_values
from data.seeds import stable_seed
from training.config import ConfigError, TrainConfig
from training.evaluation import DecodeSettings, EvalResult, decode_and_score, eval_dir_name, eval_items, write_eval
from training.plan import (
    EpochPlan,
    epoch_counts,
    epoch_items,
    group_by_length,
    n_optimizer_steps,
    plan_epochs,
    rank_micro_batches,
    step_groups,
)
from evaluation.results import append_results
from training.run_folder import (
    DONE,
    acquire_lock,
    code_version,
    model_card,
    read_curves,
    read_json,
    results_row,
    write_curves,
    write_json,
)
from training.schemes import Phase, build_phases
from training.specaugment import spec_augment
from training.sources import RunData, load_run_data

# Settings that may differ between a run and its resumption without changing what it computes.
_RESUME_FREE = {
    "resume",
    "stop_after_steps",
    "results_csv",
    "data.eval_splits",
    "tensorboard",
    "decoding.batch_size",
    "save_total_limit",
    "keep_resumable",
}


class TrainingError(RuntimeError):
    """A run that cannot start or continue as asked; the message says why and what to do."""


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator

    if parallel.deepspeed_requested():
        try:
            parallel.require_deepspeed()
        except parallel.ParallelError as exc:
            raise ConfigError(str(exc)) from None
    return Accelerator(mixed_precision=compute_precision(cfg))


def compute_precision(cfg: TrainConfig) -> str:
    """accelerate's mixed_precision for the run: the compute dtype (weights stay float32)."""
    if cfg.mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return cfg.mixed_precision


def build_model(cfg: TrainConfig, device):
    """(model, processor) for ``cfg.model`` with float32 (master) weights: bf16 is only the compute dtype.

    "tiny" builds the offline twin; anything else goes through load_model.
    """
    from models.registry import AdapterError, check_transformers

    try:
        check_transformers()
    except AdapterError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.model == "tiny":
        from models.tiny import build_tiny

        model, processor = build_tiny(seed=0)  # the base model is fixed; the run's seed varies data and order
        return model.to(device), processor
    from models.loading import ModelLoadError, load_model

    try:
        return load_model(cfg.model, adapter=cfg.adapter, device=device, dtype=torch.float32)
    except ModelLoadError as exc:
        raise ConfigError(f"--model: {exc}") from None


def _lora(cfg: TrainConfig):
    return cfg.lora.settings()


def _audio_loader(cfg: TrainConfig):
    from data.audio import SAMPLE_RATE, load_audio

    return functools.partial(load_audio, target_sr=SAMPLE_RATE, max_seconds=cfg.max_audio_seconds)


def _ensure_audio(cfg: TrainConfig, phase: Phase, world: int) -> bool:
    if not phase.train_audio or cfg.ensure_audio == "no":
        return False
    return cfg.ensure_audio == "yes" or world > 1


def _cosine(optimizer, total_steps: int, warmup_ratio: float):
    from transformers import get_cosine_schedule_with_warmup

    warmup = math.ceil(warmup_ratio * total_steps)
    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


class _Run:
    """State of one run; methods are the loop's steps. Built and driven by ``run``."""

    def __init__(self, cfg: TrainConfig, accelerator=None) -> None:
        self.cfg = cfg
        self.acc = accelerator or make_accelerator(cfg)
        self.main = self.acc.is_main_process
        self.dir = Path(cfg.output_dir)
        self.world = self.acc.num_processes
        self.rank = self.acc.process_index
        self.curves: list[dict[str, Any]] = []
        self.writer = None
        self.backend = parallel.backend_of(self.acc)
        self.sharded = self.backend in parallel.SHARDED
        self.raw_optimizer = None  # the torch AdamW (sharded backends: built once, reused by every phase)

    # -- set-up ---------------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the folder, plan the data and phases, build the model, resume, record config.json."""
        from accelerate.utils import set_seed

        set_seed(self.cfg.seed)
        latest = ckpt.latest_checkpoint(self.dir)
        self._check_folder(latest)
        self._plan()
        self._build_model()
        self._resume(latest)
        self._record()
        self.acc.wait_for_everyone()

    def _check_folder(self, latest: Path | None) -> None:
        """Refuse a finished run, checkpoints without --resume, a resume with other settings, LoRA when sharded."""
        cfg = self.cfg
        if (self.dir / DONE).is_file():
            raise TrainingError(
                f"{self.dir} holds a finished run; choose another --output_dir "
                "(or evaluate it with python -m training.evaluate)"
            )
        if latest is not None and not cfg.resume:
            raise TrainingError(
                f"{self.dir} holds checkpoints of an earlier run; pass --resume to continue it, "
                "or choose another --output_dir"
            )
        if cfg.resume and (self.dir / "config.json").is_file():
            self._check_same_run(read_json(self.dir / "config.json")["config"])
        if self.sharded and cfg.lora.r > 0:
            raise TrainingError(
                f"LoRA (--lora.r {cfg.lora.r}) is not supported with {self.backend}: a LoRA run of "
                "the 7B model fits one GPU (configs/accelerate/1gpu.yaml) or DDP"
            )

    def _plan(self) -> None:
        """The run's data, its phases and epochs, and the optimizer steps of each epoch."""
        cfg = self.cfg
        self.data: RunData = load_run_data(cfg)
        self.phases = build_phases(cfg.scheme, len(self.data.speech), cfg.schedule)
        self.epochs = plan_epochs(self.phases)
        self.steps_per_epoch = [
            n_optimizer_steps(
                len(self.data.texts) + e.phase.speech_per_epoch,
                cfg.per_device_batch_size,
                self.world,
                cfg.grad_accum_steps,
            )
            for e in self.epochs
        ]

    def _build_model(self) -> None:
        """The model and processor, with gradient checkpointing and LoRA as asked, weights in float32."""
        cfg = self.cfg
        with parallel.model_construction(self.acc):  # ZeRO-3: whole on every rank until prepare partitions it
            self.model, self.processor = build_model(cfg, self.acc.device)
        if cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        if _lora(cfg) is not None:  # inject LoRA before any state is loaded into it
            from models.trainable import set_trainable

            set_trainable(self.model, train_audio=False, lora=_lora(cfg), adapter=cfg.adapter)
        try:
            parallel.float32_master_check(self.model)
        except parallel.ParallelError as exc:
            raise TrainingError(str(exc)) from None

    def _resume(self, latest: Path | None) -> None:
        """With --resume: the newest intact checkpoint's position and weights, and the curves up to it."""
        self.position = ckpt.Position()
        self.resume_from = None
        self.resume_extra: dict = {}
        if not (self.cfg.resume and latest is not None):
            return
        latest = ckpt.resume_checkpoint(self.dir, self.model.state_dict(), log=print if self.main else None)
        if latest is None:
            return
        self.position, self.resume_extra = ckpt.read_position(latest)
        self.model.load_state_dict(ckpt.load_tensors(latest, "model.pt"))
        self.resume_from = latest
        if self.main:
            print(
                f"resuming from {latest.parent.name}/{latest.name} (step {self.position.global_step} of "
                f"{sum(self.steps_per_epoch)})",
                flush=True,
            )
        self.curves = [r for r in read_curves(self.dir / "curves.csv") if (r["step"] or 0) <= self.position.global_step]

    def _record(self) -> None:
        """config.json: the config, code version, phases, data counts (enough to reproduce); open the trackers."""
        cfg = self.cfg
        self.meta = {
            "config": cfg.to_dict(),
            "code_version": code_version(),
            "phases": [asdict(p) for p in self.phases],
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.world,
            "effective_batch_size": cfg.per_device_batch_size * cfg.grad_accum_steps * self.world,
            "n_speech_used": self.data.n_speech_source,
            "n_speech_pool": self.data.n_speech_pool,
            "language": self.data.language,
            "source_language": self.data.source_language,
            "data": self.data.report,
            # What each epoch feeds the model (source/target x text/speech), from the very items trained on.
            "epoch_counts": [
                epoch_counts(
                    epoch_items(
                        self.data.texts, self.data.speech, e.phase.speech_per_epoch, seed=cfg.seed, epoch=e.global_epoch
                    ),
                    cfg.target_languages,
                )
                for e in self.epochs
            ],
        }
        if self.main:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json(self.dir / "config.json", self.meta)
            from training.tracking import open_tracker  # --tensorboard / LALM_SLU_TRACK; None when not asked

            self.writer = open_tracker(cfg, self.dir)

    def _check_same_run(self, saved: dict) -> None:
        """The recorded config (nested, or the flat layout of older runs) must match, option by option."""
        try:
            before = option_values(from_mapping(TrainConfig, saved))
        except ConfigError as exc:
            raise TrainingError(
                f"--resume: the config.json in {self.dir} cannot be read ({exc}); start a new --output_dir"
            ) from None
        now = option_values(self.cfg)
        diff = sorted(k for k in now if k not in _RESUME_FREE and before.get(k) != now[k])
        if diff:
            raise TrainingError(
                f"--resume with different settings than the run in {self.dir}: {', '.join(diff)}; "
                "resume with the same config (or start a new --output_dir)"
            )

    # -- phases ---------------------------------------------------------------------------------------------------
    def start_phase(self, index: int, phase: Phase) -> None:
        from models.collate import SLUCollator
        from models.prompt import slu_target_of
        from models.trainable import set_trainable

        cfg = self.cfg
        total = sum(self.steps_per_epoch[e.global_epoch] for e in self.epochs if e.phase_index == index)
        if self.sharded:
            summary = self._start_phase_sharded(phase)
        else:
            base = self.acc.unwrap_model(self.model)
            self.acc.free_memory()  # drop the previous phase's wrappers and optimizer before re-wrapping
            summary = set_trainable(base, train_audio=phase.train_audio, lora=_lora(cfg), adapter=cfg.adapter)
            params = [p for p in base.parameters() if p.requires_grad]
            self.raw_optimizer = torch.optim.AdamW(
                params,
                lr=phase.peak_lr,
                betas=(cfg.adam_beta1, cfg.adam_beta2),
                eps=cfg.adam_eps,
                weight_decay=cfg.weight_decay,
            )
            self.model, self.optimizer = self.acc.prepare(base, self.raw_optimizer)
        self.scheduler = _cosine(self.raw_optimizer, total, phase.warmup_ratio)
        if self.resume_from is not None and self.position.phase_index == index and self.position.global_step > 0:
            if self.sharded:
                parallel.load_rank_state(
                    self.acc,
                    self.model,
                    self.optimizer,
                    self.resume_from / parallel.RANK_STATE_DIR,
                    int(self.resume_extra.get("world_size", self.world)),
                )
            else:
                self.optimizer.load_state_dict(ckpt.load_tensors(self.resume_from, "optimizer.pt"))
            self.scheduler.load_state_dict(ckpt.load_tensors(self.resume_from, "scheduler.pt"))
        self.collator = SLUCollator(
            self.processor,
            adapter=cfg.adapter,
            audio_loader=_audio_loader(cfg),
            ensure_audio=_ensure_audio(cfg, phase, self.world),
            slu_target=slu_target_of(self.acc.unwrap_model(self.model)),
        )
        self.phase_index = index
        if self.main:
            print(
                f"phase {index + 1}/{len(self.phases)} ({phase.name}): {phase.epochs} epoch(s), "
                f"{phase.speech_per_epoch} speech/epoch, peak LR {phase.peak_lr:g}, warmup {phase.warmup_ratio:g}, "
                f"{total} optimizer steps, trainable {summary.trainable:,} of {summary.total:,} parameters "
                f"(audio {summary.audio_trainable:,})",
                flush=True,
            )

    def _start_phase_sharded(self, phase: Phase):
        """FSDP / ZeRO-3: prepare once with every parameter any phase trains; later phases only retune groups."""
        from models.trainable import TrainableSummary, audio_modules, set_trainable

        cfg = self.cfg
        if self.raw_optimizer is None:
            base = self.model
            # requires_grad is fixed before wrapping: the union over phases (frozen audio = LR 0 in its phases)
            set_trainable(
                base, train_audio=any(p.train_audio for p in self.phases), lora=_lora(cfg), adapter=cfg.adapter
            )
            self.audio_prefixes = audio_modules(base, cfg.adapter)
            groups = parallel.param_groups(base, self.audio_prefixes)
            # Counted before wrapping: ZeRO-3 empties the torch optimizer's groups between its steps
            self.group_sizes = {g["group"]: sum(p.numel() for p in g["params"]) for g in groups}
            self.total_params = sum(p.numel() for p in base.parameters())
            self.raw_optimizer = torch.optim.AdamW(
                groups,
                lr=phase.peak_lr,
                betas=(cfg.adam_beta1, cfg.adam_beta2),
                eps=cfg.adam_eps,
                weight_decay=cfg.weight_decay,
            )
            if self.backend == parallel.DEEPSPEED:
                parallel.configure_deepspeed(
                    self.acc,
                    micro_batch=cfg.per_device_batch_size,
                    grad_accum=cfg.grad_accum_steps,
                    max_grad_norm=cfg.max_grad_norm,
                )
            self.model, self.optimizer = self.acc.prepare(base, self.raw_optimizer)
            try:  # fail now, not at the first dev evaluation after hours of training
                parallel.check_generation_support(self.acc, self.model)
            except parallel.ParallelError as exc:
                raise TrainingError(str(exc)) from None
        parallel.start_phase_in_place(self.raw_optimizer, peak_lr=phase.peak_lr, train_audio=phase.train_audio)
        trainable = audio = 0
        for group in self.raw_optimizer.param_groups:
            n = self.group_sizes[group.get("group", "main")]
            if group["lr"] > 0:
                trainable += n
                audio += n if group.get("group") == "audio" else 0
        return TrainableSummary(total=self.total_params, trainable=trainable, audio_trainable=audio, lora=0)

    # -- one optimizer step ---------------------------------------------------------------------------------------
    def train_step(self, group: list, step: int = 0) -> tuple[float, float]:
        """One optimizer step (``step``: its index in the run, seeding SpecAugment) over a group of micro-batches;
        returns (mean loss, learning rate used)."""
        self.model.train()
        lr = self.scheduler.get_last_lr()[0]
        losses = []
        scale = parallel.micro_batch_loss_scale(self.backend, len(group), self.cfg.grad_accum_steps)
        for i, micro in enumerate(group):
            batch = self.collator(micro)
            if self.cfg.spec_augment and "input_features" in batch:
                # seeded by run seed, step, micro-batch and process: a resumed run draws the same masks
                key = stable_seed("spec-augment", self.cfg.seed, step, i, self.acc.process_index) >> 1  # 63 bits
                batch["input_features"] = spec_augment(
                    batch["input_features"], batch["feature_attention_mask"], torch.Generator().manual_seed(key)
                )
            batch = {k: v.to(self.acc.device) for k, v in batch.items()}
            sync = i == len(group) - 1
            # DDP skips the all-reduce until the last micro-batch; FSDP reduce-scatters every micro-batch (its
            # no_sync would hold full unsharded gradients); DeepSpeed accumulates and steps at the boundary.
            ctx = self.acc.no_sync(self.model) if (not sync and self.backend == parallel.DDP) else _nullcontext()
            if self.backend == parallel.DEEPSPEED:
                parallel.set_sync(self.acc, sync)
            with ctx, self.acc.autocast():
                loss = self.model(**batch).loss
                self.acc.backward(loss * scale)
            losses.append(loss.detach().float())
        parallel.set_sync(self.acc, True)
        if self.cfg.max_grad_norm > 0:
            self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = torch.stack(losses).mean()
        return (float(self.acc.reduce(mean, reduction="mean")) if self.world > 1 else float(mean)), lr

    # -- evaluation -----------------------------------------------------------------------------------------------
    def evaluate(self, texts, speech, *, split: str, oracle: bool, limit: int) -> EvalResult:
        cfg = self.cfg
        items, gold = eval_items(texts, speech, oracle=oracle, split=split, limit=limit, seed=cfg.seed)
        model, ctx, generate_kwargs = parallel.generation_setup(self.acc, self.model)
        decode = DecodeSettings(
            adapter=cfg.adapter,
            batch_size=cfg.decoding.batch_size,
            num_beams=cfg.decoding.num_beams,
            max_new_tokens=cfg.decoding.max_new_tokens,
            progress=self.main,
            audio_loader=_audio_loader(cfg),
            generate_kwargs=generate_kwargs,
        )
        with ctx, self.acc.autocast():
            return decode_and_score(
                model, self.processor, items, gold, split=split, oracle=oracle, decode=decode, accelerator=self.acc
            )

    def dev_curve_point(self, step: int, epoch: float, phase: Phase) -> None:
        dev = self.data.dev
        if dev is None:
            return
        res = self.evaluate(dev.texts, dev.speech, split=dev.split, oracle=False, limit=self.cfg.eval_max_examples)
        s = res.scores
        self.curves.append(
            {
                "step": step,
                "epoch": round(epoch, 4),
                "phase": phase.name,
                "kind": "eval",
                "split": dev.split,
                "intent_accuracy": s.intent_accuracy,
                "entity_f1": s.entity_f1,
                "slu_f1": s.slu_f1,
                "n": s.n_scored,
            }
        )
        if self.main:
            print(f"[step {step} | epoch {epoch:.2f}] {res.one_line()}", flush=True)
            write_curves(self.dir / "curves.csv", self.curves)
            if self.writer is not None:
                for key in ("intent_accuracy", "entity_f1", "slu_f1"):
                    self.writer.add_scalar(f"dev/{key}", getattr(s, key), step)

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save(self, position: ckpt.Position) -> None:
        """Curves first, then the checkpoint: a committed checkpoint never claims steps its curves lack."""
        if self.main:
            write_curves(self.dir / "curves.csv", self.curves)
        state = parallel.full_state_dict(self.acc, self.model)  # collective under FSDP/ZeRO-3: every rank calls it
        staged = None
        if self.sharded:  # every rank's optimizer shard, staged beside the checkpoint and committed with it
            staged = parallel.staging_dir(self.dir, position.global_step)
            parallel.save_rank_state(self.acc, self.model, self.optimizer, staged)
        if self.main:
            optimizer_state = (
                {"sharded": self.backend, "rank_files": parallel.RANK_STATE_DIR}
                if self.sharded
                else self.optimizer.state_dict()
            )
            path = ckpt.save_checkpoint(
                self.dir,
                position,
                state,
                optimizer_state,
                self.scheduler.state_dict(),
                extra={"world_size": self.world, "backend": self.backend},
                keep=self.cfg.save_total_limit,
                rank_state=staged,
            )
            print(f"checkpoint {path.name} saved", flush=True)
        self.acc.wait_for_everyone()

    # -- the loop -------------------------------------------------------------------------------------------------
    def train(self) -> bool:
        """Run every remaining step; False when stopped early by ``stop_after_steps`` (a simulated kill)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        pos = self.position
        step = pos.global_step
        started_phase = -1
        if self.resume_from is not None:
            ckpt.set_rng_state(ckpt.load_tensors(self.resume_from, "rng.pt"))
        for plan in self.epochs:
            if plan.global_epoch < pos.global_epoch:
                continue
            if plan.phase_index != started_phase:
                self.start_phase(plan.phase_index, plan.phase)
                started_phase = plan.phase_index
            groups = self._epoch_groups(plan)
            skip = pos.step_in_epoch if plan.global_epoch == pos.global_epoch else 0
            bar = tqdm(
                total=len(groups),
                initial=skip,
                desc=f"epoch {plan.global_epoch + 1}/{len(self.epochs)}",
                unit="step",
                disable=not self.main,
            )
            for i in range(skip, len(groups)):
                loss, lr = self.train_step(groups[i], step)
                step += 1
                epoch_f = plan.global_epoch + (i + 1) / len(groups)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if step % max(cfg.log_every_steps, 1) == 0 or i == len(groups) - 1:
                    self.curves.append(
                        {
                            "step": step,
                            "epoch": round(epoch_f, 4),
                            "phase": plan.phase.name,
                            "kind": "train",
                            "split": "train",
                            "loss": loss,
                            "lr": lr,
                        }
                    )
                    if self.writer is not None:
                        self.writer.add_scalar("train/loss", loss, step)
                        self.writer.add_scalar("train/lr", lr, step)
                last = i == len(groups) - 1
                if cfg.eval_every_steps > 0 and step % cfg.eval_every_steps == 0 and not last:
                    self.dev_curve_point(step, epoch_f, plan.phase)
                if last:
                    self.dev_curve_point(step, epoch_f, plan.phase)
                    nxt = ckpt.Position(step, plan.global_epoch + 1, 0, plan.phase_index)
                    self.save(nxt)
                elif cfg.save_every_steps > 0 and step % cfg.save_every_steps == 0:
                    self.save(ckpt.Position(step, plan.global_epoch, i + 1, plan.phase_index))
                if cfg.stop_after_steps and step >= cfg.stop_after_steps:
                    bar.close()
                    if self.main:
                        write_curves(self.dir / "curves.csv", self.curves)
                    return False
            bar.close()
        return True

    def _epoch_groups(self, plan: EpochPlan) -> list:
        cfg = self.cfg
        items = epoch_items(
            self.data.texts, self.data.speech, plan.phase.speech_per_epoch, seed=cfg.seed, epoch=plan.global_epoch
        )
        if cfg.group_by_length:
            items = group_by_length(items, cfg.per_device_batch_size, seed=cfg.seed, epoch=plan.global_epoch)
        micro = rank_micro_batches(items, cfg.per_device_batch_size, self.world, self.rank)
        return step_groups(micro, cfg.grad_accum_steps)

    # -- the end --------------------------------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        from models.trainable import audio_modules, has_lora, merge_lora, save_lora

        cfg = self.cfg
        model = self.acc.unwrap_model(self.model)
        if has_lora(model) and self.main:
            base = cfg.model
            if base == "tiny":  # the adapter must name a loadable base: save the (fixed, seed-0) twin beside it
                from models.tiny import save_tiny

                base = str(save_tiny(self.dir / "base_model", seed=0))
            trained_audio = any(p.train_audio for p in self.phases)
            save_lora(
                model,
                self.dir / "lora_adapter",
                base=base,
                full_modules=audio_modules(model, cfg.adapter) if trained_audio else (),
            )
        if has_lora(model):
            merge_lora(model)
        self.save_final_model(model)
        metrics = self.final_evaluations(oracle=False)
        if self.main:
            card = model_card({**cfg.to_dict(), **self.meta}, metrics)
            from data.textio import atomic_write_text

            atomic_write_text(self.dir / "model" / "README.md", card)
            write_json(
                self.dir / DONE,
                {
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "metrics": metrics,
                    "steps": sum(self.steps_per_epoch),
                },
            )
            if not cfg.keep_resumable:
                remove_resumable_state(self.dir)
        self.acc.wait_for_everyone()
        if self.writer is not None:
            self.writer.close()
        return metrics

    def save_final_model(self, model) -> None:
        from models.loading import save_model

        state = parallel.full_state_dict(self.acc, self.model)  # every rank takes part in gathering the full state
        if self.main:
            save_model(model, self.processor, self.dir / "model", state_dict=state)

    def final_evaluations(self, *, oracle: bool) -> dict[str, dict[str, Any]]:
        return evaluate_sets(self, oracle=oracle)


def evaluate_sets(run: "_Run", *, oracle: bool, splits=None) -> dict[str, dict[str, Any]]:
    """Evaluate every configured split (and language): write eval/<name>/, append results rows. Returns metrics."""
    cfg = run.cfg
    out: dict[str, dict[str, Any]] = {}
    rows = []
    for split in splits or cfg.data.eval_splits:
        sets = run.data.evals.get(split)
        if sets is None:
            raise ConfigError(f"--split {split!r} was not loaded; configured eval splits: {', '.join(run.data.evals)}")
        for es in sets:
            res = run.evaluate(es.texts, es.speech, split=split, oracle=oracle, limit=0)
            name = eval_dir_name(es.name, oracle)
            res.meta = {"language": es.language, "code_version": run.meta.get("code_version")}
            out[name] = res.summary()
            if run.main:
                write_eval(run.dir / "eval" / name, res)
                print(res.one_line(), flush=True)
                rows.append(
                    results_row(
                        run.meta["config"]
                        | {"n_speech_used": run.meta["n_speech_used"], "source_language": run.data.source_language},
                        res.summary(),
                        split=split,
                        language=es.language,
                        oracle=oracle,
                        run_dir=_relative_run_dir(run),
                    )
                )
    if run.main and rows:
        append_results(results_path(cfg), rows)
    return out


def remove_resumable_state(run_dir: Path) -> None:
    """Delete a finished run's checkpoints (model + optimizer state, ~100 GB each at 7B); the final model stays."""
    import shutil

    folder = Path(run_dir) / ckpt.CHECKPOINT_DIR
    if (Path(run_dir) / DONE).is_file() and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def results_path(cfg: TrainConfig) -> Path:
    return Path(cfg.results_csv) if cfg.results_csv else Path(cfg.output_dir).resolve().parent / "results.csv"


def _relative_run_dir(run: "_Run") -> str:
    base = results_path(run.cfg).resolve().parent
    target = run.dir.resolve()
    try:
        return str(target.relative_to(base))
    except ValueError:
        return str(target)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def run(cfg: TrainConfig, accelerator=None) -> dict[str, Any]:
    """Train (or resume) and finish a run. Returns {"stopped": bool, "metrics": {...}, "run_dir": str}."""
    r = _Run(cfg, accelerator)
    with acquire_lock(r.dir) if r.main else _nullcontext():  # one process owns a run folder at a time
        r.prepare()
        finished = r.train()
        metrics = r.finish() if finished else {}
    return {"stopped": not finished, "metrics": metrics, "run_dir": str(r.dir)}


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json); pass the --output_dir of a training run")
    return from_mapping(TrainConfig, json.loads(path.read_text(encoding="utf-8"))["config"])
