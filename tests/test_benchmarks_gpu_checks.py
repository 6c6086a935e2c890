"""The GPU check script's CPU mode (``--tiny``): one JSON object, the precision contrast, the 7B footprint."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_mode_prints_one_json_object_with_the_precision_contrast(capsys):
    from benchmarks.gpu_7b_checks import main

    code = main(["--tiny", "--json", "--steps", "2", "--text-layers", "1", "--audio-layers", "1"])
    out = capsys.readouterr().out.strip()
    result = json.loads(out)  # exactly one JSON object on stdout
    assert code == 0 and result["ok"] is True
    p = result["precision"]
    assert p["fraction_moved_fp32_master_bf16_compute"] > 0.99
    assert p["fraction_moved_pure_bf16_control"] < 0.5
    full = result["full_size_7b"]
    assert 8.0e9 < full["params"] < 8.8e9  # Qwen2-Audio-7B: 7.7B decoder + 0.64B Whisper-large encoder
    assert full["resumable_checkpoint_gb"] == pytest.approx(12 * full["params"] / 1e9, abs=0.1)
    assert "skipped" in result["gpu_tests"]
