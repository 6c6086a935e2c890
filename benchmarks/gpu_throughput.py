"""Qwen2-Audio-7B's architecture on one GPU (random weights, bf16, nothing downloaded): training tokens/s, model
FLOPs utilisation (MFU), peak memory, the encoder-trim speed-up, and beam-3 decoding throughput.

    python -m benchmarks.gpu_throughput --json                 # on a CUDA GPU (an H200: ~790 TFLOP/s bf16 dense)
    python -m benchmarks.gpu_throughput --arch tiny --device cpu --json   # the same code on the tiny model, CPU
    python -m benchmarks.gpu_throughput --estimate --json      # FLOP estimate of the trim speed-up, no GPU needed

What runs (per setting, median of ``--repeats`` steps after a warm-up):

* full fine-tuning and LoRA (r=16 on the decoder's linear layers, base frozen): forward + backward of one
  micro-batch, activation checkpointing on, for text-only batches and speech batches (SLURP-like clip lengths,
  benchmarks/common.py) on the trimmed encoder path and the stock 30 s path, at each micro-batch size of
  ``--micro-batches`` that fits. The paper's effective batch is 128 (2 per GPU x 8 accumulation x 8 GPUs); a step of
  128 examples costs 128 / micro-batch micro-steps, so examples/s at the best micro-batch is what a run of the grid
  sees per GPU (the AdamW update of fp32 master weights is not timed: on one GPU the 8.4B parameters' fp32 state does
  not fit beside the activations; under FSDP/ZeRO-3 it is sharded 8 ways and costs a few ms per 128 examples).
* MFU = model FLOPs per second / ``--peak-tflops``. Model FLOPs count useful work only (valid audio frames, real
  tokens; 3x the forward pass for training, attention included, causal half for the decoder), so the stock 30 s path
  shows as low MFU: its padding is wasted work.
* decoding: ``generate_frames`` with 3 beams on speech, trimmed vs stock, utterances/s.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from data.cli import run_cli
from benchmarks.common import FULL_AUDIO, FULL_TEXT, build_arch, examples, machine, slurp_like_seconds, timed

H200_BF16_TFLOPS = 790.0  # measured 8192^3 bf16 matmul on the H200 the figures were taken on


def _dims(model) -> dict:
    ac, tc = model.config.audio_config, model.config.text_config
    return {
        "enc_d": ac.d_model,
        "enc_layers": ac.encoder_layers,
        "enc_ffn": ac.encoder_ffn_dim,
        "mels": ac.num_mel_bins,
        "d": tc.hidden_size,
        "layers": tc.num_hidden_layers,
        "ffn": tc.intermediate_size,
        "vocab": tc.vocab_size,
        "kv": tc.num_key_value_heads,
        "heads": tc.num_attention_heads,
    }


def forward_flops(dims: dict, token_counts: list[int], clip_frames: list[int]) -> float:
    """Useful forward FLOPs of a batch: ``token_counts`` real tokens per row, ``clip_frames`` valid mel frames per clip."""
    d, L, f, V = dims["d"], dims["layers"], dims["ffn"], dims["vocab"]
    kv_d = d * dims["kv"] // dims["heads"]
    per_token_layer = 2 * (d * d * 2 + 2 * d * kv_d + 3 * d * f)  # q, o, k, v projections; gated MLP
    total = 0.0
    for s in token_counts:
        total += s * (L * per_token_layer + 2 * d * V)  # + LM head
        total += L * 2 * s * s * d  # causal attention scores and values (half of 4*s^2*d)
    ed, el, ef, mels = dims["enc_d"], dims["enc_layers"], dims["enc_ffn"], dims["mels"]
    for frames in clip_frames:
        t = frames // 2  # after the stride-2 convolution
        total += 2 * mels * ed * 3 * frames + 2 * ed * ed * 3 * t  # the two convolutions
        total += el * (t * 2 * (4 * ed * ed + 2 * ed * ef) + 4 * t * t * ed)  # encoder layers (bidirectional)
        total += (t // 2) * 2 * ed * d  # projector
    return total


def estimate_trim_speedup(batch: int = 8, seed: int = 1) -> dict:
    """Full-architecture FLOPs of a speech training step, stock (30 s) vs trimmed encoder, SLURP-like clips."""
    from models.encoder_trim import trimmed_samples

    dims = {
        "enc_d": FULL_AUDIO["d_model"],
        "enc_layers": FULL_AUDIO["encoder_layers"],
        "enc_ffn": FULL_AUDIO["encoder_ffn_dim"],
        "mels": 128,
        "d": FULL_TEXT["hidden_size"],
        "layers": FULL_TEXT["num_hidden_layers"],
        "ffn": FULL_TEXT["intermediate_size"],
        "vocab": FULL_TEXT["vocab_size"],
        "kv": FULL_TEXT["num_key_value_heads"],
        "heads": FULL_TEXT["num_attention_heads"],
    }
    secs = slurp_like_seconds(batch, seed=seed)
    tokens = [int(s * 25) + 110 + 35 for s in secs]  # audio tokens (25/s) + prompt (~110) + target (~35)
    trimmed = trimmed_samples(int(max(secs) * 16000)) // 160
    stock = forward_flops(dims, tokens, [3000] * batch)
    trim = forward_flops(dims, tokens, [trimmed] * batch)
    text_only = forward_flops(dims, tokens, [])
    return {
        "batch": batch,
        "clip_seconds": [round(s, 2) for s in secs],
        "trimmed_frames": trimmed,
        "encoder_share_stock": (stock - text_only) / stock,
        "encoder_share_trimmed": (trim - text_only) / trim,
        "flop_speedup_trimmed_vs_stock": stock / trim,
    }


def run(args) -> dict:
    import torch

    from models import encoder_trim
    from models.collate import SLUCollator
    from models.decode import generate_frames

    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    encoder_trim.install()
    model, processor = build_arch(args.arch, args.device, args.dtype, n_layers=args.n_layers)
    dims = _dims(model)
    out: dict = {
        "arch": args.arch,
        "dtype": args.dtype,
        "peak_tflops": args.peak_tflops,
        "machine": machine(),
        "parameters_b": sum(p.numel() for p in model.parameters()) / 1e9,
        "settings": [],
    }
    trim, stock = SLUCollator(processor), SLUCollator(processor, encoder_trim=False)

    def bench(mode: str, kind: str, mb: int, path: str) -> dict:
        secs = slurp_like_seconds(mb, seed=5)
        use_audio = kind == "speech"
        items = [(e, use_audio) for e in examples(secs if use_audio else [None] * mb)]
        batch = (trim if path == "trimmed" else stock)(items)
        batch = {k: v.to(args.device) for k, v in batch.items()}
        tokens = batch["attention_mask"].sum(-1).tolist()
        frames = batch["feature_attention_mask"].sum(-1).tolist() if use_audio else []
        flops = 3 * forward_flops(dims, tokens, frames)

        def step():
            loss = model(**batch).loss
            loss.backward()
            model.zero_grad(set_to_none=True)

        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t = timed(step, args.repeats, sync=sync)
        res = {
            "mode": mode,
            "batch_kind": kind,
            "micro_batch": mb,
            "encoder": path,
            "step_s": t,
            "examples_per_s": mb / t,
            "tokens_per_s": sum(tokens) / t,
            "mfu": flops / t / (args.peak_tflops * 1e12),
        }
        if cuda:
            res["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return res

    model.train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    for mode in args.modes.split(","):
        if mode == "lora":
            from models.trainable import LoraSettings, set_trainable

            set_trainable(model, train_audio=True, lora=LoraSettings(r=16, alpha=32, dropout=0.0))
        for mb in [int(x) for x in args.micro_batches.split(",")]:
            for kind, path in (("speech", "trimmed"), ("speech", "stock"), ("text", "trimmed")):
                try:
                    res = bench(mode, kind, mb, path)
                except torch.OutOfMemoryError:
                    res = {"mode": mode, "batch_kind": kind, "micro_batch": mb, "encoder": path, "oom": True}
                    if cuda:
                        torch.cuda.empty_cache()
                out["settings"].append(res)
                print(json.dumps(res), file=sys.stderr, flush=True)
    sp = {
        (r["mode"], r["micro_batch"]): r
        for r in out["settings"]
        if r.get("encoder") == "trimmed" and r.get("batch_kind") == "speech" and not r.get("oom")
    }
    st = {(r["mode"], r["micro_batch"]): r for r in out["settings"] if r.get("encoder") == "stock" and not r.get("oom")}
    out["encoder_trim_step_speedup"] = {
        f"{m}-mb{b}": st[(m, b)]["step_s"] / sp[(m, b)]["step_s"] for (m, b) in sp if (m, b) in st
    }
    ok = [r for r in out["settings"] if not r.get("oom") and r.get("encoder") == "trimmed"]
    for mode in args.modes.split(","):
        for kind in ("speech", "text"):
            rows = [r for r in ok if r["mode"] == mode and r["batch_kind"] == kind]
            if rows:
                best = max(rows, key=lambda r: r["examples_per_s"])
                out[f"best_{mode}_{kind}"] = {
                    k: best[k] for k in ("micro_batch", "examples_per_s", "tokens_per_s", "mfu") if k in best
                }
    if args.decode:
        model.gradient_checkpointing_disable()
        model.config.use_cache = True
        model.eval()
        items = [(e, True) for e in examples(slurp_like_seconds(args.decode, seed=7), seed=7)]
        for path in ("trimmed", "stock"):
            generate_frames(
                model,
                processor,
                items[:4],
                batch_size=4,
                num_beams=3,
                max_new_tokens=8,
                progress=False,
                encoder_trim=path == "trimmed",
            )

            def dec(path=path):
                generate_frames(
                    model,
                    processor,
                    items,
                    batch_size=args.decode,
                    num_beams=3,
                    max_new_tokens=args.max_new_tokens,
                    progress=False,
                    encoder_trim=path == "trimmed",
                )

            t = timed(dec, 1, warmup=0, sync=sync)
            out[f"decode_{path}_utt_per_s"] = len(items) / t
    out["flop_estimate"] = estimate_trim_speedup()
    return out


@dataclass
class ThroughputBench:
    arch: str = field(default="full", metadata={"help": "model size", "choices": ("tiny", "mini", "full")})
    device: str = field(default="cuda", metadata={"help": "torch device"})
    dtype: str = field(default="bfloat16", metadata={"help": "weights' dtype", "choices": ("bfloat16", "float32")})
    n_layers: int | None = field(default=None, metadata={"help": "full arch with fewer layers (same widths)"})
    modes: str = field(default="full,lora", metadata={"help": "full and/or lora (lora last: it freezes the base)"})
    micro_batches: str = field(default="4,8,16", metadata={"help": "micro-batch sizes timed (comma list)"})
    repeats: int = field(default=3, metadata={"help": "timed steps per setting"})
    decode: int = field(default=16, metadata={"help": "utterances decoded with 3 beams (0: skip)"})
    max_new_tokens: int = field(default=48, metadata={"help": "generation cap"})
    peak_tflops: float = field(default=H200_BF16_TFLOPS, metadata={"help": "the card's dense peak, for MFU"})
    estimate: bool = field(default=False, metadata={"help": "only the FLOP estimate of the trim speed-up"})
    json: bool = field(default=False, metadata={"help": "print one compact JSON object"})


def main(argv=None) -> int:
    def bench(args: ThroughputBench) -> None:
        res = estimate_trim_speedup() if args.estimate else run(args)
        print(json.dumps(res) if args.json else json.dumps(res, indent=2))

    return run_cli(
        bench,
        ThroughputBench,
        argv=argv,
        prog="python -m benchmarks.gpu_throughput",
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
