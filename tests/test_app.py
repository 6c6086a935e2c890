"""The app driven as a user would: launched on localhost and called through gradio_client (no browser)."""

import socket

import numpy as np
import pytest
import soundfile as sf

import app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    cfg = app.AppConfig(port=_free_port(), num_beams=1)
    demo = app.build_demo(cfg)
    demo.launch(server_name=cfg.host, server_port=cfg.port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://{cfg.host}:{cfg.port}/", verbose=False)
    finally:
        demo.close()


def _wav(path, seconds=1.0, rate=44100, silent=False):
    t = np.arange(int(seconds * rate)) / rate
    wave = np.zeros_like(t) if silent else 0.2 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 3 * t)
    sf.write(path, np.stack([wave, wave], axis=1), rate)  # stereo 44.1 kHz: the app must convert it
    return str(path)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="--port"):
        app.AppConfig(port=0)
    with pytest.raises(ValueError, match="--checkpoints"):
        app.AppConfig(checkpoints=" , ")


def test_parse_speech_returns_a_frame(client, tmp_path):
    from gradio_client import handle_file

    intent, entities, frame, message = client.predict(
        app.DEMO, handle_file(_wav(tmp_path / "a.wav")), "", api_name="/parse"
    )
    assert set(frame) == {"scenario", "action", "entities"}
    assert intent == f"{frame['scenario']}_{frame['action']}"
    assert "Could not" not in message


def test_silent_clip_gets_a_message_not_a_traceback(client, tmp_path):
    from gradio_client import handle_file

    intent, _, frame, message = client.predict(
        app.DEMO, handle_file(_wav(tmp_path / "s.wav", silent=True)), "", api_name="/parse"
    )
    assert intent == "" and not frame
    assert "silent" in message


def test_nothing_given_asks_for_input(client):
    _, _, _, message = client.predict(app.DEMO, None, "", api_name="/parse")
    assert "record or upload" in message


def test_transcript_path_and_unknown_checkpoint(client):
    intent, _, frame, message = client.predict(app.DEMO, None, "wake me up at five am", api_name="/parse")
    assert set(frame) == {"scenario", "action", "entities"}
    _, _, _, message = client.predict("/no/such/checkpoint", None, "hello", api_name="/parse")
    assert "Could not" in message and "/no/such/checkpoint" in message


def test_plan_tab_recommends_from_paper_curves(client):
    rows, summary, plot = client.predict("en", 0.75, False, 0.1, 3.0, 0, api_name="/plan")
    table = rows["data"] if isinstance(rows, dict) else rows
    assert len(table) >= 2  # one row per scheme (direct, curriculum)
    assert plot is not None
    assert "scheme" in summary
    _, summary, _ = client.predict("xx", 0.75, False, 0.1, 3.0, 0, api_name="/plan")
    assert "unknown language" in summary


def test_find_runs_and_curves_figure(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    from training.run_folder import write_curves

    write_curves(run / "curves.csv", [
        {"step": 1, "kind": "train", "loss": 2.0},
        {"step": 2, "kind": "eval", "split": "dev", "slu_f1": 0.5},
        {"step": 4, "kind": "eval", "split": "dev", "slu_f1": 0.6},
    ])
    assert app.find_runs(tmp_path / "runs") == [run]
    fig = app.curves_figure([str(run)])
    ys = [list(t.y) for t in fig.data]
    assert [0.5, 0.6] in ys and [2.0] in ys


def test_compare_same_checkpoint_twice_agrees(client):
    a, b, message, _ = client.predict(app.DEMO, app.DEMO, None, "set an alarm for seven am", api_name="/compare")
    assert a["frame"] == b["frame"] and a["input"] == "transcript"
    a, b, message, _ = client.predict(app.DEMO, "/missing/run", None, "hello", api_name="/compare")
    assert a and not b and "/missing/run" in message
