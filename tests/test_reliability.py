"""Issue 14: every bad input gets one clear line, every fault loses nothing (one test per class of fault)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data.audio import AudioError, audio_duration, load_audio, to_wav_bytes
from data.corpus import CorpusError
from data.frames import parse_annotation, strip_annotation
from data.manifest import load_manifest
from training import checkpoint as ckpt
from evaluation.metrics import MetricsInputError, read_predictions
from evaluation.report import build_table
from evaluation.results import ResultsError, append_results, merge_duplicates, read_results, write_results
from training.run_folder import RunFolderBusy, RunFolderError, acquire_lock, read_curves, results_row

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------------ text input


def test_non_utf8_inputs_are_one_line_with_exit_2(tmp_path):
    """A Latin-1 byte in a manifest, a prediction file or a results table: one line naming file and line, exit 2."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(
        b'{"transcript": "hello", "intent": "general_joke"}\n{"transcript": "caf\xe9", "intent": "general_joke"}\n'
    )
    line = _one_error_line(
        _cli("-m", "data.prepare", "manifest", "--path", str(manifest), "--out", str(tmp_path / "out"))
    )
    assert "manifest.jsonl, line 2" in line and "0xe9" in line and "UTF-8" in line

    gold = ROOT / "tests" / "fixtures" / "slurp" / "devel.jsonl"
    pred = tmp_path / "pred.jsonl"
    pred.write_bytes(b"\x89PNG\r\n\x1a\n binary \xff\xfe")
    line = _one_error_line(_cli("-m", "evaluation.score", "--gold", str(gold), "--pred", str(pred)))
    assert "pred.jsonl" in line and "UTF-8" in line

    results = tmp_path / "results.csv"
    results.write_bytes(b"corpus,language,scheme,speech_percent,seed\nslurp,en-US,text,0,1\nm\xfcnchen,de,text,0,2\n")
    line = _one_error_line(_cli("-m", "evaluation.report", str(results)))
    assert "results.csv, line 3" in line and "0xfc" in line


def test_library_readers_raise_their_own_error_on_binary_input(tmp_path):
    blob = tmp_path / "blob.csv"
    blob.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ResultsError, match="blob.csv"):
        read_results(blob)
    with pytest.raises(RunFolderError, match="blob.csv"):
        read_curves(blob)
    with pytest.raises(MetricsInputError, match="blob.csv"):
        read_predictions(blob)
    with pytest.raises(CorpusError, match="blob.csv"):
        load_manifest(blob)


@pytest.mark.parametrize("spaces", [3_000, 100_000])
def test_annotation_regex_is_linear_on_hostile_input(spaces):
    # Before: "[time :" + 3,000 spaces took data.prepare 44 s (cubic backtracking). The bound is generous for a
    # loaded 2-core machine; a linear pass takes milliseconds.
    for text in ("[time :" + " " * spaces, "[a:" * (spaces // 3), "x [time : " + "five " * (spaces // 5)):
        start = time.process_time()
        assert parse_annotation(text) == ()
        strip_annotation(text)
        assert time.process_time() - start < 1.0
    assert [e.filler for e in parse_annotation("wake me [time :  five  am ] [date: x]")] == ["five am", "x"]
    assert strip_annotation("call [person : john]'s phone") == "call john's phone"


# ------------------------------------------------------------------------------------------------ data.prepare


def _wav(path: Path, seconds: float = 0.5) -> None:
    t = np.arange(int(16000 * seconds)) / 16000
    path.write_bytes(to_wav_bytes(0.3 * np.sin(2 * np.pi * 440 * t)))


def test_prepare_names_each_problem_in_summary_and_validation(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _wav(data / "good.wav")
    (data / "corrupt.wav").write_bytes(b"RIFF but not really a wav file")
    _wav(tmp_path / "outside.wav")
    rows = [
        {
            "id": "ok",
            "transcript": "wake me up at five am",
            "audio": "good.wav",
            "intent": "alarm_set",
            "entities": [{"type": "time", "filler": "five am"}],
        },
        {"id": "gone", "transcript": "tell me a joke", "audio": "missing.wav", "intent": "general_joke"},
        {"id": "bad", "transcript": "tell me a joke", "audio": "corrupt.wav", "intent": "general_joke"},
        {"id": "typo", "transcript": "tell me a joke", "split": "trian", "intent": "general_joke"},
        {
            "id": "wrong",
            "transcript": "turn off the lights",
            "intent": "iot_hue_lightoff",
            "entities": [{"type": "house_place", "filler": "kitchen"}],
        },
        {"id": "escape", "transcript": "hello there", "audio": "../outside.wav", "intent": "general_greet"},
    ]
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = _cli("-m", "data.prepare", "manifest", "--path", str(data / "manifest.jsonl"), "--out", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr
    summary = [line for line in proc.stderr.splitlines() if line.startswith("wrote ")]
    assert len(summary) == 1
    line = summary[0]
    for needle in (
        "1 missing audio file(s) (e.g. gone:",
        "1 unreadable/corrupt audio",
        "'trian'",
        "not in the transcript (warning) (e.g. wrong: house_place 'kitchen'",
        "outside the manifest's folder (warning) (e.g. escape: ../outside.wav)",
    ):
        assert needle in line, line
    validation = json.loads((tmp_path / "p" / "validation.json").read_text())
    assert [m["id"] for m in validation["missing_audio"]] == ["gone"]
    assert [m["id"] for m in validation["unreadable_audio"]] == ["bad"]  # corrupt, not missing
    assert validation["unknown_splits"] == {"trian": 1}
    assert [(m["id"], m["filler"]) for m in validation["fillers_not_in_transcript"]] == [("wrong", "kitchen")]
    assert validation["audio_outside_folder"] == [{"id": "escape", "audio": "../outside.wav"}]
    assert validation["ok"] is False

    # An unknown split asked for on the command line is refused by name, not turned into an empty corpus.
    line = _one_error_line(
        _cli(
            "-m",
            "data.prepare",
            "manifest",
            "--path",
            str(data / "manifest.jsonl"),
            "--splits",
            "tset",
            "--out",
            str(tmp_path / "q"),
        )
    )
    assert "'tset'" in line


@pytest.mark.parametrize(
    "source", [None, 42, "x" * 5000, "y" * 300, "", (float("nan"), np.ones(1600)), (16000, ["a", "b"]), (16000, None)]
)
def test_audio_api_misuse_is_an_audio_error(source):
    with pytest.raises(AudioError):
        load_audio(source)
    if not isinstance(source, tuple):
        with pytest.raises(AudioError):
            audio_duration(source)


def test_audio_reader_rejects_bad_rates_and_limits():
    clip = (16000, 0.3 * np.ones(3200, dtype=np.float32))
    for kwargs in ({"target_sr": float("nan")}, {"target_sr": 0}, {"max_seconds": float("nan")}, {"min_seconds": -1}):
        with pytest.raises(AudioError):
            load_audio(clip, **kwargs)


# ------------------------------------------------------------------------------------------------ results table


def _row(seed=1, slu=0.8, run_dir=None, scheme="text", percent=0.0, **kw):
    return {
        "corpus": "slurp",
        "language": "en-US",
        "scheme": scheme,
        "speech_percent": percent,
        "seed": seed,
        "split": "test",
        "intent_accuracy": slu,
        "slu_f1": slu,
        "run_dir": run_dir or f"r{seed}",
        **kw,
    }


def _append_many(path: str, writer: int, n: int) -> None:
    for i in range(n):
        append_results(path, [_row(seed=writer * 1000 + i, run_dir=f"w{writer}-{i}")])


def test_eight_processes_appending_at_once_lose_no_row(tmp_path):
    path = str(tmp_path / "results.csv")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 15)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    rows = read_results(path)
    assert len(rows) == 8 * 15
    assert sorted(r["seed"] for r in rows) == sorted(w * 1000 + i for w in range(8) for i in range(15))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_duplicate_rows_are_merged_or_refused_never_extra_seeds(tmp_path):
    path = tmp_path / "results.csv"
    # The same seed twice, with the same scores (a table concatenated twice, a copied run folder): merged, said so.
    write_results(path, [_row(1, 0.8), _row(1, 0.8, run_dir="copy-of-r1"), _row(2, 0.8), _row(2, 0.8, run_dir="x")])
    table = build_table(read_results(path), ["slu_f1"])
    cell = next(iter(table.cells.values())).value
    assert cell.n == 2 and table.notes and "counted as one seed" in table.notes[0]
    proc = _cli("-m", "evaluation.report", str(path))
    assert proc.returncode == 0 and "merged 2 identical rows" in proc.stderr
    assert "(n = 2)" in proc.stdout and "0.8000 ± 0.0000" in proc.stdout  # two seeds, not four
    # The same seed with different scores: refused, naming both run folders.
    rows = [_row(1, 0.8), _row(1, 0.7, run_dir="other")]
    with pytest.raises(ResultsError, match="r1, other"):
        merge_duplicates(rows)
    write_results(path, rows)
    assert "r1, other" in _one_error_line(_cli("-m", "evaluation.report", str(path)))


def test_text_only_row_records_zero_speech_and_prepared_corpus_name(tmp_path):
    from data.corpus import Corpus
    from data.example import SLUExample
    from data.frames import SLUFrame
    from data.prepared import write_prepared

    frame = SLUFrame("general", "joke", ())
    texts = [SLUExample(str(i), "speech_massive", "fr-FR", "train", "raconte une blague", frame) for i in range(2)]
    write_prepared(Corpus(texts, [], {}), tmp_path / "sm", meta={"corpus": "speech_massive"}, audio_check="none")
    config = {
        "corpus": "prepared",
        "corpus_args": {"path": str(tmp_path / "sm")},
        "scheme": "text",
        "speech_percent": 2.0,
        "seed": 1,
        "recipe": "mono",
    }
    row = results_row(config, {"slu_f1": 0.5}, split="test", language="fr-FR", oracle=False, run_dir="r")
    assert row["speech_percent"] == 0.0  # a lone text-only run used no speech, whatever the YAML said
    assert row["corpus"] == "speech_massive"
    write_results(tmp_path / "results.csv", [row, {**row, "seed": 2, "run_dir": "r2", "slu_f1": 0.6}])
    out = _cli("-m", "evaluation.report", str(tmp_path / "results.csv")).stdout
    assert "Speech-MASSIVE FR" in out and "| 0% | Text |" in out and "prepared" not in out
    direct = results_row({**config, "scheme": "direct"}, {}, split="test", language="fr-FR", oracle=False, run_dir="r")
    assert direct["speech_percent"] == 2.0


# ------------------------------------------------------------------------------------------------ run folder lock


_HOLD = """
import sys, time
from training.run_folder import acquire_lock
with acquire_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_run_folder_has_one_owner_and_a_dead_owners_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    owner = _holder(run_dir)
    try:
        with pytest.raises(RunFolderBusy, match=f"pid {owner.pid}"):
            with acquire_lock(run_dir):
                pass
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    # The killed owner left its pid in RUN/.lock; the next run takes the lock over and says whose it was.
    assert str(owner.pid) in (run_dir / ".lock").read_text()
    said = []
    with acquire_lock(run_dir, log=said.append):
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    assert len(said) == 1 and f"pid {owner.pid}" in said[0] and "no longer running" in said[0]
    assert not (run_dir / ".lock").exists()


def test_training_into_a_busy_run_folder_is_refused_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    owner = _holder(run_dir)
    try:
        proc = _cli("-m", "training.train", "--config", "configs/tiny_cpu.yaml", "--output_dir", str(run_dir))
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    line = _one_error_line(proc)
    assert "in use by another run" in line and f"pid {owner.pid}" in line


# ------------------------------------------------------------------------------------------------ checkpoints


def _model_state(width: int = 4) -> dict:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(width, 3), torch.nn.Linear(3, 2)).state_dict()


def _save(run_dir: Path, step: int, state: dict | None = None) -> Path:
    return ckpt.save_checkpoint(
        run_dir, ckpt.Position(step, 0, step, 0), state or _model_state(), {"state": {}}, {"last_epoch": step}, keep=10
    )


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


CORRUPTIONS = {
    "truncated model.pt": lambda c: _truncate(c / "model.pt"),
    "truncated optimizer.pt": lambda c: _truncate(c / "optimizer.pt"),
    "model.pt replaced by garbage": lambda c: (c / "model.pt").write_bytes(b"\x00garbage" * 10),
    "model.pt overwritten, same size": lambda c: (c / "model.pt").write_bytes(
        os.urandom((c / "model.pt").stat().st_size)
    ),
    "missing rng.pt": lambda c: (c / "rng.pt").unlink(),
    "garbage state.json": lambda c: (c / "state.json").write_text("{not json"),
    "state.json without a position": lambda c: (c / "state.json").write_text('{"global_step": 8}'),
    "missing state.json": lambda c: (c / "state.json").unlink(),
    "empty folder": lambda c: [p.unlink() for p in c.iterdir()],
    "wrong shapes": lambda c: torch.save(_model_state(width=7), c / "model.pt"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_resume_skips_a_corrupt_newest_checkpoint_and_says_why(tmp_path, kind):
    good = _save(tmp_path, 4)
    bad = _save(tmp_path, 8)
    CORRUPTIONS[kind](bad)
    said = []
    chosen = ckpt.resume_checkpoint(tmp_path, _model_state(), log=said.append)
    assert chosen == good
    assert said[0].startswith("warning: skipping checkpoint checkpoints/step-00000008: "), said
    assert "falling back to the newest intact checkpoint, checkpoints/step-00000004" in said[-1]
    assert bad.exists()  # left in place for inspection: nothing is deleted
    # And when nothing is intact, resuming is refused with every checkpoint named (not a silent restart).
    CORRUPTIONS["truncated model.pt"](good)
    with pytest.raises(
        ckpt.CheckpointError, match="step-00000008: .*step-00000004: model.pt is [0-9,]+ bytes, [0-9,]+ were written"
    ):
        ckpt.resume_checkpoint(tmp_path, _model_state(), log=None)


def test_intact_checkpoint_verifies_and_reports_the_reason_for_wrong_shapes(tmp_path):
    path = _save(tmp_path, 3)
    assert ckpt.verify_checkpoint(path, _model_state()) is None
    assert "0.weight has shape [3, 4], the model [3, 7]" in ckpt.verify_checkpoint(path, _model_state(width=7))


def test_planner_curves_reader_latin1_is_one_line(tmp_path, capsys):
    """The planner reads curves through the project's one text reader: a Latin-1 byte is one error line, exit 2."""
    from planner.__main__ import run

    bad = tmp_path / "curves.csv"
    bad.write_bytes(b"group,curve,x,score\ng,c\xe9,0,0.5\ng,c,10,0.6\n")
    assert run(["backtest", "--curves", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 2" in err and "0xe9" in err and "Traceback" not in err
