"""SpecAugment for log-mel input features, with a vocal-tract-length style frequency warp.

Applied to a training batch's ``input_features`` (batch, mel bins, frames) before the encoder, only where
``feature_attention_mask`` marks real audio (padding stays padding, so the trimmed encoder path is unchanged):

* frequency warp: each clip's mel axis is stretched or squeezed by a factor drawn from ``warp`` (linear
  interpolation between bins); a crude stand-in for another speaker's vocal tract length, which is what separates
  the held-out voices from the training ones;
* frequency masks: ``freq_masks`` bands of up to ``freq_width`` bins set to the clip's mean;
* time masks: ``time_masks`` spans of up to ``time_share`` of the clip (at most ``time_width`` frames) set to the
  clip's mean.

Park et al., "SpecAugment: A Simple Data Augmentation Method for Automatic Speech Recognition", Interspeech 2019;
Jaitly and Hinton, "Vocal Tract Length Perturbation (VTLP) improves speech recognition", ICML workshop 2013.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpecAugment:
    warp: tuple[float, float] = (0.9, 1.1)
    freq_masks: int = 2
    freq_width: int = 12
    time_masks: int = 2
    time_width: int = 25
    time_share: float = 0.1


def spec_augment(features, feature_attention_mask, generator, cfg: SpecAugment = SpecAugment()):
    """A new tensor: ``features`` warped and masked per clip; the draw comes from ``generator`` (a CPU
    torch.Generator), so the same seed gives the same masks on any device."""
    import torch

    x = features.clone()
    n_mels = x.shape[1]
    lengths = feature_attention_mask.sum(-1).long()
    bins = torch.arange(n_mels, dtype=torch.float32, device=x.device)
    for i in range(x.shape[0]):
        length = int(lengths[i])
        if length == 0:
            continue
        clip = x[i, :, :length].float()
        lo, hi = cfg.warp
        if hi > lo or lo != 1.0:
            alpha = lo + (hi - lo) * float(torch.rand((), generator=generator))
            src = (bins / alpha).clamp(max=n_mels - 1)
            below = src.floor().long()
            above = (below + 1).clamp(max=n_mels - 1)
            frac = (src - below)[:, None]
            clip = clip[below] * (1 - frac) + clip[above] * frac
        fill = clip.mean()
        for _ in range(cfg.freq_masks):
            width = int(torch.randint(0, cfg.freq_width + 1, (), generator=generator))
            start = int(torch.randint(0, max(n_mels - width, 0) + 1, (), generator=generator))
            clip[start : start + width, :] = fill
        max_t = min(cfg.time_width, int(cfg.time_share * length))
        for _ in range(cfg.time_masks):
            width = int(torch.randint(0, max_t + 1, (), generator=generator))
            start = int(torch.randint(0, max(length - width, 0) + 1, (), generator=generator))
            clip[:, start : start + width] = fill
        x[i, :, :length] = clip.to(x.dtype)
    return x
