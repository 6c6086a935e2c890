"""Schemes, epoch plans and the config parser: the invariants of the paper's section 2.2, no model needed."""

from __future__ import annotations

import pytest

from data.example import AudioRef, SLUExample
from data.frames import SLUFrame
from data.cli import parse_config
from training.config import ConfigError, TrainConfig
from training.plan import epoch_items, n_optimizer_steps, plan_epochs, rank_micro_batches, step_groups
from training.schemes import (
    SCHEMES,
    ScheduleSettings,
    SchemeError,
    build_phases,
    epoch_allocation,
    speech_count,
    total_epochs,
    total_speech,
)


@pytest.mark.parametrize("epochs", [1, 2, 3, 5])
@pytest.mark.parametrize("n_speech", [0, 1, 7, 230])
def test_direct_and_curriculum_expose_the_same_total_speech(epochs, n_speech):
    s = ScheduleSettings(epochs=epochs)
    d, c = build_phases("direct", n_speech, s), build_phases("curriculum", n_speech, s)
    assert total_speech(d) == total_speech(c) == n_speech * epochs
    assert total_epochs(d) == total_epochs(c) == total_epochs(build_phases("text", n_speech, s)) == epochs
    assert epoch_allocation(d) == [n_speech] * epochs


def test_curriculum_has_no_speech_and_no_audio_training_before_its_last_epoch():
    phases = build_phases("curriculum", 50, ScheduleSettings(epochs=4))
    alloc = epoch_allocation(phases)
    assert alloc[:-1] == [0, 0, 0] and alloc[-1] == 200
    assert [p.train_audio for p in phases] == [False, True]
    assert (phases[-1].peak_lr, phases[-1].warmup_ratio) == (3e-6, 0.02)  # section 3.2
    assert (phases[0].peak_lr, phases[0].warmup_ratio) == (5e-6, 0.04)


def test_text_only_never_trains_audio_and_sees_no_speech():
    for n in (0, 100):
        phases = build_phases("text", n)
        assert not any(p.train_audio for p in phases) and total_speech(phases) == 0


def test_direct_trains_everything():
    assert all(p.train_audio for p in build_phases("direct", 10))


def test_scheme_registry_and_errors():
    assert set(SCHEMES) == {"text", "direct", "curriculum"}
    assert build_phases("text-only", 0) == build_phases("text", 0)
    with pytest.raises(SchemeError, match="unknown scheme"):
        build_phases("mixup", 3)
    with pytest.raises(SchemeError, match="percent"):
        speech_count(2.0, 100)


def test_speech_count_rounds_half_up_and_is_monotone():
    assert speech_count(0.02, 50628) == 1013  # 1012.56
    assert speech_count(0.5, 3) == 2  # round() would give 2 too, but 0.5 * 5 = 2.5 -> 3, not banker's 2
    assert speech_count(0.5, 5) == 3
    counts = [speech_count(p / 100, 11514) for p in (0, 2, 5, 10, 25, 50, 100)]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 11514


def _ex(i: int, audio: bool) -> SLUExample:
    return SLUExample(
        id=f"{'s' if audio else 't'}{i}",
        corpus="toy",
        language="en-US",
        split="train",
        transcript=f"utt {i}",
        frame=SLUFrame("alarm", "set"),
        audio=AudioRef(path=f"/x/{i}.wav") if audio else None,
        text_id=f"t{i}",
    )


def test_epoch_items_hold_all_texts_plus_the_allocation_and_are_seeded():
    texts = [_ex(i, False) for i in range(10)]
    speech = [_ex(i, True) for i in range(3)]
    items = epoch_items(texts, speech, 7, seed=1, epoch=2)
    assert sum(1 for _, a in items if not a) == 10 and sum(1 for _, a in items if a) == 7
    assert all(ex.has_audio for ex, a in items if a) and not any(ex.has_audio for ex, a in items if not a)
    assert items == epoch_items(texts, speech, 7, seed=1, epoch=2)
    assert items != epoch_items(texts, speech, 7, seed=1, epoch=3)
    assert items != epoch_items(texts, speech, 7, seed=2, epoch=2)


def test_rank_batches_cover_the_epoch_once_with_equal_step_counts():
    items = [(_ex(i, False), False) for i in range(23)]
    per_rank = [rank_micro_batches(items, 2, 3, r) for r in range(3)]
    assert len({len(b) for b in per_rank}) == 1  # every rank runs the same number of steps
    seen = [ex.id for mbs in per_rank for mb in mbs for ex, _ in mb]
    assert set(seen) == {ex.id for ex, _ in items} and len(seen) == 24  # one item wrapped to fill the last batch
    groups = step_groups(per_rank[0], 3)
    assert len(groups) == n_optimizer_steps(23, 2, 3, 3) == 2 and [len(g) for g in groups] == [3, 1]


def test_plan_epochs_numbers_epochs_globally():
    plans = plan_epochs(build_phases("curriculum", 5))
    assert [(p.phase_index, p.epoch_in_phase, p.global_epoch) for p in plans] == [(0, 0, 0), (0, 1, 1), (1, 0, 2)]


def test_config_defaults_reproduce_the_paper():
    cfg = TrainConfig()
    assert (
        cfg.schedule.peak_lr,
        cfg.schedule.warmup_ratio,
        cfg.schedule.epochs,
        cfg.schedule.final_peak_lr,
        cfg.schedule.final_warmup_ratio,
    ) == (5e-6, 0.04, 3, 3e-6, 0.02)
    assert (cfg.per_device_batch_size, cfg.grad_accum_steps, cfg.decoding.num_beams) == (2, 8, 3)
    assert cfg.model == "Qwen/Qwen2-Audio-7B-Instruct"


def test_config_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scheme: direct\nspeech_percent: 5\ncorpus_args: {path: a, language: en}\nepochs: 2\n")
    cfg = parse_config(
        TrainConfig, ["--config", str(path), "--speech-percent", "10", "--corpus_args.path", "b", "--resume"]
    )
    assert (cfg.scheme, cfg.speech_percent, cfg.schedule.epochs, cfg.resume) == ("direct", 10.0, 2, True)
    assert cfg.data.corpus_args == {"path": "b", "language": "en"}


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--speech_percent", "150"], "--speech_percent"),
        (["--scheme", "nope"], "--scheme"),
        (["--epochs", "two"], "--epochs"),
        (["--lerning_rate", "1"], "lerning_rate"),
        (["--recipe", "T+S"], "--target_languages"),
    ],
)
def test_config_errors_name_the_flag(argv, flag):
    with pytest.raises(ConfigError, match=flag.replace("+", r"\+")):
        parse_config(TrainConfig, argv)
