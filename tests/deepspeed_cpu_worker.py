"""One rank of a 2-process DeepSpeed ZeRO-3 run on CPU over gloo (started by tests/test_training_deepspeed.py).

accelerate only selects DeepSpeed on accelerators, so this worker forces its DeepSpeed state on CPU, with the
DeepSpeed settings of configs/accelerate/8gpu_zero3.yaml (stage 3, clipping, no offload, 16-bit save) and fp32
compute (the CPU run compares losses with a single-process run). DeepSpeed itself runs on its CPU accelerator
(``DS_ACCELERATOR=cpu``, set here) over the gloo process group accelerate opened; the optimizer is the loop's own
torch AdamW (on DeepSpeed's list of ZeRO-supported optimizers), so no optimizer op is compiled (DeepSpeed does
JIT-build its small shared-memory all-reduce op once, on first use, into ~/.cache/torch_extensions). Everything
else is the project's real code: ``training.loop.run``.

    python -m torch.distributed.run --nproc_per_node 2 tests/deepspeed_cpu_worker.py train RUN.yaml [--key value ...]

With ``DS_WORKER_COUNTS=path.json`` rank 0 also writes how many micro-batches went through ``backward`` and how
many optimizer steps the DeepSpeed engine took (counted on the engine itself).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")  # before deepspeed is imported anywhere

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def deepspeed_accelerator():
    from accelerate import Accelerator, PartialState
    from accelerate.utils import DistributedType

    from tests.distributed import zero3_plugin, zero3_yaml

    acc = Accelerator(cpu=True)  # opens the gloo process group
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)  # adopts the open group
    plugin = zero3_plugin(zero3_yaml()["deepspeed_config"])
    plugin.set_mixed_precision(os.environ.get("DS_WORKER_MIXED_PRECISION", "no"))  # bf16: a manual check
    acc.state.distributed_type = DistributedType.DEEPSPEED
    acc.state.deepspeed_plugins = plugin
    plugin.select(_from_accelerator_state=True)
    acc.state.device = torch.device("cpu")
    acc.deepspeed_engine_wrapped = None  # what Accelerator() sets up when it is given a DeepSpeed plugin
    # As on a real DeepSpeed launch, the process-level state says DEEPSPEED too.
    PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED
    return acc


def train(argv: list[str]) -> None:
    from data.cli import parse_config
    from training.config import TrainConfig
    from training.loop import run

    cfg = parse_config(TrainConfig, ["--config", argv[0], *argv[1:]])
    acc = deepspeed_accelerator()
    counts_path = os.environ.get("DS_WORKER_COUNTS")
    counts = {"backward": 0, "optimizer_steps": 0, "boundaries": []}
    if counts_path:
        import deepspeed

        engine_backward, engine_step = deepspeed.DeepSpeedEngine.backward, deepspeed.DeepSpeedEngine.step

        def backward(self, loss, *args, **kwargs):
            counts["backward"] += 1
            return engine_backward(self, loss, *args, **kwargs)

        def step(self, *args, **kwargs):
            before = self.global_steps
            out = engine_step(self, *args, **kwargs)
            counts["optimizer_steps"] += self.global_steps - before
            counts["boundaries"].append(counts["backward"])
            return out

        deepspeed.DeepSpeedEngine.backward, deepspeed.DeepSpeedEngine.step = backward, step
    run(cfg, accelerator=acc)
    if counts_path and acc.is_main_process:
        Path(counts_path).write_text(json.dumps(counts))


if __name__ == "__main__":
    torch.set_num_threads(1)
    import faulthandler

    faulthandler.dump_traceback_later(int(os.environ.get("WORKER_STACKS_AFTER_S", "100000")), exit=True)
    train(sys.argv[2:])
    import torch.distributed as dist

    if dist.is_initialized():  # leave together: a rank exiting alone can leave its peer blocked at shutdown
        dist.barrier()
        dist.destroy_process_group()
