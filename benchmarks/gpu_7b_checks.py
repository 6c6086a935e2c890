"""GPU checks for the 7B training path; prints one JSON object.

    python -m benchmarks.gpu_7b_checks --json            # CUDA: mid-size Qwen2-Audio + the GPU-marked tests (< 4 min)
    python -m benchmarks.gpu_7b_checks --tiny --json     # CPU: the same checks at the tiny twin's width (seconds)

1. Precision: a Qwen2-Audio with the 7B model's widths (4096-d decoder, 11008 FFN, 156,032-token vocabulary,
   1280-d encoder) but ``--text-layers``/``--audio-layers`` layers (default 2 + 2: about 1.7B parameters), random
   weights, trained for ``--steps`` AdamW steps at the paper's LR 5e-6 on random speech + text batches. Reported:
   the share of gradient-touched weights that moved with float32 master weights and bf16 autocast compute (what
   every training path now does: expected ~1.0) and, as the control, with pure bf16 weights (expected far below).
2. The project's GPU-marked tests (``pytest -m gpu tests``), summarised (skipped with ``--tiny`` or without CUDA).
3. The parameter count of the full Qwen2-Audio-7B (built on the meta device) and the checkpoint sizes it implies.

Needs torch, transformers 5.x, accelerate; no network, no weights, no deepspeed; nothing here imports audio I/O.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAPER_LR = 5e-6
FULL = dict(
    text_dim=4096,
    text_ffn=11008,
    text_heads=32,
    text_kv=32,
    vocab=156032,
    audio_dim=1280,
    audio_heads=20,
    audio_ffn=5120,
    text_layers=32,
    audio_layers=32,
)
TINY = dict(text_dim=64, text_ffn=256, text_heads=4, text_kv=2, vocab=1024, audio_dim=64, audio_heads=4, audio_ffn=256)
AUDIO_TOKEN_ID = 151646  # Qwen2-Audio's <|AUDIO|>; the tiny config puts it at the end of its small vocabulary
AUDIO_TOKENS_PER_CLIP = 750  # 3000 mel frames -> conv stride 2 -> avg-pool 2


def qwen2_audio_config(dims: dict, text_layers: int, audio_layers: int):
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2Config

    audio_token = AUDIO_TOKEN_ID if dims["vocab"] > AUDIO_TOKEN_ID else dims["vocab"] - 1
    return Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(
            num_mel_bins=128,
            d_model=dims["audio_dim"],
            encoder_layers=audio_layers,
            encoder_attention_heads=dims["audio_heads"],
            encoder_ffn_dim=dims["audio_ffn"],
            max_source_positions=1500,
        ),
        text_config=Qwen2Config(
            hidden_size=dims["text_dim"],
            intermediate_size=dims["text_ffn"],
            num_hidden_layers=text_layers,
            num_attention_heads=dims["text_heads"],
            num_key_value_heads=dims["text_kv"],
            vocab_size=dims["vocab"],
            max_position_embeddings=8192,
            tie_word_embeddings=False,
        ),
        audio_token_id=audio_token,
    )


def random_batches(config, *, n: int, batch: int, text_len: int, device, seed: int = 0) -> list[dict]:
    """Speech batches (one 30 s clip of random features per row, its 750 audio tokens in the prompt) and text."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    vocab = config.text_config.vocab_size
    audio_id = config.audio_token_id
    out = []
    for i in range(n):
        ids = torch.randint(0, min(vocab, audio_id) - 1, (batch, text_len), generator=gen)
        if i % 2 == 0:  # speech: text, audio tokens, text
            audio = torch.full((batch, AUDIO_TOKENS_PER_CLIP), audio_id)
            ids = torch.cat([ids[:, : text_len // 2], audio, ids[:, text_len // 2 :]], dim=1)
            labels = ids.masked_fill(ids == audio_id, -100)
            out.append(
                {
                    "input_ids": ids.to(device),
                    "attention_mask": torch.ones_like(ids).to(device),
                    "labels": labels.to(device),
                    "input_features": torch.randn(batch, 128, 3000, generator=gen).to(device),
                    "feature_attention_mask": torch.ones(batch, 3000, dtype=torch.long).to(device),
                }
            )
        else:
            out.append(
                {
                    "input_ids": ids.to(device),
                    "attention_mask": torch.ones_like(ids).to(device),
                    "labels": ids.clone().to(device),
                }
            )
    return out


def precision_check(*, tiny: bool, text_layers: int, audio_layers: int, steps: int, device) -> dict:
    import torch
    from transformers import Qwen2AudioForConditionalGeneration

    from training.parallel import adamw_fraction_moved

    dims = TINY if tiny else FULL
    config = qwen2_audio_config(dims, text_layers, audio_layers)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device(device):
        model = Qwen2AudioForConditionalGeneration(config)  # float32: the master weights
    model.model.audio_tower.embed_positions.weight.requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    batches = random_batches(config, n=2, batch=1 if not tiny else 2, text_len=64, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    master = adamw_fraction_moved(model, batches, lr=PAPER_LR, steps=steps, compute_dtype=torch.bfloat16)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    t_master = time.perf_counter() - t0
    model.to(torch.bfloat16)  # the control: what one GPU / DDP trained before (bf16 weights and AdamW state)
    t1 = time.perf_counter()
    pure = adamw_fraction_moved(model, batches, lr=PAPER_LR, steps=steps, compute_dtype=torch.bfloat16)
    t_pure = time.perf_counter() - t1
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "params": n_params,
        "text_layers": text_layers,
        "audio_layers": audio_layers,
        "steps": steps,
        "lr": PAPER_LR,
        "fraction_moved_fp32_master_bf16_compute": round(master, 6),
        "fraction_moved_pure_bf16_control": round(pure, 6),
        "ok": master > 0.99 and pure < 0.5,
        "seconds_fp32_master": round(t_master, 2),
        "seconds_pure_bf16": round(t_pure, 2),
        "peak_gib_fp32_master": round(peak, 2) if peak is not None else None,
    }


def full_size_footprint() -> dict:
    """Parameter count of the full Qwen2-Audio-7B (meta device: no memory) and the bytes it implies."""
    import torch
    from transformers import Qwen2AudioForConditionalGeneration

    with torch.device("meta"):
        model = Qwen2AudioForConditionalGeneration(qwen2_audio_config(FULL, FULL["text_layers"], FULL["audio_layers"]))
    n = sum(p.numel() for p in model.parameters())
    gb = 1e9
    return {
        "params": n,
        "bf16_weights_gb": round(2 * n / gb, 1),
        "fp32_master_gb": round(4 * n / gb, 1),
        "adam_states_gb": round(8 * n / gb, 1),
        "resumable_checkpoint_gb": round(12 * n / gb, 1),
        "training_state_bytes_per_param": 16,
    }


def gpu_tests(timeout_s: int) -> dict:
    # Only the files that hold GPU-marked tests: collecting the whole suite would import the app's and the
    # cluster's packages (gradio, submitit), which a bare GPU image may lack.
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "mark.gpu" in p.read_text(encoding="utf-8")
    )
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd[1:]), "timed_out": True, "seconds": timeout_s}
    tail = (done.stdout + done.stderr)[-2500:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail)}
    return {
        "command": "python " + " ".join(cmd[1:]),
        "returncode": done.returncode,
        **counts,
        "seconds": round(time.perf_counter() - t0, 1),
        "tail": tail[-1200:],
    }


@dataclass
class GpuChecks:
    json: bool = field(default=False, metadata={"help": "print only the JSON object"})
    tiny: bool = field(default=False, metadata={"help": "the tiny twin's widths, on CPU unless CUDA is present"})
    text_layers: int = field(default=2, metadata={"help": "language-model layers of the precision check"})
    audio_layers: int = field(default=2, metadata={"help": "audio-encoder layers of the precision check"})
    steps: int = field(default=3, metadata={"help": "optimizer steps of the precision check"})
    no_tests: bool = field(default=False, metadata={"help": "skip the GPU-marked tests"})
    tests_timeout: int = field(default=150, metadata={"help": "seconds the GPU-marked tests may take"})


def main(argv: list[str] | None = None) -> int:
    from data.cli import run_cli

    return run_cli(
        _checks, GpuChecks, argv=argv, prog="python benchmarks/gpu_7b_checks.py", description=__doc__.split("\n\n")[0]
    )


def _checks(args: GpuChecks) -> int:
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print("error: no CUDA device; run with --tiny for the CPU-sized check", file=sys.stderr)
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    result: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}
    import transformers

    result["transformers"] = transformers.__version__
    t0 = time.perf_counter()
    try:
        result["precision"] = precision_check(
            tiny=args.tiny,
            text_layers=args.text_layers,
            audio_layers=args.audio_layers,
            steps=args.steps,
            device=device,
        )
    except Exception as exc:  # noqa: BLE001 - report, then still run the tests
        result["precision"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    result["full_size_7b"] = full_size_footprint()
    if cuda and not args.tiny and not args.no_tests:
        result["gpu_tests"] = gpu_tests(args.tests_timeout)
    else:
        result["gpu_tests"] = {"skipped": "--tiny, --no-tests or no CUDA"}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    tests_ok = result["gpu_tests"].get("returncode", 0) == 0 and not result["gpu_tests"].get("timed_out")
    result["ok"] = bool(result["precision"].get("ok")) and tests_ok
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
