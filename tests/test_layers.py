"""Dependencies point one way: app -> planner / training -> models -> data, and evaluation (the torch-free scorer,
statistics, results table and report) sits on data alone, used by app, planner and training. A module may import its
own package and the layers below it, never one above (read from the source, so lazy imports inside functions count
too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# package -> packages it must never import
FORBIDDEN = {
    "data": {"evaluation", "models", "training", "planner", "app", "appkit"},
    "evaluation": {"models", "training", "planner", "app", "appkit"},
    "models": {"evaluation", "training", "planner", "app", "appkit"},
    "planner": {"models", "training", "app", "appkit"},
    "training": {"app", "appkit", "planner"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _upward_imports(root: Path) -> list[str]:
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            hit = _imports(path) & forbidden
            if hit:
                bad.append(f"{path.relative_to(root)} imports {', '.join(sorted(hit))}")
    return bad


def test_no_upward_imports():
    for package in FORBIDDEN:
        assert any((ROOT / package).rglob("*.py")), f"{package}/ has no modules: the check would pass vacuously"
    bad = _upward_imports(ROOT)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path):
    """Negative control: the parser catches a lazy import inside a function, and the scan reports it."""
    (tmp_path / "evaluation").mkdir()
    f = tmp_path / "evaluation" / "m.py"
    f.write_text("def f():\n    from training.loop import Trainer\n    return Trainer\n")
    assert "training" in _imports(f)
    assert _upward_imports(tmp_path) == ["evaluation/m.py imports training"]
    f.write_text("def f():\n    from data.textio import read_text\n    return read_text\n")
    assert _upward_imports(tmp_path) == []
