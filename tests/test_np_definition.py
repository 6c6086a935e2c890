"""N_p = round(p * N) has one definition (data.subsets.n_for_fraction); training, subsets and the planner agree."""

import pytest

from data.example import AudioRef, SLUExample
from data.frames import SLUFrame
from data.subsets import n_for_fraction, select_speech
from planner.curves import reference_curves
from training.schemes import speech_count

PAPER_LEVELS = (2, 5, 10, 25, 50, 100)  # Table 2's speech percents
PAPER_SIZES = (50_628, 11_514, 115)  # Table 1: SLURP train, ITALIC / Speech-MASSIVE FR train, few-shot target


def test_half_rounds_up_the_bug_of_the_issue():
    assert n_for_fraction(0.1, 45) == 5  # round(4.5) in Python is 4
    assert n_for_fraction(0.25, 11_514) == 2879  # 2878.5
    assert n_for_fraction(0.02, 50_628) == 1013
    assert n_for_fraction(0.0, 10) == 0 and n_for_fraction(1.0, 10) == 10


@pytest.mark.parametrize("size", PAPER_SIZES + (45, 1, 7))
def test_training_subsets_and_planner_agree(size):
    frame = SLUFrame("alarm", "set", ())
    speech = [
        SLUExample(f"s{i}", "toy", "en-US", "train", "x", frame, audio=AudioRef(path=f"/a/{i}.wav"))
        for i in range(size)
    ]
    for level in PAPER_LEVELS + (1, 3, 7, 15, 45, 75):
        p = level / 100
        expected = n_for_fraction(p, size)
        assert speech_count(p, size) == expected
        if size <= 11_514:
            assert len(select_speech(speech, fraction=p, seed=0)) == expected


def test_planner_reference_curves_use_the_same_counts():
    sizes = {"slurp": 50_628, "italic": 11_514, "speech-massive-fr": 11_514}
    seen = 0
    for curve in reference_curves():
        if curve.unit != "utterances":
            continue
        size = sizes[curve.group]
        for x in curve.x:
            if x == 0:
                continue
            assert any(n_for_fraction(level / 100, size) == x for level in PAPER_LEVELS), (curve.name, x)
            seen += 1
    assert seen >= 30
