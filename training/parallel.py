"""What the training loop does differently per backend: one process, DDP, FSDP or DeepSpeed ZeRO-3.

Precision (every backend): the trainable weights are float32 *master* weights and AdamW keeps float32 moments; bf16
is the compute dtype only (``autocast`` on one GPU and under DDP, FSDP's ``MixedPrecision(param_dtype=bf16)``,
DeepSpeed's ``bf16`` mode, which also keeps float32 master partitions). Pure bf16 weights would lose most AdamW
updates at the paper's learning rate (an update of 5e-6 is below half a bf16 ulp of almost every weight).

Phases on sharded backends (FSDP, ZeRO-3): the model and optimizer are prepared *once*, with every parameter that
trains in any phase. The optimizer has one parameter group for the audio encoder and projector ("audio") and one
for the rest ("main"); a phase that freezes the audio sets that group's learning rate (and so its decoupled weight
decay) to 0, which leaves those weights bit-identical, then a fresh cosine schedule starts and the AdamW moments are
reset, as a new optimizer per phase would. Nothing is re-wrapped. One process and DDP instead re-wrap per phase (DDP
must register exactly the parameters that receive gradients).

Optimizer state on sharded backends lives on every rank: each rank writes its own shard into the checkpoint
(``rank_state_dir``) and reads it back on resume, which therefore needs the same number of processes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

SINGLE, DDP, FSDP, DEEPSPEED = "single", "ddp", "fsdp", "deepspeed"
SHARDED = (FSDP, DEEPSPEED)
RANK_STATE_DIR = "ranks"  # inside a checkpoint: one optimizer shard per rank (sharded backends)


class ParallelError(ValueError):
    """A backend setting that cannot work; the message says what to change."""


def backend_of(accelerator) -> str:
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        return FSDP
    if kind == DistributedType.DEEPSPEED:
        return DEEPSPEED
    return DDP if accelerator.num_processes > 1 else SINGLE


def deepspeed_requested() -> bool:
    """Whether ``accelerate launch`` was asked for DeepSpeed (its launcher sets this variable)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def require_deepspeed() -> None:
    if importlib.util.find_spec("deepspeed") is None:
        raise ParallelError(
            "the accelerate config asks for DeepSpeed (distributed_type: DEEPSPEED) but the deepspeed "
            "package is not installed: pip install deepspeed (on the GPU machine), or launch with "
            "configs/accelerate/8gpu_fsdp.yaml, which needs nothing beyond torch"
        )


def deepspeed_batch_settings(
    ds_config: dict[str, Any], *, micro_batch: int, grad_accum: int, world: int, max_grad_norm: float
) -> dict[str, Any]:
    """The DeepSpeed config with the run's explicit batch geometry filled in (a new dict; pure).

    accelerate cannot fill ``"auto"`` micro-batch sizes without a DataLoader (the loop has none), and DeepSpeed
    steps its optimizer once per ``gradient_accumulation_steps`` micro-batches, so both are set from the run config
    (``per_device_batch_size`` x ``grad_accum_steps`` x processes = ``train_batch_size``). A number in the file that
    disagrees with the run config is an error rather than silently winning.
    """
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ds_config.items()}
    wanted = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch * grad_accum * world,
    }
    for key, value in wanted.items():
        have = out.get(key, "auto")
        # accelerate writes gradient_accumulation_steps: 1 when the file names none; the run config decides then.
        pinned = have not in ("auto", None) and not (key == "gradient_accumulation_steps" and have == 1)
        if pinned and int(have) != value:
            raise ParallelError(
                f"the DeepSpeed config sets {key}={have} but the run needs {value} "
                f"(per_device_batch_size {micro_batch} x grad_accum_steps {grad_accum} x {world} "
                f'processes); set it to "auto" (or leave it out) and choose the batch in the run '
                "config"
            )
        out[key] = value
    if max_grad_norm > 0:
        out["gradient_clipping"] = max_grad_norm
    if "optimizer" in out or "scheduler" in out:
        raise ParallelError(
            "the DeepSpeed config names an optimizer or scheduler; remove them: the run builds AdamW "
            "and its cosine schedule per phase"
        )
    return out


def configure_deepspeed(accelerator, *, micro_batch: int, grad_accum: int, max_grad_norm: float) -> dict[str, Any]:
    """Write the explicit batch geometry into the active DeepSpeed plugin before ``prepare``. Returns the config."""
    require_deepspeed()
    plugin = accelerator.state.deepspeed_plugin
    config = deepspeed_batch_settings(
        plugin.deepspeed_config,
        micro_batch=micro_batch,
        grad_accum=grad_accum,
        world=accelerator.num_processes,
        max_grad_norm=max_grad_norm,
    )
    plugin.deepspeed_config.clear()
    plugin.deepspeed_config.update(config)
    plugin.gradient_accumulation_steps = grad_accum
    accelerator.gradient_accumulation_steps = grad_accum
    return config


@contextlib.contextmanager
def model_construction(accelerator):
    """Context for building or loading the model: under ZeRO-3 without ``zero3_init_flag``, a full model per rank.

    accelerate registers its DeepSpeed config with transformers whenever a ZeRO-3 plugin is selected, whatever
    ``zero3_init_flag`` says, and transformers then builds every sub-model inside ``deepspeed.zero.Init``: the
    parameters are already partitioned (empty on each rank) when the model's own initialisation and the loop's
    checkpoint loading touch them, which fails ("index 0 is out of bounds for dimension 0 with size 0"). With the
    flag off (configs/accelerate/8gpu_zero3.yaml) the model is built whole on every rank, as the flag promises, and
    ``prepare`` partitions it; the registration is restored afterwards. With the flag on, nothing changes here.
    """
    plugin = accelerator.state.deepspeed_plugin if backend_of(accelerator) == DEEPSPEED else None
    if plugin is None or plugin.is_zero3_init_enabled():
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def micro_batch_loss_scale(backend: str, n_micro: int, grad_accum: int) -> float:
    """Factor on each micro-batch's mean loss so the step's gradient is the mean over its ``n_micro`` batches.

    DeepSpeed divides every loss by its ``gradient_accumulation_steps`` itself; a short last group of an epoch has
    fewer micro-batches, so the factor restores the exact mean there too.
    """
    if backend == DEEPSPEED:
        return grad_accum / n_micro
    return 1.0 / n_micro


def set_sync(accelerator, sync: bool) -> None:
    """Tell accelerate whether this micro-batch ends an optimizer step (DeepSpeed steps inside ``backward``)."""
    accelerator.gradient_state._set_sync_gradients(sync)


# -- parameter groups and phases ------------------------------------------------------------------------------------
def param_groups(model, audio_prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    """AdamW groups over the parameters that require grad: "main" and "audio" (under ``audio_prefixes``)."""
    main, audio = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        in_audio = any(name == p or name.startswith(p + ".") for p in audio_prefixes)
        (audio if in_audio else main).append(param)
    groups = [{"params": main, "group": "main"}]
    if audio:
        groups.append({"params": audio, "group": "audio"})
    return groups


def start_phase_in_place(optimizer, *, peak_lr: float, train_audio: bool) -> dict[str, float]:
    """Begin a phase on an already prepared optimizer: reset AdamW's moments and set each group's peak LR.

    The audio group gets LR 0 when the phase freezes audio (no update, no weight decay: bit-identical weights).
    Call before building the phase's scheduler (which reads ``initial_lr``). Returns the LR per group.
    """
    optimizer.state.clear()  # a fresh AdamW per phase, as on the re-wrapping backends
    lrs = {}
    for group in optimizer.param_groups:
        lr = peak_lr if group.get("group", "main") == "main" or train_audio else 0.0
        group["lr"] = group["initial_lr"] = lr
        lrs[group.get("group", "main")] = lr
    return lrs


# -- decoding on sharded models -----------------------------------------------------------------------------------
def generation_setup(accelerator, prepared_model):
    """``(model to call generate on, context manager, generate kwargs)`` for dev/test decoding.

    Sharded models need every rank in every forward: ``synced_gpus=True`` keeps a rank that finished its batch
    stepping (with dummy forwards) until all ranks have, so ranks whose outputs differ in length never desert an
    all-gather.

    FSDP (version 1, as configs/accelerate/8gpu_fsdp.yaml) needs more: ``generate`` is called on the inner module and
    calls the root unit's submodules (embed_tokens, the audio tower's stem, the projector, norm, lm_head) outside the
    root's own forward, so FSDP would never gather them; ``summon_full_params(root, recurse=False)`` gathers exactly
    the root unit's flat parameter for the duration (the decoder and encoder layers are their own units and gather
    theirs as they run, then free them). Memory: the root unit's parameters in full float32 (summoned parameters
    skip mixed precision) on every rank while decoding; at 7B that is mostly the two 156k x 4096 vocabulary
    matrices, about 1.3 B parameters = 5.2 GB per GPU (the layers add a gathered layer or two in bf16, about 0.5 GB
    each), against 33.6 GB for a full float32 copy of the model per rank. The choice follows the model's own wrapping, not ``accelerator.distributed_type``: the wrapper decides
    what must be gathered, and accelerate's state can be rebuilt from its process-level state (on a real launch
    both say FSDP).
    """
    from torch.distributed.fsdp import FullyShardedDataParallel

    inner = accelerator.unwrap_model(prepared_model)
    synced = {"synced_gpus": accelerator.num_processes > 1}
    check_generation_support(accelerator, prepared_model)
    if isinstance(prepared_model, FullyShardedDataParallel):
        ctx = FullyShardedDataParallel.summon_full_params(prepared_model, writeback=False, recurse=False)
        return inner, ctx, synced
    if backend_of(accelerator) == DEEPSPEED:
        return inner, contextlib.nullcontext(), synced
    return inner, contextlib.nullcontext(), {}


def check_generation_support(accelerator, prepared_model) -> None:
    """Refuse, right after ``prepare``, a sharded wrapping that in-training decoding does not handle (FSDP2)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    try:
        from torch.distributed.fsdp import FSDPModule  # FSDP2 (fully_shard)
    except ImportError:  # older torch: no FSDP2
        FSDPModule = ()
    if isinstance(prepared_model, FullyShardedDataParallel):
        return
    if isinstance(prepared_model, FSDPModule) or backend_of(accelerator) == FSDP:
        raise ParallelError(
            "decoding during training supports FSDP version 1 only (the model is not wrapped by "
            "FullyShardedDataParallel); set fsdp_version: 1 in the accelerate config, as "
            "configs/accelerate/8gpu_fsdp.yaml does"
        )


def full_state_dict(accelerator, prepared_model) -> dict[str, torch.Tensor]:
    """The full model state dict for saving: collective (call on every rank); complete on the main process.

    Under FSDP version 1 the full weights are gathered unit by unit onto rank 0 only (``rank0_only``), offloaded to
    host memory as they arrive when the model lives on an accelerator: at 7B that is 33.6 GB of float32 in rank 0's
    host RAM, one unit at a time in GPU memory. accelerate's ``get_state_dict`` does the same but always asks for the
    offload, which on a CPU-resident model (the gloo tests) frees the very storage it then copies from (a crash), so
    the offload is skipped when the parameters already are on the CPU. Other backends: ``get_state_dict``.
    """
    from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

    if backend_of(accelerator) == DEEPSPEED:
        return _zero_full_state_dict(accelerator, prepared_model)
    if not isinstance(prepared_model, FullyShardedDataParallel):
        return accelerator.get_state_dict(prepared_model)
    on_accelerator = next(prepared_model.parameters()).device.type != "cpu"
    config = FullStateDictConfig(offload_to_cpu=on_accelerator, rank0_only=True)
    with FullyShardedDataParallel.state_dict_type(prepared_model, StateDictType.FULL_STATE_DICT, config):
        return prepared_model.state_dict()


def _zero_full_state_dict(accelerator, engine) -> dict[str, torch.Tensor]:
    """ZeRO-3's full state dict in float32 (collective; complete on the main process).

    accelerate's ``get_state_dict`` gathers the module's own parameters (``zero3_save_16bit_model``), which in
    DeepSpeed's bf16 mode are bf16 copies: checkpoints and the final model would be bf16 (measured with the CPU
    worker). The trained weights are taken from DeepSpeed's float32 master partitions instead, gathered parameter by
    parameter in the same order on every rank; frozen ones have no master and are upcast.
    """
    from deepspeed.utils import safe_get_full_fp32_param

    state = accelerator.get_state_dict(engine)
    for name, param in accelerator.unwrap_model(engine).named_parameters():
        if param.requires_grad:
            full = safe_get_full_fp32_param(param)  # collective
            if accelerator.is_main_process and name in state and full is not None:
                state[name] = full.detach().cpu()
    if not accelerator.is_main_process:
        return {}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


# -- per-rank optimizer state -----------------------------------------------------------------------------------------
def staging_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f".ranks-step-{step:08d}"


def save_rank_state(accelerator, prepared_model, optimizer, folder: Path) -> None:
    """Every rank writes its optimizer shard into ``folder`` (collective; call on all ranks)."""
    folder = Path(folder)
    if accelerator.is_main_process:
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    if backend_of(accelerator) == DEEPSPEED:
        prepared_model.save_checkpoint(str(folder), tag="zero", save_latest=False)  # engine API, collective
    else:
        torch.save(_raw(optimizer).state_dict(), folder / f"optimizer-rank{accelerator.process_index:05d}.pt")
    accelerator.wait_for_everyone()


def load_rank_state(accelerator, prepared_model, optimizer, folder: Path, saved_world: int) -> None:
    """Restore this rank's optimizer shard from a checkpoint's ``ranks/`` folder."""
    if saved_world != accelerator.num_processes:
        raise ParallelError(
            f"the checkpoint holds optimizer shards of {saved_world} processes but this run has "
            f"{accelerator.num_processes}; resume with {saved_world} processes"
        )
    folder = Path(folder)
    if backend_of(accelerator) == DEEPSPEED:
        prepared_model.load_checkpoint(
            str(folder),
            tag="zero",
            load_module_strict=False,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
        return
    path = folder / f"optimizer-rank{accelerator.process_index:05d}.pt"
    if not path.is_file():
        raise ParallelError(f"{path} is missing: the checkpoint lacks this rank's optimizer state")
    _raw(optimizer).load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


def _raw(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one


# -- checks and measurements -----------------------------------------------------------------------------------------
def float32_master_check(model) -> None:
    """Refuse trainable weights that are not float32: AdamW on bf16 weights drops most small updates."""
    low = sorted({str(p.dtype) for p in model.parameters() if p.requires_grad and p.dtype != torch.float32})
    if low:
        raise ParallelError(
            f"trainable weights are {', '.join(low)}, not float32: load the model in float32 for "
            "training (bf16 is the compute dtype via --mixed_precision bf16)"
        )


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def fraction_moved(model, before: dict[str, torch.Tensor], touched: dict[str, torch.Tensor] | None = None) -> float:
    """Share of weight elements that changed since ``before`` (among ``touched`` elements, if given: those whose
    gradient was ever non-zero; rows of unused embeddings get no gradient and cannot move)."""
    moved = total = 0
    for name, param in model.named_parameters():
        if name not in before:
            continue
        changed = param.detach() != before[name]
        if touched is not None:
            mask = touched[name]
            changed = changed & mask
            total += int(mask.sum())
        else:
            total += param.numel()
        moved += int(changed.sum())
    return moved / max(total, 1)


def adamw_fraction_moved(model, batches: list[dict], *, lr: float, steps: int, compute_dtype=None) -> float:
    """Run ``steps`` AdamW steps (one batch each, cycling) and return the share of gradient-touched weight elements
    that changed. ``compute_dtype`` (e.g. bf16) runs the forward/backward under autocast, as accelerate does; the
    weights keep whatever dtype ``model`` has (float32 masters, or bf16 for the pure-bf16 control).
    """
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    before = snapshot(model)
    touched = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters() if p.requires_grad}
    named = dict(model.named_parameters())
    model.train()
    for i in range(steps):
        batch = {k: v.to(device) for k, v in batches[i % len(batches)].items()}
        ctx = (
            torch.autocast(device.type, dtype=compute_dtype) if compute_dtype is not None else contextlib.nullcontext()
        )
        with ctx:
            loss = model(**batch).loss
        loss.backward()
        for name, mask in touched.items():
            grad = named[name].grad
            if grad is not None:
                mask |= grad != 0
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return fraction_moved(model, before, touched)
