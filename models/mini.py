"""Mini-LALM: a small Qwen2-Audio (same classes as the 7B model) sized to learn on 2 CPU cores.

The test twin (models/tiny.py) is 0.5M parameters with a 1,024-token BPE trained on a fixed text; the mini model is
~4M parameters and its BPE is trained on the corpus it will learn (transcripts, the JSON targets of the training
split and the prompts), so words of the domain are single tokens and sequences stay short.

Sizes (chosen by measurement on this project's 2-core CI machine, benchmarks/BENCHMARKS.md): a 3-layer, 192-wide
Whisper-style encoder and a 3-layer, 192-wide Qwen2 decoder. A speech batch of 16 clips of 1.5-4 s takes ~0.8 s
for a training step, a text batch ~0.3 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from models.tiny import TinySize, build_processor, build_tiny, build_tokenizer


@dataclass(frozen=True)
class MiniSize(TinySize):
    """The twin's dimensions at Mini-LALM size, plus the size of the corpus-trained BPE."""

    audio_dim: int = 192
    audio_layers: int = 3
    text_dim: int = 192
    text_layers: int = 3
    ffn_dim: int = 768
    vocab_size: int = 1536


def tokenizer_texts(transcripts: Iterable[str], targets: Iterable[str], prompts: Iterable[str]) -> list[str]:
    """What the mini BPE learns from: the prompts (repeated, they are in every example), targets and transcripts."""
    prompts = list(prompts)
    return prompts * 20 + list(targets) + list(transcripts)


def build_mini(texts: list[str], size: MiniSize = MiniSize(), seed: int = 0):
    """``(model, processor)``: a randomly initialised mini Qwen2-Audio with a BPE trained on ``texts``."""
    processor = build_processor(build_tokenizer(texts, vocab_size=size.vocab_size))
    return build_tiny(seed=seed, size=size, processor=processor)
