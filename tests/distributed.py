"""Shared by the multi-process CPU tests (FSDP, DeepSpeed ZeRO-3) and their torchrun workers: start a 2-process
worker over gloo, and read the ZeRO-3 plugin settings from configs/accelerate/8gpu_zero3.yaml."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
ZERO3_YAML = ROOT / "configs" / "accelerate" / "8gpu_zero3.yaml"


def run_workers(
    worker: str, *args: str, timeout: int, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess | None:
    """``torchrun --nproc_per_node 2 tests/<worker> ARGS`` offline with one thread per rank; None if it hung."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        **(env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        str(ROOT / "tests" / worker),
        *args,
    ]
    # Its own process group, so a hang is ended whole: torchrun's workers would outlive a plain kill of torchrun.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def zero3_yaml() -> dict[str, Any]:
    """configs/accelerate/8gpu_zero3.yaml as accelerate's launcher reads it."""
    return yaml.safe_load(ZERO3_YAML.read_text())


def zero3_plugin(ds: Mapping[str, Any]):
    """The DeepSpeedPlugin accelerate's launcher builds from the YAML's ``deepspeed_config`` section."""
    from accelerate.utils import DeepSpeedPlugin

    return DeepSpeedPlugin(
        zero_stage=ds["zero_stage"],
        gradient_clipping=ds.get("gradient_clipping"),
        offload_optimizer_device=ds["offload_optimizer_device"],
        offload_param_device=ds["offload_param_device"],
        zero3_init_flag=ds["zero3_init_flag"],
        zero3_save_16bit_model=ds["zero3_save_16bit_model"],
    )
