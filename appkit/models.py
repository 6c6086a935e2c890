"""Models loaded lazily, once, with an LRU bound; a clip (file path) or a typed transcript parsed into a frame.

Loading one checkpoint never blocks requests for another (one lock per checkpoint), and a checkpoint that failed to
load fails again at once with the same message instead of retrying a slow load on every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appkit.catalog import DEMO, AppError, Checkpoint

Progress = Callable[[float, str], None]
log = logging.getLogger("lalm_slu.app")


def _no_progress(fraction: float, desc: str) -> None:
    pass


class ModelPool:
    """``(model, processor)`` per checkpoint, loaded on first use and kept for the ``max_models`` most recent."""

    def __init__(self, max_models: int = 3):
        if max_models < 1:
            raise AppError(f"the model bound must be >= 1, got {max_models}")
        self.max_models = max_models
        self._models: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._failed: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many loads were started (a test reads it)

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def _cached(self, key: str) -> tuple[Any, Any] | None:
        with self._lock:
            if key in self._failed:
                raise AppError(self._failed[key])
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            return None

    def get(self, ckpt: Checkpoint, progress: Progress = _no_progress) -> tuple[Any, Any]:
        key = ckpt.load
        hit = self._cached(key)
        if hit is not None:
            return hit
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one load per checkpoint; other checkpoints keep serving
            hit = self._cached(key)
            if hit is not None:
                return hit
            progress(0.1, f"loading {ckpt.label} (first use; once)")
            self.loads += 1
            try:
                pair = self._load(ckpt)
            except AppError as err:
                message = str(err)
            except Exception as err:  # noqa: BLE001 - any failure inside transformers/safetensors is a bad checkpoint
                log.warning("loading %s failed", ckpt.name, exc_info=True)
                message = f"{ckpt.name}: cannot load the model ({type(err).__name__}: {' '.join(str(err).split())})"
            else:
                with self._lock:
                    self._models[key] = pair
                    while len(self._models) > self.max_models:
                        self._models.popitem(last=False)
                return pair
            message += " (the app remembers this failure: fix the checkpoint and restart the app)"
            with self._lock:
                self._failed[key] = message
            raise AppError(message)

    @staticmethod
    def _load(ckpt: Checkpoint) -> tuple[Any, Any]:
        if ckpt.load == DEMO:
            from models.tiny import build_tiny

            return build_tiny(seed=0)
        if ckpt.run_dir is not None and not Path(ckpt.load).is_dir():
            raise AppError(
                f"{ckpt.name}: the run has no final model yet ({ckpt.load} is missing); wait for "
                "training to finish, or pick another checkpoint"
            )
        from models.loading import load_model

        return load_model(ckpt.load)


@dataclass
class Parsed:
    """One answer of one checkpoint."""

    checkpoint: str
    input: str  # "speech" or "transcript"
    frame: Any  # data.frames.SLUFrame
    status: str  # clean, repaired or unusable (data.frames.ParseStatus)
    raw: str  # the model's text
    latency_s: float  # decoding time, without loading
    load_s: float = 0.0  # time spent loading the model in this request (0 once it is loaded)
    duration_s: float | None = None  # clip length
    entities: list[list[str]] = field(default_factory=list)
    heard: str | None = None  # the model's own transcript (models answering in the transcript+frame layout)

    @property
    def intent(self) -> str:
        return self.frame.intent

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "input": self.input,
            "intent": self.intent,
            "frame": self.frame.to_dict(),
            "status": self.status,
            "raw": self.raw,
            "latency_s": round(self.latency_s, 3),
            "load_s": round(self.load_s, 3),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 2),
            "heard": self.heard,
        }


def read_clip(path: str, shown: str | None = None):
    """Our reader on the uploaded file: mono float32 16 kHz, or AppError naming the problem (over-long clips refused)."""
    from data.audio import MAX_SECONDS, AudioError, audio_duration, load_audio

    shown = shown or Path(path).name
    try:
        try:
            seconds = audio_duration(path)  # from the header: a 10-minute upload is refused without decoding it
        except AudioError:
            seconds = 0.0  # unreadable header: load_audio below says why
        if seconds > MAX_SECONDS:
            raise AudioError(
                f"{path}: {seconds:.1f} s is longer than the {MAX_SECONDS:g} s the model hears; cut "
                "it into utterances under 30 s and parse them one by one"
            )
        return load_audio(path, on_long="refuse")
    except AudioError as err:
        raise AppError(str(err).replace(str(path), shown)) from None


def parse(
    pool: ModelPool,
    ckpt: Checkpoint,
    *,
    audio_path: str | None = None,
    transcript: str = "",
    num_beams: int = 3,
    progress: Progress = _no_progress,
    wave: Any = None,
) -> Parsed:
    """Parse one clip (a file path, read with our reader) or, without one, a typed transcript (the text path)."""
    from data.audio import SAMPLE_RATE, to_wav_bytes
    from data.example import AudioRef, SLUExample
    from data.frames import NONE_FRAME
    from models.decode import generate_frames

    transcript = " ".join((transcript or "").split())
    if audio_path is None and wave is None and not transcript:
        raise AppError("nothing to parse: record or upload a clip, or type a transcript")
    if wave is None and audio_path is not None:
        wave = read_clip(audio_path)
    ref = None
    if wave is not None:
        ref = AudioRef(data=to_wav_bytes(wave), duration_s=len(wave) / SAMPLE_RATE)
    example = SLUExample(
        id="input", corpus="app", language="", split="test", transcript=transcript, frame=NONE_FRAME, audio=ref
    )
    start = time.perf_counter()
    model, processor = pool.get(ckpt, progress)
    loaded = time.perf_counter()
    progress(0.6, f"decoding with {ckpt.label}")
    (pred,) = generate_frames(
        model, processor, [(example, ref is not None)], batch_size=1, num_beams=num_beams, progress=False
    )
    done = time.perf_counter()
    return Parsed(
        ckpt.name,
        "speech" if ref is not None else "transcript",
        pred.frame,
        pred.parse.status.value,
        pred.text,
        done - loaded,
        loaded - start,
        None if ref is None else ref.duration_s,
        [[e.type, e.filler] for e in pred.frame.entities],
        pred.parse.transcript,
    )


def highlight(transcript: str, entities: list[list[str]]) -> list[tuple[str, str | None]]:
    """Segments of ``transcript`` with each entity filler labelled by its type (first match, left to right)."""
    segments: list[tuple[str, str | None]] = []
    low, pos = transcript.lower(), 0
    spans = []
    for etype, filler in entities:
        i = low.find(filler.lower(), pos) if filler else -1
        if i < 0:
            i = low.find(filler.lower()) if filler else -1
        if i >= 0 and all(i >= e or i + len(filler) <= s for s, e, _ in spans):
            spans.append((i, i + len(filler), etype))
    for s, e, etype in sorted(spans):
        if s > pos:
            segments.append((transcript[pos:s], None))
        segments.append((transcript[s:e], etype))
        pos = e
    if pos < len(transcript):
        segments.append((transcript[pos:], None))
    return segments
