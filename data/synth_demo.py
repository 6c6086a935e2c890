"""The English demo corpus: ``python -m data.synth --preset demo --out DIR [--seed 0] [--scale 1.0]``.

Texts: our own templates and fillers (data/synth_templates.py: DEMO_TEMPLATES, 56 intents over all 18 SLURP
scenarios) plus, as natural phrasing for training, real SLURP devel sentences whose intent is in that inventory
(tests/fixtures/slurp/devel.jsonl: SLURP, Bastianelli et al., EMNLP 2020, CC BY 4.0; gold entities built by
data.slurp.slurp_frame, as the official scorer builds them): N_TRAIN_SLURP of them spoken, up to N_TRAIN_SLURP_TEXT
more as text-only rows. Template sentences with slots are split into train/dev/test by their core
(``sentence_core``: the sentence without wake word and polite suffix), so no test sentence is a train sentence with
another wake word. Commands (templates without a slot, "lights on") have nothing to vary, so, as in SLURP, they
recur: every dev or test command is a training command with its own wrapping, said by a new voice.

Speech (data/synth_voices.py): train texts are spoken 2-3 times by different TRAIN voices (espeak-ng variants and
flite kal/awb/rms, rate and pitch drawn per recording) and augmented (speed 0.9/1.0/1.1/1.2, gain -6..+6 dB without
clipping, white/pink/brown noise at 30/20/10 dB SNR, all seeded per recording); dev is spoken by train voices,
clean; test twice by HELD-OUT voices (never heard in train/dev), clean, plus a noisy copy in test_noisy.jsonl.
Text-only training rows (no audio; ``source: "text"`` or ``"slurp-text"``): the paper's setting is plentiful text and
scarce speech, so beside the spoken train sentences the corpus holds N_TRAIN_TEXT more sentences of the same
templates with fillers drawn afresh, and the unspoken SLURP sentences above, labelled but never spoken. A small model
trained from scratch on only the spoken sentences learns them by heart (it answers a test sentence with the fillers
of a training sentence like it); sentences whose fillers vary teach it to copy the filler it reads or hears. They
are distinct from every dev/test sentence.
novel.jsonl: sentences from NOVEL_TEMPLATES/NOVEL_FILLERS (phrasings and filler values absent from
train/dev/test), spoken by held-out voices.
alignment.jsonl: about N_ALIGN more sentences (SLURP devel sentences that no spoken set uses, and template sentences
with fresh fillers), each spoken once by a TRAIN voice with augmentation, for the alignment pre-training stage only
(training/pretrain.py --alignment-manifest). It stands in for the large transcribed-speech data a real LALM is
pre-trained on: the SLU schemes never see it, so their speech levels still count only manifest.jsonl's clips. None of
its sentences shares its core with a train/dev/test sentence or a template text-only sentence, or holds a novel
filler (the SLURP text-only rows may be heard: transcribed speech and labelled text of the same sentences, as a team
with an ASR corpus and labelled text would have); held-out voices never speak it.

Writes DIR/manifest.jsonl (train/dev/test), DIR/novel.jsonl, DIR/test_noisy.jsonl, DIR/alignment.jsonl,
DIR/summary.json and
DIR/audio/<split>/<id>.wav (16 kHz mono PCM_16). Same seed and scale, same corpus.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data.audio import SAMPLE_RATE, resample
from data.corpus import iter_jsonl
from data.seeds import stable_rng
from data.frames import Entity, SLUFrame, normalize_text, split_intent
from data.slurp import slurp_frame
from data.synth_templates import DEMO_FILLERS, DEMO_TEMPLATES, NOVEL_FILLERS, NOVEL_TEMPLATES
from data.synth_voices import (
    ESPEAK_PITCHES,
    ESPEAK_RATES,
    FLITE_F0,
    FLITE_STRETCH,
    Voice,
    check_engines,
    held_out_voices,
    speaker_label,
    synthesize_raw,
    train_voices,
)
from data.textio import atomic_write_text

SLURP_DEVEL = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "slurp" / "devel.jsonl"
LOCALE = "en-US"
CORPUS = "synth-demo"
_SLOT_RE = re.compile(r"\{([a-z_]+(?::[a-z_]+)?)\}")  # {type} or {type:list}: values of list "type:list"

# Sizes at --scale 1.0.
N_TRAIN_TEMPLATE, N_TRAIN_SLURP, N_DEV, N_TEST, N_NOVEL = 1000, 500, 250, 300, 100
N_TRAIN_TEXT = 3000  # text-only training sentences of the templates (labelled, not spoken)
N_TRAIN_SLURP_TEXT = 1500  # text-only training sentences from SLURP devel (labelled, not spoken)
N_ALIGN = 6000  # alignment-only recordings (transcribed speech for the pre-training stage; never SLU data)
ALIGN_SLURP_MAX_WORDS = 20
SLURP_MAX_WORDS = 12
PREFIXES = ("", "", "", "", "", "hey olly ", "olly ", "okay ")
SUFFIXES = ("", "", "", "", " please", " thanks")
TEXT_ONLY_SOURCES = ("text", "slurp-text")
NOISES = ("white", "pink", "brown")
SNRS_DB = (30, 20, 10)
SPEEDS = (0.9, 1.0, 1.1, 1.2)  # 1.2 raises formants as a shorter vocal tract would (the flite voices are all male)
SEC_PER_RECORDING = 0.02  # measured wall time per recording and worker (10,557 recordings in 91 s on 2 workers)


class DemoError(RuntimeError):
    """The demo corpus cannot be made as asked; the message says what to do."""


_rng = stable_rng


@dataclass(frozen=True)
class Text:
    text_id: str
    split: str
    transcript: str
    frame: SLUFrame
    source: str  # template, slurp, novel, text / slurp-text (text-only training sentences: never spoken), align

    @property
    def text_only(self) -> bool:
        return self.source in TEXT_ONLY_SOURCES


@dataclass(frozen=True)
class Recording:
    id: str
    text: Text
    voice: Voice
    rate: float
    pitch: int
    audio: str  # relative path
    augment: str = ""  # "speed=1.1 gain=-3.0dB noise=pink@20dB", or "" (clean)
    noisy_audio: str = ""  # test only: a noisy copy's relative path
    noisy_augment: str = ""

    def row(self, duration: float, noisy: bool = False) -> dict[str, Any]:
        t = self.text
        return {
            "id": self.id + ("-noisy" if noisy else ""),
            "text_id": t.text_id,
            "transcript": t.transcript,
            "audio": self.noisy_audio if noisy else self.audio,
            "split": t.split,
            "language": LOCALE,
            "scenario": t.frame.scenario,
            "action": t.frame.action,
            "entities": [e.to_dict() for e in t.frame.entities],
            "speaker": speaker_label(self.voice, self.rate, self.pitch),
            "duration_s": round(duration, 4),
            "engine": "espeak-ng" if self.voice.engine == "espeak" else "flite",
            "voice": self.voice.key,
            "source": t.source,
            "augment": self.noisy_augment if noisy else self.augment,
            "corpus": CORPUS,
        }


@dataclass
class DemoPlan:
    texts: list[Text]
    novel: list[Text]
    recordings: list[Recording]  # train, dev, test
    novel_recordings: list[Recording] = field(default_factory=list)
    align_recordings: list[Recording] = field(default_factory=list)  # alignment pre-training only


def fill(template: str, fillers: dict[str, list[str]], rng: random.Random) -> tuple[str, tuple[Entity, ...]]:
    """Fill ``{type}`` / ``{type:list}`` slots. A value ``"on |monday"`` is spoken whole but labelled ``monday``
    (SLURP leaves the preposition outside the span); a type used twice gets two different values."""
    entities: list[Entity] = []
    used: set[str] = set()

    def sub(m: re.Match[str]) -> str:
        values = [v for v in fillers[m.group(1)] if v not in used] or fillers[m.group(1)]
        value = rng.choice(values)
        used.add(value)
        lead, _, filler = value.rpartition("|")
        entities.append(Entity(m.group(1).partition(":")[0], filler))
        return lead + filler

    return " ".join(_SLOT_RE.sub(sub, template).split()), tuple(entities)


def draw_sentence(intent: str, rng: random.Random) -> tuple[str, tuple[Entity, ...]]:
    """One sentence of ``intent``: a template filled with DEMO_FILLERS, maybe a wake-word prefix and a polite
    suffix (never a second "please"), normalised as transcripts are."""
    text, entities = fill(rng.choice(DEMO_TEMPLATES[intent]), DEMO_FILLERS, rng)
    prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
    if "please" in suffix and "please" in prefix + text:
        suffix = ""
    return normalize_text(prefix + text + suffix), entities


_CORE_PREFIXES = tuple(sorted({p.strip() + " " for p in PREFIXES if p.strip()}, key=len, reverse=True))
_CORE_SUFFIXES = tuple(sorted({" " + x.strip() for x in SUFFIXES if x.strip()}, key=len, reverse=True))


def sentence_core(text: str) -> str:
    """A sentence without its wake word and polite suffix ("hey olly X please" -> "X"): two sentences with one core
    are the same sentence to a listener, so no core is shared between splits (or with the alignment clips)."""
    prefix = next((p for p in _CORE_PREFIXES if text.startswith(p)), "")
    text = text[len(prefix) :]
    suffix = next((x for x in _CORE_SUFFIXES if text.endswith(x)), "")
    return text[: len(text) - len(suffix)]


def slurp_texts(path: Path, intents: set[str] | None, max_words: int = SLURP_MAX_WORDS) -> list[tuple[str, SLUFrame]]:
    """SLURP sentences whose intent is in ``intents`` (None: any) of at most ``max_words`` words, every filler
    spelled out in the sentence."""
    if not path.is_file():
        raise DemoError(
            f"SLURP devel texts not found at {path}; pass --slurp PATH (SLURP's dataset/slurp/devel.jsonl) "
            f"or --slurp none"
        )
    out = []
    for _, row in iter_jsonl(path):
        frame = slurp_frame(row)
        text = normalize_text(row["sentence"])
        if (
            (intents is None or frame.intent in intents)
            and len(text.split()) <= max_words
            and all(e.filler in text for e in frame.entities)
        ):
            out.append((text, frame))
    return out


def _is_command(entities: Sequence[Entity]) -> bool:
    """A sentence with no slot: a fixed command ("lights on"), whose only variation is the wake word and suffix."""
    return not entities


def _key(text: str, entities: Sequence[Entity]) -> str:
    """What makes two sentences the same sentence across sets: the core (``sentence_core``) of a sentence with
    slots; the whole text of a command. A command has no fillers to vary, so, as in SLURP where short commands
    recur across splits, a test command is a training command said by a new voice (with its own wake word or
    suffix); a test sentence with slots always has a core no training sentence has."""
    return text if _is_command(entities) else sentence_core(text)


def plan_texts(
    seed: int, scale: float, slurp: Path | None, intents: Sequence[str] | None = None
) -> tuple[list[Text], list[Text]]:
    """Train/dev/test texts, the text-only training texts and the novel texts (``intents``: a subset of
    DEMO_TEMPLATES, default all)."""
    intents = sorted(intents or DEMO_TEMPLATES)
    unknown = sorted(set(intents) - set(DEMO_TEMPLATES))
    if unknown:
        raise DemoError(f"no demo templates for intent(s) {', '.join(unknown)}")
    n_tpl = (N_TRAIN_TEMPLATE + N_DEV + N_TEST) * scale
    per_intent = max(3, math.ceil(n_tpl / len(intents)))
    test_share, dev_share = (n / (N_TRAIN_TEMPLATE + N_DEV + N_TEST) for n in (N_TEST, N_DEV))
    slurp_pool = slurp_texts(slurp, set(intents)) if slurp is not None else []
    slurp_cores = {sentence_core(t) for t, _ in slurp_pool}
    seen: set[str] = set()  # keys (``_key``) of the sentences planned so far
    by_split: dict[str, list[tuple[str, SLUFrame, str]]] = {"train": [], "dev": [], "test": []}
    for intent in intents:
        rng = _rng(seed, "texts", intent)
        scenario, action = split_intent(intent)
        slotted: list[tuple[str, SLUFrame]] = []
        commands: list[tuple[str, SLUFrame]] = []
        for _ in range(per_intent * 40):
            if len(slotted) + len(commands) >= per_intent:
                break
            text, entities = draw_sentence(intent, rng)
            key = _key(text, entities)
            if key in seen or sentence_core(text) in slurp_cores:
                continue
            seen.add(key)
            (commands if _is_command(entities) else slotted).append((text, SLUFrame(scenario, action, entities)))
        n = len(slotted)
        n_test = max(1, round(n * test_share)) if n >= 1 else 0  # small scales: test first, then dev
        n_dev = max(1, round(n * dev_share)) if n >= 2 else 0
        for k, (text, frame) in enumerate(slotted):
            split = "test" if k < n_test else "dev" if k < n_test + n_dev else "train"
            by_split[split].append((text, frame, "template"))
        # Every command heard in dev or test is also a training command: its first sentence trains.
        quota = {
            "test": max(round(len(commands) * test_share), int(n_test == 0)),
            "dev": max(round(len(commands) * dev_share), int(n_dev == 0)),
        }
        trained: set[str] = set()
        placed = {"test": n_test > 0, "dev": n_dev > 0}
        for text, frame in commands:
            core = sentence_core(text)
            split = "train" if core not in trained else next((s for s in ("test", "dev") if quota[s] > 0), "train")
            if split == "train":
                trained.add(core)
            else:
                quota[split] -= 1
                placed[split] = True
            by_split[split].append((text, frame, "template"))
        # Small scales: an intent whose few draws were all new commands has nothing to test yet; another wrapping of
        # one of its trained commands fills the gap (drawn after the rest, so larger scales draw exactly as before).
        for split in ("test", "dev"):
            for _ in range(40 if trained and not placed[split] else 0):
                text, entities = draw_sentence(intent, rng)
                if _is_command(entities) and sentence_core(text) in trained and _key(text, entities) not in seen:
                    seen.add(_key(text, entities))
                    by_split[split].append((text, SLUFrame(scenario, action, entities), "template"))
                    break
    slurp_pool = [x for x in slurp_pool if sentence_core(x[0]) not in seen]
    _rng(seed, "slurp").shuffle(slurp_pool)
    by_split["train"] += [(t, f, "slurp") for t, f in slurp_pool[: round(N_TRAIN_SLURP * scale)]]
    texts: list[Text] = []
    for split in ("train", "dev", "test"):
        items = by_split[split]
        _rng(seed, "order", split).shuffle(items)
        for text, frame, source in items:
            texts.append(Text(f"demo-t{len(texts):05d}", split, text, frame, source))
    spoken_cores = {sentence_core(t.transcript) for t in texts}
    texts += plan_slurp_text_only(seed, scale, slurp, intents, spoken_cores)
    texts += plan_text_only(seed, scale, intents, seen | slurp_cores)
    return texts, plan_novel(seed, scale, texts, intents)


def plan_slurp_text_only(
    seed: int, scale: float, slurp: Path | None, intents: Sequence[str], taken: set[str]
) -> list[Text]:
    """Up to N_TRAIN_SLURP_TEXT * scale labelled, never-spoken training sentences from the SLURP devel texts of the
    inventory's intents (up to ALIGN_SLURP_MAX_WORDS words) that no spoken set uses (``taken``: their cores): real
    phrasing for the text side, which templates alone cannot give."""
    if slurp is None:
        return []
    rows = [x for x in slurp_texts(slurp, set(intents), ALIGN_SLURP_MAX_WORDS) if sentence_core(x[0]) not in taken]
    _rng(seed, "slurp-text").shuffle(rows)
    want = round(N_TRAIN_SLURP_TEXT * scale)
    out: list[Text] = []
    seen: set[str] = set()
    for text, frame in rows:
        if len(out) >= want:
            break
        core = sentence_core(text)
        if core not in seen:
            seen.add(core)
            out.append(Text(f"demo-s{len(out):05d}", "train", text, frame, "slurp-text"))
    return out


def plan_text_only(seed: int, scale: float, intents: Sequence[str], taken: set[str]) -> list[Text]:
    """N_TRAIN_TEXT * scale labelled training sentences that are never spoken: the templates with fillers drawn
    afresh, none the same sentence (``_key``) as one of ``taken`` (the keys and cores of every spoken, dev or test
    sentence). Round robin over the intents, one fresh sentence each per round, so that the intents with few
    fillers run dry (40 draws without a fresh sentence) and the others make up for them."""
    want = max(round(N_TRAIN_TEXT * scale), len(intents))  # at least one an intent, at any scale
    seen = set(taken)
    rngs = {intent: _rng(seed, "text-only", intent) for intent in intents}
    live = list(intents)
    out: list[Text] = []
    while live and len(out) < want:
        for intent in list(live):
            if len(out) >= want:
                break
            for _ in range(40):
                text, entities = draw_sentence(intent, rngs[intent])
                key = _key(text, entities)
                if key not in seen:
                    seen.add(key)
                    frame = SLUFrame(*split_intent(intent), entities)
                    out.append(Text(f"demo-x{len(out):05d}", "train", text, frame, "text"))
                    break
            else:
                live.remove(intent)
    _rng(seed, "order", "text-only").shuffle(out)
    return out


def text_row(t: Text) -> dict[str, Any]:
    """The manifest row of a text-only sentence: labels and transcript, no audio."""
    return {
        "id": t.text_id,
        "text_id": t.text_id,
        "transcript": t.transcript,
        "audio": "",
        "split": t.split,
        "language": LOCALE,
        "scenario": t.frame.scenario,
        "action": t.frame.action,
        "entities": [e.to_dict() for e in t.frame.entities],
        "source": t.source,
        "corpus": CORPUS,
    }


def plan_novel(seed: int, scale: float, texts: list[Text], intents: Sequence[str]) -> list[Text]:
    """Sentences from the novel phrasings whose fillers occur nowhere in ``texts`` (as a filler or as words)."""
    used_fillers = {e.filler for t in texts for e in t.frame.entities}
    padded = [f" {t.transcript} " for t in texts]
    fillers = {
        k: [
            v
            for v in vs
            if v.rpartition("|")[2] not in used_fillers and not any(f" {v.rpartition('|')[2]} " in t for t in padded)
        ]
        for k, vs in NOVEL_FILLERS.items()
    }
    known = {t.transcript for t in texts}
    want = max(10, round(N_NOVEL * scale))
    intents = sorted(set(NOVEL_TEMPLATES) & set(intents))
    out: list[Text] = []
    seen: set[str] = set()
    rng = _rng(seed, "novel")
    for attempt in range(want * 50):
        if len(out) >= want:
            break
        intent = intents[attempt % len(intents)] if attempt < len(intents) else rng.choice(intents)
        template = rng.choice(NOVEL_TEMPLATES[intent])
        if any(not fillers.get(s) for s in _SLOT_RE.findall(template)):
            continue
        text, entities = fill(template, fillers, rng)
        if text in seen or text in known:
            continue
        seen.add(text)
        scenario, action = split_intent(intent)
        out.append(Text(f"demo-n{len(out):04d}", "test", text, SLUFrame(scenario, action, entities), "novel"))
    return out


def plan_alignment(
    seed: int, scale: float, slurp: Path | None, intents: Sequence[str], taken: set[str], novel: list[Text]
) -> list[Text]:
    """About N_ALIGN * scale transcribed sentences, spoken once each for alignment pre-training only (the stand-in
    for the large speech-text data an LALM is pre-trained on; never spoken SLU training data): up to a third from
    the SLURP devel sentences (any intent, up to ALIGN_SLURP_MAX_WORDS words), the rest template sentences with
    fillers drawn afresh. None shares its core (``sentence_core``) with ``taken`` (the caller passes the cores of the
    train/dev/test sentences and of the template text-only ones: the SLURP text-only sentences may be heard here) and
    none contains a filler of the ``novel`` sentences, so those stay new in every form."""
    want = max(len(intents), round(N_ALIGN * scale))
    novel_fillers = {f" {e.filler} " for t in novel for e in t.frame.entities}
    seen = set(taken)

    def take(text: str) -> bool:
        """True (and the core marked seen) when ``text`` is new and holds no novel filler."""
        core = sentence_core(text)
        if core in seen or any(f in f" {text} " for f in novel_fillers):
            return False
        seen.add(core)
        return True

    found: list[tuple[str, SLUFrame]] = []
    if slurp is not None:
        rows = slurp_texts(slurp, None, ALIGN_SLURP_MAX_WORDS)
        _rng(seed, "align-slurp").shuffle(rows)
        for text, frame in rows:
            if len(found) >= want // 3:
                break
            if take(text):
                found.append((text, frame))
    # Round robin over the intents, one fresh sentence each per round, so that intents with few fillers run dry
    # (40 draws without a fresh sentence) and the others make up for them.
    rngs = {intent: _rng(seed, "align", intent) for intent in intents}
    live = list(intents)
    while live and len(found) < want:
        for intent in list(live):
            if len(found) >= want:
                break
            for _ in range(40):
                text, entities = draw_sentence(intent, rngs[intent])
                if take(text):
                    found.append((text, SLUFrame(*split_intent(intent), entities)))
                    break
            else:
                live.remove(intent)
    _rng(seed, "order", "align").shuffle(found)
    return [Text(f"demo-a{k:05d}", "train", text, frame, "align") for k, (text, frame) in enumerate(found)]


def _draw_voice_params(voice: Voice, rng: random.Random) -> tuple[float, int]:
    if voice.engine == "espeak":
        return rng.choice(ESPEAK_RATES), rng.choice(ESPEAK_PITCHES)
    return rng.choice(FLITE_STRETCH), rng.choice(FLITE_F0)


def _draw_augment(rng: random.Random) -> str:
    parts = [f"speed={rng.choice(SPEEDS):.1f}", f"gain={rng.uniform(-6, 6):+.1f}dB"]
    if rng.random() < 0.8:
        parts.append(f"noise={rng.choice(NOISES)}@{rng.choice(SNRS_DB)}dB")
    return " ".join(parts)


def _pick_train_voice(pool_espeak: list[Voice], pool_flite: list[Voice], rng: random.Random) -> Voice:
    return rng.choice(pool_flite) if rng.random() < 0.25 else rng.choice(pool_espeak)


def plan(
    seed: int = 0, scale: float = 1.0, slurp: Path | None = SLURP_DEVEL, intents: Sequence[str] | None = None
) -> DemoPlan:
    """Every text and recording (voice, rate, pitch, augmentation) without running any engine."""
    if not scale > 0:
        raise DemoError(f"--scale must be positive, got {scale}")
    texts, novel = plan_texts(seed, scale, slurp, intents)
    train_pool = train_voices()
    pool_espeak = [v for v in train_pool if v.engine == "espeak"]
    pool_flite = [v for v in train_pool if v.engine == "flite"]
    held = held_out_voices()
    cycle_rng = _rng(seed, "held-out-cycle")
    cycle: list[Voice] = []

    def next_held(exclude: set[Voice]) -> Voice:
        while True:
            if not cycle:
                cycle.extend(held)
                cycle_rng.shuffle(cycle)
            v = cycle.pop()
            if v not in exclude:
                return v
            cycle.insert(0, v)

    recordings: list[Recording] = []
    counters: Counter[str] = Counter()
    for t in texts:
        if t.text_only:
            continue  # labelled, never spoken
        rng = _rng(seed, "speech", t.text_id)
        if t.split == "train":
            k = 3 if rng.random() < 2 / 3 else 2
        elif t.split == "dev":
            k = 2 if rng.random() < 0.2 else 1
        else:
            k = 2
        voices: list[Voice] = []
        while len(voices) < k:
            v = next_held(set(voices)) if t.split == "test" else _pick_train_voice(pool_espeak, pool_flite, rng)
            if v not in voices:
                voices.append(v)
        for v in voices:
            n = counters[t.split]
            counters[t.split] += 1
            uid = f"demo-{t.split}-{n:05d}"
            rate, pitch = _draw_voice_params(v, rng)
            augment = _draw_augment(rng) if t.split == "train" else ""
            noisy, noisy_aug = "", ""
            if t.split == "test":
                noisy = f"audio/test_noisy/{uid}.wav"
                noisy_aug = f"noise={rng.choice(NOISES)}@{rng.choice(SNRS_DB[1:])}dB"
            recordings.append(
                Recording(uid, t, v, rate, pitch, f"audio/{t.split}/{uid}.wav", augment, noisy, noisy_aug)
            )
    novel_recs = []
    for k, t in enumerate(novel):
        rng = _rng(seed, "speech", t.text_id)
        v = next_held(set())
        rate, pitch = _draw_voice_params(v, rng)
        novel_recs.append(Recording(f"demo-novel-{k:04d}", t, v, rate, pitch, f"audio/novel/demo-novel-{k:04d}.wav"))
    align = plan_alignment(
        seed,
        scale,
        slurp,
        sorted(intents or DEMO_TEMPLATES),
        # The SLURP text-only rows stay open to alignment: their natural phrasing is what its listening needs (with
        # alignment drawing templates in their place, the encoder learned to spell about half as fast).
        {sentence_core(t.transcript) for t in texts + novel if t.source != "slurp-text"},
        novel,
    )
    align_recs = []
    for k, t in enumerate(align):
        rng = _rng(seed, "speech", t.text_id)
        v = _pick_train_voice(pool_espeak, pool_flite, rng)
        rate, pitch = _draw_voice_params(v, rng)
        uid = f"demo-align-{k:05d}"
        align_recs.append(Recording(uid, t, v, rate, pitch, f"audio/align/{uid}.wav", _draw_augment(rng)))
    return DemoPlan(texts, novel, recordings, novel_recs, align_recs)


# ------------------------------------------------------------------------------------------------- augmentation


def colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) noise of unit RMS, shaped in the frequency domain."""
    from scipy.fft import irfft, next_fast_len, rfft, rfftfreq

    m = next_fast_len(max(n, 2), real=True)
    spectrum = rfft(rng.standard_normal(m))
    f = rfftfreq(m)
    f[0] = f[1]
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[color]
    noise = irfft(spectrum / f**exponent, m)[:n]
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def augment(audio: np.ndarray, spec: str, seed: int) -> np.ndarray:
    """Apply a spec like ``speed=1.1 gain=-3.0dB noise=pink@20dB`` (any part optional); never clips."""
    rng = np.random.default_rng(seed)
    x = audio.astype(np.float32)
    for part in spec.split():
        key, _, value = part.partition("=")
        if key == "speed" and float(value) != 1.0:
            # Kaldi-style speed perturbation: resample and play at the original rate (tempo and pitch change).
            x = resample(x, round(SAMPLE_RATE * float(value)), SAMPLE_RATE)
        elif key == "gain":
            x = x * np.float32(10 ** (float(value.removesuffix("dB")) / 20))
        elif key == "noise":
            color, _, snr = value.partition("@")
            power = float(np.mean(x**2))
            active = x[np.abs(x) > 0.02 * (np.abs(x).max() + 1e-12)]  # SNR over the speech, not the silences
            if active.size:
                power = float(np.mean(active**2))
            scale = math.sqrt(power / 10 ** (float(snr.removesuffix("dB")) / 10))
            x = x + np.float32(scale) * colored_noise(len(x), color, rng)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > 0.99:
        x = x * np.float32(0.99 / peak)
    return x.astype(np.float32)


# ------------------------------------------------------------------------------------------------ synthesis


def _write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _seed_of(seed: int, uid: str) -> int:
    return _rng(seed, "augment", uid).getrandbits(63)


def render(job: tuple[Recording, str, int, str, str]) -> tuple[float, float]:
    """Synthesise one recording (and its noisy copy); returns (duration, noisy duration or 0)."""
    rec, out, seed, espeak, flite = job
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    audio = synthesize_raw(rec.text.transcript, rec.voice, rec.rate, rec.pitch, root, espeak, flite)
    if rec.augment:
        audio = augment(audio, rec.augment, _seed_of(seed, rec.id))
    else:
        audio = augment(audio, "", 0)  # only the anti-clipping guard
    _write_wav(root / rec.audio, audio)
    noisy_dur = 0.0
    if rec.noisy_audio:
        noisy = augment(audio, rec.noisy_augment, _seed_of(seed, rec.id + "-noisy"))
        _write_wav(root / rec.noisy_audio, noisy)
        noisy_dur = len(noisy) / SAMPLE_RATE
    return len(audio) / SAMPLE_RATE, noisy_dur


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def build(
    out: str | Path,
    seed: int = 0,
    scale: float = 1.0,
    workers: int = 2,
    slurp: Path | None = SLURP_DEVEL,
    espeak: str = "espeak-ng",
    flite: str = "flite",
    progress: bool = True,
    intents: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Make the demo corpus in ``out``; returns the summary (also written to out/summary.json)."""
    start = time.monotonic()
    p = plan(seed, scale, slurp, intents)
    every = p.recordings + p.novel_recordings + p.align_recordings
    check_engines(sorted({r.voice for r in every}, key=lambda v: v.key), espeak, flite)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers)
    estimate = len(every) * SEC_PER_RECORDING / workers
    print(
        f"demo corpus: {sum(not t.text_only for t in p.texts)} spoken texts + {len(p.novel)} novel + "
        f"{len(p.align_recordings)} for alignment only, "
        f"{len(every)} recordings on {workers} worker(s); estimated {estimate / 60:.1f} min",
        flush=True,
    )
    jobs = [(r, str(root), seed, espeak, flite) for r in every]
    bar = tqdm(total=len(jobs), desc="synthesis", unit="rec", disable=not progress, mininterval=2.0)
    if workers == 1:
        results = []
        for j in jobs:
            results.append(render(j))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = []
            for r in pool.map(render, jobs, chunksize=8):
                results.append(r)
                bar.update()
    bar.close()
    main_rows, noisy_rows, novel_rows, align_rows = [], [], [], []
    for rec, (dur, noisy_dur) in zip(every, results):
        if rec.text.source == "align":
            align_rows.append(rec.row(dur))
        elif rec.text.source == "novel":
            novel_rows.append(rec.row(dur))
        else:
            main_rows.append(rec.row(dur))
            if rec.noisy_audio:
                noisy_rows.append(rec.row(noisy_dur, noisy=True))
    text_rows = [text_row(t) for t in p.texts if t.text_only]
    atomic_write_text(root / "manifest.jsonl", _jsonl(main_rows + text_rows))
    atomic_write_text(root / "novel.jsonl", _jsonl(novel_rows))
    atomic_write_text(root / "test_noisy.jsonl", _jsonl(noisy_rows))
    atomic_write_text(root / "alignment.jsonl", _jsonl(align_rows))
    summary = summarize(main_rows, novel_rows, noisy_rows, align_rows)
    summary["text_only_train_texts"] = len(text_rows)
    summary["text_only_slurp_texts"] = sum(r["source"] == "slurp-text" for r in text_rows)
    summary.update(seed=seed, scale=scale, workers=workers, seconds=round(time.monotonic() - start, 1))
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(
        f"done in {summary['seconds'] / 60:.1f} min: {summary['recordings']} recordings, "
        f"{summary['hours']:.2f} h of audio, {len(text_rows)} text-only training sentences -> "
        f"{root / 'manifest.jsonl'}",
        flush=True,
    )
    return summary


def summarize(
    main_rows: list[dict], novel_rows: list[dict], noisy_rows: list[dict], align_rows: Sequence[dict] = ()
) -> dict[str, Any]:
    every = main_rows + novel_rows + noisy_rows + list(align_rows)
    held = set(h for h in (v.key for v in held_out_voices()))
    per_split: dict[str, Any] = {}
    for name, rows in (
        ("train", [r for r in main_rows if r["split"] == "train"]),
        ("dev", [r for r in main_rows if r["split"] == "dev"]),
        ("test", [r for r in main_rows if r["split"] == "test"]),
        ("test_noisy", noisy_rows),
        ("novel", novel_rows),
        ("alignment", list(align_rows)),
    ):
        per_split[name] = {
            "texts": len({r["text_id"] for r in rows}),
            "recordings": len(rows),
            "hours": round(sum(r["duration_s"] for r in rows) / 3600, 3),
            "voices": len({r["voice"] for r in rows}),
            "slurp_texts": len({r["text_id"] for r in rows if r["source"] == "slurp"}),
        }
    return {
        "recordings": len(every),
        "hours": round(sum(r["duration_s"] for r in every) / 3600, 3),
        "splits": per_split,
        "intents": len({(r["scenario"], r["action"]) for r in main_rows}),
        "scenarios": len({r["scenario"] for r in main_rows}),
        "train_voices": len({r["voice"] for r in main_rows if r["voice"] not in held}),
        "held_out_recordings": dict(Counter(r["voice"] for r in main_rows + novel_rows if r["voice"] in held)),
        "engines": dict(Counter(r["engine"] for r in every)),
        "duration_s": {
            "min": round(min(r["duration_s"] for r in every), 2),
            "mean": round(sum(r["duration_s"] for r in every) / len(every), 2),
            "max": round(max(r["duration_s"] for r in every), 2),
        },
    }
