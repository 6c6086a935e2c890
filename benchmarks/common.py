"""Shared pieces of the speed benchmarks: model architectures by name, SLURP-like clips, timing.

Architectures (all the real ``Qwen2AudioForConditionalGeneration`` class, random weights, nothing downloaded):

* ``tiny``: the test twin (models/tiny.py, 0.5M parameters);
* ``mini``: the Mini-LALM size (models/mini.py, ~4M);
* ``full``: Qwen2-Audio-7B-Instruct's published architecture (a Whisper-large-v3-sized encoder: 32 layers, 1280 wide,
  20 heads, 5120 FFN, 128 mel bins; a Qwen-7B decoder: 32 layers, 4096 wide, 32 heads, 11008 FFN, 156,032-token
  vocabulary; 8.4B parameters), values from the checkpoint's config.json on the hub. The tokenizer is the tiny
  twin's (its ids are valid ids of the big vocabulary), which changes token counts a little, not the cost per token.
"""

from __future__ import annotations

import math
import time
from typing import Any

# Qwen2-Audio-7B-Instruct's config.json (audio_config / text_config), the fields that set the compute.
FULL_AUDIO = dict(
    num_mel_bins=128,
    d_model=1280,
    encoder_layers=32,
    encoder_attention_heads=20,
    encoder_ffn_dim=5120,
    max_source_positions=1500,
)
FULL_TEXT = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=156032,
    max_position_embeddings=8192,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
)


def slurp_like_seconds(n: int, seed: int = 0) -> list[float]:
    """Clip lengths shaped like SLURP's real recordings: log-normal around 2.7 s, within 1-10 s (mean ~3 s)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [float(x) for x in np.clip(np.exp(rng.normal(math.log(2.7), 0.45, n)), 1.0, 10.0)]


def build_arch(arch: str, device: str = "cpu", dtype: str = "float32", n_layers: int | None = None):
    """``(model, processor)`` of the named architecture with random weights on ``device``.

    ``n_layers`` (full only) keeps the widths but fewer layers in both towers, for quick checks on small GPUs.
    """
    import torch

    from models.tiny import build_processor, build_tiny

    torch_dtype = getattr(torch, dtype)
    if arch == "tiny":
        model, processor = build_tiny(seed=0)
        return model.to(device=device, dtype=torch_dtype), processor
    if arch == "mini":
        from models.mini import MiniSize

        model, processor = build_tiny(seed=0, size=MiniSize())
        return model.to(device=device, dtype=torch_dtype), processor
    if arch != "full":
        raise ValueError(f"unknown architecture {arch!r}: tiny, mini or full")
    from transformers import Qwen2AudioConfig, Qwen2AudioEncoderConfig, Qwen2AudioForConditionalGeneration, Qwen2Config

    processor = build_processor()
    tok = processor.tokenizer
    audio = dict(FULL_AUDIO)
    text = dict(FULL_TEXT)
    if n_layers:
        audio["encoder_layers"] = text["num_hidden_layers"] = n_layers
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(**audio),
        text_config=Qwen2Config(
            **text, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id
        ),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    config._attn_implementation = "sdpa"
    with torch.device(device):
        torch.set_default_dtype(torch_dtype)
        try:
            model = Qwen2AudioForConditionalGeneration(config)
        finally:
            torch.set_default_dtype(torch.float32)
    return model, processor


def examples(seconds: list[float | None], seed: int = 0):
    """SLU examples with noise clips of the given lengths (None = a text item), varied transcripts and frames."""
    import numpy as np

    from data.audio import to_wav_bytes
    from data.example import AudioRef, SLUExample
    from data.frames import SLUFrame

    phrases = [
        ("wake me up at five am tomorrow", SLUFrame("alarm", "set", (("time", "five am"), ("date", "tomorrow")))),
        (
            "what's the weather like in paris this weekend",
            SLUFrame("weather", "query", (("place_name", "paris"), ("date", "this weekend"))),
        ),
        ("turn off the lights in the kitchen", SLUFrame("iot", "hue_lightoff", (("house_place", "kitchen"),))),
        ("play some jazz", SLUFrame("play", "music", (("music_genre", "jazz"),))),
        (
            "email anna about the meeting",
            SLUFrame("email", "sendemail", (("person", "anna"), ("event_name", "meeting"))),
        ),
        ("tell me a joke", SLUFrame("general", "joke", ())),
    ]
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(seconds):
        text, frame = phrases[i % len(phrases)]
        audio = None
        if s:
            wave = (0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32)
            audio = AudioRef(data=to_wav_bytes(wave), duration_s=s)
        out.append(
            SLUExample(
                id=f"b{i}", corpus="bench", language="en-US", split="train", transcript=text, frame=frame, audio=audio
            )
        )
    return out


def timed(fn, repeats: int, warmup: int = 1, sync=None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def machine() -> dict[str, Any]:
    import os
    import platform

    import torch

    info = {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def print_result(res: dict, as_json: bool) -> None:
    """One JSON object (``--json``, what checks parse), or aligned ``key value`` lines for people."""
    import json

    if as_json:
        print(json.dumps(res))
        return
    for key, value in res.items():
        print(f"{key:36s} {value:.3f}" if isinstance(value, float) else f"{key:36s} {value}")
