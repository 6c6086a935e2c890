"""The app: handlers called directly on the tiny model, then a live server driven through gradio_client."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.test_app_helpers import RESULT_CELLS, bad_audio, build_runs, good_audio, serve

gr = pytest.importorskip("gradio")

import app  # noqa: E402
from appkit import catalog as catalog_mod  # noqa: E402
from appkit.catalog import DEMO, AppError, Catalog  # noqa: E402
from appkit.models import ModelPool, highlight  # noqa: E402
from appkit.ui import AppState, esc, make_state, user_errors  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return build_runs(tmp_path_factory.mktemp("runs"), Path(tiny_model_dir))


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): the example clips need it")
    from appkit.examples import load_examples, synth_examples

    return load_examples(synth_examples(tmp_path_factory.mktemp("app-cache") / "examples"))


@pytest.fixture(scope="module")
def state(runs, examples):
    return make_state(
        [DEMO, str(runs / "curriculum-p50-s1")], str(runs), None, num_beams=1, max_models=3, examples=examples
    )


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    return good_audio(root / "good"), bad_audio(root / "bad")


# ----------------------------------------------------------------------------------------------- start-up checks


def test_import_is_light():
    code = "import sys, app; print(sorted(m for m in ('torch', 'transformers', 'gradio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bad_settings_and_missing_checkpoints_stop_at_start_with_one_clear_line(tmp_path, capsys):
    assert app.main(["--checkpoints", f"demo,{tmp_path}/no-such-run", "--port", "7861"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot serve these checkpoints") and "no-such-run: no such folder" in err
    assert "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert app.main(["--checkpoints", str(tmp_path / "empty")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
    assert app.main(["--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    assert app.main(["--max-models", "0"]) == 2


def test_offline_hub_id_not_in_the_cache_fails_at_start(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(catalog_mod, "_hub_cached", lambda repo: False)
    with pytest.raises(AppError, match="huggingface-cli download someone/some-model"):
        Catalog(["someone/some-model"])


def test_default_checkpoints_are_the_demo_runs_else_the_twin(tmp_path, monkeypatch, runs):
    monkeypatch.setattr(catalog_mod, "DEMO_RUNS_DIR", tmp_path / "nothing-here")
    assert catalog_mod.default_checkpoints() == [DEMO]
    monkeypatch.setattr(catalog_mod, "DEMO_RUNS_DIR", runs)
    assert catalog_mod.default_checkpoints() == [str(p) for p in sorted(runs.glob("*-s1"))]
    # the shipped demo's names come in the app's order (best first), whatever the alphabet says
    demo = tmp_path / "demo" / "runs"
    for name in ("low-speech", "best", "text-only"):
        shutil.copytree(sorted(runs.glob("*-s1"))[0], demo / name)
    monkeypatch.setattr(catalog_mod, "DEMO_RUNS_DIR", tmp_path / "demo")
    assert [Path(p).name for p in catalog_mod.default_checkpoints()] == ["best", "text-only", "low-speech"]


def test_catalog_serves_configured_checkpoints_and_runs_only(runs, tmp_path, tiny_model_dir):
    cat = Catalog([DEMO], runs)
    names = [c.name for c in cat.all()]
    assert names[0] == DEMO and str(runs / "curriculum-p50-s1") in names and len(names) == 4
    assert cat.resolve(str(runs / "text-p0-s1")).run_dir == runs / "text-p0-s1"
    assert cat.resolve("text-p0-s1 (run)").name == str(runs / "text-p0-s1")  # the label works too
    for outside in (str(tiny_model_dir), "/etc", "Qwen/Qwen2-Audio-7B-Instruct", "../" * 5 + "etc"):
        with pytest.raises(AppError, match="not a checkpoint this app serves"):
            cat.resolve(outside)
    late = runs / "late-run"  # a run folder that appears after start-up is served on the next request
    shutil.copytree(runs / "text-p0-s1", late, ignore=shutil.ignore_patterns("model"))
    try:
        assert cat.resolve(str(late)).run_dir == late
    finally:
        shutil.rmtree(late)


# ------------------------------------------------------------------------------------------------ model pool


def test_pool_loads_once_under_concurrency_and_keeps_an_lru_bound(runs):
    cat = Catalog([DEMO], runs)
    demo, run = cat.resolve(DEMO), cat.resolve(str(runs / "curriculum-p50-s1"))
    pool = ModelPool(max_models=1)
    with ThreadPoolExecutor(4) as ex:
        pairs = list(ex.map(lambda _: pool.get(demo), range(4)))
    assert pool.loads == 1 and all(p is pairs[0] for p in pairs)
    pool.get(run)
    assert pool.loaded() == [run.load]  # the bound evicted the demo model
    pool.get(demo)
    assert pool.loads == 3


def test_a_failed_load_is_remembered_and_other_checkpoints_keep_working(runs, tmp_path):
    broken = tmp_path / "broken-run"
    shutil.copytree(runs / "text-p0-s1", broken)
    (broken / "model" / "model.safetensors").write_bytes(b"not weights")
    cat = Catalog([str(broken), DEMO])
    pool = ModelPool()
    with pytest.raises(AppError, match="cannot load the model") as first:
        pool.get(cat.resolve(str(broken)))
    with pytest.raises(AppError) as again:
        pool.get(cat.resolve(str(broken)))
    assert pool.loads == 1 and str(again.value) == str(first.value) and "remembers" in str(first.value)
    pool.get(cat.resolve(DEMO))
    unfinished = Catalog([DEMO], runs).resolve(str(runs / "direct-p50-s1"))
    with pytest.raises(AppError, match="no final model yet"):
        pool.get(unfinished)


# ------------------------------------------------------------------------------------------- handlers, directly


def test_parse_handler_on_speech_and_on_a_typed_transcript(state, audio, examples):
    good, _ = audio
    result, card, entities, marked, raw = state.parse(DEMO, str(good["flac"]), "")
    assert result["input"] == "speech" and result["duration_s"] == pytest.approx(1.0, abs=0.01)
    assert result["status"] in ("clean", "repaired", "unusable") and result["raw"] == raw
    assert result["intent"] == f"{result['frame']['scenario']}_{result['frame']['action']}"
    assert esc(result["intent"]) in card and entities == [[e["type"], e["filler"]] for e in result["frame"]["entities"]]
    ex = examples[0]  # an example clip: its gold frame and transcript come with the answer
    result, card, *_ = state.parse(DEMO, ex.path, "")
    assert result["gold"]["intent"] == ex.frame.intent and esc(ex.transcript) in card
    result, _, _, marked, _ = state.parse(str(state.catalog.configured[1].name), None, "wake me up at five am")
    assert result["input"] == "transcript" and "".join(t for t, _ in marked) == "wake me up at five am"


def test_highlight_marks_entity_fillers_in_the_transcript():
    segments = highlight("Wake me up at five am on Monday", [["time", "five am"], ["date", "monday"], ["x", "zzz"]])
    assert segments == [("Wake me up at ", None), ("five am", "time"), (" on ", None), ("Monday", "date")]


@pytest.mark.parametrize(
    "kind", ["silent", "too_short", "too_long", "corrupt", "not_audio", "empty", "nan", "inf", "header_only"]
)
def test_every_bad_clip_is_a_gr_error_naming_the_file_and_the_problem(state, audio, kind):
    path, words = audio[1][kind]
    with pytest.raises(gr.Error) as err:
        state.parse(DEMO, str(path), "")
    message = err.value.message
    assert words in message and path.name in message and str(path.parent) not in message


def test_errors_are_escaped_for_the_page():
    @user_errors
    def boom():
        raise AppError("<in-memory samples>: the audio is silent & empty")

    with pytest.raises(gr.Error) as err:
        boom()
    assert err.value.message == "&lt;in-memory samples&gt;: the audio is silent &amp; empty"

    @user_errors
    def crash():
        raise KeyError("x")

    with pytest.raises(gr.Error, match="unexpected error"):
        crash()


def test_nothing_to_parse_and_unknown_checkpoint_are_errors(state):
    with pytest.raises(gr.Error, match="record or upload a clip, or type a transcript"):
        state.parse(DEMO, None, "  ")
    with pytest.raises(gr.Error, match="not a checkpoint this app serves"):
        state.parse("/no/such/checkpoint", None, "hello")


def test_compare_handler_highlights_differences_from_the_gold(state, runs, examples):
    ckpts = [DEMO, str(runs / "curriculum-p50-s1"), str(runs / "text-p0-s1")]
    styled, note, fig, metrics, configs = state.compare(ckpts, examples[0].path, "")
    table = styled.data
    assert list(table["checkpoint"])[0] == "gold (example clip)" and len(table) == 4
    assert table.loc[0, "intent"] == examples[0].frame.intent and "gold frame" in note
    styles = styled._compute().ctx  # (row, col) -> css: a differing intent is red, an agreeing one green
    for i in range(1, 4):
        differs = table.loc[i, "intent"] != table.loc[0, "intent"]
        assert any(("fee2e2" if differs else "dcfce7") in css for _, css in styles[(i, 1)])
    assert list(metrics["SLU-F1"]) == ["-", 60.0, 30.0]
    assert list(configs["scheme"]) == ["-", "curriculum", "text"] and list(configs["speech %"])[1] == 50.0
    dev = [list(t.y) for t in fig.data if t.xaxis == "x"]
    assert dev == [[20.0, 40.0, 50.0], [10.0, 20.0, 30.0]]  # dev SLU-F1 in points, one line per run folder
    styled, note, *_ = state.compare(ckpts[:2], None, "set an alarm")
    assert "first checkpoint" in note and len(styled.data) == 2
    with pytest.raises(gr.Error, match="two to four"):
        state.compare([DEMO], None, "set an alarm")


def test_planner_target_mode_names_columns_rounds_amounts_and_shows_cost(state):
    summary, table, fig, csv_path = state.plan("paper", "en", 75, False, 0.1, 3.0, 60)
    assert "expected (utterances)" in table.columns and "expected cost" in table.columns
    assert set(table["scheme"]) == {"direct", "curriculum"}
    for value in table["expected (utterances)"]:
        assert float(value).is_integer()
    row = table.iloc[0]  # the cost is the hours times the rate, rounded
    assert row["expected hours"] == pytest.approx(row["expected (utterances)"] * 3 / 3600, abs=0.06)
    assert row["expected cost"] == pytest.approx(row["expected (utterances)"] * 3 / 3600 * 60, abs=1)
    assert any(t.name.startswith("curriculum") for t in fig.data) and "75.0" in summary
    assert "Calibrated by the paper's 16 curves (groups:" in summary  # which library answered
    import pandas as pd

    assert pd.read_csv(csv_path).columns.tolist() == table.columns.tolist()


@pytest.mark.parametrize(
    "args, words",
    [
        (("paper", "en", -5, False, 0.1, 3.0, 60), "target SLU-F1"),
        (("paper", "en", 75, False, 0.1, -3.0, 60), "average utterance length"),
        (("paper", "en", 75, False, 0.1, 3.0, -1), "cost per hour"),
        (("paper", "en", 75, False, 0.9, 3.0, 60), "risk"),
        (("paper", "xx", 75, False, 0.1, 3.0, 60), "no curve"),
        (("runs", "en", 75, False, 0.1, 3.0, 60), "no results table"),
    ],
)
def test_planner_refuses_bad_input_in_the_page_words(args, words):
    st = AppState(Catalog([DEMO]), ModelPool(), results=None)
    with pytest.raises(gr.Error) as err:
        st.plan(*args)
    assert words in err.value.message
    assert not re.search(r"--(target|risk|avg|cost|language|budget|share)", err.value.message)  # no CLI flags


def test_planner_budget_mode(state):
    summary, table, fig, csv_path = state.allocate("paper", ["en", "it", "fr"], 10, "hours", 3.0, 60, "worst")
    assert table["language"].tolist() == ["en", "it", "fr"]
    assert table["budget used (hours)"].sum() <= 10.05 and "worst language" in summary
    assert all(float(v).is_integer() for v in table["speech to collect"])
    for budget, unit, words in ((-1, "hours", "budget"), (10, "money", "cost per hour"), (10, "pounds", "unit")):
        with pytest.raises(gr.Error, match=words):
            state.allocate("paper", ["en"], budget, unit, 3.0, 0, "mean")


def test_results_report_has_cis_daggers_and_the_level_plot(state):
    report, fig = state.report("")
    lines = [line for line in report.splitlines() if line.startswith("| ") and "Scheme" not in line]
    labels = [(line.split("|")[1].strip(), line.split("|")[2].strip()) for line in lines]
    assert labels == [("0%", "Text"), ("10%", "Direct"), ("", "Curr."), ("50%", "Direct"), ("", "Curr.")]
    # Curr. at 50% lies above Direct with CIs apart in all three metrics; at 10% the intervals overlap.
    assert [line.count("†") for line in lines] == [0, 0, 0, 0, 3]
    assert lines[4].count("±") == 3
    import numpy as np

    curr = next(t for t in fig.data if t.name == "Curr.")
    expected = [
        100 * np.mean(RESULT_CELLS[("text", 0.0)]),
        100 * np.mean(RESULT_CELLS[("curriculum", 10.0)]),
        100 * np.mean(RESULT_CELLS[("curriculum", 50.0)]),
    ]
    assert list(curr.x) == [0.0, 10.0, 50.0] and list(curr.y) == pytest.approx(expected)
    with pytest.raises(gr.Error, match="no rows for split 'dev'"):
        state.report("dev")


# ------------------------------------------------------------------------------------------ a live server


@pytest.fixture(scope="module")
def client(state):
    from gradio_client import Client

    with serve(state) as url:
        yield Client(url, verbose=False), url


def _handle(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_api_parses_every_good_format(client, audio):
    c, _ = client
    for name, path in audio[0].items():
        result, *_ = c.predict(DEMO, _handle(path), "", api_name="/parse")
        assert result["input"] == "speech" and result["duration_s"] > 0.9, name


def test_api_raises_every_bad_clip_as_an_error(client, audio):
    from gradio_client.exceptions import AppError as ClientError

    c, _ = client
    for kind, (path, words) in audio[1].items():
        with pytest.raises(ClientError) as err:
            c.predict(DEMO, _handle(path), "", api_name="/parse")
        assert words in str(err.value) and path.name in str(err.value), kind


def test_api_refuses_checkpoints_it_does_not_serve_and_loads_nothing(client, state, tiny_model_dir):
    from gradio_client.exceptions import AppError as ClientError

    c, _ = client
    before = state.pool.loads
    for name in ("/no/such/checkpoint", str(tiny_model_dir)):
        with pytest.raises(ClientError, match="not a checkpoint this app serves"):
            c.predict(name, None, "hello", api_name="/parse")
    assert state.pool.loads == before


def test_concurrent_clients_are_all_answered_and_errors_stay_errors(client, audio):
    from gradio_client import Client
    from gradio_client.exceptions import AppError as ClientError

    _, url = client
    good, bad = audio
    jobs = [good["flac"], bad["silent"][0], good["wav_stereo_44k"], bad["corrupt"][0]] * 2

    def call(path):
        try:
            Client(url, verbose=False).predict(DEMO, _handle(path), "", api_name="/parse")
            return "ok"
        except ClientError as err:
            return str(err)

    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(call, jobs))
    assert answers[0::2] == ["ok"] * 4
    assert all("silent" in a for a in answers[1::4]) and all("corrupt" in a for a in answers[3::4])


def test_api_endpoints_plan_allocate_compare_report(client, runs):
    c, _ = client
    summary, table, _, csv_file = c.predict("paper", "en", 75, False, 0.1, 3, 60, api_name="/plan")
    assert "expected cost" in table["headers"] and Path(csv_file).read_text().startswith("scheme,status")
    summary, table, *_ = c.predict("paper", ["en", "it"], 3000, "utterances", 3, 60, "mean", api_name="/allocate")
    assert [r[0] for r in table["data"]] == ["en", "it"]
    table, note, *_ = c.predict([DEMO, str(runs / "text-p0-s1")], None, "play some jazz", api_name="/compare")
    assert len(table["data"]) == 2
    report, _ = c.predict("", api_name="/report")
    assert "†" in report


def test_only_the_apps_own_files_are_served_and_nothing_external_is_linked(client):
    import httpx

    _, url = client
    for path in (ROOT / "README.md", Path("/etc/passwd")):
        r = httpx.get(f"{url}gradio_api/file={path}", timeout=10)
        assert r.status_code in (403, 404), path
    page = httpx.get(url, timeout=10).text
    assert "fonts.googleapis" not in page and "googletagmanager" not in page


def test_server_keeps_serving_after_errors(client):
    c, _ = client
    result, *_ = c.predict(DEMO, None, "turn off the lights", api_name="/parse")
    assert result["input"] == "transcript"
