"""SpecAugment (training/specaugment.py): masks and warps only real audio, seeded, and leaves padding alone."""

import torch

from training.specaugment import SpecAugment, spec_augment


def _batch(lengths=(300, 120), n_mels=128, width=300):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(len(lengths), n_mels, width, generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        feats[i, :, n:] = -1.5  # padding value
    return feats, mask


def test_padding_is_untouched_and_the_input_is_not_modified():
    feats, mask = _batch()
    before = feats.clone()
    out = spec_augment(feats, mask, torch.Generator().manual_seed(1))
    assert torch.equal(feats, before)
    assert torch.equal(out[1, :, 120:], before[1, :, 120:])
    assert not torch.equal(out[1, :, :120], before[1, :, :120])


def test_same_seed_same_draw_other_seed_other_draw():
    feats, mask = _batch()
    a = spec_augment(feats, mask, torch.Generator().manual_seed(3))
    b = spec_augment(feats, mask, torch.Generator().manual_seed(3))
    c = spec_augment(feats, mask, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_masks_fill_whole_bands_and_spans_with_the_clip_mean():
    feats, mask = _batch(lengths=(300,))
    cfg = SpecAugment(warp=(1.0, 1.0), freq_masks=1, freq_width=20, time_masks=0)
    masked = 0
    for seed in range(20):
        out = spec_augment(feats, mask, torch.Generator().manual_seed(seed), cfg)
        changed = (out[0] != feats[0]).all(dim=1)  # a frequency mask changes every frame of its bins
        rows = changed.nonzero().flatten().tolist()
        assert rows == list(range(rows[0], rows[0] + len(rows))) if rows else True
        assert len(rows) <= 20
        if rows:
            masked += 1
            assert torch.allclose(out[0, rows[0]], torch.full((300,), float(feats[0].mean())), atol=1e-5)
    assert masked >= 15  # a band of width 0 is drawn now and then, not often
    cfg = SpecAugment(warp=(1.0, 1.0), freq_masks=0, time_masks=1, time_width=25, time_share=0.1)
    widths = set()
    for seed in range(30):
        out = spec_augment(feats, mask, torch.Generator().manual_seed(seed), cfg)
        cols = (out[0] != feats[0]).all(dim=0).nonzero().flatten().tolist()
        widths.add(len(cols))
        assert len(cols) <= 25
    assert max(widths) > 10  # spans are drawn up to the cap


def test_frequency_warp_moves_energy_along_the_mel_axis():
    feats = torch.zeros(1, 128, 50)
    feats[0, 60, :] = 1.0  # one bright band at bin 60
    mask = torch.ones(1, 50, dtype=torch.long)
    cfg = SpecAugment(warp=(1.1, 1.1), freq_masks=0, time_masks=0)
    out = spec_augment(feats, mask, torch.Generator().manual_seed(0), cfg)
    peak = int(out[0, :, 0].argmax())
    assert peak == 66  # bin i takes the value of bin i / 1.1: the band moves up by 10%
    cfg = SpecAugment(warp=(0.9, 0.9), freq_masks=0, time_masks=0)
    assert int(spec_augment(feats, mask, torch.Generator().manual_seed(0), cfg)[0, :, 0].argmax()) == 54
