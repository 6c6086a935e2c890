"""Models: batched beam-search decoding and SLURP prediction files (run: pytest tests/test_models_decode.py)."""

import json

import pytest

from data.frames import SLUFrame, parse_output
from models.decode import DecodeError, Prediction, generate_frames, write_predictions

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trained_tiny(tiny_overfit):
    """The tiny model after a short run on two examples, so its outputs are structured, not noise."""
    return tiny_overfit[:2]


def _items(examples):
    # mixed prompt lengths, with and without audio, one speech example decoded on the oracle text path
    return [(examples[0], True), (examples[1], False), (examples[2], True), (examples[3], False), (examples[2], False)]


@pytest.mark.parametrize("which", ["random", "trained"])
def test_each_item_decodes_the_same_alone_and_in_a_mixed_batch(which, tiny_model, trained_tiny, slu_examples):
    model, processor = tiny_model if which == "random" else trained_tiny
    items = _items(slu_examples)
    together = generate_frames(model, processor, items, batch_size=8, max_new_tokens=24, progress=False)
    alone = [generate_frames(model, processor, [item], max_new_tokens=24, progress=False)[0] for item in items]
    assert [p.id for p in together] == [ex.id for ex, _ in items]
    assert [p.text for p in together] == [p.text for p in alone]
    assert len({p.text for p in together}) > 1  # the inputs matter: not one constant output


def test_beams_and_length_bound_are_applied(trained_tiny, slu_examples):
    model, processor = trained_tiny
    items = _items(slu_examples)[:2]
    short = generate_frames(model, processor, items, num_beams=1, max_new_tokens=3, progress=False)
    tok = processor.tokenizer
    assert all(len(tok(p.text, add_special_tokens=False)["input_ids"]) <= 3 for p in short)
    greedy = generate_frames(model, processor, items, num_beams=1, max_new_tokens=24, progress=False)
    beams = generate_frames(model, processor, items, num_beams=3, max_new_tokens=24, progress=False)
    assert all(isinstance(p, Prediction) and p.parse == parse_output(p.text) for p in greedy + beams)
    with pytest.raises(DecodeError):
        generate_frames(model, processor, items, num_beams=0)


def test_oracle_text_path_decodes_gold_transcripts(trained_tiny, slu_examples):
    model, processor = trained_tiny
    # the trained examples, on the text path: the model learnt their targets
    preds = generate_frames(model, processor, [slu_examples[0].as_text(), slu_examples[3].as_text()], progress=False)
    assert [p.frame for p in preds] == [slu_examples[0].frame, slu_examples[3].frame]


def test_predictions_file_is_in_the_slurp_format(tmp_path):
    frames = [SLUFrame("alarm", "set", (("time", "five am"),)), SLUFrame("none", "none", ())]
    preds = [
        Prediction(id=f"audio-{i}.flac", text=f.to_target(), parse=parse_output(f.to_target()))
        for i, f in enumerate(frames)
    ]
    path = write_predictions(tmp_path / "out" / "predictions.jsonl", preds)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {
        "file": "audio-0.flac",
        "scenario": "alarm",
        "action": "set",
        "entities": [{"type": "time", "filler": "five am"}],
    }
    assert rows[1]["entities"] == [] and len(rows) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictions.jsonl"]  # no temporary files left
    by_text = write_predictions(tmp_path / "gold.jsonl", preds[:1], key="slurp_id")
    assert json.loads(by_text.read_text())["slurp_id"] == "audio-0.flac"
    with pytest.raises(DecodeError, match="key"):
        write_predictions(tmp_path / "bad.jsonl", preds, key="id")


def test_prefill_once_gives_the_same_beams_as_plain_generate(tiny_overfit, slu_examples):
    """Encoding each prompt once and copying its cache to the beams must not change a single token."""
    from models.decode import generate_frames

    model, processor, _, _ = tiny_overfit
    items = [(slu_examples[0], True), (slu_examples[1], False), (slu_examples[2], True), (slu_examples[3], False)]
    plain = generate_frames(
        model, processor, items, batch_size=4, num_beams=3, max_new_tokens=40, progress=False, prefill_once=False
    )
    once = generate_frames(
        model, processor, items, batch_size=4, num_beams=3, max_new_tokens=40, progress=False, prefill_once=True
    )
    assert [p.text for p in once] == [p.text for p in plain]
    assert [p.id for p in once] == [x.id for x, _ in items]  # input order kept despite length-sorted batches
