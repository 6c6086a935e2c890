"""Tests for data.audio: every format, rate, channel layout and bad case, with files written in the test."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from data.audio import (
    SAMPLE_RATE,
    AudioError,
    AudioTrimWarning,
    audio_duration,
    load_audio,
    to_wav_bytes,
)
from data.example import AudioRef


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()])


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 16000])
def test_any_rate_becomes_16k_with_the_same_pitch(tmp_path, sr):
    path = tmp_path / f"t{sr}.wav"
    sf.write(path, tone(1.0, sr), sr)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - SAMPLE_RATE) <= 1
    # Resampling must keep the pitch: a 440 Hz tone stays at 440 Hz (within one FFT bin of 1 Hz).
    assert abs(dominant_freq(out, SAMPLE_RATE) - 440.0) <= 1.0


FORMATS = [
    ("wav", "PCM_16"),
    ("wav", "FLOAT"),
    ("wav", "PCM_24"),
    ("flac", "PCM_16"),
    ("ogg", "VORBIS"),
    ("mp3", "MPEG_LAYER_III"),
]


@pytest.mark.parametrize("ext,subtype", FORMATS)
def test_formats_and_sample_types(tmp_path, ext, subtype):
    fmt = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[ext]
    if fmt not in sf.available_formats() or subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    path = tmp_path / f"x.{ext}"
    sf.write(path, tone(1.0, 44100), 44100, format=fmt, subtype=subtype)
    out = load_audio(path)
    # Lossy codecs add encoder delay/padding; the length must still be about one second at 16 kHz.
    assert abs(len(out) / SAMPLE_RATE - 1.0) < 0.1
    assert abs(dominant_freq(out, SAMPLE_RATE) - 440.0) <= 2.0
    assert 0.3 < np.abs(out).max() <= 1.0


def test_int16_and_float_wavs_decode_to_the_same_signal(tmp_path):
    x = tone(0.5, 16000)
    sf.write(tmp_path / "i.wav", x, 16000, subtype="PCM_16")
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    a, b = load_audio(tmp_path / "i.wav"), load_audio(tmp_path / "f.wav")
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(b, x, atol=1e-6)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(0.5, 16000, 300.0), tone(0.5, 16000, 700.0)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    out = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-6)


def test_bytes_audioref_and_microphone_tuple_sources():
    x = tone(0.5, 22050)
    wav = to_wav_bytes(x, 22050)
    from_bytes = load_audio(wav)
    from_ref = load_audio(AudioRef(data=wav))
    assert np.array_equal(from_bytes, from_ref)
    # A microphone widget hands over (rate, int16 samples), possibly stereo.
    pcm = (x * 32767).astype(np.int16)
    from_mic = load_audio((22050, np.stack([pcm, pcm], axis=1)))
    np.testing.assert_allclose(from_mic, from_bytes, atol=2e-4)
    assert abs(audio_duration(wav) - 0.5) < 1e-3
    assert audio_duration(AudioRef(data=wav, duration_s=9.0)) == 9.0


def test_missing_corrupt_and_empty_files(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00garbage that is not audio" * 10)
    with pytest.raises(AudioError, match="unreadable or corrupt"):
        load_audio(tmp_path / "junk.wav")
    # A real file cut in half inside its header.
    good = to_wav_bytes(tone(0.5, 16000))
    with pytest.raises(AudioError, match="unreadable or corrupt"):
        load_audio(good[:20])
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")
    # A valid header with zero frames.
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "zero.wav")


def test_too_short_and_silent(tmp_path):
    sf.write(tmp_path / "short.wav", tone(0.05, 16000), 16000)
    with pytest.raises(AudioError, match="shorter than the 0.1 s minimum"):
        load_audio(tmp_path / "short.wav")
    assert len(load_audio(tmp_path / "short.wav", min_seconds=0.01)) == 800
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="silent"):
        load_audio(tmp_path / "silent.wav")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples_are_refused(tmp_path, bad):
    x = tone(0.5, 16000)
    x[100] = bad
    sf.write(tmp_path / "bad.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN/inf"):
        load_audio(tmp_path / "bad.wav")


def test_long_audio_is_trimmed_with_a_warning_or_refused(tmp_path):
    sr = 8000
    x = tone(31.0, sr)
    x[int(30.5 * sr) :] = 0.9  # a marker after the window: must not survive trimming
    sf.write(tmp_path / "long.wav", x, sr, subtype="FLOAT")
    with pytest.warns(AudioTrimWarning, match="trimmed"):
        out = load_audio(tmp_path / "long.wav")
    assert len(out) == 30 * SAMPLE_RATE
    assert np.abs(out).max() < 0.6
    with pytest.raises(AudioError, match="longer than the encoder's 30 s window"):
        load_audio(tmp_path / "long.wav", on_long="refuse")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(tmp_path / "long.wav", max_seconds=None)) == 31 * SAMPLE_RATE
    with pytest.raises(AudioError, match="on_long"):
        load_audio(tmp_path / "long.wav", on_long="cut")
