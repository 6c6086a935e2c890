"""A synthetic spoken SLU corpus: our own templates spoken by espeak-ng, for tests, the demo and CPU-scale runs.

    python -m data.synth --out synth --languages en,fr --per-intent 20 --seed 0
    python -m data.synth --preset demo --out demo_corpus --seed 0 --scale 1.0   # English demo corpus, see data/synth_demo.py

writes ``synth/audio/<lang>/<id>.wav`` (16 kHz mono PCM) and ``synth/manifest.jsonl`` in the user-manifest format
(id, text_id, transcript, audio, split, language, scenario, action, entities, speaker, duration_s), loadable with
``load_corpus("manifest", path="synth/manifest.jsonl")``. Templates and fillers are in data/synth_templates.py:
12 intents, 10 scenarios, 10 entity types, 8 languages (en, fr, de, it, es, pt, ko, vi). Each utterance gets a
voice, a voice variant and a speed drawn from the seed, so there are many "speakers" per language.

Deterministic: the same seed gives the same manifest and the same audio (espeak-ng is deterministic). Each
language's utterances are split about 70/15/15 into train/dev/test by distinct sentence (a sentence drawn
twice is two recordings of one text, sharing a ``text_id`` and a split). Synthesis runs in parallel worker threads
(each call is an espeak-ng subprocess).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data.audio import SAMPLE_RATE, resample
from data.cli import run_cli
from data.frames import Entity, SLUFrame, split_intent
from data.seeds import stable_rng
from data.synth_templates import FILLERS, SPEEDS_WPM, TEMPLATES, VARIANTS, VOICES
from data.textio import atomic_write_text

_SLOT_RE = re.compile(r"\{([a-z_]+)\}")


class SynthError(RuntimeError):
    """The synthetic corpus cannot be made as asked (e.g. espeak-ng missing); the message says what to do."""


@dataclass
class SynthConfig:
    out: str = field(default="synth", metadata={"help": "output folder"})
    languages: str = field(default="en,fr", metadata={"help": "comma-separated: en,fr,de,it,es,pt,ko,vi"})
    per_intent: int = field(default=10, metadata={"help": "utterances per intent and language"})
    seed: int = field(default=0, metadata={"help": "random seed (same seed, same corpus)"})
    workers: int = field(default=0, metadata={"help": "parallel synthesis workers (0 = number of CPUs)"})
    espeak: str = field(default="espeak-ng", metadata={"help": "espeak-ng executable"})
    preset: str = field(
        default="",
        metadata={
            "help": "'demo': the English demo corpus (56 intents, two engines, "
            "held-out voices, augmentation; data/synth_demo.py); "
            "'' = the multilingual per-intent corpus"
        },
    )
    scale: float = field(
        default=1.0,
        metadata={"help": "demo preset: corpus size factor (1.0 = ~4,000 train recordings; 0.05 = seconds)"},
    )
    flite: str = field(default="flite", metadata={"help": "flite executable (demo preset)"})
    slurp: str = field(
        default="",
        metadata={
            "help": "demo preset: SLURP devel.jsonl for extra phrasing "
            "('' = the shipped fixture, 'none' = templates only)"
        },
    )

    def __post_init__(self) -> None:
        if self.preset not in ("", "demo"):
            raise SynthError(f"--preset: unknown preset {self.preset!r}; choose demo (or leave it out)")
        if self.preset and not self.scale > 0:
            raise SynthError(f"--scale must be positive, got {self.scale}")
        unknown = [x for x in self.language_list() if x not in TEMPLATES]
        if unknown:
            raise SynthError(f"--languages: no templates for {unknown}; choose from {', '.join(TEMPLATES)}")
        if not self.language_list():
            raise SynthError("--languages is empty")
        if self.per_intent < 1:
            raise SynthError(f"--per-intent must be at least 1, got {self.per_intent}")

    def language_list(self) -> list[str]:
        return [x.strip() for x in self.languages.split(",") if x.strip()]


@dataclass(frozen=True)
class Utterance:
    id: str
    language: str  # template language, e.g. "fr"
    locale: str  # e.g. "fr-FR"
    split: str
    transcript: str
    frame: SLUFrame
    voice: str
    speed_wpm: int
    text_id: str

    def manifest_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text_id": self.text_id,
            "transcript": self.transcript,
            "audio": f"audio/{self.language}/{self.id}.wav",
            "split": self.split,
            "language": self.locale,
            "scenario": self.frame.scenario,
            "action": self.frame.action,
            "entities": [e.to_dict() for e in self.frame.entities],
            "speaker": f"espeak:{self.voice}@{self.speed_wpm}",
            "corpus": "synth",
        }


_rng = stable_rng  # a per-item generator from a stable digest: the corpus does not depend on iteration or worker order


def fill(template: str, fillers: dict[str, list[str]], rng: random.Random) -> tuple[str, tuple[Entity, ...]]:
    """Fill a template's ``{type}`` slots; returns the text and its entities in textual order."""
    entities: list[Entity] = []

    def sub(m: re.Match[str]) -> str:
        value = rng.choice(fillers[m.group(1)])
        entities.append(Entity(m.group(1), value))
        return value

    text = " ".join(_SLOT_RE.sub(sub, template).split())
    return text, tuple(entities)


def plan(cfg: SynthConfig) -> list[Utterance]:
    """Every utterance to synthesise (text, labels, voice, speed, split), without touching espeak."""
    out: list[Utterance] = []
    for lang in cfg.language_list():
        locale, voices = VOICES[lang]
        items = []
        for intent, templates in TEMPLATES[lang].items():
            seen: set[str] = set()
            for k in range(cfg.per_intent):
                rng = _rng(cfg.seed, lang, intent, k)
                # Prefer a sentence not produced yet for this intent; templates with few slots run out quickly.
                for _ in range(10):
                    text, entities = fill(rng.choice(templates), FILLERS[lang], rng)
                    if text not in seen:
                        break
                seen.add(text)
                voice = rng.choice(voices) + rng.choice(VARIANTS)
                scenario, action = split_intent(intent)
                items.append(
                    (
                        f"synth-{lang}-{intent}-{k:04d}",
                        text,
                        SLUFrame(scenario, action, entities),
                        voice,
                        rng.choice(SPEEDS_WPM),
                    )
                )
        # Identical sentences (same template and fillers, other voices) are recordings of one text: they share a
        # text_id and always land in the same split, so no test sentence is seen in training.
        text_ids: dict[str, str] = {}
        for _, text, _, _, _ in items:
            text_ids.setdefault(text, f"synth-{lang}-t{len(text_ids):05d}")
        texts = list(text_ids)
        _rng(cfg.seed, lang, "split").shuffle(texts)
        per_text = {t: 0 for t in texts}
        for _, text, _, _, _ in items:
            per_text[text] += 1
        split_of, done, n = {}, 0, len(items)
        for text in texts:
            split_of[text] = "train" if done < 0.7 * n else "dev" if done < 0.85 * n else "test"
            done += per_text[text]
        for uid, text, frame, voice, speed in items:
            out.append(Utterance(uid, lang, locale, split_of[text], text, frame, voice, speed, text_ids[text]))
    return out


def check_espeak(executable: str = "espeak-ng") -> str:
    path = shutil.which(executable)
    if path is None:
        raise SynthError(
            f"{executable} not found. Install it: `sudo apt-get install espeak-ng` (Debian/Ubuntu), "
            f"`sudo dnf install espeak-ng` (Fedora) or `brew install espeak-ng` (macOS)"
        )
    return path


def speak(utt: Utterance, out_file: Path, espeak: str = "espeak-ng") -> float:
    """Synthesise one utterance to a 16 kHz mono PCM wav; returns its duration in seconds."""
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=out_file.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        proc = subprocess.run(
            [espeak, "-v", utt.voice, "-s", str(utt.speed_wpm), "-w", str(tmp_path), utt.transcript],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0 or tmp_path.stat().st_size == 0:
            raise SynthError(
                f"espeak-ng failed for voice {utt.voice!r} ({proc.stderr.strip() or 'no output'}); "
                f"check `espeak-ng --voices` lists it"
            )
        samples, sr = sf.read(tmp_path, dtype="float32", always_2d=True)
        audio = resample(samples.mean(axis=1), sr, SAMPLE_RATE)
        sf.write(out_file, np.clip(audio, -1, 1), SAMPLE_RATE, subtype="PCM_16")
        return len(audio) / SAMPLE_RATE
    finally:
        tmp_path.unlink(missing_ok=True)


def synthesize(cfg: SynthConfig) -> Path:
    """Make the corpus described by ``cfg``; returns the manifest path."""
    espeak = check_espeak(cfg.espeak)
    utterances = plan(cfg)
    out = Path(cfg.out)
    for lang in cfg.language_list():
        (out / "audio" / lang).mkdir(parents=True, exist_ok=True)
    workers = cfg.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(speak, u, out / "audio" / u.language / f"{u.id}.wav", espeak) for u in utterances]
        durations = [job.result() for job in tqdm(jobs, desc="espeak-ng", unit="utt", disable=len(jobs) < 200)]
    rows = []
    for utt, duration in zip(utterances, durations):
        rows.append({**utt.manifest_row(), "duration_s": round(duration, 4)})
    manifest = out / "manifest.jsonl"
    atomic_write_text(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return manifest


def main(cfg: SynthConfig) -> Path:
    if cfg.preset == "demo":
        from data.synth_demo import SLURP_DEVEL, build

        slurp = None if cfg.slurp == "none" else Path(cfg.slurp) if cfg.slurp else SLURP_DEVEL
        build(
            cfg.out,
            seed=cfg.seed,
            scale=cfg.scale,
            workers=cfg.workers or min(2, os.cpu_count() or 1),
            slurp=slurp,
            espeak=cfg.espeak,
            flite=cfg.flite,
        )
        manifest = Path(cfg.out) / "manifest.jsonl"
        print(manifest)
        return manifest
    manifest = synthesize(cfg)
    print(manifest)
    return manifest


def cli(argv: list[str] | None = None) -> int:
    from data.synth_demo import DemoError
    from data.synth_voices import VoiceError

    return run_cli(
        main,
        SynthConfig,
        (SynthError, DemoError, VoiceError, OSError),
        argv=argv,
        prog="python -m data.synth",
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(cli())
