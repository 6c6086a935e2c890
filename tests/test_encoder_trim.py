"""The trimmed encoder path (each batch at its longest clip) against transformers' stock 30 s path.

Tolerance: the two paths run the same operations on the same valid inputs, but matrix products of another shape
(3,000 versus ~300 frames) use other blocking and summation orders, so float32 results differ by rounding only.
Activations and gradients of the tiny model are of order 0.1-10; 1e-5 absolute (plus 1e-4 relative for gradients,
which are sums over a whole batch) is a few float32 ulps of those sums and far below any real change: a one-frame
shift of the positions or one unmasked padded frame moves these numbers by more than 1e-2 (the negative control).
"""

import copy

import pytest
import torch

from data.frames import SLUFrame
from models import encoder_trim
from models.collate import SLUCollator
from models.decode import generate_frames
from tests.fixtures_models import make_example

pytestmark = pytest.mark.usefixtures("single_thread")

ATOL = 1e-5


def _examples(seconds):
    frame = SLUFrame("alarm", "set", (("time", "five am"),))
    return [make_example(i, "wake me up at five am", frame, s, seed=7) for i, s in enumerate(seconds)]


def _capture_llm_inputs(model, batch):
    """The embeddings the LLM receives (text embeddings with the audio features scattered in), the loss, grads."""
    seen = {}
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.language_model

    def hook(_module, _args, kwargs):
        seen["embeds"] = kwargs["inputs_embeds"].detach().clone()

    handle = lm.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        model.zero_grad(set_to_none=True)
        out = model(**batch)
        out.loss.backward()
    finally:
        handle.remove()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return seen["embeds"], out.loss.detach(), grads


def _run(model, processor, examples, trim):
    if not trim:
        encoder_trim.uninstall()  # transformers' own forward, 3,000 frames
    try:
        batch = SLUCollator(processor, encoder_trim=trim)([(e, True) for e in examples])
        return batch["input_features"].shape[-1], _capture_llm_inputs(model, batch)
    finally:
        encoder_trim.install()


@pytest.mark.parametrize(
    "seconds",
    [(0.2,), (3.1,), (29.9,), (30.0,), (0.2, 2.7, 9.6), (0.2, 29.9), (1.0, 30.0)],
    ids=["0.2s", "3.1s", "29.9s", "30s", "mixed-short", "0.2s+29.9s", "1s+30s"],
)
def test_trimmed_path_matches_stock(tiny_model, seconds):
    model = copy.deepcopy(tiny_model[0]).train()
    model.config.audio_config.dropout = 0.0
    processor = tiny_model[1]
    examples = _examples(seconds)
    frames_stock, (emb_s, loss_s, grads_s) = _run(model, processor, examples, trim=False)
    frames_trim, (emb_t, loss_t, grads_t) = _run(model, processor, examples, trim=True)
    assert frames_stock == 3000
    longest_frames = int(max(seconds) * 100)
    assert frames_trim == min(3000, encoder_trim.trimmed_samples(int(max(seconds) * 16000)) // 160)
    assert frames_trim >= min(longest_frames, 3000)
    if max(seconds) < 29.0:
        assert frames_trim < 3000  # really trimmed
    assert emb_s.shape == emb_t.shape
    assert torch.allclose(emb_s, emb_t, atol=ATOL, rtol=0), (emb_s - emb_t).abs().max()
    assert torch.allclose(loss_s, loss_t, atol=ATOL, rtol=0)
    assert grads_s.keys() == grads_t.keys()
    audio_grads = [n for n in grads_s if "audio_tower" in n]
    assert audio_grads, "the audio encoder must receive gradients in this test"
    for name in grads_s:
        assert torch.allclose(grads_s[name], grads_t[name], atol=ATOL, rtol=1e-4), name


def test_negative_control_shifted_positions_are_detected(tiny_model):
    """If the trimmed path dropped the margin (the convolutions then see zero padding instead of the extractor's
    padded frames at the clip's end), the embeddings move by far more than the tolerance."""
    model, processor = tiny_model
    examples = _examples((1.0, 2.0))
    _, (emb_s, _, _) = _run(copy.deepcopy(model), processor, examples, trim=False)
    margin = encoder_trim.TRIM_MARGIN_SAMPLES
    try:
        encoder_trim.TRIM_MARGIN_SAMPLES = 0
        _, (emb_t, _, _) = _run(copy.deepcopy(model), processor, examples, trim=True)
    finally:
        encoder_trim.TRIM_MARGIN_SAMPLES = margin
    assert (emb_s - emb_t).abs().max() > 100 * ATOL


def test_decoded_outputs_identical(tiny_overfit):
    model, processor, _, _ = tiny_overfit
    examples = _examples((0.2, 1.5, 4.0))
    encoder_trim.uninstall()
    try:
        stock = generate_frames(
            model, processor, examples, batch_size=3, num_beams=3, max_new_tokens=24, progress=False, encoder_trim=False
        )
    finally:
        encoder_trim.install()
    trimmed = generate_frames(
        model, processor, examples, batch_size=3, num_beams=3, max_new_tokens=24, progress=False, encoder_trim=True
    )
    assert [p.text for p in stock] == [p.text for p in trimmed]


def test_trimmed_samples_rounding():
    assert encoder_trim.trimmed_samples(0) % 640 == 0
    for n in (1, 3200, 47_999, 160_000, 470_000):
        s = encoder_trim.trimmed_samples(n)
        assert s % 640 == 0 or s == 480_000
        assert s >= min(n + encoder_trim.TRIM_MARGIN_SAMPLES, 480_000)
    assert encoder_trim.trimmed_samples(478_400) == 480_000
    with pytest.raises(ValueError):
        encoder_trim.trimmed_samples(-1)


def test_bad_length_is_refused_with_a_clear_message(tiny_model):
    model, _ = tiny_model
    encoder_trim.install()
    with pytest.raises(ValueError, match="multiple of 4"):
        model.model.audio_tower(torch.zeros(1, 128, 1002))
    with pytest.raises(ValueError, match="at most 3000"):
        model.model.audio_tower(torch.zeros(1, 128, 3004))
