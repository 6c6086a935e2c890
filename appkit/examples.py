"""Example clips one click away: held-out clips of the demo corpus when they exist, espeak-ng sentences until then.

Both are a manifest (data/manifest.py format) with audio files beside it, so the page knows each clip's gold frame
and transcript. The espeak-ng clips are spoken on first app start (about a second) into a cache folder, never at
import: ``$LALM_SLU_APP_CACHE``, else ``$XDG_CACHE_HOME/lalm-slu/app``, else ``~/.cache/lalm-slu/app``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from appkit.catalog import DEMO_RUNS_DIR

EXAMPLE_LANGUAGES = "en,fr"
EXAMPLES_PER_LANGUAGE = {"en": 5, "fr": 1}
EXAMPLE_SEED = 7


@dataclass(frozen=True)
class Example:
    path: str
    transcript: str
    frame: object  # data.frames.SLUFrame (the gold)
    language: str


def cache_dir() -> Path:
    if os.environ.get("LALM_SLU_APP_CACHE"):
        return Path(os.environ["LALM_SLU_APP_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lalm-slu" / "app"


def demo_manifest() -> Path | None:
    """The demo corpus's held-out clips, when the demo checkpoints have landed."""
    path = DEMO_RUNS_DIR / "examples" / "manifest.jsonl"
    return path if path.is_file() else None


def synth_examples(out: Path) -> Path | None:
    """Speak a few held-out sentences of the synthetic corpus with espeak-ng (once); None without espeak-ng."""
    manifest = out / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    if shutil.which("espeak-ng") is None:
        return None
    from data.synth import SynthConfig, plan, speak
    from data.textio import atomic_write_text

    utterances = plan(SynthConfig(out=str(out), languages=EXAMPLE_LANGUAGES, per_intent=6, seed=EXAMPLE_SEED))
    chosen, intents = [], set()
    for u in utterances:  # distinct intents, test split first
        if (
            u.split == "test"
            and u.frame.intent not in intents
            and sum(c.language == u.language for c in chosen) < EXAMPLES_PER_LANGUAGE[u.language]
        ):
            chosen.append(u)
            intents.add(u.frame.intent)
    rows = []
    for u in chosen:
        wav = out / "audio" / u.language / f"{u.id}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        duration = speak(u, wav)
        rows.append({**u.manifest_row(), "duration_s": round(duration, 3)})
    atomic_write_text(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return manifest


def load_examples(manifest: Path | None) -> list[Example]:
    if manifest is None:
        return []
    from data.manifest import load_manifest

    corpus = load_manifest(manifest, missing_audio="drop")
    return [Example(x.audio.path, x.transcript, x.frame, x.language) for x in corpus.speech if x.audio is not None]


def example_clips() -> list[Example]:
    """The example clips the Live and Compare tabs offer (the demo corpus if present, else espeak-ng sentences)."""
    return load_examples(demo_manifest() or synth_examples(cache_dir() / "examples"))
