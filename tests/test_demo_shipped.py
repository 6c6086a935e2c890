"""The shipped demo (demo/, made by python -m training.demo): its checkpoints load and the best one parses the
example clips the app offers, which were spoken by voices no model was trained on."""

import json

import pytest

from models.demo_assets import DEMO_DIR, DEMO_RUNS, demo_clips, demo_runs

pytestmark = pytest.mark.skipif(not (DEMO_DIR / "runs").is_dir(), reason="demo/ is not in this checkout")


def test_every_demo_run_is_there_with_its_scores():
    assert [r.name for r in demo_runs()] == list(DEMO_RUNS)
    scores = json.loads((DEMO_DIR / "scores.json").read_text())
    # the best checkpoint beats the text-only one on held-out voices (the figures the README quotes)
    assert scores["best"]["test"]["slu_f1"] > scores["text-only"]["test"]["slu_f1"]


def test_best_demo_checkpoint_parses_the_example_clips(tmp_path):
    from training.evaluate import evaluate_on_manifest

    clips = demo_clips()
    assert len(clips) >= 4
    res = evaluate_on_manifest(
        "demo", DEMO_DIR / "examples" / "manifest.jsonl", "test", out=tmp_path, num_beams=3, progress=False
    )
    # the export picked clips the exported best model parsed exactly; decoding them again must agree
    assert res["intent_accuracy"] == 1.0 and res["n_invalid"] == 0
    assert res["slu_f1"] > 0.9
