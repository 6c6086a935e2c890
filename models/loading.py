"""Load and save audio LLM checkpoints (hub id or local folder) with plain transformers classes.

- bfloat16 on a GPU, float32 on CPU (CPU bf16 matmuls are slow and lossy for the tiny twin);
- attention: flash-attention 2 when the package is installed and a GPU is used, otherwise PyTorch SDPA;
- never ``trust_remote_code``: Qwen2-Audio ships in transformers itself;
- a folder holding a LoRA adapter (``adapter_config.json`` written by ``models.trainable.save_lora``) is loaded as
  its base model plus the adapter, unmerged (call ``merge_lora`` to fold it in);
- missing or unreachable weights raise ``ModelLoadError`` saying where we looked and how to provide the weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from models.registry import ModelAdapter, get_adapter


class ModelLoadError(RuntimeError):
    """A checkpoint that cannot be loaded; the message names the place looked at and the fix."""


def default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device):
    import torch

    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def attention_implementation(device) -> str:
    """flash_attention_2 when usable, else sdpa (both supported by Qwen2-Audio's encoder and decoder)."""
    import torch

    if torch.device(device).type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - only used to word an error message
        return os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")


_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _load_error(name_or_path: str, adapter: ModelAdapter, err: Exception) -> ModelLoadError:
    path = Path(name_or_path).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if path.exists():
        where = f"local folder {path.resolve()}"
        fix = (
            "the folder must hold config.json, the weights (*.safetensors) and the processor files "
            "(preprocessor_config.json, tokenizer files), as written by save_pretrained or models.loading.save_model"
        )
    elif _HUB_ID_RE.match(name_or_path):
        where = (
            f"hub id {name_or_path!r} (no local folder of that name; Hugging Face cache {_hf_cache_dir()}"
            + (", offline mode: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set)" if offline else ")")
        )
        fix = (
            f"download it once with `huggingface-cli download {name_or_path}` on a machine with network access "
            "(HF_HOME chooses the cache folder; copy that folder over if this machine is offline), "
            "or pass the path of a local folder that holds the checkpoint"
        )
    else:
        where = f"local folder {name_or_path!r} (it does not exist)"
        fix = (
            f"check the path, or pass a hub id such as {adapter.hub_id!r} after downloading it with "
            f"`huggingface-cli download {adapter.hub_id}`"
        )
    detail = " ".join(str(err).split()).rstrip(".")
    return ModelLoadError(f"cannot load {adapter.name} model from {where}: {type(err).__name__}: {detail}. Fix: {fix}")


def _model_class(adapter: ModelAdapter):
    import transformers

    return getattr(transformers, adapter.model_class)


def load_model(
    name_or_path: str | os.PathLike,
    *,
    adapter: str | ModelAdapter = "qwen2-audio",
    device=None,
    dtype=None,
) -> tuple[Any, Any]:
    """``(model, processor)`` from a hub id or a local checkpoint folder, in eval mode on ``device``."""
    import torch
    from transformers import AutoProcessor

    adapter = get_adapter(adapter)
    name_or_path = str(name_or_path)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype if dtype is not None else default_dtype(device)

    lora_dir = None
    if (Path(name_or_path) / "adapter_config.json").is_file():
        lora_dir = Path(name_or_path)
        base = json.loads((lora_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise ModelLoadError(
                f"LoRA folder {lora_dir} names no base model (base_model_name_or_path in adapter_config.json); "
                "re-save it with models.trainable.save_lora(model, out_dir, base=...)"
            )
        name_or_path = base

    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention_implementation(device)}
    if device.type == "cuda":
        kwargs["device_map"] = {"": device.index or 0}  # load shards straight onto the GPU
    try:
        processor = AutoProcessor.from_pretrained(name_or_path)
        model = _model_class(adapter).from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, EnvironmentError) as err:
        raise _load_error(name_or_path, adapter, err) from err
    if device.type != "cuda":
        model.to(device)
    if lora_dir is not None:
        from models.trainable import load_lora

        load_lora(model, lora_dir, adapter=adapter)
    if not getattr(processor, "chat_template", None):
        processor.chat_template = adapter.chat_template
    model.eval()
    return model, processor


def save_model(model: Any, processor: Any, out_dir: str | os.PathLike) -> Path:
    """Save weights, config and processor so that ``load_model(out_dir)`` restores them; the folder appears whole.

    Everything is written to a temporary sibling folder first and renamed into place, so a crash never leaves a
    half-written checkpoint. An existing folder at ``out_dir`` is replaced.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
