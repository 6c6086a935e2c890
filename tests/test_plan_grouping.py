"""Length-grouped epoch order (training.plan.group_by_length): same items, one modality per batch, speech sorted by
clip length within megabatches, a pure function of (seed, epoch) so a resumed run rebuilds the same batches."""

from data.example import AudioRef, SLUExample
from data.frames import SLUFrame
from training.plan import epoch_items, group_by_length


def _items(n_text=37, n_speech=53):
    frame = SLUFrame("alarm", "set", ())
    texts = [SLUExample(f"t{i}", "toy", "en-US", "train", f"text {i}", frame) for i in range(n_text)]
    speech = [
        SLUExample(
            f"s{i}",
            "toy",
            "en-US",
            "train",
            f"speech {i}",
            frame,
            audio=AudioRef(path=f"/x/{i}.wav", duration_s=1.0 + (i * 7919 % 97) / 10),
        )
        for i in range(n_speech)
    ]
    return epoch_items(texts, speech, n_speech, seed=3, epoch=0)


def test_grouping_is_a_permutation_with_homogeneous_batches():
    items = _items()
    out = group_by_length(items, 8, seed=3, epoch=0, megabatch=4)
    assert sorted(x.id for x, _ in out) == sorted(x.id for x, _ in items)
    full = [out[i : i + 8] for i in range(0, len(out) - len(out) % 8, 8)]
    mixed = [b for b in full if len({use for _, use in b}) > 1]
    assert len(mixed) <= 1  # only where the two partial batches meet at the end
    speech_batches = [b for b in full if all(use for _, use in b)]
    assert speech_batches
    for b in speech_batches:  # sorted (descending) inside each batch
        d = [x.audio.duration_s for x, _ in b]
        assert d == sorted(d, reverse=True)


def test_grouping_reduces_padding_against_plain_order():
    items = _items(n_text=0, n_speech=160)

    def padded_seconds(order):
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        return sum(len(b) * max(x.audio.duration_s for x, _ in b) for b in batches)

    grouped = group_by_length(items, 8, seed=3, epoch=0)
    assert padded_seconds(grouped) < 0.8 * padded_seconds(items)


def test_grouping_is_seeded_and_resumable():
    items = _items()
    a = group_by_length(items, 8, seed=3, epoch=1)
    b = group_by_length(list(items), 8, seed=3, epoch=1)
    assert [x.id for x, _ in a] == [x.id for x, _ in b]
    c = group_by_length(items, 8, seed=3, epoch=2)
    assert [x.id for x, _ in a] != [x.id for x, _ in c]
