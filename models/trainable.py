"""What trains in a phase, in one function; optional LoRA on the language model, saved small and merged for serving.

Rules (``set_trainable``):

- text-only phase (``train_audio=False``): the audio encoder and projector are frozen (they see no audio, and an
  update would only be weight decay drift); everything else trains;
- speech phase (``train_audio=True``): the whole model trains (bar the encoder's fixed sinusoidal positions,
  which the architecture never trains: ``ModelAdapter.fixed_parameters``);
- with LoRA (``lora=LoraSettings(...)``, or a model that already carries LoRA layers from an earlier phase): the
  language model's base weights, embeddings and output head are frozen and only the LoRA matrices train in the
  decoder; the audio encoder and projector follow ``train_audio`` as above.

LoRA is injected in place (``peft.inject_adapter_in_model``), so the model keeps its transformers class and
``generate``/``save_pretrained`` work unchanged. ``save_lora`` writes a peft-format adapter folder (also readable by
``peft.PeftModel.from_pretrained``); ``merge_lora`` folds the adapters into the base weights for serving.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.registry import LayoutError, ModelAdapter, get_adapter

_PEFT_PREFIX = "base_model.model."  # key prefix of a PeftModel-saved adapter
# Modules trained in full next to the LoRA layers (the audio encoder and projector in a speech phase): an adapter
# alone would reload them from the base checkpoint, untrained. Saved beside the adapter; not part of peft's format.
FULL_WEIGHTS = "fully_trained_modules.safetensors"


class TrainableError(ValueError):
    """Bad trainable settings or a model that does not fit the adapter's module layout."""


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the language model's linear layers (Hu et al., 2022)."""

    r: int = 16  # rank of the update
    alpha: int = 32  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.05  # dropout on the LoRA branch input
    target_modules: tuple[str, ...] | None = None  # leaf layer names inside the decoder; None = the adapter's choice

    def __post_init__(self) -> None:
        if self.r < 1:
            raise TrainableError(f"lora r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise TrainableError(f"lora alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainableError(f"lora dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainableSummary:
    """Parameter counts after ``set_trainable`` (elements, not tensors)."""

    total: int
    trainable: int
    audio_trainable: int  # trainable parameters inside the adapter's audio modules
    lora: int  # LoRA parameters (all trainable)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "frozen": self.frozen}


def _lora_layers(model: Any) -> list[tuple[str, Any]]:
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in model.named_modules() if isinstance(module, LoraLayer)]


def has_lora(model: Any) -> bool:
    return bool(_lora_layers(model))


def _lora_config(lora: LoraSettings, adapter: ModelAdapter, base: str | None = None):
    from peft import LoraConfig

    leaves = lora.target_modules or adapter.lora_target_modules
    if not leaves:
        raise TrainableError(f"adapter {adapter.name!r} names no LoRA target modules; pass LoraSettings.target_modules")
    regex_adapter = replace(adapter, lora_target_modules=tuple(leaves))
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=regex_adapter.lora_target_regex(),
        base_model_name_or_path=base,
    )


def add_lora(model: Any, lora: LoraSettings, adapter: str | ModelAdapter = "qwen2-audio") -> Any:
    """Inject fresh LoRA layers into the language model, in place. Returns the same model."""
    from peft import inject_adapter_in_model

    adapter = _resolve(model, adapter)
    if has_lora(model):
        raise TrainableError("the model already carries LoRA layers; merge_lora(model) first to add a fresh set")
    base = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    inject_adapter_in_model(_lora_config(lora, adapter, base), model)
    model.train(model.training)  # new LoRA dropout modules start in training mode; match the model's mode
    return model


def _resolve(model: Any, adapter: str | ModelAdapter) -> ModelAdapter:
    """The adapter's module layout that ``model`` has (transformers 5.x or 4.x), or a TrainableError."""
    try:
        return get_adapter(adapter).for_model(model)
    except LayoutError as exc:
        raise TrainableError(str(exc)) from None


def audio_modules(model: Any, adapter: str | ModelAdapter = "qwen2-audio") -> tuple[str, ...]:
    """Dotted paths of the audio encoder and projector in ``model`` (whatever its transformers layout)."""
    return _resolve(model, adapter).audio_modules


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def set_trainable(
    model: Any,
    *,
    train_audio: bool,
    lora: LoraSettings | None = None,
    adapter: str | ModelAdapter = "qwen2-audio",
) -> TrainableSummary:
    """Set ``requires_grad`` for a phase (see the module docstring) and return the parameter counts."""
    adapter = _resolve(model, adapter)
    if lora is not None and not has_lora(model):
        add_lora(model, lora, adapter)
    use_lora = has_lora(model)

    total = trainable = audio_trainable = lora_count = 0
    for name, param in model.named_parameters():
        in_audio = _is_under(name, adapter.audio_modules)
        is_lora = ".lora_" in name
        if _is_under(name, adapter.fixed_parameters):
            train = False
        elif in_audio:
            train = train_audio
        elif use_lora:
            train = is_lora
        else:
            train = True
        param.requires_grad_(train)
        total += param.numel()
        trainable += param.numel() if train else 0
        audio_trainable += param.numel() if (train and in_audio) else 0
        lora_count += param.numel() if is_lora else 0
    return TrainableSummary(total=total, trainable=trainable, audio_trainable=audio_trainable, lora=lora_count)


def merge_lora(model: Any) -> Any:
    """Fold every LoRA update into its base layer and remove the LoRA modules, in place. Returns the model."""
    for name, module in _lora_layers(model):
        if not hasattr(module, "get_base_layer"):
            continue
        module.merge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model


def _save_tensors(state: dict, path: Path) -> None:
    """Write a safetensors file whole or not at all (temporary sibling, then rename)."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def save_lora(
    model: Any, out_dir: str | os.PathLike, *, base: str | None = None, full_modules: tuple[str, ...] = ()
) -> Path:
    """Write the LoRA weights and config (peft format) so ``load_model(out_dir)`` rebuilds base + adapter.

    ``base`` is the base checkpoint (hub id or folder) recorded in ``adapter_config.json``; it defaults to the path
    the model was loaded from. ``full_modules`` names modules trained in full beside the LoRA layers (e.g. the
    adapter's ``audio_modules`` after a speech phase); their weights go to ``FULL_WEIGHTS`` in the same folder and
    ``load_lora`` puts them back. Without it, the reloaded model would carry the base checkpoint's audio encoder.
    """
    from peft import get_peft_model_state_dict

    from data.textio import atomic_write_text

    configs = getattr(model, "peft_config", None)
    if not has_lora(model) or not configs:
        raise TrainableError("the model has no LoRA layers to save; set_trainable(..., lora=LoraSettings()) adds them")
    config = configs["default"]
    base = base or config.base_model_name_or_path or getattr(model.config, "_name_or_path", None)
    if not base:
        raise TrainableError("save_lora needs base=<hub id or folder of the base checkpoint> to be loadable later")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {_PEFT_PREFIX + k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}
    _save_tensors(state, out / "adapter_model.safetensors")
    full = {
        name: p.detach().contiguous().cpu()
        for name, p in model.named_parameters()
        if any(name.startswith(m + ".") for m in full_modules) and "lora_" not in name
    }
    if full_modules and not full:
        raise TrainableError(f"save_lora: no parameters under {list(full_modules)}; check the module names")
    if full:
        _save_tensors(full, out / FULL_WEIGHTS)
    elif (out / FULL_WEIGHTS).exists():
        (out / FULL_WEIGHTS).unlink()  # a stale file from an earlier save would silently overwrite the base
    config_dict = config.to_dict()
    config_dict["base_model_name_or_path"] = str(base)
    atomic_write_text(out / "adapter_config.json", json.dumps(config_dict, indent=2, default=list))
    return out


def load_lora(model: Any, lora_dir: str | os.PathLike, adapter: str | ModelAdapter = "qwen2-audio") -> Any:
    """Inject the LoRA layers saved in ``lora_dir`` into ``model`` and load their weights, in place."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    lora_dir = Path(lora_dir)
    config = LoraConfig.from_pretrained(str(lora_dir))
    inject_adapter_in_model(config, model)
    model.train(model.training)
    state = {k.removeprefix(_PEFT_PREFIX): v for k, v in load_file(str(lora_dir / "adapter_model.safetensors")).items()}
    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise TrainableError(f"LoRA folder {lora_dir} holds weights this model has no place for: {unexpected[:3]}")
    if (lora_dir / FULL_WEIGHTS).is_file():
        full = load_file(str(lora_dir / FULL_WEIGHTS))
        own = dict(model.named_parameters())
        alien = [k for k in full if k not in own or own[k].shape != full[k].shape]
        if alien:
            raise TrainableError(
                f"{lora_dir / FULL_WEIGHTS} holds weights this model has no place for: {alien[:3]}; "
                "was the adapter saved from another architecture or size?"
            )
        import torch

        with torch.no_grad():
            for k, v in full.items():
                own[k].copy_(v.to(own[k].dtype))
    return model
