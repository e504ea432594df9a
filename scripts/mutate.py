#!/usr/bin/env python3
"""Mutation testing of a Python package (golden/ by default) against its fast tests: ``make mutate``.

What it does
------------
1. Parses every module ``<root>/<package>/*.py`` (or those named with ``--module``) and lists its **mutants**:
   small changes of one AST node each (the operators are below). Docstrings, ``__all__``, ``from __future__``
   lines, type annotations and f-strings (error-message text) are not mutated; nor are string constants
   (they are messages, dictionary keys and format names: changing a message tests nothing, and the format
   names that matter, such as the model file's ``"rsnn-model"``, are pinned by tests that read them back).
2. Finds the fast tests: the test files under ``<tests>`` that hold at least one test selected by
   ``-m "not sim and not synth and not train"`` (``--marker``), less ``--skip-tests`` (this tool's own test).
3. Runs the unmutated tests once (the baseline; they must pass) and times them.
4. Runs every mutant against those tests: one forked child per mutant, from a parent that has already imported
   the heavy third-party libraries (numpy, scipy, pytest, hypothesis ...) but nothing of the package. In the
   child an import hook serves the mutated module (compiled from the mutated AST, so line numbers are the
   file's own) in place of the file on disk; nothing on disk changes, so the workers share one tree. The child
   runs ``pytest -x -q -p no:cacheprovider -m MARKER <files>`` on the module's own test files
   (``tests/test_<module>.py`` and :data:`PRIMARY`) and, if none fails, a second child on all the other fast test
   files (two runs only to save collecting every file for most mutants); a failing test kills the mutant.
   A child that runs longer than ``--timeout`` seconds (default: 3 x the baseline + 20 s) is killed and the
   mutant counted as **timeout** (detected, e.g. an endless loop, but reported apart from killed).
   Hypothesis runs with a fixed profile (derandomized, no example database, no shrinking), so a run is
   repeatable.
   Each child has a ``--basetemp`` of its own. A child that ends with another pytest status (3: internal error,
   4: usage, 5: no tests) or an exception of its own is run once more (its output kept in
   ``build/report/mutate-errors/``) and, failing again, counted as **error**: not killed.
5. Writes ``build/report/mutate.json``: ``total``, ``killed``, ``survived``, ``timeout``, ``error``,
   ``score = (killed + timeout) / total``, figures per module, and every survivor (file, line, function,
   description) for review.

Mutation operators (one AST node changed per mutant)
----------------------------------------------------
* binary and augmented-assignment operators: ``+ <-> -``, ``* -> /``, ``/ -> *``, ``// -> *``, ``% -> //``,
  ``** -> *``, ``<< <-> >>``, ``& <-> |``, ``^ -> &``, ``@`` left alone;
* comparisons (each operator of a chain): ``< -> <=``, ``<= -> <``, ``> -> >=``, ``>= -> >``, ``== <-> !=``,
  ``is <-> is not``, ``in <-> not in``;
* ``and <-> or``; ``not x -> x``; ``-x -> x``;
* integer constants ``n -> n + 1`` and ``n -> n - 1``; float constants ``x -> x + 1.0`` and ``x -> x / 2`` (0.0 ->
  1.0 only); ``True <-> False``;
* ``min <-> max`` (calls of the builtins and every attribute named so, e.g. ``a.min()``, ``fmt.max``),
  ``minimum <-> maximum``, ``any <-> all``;
* a statement that is a bare call (``x.validate()``, ``out.append(..)``) deleted (replaced by ``pass``);
* ``return <expression>`` -> ``return None`` for a function that returns a value elsewhere too (one per
  ``return``);
* ``if`` / ``while`` / ternary conditions replaced by ``True`` and by ``False`` is NOT done (the comparison and
  boolean operators above already change them).

Equivalent mutants (that no test can kill because they do not change behaviour) may be excluded only through
:data:`EQUIVALENT` below, each with the reason; excluded mutants are listed in the report and not counted.

Usage: ``python scripts/mutate.py [--module arith] [--jobs N] [--out build/report/mutate.json]``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

DEFAULT_MARKER = "not sim and not synth and not train"

#: Test files run first for a module besides ``test_<module>.py`` (the files that test it most directly). Only
#: the order depends on this: every mutant that these do not kill still meets every fast test.
PRIMARY = {
    "reference": ["test_reference.py", "test_network.py"],
    "network": ["test_network.py", "test_reference.py"],
    "model": ["test_network.py", "test_modelfile.py", "test_golden_pins.py"],
    "modelfile": ["test_modelfile.py", "test_golden_pins.py"],
    "params": ["test_params.py", "test_golden_pins.py"],
    "arith": ["test_arith.py", "test_golden_pins.py"],
    "events": ["test_events.py"],
    "frontend": ["test_frontend.py", "test_golden_pins.py"],
    "cycles": ["test_cycles.py"],
    "data": ["test_cli.py"],
}

#: Reviewed equivalent mutants: key (see Mutant.key) -> why it cannot change behaviour. Keep it short.
EQUIVALENT: dict[str, str] = {
    "params:_int:`return value` -> `return None`":
        "every caller of _int (the validate() methods) ignores its return value; it only raises",
    "params:_num:`return float(value)` -> `return None`":
        "every caller of _num (FrontEndParams.validate) ignores its return value; it only raises",
    # cycles._gen, dense branch: `nz.shape[:-1]` -> `nz.shape[:-0]` (= `[:0]`, the empty shape) makes a 0-d
    # array of the same value n, which numpy broadcasts over (B, F) exactly where the full array would be
    "cycles:_gen:`1` -> `0` in `return np.full(nz.shape[:-1], n, dtype=np.int64), np.full(nz.shape[:-1], n, d...`":
        "0-d array of n broadcasts to the same (B, F) result as the full array of n",
    "cycles:_gen:`1` -> `0` in `return np.full(nz.shape[:-1], n, dtype=np.int64), np.full(nz.shape[:-1], n, d...`#2":
        "0-d array of n broadcasts to the same (B, F) result as the full array of n",
    "frontend:_filterbank:`16` -> `17` in `@lru_cache(maxsize=16)`": "the cache's size changes no result",
    "frontend:_filterbank:`16` -> `15` in `@lru_cache(maxsize=16)`": "the cache's size changes no result",
    "frontend:log_mel:`len(x) < win` -> `len(x) <= win`":
        "at len(x) == win the padding appended is np.zeros(0): the same samples",
    "model:random_model:`1.0` -> `2.0` in `def random_model(network: NetworkParams | None = None, seed: int = 0, density...`":
        "a default density of 2.0 takes the same path as 1.0 (`density < 1.0` is false for both: nothing zeroed)",
    "model:random_model.draw:`rng.random(shape) >= density` -> `rng.random(shape) > density`":
        "the draws are uniform floats in [0, 1): one equal to density has probability about 2**-53 per weight",
    "modelfile:model_to_bytes:`1` -> `2` in `flat = w.reshape(-1)`":
        "numpy (2.x) reads any negative size in reshape as 'the rest': reshape(-2) == reshape(-1)",
    'modelfile:_from_zip:`0` -> `1` in `shell = Model(net, [], np.zeros(0), tuple(header["labels"]), fe, header["meta"])`':
        "the shell model is used only for expected_shapes(), which never reads its w_out",
    "network:run:`0` -> `-1` in `return run_batch(model, [frames])[0]`":
        "a batch of one utterance: item 0 is item -1",
    "network:run_batch.matmul:`1` -> `2` in `return np.rint(a.reshape(-1, a.shape[-1]).astype(np.float64) @ w).astype(np.i...`":
        "numpy (2.x) reads any negative size in reshape as 'the rest': reshape(-2, K) == reshape(-1, K)",
    'network:run_batch.count:`-1` -> `1` in `c = {"in_events": ev_ff.sum(-1), "weight_reads": ev_ff.sum(-1) * n_out,`':
        "count_events of a (B, T, N) activity is (B, N): axis 1 is axis -1",
    'network:run_batch.count:`-1` -> `1` in `c = {"in_events": ev_ff.sum(-1), "weight_reads": ev_ff.sum(-1) * n_out,`#2':
        "count_events of a (B, T, N) activity is (B, N): axis 1 is axis -1",
    'network:run_batch.count:`-1` -> `1` in `c["rec_events"] = ev_rec.sum(-1)`':
        "count_events of a (B, T, N) activity is (B, N): axis 1 is axis -1",
    'network:run_batch.count:`-1` -> `1` in `c["weight_reads"] = c["weight_reads"] + ev_rec.sum(-1) * n_out`':
        "count_events of a (B, T, N) activity is (B, N): axis 1 is axis -1",
    "params:_from_json:`isinstance(kind, type) and issubclass(kind, _Json)` -> `isinstance(kind, type) or "
    "issubclass(kind, _Json)`":
        "every kind that reaches this line is a _Json class (the field types are None, tuples, enums handled above, "
        "or _Json classes), for which `and` and `or` agree",
    "params:_from_json:`return v` -> `return None`#2":
        "the last line of _from_json is reached by no field type (see the previous entry)",
    "params:FrontEndParams.validate:`abs(samples - round(samples)) > 1e-09` -> `abs(samples - round(samples)) >= 1e-09`":
        "differs only when a float rounding error is exactly 1e-9 samples, which no duration/rate product gives",
    "params:FrontEndParams.validate:`self.sample_rate / 2` -> `self.sample_rate * 2`":
        "fmin_hz's upper bound is implied by fmin_hz < fmax_hz <= sample_rate / 2 (checked just after): a higher "
        "fmin_hz is refused by that check, naming fmin_hz too",
    'params:FrontEndParams.validate:`2` -> `1` in `_num(f"{where}.fmin_hz", self.fmin_hz, 0.0, self.sample_rate / 2)`':
        "as the previous entry: fmin_hz above sample_rate / 2 is refused by fmin_hz < fmax_hz <= sample_rate / 2",
}

_BINOP = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult], ast.FloorDiv: [ast.Mult],
          ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult], ast.LShift: [ast.RShift], ast.RShift: [ast.LShift],
          ast.BitAnd: [ast.BitOr], ast.BitOr: [ast.BitAnd], ast.BitXor: [ast.BitAnd]}
_CMPOP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
          ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_NAMES = {"min": "max", "max": "min", "minimum": "maximum", "maximum": "minimum", "any": "all", "all": "any"}


@dataclass
class Mutant:
    module: str            # e.g. "arith"
    path: tuple            # where the node sits in the module's AST: ((field, index or None), ...)
    kind: str              # the operator, for the report
    description: str       # "`a < b` -> `a <= b`"
    line: int
    function: str          # the enclosing def/class qualified name, "<module>" at the top
    key: str = ""          # module:function:description[#n], stable under line shifts (for EQUIVALENT)
    new: object = field(default=None, repr=False)   # the replacement node (None: a statement replaced by pass)


def _src(node) -> str:
    try:
        s = ast.unparse(node)
    except Exception:  # pragma: no cover
        s = type(node).__name__
    s = " ".join(s.split())
    return s if len(s) <= 90 else s[:87] + "..."


class _Lister:
    """Walks a module's AST and lists its mutants (in a fixed order)."""

    def __init__(self, module: str, source: str = ""):
        self.module = module
        self.lines = source.splitlines()
        self.mutants: list[Mutant] = []
        self.seen: dict[str, int] = {}

    def add(self, path, node, new, kind, stack, before=None, after=None):
        desc = f"`{before if before is not None else _src(node)}` -> `{after if after is not None else _src(new) if new is not None else 'pass'}`"
        if isinstance(node, (ast.Constant, ast.Name, ast.Attribute, ast.UnaryOp)) and 0 < node.lineno <= len(self.lines):
            # a small node: say where it is (the source line), so that the survivor can be found and reviewed
            text = " ".join(self.lines[node.lineno - 1].split())
            desc += f" in `{text if len(text) <= 80 else text[:77] + '...'}`"
        func = ".".join(stack) or "<module>"
        key = f"{self.module}:{func}:{desc}"
        n = self.seen.get(key, 0) + 1
        self.seen[key] = n
        self.mutants.append(Mutant(self.module, tuple(path), kind, desc, getattr(node, "lineno", 0), func,
                                   key if n == 1 else f"{key}#{n}", new))

    def walk(self, node, path=(), stack=(), returns_value=False):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack = stack + (node.name,)
            returns_value = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(node))
        elif isinstance(node, ast.ClassDef):
            stack = stack + (node.name,)
        self.mutate(node, path, stack, returns_value)
        for name, value in ast.iter_fields(node):
            if self.skip_field(node, name):
                continue
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST) and not self.skip_child(node, name, i, child):
                        self.walk(child, path + ((name, i),), stack, returns_value)
            elif isinstance(value, ast.AST):
                self.walk(value, path + ((name, None),), stack, returns_value)

    @staticmethod
    def skip_field(node, name) -> bool:
        if name in ("annotation", "returns", "type_comment"):
            return True
        if isinstance(node, ast.ImportFrom) or isinstance(node, ast.Import):
            return True
        return False

    @staticmethod
    def skip_child(parent, name, i, child) -> bool:
        if isinstance(child, ast.JoinedStr):     # f-strings: message text
            return True
        if name == "body" and i == 0 and isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant) \
                and isinstance(child.value.value, str):  # docstring
            return True
        if isinstance(child, (ast.Assign, ast.AnnAssign)):
            targets = child.targets if isinstance(child, ast.Assign) else [child.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return True
        return False

    def mutate(self, node, path, stack, returns_value):
        add = lambda new, kind, **kw: self.add(path, node, new, kind, stack, **kw)  # noqa: E731
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
            for op in _BINOP[type(node.op)]:
                add(ast.BinOp(node.left, op(), node.right), "binop")
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOP:
            for op in _BINOP[type(node.op)]:
                add(ast.AugAssign(node.target, op(), node.value), "augassign")
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMPOP:
                    ops = list(node.ops)
                    ops[i] = _CMPOP[type(op)]()
                    add(ast.Compare(node.left, ops, node.comparators), "compare")
        elif isinstance(node, ast.BoolOp):
            add(ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values), "boolop")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            add(node.operand, "unary")
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                add(ast.Constant(not v), "constant")
            elif isinstance(v, int):
                add(ast.Constant(v + 1), "constant")
                add(ast.Constant(v - 1), "constant")
            elif isinstance(v, float):
                add(ast.Constant(v + 1.0), "constant")
                if v != 0.0:
                    add(ast.Constant(v / 2), "constant")
        elif isinstance(node, ast.Name) and node.id in ("min", "max", "any", "all") and isinstance(node.ctx, ast.Load):
            add(ast.Name(_NAMES[node.id], ast.Load()), "name")
        elif isinstance(node, ast.Attribute) and node.attr in _NAMES and isinstance(node.ctx, ast.Load):
            add(ast.Attribute(node.value, _NAMES[node.attr], ast.Load()), "attribute")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            add(None, "delete-call")
        elif isinstance(node, ast.Return) and node.value is not None and returns_value \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            add(ast.Return(ast.Constant(None)), "return")


def list_mutants(module: str, source: str) -> list[Mutant]:
    lister = _Lister(module, source)
    lister.walk(ast.parse(source))
    return lister.mutants


def apply_mutant(source: str, m: Mutant) -> ast.Module:
    tree = ast.parse(source)
    parent, (name, index) = tree, m.path[-1]
    for f, i in m.path[:-1]:
        parent = getattr(parent, f) if i is None else getattr(parent, f)[i]
    old = getattr(parent, name) if index is None else getattr(parent, name)[index]
    new = ast.Pass() if m.new is None else copy.deepcopy(m.new)
    ast.copy_location(new, old)
    if index is None:
        setattr(parent, name, new)
    else:
        getattr(parent, name)[index] = new
    return ast.fix_missing_locations(tree)


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module from a code object instead of its file."""

    def __init__(self, fullname: str, filename: str, code):
        self.fullname, self.filename, self.code = fullname, filename, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.fullname:
            return None
        return importlib.util.spec_from_file_location(fullname, self.filename, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.code, module.__dict__)


def _preimport():
    """Third-party modules the tests use, imported once in the parent so that every forked child has them."""
    for name in ("numpy", "scipy", "scipy.signal", "scipy.fft", "soundfile", "pytest", "hypothesis",
                 "hypothesis.extra.numpy", "_pytest", "json", "zipfile", "csv", "argparse"):
        try:
            __import__(name)
        except Exception:
            pass


def _hypothesis_profile():
    try:
        from hypothesis import HealthCheck, Phase, settings
    except ImportError:
        return
    settings.register_profile("mutate", database=None, derandomize=True, deadline=None, print_blob=False,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate],
                              suppress_health_check=list(HealthCheck))
    settings.load_profile("mutate")


def _child(root: Path, package: str, files: list, marker: str, mutant: Mutant | None, source: str | None,
           log: str | None, basetemp: str) -> int:
    """In a forked child: install the mutant, run pytest, return its exit status."""
    fd = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))
    except (ImportError, ValueError, OSError):
        pass
    if mutant is not None:
        filename = str(root / package / f"{mutant.module}.py")
        code = compile(apply_mutant(source, mutant), filename, "exec")
        sys.meta_path.insert(0, _MutantFinder(f"{package}.{mutant.module}", filename, code))
    _hypothesis_profile()
    import pytest
    # the parent imported hypothesis (a pytest plugin) before pytest started, which pytest warns about; with
    # filterwarnings = error that warning would fail the run, so it alone is ignored
    # --basetemp: a tmp_path folder of its own, so that no other pytest run on the machine (another job, another
    # user) races with it over the shared numbered folders under /tmp/pytest-of-<user>
    return int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                            f"--basetemp={basetemp}",
                            "-m", marker, *files]))


def fork_run(*args) -> int:
    pid = os.fork()
    if pid == 0:
        rc = 98
        try:
            rc = _child(*args)
        except BaseException:  # noqa: BLE001 - anything in the child is a crash of the mutant's run
            import traceback
            traceback.print_exc()
            rc = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    return pid


def fast_test_files(root: Path, tests: str, marker: str, skip: list) -> list:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m",
                          marker, tests], cwd=root, capture_output=True, text=True)
    files = []
    for line in out.stdout.splitlines():
        m = re.match(r"^([^:\s]+\.py)::", line)
        if m and m.group(1) not in files and Path(m.group(1)).name not in skip:
            files.append(m.group(1))
    if not files:
        raise SystemExit(f"mutate: no fast tests found under {tests} (pytest said: {out.stdout[-2000:]}"
                         f"{out.stderr[-2000:]})")
    return files


def stages(module: str, files: list) -> list:
    """The test files of a module's mutants in two runs: its own test files first, then all the others (only
    for a mutant that the first run does not kill). Together they are always every fast test file."""
    primary = [f"test_{module}.py"] + PRIMARY.get(module, [])
    first = list(dict.fromkeys(f for p in primary for f in files if Path(f).name == p))
    rest = [f for f in files if f not in first]
    return [s for s in (first, rest) if s]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="the project root")
    ap.add_argument("--package", default="golden", help="the package whose modules are mutated (default golden)")
    ap.add_argument("--tests", default="tests", help="the test folder, relative to the root")
    ap.add_argument("--marker", default=DEFAULT_MARKER, help=f"pytest -m expression (default: {DEFAULT_MARKER!r})")
    ap.add_argument("--skip-tests", default="test_mutate.py", help="test file names not to run, comma separated")
    ap.add_argument("--module", action="append", help="mutate only this module (repeatable; e.g. arith)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="parallel mutants (default: cores)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per mutant (default 3 x baseline + 20)")
    ap.add_argument("--limit", type=int, default=None, help="run only the first N mutants of each module (a trial)")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--out", default="build/report/mutate.json", help="the JSON report (relative to the root)")
    ap.add_argument("--logs", default=None, help="write each mutant run's pytest output into this folder")
    args = ap.parse_args(argv)

    root = Path(args.root).resolve()
    sys.dont_write_bytecode = True
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.find_spec(args.package)
    if spec is None or Path(spec.origin).resolve().parent != (root / args.package).resolve():
        print(f"mutate: `import {args.package}` finds {spec.origin if spec else None}, not the package under {root}",
              file=sys.stderr)
        return 2
    modules = sorted(p.stem for p in (root / args.package).glob("*.py"))
    if args.module:
        wanted = [m.split(".")[-1] for m in args.module]
        unknown = sorted(set(wanted) - set(modules))
        if unknown:
            ap.error(f"no module {unknown} in {args.package}/ (modules: {modules})")
        modules = [m for m in modules if m in wanted]
    sources = {m: (root / args.package / f"{m}.py").read_text() for m in modules}
    mutants = [mu for m in modules for mu in list_mutants(m, sources[m])[:args.limit]]
    if args.list:
        for mu in mutants:
            print(f"{args.package}/{mu.module}.py:{mu.line}: [{mu.kind}] {mu.function}: {mu.description}")
        print(f"{len(mutants)} mutants")
        return 0
    excluded = [mu for mu in mutants if mu.key in EQUIVALENT]
    stale = sorted(k for k in EQUIVALENT if k.split(":")[0] in modules and k not in {mu.key for mu in excluded})
    for k in stale:
        print(f"mutate: warning: EQUIVALENT names no mutant any more: {k}", file=sys.stderr)
    mutants = [mu for mu in mutants if mu.key not in EQUIVALENT]

    skip = [s for s in args.skip_tests.split(",") if s]
    files = fast_test_files(root, args.tests, args.marker, skip)
    _preimport()
    logs = Path(args.logs) if args.logs else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tmp_root = Path(tempfile.mkdtemp(prefix="mutate-"))
    pid = fork_run(root, args.package, files, args.marker, None, None, str(logs / "baseline.log") if logs else None,
                   str(tmp_root / "baseline"))
    _, status = os.waitpid(pid, 0)
    baseline_s = time.monotonic() - t0
    shutil.rmtree(tmp_root / "baseline", ignore_errors=True)
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"mutate: the unmutated fast tests fail (pytest exit status {os.waitstatus_to_exitcode(status)}); "
              "fix them first (rerun with --logs DIR to see the output)", file=sys.stderr)
        return 2
    timeout = args.timeout or 3 * baseline_s + 20
    print(f"mutate: {len(mutants)} mutants of {args.package}/ ({', '.join(modules)}), {len(excluded)} excluded as "
          f"equivalent; {len(files)} fast test files; baseline {baseline_s:.1f} s, timeout {timeout:.0f} s; "
          f"{args.jobs} jobs", flush=True)

    results: dict[int, str] = {}
    retried: set[int] = set()
    errors_dir = (root / args.out).parent / "mutate-errors"
    queue = [(i, 0) for i in range(len(mutants))]      # (mutant, stage)
    running: dict[int, tuple[int, float, int]] = {}
    start = time.monotonic()
    done = 0
    try:
        while queue or running:
            while queue and len(running) < max(1, args.jobs):
                i, stage = queue.pop(0)
                mu = mutants[i]
                log = str(logs / f"{mu.module}-{i}-{stage}.log") if logs else None
                if i in retried and not logs:   # a second try after an error: keep its output
                    errors_dir.mkdir(parents=True, exist_ok=True)
                    log = str(errors_dir / f"{mu.module}-{i}-{stage}.log")
                pid = fork_run(root, args.package, stages(mu.module, files)[stage], args.marker, mu,
                               sources[mu.module], log, str(tmp_root / f"{i}-{stage}"))
                running[pid] = (i, time.monotonic(), stage)
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                now = time.monotonic()
                for p, (i, t, _) in list(running.items()):
                    if now - t > timeout:
                        os.kill(p, signal.SIGKILL)
                        os.waitpid(p, 0)
                        shutil.rmtree(tmp_root / f"{i}-{running[p][2]}", ignore_errors=True)
                        del running[p]
                        results[i] = "timeout"
                        done += 1
                time.sleep(0.01)
                continue
            if pid not in running:
                continue
            i, _, stage = running.pop(pid)
            shutil.rmtree(tmp_root / f"{i}-{stage}", ignore_errors=True)
            rc = os.waitstatus_to_exitcode(status)
            if rc >= 0 and rc not in (0, 1, 2) and i not in retried:
                retried.add(i)                              # the tool's or pytest's own trouble: try once more
                print(f"  exit status {rc} for {mutants[i].module}:{mutants[i].line} {mutants[i].description}; "
                      "running it again", flush=True)
                queue.insert(0, (i, stage))
                continue
            if rc == 0 and stage + 1 < len(stages(mutants[i].module, files)):
                queue.insert(0, (i, stage + 1))             # not killed by its own tests: now all the others
                continue
            # pytest: 0 all passed, 1 a test failed, 2 interrupted (a collection error: the mutant broke an
            # import); a signal (negative) is a crash of the mutated code. Anything else is the tool's problem.
            results[i] = "survived" if rc == 0 else "killed" if rc in (1, 2) or rc < 0 else "error"
            done += 1
            mu = mutants[i]
            if results[i] in ("survived", "error"):
                print(f"  {results[i]}: {args.package}/{mu.module}.py:{mu.line} {mu.function}: {mu.description}"
                      + (f" (exit status {rc})" if results[i] == "error" else ""), flush=True)
            if done % 50 == 0:
                el = time.monotonic() - start
                print(f"mutate: {done}/{len(mutants)} in {el:.0f} s (about {el / done * (len(mutants) - done):.0f} s "
                      "left)", flush=True)
    finally:
        for p in running:
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(tmp_root, ignore_errors=True)
    wall = time.monotonic() - start

    def figures(idx):
        c = {k: sum(1 for i in idx if results[i] == k) for k in ("killed", "survived", "timeout", "error")}
        total = len(idx)
        return {"total": total, **c, "score": round((c["killed"] + c["timeout"]) / total, 4) if total else None}

    report = {
        **figures(range(len(mutants))),
        "modules": {m: figures([i for i, mu in enumerate(mutants) if mu.module == m]) for m in modules},
        "survivors": [{"file": f"{args.package}/{mutants[i].module}.py", "line": mutants[i].line,
                       "function": mutants[i].function, "kind": mutants[i].kind,
                       "description": mutants[i].description, "key": mutants[i].key}
                      for i in range(len(mutants)) if results[i] in ("survived", "error")],
        "timeouts": [{"file": f"{args.package}/{mutants[i].module}.py", "line": mutants[i].line,
                      "function": mutants[i].function, "description": mutants[i].description}
                     for i in range(len(mutants)) if results[i] == "timeout"],
        "excluded_equivalent": [{"key": mu.key, "line": mu.line, "reason": EQUIVALENT[mu.key]} for mu in excluded],
        "tests": files, "marker": args.marker, "jobs": args.jobs, "timeout_s": round(timeout, 1),
        "baseline_s": round(baseline_s, 1), "wall_s": round(wall, 1), "limit": args.limit,
        "command": "python scripts/mutate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = root / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"mutate: {report['killed']} killed, {report['timeout']} timeout, {report['survived']} survived, "
          f"{report['error']} error of {report['total']}: score {100 * (report['score'] or 0):.1f} % "
          f"({wall:.0f} s); {out}")
    for m, r in report["modules"].items():
        if r["total"]:
            print(f"  {m:12s} {r['total']:5d} mutants, {100 * r['score']:5.1f} % "
                  f"(killed {r['killed']}, timeout {r['timeout']}, survived {r['survived']}, error {r['error']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
