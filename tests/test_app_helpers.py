"""Shared by the app tests (no tests here): audio files of every kind, run folders in the real layout, a live server.

Run folders are written with the project's own writers (TrainConfig.to_dict, write_json, write_curves,
save_tiny, results_row + append_results), so the app reads exactly what training writes.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tone(seconds: float, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def good_audio(folder: Path) -> dict[str, Path]:
    """Valid clips in the formats and layouts users upload: all must be parsed."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "wav_stereo_44k": (tone(1.2, 44100, 2), 44100, "WAV", "PCM_16", ".wav"),
        "flac": (tone(1.0), RATE, "FLAC", "PCM_16", ".flac"),
        "ogg": (tone(1.0, 22050), 22050, "OGG", "VORBIS", ".ogg"),
        "wav_float64": (tone(1.0, 8000), 8000, "WAV", "DOUBLE", ".wav"),
    }
    out = {}
    for name, (data, rate, fmt, subtype, ext) in files.items():
        path = folder / f"{name}{ext}"
        sf.write(path, data, rate, format=fmt, subtype=subtype)
        out[name] = path
    return out


def _float_wav_with(path: Path, value: float) -> Path:
    data = tone(1.0).astype(np.float32)
    data[100:200] = value
    sf.write(path, data, RATE, subtype="FLOAT")
    return path


def bad_audio(folder: Path) -> dict[str, tuple[Path, str]]:
    """Clips our reader refuses, each with a word its message must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    p = folder / "silent.wav"
    sf.write(p, np.zeros(RATE), RATE)
    out["silent"] = (p, "silent")
    p = folder / "too_short.wav"
    sf.write(p, tone(0.05), RATE)
    out["too_short"] = (p, "shorter than")
    p = folder / "too_long.wav"
    sf.write(p, tone(31.0, 8000), 8000)
    out["too_long"] = (p, "longer than")
    p = folder / "corrupt.wav"
    p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    out["corrupt"] = (p, "unreadable or corrupt")
    p = folder / "notes.txt"
    p.write_text("this is not audio at all\n" * 50)
    out["not_audio"] = (p, "unreadable or corrupt")
    p = folder / "empty.wav"
    p.write_bytes(b"")
    out["empty"] = (p, "empty")
    out["nan"] = (_float_wav_with(folder / "nan.wav", np.nan), "NaN/inf")
    out["inf"] = (_float_wav_with(folder / "inf.wav", np.inf), "NaN/inf")
    # A header that promises data the file does not hold: no samples at all.
    p = folder / "header_only.wav"
    header = (
        b"RIFF" + struct.pack("<I", 36 + 32000) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, 2 * RATE, 2, 16)
    )
    p.write_bytes(header + b"data" + struct.pack("<I", 32000))
    out["header_only"] = (p, "empty")
    return out


def make_run(
    root: Path,
    name: str,
    *,
    scheme: str,
    percent: float,
    seed: int,
    model_src: Path | None,
    dev_scores: list[float],
    test: dict[str, float],
) -> Path:
    """One finished run folder in the layout training writes (config.json, curves.csv, model/, eval/test/)."""
    import json

    from training.config import DataOptions, TrainConfig
    from training.schemes import ScheduleSettings
    from training.run_folder import write_curves, write_json

    run = root / name
    run.mkdir(parents=True)
    cfg = TrainConfig(
        output_dir=str(run),
        model="tiny",
        data=DataOptions(corpus="manifest", language="en-US"),
        scheme=scheme,
        speech_percent=percent,
        seed=seed,
        schedule=ScheduleSettings(epochs=2),
    )
    write_json(
        run / "config.json", {"config": cfg.to_dict(), "code_version": "test", "n_speech_used": 17, "language": "en-US"}
    )
    rows = [
        {"step": s, "epoch": s / 4, "phase": "text", "kind": "train", "split": "train", "loss": 5.0 / s}
        for s in range(1, 5)
    ]
    rows += [
        {
            "step": 2 * (i + 1),
            "epoch": (i + 1) / 2,
            "phase": "text",
            "kind": "eval",
            "split": "dev",
            "slu_f1": v,
            "intent_accuracy": v,
            "entity_f1": v,
            "n": 8,
        }
        for i, v in enumerate(dev_scores)
    ]
    write_curves(run / "curves.csv", rows)
    if model_src is not None:
        shutil.copytree(model_src, run / "model")
    (run / "eval" / "test").mkdir(parents=True)
    (run / "eval" / "test" / "metrics.json").write_text(
        json.dumps({"split": "test", "oracle": False, **test, "n_scored": 7})
    )
    return run


def results_rows(per_cell: dict[tuple[str, float], list[float]]) -> list[dict]:
    """Results rows (evaluation/results.py schema) for SLU-F1 values per (scheme, speech %), one per seed."""
    from training.run_folder import results_row

    rows = []
    for (scheme, percent), values in per_cell.items():
        for seed, v in enumerate(values, 1):
            cfg = {
                "corpus": "synth",
                "scheme": scheme,
                "speech_percent": percent,
                "seed": seed,
                "recipe": "mono",
                "n_speech_used": int(percent),
            }
            scores = {"slu_f1": v, "intent_accuracy": v, "entity_f1": v, "n_scored": 7, "n_missing": 0, "n_invalid": 0}
            rows.append(
                results_row(
                    cfg, scores, split="test", language="en-US", oracle=False, run_dir=f"{scheme}-p{percent:g}-s{seed}"
                )
            )
    return rows


# SLU-F1 per seed: curriculum clearly above direct at 50% (a † expected), close to it at 10% (no †).
RESULT_CELLS = {
    ("text", 0.0): [0.30, 0.31, 0.32],
    ("direct", 10.0): [0.40, 0.42, 0.44],
    ("curriculum", 10.0): [0.41, 0.43, 0.45],
    ("direct", 50.0): [0.50, 0.51, 0.52],
    ("curriculum", 50.0): [0.60, 0.61, 0.62],
}


def build_runs(root: Path, model_src: Path) -> Path:
    from evaluation.results import append_results

    make_run(
        root,
        "curriculum-p50-s1",
        scheme="curriculum",
        percent=50,
        seed=1,
        model_src=model_src,
        dev_scores=[0.2, 0.4, 0.5],
        test={"intent_accuracy": 0.61, "entity_f1": 0.55, "slu_f1": 0.6},
    )
    make_run(
        root,
        "text-p0-s1",
        scheme="text",
        percent=0,
        seed=1,
        model_src=model_src,
        dev_scores=[0.1, 0.2, 0.3],
        test={"intent_accuracy": 0.31, "entity_f1": 0.25, "slu_f1": 0.3},
    )
    make_run(
        root,
        "direct-p50-s1",
        scheme="direct",
        percent=50,
        seed=1,
        model_src=None,  # training not finished
        dev_scores=[0.3],
        test={"slu_f1": 0.5},
    )
    append_results(root / "results.csv", results_rows(RESULT_CELLS))
    return root


@contextlib.contextmanager
def serve(state, **kwargs):
    """The app's page on a free localhost port with the app's own launch settings; closed afterwards."""
    from appkit.ui import build_demo, launch

    demo = build_demo(state)
    for attempt in range(3):  # Gradio probes its own URL after start; on a loaded machine the probe can time out
        port = free_port()
        try:
            launch(demo, host="127.0.0.1", port=port, block=False, quiet=True, **kwargs)
            break
        except ValueError:
            demo.close()
            if attempt == 2:
                raise
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
