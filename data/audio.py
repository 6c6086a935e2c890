"""Read any audio a user can hand us and return what the model wants: mono float32 at 16 kHz.

Sources: a file path (wav, flac, ogg, mp3 and whatever else libsndfile reads), encoded bytes (e.g. the WAV inside a
Speech-MASSIVE parquet row), an ``AudioRef``, or a ``(sample_rate_hz, samples)`` pair as a microphone widget gives it.
Any sample rate, channel count and sample format (int or float) is accepted.

Bad audio is refused with an ``AudioError`` that names the problem and the fix: unreadable or corrupt, empty, shorter
than the minimum the encoder needs, silent, NaN/inf samples, or longer than the Whisper-style encoder's 30 s window.
Over-long clips are trimmed with a warning by default (``on_long="trim"``), or refused (``on_long="refuse"``),
because Qwen2-Audio's processor pads/truncates every clip to 30 s and would otherwise cut it silently
(notes: the processor pads every clip to 3000 frames).

Decoding uses ``soundfile`` (libsndfile) and resampling ``scipy.signal.resample_poly``; ``datasets``' own audio
decoding needs torchcodec, which is not dependable on CPU machines.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from data.example import AudioRef

SAMPLE_RATE = 16000  # Hz, what Qwen2-Audio's Whisper-style feature extractor expects
MAX_SECONDS = 30.0  # the encoder's window: 3000 mel frames of 10 ms
# A clip of ~0.05 s yields a single audio token; with no two audio tokens adjacent, Qwen2-Audio's forward assumes an
# unexpanded prompt and takes its legacy merge path.
MIN_SECONDS = 0.1
# Peak amplitude below which a clip counts as silent: about -80 dBFS, below the quantisation noise of 16-bit audio
# after any real microphone.
SILENCE_PEAK = 1e-4

AudioSource = Union[str, os.PathLike, bytes, bytearray, AudioRef, tuple]


class AudioError(ValueError):
    """Audio that cannot be used; the message names the problem and how to fix it."""


class AudioMissingError(AudioError):
    """The audio file is not there (as opposed to there but unreadable)."""


class AudioTrimWarning(UserWarning):
    """An over-long clip was trimmed to the encoder's window."""


def _describe(source: Any) -> str:
    if isinstance(source, AudioRef):
        return source.path if source.path is not None else f"<{len(source.data or b'')} bytes of audio>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes of audio>"
    if isinstance(source, tuple):
        return "<in-memory samples>"
    text = str(source)
    return text if len(text) <= 200 else f"{text[:60]!r}... ({len(text)} characters)"


MAX_PATH_CHARS = 4096  # PATH_MAX on Linux; a longer "path" is a misuse (often a transcript or bytes passed as str)


def _open(source: Any) -> tuple[Any, str]:
    """A handle soundfile can read (a path string or a BytesIO) and the source's name, for a path, bytes or an
    AudioRef; every misuse (None, a number, an over-long or NUL-bearing path) is an AudioError naming it."""
    if isinstance(source, AudioRef):
        if source.data is None and source.path is None:
            raise AudioError("an AudioRef with neither a path nor data; give it a file path or the encoded bytes")
        source = source.data if source.data is not None else source.path
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError(f"{name}: empty audio (0 bytes); provide a non-empty recording")
        return io.BytesIO(bytes(source)), name
    if not isinstance(source, (str, os.PathLike)):
        raise AudioError(
            f"cannot read audio from {type(source).__name__} {str(source)[:60]!r}; pass a file path, "
            f"encoded bytes, an AudioRef or a (sample_rate_hz, samples) pair"
        )
    text = os.fspath(source)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise AudioError("empty audio path; pass the recording's file path")
    if "\x00" in text or len(text) > MAX_PATH_CHARS:
        raise AudioError(
            f"{text[:60]!r}...: not a usable file path ({len(text)} characters"
            f"{', with a NUL character' if chr(0) in text else ''}); pass the recording's file path"
        )
    path = Path(text)
    try:
        exists, size = path.is_file(), (path.stat().st_size if path.is_file() else -1)
    except OSError as exc:  # e.g. a path component longer than the file system allows
        raise AudioError(f"{name[:200]}: cannot open the audio file ({exc.strerror or exc}); check the path") from None
    if not exists and path.is_dir():
        raise AudioError(f"{name}: is a folder, not an audio file; pass the recording's file path")
    if not exists:
        raise AudioMissingError(
            f"{name}: audio file not found; check the path (relative paths are resolved from the manifest's folder)"
        )
    if size == 0:
        raise AudioError(f"{name}: empty audio file (0 bytes); re-export the recording")
    return str(path), name


def _rate(value: Any) -> int:
    """A sample rate as a positive integer, or an AudioError (NaN, inf, 0, negative, fractional, not a number)."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise AudioError(f"sample rate must be a positive number of Hz, got {value!r}") from None
    if not math.isfinite(rate) or rate <= 0 or rate != int(rate):
        raise AudioError(f"sample rate must be a positive whole number of Hz, got {value!r}")
    return int(rate)


def _decode(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode to a float32 array (frames, channels) and its sample rate, or raise AudioError."""
    if isinstance(source, tuple):
        if len(source) != 2:
            raise AudioError("in-memory audio must be a (sample_rate_hz, samples) pair")
        sr, samples = source
        sr = _rate(sr)
        try:
            arr = np.asarray(samples)
        except (TypeError, ValueError) as exc:
            raise AudioError(f"in-memory samples are not an array of numbers ({exc})") from None
        if arr.dtype.kind not in "iuf":
            raise AudioError(f"in-memory samples must be numbers (int or float), got dtype {arr.dtype}")
        if arr.dtype.kind == "i":  # integer PCM from a microphone widget: scale to [-1, 1)
            arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
        elif arr.dtype.kind == "u":
            info = np.iinfo(arr.dtype)
            mid = (info.max + 1) / 2
            arr = (arr.astype(np.float32) - mid) / mid
        else:
            arr = arr.astype(np.float32)
        if arr.ndim == 1:
            arr = arr[:, None]
        elif arr.ndim == 2 and arr.shape[0] < arr.shape[1] and arr.shape[0] <= 8:
            arr = arr.T  # (channels, frames) -> (frames, channels)
        elif arr.ndim != 2:
            raise AudioError(f"in-memory audio must be 1-D or 2-D samples, got shape {arr.shape}")
        return arr, sr

    handle, name = _open(source)
    try:
        samples, sr = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(
            f"{name}: unreadable or corrupt audio ({exc}); convert it to WAV or FLAC, e.g. "
            f"`ffmpeg -i in.x -ar 16000 -ac 1 out.wav`"
        ) from None
    return samples, int(sr)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling of a 1-D signal (exact rational ratio, anti-aliased)."""
    if orig_sr == target_sr:
        return samples
    ratio = Fraction(int(target_sr), int(orig_sr))
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def load_audio(
    source: AudioSource,
    *,
    target_sr: int = SAMPLE_RATE,
    max_seconds: float | None = MAX_SECONDS,
    on_long: str = "trim",
    min_seconds: float = MIN_SECONDS,
) -> np.ndarray:
    """Decode ``source`` to mono float32 at ``target_sr``; see the module docstring for what is refused.

    ``on_long``: "trim" keeps the first ``max_seconds`` and warns (``AudioTrimWarning``); "refuse" raises.
    ``max_seconds=None`` disables the limit.
    """
    if on_long not in ("trim", "refuse"):
        raise AudioError(f"on_long must be 'trim' or 'refuse', got {on_long!r}")
    target_sr = _rate(target_sr)
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise AudioError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    if not (isinstance(min_seconds, (int, float)) and min_seconds >= 0):
        raise AudioError(f"min_seconds must be a number of seconds >= 0, got {min_seconds!r}")
    name = _describe(source)
    samples, sr = _decode(source)
    if sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {sr}; re-export the recording")
    if samples.size == 0 or samples.shape[0] == 0:
        raise AudioError(f"{name}: empty audio (no samples); provide a non-empty recording")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise AudioError(
            f"{name}: {bad} NaN/inf samples; the file is damaged or was written from a broken computation; re-export it"
        )
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]

    duration_s = mono.shape[0] / sr
    if max_seconds is not None and duration_s > max_seconds:
        if on_long == "refuse":
            raise AudioError(
                f"{name}: {duration_s:.1f} s is longer than the encoder's {max_seconds:g} s window; "
                f"cut it into shorter utterances (or load with on_long='trim')"
            )
        warnings.warn(
            f"{name}: {duration_s:.1f} s trimmed to the encoder's {max_seconds:g} s window",
            AudioTrimWarning,
            stacklevel=2,
        )
        mono = mono[: int(math.floor(max_seconds * sr))]

    if np.abs(mono).max() <= SILENCE_PEAK:
        raise AudioError(
            f"{name}: the audio is silent (peak below {SILENCE_PEAK:g}); check the microphone or the recording's gain"
        )

    out = resample(np.ascontiguousarray(mono, dtype=np.float32), sr, target_sr)
    if out.shape[0] < min_seconds * target_sr:
        raise AudioError(
            f"{name}: {out.shape[0] / target_sr:.3f} s is shorter than the {min_seconds:g} s minimum "
            f"the model needs; record a longer utterance"
        )
    # Resampling can overshoot [-1, 1] slightly on clipped input; the feature extractor does not care, but keep it sane.
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


def audio_duration(source: str | os.PathLike | bytes | AudioRef) -> float:
    """Duration in seconds from the header, without decoding the samples (raises AudioError when unreadable)."""
    if isinstance(source, AudioRef) and source.duration_s is not None:
        return source.duration_s
    handle, name = _open(source)
    try:
        info = sf.info(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(f"{name}: unreadable or corrupt audio ({exc})") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


def to_wav_bytes(samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE, subtype: str = "PCM_16") -> bytes:
    """Encode samples as WAV bytes (how Speech-MASSIVE stores audio in parquet rows)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples), sample_rate_hz, format="WAV", subtype=subtype)
    return buf.getvalue()
