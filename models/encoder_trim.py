"""Encode each batch at the length of its longest clip instead of Whisper's fixed 30 s window.

Qwen2-Audio's encoder (a Whisper encoder) is fed 3,000 mel frames per clip whatever the clip's length, and its stock
``forward`` refuses anything else. Padded frames are masked out of the encoder's self-attention and its positions are
absolute (frame ``t`` always gets position ``t``), so a batch whose longest clip covers ``n`` frames can be encoded
on the first ``L >= n`` frames only: every valid output frame sees the same inputs, the same positions and the same
(valid) attention keys as in the 30 s window. The LLM receives the same audio embeddings.

Two things make that exact rather than approximate:

* the two input convolutions (kernel 3; the second with stride 2) read one frame past a clip's end, and the STFT
  window reads 200 samples past it, so the window keeps ``TRIM_MARGIN_SAMPLES`` of zero padding beyond the longest
  clip (the stock path has zeros there too);
* ``L`` is a multiple of 4 frames (conv stride 2, then average pooling by 2), so every pooled output frame is whole.

The remaining differences are float rounding from matrix products of another shape (different blocking and
reduction order); the tests bound them at 1e-5 absolute on float32 activations of order 1 (a few ulps of the
accumulated sums), see tests/test_encoder_trim.py.

``install()`` relaxes ``Qwen2AudioEncoder.forward`` once per process, class-wide: an input of exactly 3,000 frames
runs the same operations as the stock code, a shorter one (a multiple of 4) uses the first ``L/2`` positions. It is
called by the collator's module, so any process that builds batches with trimmed features can also encode them.
``trimmed_samples`` says how many samples the feature extractor should pad a batch to.
"""

from __future__ import annotations

import inspect
import math
import threading

HOP_LENGTH = 160  # Whisper's STFT hop (10 ms at 16 kHz): one mel frame per hop
N_SAMPLES_30S = 480_000  # Whisper's window: 30 s at 16 kHz = 3,000 frames
FRAME_MULTIPLE = 4  # conv2 stride 2 x average pooling 2
# Zero padding kept after the longest clip: the STFT's half window (200 samples) plus the convolutions' reach
# (one frame for conv1, one more for conv2), rounded up generously to 8 frames.
TRIM_MARGIN_SAMPLES = 8 * HOP_LENGTH

_lock = threading.Lock()
_installed = False


def trimmed_samples(longest_samples: int) -> int:
    """Samples to pad a batch to: the longest clip plus the margin, rounded up to whole groups of 4 frames, at most
    30 s (a clip of 29.9 s or more simply gets the stock window)."""
    if longest_samples < 0:
        raise ValueError(f"clip length must be >= 0 samples, got {longest_samples}")
    unit = HOP_LENGTH * FRAME_MULTIPLE
    wanted = math.ceil((longest_samples + TRIM_MARGIN_SAMPLES) / unit) * unit
    return min(wanted, N_SAMPLES_30S)


def _forward_any_length(self, input_features, attention_mask=None, **kwargs):
    """Qwen2AudioEncoder.forward for inputs of up to 3,000 frames (a multiple of 4), positions sliced to fit."""
    import torch
    from torch import nn
    from transformers.modeling_outputs import BaseModelOutput

    full = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
    frames = input_features.shape[-1]
    if frames > full or frames % FRAME_MULTIPLE:
        raise ValueError(
            f"Qwen2-Audio's encoder takes at most {full} mel frames in a multiple of {FRAME_MULTIPLE}, got {frames}: "
            "build batches with models.collate.SLUCollator (it pads to a valid length)"
        )
    input_features = input_features.to(dtype=self.conv1.weight.dtype, device=self.conv1.weight.device)
    hidden = nn.functional.gelu(self.conv1(input_features))
    hidden = nn.functional.gelu(self.conv2(hidden))
    hidden = hidden.permute(0, 2, 1)
    hidden = hidden + self.embed_positions.weight[: hidden.shape[1]]
    hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
    for layer in self.layers:
        if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
            continue  # LayerDrop, as in the stock encoder
        if _layer_wants_head_mask(layer):  # transformers 4.x signature
            out = layer(hidden, attention_mask, layer_head_mask=None)
            hidden = out[0] if isinstance(out, tuple) else out
        else:
            hidden = layer(hidden, attention_mask, **kwargs)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    hidden = self.avg_pooler(hidden.permute(0, 2, 1)).permute(0, 2, 1)
    hidden = self.layer_norm(hidden)
    return BaseModelOutput(last_hidden_state=hidden)


_head_mask_cache: dict[type, bool] = {}


def _layer_wants_head_mask(layer) -> bool:
    cls = type(layer)
    if cls not in _head_mask_cache:
        _head_mask_cache[cls] = "layer_head_mask" in inspect.signature(cls.forward).parameters
    return _head_mask_cache[cls]


def install() -> None:
    """Let ``Qwen2AudioEncoder`` take inputs shorter than 30 s (idempotent, thread-safe, class-wide)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        from transformers.models.qwen2_audio import modeling_qwen2_audio as qa

        qa.Qwen2AudioEncoder._stock_forward = qa.Qwen2AudioEncoder.forward
        qa.Qwen2AudioEncoder.forward = _forward_any_length
        _installed = True


def uninstall() -> None:
    """Restore transformers' own forward (for tests that compare against it)."""
    global _installed
    with _lock:
        if not _installed:
            return
        from transformers.models.qwen2_audio import modeling_qwen2_audio as qa

        qa.Qwen2AudioEncoder.forward = qa.Qwen2AudioEncoder._stock_forward
        _installed = False
