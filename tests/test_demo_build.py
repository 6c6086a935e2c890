"""A scaled-down run of the demo builder (python -m training.demo): every stage, end to end, on a tiny corpus."""

import json
import shutil

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None,
    reason="needs espeak-ng and flite (apt-get install espeak-ng flite)",
)
def test_demo_build_scaled_down(tmp_path):
    from models.demo_assets import demo_clips, demo_runs
    from models.loading import load_model
    from training.demo import DemoConfig, build

    cfg = DemoConfig(
        work=str(tmp_path / "work"),
        export=str(tmp_path / "demo"),
        scale=0.03,
        size="tiny",
        pretrain_epochs=1,
        schemes="text,curriculum",
        speech_percent="50",
        seeds="1",
        parallel=2,  # the cells run as processes, two at a time (training.sweep --executor local)
        epochs=1,
        quick=True,
        n_clips=2,
    )
    out = build(cfg)
    runs = demo_runs(out)
    assert [r.name for r in runs] == ["best", "text-only", "low-speech"]
    for run in runs:
        model, processor = load_model(run / "model", device="cpu")
        assert next(model.parameters()).dtype.is_floating_point
        assert model.config.slu_target == cfg.slu_target == "transcript+frame"  # the default layout reaches the app
        config = json.loads((run / "config.json").read_text())
        assert config  # the run's settings travel with the checkpoint
        metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
        assert 0.0 <= metrics["slu_f1"] <= 1.0 and metrics["per_speaker"]
        # test speech comes only from held-out voices: none of them spoke a training clip
    text_cfg = json.loads((out / "runs" / "text-only" / "config.json").read_text())
    assert "text" in json.dumps(text_cfg)
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == {"best", "text-only", "low-speech"}
    voices = scores["best"]["test"]["per_voice"]  # per voice, the rate/pitch of each recording dropped
    assert voices and not any("@" in v for v in voices)
    # the best checkpoint is also scored on the test clips' gold transcripts (the text side's ceiling), and every
    # set is split into utterances with and without slots
    assert {"test", "novel", "test-oracle"} <= set(scores["best"])
    assert "test-oracle" not in scores["text-only"]
    slots = scores["best"]["test"]["per_slots"]
    assert set(slots) <= {"no_slots", "with_slots"} and sum(m["n"] for m in slots.values()) == sum(
        m["n"] for m in voices.values()
    )
    assert "| best | " in (out / "SCORES.md").read_text() and "test-oracle" in (out / "SCORES.md").read_text()
    assert (out / "results.csv").is_file() and (out / "report.md").is_file()
    build_info = json.loads((out / "build.json").read_text())
    assert set(build_info["stage_seconds"]) == {"corpus_s", "alignment_s", "sweep_s", "export_s"}
    for clip in demo_clips(out):
        assert clip["transcript"] and (tmp_path / "demo" / "examples" / clip["audio"]).is_file()
    # a second build finds every stage done and only re-exports
    again = build(cfg)
    assert again == out


def test_the_build_estimates_its_time_from_the_grid_it_will_run(tmp_path, capsys):
    from training.demo import DemoConfig, estimate_seconds, print_estimate

    base = DemoConfig()
    est = estimate_seconds(base, n_clips=4000, n_texts=4400, n_test=560, n_recordings=5000)
    longer = estimate_seconds(DemoConfig(epochs=6), 4000, 4400, 560, 5000)
    serial = estimate_seconds(DemoConfig(parallel=1), 4000, 4400, 560, 5000)
    no_full = estimate_seconds(DemoConfig(speech_percent="2,10"), 4000, 4400, 560, 5000)
    assert 1.6 < longer["sweep_s"] / est["sweep_s"] < 2.0  # training doubles, the test-set decoding does not
    assert serial["sweep_s"] == pytest.approx(2 * est["sweep_s"])  # one cell at a time instead of two
    assert no_full["sweep_s"] < 0.7 * est["sweep_s"]  # the 100% cells are the dearest
    assert longer["alignment_s"] == est["alignment_s"] and est["alignment_s"] > 0
    heard = estimate_seconds(base, 4000, 4400, 560, 5000, n_align=4000)  # alignment-only clips: alignment only
    assert heard["alignment_s"] == pytest.approx(2 * est["alignment_s"]) and heard["sweep_s"] == est["sweep_s"]
    empty = estimate_seconds(DemoConfig(schemes="direct", speech_percent="0"), 4000, 4400, 560, 5000)
    assert empty["sweep_s"] >= 0  # a grid with no cell: no division by zero
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.jsonl").write_text("")
    print_estimate(DemoConfig(scale=0.05), tmp_path)
    line = capsys.readouterr().out
    assert "corpus" in line and "(done)" in line.split("alignment")[0] and "(done)" not in line.split("alignment")[1]
