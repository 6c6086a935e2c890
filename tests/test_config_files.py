"""Every shipped config file loads, its values land in the right (nested) field, and run records written in the
flat layout of older versions still load and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from data.cli import aliases, from_mapping, load_yaml, option_values, parse_config, resolve
from training.config import TrainConfig, flat_record
from training.executors import SlurmConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(p for p in (ROOT / "configs").rglob("*") if p.is_file())
GROUPS = ("schedule", "lora", "decoding", "data")


def _leaves(values: dict, prefix: str = "") -> dict:
    """A YAML mapping as {dotted key: value}, descending into the TrainConfig groups only (dict options stay whole)."""
    out = {}
    for key, value in values.items():
        if not prefix and key in GROUPS and isinstance(value, dict):
            out.update(_leaves(value, f"{key}."))
        else:
            out[prefix + key] = value
    return out


def test_configs_folder_is_covered():
    kinds = {
        p.relative_to(ROOT / "configs").parts[0] if len(p.relative_to(ROOT / "configs").parts) > 1 else "train"
        for p in CONFIG_FILES
    }
    assert kinds == {"train", "accelerate", "slurm"}, "a new kind of config file: add it to the tests below"
    assert len([p for p in CONFIG_FILES if p.parent.name == "configs"]) >= 3


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_config_file_loads_into_its_dataclass(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(raw, dict) and raw, path
    if path.parent.name == "accelerate":  # accelerate's own format, read by `accelerate launch`
        assert {"distributed_type", "num_processes", "mixed_precision"} <= set(raw)
        return
    if path.parent.name == "slurm":
        cfg = from_mapping(SlurmConfig, load_yaml(path))
        assert all(getattr(cfg, k) == (tuple(v) if isinstance(getattr(cfg, k), tuple) else v) for k, v in raw.items())
        return
    cfg = parse_config(TrainConfig, ["--config", str(path)], environ={})
    got = option_values(cfg)
    alias = aliases(TrainConfig)
    for key, value in _leaves(raw).items():
        field = resolve(alias, key)  # a flat name (epochs) is looked up where the option lives (schedule.epochs)
        assert field in got, (path.name, key)
        assert got[field] == value, (path.name, key, got[field], value)


def test_flat_and_grouped_names_land_in_the_same_nested_fields():
    tiny = parse_config(TrainConfig, ["--config", str(ROOT / "configs" / "tiny_cpu.yaml")], environ={})
    assert (tiny.schedule.epochs, tiny.schedule.peak_lr, tiny.schedule.final_peak_lr) == (2, 3.0e-3, 2.0e-3)
    assert tiny.schedule.warmup_ratio == TrainConfig().schedule.warmup_ratio  # not in the file: the default
    assert (tiny.data.corpus, tiny.data.corpus_args, tiny.data.eval_splits) == (
        "manifest",
        {"path": "data/synth/manifest.jsonl"},
        ["test"],
    )
    assert (tiny.decoding.num_beams, tiny.decoding.max_new_tokens) == (1, 32)
    mini = parse_config(TrainConfig, ["--config", str(ROOT / "configs" / "mini_cpu.yaml")], environ={})
    assert mini.decoding.batch_size == 16  # eval_batch_size: a renamed option
    paper = parse_config(
        TrainConfig,
        [
            "--config",
            str(ROOT / "configs" / "paper_slurp_qwen2audio.yaml"),
            "--peak_lr",
            "1e-5",
            "--data.language",
            "en-US",
        ],
        environ={},
    )
    assert (paper.schedule.peak_lr, paper.schedule.final_peak_lr, paper.decoding.num_beams) == (1e-5, 3.0e-6, 3)
    assert paper.data.language == "en-US" and paper.data.corpus_args == {"path": "data/prepared/slurp"}
    assert parse_config(TrainConfig, ["--lora_r", "8", "--lora.alpha", "4"], environ={}).lora.settings().alpha == 4


def test_each_default_is_written_once():
    from models.trainable import LoraSettings
    from training.schemes import ScheduleSettings

    cfg = TrainConfig()
    assert cfg.schedule == ScheduleSettings()
    assert (cfg.lora.alpha, cfg.lora.dropout) == (LoraSettings().alpha, LoraSettings().dropout)
    assert cfg.lora.settings() is None  # rank 0: full fine-tuning


# Run records written before the groups existed: the demo runs' config.json as shipped until the demo was rebuilt
# (tests/fixtures/flat_layout/<run>.json, copied from git history).
FLAT_RECORDS = sorted((ROOT / "tests" / "fixtures" / "flat_layout").glob("*.json"))


@pytest.mark.parametrize("run", FLAT_RECORDS, ids=lambda p: p.stem)
def test_run_records_in_the_flat_layout_load(run):
    flat = json.loads(run.read_text(encoding="utf-8"))["config"]
    assert "peak_lr" in flat and "schedule" not in flat  # written before the groups existed
    cfg = from_mapping(TrainConfig, flat)
    assert (cfg.schedule.peak_lr, cfg.schedule.epochs) == (flat["peak_lr"], flat["epochs"])
    assert (cfg.decoding.num_beams, cfg.decoding.batch_size) == (flat["num_beams"], flat["eval_batch_size"])
    assert (cfg.data.corpus_args, cfg.lora.r) == (flat["corpus_args"], flat["lora_r"])
    # And the readers of records (results rows, model card, app) see the same flat names in both layouts.
    nested = flat_record(cfg.to_dict())
    assert all(nested[k] == v for k, v in flat.items() if k != "output_dir")


def _old_layout(record: dict) -> dict:
    """A nested record as the flat layout the code wrote before the groups (tests/fixtures/flat_layout)."""
    return {k: v for k, v in flat_record(record).items() if k not in GROUPS}


@pytest.mark.parametrize("run", sorted((ROOT / "demo" / "runs").glob("*/config.json")), ids=lambda p: p.parent.name)
def test_shipped_run_records_load(run):
    record = json.loads(run.read_text(encoding="utf-8"))["config"]
    cfg = from_mapping(TrainConfig, record)
    assert flat_record(cfg.to_dict())["peak_lr"] == flat_record(record)["peak_lr"] > 0


ADDED_AFTER_FLAT = {"spec_augment"}


def test_a_run_recorded_in_the_flat_layout_resumes(synth_corpus_dir, tmp_path):
    from training.loop import TrainingError, run

    out = tmp_path / "run"
    cfg = from_mapping(TrainConfig, dict(
        output_dir=str(out), model="tiny", corpus="manifest", language="en-US",
        corpus_args={"path": str(synth_corpus_dir / "manifest.jsonl")}, limit_train_texts=4, scheme="text",
        epochs=1, peak_lr=5e-3, per_device_batch_size=2, grad_accum_steps=1, eval_splits=[], eval_max_examples=2,
        num_beams=1, max_new_tokens=4, save_every_steps=1, log_every_steps=1, stop_after_steps=1, seed=1,
    ))  # fmt: skip
    assert run(cfg)["stopped"]
    record_file = out / "config.json"
    meta = json.loads(record_file.read_text())
    # options added since then (spec_augment) are missing from old records and take their defaults
    old = {k: v for k, v in _old_layout(meta["config"]).items() if k not in ADDED_AFTER_FLAT}
    shipped = json.loads(FLAT_RECORDS[0].read_text())["config"]
    assert set(old) == set(shipped)  # exactly the layout older versions wrote
    record_file.write_text(json.dumps({**meta, "config": old}))
    changed = dataclasses.replace(
        cfg, resume=True, stop_after_steps=0, schedule=dataclasses.replace(cfg.schedule, peak_lr=1e-3)
    )
    with pytest.raises(TrainingError, match=r"different settings .*: schedule\.peak_lr"):
        run(changed)
    result = run(dataclasses.replace(cfg, resume=True, stop_after_steps=0))
    assert not result["stopped"] and (out / "done.json").is_file()
