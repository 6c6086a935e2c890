"""Decoding throughput of batched beam search (3 beams, as in the seed paper) into SLU frames.

    python -m benchmarks.bench_decode --quick --json        # tiny model on CPU, < 1 minute on 2 cores
    python -m benchmarks.bench_decode --model demo/checkpoints/best --n 64   # a trained checkpoint
    python -m benchmarks.bench_decode --arch full --device cuda --dtype bfloat16 --n 64

Utterances/s of ``models.decode.generate_frames`` (left-padded batches, encoder trimmed to each batch's longest
clip) at batch sizes 1, 8 and 32 over the same SLURP-like clips, against one utterance at a time (batch 1) and
against plain Hugging Face ``generate`` with the stock 30 s encoder window (batch 32). Reports
``batched_decode_speedup`` (batch 32 / batch 1), ``speedup_vs_stock_generate`` and ``outputs_identical`` (the
decoded text of every utterance is the same at every batch size and on the stock path).

A randomly initialised model rarely emits its end-of-turn token, so every row runs to ``--max-new-tokens``; a
trained checkpoint stops early and ragged, which is the realistic case (use ``--model``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from data.cli import parse_config, run_cli
from benchmarks.common import build_arch, examples, machine, print_result, slurp_like_seconds


def run(args) -> dict:
    import torch

    from models import encoder_trim
    from models.decode import generate_frames

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        from models.loading import load_model

        model, processor = load_model(args.model, device=args.device)
    else:
        model, processor = build_arch(args.arch, args.device, args.dtype, n_layers=args.n_layers)
    model.eval()
    items = [(e, True) for e in examples(slurp_like_seconds(args.n, seed=3), seed=3)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def decode(batch_size, trim=True, limit=None):
        chunk = items[:limit] if limit else items
        generate_frames(
            model,
            processor,
            chunk[: min(len(chunk), batch_size)],
            batch_size=batch_size,
            num_beams=3,
            max_new_tokens=args.max_new_tokens,
            progress=False,
            encoder_trim=trim,
        )  # warm-up
        sync()
        t = time.perf_counter()
        preds = generate_frames(
            model,
            processor,
            chunk,
            batch_size=batch_size,
            num_beams=3,
            max_new_tokens=args.max_new_tokens,
            progress=False,
            encoder_trim=trim,
        )
        sync()
        return len(chunk) / (time.perf_counter() - t), [p.text for p in preds]

    encoder_trim.install()
    out: dict = {
        "arch": args.model or args.arch,
        "device": args.device,
        "n": args.n,
        "num_beams": 3,
        "max_new_tokens": args.max_new_tokens,
        "machine": machine(),
    }
    texts = {}
    for bs in (1, 8, 32):
        out[f"utt_per_s_batch{bs}"], texts[bs] = decode(bs)
    out["stock_generate_utt_per_s_batch32"], stock_texts = decode(32, trim=False)
    out["batched_decode_speedup"] = out["utt_per_s_batch32"] / out["utt_per_s_batch1"]
    out["speedup_vs_stock_generate"] = out["utt_per_s_batch32"] / out["stock_generate_utt_per_s_batch32"]
    out["outputs_identical"] = texts[1] == texts[8] == texts[32] == stock_texts
    out["n_differing"] = sum(
        len({texts[1][i], texts[8][i], texts[32][i], stock_texts[i]}) > 1 for i in range(len(items))
    )
    return out


@dataclass
class DecodeBench:
    arch: str = field(default="tiny", metadata={"help": "model size", "choices": ("tiny", "mini", "full")})
    model: str | None = field(default=None, metadata={"help": "a checkpoint folder instead of a random architecture"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    dtype: str = field(default="float32", metadata={"help": "weights' dtype", "choices": ("float32", "bfloat16")})
    n: int = field(default=64, metadata={"help": "utterances decoded at each batch size"})
    max_new_tokens: int = field(default=48, metadata={"help": "generation cap"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = default)"})
    n_layers: int | None = field(default=None, metadata={"help": "full arch: fewer layers, same widths"})
    quick: bool = field(
        default=False, metadata={"help": "tiny model, 32 utterances, 48 new tokens (a two-entity frame)"}
    )
    json: bool = field(default=False, metadata={"help": "print one JSON object"})

    def __post_init__(self) -> None:
        if self.quick:
            self.arch, self.n, self.max_new_tokens = "tiny", 32, 48


def parse(argv=None) -> DecodeBench:
    return parse_config(
        DecodeBench, argv, prog="python -m benchmarks.bench_decode", description=__doc__.splitlines()[0]
    )


def main(argv=None) -> int:
    return run_cli(
        lambda args: print_result(run(args), args.json),
        DecodeBench,
        argv=argv,
        prog="python -m benchmarks.bench_decode",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
