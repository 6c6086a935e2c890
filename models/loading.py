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
        where = f"hub id {name_or_path!r} (no local folder of that name; Hugging Face cache {_hf_cache_dir()}" + (
            ", offline mode: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set)" if offline else ")"
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


# --------------------------------------------------------------------------------------------------------------
# Checks of a checkpoint folder before anything is built: a wrong folder must cost a line, not an OOM kill.

_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))


def _safetensors_header(file: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the byte size the file must have, or ModelLoadError."""
    import struct

    size = file.stat().st_size
    fix = "re-download it (or copy it again) or re-save the checkpoint"
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelLoadError(f"{file}: truncated safetensors file ({size} bytes, no header); {fix}")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100_000_000):
            raise ModelLoadError(f"{file}: not a safetensors file, or truncated in its header ({size:,} bytes); {fix}")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            raise ModelLoadError(f"{file}: damaged safetensors header (not JSON); {fix}") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{file}: damaged safetensors header; {fix}")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise ModelLoadError(f"{file}: damaged safetensors header (bad tensor offsets); {fix}") from None
    return header, 8 + n + end


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise ModelLoadError(
                f"{index}: damaged shard index (no weight_map); re-download or re-save the checkpoint"
            ) from None
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ModelLoadError(
                f"{folder / missing[0]}: weight shard listed in {index.name} is missing "
                f"({len(missing)} of {len(names)} shards); finish the download or copy"
            )
        return [folder / n for n in names]
    return sorted(folder.glob("*.safetensors"))


def _shape_key(name: str) -> str:
    # Checkpoints and the model class may nest the same tensor differently ("language_model.model.layers.0..." on
    # disk, "model.language_model.layers.0..." in transformers 5); comparing without the "model" segments lines
    # them up without knowing each version's renaming rules.
    return ".".join(part for part in name.split(".") if part != "model")


def check_model_folder(folder: str | os.PathLike, adapter: str | ModelAdapter = "qwen2-audio") -> None:
    """Refuse a checkpoint folder that cannot give a working model, before any weights are read or built.

    Checked: ``config.json`` is there, is JSON and describes the adapter's architecture (a BERT folder would make
    transformers build a default 12.7-billion-parameter Qwen2-Audio); the weights are there and no safetensors file
    is truncated; their shapes are those ``config.json`` implies (compared on a model built on the meta device,
    which allocates nothing); the tokenizer files are there (without them the processor loads a one-token
    tokenizer). Each problem is one ``ModelLoadError`` line naming the file and the fix.
    """
    import torch
    import transformers

    adapter = get_adapter(adapter)
    folder = Path(folder)
    cls = _model_class(adapter)
    expected_type = getattr(cls.config_class, "model_type", "")
    config_file = folder / "config.json"
    if not config_file.is_file():
        held = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise ModelLoadError(
            f"{folder}: no config.json, so this is not a model checkpoint folder (it holds: {held}); "
            f"pass a {adapter.name} folder written by save_pretrained or models.loading.save_model, "
            f"or the hub id {adapter.hub_id}"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{config_file}: not valid JSON ({exc}); re-download or re-save the checkpoint") from None
    if not isinstance(config, dict):
        raise ModelLoadError(
            f"{config_file}: not a model config (a JSON object); re-download or re-save the checkpoint"
        )
    model_type = config.get("model_type")
    if model_type != expected_type:
        arch = ", ".join(config.get("architectures") or []) if isinstance(config.get("architectures"), list) else ""
        raise ModelLoadError(
            f"{config_file}: describes a {model_type or 'untyped'!s} model"
            f"{f' ({arch})' if arch else ''}, not {expected_type} ({adapter.model_class}); pass a "
            f"{adapter.name} checkpoint (e.g. {adapter.hub_id}), or register an adapter for this model"
        )
    files = _weight_files(folder)
    if not files:
        other = [p.name for p in folder.glob("*.bin")]
        if other:
            return  # legacy pytorch_model.bin checkpoints: transformers reads them; nothing cheap to check
        raise ModelLoadError(
            f"{folder}: no weights (*.safetensors); the download or copy is incomplete, or the "
            "folder was saved without its model (use models.loading.save_model)"
        )
    on_disk: dict[str, tuple[tuple[int, ...], Path]] = {}
    for file in files:
        header, want = _safetensors_header(file)
        have = file.stat().st_size
        if have != want:
            raise ModelLoadError(
                f"{file}: truncated safetensors file ({have:,} of {want:,} bytes); re-download it "
                "(or copy it again) or re-save the checkpoint"
            )
        for name, meta in header.items():
            if name != "__metadata__" and isinstance(meta, dict) and isinstance(meta.get("shape"), list):
                on_disk[_shape_key(name)] = (tuple(meta["shape"]), file)
    groups = [g for g in _TOKENIZER_FILES if all((folder / n).is_file() for n in g)]
    if not groups:
        raise ModelLoadError(
            f"{folder}: no tokenizer files (tokenizer.json, or vocab.json + merges.txt); without "
            f"them the tokenizer would have a handful of tokens. Copy them from the base model "
            f"({adapter.hub_id}) or re-save the folder with models.loading.save_model"
        )
    try:
        model_config = transformers.AutoConfig.from_pretrained(str(folder))
        with torch.device("meta"):
            skeleton = cls._from_config(model_config)
    except Exception as exc:  # noqa: BLE001 - a config transformers cannot build is reported, not raised raw
        detail = " ".join(str(exc).split())[:200]
        raise ModelLoadError(
            f"{config_file}: transformers cannot build a model from it ({type(exc).__name__}: "
            f"{detail}); re-download or re-save the checkpoint"
        ) from None
    for name, tensor in skeleton.state_dict().items():
        found = on_disk.get(_shape_key(name))
        if found is not None and tuple(tensor.shape) != found[0]:
            raise ModelLoadError(
                f"{found[1]}: tensor {name} has shape {list(found[0])} but config.json implies "
                f"{list(tensor.shape)}; the weights and config.json come from different "
                "checkpoints: re-download or re-save the folder"
            )


def _local_snapshot(name_or_path: str) -> Path | None:
    """The folder a name points to: itself when it is a folder, else its cached hub snapshot (offline look-up)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if not _HUB_ID_RE.match(name_or_path):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached: from_pretrained downloads it or says why it cannot
        return None


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
        try:
            base = json.loads((lora_dir / "adapter_config.json").read_text(encoding="utf-8")).get(
                "base_model_name_or_path"
            )
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            raise ModelLoadError(
                f"{lora_dir / 'adapter_config.json'}: not a LoRA adapter config ({exc}); re-save it "
                "with models.trainable.save_lora"
            ) from None
        if not base:
            raise ModelLoadError(
                f"LoRA folder {lora_dir} names no base model (base_model_name_or_path in adapter_config.json); "
                "re-save it with models.trainable.save_lora(model, out_dir, base=...)"
            )
        name_or_path = base

    folder = _local_snapshot(name_or_path)
    if folder is not None:
        check_model_folder(folder, adapter)
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


def save_model(model: Any, processor: Any, out_dir: str | os.PathLike, *, state_dict: dict | None = None) -> Path:
    """Save weights, config and processor so that ``load_model(out_dir)`` restores them; the folder appears whole.

    Everything is written to a temporary sibling folder first; an existing folder at ``out_dir`` is renamed aside,
    the new one renamed into place, and only then is the old one deleted. A crash at any point leaves either the old
    folder or the new one at ``out_dir``, never a half-written one or none. ``state_dict``: the weights to save when
    they are not the model's own (the full state gathered from a sharded model).
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if state_dict is None:
            model.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp, state_dict=state_dict)
        processor.save_pretrained(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(new: Path, out: Path) -> None:
    """Rename the finished folder ``new`` to ``out``; a folder already there is deleted only once ``new`` is in place."""
    if not out.exists():
        new.rename(out)
        return
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        old.rename(out)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)
