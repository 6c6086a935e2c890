"""Cross-lingual recipes (Choi et al., section 3.4, Table 3) on the tiny model and the synthetic en+fr corpus.

English is the source language, French the target: the target's few-shot data is its ``dev`` split (a handful of
transcripts and recordings, standing in for Speech-MASSIVE's train_115), and a MASSIVE-format jsonl made from French
training transcripts stands in for MASSIVE text. Each recipe trains one short epoch; the tests read back what the
epochs fed the model (``config.json`` ``epoch_counts``, computed from the very items trained on), the per-language
evaluations and the results rows. Validation of the "No Source" switch needs no training.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from data.cli import from_mapping, parse_config
from training.config import ConfigError, TrainConfig

SOURCE, TARGET = "en-US", "fr-FR"


def xl_config(corpus_dir: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        output_dir=str(out),
        model="tiny",
        corpus="manifest",
        corpus_args={"path": str(corpus_dir / "manifest.jsonl")},
        language=SOURCE,
        limit_train_texts=4,
        recipe="T+S",
        target_languages=[TARGET],
        target_split="dev",
        scheme="direct",
        n_speech=2,
        epochs=1,
        peak_lr=5e-3,
        final_peak_lr=3e-3,
        per_device_batch_size=4,
        grad_accum_steps=1,
        eval_splits=["test"],
        eval_max_examples=2,
        num_beams=1,
        max_new_tokens=8,
        eval_batch_size=4,
        save_every_steps=0,
        log_every_steps=1,
        seed=1,
    )
    values.update(overrides)
    return from_mapping(TrainConfig, values)  # flat option names: still accepted


def _corpus(corpus_dir: Path):
    from data.corpus import load_corpus

    return load_corpus("manifest", path=str(corpus_dir / "manifest.jsonl"))


def _annotate(transcript: str, frame) -> str:
    """MASSIVE's bracket annotation of a transcript from its frame (entities whose filler occurs in it)."""
    out = transcript
    for ent in frame.entities:
        if ent.filler in out:
            out = out.replace(ent.filler, f"[{ent.type} : {ent.filler}]", 1)
    return out


@pytest.fixture(scope="module")
def massive_dir(synth_corpus_dir, tmp_path_factory) -> Path:
    """A MASSIVE-release-style folder (``fr-FR.jsonl``) of 5 French training transcripts: text only."""
    fr_train = _corpus(synth_corpus_dir).language(TARGET).split("train").texts[:5]
    out = tmp_path_factory.mktemp("massive")
    rows = [
        {
            "id": f"m{i}",
            "locale": TARGET,
            "partition": "train",
            "scenario": x.frame.scenario,
            "intent": f"{x.frame.scenario}_{x.frame.action}",
            "utt": x.transcript,
            "annot_utt": _annotate(x.transcript, x.frame),
        }
        for i, x in enumerate(fr_train)
    ]
    (out / "fr-FR.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def _expected(corpus_dir: Path, recipe: str, no_source: bool, n_massive: int, n_speech: int = 2) -> dict[str, int]:
    """What one direct epoch must hold, from the corpus itself: the recipe's definition, not a recorded run."""
    fr_dev = _corpus(corpus_dir).language(TARGET).split("dev")
    with_source = not no_source
    return {
        "source_text": 4 if with_source else 0,  # limit_train_texts
        "source_speech": n_speech if with_source else 0,
        "target_text": len(fr_dev.texts) if recipe != "zero" else 0,
        "target_speech": len(fr_dev.speech) if "+S" in recipe else 0,
        "target_massive_text": n_massive if "M" in recipe else 0,
    }


RECIPE_CASES = [("zero", False), ("T", False), ("T+S", False), ("T+M", False), ("T+S+M", False), ("T+S", True)]
TRAINED_CASES = [("zero", False), ("T+S+M", False), ("T+S", True)]  # each audio step costs seconds on 2 cores


def _recipe_overrides(recipe: str, no_source: bool, massive_dir: Path) -> dict:
    extra: dict = {"recipe": recipe}
    if "M" in recipe:
        extra["massive_args"] = {"path": str(massive_dir)}
    if no_source:
        extra.update(no_source=True, n_speech=-1, speech_percent=0.0)
    return extra


@pytest.mark.parametrize("recipe,no_source", RECIPE_CASES)
def test_every_recipe_plans_the_data_it_names(synth_corpus_dir, massive_dir, tmp_path, recipe, no_source):
    """The loop's own data path (load_run_data -> phases -> epoch items), without training: fast, every recipe."""
    from training.plan import epoch_counts, epoch_items, plan_epochs
    from training.schemes import build_phases
    from training.sources import load_run_data

    cfg = xl_config(synth_corpus_dir, tmp_path / "r", **_recipe_overrides(recipe, no_source, massive_dir))
    data = load_run_data(cfg)
    (epoch,) = plan_epochs(build_phases(cfg.scheme, len(data.speech), cfg.schedule))
    items = epoch_items(data.texts, data.speech, epoch.phase.speech_per_epoch, seed=cfg.seed, epoch=0)
    assert epoch_counts(items, cfg.target_languages) == _expected(synth_corpus_dir, recipe, no_source, n_massive=5)
    assert [es.language for es in data.evals["test"]] == [TARGET]


@pytest.fixture(scope="module")
def recipe_runs(synth_corpus_dir, massive_dir, tmp_path_factory):
    from training.loop import run

    root = tmp_path_factory.mktemp("xl_runs")
    runs = {}
    for recipe, no_source in TRAINED_CASES:
        name = recipe.replace("+", "") + ("-nosource" if no_source else "")
        extra = _recipe_overrides(recipe, no_source, massive_dir)
        if recipe == "zero":  # source transcripts only: the cheapest run, and still no target data
            extra.update(scheme="text", n_speech=0)
        result = run(xl_config(synth_corpus_dir, root / name, **extra))
        assert not result["stopped"]
        runs[(recipe, no_source)] = root / name
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("recipe,no_source", TRAINED_CASES)
def test_trained_recipe_feeds_what_it_names_and_scores_the_target(recipe_runs, synth_corpus_dir, recipe, no_source):
    run_dir = recipe_runs[(recipe, no_source)]
    meta = json.loads((run_dir / "config.json").read_text())
    expected = _expected(synth_corpus_dir, recipe, no_source, n_massive=5, n_speech=0 if recipe == "zero" else 2)
    assert meta["epoch_counts"] == [expected]
    if recipe == "zero":  # zero-shot: not one target item, as text or speech
        assert all(v == 0 for k, v in meta["epoch_counts"][0].items() if k.startswith("target"))

    # The model really trained on that epoch: one optimizer step per 4 items, each logged with a finite loss.
    with open(run_dir / "curves.csv", newline="") as fh:
        train_rows = [r for r in csv.DictReader(fh) if r["kind"] == "train"]
    assert len(train_rows) == math.ceil(sum(expected.values()) / 4)
    assert all(math.isfinite(float(r["loss"])) for r in train_rows)

    # Evaluated on the target language's recordings, in its own folder, with a results row naming the recipe.
    fr_test = {x.id for x in _corpus(synth_corpus_dir).language(TARGET).split("test").speech}
    metrics = json.loads((run_dir / "eval" / f"test-{TARGET}" / "metrics.json").read_text())
    assert metrics["language"] == TARGET and metrics["n_scored"] == len(fr_test)
    preds = [
        json.loads(line)
        for line in (run_dir / "eval" / f"test-{TARGET}" / "predictions.jsonl").read_text().splitlines()
    ]
    assert {Path(p["file"]).stem for p in preds} == {Path(i).stem for i in fr_test}

    from evaluation.results import read_results

    rows = [r for r in read_results(run_dir.parent / "results.csv") if r["run_dir"] == run_dir.name]
    assert len(rows) == 1
    row = rows[0]
    scheme = "text" if recipe == "zero" else "direct"
    assert (row["recipe"], row["language"], row["split"], row["scheme"]) == (recipe, TARGET, "test", scheme)
    assert row["source_language"] == ("" if no_source else SOURCE)  # empty = the "No Source" row
    assert row["n_scored"] == len(fr_test)


@pytest.mark.slow
def test_each_target_language_is_evaluated_separately(tmp_path_factory):
    """Two target languages (fr, de): one eval folder and one results row each, scored on that language only."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from data.synth import SynthConfig, synthesize
    from training.loop import run

    corpus_dir = tmp_path_factory.mktemp("synth3")
    synthesize(SynthConfig(out=str(corpus_dir), languages="en,fr,de", per_intent=1, seed=0, workers=2))
    corpus = _corpus(corpus_dir)
    targets = ["fr-FR", "de-DE"]
    cfg = xl_config(
        corpus_dir,
        tmp_path_factory.mktemp("xl2") / "run",
        recipe="T",
        target_languages=targets,
        target_split="train",
        scheme="text",
        n_speech=0,
    )  # text steps only: evaluation is the point
    run(cfg)
    run_dir = Path(cfg.output_dir)
    meta = json.loads((run_dir / "config.json").read_text())
    n_target_texts = sum(len(corpus.language(t).split("train").texts) for t in targets)
    assert meta["epoch_counts"][0]["target_text"] == n_target_texts
    from evaluation.results import read_results

    rows = read_results(run_dir.parent / "results.csv")
    assert sorted(r["language"] for r in rows) == sorted(targets)
    assert all(r["recipe"] == "T" and r["source_language"] == SOURCE for r in rows)
    for lang in targets:
        metrics = json.loads((run_dir / "eval" / f"test-{lang}" / "metrics.json").read_text())
        test_ids = {x.id for x in corpus.language(lang).split("test").speech}
        preds = [
            json.loads(line)
            for line in (run_dir / "eval" / f"test-{lang}" / "predictions.jsonl").read_text().splitlines()
        ]
        assert metrics["language"] == lang and metrics["n_scored"] == len(test_ids)
        assert {Path(p["file"]).stem for p in preds} == {Path(i).stem for i in test_ids}
        row = next(r for r in rows if r["language"] == lang)
        assert row["n_scored"] == len(test_ids)


def test_curriculum_recipe_keeps_all_speech_out_of_the_early_epochs(synth_corpus_dir, tmp_path):
    """T+S with curriculum: source and target speech both wait for the last epoch (no training needed)."""
    from training.plan import epoch_counts, epoch_items, plan_epochs
    from training.schemes import build_phases, total_speech
    from training.sources import load_run_data

    cfg = xl_config(synth_corpus_dir, tmp_path / "r", scheme="curriculum", epochs=3)
    data = load_run_data(cfg)
    phases = build_phases(cfg.scheme, len(data.speech), cfg.schedule)
    counts = [
        epoch_counts(
            epoch_items(data.texts, data.speech, e.phase.speech_per_epoch, seed=1, epoch=e.global_epoch),
            cfg.target_languages,
        )
        for e in plan_epochs(phases)
    ]
    n_fr = len(_corpus(synth_corpus_dir).language(TARGET).split("dev").speech)
    assert [c["source_speech"] + c["target_speech"] for c in counts[:-1]] == [0, 0]
    assert counts[-1]["source_speech"] == 2 * 3 and counts[-1]["target_speech"] == n_fr * 3  # N_p x E
    assert total_speech(phases) == total_speech(build_phases("direct", len(data.speech), cfg.schedule))
    assert all(c["source_text"] == 4 and c["target_text"] == n_fr for c in counts)  # every epoch: all transcripts


def test_no_source_switch_is_a_flag_and_is_validated(synth_corpus_dir, tmp_path):
    cfg = parse_config(TrainConfig, ["--recipe", "T", "--target_languages", TARGET, "--no_source", "--output_dir", "x"])
    assert cfg.no_source is True and cfg.target_languages == [TARGET]
    with pytest.raises(ConfigError, match="--no_source"):
        TrainConfig(recipe="zero", target_languages=[TARGET], no_source=True)  # would train on nothing
    with pytest.raises(ConfigError, match="--no_source"):
        TrainConfig(recipe="mono", no_source=True)
    with pytest.raises(ConfigError, match="--speech_percent 0"):
        TrainConfig(recipe="T+S", target_languages=[TARGET], no_source=True, speech_percent=10)

    from training.sources import load_run_data

    data = load_run_data(xl_config(synth_corpus_dir, tmp_path / "r", recipe="T", no_source=True, n_speech=-1))
    assert data.texts and {x.language for x in data.texts} == {TARGET} and not data.speech
    assert data.source_language == "" and data.n_speech_source == 0


def test_cross_lingual_setups_that_cannot_work_fail_clearly(synth_corpus_dir, massive_dir, tmp_path):
    from training.sources import load_run_data

    with pytest.raises(ConfigError, match="--language"):  # source left as en+fr: the target would be trained on
        load_run_data(xl_config(synth_corpus_dir, tmp_path / "a", language=""))
    with pytest.raises(ConfigError, match="--target_languages"):
        load_run_data(xl_config(synth_corpus_dir, tmp_path / "b", target_languages=["de-DE"]))
    with pytest.raises(ConfigError, match="--target_split"):
        load_run_data(xl_config(synth_corpus_dir, tmp_path / "c", target_split="train_115"))
    with pytest.raises(ConfigError, match="target_languages"):
        TrainConfig(recipe="T")
