"""Dependencies point one way: app -> planner / training -> models -> data. A module may import its own package and
the layers below it, never one above (read from the source, so lazy imports inside functions count too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# package -> packages it must never import
FORBIDDEN = {
    "data": {"models", "training", "planner", "app", "appkit"},
    "models": {"training", "planner", "app", "appkit"},
    "planner": {"models", "app", "appkit"},
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


def test_no_upward_imports():
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            hit = _imports(path) & forbidden
            if hit:
                bad.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(hit))}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path):
    """Negative control: the parser catches a lazy import inside a function."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from training.results import read_results\n    return read_results\n")
    assert "training" in _imports(f)
