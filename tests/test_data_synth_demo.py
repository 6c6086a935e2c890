"""The English demo corpus (data.synth --preset demo): coverage, held-out voices, novel set, augmentation, loading."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data.audio import SAMPLE_RATE
from data.corpus import load_corpus
from data.labels import ENTITY_TYPE_SET, INTENT_SET, SCENARIO_SET
from data.synth_demo import (
    SLURP_DEVEL,
    DemoError,
    augment,
    build,
    colored_noise,
    plan,
    render,
    sentence_core,
    slurp_texts,
)
from data.synth_templates import DEMO_FILLERS, DEMO_TEMPLATES, NOVEL_FILLERS, NOVEL_TEMPLATES
from data.synth_voices import FLITE_TRAIN, Voice, VoiceError, check_engines, held_out_voices, train_voices

ROOT = Path(__file__).parent.parent
TINY = 0.05
# The synthesised fixture speaks a 12-intent subset (seconds, not a minute); the plan tests cover all intents.
SUBSET = (
    "alarm_set",
    "weather_query",
    "play_music",
    "iot_hue_lightoff",
    "takeaway_order",
    "transport_ticket",
    "qa_currency",
    "general_joke",
    "calendar_set",
    "email_sendemail",
    "news_query",
    "iot_coffee",
)
needs_engines = pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("flite") is None,
    reason="espeak-ng and flite are needed (apt-get install espeak-ng flite)",
)


@pytest.fixture(scope="module")
def tiny_plan():
    return plan(0, TINY)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("flite") is None:
        pytest.skip("espeak-ng and flite are needed (apt-get install espeak-ng flite)")
    out = tmp_path_factory.mktemp("demo")
    build(out, seed=0, scale=0.01, workers=2, progress=False, intents=SUBSET)
    return out


@pytest.fixture(scope="module")
def subset_plan():
    return plan(0, 0.01, intents=SUBSET)


def _slots(template: str) -> list[str]:
    return re.findall(r"\{([a-z_]+(?::[a-z_]+)?)\}", template)


def test_inventory_is_broad_and_uses_the_real_labels():
    assert len(DEMO_TEMPLATES) >= 40 and set(DEMO_TEMPLATES) <= INTENT_SET
    assert {i.partition("_")[0] for i in DEMO_TEMPLATES} == SCENARIO_SET  # all 18 scenarios
    for intent, templates in DEMO_TEMPLATES.items():
        assert 3 <= len(templates) <= 6 and len(set(templates)) == len(templates), intent
        assert all(s in DEMO_FILLERS for t in templates for s in _slots(t)), intent
    assert {k.partition(":")[0] for k in [*DEMO_FILLERS, *NOVEL_FILLERS]} <= ENTITY_TYPE_SET
    assert all(s in NOVEL_FILLERS for ts in NOVEL_TEMPLATES.values() for t in ts for s in _slots(t))
    closed = {"player_setting", "meal_type"}  # small closed sets by nature
    for etype, values in DEMO_FILLERS.items():
        assert len(set(values)) == len(values) and values == [v.lower().strip() for v in values], etype
        assert (4 if etype in closed else 10) <= len(values) <= 40, etype
    # The novel set's phrasings are not train phrasings, and its filler values are new.
    train_templates = {t for ts in DEMO_TEMPLATES.values() for t in ts}
    assert not train_templates & {t for ts in NOVEL_TEMPLATES.values() for t in ts}
    for etype, values in NOVEL_FILLERS.items():
        assert not set(values) & set(DEMO_FILLERS.get(etype, [])), etype


def test_fill_keeps_prepositions_outside_spans_and_repeated_types_distinct():
    import random

    from data.synth_demo import fill

    fillers = {"date": ["on |monday"], "currency_name": ["yen", "euros"], "device_type:cleaner": ["roomba"]}
    text, ents = fill("wake me {date}", fillers, random.Random(0))
    assert text == "wake me on monday" and [(e.type, e.filler) for e in ents] == [("date", "monday")]
    for seed in range(20):
        text, ents = fill("{currency_name} to {currency_name}", fillers, random.Random(seed))
        assert ents[0].filler != ents[1].filler and text == f"{ents[0].filler} to {ents[1].filler}"
    assert fill("start the {device_type:cleaner}", fillers, random.Random(0))[1][0].type == "device_type"


def test_sentence_core_drops_one_wake_word_and_one_polite_suffix():
    assert sentence_core("hey olly turn the lights off please") == "turn the lights off"
    assert sentence_core("olly what time is it thanks") == "what time is it"
    assert sentence_core("okay okay google") == "okay google"  # only one prefix
    assert sentence_core("please tell me a joke") == "please tell me a joke"  # a leading "please" is the sentence
    assert sentence_core("hollywood news") == "hollywood news"  # whole words only


def test_slurp_sentences_keep_the_scorer_gold_and_only_known_intents():
    rows = slurp_texts(SLURP_DEVEL, set(DEMO_TEMPLATES))
    assert len(rows) > 800
    assert all(f.intent in DEMO_TEMPLATES and len(t.split()) <= 12 for t, f in rows)
    assert all(e.filler in t for t, f in rows for e in f.entities)
    # The fixture's first row, as data.slurp builds it: two currency names from the token surfaces.
    text, frame = next((t, f) for t, f in rows if t.startswith("siri what is one american dollar"))
    assert [(e.type, e.filler) for e in frame.entities] == [
        ("currency_name", "american dollar"),
        ("currency_name", "japanese yen"),
    ]


def test_full_scale_sizes():
    p = plan(0, 1.0)
    texts = Counter(t.split for t in p.texts if not t.text_only)
    recs = Counter(r.text.split for r in p.recordings)
    # round robin over the intents: the ones with few fillers run dry, the others make up for them
    assert sum(t.source == "text" for t in p.texts) == 3000
    assert 1200 <= sum(t.source == "slurp-text" for t in p.texts) <= 1500
    assert 1300 <= texts["train"] <= 1600 and 200 <= texts["dev"] <= 320 and 230 <= texts["test"] <= 350
    assert 3500 <= recs["train"] <= 4300 and 250 <= recs["dev"] <= 400 and 460 <= recs["test"] <= 700
    assert 90 <= len(p.novel_recordings) <= 110
    assert len(p.align_recordings) == 6000  # intents with few fillers run dry, the others make up for them
    assert 400 <= sum(t.source == "slurp" for t in p.texts) <= 500
    per_held = Counter(r.voice for r in p.recordings if r.text.split == "test")
    assert set(per_held) == set(held_out_voices()) and min(per_held.values()) >= 75  # ~85 per held-out voice
    # No core (the sentence without wake word and polite suffix) of a sentence with slots is in two sets: "olly X"
    # in training would give away "X please" in test.
    cores: dict[str, set[str]] = {}
    commands: dict[str, set[str]] = {}
    for t in p.texts:
        name = t.source if t.text_only else t.split  # text, slurp-text
        command = not t.frame.entities and t.source != "slurp-text"
        (commands if command else cores).setdefault(name, set()).add(sentence_core(t.transcript))
    cores["alignment"] = {sentence_core(r.text.transcript) for r in p.align_recordings}
    names = sorted(cores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if {a, b} != {"alignment", "slurp-text"}:  # alignment may hear the SLURP text-only sentences
                assert not cores[a] & cores[b], (a, b, sorted(cores[a] & cores[b])[:3])
    assert len(cores["alignment"] & cores["slurp-text"]) > 500  # their natural phrasing is what listening needs
    # Commands (no slot: "lights on") recur as in SLURP: every dev or test command is a training command said by
    # a new voice, with its own wrapping, and alignment never speaks one.
    assert commands["test"] and commands["test"] <= commands["train"] and commands["dev"] <= commands["train"]
    spoken = [t for t in p.texts if not t.text_only]
    assert len({t.transcript for t in spoken}) == len(spoken)  # never the same text twice
    assert not set().union(*commands.values()) & cores["alignment"]
    # every intent is tested; the six with commands only are tested on commands
    assert {t.frame.intent for t in p.texts if t.split == "test"} == set(DEMO_TEMPLATES)


def test_coverage_at_tiny_scale(tiny_plan):
    for split in ("train", "dev", "test"):
        intents = {t.frame.intent for t in tiny_plan.texts if t.split == split}
        assert intents <= INTENT_SET
        # every intent in every split, even when its 3 draws were commands (no slot) that must train first
        assert len(intents) == len(DEMO_TEMPLATES), split
        assert {i.partition("_")[0] for i in intents} == SCENARIO_SET
    assert {t.source for t in tiny_plan.texts if t.split == "train"} == {"template", "slurp", "text", "slurp-text"}


def test_text_only_sentences_are_new_labelled_and_never_spoken(tiny_plan):
    text_only = [t for t in tiny_plan.texts if t.source == "text"]
    spoken = [t for t in tiny_plan.texts if not t.text_only]
    assert len(text_only) >= len(DEMO_TEMPLATES) and all(t.split == "train" for t in text_only)
    assert {t.frame.intent for t in text_only} == set(DEMO_TEMPLATES)
    assert len({t.transcript for t in text_only}) == len(text_only)
    # not a dev/test sentence either, with any wake word or polite suffix (a command only recurs with another)
    slotted = lambda ts: {sentence_core(t.transcript) for t in ts if t.frame.entities}  # noqa: E731
    assert not slotted(text_only) & slotted(spoken)
    assert not {t.transcript for t in text_only} & {t.transcript for t in spoken}
    assert all(e.filler in t.transcript for t in text_only for e in t.frame.entities)
    assert not {r.text.text_id for r in tiny_plan.recordings} & {t.text_id for t in text_only}
    # Their fillers vary: more distinct (type, filler) pairs than the spoken training sentences alone.
    pairs = lambda ts: {(e.type, e.filler) for t in ts for e in t.frame.entities}  # noqa: E731
    assert len(pairs(text_only) - pairs(spoken)) > 0


def test_slurp_text_only_sentences_are_real_labelled_and_unspoken(tiny_plan):
    rows = [t for t in tiny_plan.texts if t.source == "slurp-text"]
    assert rows and all(t.text_only and t.split == "train" and t.frame.intent in INTENT_SET for t in rows)
    assert not {r.text.text_id for r in tiny_plan.recordings} & {t.text_id for t in rows}
    spoken = {sentence_core(t.transcript) for t in tiny_plan.texts if not t.text_only}
    assert not {sentence_core(t.transcript) for t in rows} & spoken  # alignment may hear them, the SLU sets never
    gold = dict(slurp_texts(SLURP_DEVEL, None, 20))
    assert all(gold[t.transcript] == t.frame for t in rows)  # the scorer's gold, as data.slurp builds it


def test_alignment_clips_are_new_sentences_spoken_once_by_train_voices(tiny_plan):
    align = tiny_plan.align_recordings
    texts = [r.text for r in align]
    assert len(align) >= 0.8 * 6000 * TINY and len({r.id for r in align}) == len(align)
    assert all(t.source == "align" and t.split == "train" for t in texts)
    assert len({t.transcript for t in texts}) == len(texts)  # each sentence spoken once
    others = {t.transcript for t in tiny_plan.texts + tiny_plan.novel if t.source != "slurp-text"}
    assert not {t.transcript for t in texts} & others  # no SLU sentence of any split, template text-only included
    novel_fillers = {f" {e.filler} " for t in tiny_plan.novel for e in t.frame.entities}
    assert not any(f in f" {t.transcript} " for t in texts for f in novel_fillers)
    assert {r.voice for r in align} <= set(train_voices()) and {r.voice.engine for r in align} == {"espeak", "flite"}
    assert all(r.augment.startswith("speed=") and r.audio.startswith("audio/align/") for r in align)
    # natural SLURP phrasing of any intent beside the templates, most intents of the templates
    assert any(t.frame.intent not in DEMO_TEMPLATES for t in texts)
    assert len({t.frame.intent for t in texts} & set(DEMO_TEMPLATES)) >= 0.8 * len(DEMO_TEMPLATES)


def test_held_out_voices_speak_only_test_and_novel(tiny_plan):
    held, train_pool = set(held_out_voices()), set(train_voices())
    assert not held & train_pool
    by_split: dict[str, set[Voice]] = {}
    for r in tiny_plan.recordings + tiny_plan.novel_recordings:
        by_split.setdefault(r.text.source if r.text.source == "novel" else r.text.split, set()).add(r.voice)
    assert by_split["train"] <= train_pool and by_split["dev"] <= train_pool
    assert by_split["test"] == held and by_split["novel"] <= held
    assert {v.engine for v in by_split["train"]} == {"espeak", "flite"}
    # Accents, variants and flite voices of the held-out pool never occur in training at all.
    train_names = {v.name for v in train_pool}
    assert not any("scotland" in n or "en-029" in n or "klatt" in n or "+f4" in n for n in train_names)
    assert {v.name for v in held if v.engine == "flite"}.isdisjoint(FLITE_TRAIN)


def test_splits_never_share_a_sentence_and_novel_is_new_in_every_form(tiny_plan):
    by_split = {s: {t.transcript for t in tiny_plan.texts if t.split == s} for s in ("train", "dev", "test")}
    assert not by_split["train"] & by_split["test"] and not by_split["train"] & by_split["dev"]
    assert not by_split["dev"] & by_split["test"]
    seen = set().union(*by_split.values())
    novel = [t for t in tiny_plan.novel]
    assert len(novel) >= 10 and len({t.transcript for t in novel}) == len(novel)
    assert all(t.split == "test" and t.transcript not in seen for t in novel)
    padded = [f" {s} " for s in seen]
    for t in novel:
        for e in t.frame.entities:
            assert e.filler in t.transcript and not any(f" {e.filler} " in s for s in padded), (t, e)


def test_plan_is_deterministic(tiny_plan):
    again = plan(0, TINY)
    assert again.texts == tiny_plan.texts and again.recordings == tiny_plan.recordings
    other = plan(1, TINY)
    assert [t.transcript for t in other.texts] != [t.transcript for t in tiny_plan.texts]
    assert [r.voice for r in other.recordings] != [r.voice for r in tiny_plan.recordings]


def _speechlike(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)  # syllable-like bursts and pauses
    return (0.5 * env * np.sin(2 * np.pi * (150 + 50 * t) * t)).astype(np.float32)


@pytest.mark.parametrize("speed", [0.9, 1.0, 1.1, 1.2])
def test_augmentation_changes_the_waveform_and_keeps_duration(speed):
    x = _speechlike()
    y = augment(x, f"speed={speed} gain=+4.0dB noise=pink@20dB", seed=7)
    assert abs(len(y) / len(x) - 1 / speed) < 0.01 and abs(len(y) / len(x) - 1) <= 0.18
    assert np.abs(y).max() <= 0.99 + 1e-6  # +4 dB on a 0.5 peak would clip; it is scaled back instead
    if speed == 1.0:
        assert not np.allclose(y, x * 10 ** (4 / 20), atol=1e-3)
    assert np.array_equal(y, augment(x, f"speed={speed} gain=+4.0dB noise=pink@20dB", seed=7))  # seeded
    assert not np.array_equal(y, augment(x, f"speed={speed} gain=+4.0dB noise=pink@20dB", seed=8))


@pytest.mark.parametrize("snr", [30, 20, 10])
def test_noise_is_added_at_the_requested_snr(snr):
    x = _speechlike()
    y = augment(x, f"noise=white@{snr}dB", seed=1)
    speech = x[np.abs(x) > 0.02 * np.abs(x).max()]
    measured = 10 * np.log10(np.mean(speech**2) / np.mean((y - x) ** 2))
    assert measured == pytest.approx(snr, abs=0.5)


def test_noise_colours_have_their_spectral_slopes():
    rng = np.random.default_rng(0)
    low = {}
    for color in ("white", "pink", "brown"):
        n = colored_noise(32000, color, rng)
        assert np.sqrt(np.mean(n**2)) == pytest.approx(1.0, rel=1e-3)
        power = np.abs(np.fft.rfft(n)) ** 2
        low[color] = power[: len(power) // 16].sum() / power.sum()  # share below 500 Hz
    assert low["white"] < 0.1 < low["pink"] < low["brown"]


def test_missing_engines_are_explained():
    with pytest.raises(VoiceError, match="apt-get install flite"):
        check_engines([Voice("flite", "awb")], flite="flite-not-installed")
    with pytest.raises(VoiceError, match="apt-get install espeak-ng"):
        check_engines([Voice("espeak", "en-us")], espeak="espeak-ng-not-installed")


def test_unknown_intent_subset_is_refused():
    with pytest.raises(DemoError, match="no demo templates for intent"):
        plan(0, TINY, intents=["alarm_set", "alarm_snooze"])


def test_cli_rejects_a_bad_preset_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "data.synth", "--preset", "huge", "--out", "/tmp/x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: --preset: unknown preset 'huge'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_demo_corpus_loads_and_matches_its_plan(demo_dir, subset_plan):
    corpus = load_corpus("manifest", path=demo_dir / "manifest.jsonl", missing_audio="error")
    assert set(corpus.splits) == {"train", "dev", "test"} and corpus.languages == ["en-US"]
    assert len(corpus.speech) == len(subset_plan.recordings)
    text_only = {t.text_id for t in subset_plan.texts if t.text_only}
    assert text_only and text_only <= {x.id for x in corpus.split("train").texts}
    assert not text_only & {x.text_id for x in corpus.speech}
    assert {x.frame.intent for x in corpus.split("train").speech} == set(SUBSET)
    assert {x.frame.intent for x in corpus.split("test").speech} == set(SUBSET)
    novel = load_corpus("manifest", path=demo_dir / "novel.jsonl", missing_audio="error")
    assert set(novel.splits) == {"test"} and len(novel.speech) == len(subset_plan.novel_recordings) >= 10
    assert {x.frame.intent for x in novel.speech} <= set(SUBSET)
    noisy = load_corpus("manifest", path=demo_dir / "test_noisy.jsonl", missing_audio="error")
    assert len(noisy.speech) == len(corpus.split("test").speech)
    rows = [json.loads(x) for x in (demo_dir / "manifest.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows if not r["audio"]} == text_only
    rows = [r for r in rows if r["audio"]]
    held = {v.key for v in held_out_voices()}
    assert all((r["voice"] in held) == (r["split"] == "test") for r in rows)
    assert all(r["speaker"].startswith(r["voice"] + "@") for r in rows)
    assert {r["engine"] for r in rows} == {"espeak-ng", "flite"}
    assert all(bool(r["augment"]) == (r["split"] == "train") for r in rows)
    for r in rows[:: max(1, len(rows) // 25)]:
        info = sf.info(demo_dir / r["audio"])
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert info.duration == pytest.approx(r["duration_s"], abs=1e-3) and 0.5 < info.duration < 6
    align = load_corpus("manifest", path=demo_dir / "alignment.jsonl", missing_audio="error")
    assert len(align.speech) == len(subset_plan.align_recordings) > 0 and set(align.splits) == {"train"}
    cores = lambda xs: {sentence_core(x.transcript) for x in xs}  # noqa: E731
    slurp_text = {t.transcript for t in subset_plan.texts if t.source == "slurp-text"}
    templates = [x for x in corpus.texts if x.transcript not in slurp_text]
    assert not cores(align.speech) & cores(corpus.speech + templates)  # no SLU sentence, with any wake word
    summary = json.loads((demo_dir / "summary.json").read_text())
    assert summary["splits"]["alignment"]["recordings"] == len(align.speech)
    assert summary["text_only_train_texts"] == len(text_only)
    assert 0 < summary["text_only_slurp_texts"] < len(text_only)
    assert summary["intents"] == len(SUBSET) and summary["scenarios"] == len({i.split("_")[0] for i in SUBSET})


@needs_engines
def test_train_speech_is_augmented_and_rendering_is_deterministic(demo_dir, subset_plan, tmp_path):
    rec = next(
        r
        for r in subset_plan.recordings
        if r.text.split == "train" and "noise=" in r.augment and "speed=1.0" not in r.augment
    )
    clean = type(rec)(rec.id, rec.text, rec.voice, rec.rate, rec.pitch, rec.audio)  # same voice, no augmentation
    d_aug, _ = render((rec, str(tmp_path / "a"), 0, "espeak-ng", "flite"))
    d_clean, _ = render((clean, str(tmp_path / "b"), 0, "espeak-ng", "flite"))
    assert abs(d_aug / d_clean - 1) <= 0.18 and d_aug != d_clean
    assert (tmp_path / "a" / rec.audio).read_bytes() == (demo_dir / rec.audio).read_bytes()  # same seed, same bytes
    assert (tmp_path / "a" / rec.audio).read_bytes() != (tmp_path / "b" / rec.audio).read_bytes()


def test_voice_of_speaker_inverts_speaker_label():
    from data.synth_voices import Voice, speaker_label, voice_of_speaker

    for key, rate, pitch in (("espeak:en-us+m3", 160, 50), ("flite:slt", 1.1, -20)):
        voice = Voice.parse(key)
        assert voice_of_speaker(speaker_label(voice, rate, pitch)) == key
    assert voice_of_speaker("alice") == "alice"  # a real corpus's speaker is its own voice
