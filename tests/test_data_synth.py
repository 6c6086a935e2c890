"""The espeak-ng synthetic corpus: label coverage, manifest format, determinism, audio, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data.audio import SAMPLE_RATE, load_audio
from data.corpus import load_corpus
from data.labels import ENTITY_TYPE_SET, INTENT_SET
from data.synth import SynthConfig, SynthError, check_espeak, plan, synthesize
from data.synth_templates import FILLERS, TEMPLATES


def test_templates_cover_the_required_label_inventory():
    for lang, templates in TEMPLATES.items():
        intents = set(templates)
        assert len(intents) >= 12 and intents <= INTENT_SET, lang
        assert len({i.partition("_")[0] for i in intents}) >= 6
        slots = {s for ts in templates.values() for t in ts for s in __import__("re").findall(r"\{(\w+)\}", t)}
        assert len(slots) >= 8 and slots <= ENTITY_TYPE_SET and slots <= set(FILLERS[lang]), lang
        assert all(len(v) >= 3 for v in FILLERS[lang].values())


def test_plan_is_deterministic_and_split_by_text():
    cfg = SynthConfig(languages="en,fr,de,it,es,pt,ko,vi", per_intent=6, seed=3)
    a, b = plan(cfg), plan(cfg)
    assert a == b
    assert plan(SynthConfig(languages="en", per_intent=6, seed=4)) != [u for u in a if u.language == "en"]
    assert {u.split for u in a} == {"train", "dev", "test"}
    split_of = {}
    for u in a:
        assert split_of.setdefault((u.language, u.text_id), u.split) == u.split  # a text never crosses splits
    assert len({u.voice for u in a if u.language == "en"}) >= 4 and len({u.speed_wpm for u in a}) == 3


def test_synth_corpus_loads_as_a_manifest(synth_corpus_dir):
    corpus = load_corpus("manifest", path=synth_corpus_dir / "manifest.jsonl")
    assert corpus.languages == ["en-US", "fr-FR"] and set(corpus.splits) == {"train", "dev", "test"}
    assert len(corpus.speech) == 2 * 12 * 2
    assert len({x.frame.intent for x in corpus.speech}) == 12
    x = corpus.speech[0]
    audio = load_audio(x.audio)
    assert audio.dtype.name == "float32" and len(audio) / SAMPLE_RATE == pytest.approx(x.audio.duration_s, abs=0.01)
    import soundfile as sf

    info = sf.info(x.audio.path)
    assert (info.samplerate, info.channels) == (16000, 1)
    # The entities are spelled out in the transcript.
    for item in corpus.texts:
        assert all(e.filler in item.transcript for e in item.frame.entities)


def test_same_seed_same_bytes(tmp_path, synth_corpus_dir):
    manifest = synthesize(SynthConfig(out=str(tmp_path), languages="fr", per_intent=1, seed=0, workers=1))
    rows = manifest.read_text().splitlines()
    reference = [r for r in (synth_corpus_dir / "manifest.jsonl").read_text().splitlines() if '"fr-FR"' in r]
    first = rows[0]
    import json

    r = json.loads(first)
    same = [json.loads(x) for x in reference if json.loads(x)["id"] == r["id"]][0]
    assert same["transcript"] == r["transcript"] and same["speaker"] == r["speaker"]
    assert (tmp_path / r["audio"]).read_bytes() == (synth_corpus_dir / same["audio"]).read_bytes()


def test_missing_espeak_and_bad_config_are_explained():
    with pytest.raises(SynthError, match="apt-get install espeak-ng"):
        check_espeak("espeak-ng-not-installed")
    with pytest.raises(SynthError, match="no templates for \\['xx'\\]"):
        SynthConfig(languages="en,xx")
    proc = subprocess.run(
        [sys.executable, "-m", "data.synth", "--out", "/tmp/x", "--per-intent", "0"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: --per-intent must be at least 1")
