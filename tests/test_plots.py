import pytest

from training.plots import main, scheme_curves_svg


def _rows():
    base = dict(corpus="synth", language="en-US", recipe="mono", source_language="", split="test")
    rows = []
    for scheme, p, seed, v in [
        ("text", 0, 1, 0.5),
        ("text", 0, 2, 0.52),
        ("direct", 2, 1, 0.6),
        ("direct", 2, 2, 0.64),
        ("curriculum", 2, 1, 0.7),
        ("curriculum", 2, 2, 0.68),
        ("direct", 50, 1, 0.8),
        ("curriculum", 50, 1, 0.79),
    ]:
        rows.append({**base, "scheme": scheme, "speech_percent": p, "seed": seed, "slu_f1": v})
    return rows


def test_svg_has_one_line_per_scheme_and_reference_lines():
    svg = scheme_curves_svg(_rows())
    assert svg.startswith("<svg") and svg.count("<path") == 2
    assert "text 0.510" in svg  # the text-only mean over its two seeds
    assert ">2%<" in svg and ">50%<" in svg


def test_no_rows_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="no 'test' rows"):
        scheme_curves_svg([])
    (tmp_path / "r.csv").write_text("corpus,scheme\n")
    assert main([str(tmp_path / "r.csv"), "--out", str(tmp_path / "x.svg")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
