"""Fuzz the project's file readers: random bytes, Latin-1 text and truncated lines never escape as a traceback.

Each reader either returns or raises the error its command line turns into one ``error: ...`` line with exit
status 2 (CorpusError, ResultsError, RunFolderError, MetricsInputError). Anything else is a bug.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.corpus import CorpusError
from data.manifest import load_manifest
from evaluation.metrics import MetricsInputError, load_slurp_gold, read_predictions
from evaluation.results import ResultsError, read_results
from training.run_folder import RunFolderError, read_curves

GOLD_LINE = (Path(__file__).parent / "fixtures" / "slurp" / "devel.jsonl").read_text(encoding="utf-8").splitlines()[0]
SEEDS = {
    "manifest.jsonl": '{"id": "u1", "transcript": "wake me up at five am", "intent": "alarm_set", '
    '"annotation": "wake me up at [time : five am]", "split": "train", "duration_s": 1.5}\n'
    '{"transcript": "tell me a joke", "scenario": "general", "action": "joke", "audio": "a.wav"}\n',
    "manifest.csv": "id,transcript,audio,split,language,intent,entities\n"
    "c1,turn off the kitchen lights,a.wav,train,en-US,iot_hue_lightoff,"
    '"[{""type"": ""house_place"", ""filler"": ""kitchen""}]"\n',
    "results.csv": "corpus,language,scheme,recipe,speech_percent,n_speech,seed,split,slu_f1,n_scored,run_dir\n"
    "slurp,en-US,text,mono,0.0,0,1,test,0.75,10,r1\nslurp,en-US,direct,mono,5.0,3,1,test,0.8,10,r2\n",
    "curves.csv": "step,epoch,phase,kind,split,loss,lr,intent_accuracy,entity_f1,slu_f1,n\n"
    "1,0.5,text,train,train,2.5,1e-05,,,,\n2,1.0,text,eval,dev,,,0.5,0.4,0.3,8\n",
    "predictions.jsonl": '{"file": "audio-1.flac", "scenario": "alarm", "action": "set", '
    '"entities": [{"type": "time", "filler": "five am"}]}\n',
    "gold.jsonl": GOLD_LINE + "\n",
}
READERS = {
    "manifest.jsonl": (load_manifest, CorpusError),
    "manifest.csv": (load_manifest, CorpusError),
    "results.csv": (read_results, ResultsError),
    "curves.csv": (read_curves, RunFolderError),
    "predictions.jsonl": (read_predictions, MetricsInputError),
    "gold.jsonl": (load_slurp_gold, MetricsInputError),
}


@st.composite
def damaged(draw, seed: str) -> bytes:
    """A valid file damaged the ways real files are: truncated, spliced with random bytes, re-encoded as Latin-1,
    or replaced by random bytes altogether."""
    data = seed.encode("utf-8")
    kind = draw(st.sampled_from(["truncate", "splice", "latin1", "random", "lines"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if kind == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(max_size=40)) + data[at + draw(st.integers(0, 20)) :]
    if kind == "latin1":
        text = seed.replace("five", draw(st.text(st.characters(max_codepoint=255), min_size=1, max_size=8)))
        return text.encode("latin-1", errors="replace")
    if kind == "lines":
        lines = data.split(b"\n")
        picked = draw(st.lists(st.sampled_from(lines), max_size=6))
        return b"\n".join(line[: draw(st.integers(0, len(line)))] for line in picked)
    return draw(st.binary(max_size=300))


@pytest.mark.filterwarnings("ignore:.*audio file:UserWarning")
@pytest.mark.parametrize("name", sorted(READERS))
def test_readers_never_raise_anything_but_their_input_error(tmp_path, name):
    reader, error = READERS[name]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(damaged(SEEDS[name]))
    def check(data: bytes) -> None:
        path = tmp_path / name
        path.write_bytes(data)
        try:
            reader(path)
        except error as exc:
            assert str(path) in str(exc) or name in str(exc), str(exc)  # the message names the file
            assert "\n" not in str(exc).strip(), str(exc)  # one line

    check()


@pytest.mark.filterwarnings("ignore:.*audio file:UserWarning")
def test_the_seed_files_themselves_read(tmp_path):
    for name, (reader, _) in READERS.items():
        (tmp_path / name).write_text(SEEDS[name], encoding="utf-8")
        reader(tmp_path / name)


def test_wrong_types_in_prediction_and_gold_lines_are_input_errors(tmp_path):
    path = tmp_path / "p.jsonl"
    for obj in ({"file": "a", "scenario": 1, "action": "y", "entities": []}, [1, 2], "text", 5):
        path.write_text(json.dumps(obj) + "\n")
        with pytest.raises(MetricsInputError):
            read_predictions(path)
    gold = json.loads(GOLD_LINE)
    for bad in (
        {**gold, "recordings": [{"file": ["a"]}]},
        {**gold, "tokens": 3},
        {**gold, "entities": [{"span": "x"}]},
    ):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(MetricsInputError):
            load_slurp_gold(path)
