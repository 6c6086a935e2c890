"""Training-step throughput: encoder trimmed to the batch's longest clip vs Whisper's 30 s window, and
length-grouped vs plain batches, measured as ratios in one process.

    python -m benchmarks.bench_train_step --quick --json              # tiny model on CPU, < 1 minute on 2 cores
    python -m benchmarks.bench_train_step --arch mini                 # the Mini-LALM size on CPU
    python -m benchmarks.bench_train_step --arch full --device cuda --dtype bfloat16 --batch 8   # 7B architecture

Batches: clips with SLURP-like lengths (log-normal around 2.7 s within 1-10 s, mean ~3 s; benchmarks/common.py).
A step is forward + backward + AdamW (forward + backward only for ``--arch full``, whose fp32 optimizer state would
not fit beside the activations on one GPU; the optimizer's time does not depend on the batch anyway). Collation is
done before timing. Reported (median of ``--repeats``):

* ``speech_*`` / ``text_*`` / ``mixed_*``: examples/s and tokens/s (LLM tokens incl. audio tokens);
* ``encoder_trim_step_speedup``: stock-path step time / trimmed-path step time on speech batches;
* ``length_grouping_speedup``: time of an epoch's batches in random order / grouped by modality and length
  (half the items speech, as in direct mixing at 100%), both trimmed.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field

from data.cli import parse_config, run_cli
from benchmarks.common import build_arch, examples, machine, print_result, slurp_like_seconds, timed


def _step_fn(model, batch, optimizer):
    def step():
        loss = model(**batch).loss
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        model.zero_grad(set_to_none=True)

    return step


def run(args) -> dict:
    import torch

    from models import encoder_trim
    from models.collate import SLUCollator
    from training.plan import group_by_length

    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = build_arch(args.arch, args.device, args.dtype, n_layers=args.n_layers)
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    optimizer = None if args.arch == "full" else torch.optim.AdamW(model.parameters(), lr=1e-5)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else None
    trim, stock = SLUCollator(processor), SLUCollator(processor, encoder_trim=False)
    encoder_trim.install()
    B = args.batch
    seconds = slurp_like_seconds(B * 4, seed=1)
    dev = lambda b: {k: v.to(args.device) for k, v in b.items()}  # noqa: E731

    def measure(batch):
        n_tokens = int(batch["attention_mask"].sum())
        t = timed(_step_fn(model, dev(batch), optimizer), args.repeats, sync=sync)
        return t, n_tokens

    out: dict = {
        "arch": args.arch,
        "device": args.device,
        "dtype": args.dtype,
        "batch": B,
        "clip_seconds_mean": round(sum(seconds[:B]) / B, 2),
        "machine": machine(),
    }
    speech = [(e, True) for e in examples(seconds[:B])]
    text = [(e, False) for e in examples([None] * B)]
    mixed = [(e, True) for e in examples(seconds[B : B + B // 2])] + [
        (e, False) for e in examples([None] * (B - B // 2))
    ]
    t_trim, n_trim = measure(trim(speech))
    t_stock, _ = measure(stock(speech))
    t_text, n_text = measure(trim(text))
    t_mixed, n_mixed = measure(trim(mixed))
    out.update(
        {
            "speech_trimmed_examples_per_s": B / t_trim,
            "speech_trimmed_tokens_per_s": n_trim / t_trim,
            "speech_stock_examples_per_s": B / t_stock,
            "text_examples_per_s": B / t_text,
            "text_tokens_per_s": n_text / t_text,
            "mixed_examples_per_s": B / t_mixed,
            "mixed_tokens_per_s": n_mixed / t_mixed,
            "encoder_trim_step_speedup": t_stock / t_trim,
        }
    )
    # An epoch of 4 batches, half speech: random order vs grouped by modality and length.
    pool = [(e, True) for e in examples(seconds[: 2 * B], seed=2)] + [(e, False) for e in examples([None] * 2 * B)]
    random.Random(0).shuffle(pool)
    plain = [pool[i : i + B] for i in range(0, len(pool), B)]
    ordered = group_by_length(pool, B, seed=0, epoch=0)
    grouped = [ordered[i : i + B] for i in range(0, len(ordered), B)]
    plain_batches = [dev(trim(b)) for b in plain]
    grouped_batches = [dev(trim(b)) for b in grouped]

    def epoch(batches):
        return lambda: [_step_fn(model, b, optimizer)() for b in batches]

    t_plain = timed(epoch(plain_batches), max(args.repeats // 2, 1), sync=sync)
    t_grouped = timed(epoch(grouped_batches), max(args.repeats // 2, 1), sync=sync)
    out["length_grouping_speedup"] = t_plain / t_grouped
    out["epoch_plain_s"], out["epoch_grouped_s"] = t_plain, t_grouped
    if args.device.startswith("cuda"):
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


@dataclass
class TrainStepBench:
    arch: str = field(default="tiny", metadata={"help": "model size", "choices": ("tiny", "mini", "full")})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    dtype: str = field(default="float32", metadata={"help": "weights' dtype", "choices": ("float32", "bfloat16")})
    batch: int = field(default=8, metadata={"help": "micro-batch size"})
    repeats: int = field(default=5, metadata={"help": "timed runs; the best is reported"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = default)"})
    n_layers: int | None = field(default=None, metadata={"help": "full arch: fewer layers, same widths"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    quick: bool = field(default=False, metadata={"help": "tiny model, 3 repeats: under a minute on 2 cores"})
    json: bool = field(default=False, metadata={"help": "print one JSON object"})

    def __post_init__(self) -> None:
        if self.quick:
            self.arch, self.repeats = "tiny", 3


def parse(argv=None) -> TrainStepBench:
    return parse_config(
        TrainStepBench, argv, prog="python -m benchmarks.bench_train_step", description=__doc__.splitlines()[0]
    )


def main(argv=None) -> int:
    return run_cli(
        lambda args: print_result(run(args), args.json),
        TrainStepBench,
        argv=argv,
        prog="python -m benchmarks.bench_train_step",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
