"""One rank of a 2-process FSDP run on CPU over gloo (started by tests/test_training_fsdp.py through torchrun).

accelerate only selects FSDP on accelerators, so this worker forces its FSDP state on CPU (torch's FSDP itself
runs on CPU with gloo); everything else is the project's real code: ``training.loop.run`` with the FSDP settings of
configs/accelerate/8gpu_fsdp.yaml (minus the two that need a GPU: sync_module_states, cpu_ram_efficient_loading).

    python -m torch.distributed.run --nproc_per_node 2 tests/fsdp_cpu_worker.py train RUN.yaml [--key value ...]
    python -m torch.distributed.run --nproc_per_node 2 tests/fsdp_cpu_worker.py decode OUT.json MODE

MODE: synced, unsynced (no lockstep), synced_after_step (prepared with its optimizer and stepped, as the loop does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fsdp_accelerator():
    from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
    from accelerate.utils import DistributedType

    fsdp = yaml.safe_load((ROOT / "configs" / "accelerate" / "8gpu_fsdp.yaml").read_text())["fsdp_config"]
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=fsdp["fsdp_version"],
        sharding_strategy=fsdp["fsdp_sharding_strategy"],
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=fsdp["fsdp_transformer_layer_cls_to_wrap"].split(","),
        use_orig_params=fsdp["fsdp_use_orig_params"],
        state_dict_type=fsdp["fsdp_state_dict_type"],
        sync_module_states=False,
        cpu_ram_efficient_loading=False,
    )
    acc = Accelerator(cpu=True)
    acc.state.distributed_type = DistributedType.FSDP
    acc.state.fsdp_plugin = plugin
    acc.state.device = torch.device("cpu")
    # As on a real FSDP launch, the process-level state says FSDP too: every later AcceleratorState() (e.g. the one
    # AcceleratedOptimizer builds in prepare(model, optimizer)) copies it over the accelerator's state.
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return acc


def train(argv: list[str]) -> None:
    from data.cli import parse_config
    from training.config import TrainConfig
    from training.loop import run

    cfg = parse_config(TrainConfig, ["--config", argv[0], *argv[1:]])
    run(cfg, accelerator=fsdp_accelerator())


def decode(out_path: str, mode: str) -> None:
    """Ranks decode different speech items to different lengths on one sharded model (rank 0: 2 tokens, rank 1: 12).

    ``*_after_step`` modes prepare the model with its optimizer and take one step first, as the loop does. Rank 0 then
    decodes both items again with a plain (unsharded) copy loaded from the gathered full state dict: the sharded
    decoding must give the same texts, and the step must have moved the weights (so the trained ones were used).
    """
    from accelerate.utils import gather_object

    from models.decode import generate_frames
    from models.tiny import build_tiny
    from tests.fixtures_models import make_example
    from data.frames import SLUFrame
    from training import parallel

    acc = fsdp_accelerator()
    model, processor = build_tiny(seed=0)
    if mode.endswith("after_step"):  # prepared with an optimizer and one step, as in the loop
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        model, optimizer = acc.prepare(model, optimizer)
        ids = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(acc.process_index))
        acc.backward(model(input_ids=ids, labels=ids).loss)
        optimizer.step()
        optimizer.zero_grad()
    else:
        model = acc.prepare(model)
    inner, ctx, kwargs = parallel.generation_setup(acc, model)
    if mode.startswith("unsynced"):
        kwargs = {}
    rank = acc.process_index
    budget = [2, 12]

    def item(r):
        text = "wake me up at five" if r else "play jazz"
        return make_example(r, text, SLUFrame("alarm", "set", ()), audio_seconds=0.5 + 0.3 * r), True

    with ctx:
        preds = generate_frames(
            inner, processor, [item(rank)], max_new_tokens=budget[rank], progress=False, generate_kwargs=kwargs
        )
    gathered = gather_object([(p.id, p.text) for p in preds])
    state = parallel.full_state_dict(acc, model)  # collective: the full weights, on rank 0
    if acc.is_main_process:
        plain, _ = build_tiny(seed=0)
        initial = plain.state_dict()
        moved = any(not torch.equal(v, initial[k]) for k, v in state.items())
        plain.load_state_dict(state)
        reference = [
            generate_frames(plain, processor, [item(r)], max_new_tokens=budget[r], progress=False)[0].text
            for r in range(acc.num_processes)
        ]
        Path(out_path).write_text(
            json.dumps(
                {
                    "ids": [i for i, _ in gathered],
                    "texts": [t for _, t in gathered],
                    "reference_texts": reference,
                    "weights_moved": moved,
                    "kwargs": {k: str(v) for k, v in kwargs.items()},
                }
            )
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    import faulthandler

    faulthandler.dump_traceback_later(int(__import__("os").environ.get("WORKER_STACKS_AFTER_S", "100000")), exit=True)
    if sys.argv[1] == "train":
        train(sys.argv[2:])
    else:
        decode(sys.argv[2], sys.argv[3])
    import torch.distributed as dist

    if dist.is_initialized():  # leave together: a rank exiting alone can leave its peer blocked at shutdown
        dist.barrier()
        dist.destroy_process_group()
