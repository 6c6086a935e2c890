"""Voices of the English demo corpus (data/synth_demo.py): two engines, a train pool and a held-out pool.

A voice is an engine plus a voice name (espeak-ng: language voice + variant, e.g. ``en-us+m3``; flite: ``awb``).
Rate and pitch are drawn per recording on top (espeak-ng: 140-190 wpm, pitch 30-70; flite: duration stretch
0.9-1.1, mean F0 shifted), so every recording's ``speaker`` is ``engine:voice@rate/pitch``.

TRAIN voices speak train, dev and the alignment-only clips; HELD-OUT voices speak only test and novel. The held-out
pool is disjoint by construction: its espeak-ng accents (Scotland, Caribbean, West Midlands) and variants (f4, m6,
Annie, every klatt*; no train variant uses the klatt synthesiser) never occur in the train pool, and its flite voices
(slt, kal16) are not among the train flite voices (kal, awb, rms).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data.audio import SAMPLE_RATE, resample

ESPEAK = "espeak-ng"
FLITE = "flite"

ESPEAK_TRAIN_LANGS = ("en-us", "en-gb", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan")
ESPEAK_TRAIN_VARIANTS = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m7",
    "f1",
    "f2",
    "f3",
    "f5",
    "Andy",
    "Alex",
    "Mike",
    "steph",
    "robert",
    # more speakers: every espeak-ng variant that sounds like a person and does not use the klatt synthesiser (the
    # held-out en-us+klatt stays the only klatt voice), so the encoder meets many vocal tracts, not a few
    *(
        "Alicia Andrea antonio aunty belinda boris Diogo ed Gene Gene2 gustave Henrique Hugo iven iven2 iven3 iven4 "
        "Jacky john kaukovalta Lee linda marcelo Marco Mario max Michael michel miguel Nguyen pablo paul pedro "
        "quincy rob steph2 steph3 Storm zac anika grandpa grandma norbert sandro shelby travis victor m8"
    ).split(),
)
FLITE_TRAIN = ("kal", "awb", "rms")
HELD_OUT = (
    "espeak:en-gb-scotland+f4",
    "espeak:en-029+m6",
    "espeak:en-us+klatt",
    "espeak:en-gb-x-gbcwmd+Annie",
    "flite:slt",
    "flite:kal16",
)

ESPEAK_RATES = tuple(range(140, 191, 10))
ESPEAK_PITCHES = tuple(range(30, 71, 5))
FLITE_STRETCH = (0.9, 1.0, 1.1)
FLITE_F0 = (-20, -10, 0, 10, 20)  # Hz added to the voice's mean F0
FLITE_BASE_F0 = {"kal": 105, "kal16": 105, "awb": 110, "rms": 100, "slt": 170}


class VoiceError(RuntimeError):
    """A synthesis engine is missing or failed; the message says what to do."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak" or "flite"
    name: str  # "en-us+m3", "en-gb" (no variant), "awb"

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"

    @classmethod
    def parse(cls, key: str) -> "Voice":
        engine, _, name = key.partition(":")
        return cls(engine, name)


def train_voices() -> list[Voice]:
    out = [Voice("espeak", lang + (f"+{v}" if v else "")) for lang in ESPEAK_TRAIN_LANGS for v in ESPEAK_TRAIN_VARIANTS]
    return out + [Voice("flite", v) for v in FLITE_TRAIN]


def held_out_voices() -> list[Voice]:
    return [Voice.parse(k) for k in HELD_OUT]


def speaker_label(voice: Voice, rate: float, pitch: int) -> str:
    if voice.engine == "espeak":
        return f"espeak:{voice.name}@{int(rate)}/{pitch}"
    return f"flite:{voice.name}@x{rate:.1f}/{pitch:+d}"


def voice_of_speaker(speaker: str) -> str:
    """The voice of a ``speaker`` label, without the rate/pitch after "@" (``espeak:en-us+f3@160/50`` ->
    ``espeak:en-us+f3``); a speaker of another corpus, with no "@", is its own voice."""
    return speaker.split("@", 1)[0]


_INSTALL = {
    "espeak": "`sudo apt-get install espeak-ng` (Debian/Ubuntu), `sudo dnf install espeak-ng` or `brew install espeak-ng`",
    "flite": "`sudo apt-get install flite` (Debian/Ubuntu), `sudo dnf install flite` or `brew install flite`",
}


def check_engines(voices: list[Voice], espeak: str = ESPEAK, flite: str = FLITE) -> None:
    """One clear error if an engine (or a flite voice) the plan needs is not installed."""
    engines = {v.engine for v in voices}
    for engine, exe in (("espeak", espeak), ("flite", flite)):
        if engine in engines and shutil.which(exe) is None:
            raise VoiceError(f"{exe} not found; the demo corpus needs it. Install it: {_INSTALL[engine]}")
    if "flite" in engines:
        listed = subprocess.run([flite, "-lv"], capture_output=True, text=True, timeout=30).stdout.split()
        missing = sorted({v.name for v in voices if v.engine == "flite"} - set(listed))
        if missing:
            raise VoiceError(
                f"flite has no voice(s) {', '.join(missing)} (`{flite} -lv` lists {' '.join(listed[2:])}); "
                f"install Debian's full flite package"
            )


def synthesize_raw(
    text: str, voice: Voice, rate: float, pitch: int, tmp_dir: Path, espeak: str = ESPEAK, flite: str = FLITE
) -> np.ndarray:
    """One utterance as float32 mono at 16 kHz."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav", dir=tmp_dir, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        if voice.engine == "espeak":
            cmd = [espeak, "-v", voice.name, "-s", str(int(rate)), "-p", str(pitch), "-w", str(tmp_path), text]
        elif voice.engine == "flite":
            f0 = FLITE_BASE_F0.get(voice.name, 110) + pitch
            cmd = [
                flite,
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={1.0 / rate:.3f}",
                "--setf",
                f"int_f0_target_mean={f0}",
                "-t",
                text,
                "-o",
                str(tmp_path),
            ]
        else:
            raise VoiceError(f"unknown engine {voice.engine!r}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not tmp_path.exists() or tmp_path.stat().st_size <= 44:
            raise VoiceError(
                f"{cmd[0]} failed for voice {voice.key!r} on {text!r}: {proc.stderr.strip() or 'no output'}"
            )
        samples, sr = sf.read(tmp_path, dtype="float32", always_2d=True)
    finally:
        tmp_path.unlink(missing_ok=True)
    return resample(samples.mean(axis=1), sr, SAMPLE_RATE).astype(np.float32)
