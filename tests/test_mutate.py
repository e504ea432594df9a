"""The mutation tool (scripts/mutate.py, `make mutate`) on a tiny synthetic package: it must count a killed and a
surviving mutant correctly, leave docstrings, __all__ and messages alone, and count an endless loop as a timeout."""
import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "scripts" / "mutate.py"


def make_project(root: Path, source: str, test: str):
    (root / "mini").mkdir()
    (root / "mini" / "__init__.py").write_text("")
    (root / "mini" / "calc.py").write_text(source)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(test)


def mutate(root: Path, *extra):
    out = subprocess.run([sys.executable, str(TOOL), "--root", str(root), "--package", "mini", "--tests", "tests",
                          "--jobs", "1", "--out", "report.json", *extra], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout, json.loads((root / "report.json").read_text()) if "--list" not in extra else None


SOURCE = '''"""A docstring is not mutated."""
__all__ = ["double"]


def double(x):
    """Nor is this one."""
    if x is None:
        raise ValueError(f"not {x!r} {1 + 1}")   # nor the message
    return x + x
'''

# `x + x -> x - x` survives this test (0 is not None); `return x + x -> return None` is killed. The `is` ->
# `is not` mutant makes every call raise: killed.
TEST = '''from mini.calc import double


def test_double_returns_something():
    assert double(3) is not None
'''


def test_counts_a_killed_and_a_surviving_mutant(tmp_path):
    make_project(tmp_path, SOURCE, TEST)
    listing, _ = mutate(tmp_path, "--list")
    assert listing.strip().endswith("3 mutants"), listing
    _, rep = mutate(tmp_path)
    assert (rep["total"], rep["killed"], rep["survived"], rep["timeout"], rep["error"]) == (3, 2, 1, 0, 0)
    assert rep["score"] == round(2 / 3, 4)
    assert rep["modules"]["calc"]["survived"] == 1
    (s,) = rep["survivors"]
    assert s["file"] == "mini/calc.py" and s["line"] == 9 and s["function"] == "double"
    assert s["description"] == "`x + x` -> `x - x`"
    assert rep["tests"] == ["tests/test_calc.py"]


def test_an_endless_loop_is_a_timeout(tmp_path):
    make_project(tmp_path, "def count(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n",
                 "from mini.calc import count\n\n\ndef test_count():\n    assert count(3) == 3\n")
    _, rep = mutate(tmp_path, "--timeout", "2")
    # mutants: `i = 0` -> 1 or -1 (both survive: the loop still stops at n), `<` -> `<=` (killed),
    # `+=` -> `-=` (endless), `i += 1` -> 2 (killed) or 0 (endless), `return i` -> None (killed)
    assert rep["total"] == 7
    assert (rep["timeout"], rep["killed"], rep["survived"]) == (2, 3, 2)
    assert rep["score"] == round(5 / 7, 4)
