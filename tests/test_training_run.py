"""CPU-scale proof: the tiny Qwen2-Audio twin trained with each scheme on the synthetic espeak-ng corpus.

Each run takes a few seconds: 8 English transcripts, 2 epochs, micro-batch 2, greedy decoding of a few items.
Checks: loss falls, every run-folder artefact exists and parses, text-only leaves the audio encoder and projector
bit-identical, an interrupted run resumes to the same weights as an uninterrupted one, a 2-cell sweep runs.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
import shutil
from pathlib import Path

import pytest
import torch

from data.cli import from_mapping
from training.config import TrainConfig

pytestmark = pytest.mark.slow

AUDIO_PREFIXES = ("model.audio_tower.", "model.multi_modal_projector.")


def tiny_config(corpus_dir: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        output_dir=str(out),
        model="tiny",
        corpus="manifest",
        corpus_args={"path": str(corpus_dir / "manifest.jsonl")},
        language="en-US",
        limit_train_texts=8,
        scheme="direct",
        n_speech=4,
        epochs=2,
        peak_lr=5e-3,
        final_peak_lr=3e-3,
        per_device_batch_size=2,
        grad_accum_steps=1,
        eval_splits=["test"],
        eval_max_examples=2,
        num_beams=1,
        max_new_tokens=8,
        eval_batch_size=4,
        save_every_steps=3,
        log_every_steps=1,
        seed=1,
    )
    values.update(overrides)
    return from_mapping(TrainConfig, values)  # flat option names: still accepted


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def _train_losses(run_dir: Path) -> list[float]:
    with open(run_dir / "curves.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh) if r["kind"] == "train"]


@pytest.fixture(scope="module")
def scheme_runs(synth_corpus_dir, tmp_path_factory):
    """One finished run per scheme (made once for the module)."""
    from training.loop import run

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for scheme in ("text", "direct", "curriculum"):
        # "direct" keeps its resumable checkpoints after finishing (--keep_resumable); the others delete them.
        cfg = tiny_config(synth_corpus_dir, root / scheme, scheme=scheme, keep_resumable=scheme == "direct")
        result = run(cfg)
        assert not result["stopped"]
        out[scheme] = root / scheme
    return out


@pytest.mark.parametrize("scheme", ["text", "direct", "curriculum"])
def test_each_scheme_trains_and_writes_a_complete_run_folder(scheme_runs, scheme):
    run_dir = scheme_runs[scheme]
    losses = _train_losses(run_dir)
    assert len(losses) >= 6
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses  # loss falls

    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["scheme"] == scheme and meta["code_version"]
    assert meta["phases"] and meta["effective_batch_size"] == 2
    with open(run_dir / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    evals = [r for r in rows if r["kind"] == "eval"]
    assert len(evals) == 2 and all(0 <= float(r["slu_f1"]) <= 1 for r in evals)  # one per epoch end

    metrics = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    assert {"intent_accuracy", "entity_f1", "slu_f1", "n_invalid"} <= set(metrics)
    preds = [json.loads(line) for line in (run_dir / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == metrics["n_scored"] > 0
    assert all({"file", "scenario", "action", "entities"} <= set(p) for p in preds)
    card = (run_dir / "model" / "README.md").read_text()
    assert card.startswith("---") and "slu_f1" in card and scheme in card
    assert json.loads((run_dir / "done.json").read_text())["metrics"]["test"]["n_scored"] == metrics["n_scored"]

    from evaluation.results import read_results

    rows = [r for r in read_results(run_dir.parent / "results.csv") if r["run_dir"] == run_dir.name]
    assert len(rows) == 1 and rows[0]["scheme"] == scheme and rows[0]["split"] == "test"
    assert rows[0]["n_speech"] == (0 if scheme == "text" else 4)

    # Plain transformers loads the checkpoint.
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    model = Qwen2AudioForConditionalGeneration.from_pretrained(run_dir / "model")
    AutoProcessor.from_pretrained(run_dir / "model")
    from training.checkpoint import latest_checkpoint, load_tensors

    if scheme != "direct":  # a finished run keeps its final model, not its resumable state
        assert not (run_dir / "checkpoints").exists()
        return

    trained = load_tensors(latest_checkpoint(run_dir), "model.pt")  # the last epoch-end state, our names
    loaded = model.state_dict()
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k], trained[k]) for k in loaded)


def test_text_only_leaves_audio_bit_identical_and_speech_schemes_change_it(scheme_runs):
    from transformers import Qwen2AudioForConditionalGeneration

    from models.tiny import build_tiny

    base = {k: v for k, v in build_tiny(seed=0)[0].state_dict().items()}
    finals = {}
    for scheme, run_dir in scheme_runs.items():
        finals[scheme] = Qwen2AudioForConditionalGeneration.from_pretrained(run_dir / "model").state_dict()
    audio = [k for k in base if k.startswith(AUDIO_PREFIXES) and base[k].is_floating_point()]
    llm = [k for k in base if k.startswith("model.language_model.")]
    assert audio and llm
    text = finals["text"]
    assert all(torch.equal(text[k], base[k]) for k in audio)
    assert any(not torch.equal(text[k], base[k]) for k in llm)
    for scheme in ("direct", "curriculum"):
        assert any(not torch.equal(finals[scheme][k], base[k]) for k in audio), scheme


def test_interrupted_run_resumes_to_the_same_weights(scheme_runs, synth_corpus_dir, tmp_path):
    from training.loop import TrainingError, run

    reference = scheme_runs["direct"]
    out = tmp_path / "killed"
    stopped = run(tiny_config(synth_corpus_dir, out, stop_after_steps=5))  # checkpoints at 3, dies after 5
    assert stopped["stopped"] and not (out / "done.json").exists()
    # Debris of a crash mid-save must never be picked up: a temp folder and a folder without state.json.
    (out / "checkpoints" / ".tmp-step-00000099").mkdir()
    (out / "checkpoints" / ".tmp-step-00000099" / "model.pt").write_bytes(b"half")
    (out / "checkpoints" / "step-00000098").mkdir()
    with pytest.raises(TrainingError, match="--resume"):
        run(tiny_config(synth_corpus_dir, out))
    run(tiny_config(synth_corpus_dir, out, resume=True))
    a, b = _final_state(reference), _final_state(out)
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    assert _train_losses(out) == pytest.approx(_train_losses(reference), abs=1e-6)


def test_spec_augment_changes_speech_training_and_resumes_to_the_same_weights(scheme_runs, synth_corpus_dir, tmp_path):
    """--spec_augment: speech batches are augmented (the run differs from the plain one) with draws seeded by step, so
    a killed and resumed run ends with the weights of an uninterrupted one."""
    from training.loop import run

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(tiny_config(synth_corpus_dir, whole, spec_augment=True))
    assert run(tiny_config(synth_corpus_dir, killed, spec_augment=True, stop_after_steps=5))["stopped"]
    run(tiny_config(synth_corpus_dir, killed, spec_augment=True, resume=True))
    a, b, plain = _final_state(whole), _final_state(killed), _final_state(scheme_runs["direct"])
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    assert any(not torch.allclose(a[k], plain[k], rtol=0, atol=1e-6) for k in a)
    assert _train_losses(whole) != pytest.approx(_train_losses(scheme_runs["direct"]), abs=1e-6)


def test_sweep_two_cells_end_to_end(synth_corpus_dir, tmp_path, capsys):
    from training import sweep

    out = tmp_path / "sweep"
    cfg_file = tmp_path / "base.yaml"
    base = tiny_config(synth_corpus_dir, out, epochs=1, n_speech=-1)
    import yaml

    cfg_file.write_text(yaml.safe_dump(base.to_dict()))
    argv = ["--config", str(cfg_file), "--schemes", "text,curriculum", "--speech-percent", "0,50", "--seeds", "1"]
    assert sweep.main(argv + ["--print-commands", "--launch", "accelerate launch --num_processes 1"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and all(
        line.startswith("accelerate launch --num_processes 1 -m training.train") for line in printed
    )
    assert sweep.main(argv) == 0
    from evaluation.results import read_results

    rows = read_results(out / "results.csv")
    assert sorted((r["scheme"], r["speech_percent"]) for r in rows) == [("curriculum", 50.0), ("text", 0.0)]
    assert (out / "report.md").is_file() and "Curr." in (out / "report.md").read_text()
    capsys.readouterr()
    assert sweep.main(argv) == 0  # everything finished: skipped, no training
    assert "2 finished, 0 to run" in capsys.readouterr().out


def test_evaluate_cli_oracle_and_bad_run_dir(scheme_runs, tmp_path, capsys):
    from training import evaluate

    run_dir = scheme_runs["text"]
    assert evaluate.main([str(run_dir), "--split", "test", "--oracle", "--max_new_tokens", "4"]) == 0
    metrics = json.loads((run_dir / "eval" / "test-oracle" / "metrics.json").read_text())
    assert metrics["oracle"] is True and metrics["n_scored"] > 0
    first = json.loads((run_dir / "eval" / "test-oracle" / "predictions.jsonl").read_text().splitlines()[0])
    assert "slurp_id" in first
    assert evaluate.main([str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_train_into_a_finished_folder_is_one_clear_line(scheme_runs, tmp_path, capsys):
    from training import train

    run_dir = scheme_runs["text"]
    cfg = json.loads((run_dir / "config.json").read_text())["config"]
    argv = [
        "--output_dir",
        str(run_dir),
        "--model",
        "tiny",
        "--corpus",
        "manifest",
        "--corpus_args.path",
        cfg["data"]["corpus_args"]["path"],
        "--scheme",
        "text",
    ]
    assert train.cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "finished run" in err and "Traceback" not in err


def test_evaluating_a_copied_run_writes_beside_the_copy(scheme_runs, tmp_path):
    from training import evaluate
    from evaluation.results import read_results

    original = scheme_runs["text"]
    before = (original.parent / "results.csv").read_text() if (original.parent / "results.csv").is_file() else ""
    copy = tmp_path / "elsewhere" / "text-copy"
    shutil.copytree(original, copy)
    assert evaluate.main([str(copy), "--split", "test", "--max_new_tokens", "4"]) == 0
    after = (original.parent / "results.csv").read_text() if (original.parent / "results.csv").is_file() else ""
    assert after == before  # the original's table is untouched
    rows = read_results(copy.parent / "results.csv")
    assert rows and all(r["split"] == "test" for r in rows)


def test_evaluate_any_model_on_a_manifest(scheme_runs, synth_corpus_dir, tmp_path, capsys):
    from training import evaluate

    out = tmp_path / "ev"
    code = evaluate.main(
        [
            str(scheme_runs["direct"] / "model"),
            "--manifest",
            str(synth_corpus_dir / "manifest.jsonl"),
            "--split",
            "test",
            "--out",
            str(out),
            "--num_beams",
            "1",
            "--max_new_tokens",
            "8",
            "--json",
        ]
    )
    assert code == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_scored"] > 0 and metrics["per_speaker"] and metrics["per_engine"]
    assert sum(s["n"] for s in metrics["per_speaker"].values()) == metrics["n_scored"]
    # every recording in exactly one slots group and one gold-intent group, each named after the gold it holds
    rows = [json.loads(x) for x in (synth_corpus_dir / "manifest.jsonl").read_text().splitlines()]
    test = [r for r in rows if r["split"] == "test" and r["audio"]]
    want_slots = {"with_slots" if r["entities"] else "no_slots" for r in test}
    assert set(metrics["per_slots"]) == want_slots
    assert sum(s["n"] for s in metrics["per_slots"].values()) == metrics["n_scored"] == len(test)
    assert {k: s["n"] for k, s in metrics["per_intent"].items()} == dict(
        Counter(f"{r['scenario']}_{r['action']}" for r in test)
    )
    assert res["slu_f1"] == metrics["slu_f1"]
    assert (out / "predictions.jsonl").is_file()
    assert evaluate.main([str(tmp_path), "--manifest", str(synth_corpus_dir / "manifest.jsonl")]) == 2
    assert "neither a run folder" in capsys.readouterr().err
