"""Generated mutants: small edits to a model's own source, the way mutmut and cosmic-ray make them.

The catalog (checkers/mutants/<subsystem>.py) holds bugs chosen by hand, each aimed at the
invariant it must break; it shows the suites *can* fail. Generated mutants measure how often
they *do*: every comparison, operator, constant, branch test, statement and return value of
the model's files is a site, a seeded sample of them is applied one at a time to a scratch copy
of the project, and ``kinv check`` runs on each. A mutant is killed only when an invariant (or
a proof) reports it; a model that raises was not caught by any invariant, and one that
survives is a gap in the suite or an equivalent mutant, which only a reader can tell apart.

Each edit replaces only the source text of the mutated token or node, so a mutant's diff is
one line (or the few lines of one statement) and comments survive.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import functools
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers.errors import UsageError
from checkers.sources import project_root

# The packages a scratch copy holds: the model, its invariants, and the engines that run them.
PACKAGES = ("model", "invariants", "checkers")

# Outcomes of one generated mutant.
KILLED, CRASHED, SURVIVED, TIMED_OUT = "killed", "crashed", "survived", "timed out"
OUTCOMES = (KILLED, CRASHED, SURVIVED, TIMED_OUT)

# Counterexample kinds that are an invariant's verdict (a trace to a bad state or a hang).
KILLING_KINDS = ("invariant", "deadlock")

# Exit code of ``kinv check`` when kinv or the model raised.
EXIT_INTERNAL_ERROR = 4

COMPARISON = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">")}
COMPARISON |= {ast.Eq: ("==", "!="), ast.NotEq: ("!=", "==")}
ARITHMETIC = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "//"), ast.FloorDiv: ("//", "*")}
ARITHMETIC |= {ast.LShift: ("<<", ">>"), ast.RShift: (">>", "<<"), ast.BitAnd: ("&", "|"), ast.BitOr: ("|", "&")}
BOOLEAN = {ast.And: ("and", "or"), ast.Or: ("or", "and")}

# Statements whose loss is a plausible "forgot this line" bug. Compound statements are left
# to ``negate`` (deleting a whole block is rarely the bug), imports and declarations to nobody.
DELETABLE = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Expr,
    ast.Return,
    ast.Raise,
    ast.Assert,
    ast.Delete,
    ast.Break,
    ast.Continue,
)

# Operator name -> what it does, in the order reports list them.
OPERATORS: dict[str, str] = {
    "comparison": "a comparison to its neighbour: < to <=, >= to >, == to !=",
    "arithmetic": "an operator to its partner: + and -, * and //, << and >>, & and |",
    "boolean": "and to or, or to and",
    "constant": "an int literal n to n+1 (0 and 1 to each other), True and False to each other",
    "negate": "the test of an if, while, ternary or assert to not (test)",
    "delete": "a statement in a function body to pass",
    "return": "return X to return None, return True to return False and back",
}


@dataclass(frozen=True)
class Site:
    """One mutation: the node (by its index in ``ast.walk`` order) and which of its edits."""

    file: str  # relative to the project root: "model/mm/page_alloc.py"
    line: int
    col: int  # ast's col_offset (UTF-8 bytes from the start of the line)
    operator: str  # a key of OPERATORS
    description: str  # "line 123: `<` -> `<=` in rmqueue_smallest"
    node: int  # index of the mutated node in ast.walk(ast.parse(source))
    choice: int  # which edit of that node and operator (a Compare's op, say)

    @property
    def id(self) -> str:
        """Stable for one version of the file: what ``equivalent`` sets name."""
        return f"{self.file}:{self.line}:{self.col}:{self.operator}:{self.node}:{self.choice}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"id": self.id}


# Locating source text. ast gives columns in UTF-8 bytes; edits work on str offsets.

Located = ast.expr | ast.stmt  # the nodes with positions


class _Text:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.split("\n")  # ast counts lines at "\n" only
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        chars = col if line.isascii() else len(line.encode()[:col].decode())
        return self.starts[lineno - 1] + chars

    def span(self, node: Located) -> tuple[int, int]:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: Located) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def token(self, left: Located, right: Located, pattern: str) -> tuple[int, int] | None:
        """The operator token between two operands. The gap between them holds only brackets,
        whitespace, comments and the one operator (strings belong to the operands)."""
        start, end = self.span(left)[1], self.span(right)[0]
        gap = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), self.source[start:end])
        found = re.search(pattern, gap)
        return None if found is None else (start + found.start(), start + found.end())


@dataclass(frozen=True)
class _Edit:
    node: int
    operator: str
    choice: int
    line: int
    col: int
    start: int  # str offsets into the source
    end: int
    text: str  # what replaces source[start:end]
    before: str  # for the description
    after: str
    where: str  # the enclosing def or class, dotted: "Zone.rmqueue"
    unit: tuple[int, int]  # the lines compiled alone: the outermost def, else the top-level statement


def _short(text: str, width: int = 48) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 3] + "..."


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_docstring(stmt: ast.AST, parent: ast.AST | None) -> bool:
    body = getattr(parent, "body", None)
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
        and isinstance(body, list)
        and bool(body)
        and body[0] is stmt
    )


def _skipped_roots(tree: ast.Module, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    """Subtrees no mutant touches: ``if TYPE_CHECKING:`` blocks and docstrings (never run),
    annotations (never evaluated under ``from __future__ import annotations``), decorators
    (they configure dataclasses and the model framework, not the kernel), and f-strings (whose
    inner positions Python 3.11 does not give reliably)."""
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            roots += [node.test, *node.body]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            roots += [*node.decorator_list, *([node.returns] if node.returns else [])]
        elif isinstance(node, ast.ClassDef):
            roots += node.decorator_list
        elif isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.JoinedStr) or _is_docstring(node, parents.get(node)):
            roots.append(node)
    return roots


def _scope(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    """The enclosing defs and classes, innermost first."""
    chain: list[ast.AST] = []
    up = parents.get(node)
    while up is not None:
        if isinstance(up, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            chain.append(up)
        up = parents.get(up)
    return chain


@functools.lru_cache(maxsize=4)
def _edits(source: str) -> tuple[_Edit, ...]:
    """Every edit of every operator, in ``ast.walk`` order, before the compile check (kept
    for the last few sources: ``apply`` is called once per site of the same file)."""
    tree = ast.parse(source)
    text = _Text(source)
    nodes = list(ast.walk(tree))
    parents = {child: node for node in nodes for child in ast.iter_child_nodes(node)}
    skipped = {id(n) for root in _skipped_roots(tree, parents) for n in ast.walk(root)}
    out: list[_Edit] = []

    def add(
        index: int, node: Located, operator: str, choice: int, span: tuple[int, int], new: str, before: str, after: str = ""
    ) -> None:
        scope = _scope(node, parents)
        where = ".".join(getattr(s, "name", "") for s in reversed(scope)) or "module level"
        defs = [s for s in scope if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        top: ast.AST = node
        while parents.get(top) is not tree:
            top = parents[top]
        outer = defs[-1] if defs else top
        assert isinstance(outer, ast.stmt) and outer.end_lineno is not None
        unit = text.starts[outer.lineno - 1], text.starts[outer.end_lineno] - 1
        edit = _Edit(index, operator, choice, node.lineno, node.col_offset, *span, new, before, after or new, where, unit)
        out.append(edit)

    def swap(
        index: int, node: Located, operator: str, choice: int, left: Located, right: Located, pair: tuple[str, str]
    ) -> None:
        old, new = pair
        span = text.token(left, right, rf"\b{old}\b" if old.isalpha() else re.escape(old))
        if span is not None:
            add(index, node, operator, choice, span, new, old)

    for index, node in enumerate(nodes):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                if type(op) in COMPARISON:
                    swap(index, node, "comparison", i, operands[i], operands[i + 1], COMPARISON[type(op)])
        elif isinstance(node, ast.BinOp) and type(node.op) in ARITHMETIC:
            strings = [v for v in (node.left, node.right) if isinstance(v, ast.JoinedStr | ast.Constant)]
            if not any(isinstance(v, ast.JoinedStr) or isinstance(v.value, str | bytes) for v in strings):
                # ("a" + "b" to "a" - "b" only crashes)
                swap(index, node, "arithmetic", 0, node.left, node.right, ARITHMETIC[type(node.op)])
        elif isinstance(node, ast.AugAssign) and type(node.op) in ARITHMETIC:
            old, new = ARITHMETIC[type(node.op)]
            swap(index, node, "arithmetic", 0, node.target, node.value, (old + "=", new + "="))
        elif isinstance(node, ast.BoolOp):
            # One token at a time, like the others: a and b and c has two, each its own mutant.
            old, new = BOOLEAN[type(node.op)]
            spans = [text.token(a, b, rf"\b{old}\b") for a, b in zip(node.values, node.values[1:], strict=False)]
            if all(spans):
                for choice, span in enumerate(spans):
                    assert span is not None
                    add(index, node, "boolean", choice, span, new, old)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                if not isinstance(parents.get(node), ast.Return):  # return True is return's to flip
                    add(index, node, "constant", 0, text.span(node), str(not node.value), str(node.value))
            elif isinstance(node.value, int):
                n = node.value
                new_n = 1 if n == 0 else 0 if n == 1 else n + 1
                add(index, node, "constant", 0, text.span(node), str(new_n), text.segment(node))
        if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert) and id(node.test) not in skipped:
            test = node.test
            seg = text.segment(test)
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                new = f"({text.segment(test.operand)})"  # not (not x) would be equivalent
            else:
                new = f"not ({seg})"
            add(index, test, "negate", 0, text.span(test), new, seg)
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                new = str(not value.value)
            elif isinstance(value, ast.Constant) and value.value is None:
                new = ""
            else:
                new = "None"
            if new:
                add(index, node, "return", 0, text.span(value), new, f"return {text.segment(value)}", f"return {new}")
        if isinstance(node, DELETABLE) and not _is_docstring(node, parents.get(node)):
            scope = _scope(node, parents)
            declaration = isinstance(node, ast.AnnAssign) and node.value is None
            expression = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if scope and not isinstance(scope[0], ast.ClassDef) and not declaration and not expression:
                add(index, node, "delete", 0, text.span(node), "pass", text.segment(node))
    return tuple(out)


def _patched(source: str, edit: _Edit) -> str:
    return source[: edit.start] + edit.text + source[edit.end :]


def _compiles(source: str, edit: _Edit, file: str) -> bool:
    """Whether the mutated module compiles. An edit can only break the statement it is in, so
    only that is compiled: the outermost enclosing def (under ``if 1:`` when it is a method),
    else the top-level statement. The same verdict, in a fraction of the time on a big file."""
    start, end = edit.unit
    text = source[start : edit.start] + edit.text + source[edit.end : end]
    if text[:1].isspace():
        text = "if 1:\n" + text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the file's own warnings, once per site otherwise
            compile(text, file, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(project_root()).as_posix()
    except ValueError:
        return path.as_posix()


def sites(path: Path) -> list[Site]:
    """Every mutation site of one file, in source order; a mutant that does not compile is dropped."""
    return sites_in(Path(path).read_text(encoding="utf-8"), _relative(Path(path)))


def sites_in(source: str, file: str) -> list[Site]:
    """``sites`` of source text, named ``file`` (relative to the project root)."""
    found = []
    for e in _edits(source):
        if not _compiles(source, e, file):
            continue
        description = f"line {e.line}: `{_short(e.before)}` -> `{_short(e.after)}` in {e.where}"
        found.append(Site(file, e.line, e.col, e.operator, description, e.node, e.choice))
    return sorted(found, key=lambda s: (s.line, s.col, s.node, s.operator, s.choice))


def apply(site: Site, source: str) -> str:
    """The source with ``site``'s one edit made. Raises ValueError if the source is not the
    version the site was found in (no such edit at that line)."""
    for e in _edits(source):
        if (e.node, e.operator, e.choice) == (site.node, site.operator, site.choice):
            if (e.line, e.col) != (site.line, site.col):
                break
            return _patched(source, e)
    raise ValueError(f"{site.file}: no {site.operator} site at line {site.line} col {site.col} (file changed?)")


def unified_diff(site: Site, source: str, mutated: str) -> str:
    """The unified diff of the mutated file against the original, named as git names them."""
    lines = difflib.unified_diff(
        source.splitlines(keepends=True),
        mutated.splitlines(keepends=True),
        fromfile=f"a/{site.file}",
        tofile=f"b/{site.file}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def sample(all_sites: Iterable[Site], n: int, seed: int) -> list[Site]:
    """``n`` sites chosen by ``random.Random(seed)``, in the order they were given (all of them
    when there are no more than ``n``)."""
    pool = list(all_sites)
    if n >= len(pool):
        return pool
    chosen = sorted(random.Random(seed).sample(range(len(pool)), n))
    return [pool[i] for i in chosen]


# Which files make up a model.

# Running one mutant in a scratch copy of the project.


@contextlib.contextmanager
def scratch_copy(site: Site, source_root: Path | None = None) -> Iterator[Path]:
    """A temporary copy of model/, invariants/ and checkers/ with ``site`` applied to its file;
    removed on the way out, however the block ends (KeyboardInterrupt included). With the copy
    first on PYTHONPATH, ``import model`` finds it before the installed package (an editable
    install's finder comes after sys.path)."""
    root = source_root or project_root()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory(prefix="kinv-mutant-") as tmp:
        scratch = Path(tmp)
        for package in PACKAGES:
            shutil.copytree(root / package, scratch / package, ignore=ignore)
        target = scratch / site.file
        target.write_text(apply(site, (root / site.file).read_text(encoding="utf-8")), encoding="utf-8")
        yield scratch


def scratch_env(scratch: Path) -> dict[str, str]:
    """The environment a mutant runs in: the scratch copy shadows the installed packages, and
    writes no bytecode (a .pyc beside a copy is waste, beside the real tree a stale trap)."""
    path = os.pathsep.join(filter(None, [str(scratch), os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def read_summary(reports: Path) -> dict[str, Any] | None:
    """``reports/latest/summary.json``, or None when the run wrote none (or an unreadable one).
    ``latest`` is a symlink, or a one-line file naming the run where symlinks are unavailable."""
    latest = reports / "latest"
    if latest.is_file() and not latest.is_symlink():
        latest = reports / latest.read_text(encoding="utf-8").strip()
    try:
        data = json.loads((latest / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _tail(text: str) -> str:
    """The last non-blank line of a traceback: the exception and its message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def classify(returncode: int, summary: dict[str, Any] | None, stderr: str) -> tuple[str, str]:
    """(outcome, detail) of one finished ``kinv check`` run under a mutant.

    Killed when some engine reports an invariant's counterexample (or a deadlock), refutes a
    proof or never reaches a goal, even if another engine raised: the suite caught the bug. Crashed when kinv exits 4
    or an engine raised, and no invariant caught it; also when there is no summary to read.
    Survived otherwise (exit 0 or 3: pass, bounded pass or incomplete)."""
    if summary is None:
        why = _tail(stderr) or f"exit code {returncode}"
        return CRASHED, f"no summary.json written: {why}"
    results = [r for r in summary.get("results") or [] if isinstance(r, dict)]
    kills = []
    for r in results:
        if r.get("status") != "fail":
            continue
        engine = r.get("engine", "?")
        cex = r.get("counterexample")
        if isinstance(cex, dict) and cex.get("kind", "invariant") in KILLING_KINDS:
            steps = cex.get("steps")
            n = f" in {steps} step{'' if steps == 1 else 's'}" if isinstance(steps, int) else ""
            what = "deadlock" if cex.get("kind") == "deadlock" else cex.get("invariant", "?")
            kills.append(f"{what} by {engine}{n}")
        elif r.get("refutation") is not None:
            names = r.get("invariants") or ["a proof"]
            kills.append(f"{names[0]} refuted by {engine}")
        elif r.get("unreached"):  # the bug made a state the model must reach unreachable
            kills.append(f"goal {r['unreached'][0]} not reached by {engine}")
    if kills:
        return KILLED, kills[0] + (f" (and {len(kills) - 1} more)" if len(kills) > 1 else "")
    errors = [r for r in results if r.get("status") == "error"]
    if errors:
        r = errors[0]
        return CRASHED, f"{r.get('engine', '?')}: {_first_line(r.get('error') or 'error')}"
    if returncode == EXIT_INTERNAL_ERROR:
        return CRASHED, _tail(stderr) or "kinv exited 4 (internal error)"
    status = summary.get("status", "?")
    if returncode in (0, 3):
        return SURVIVED, f"no invariant caught it (run status {status})"
    return SURVIVED, f"no invariant caught it (exit code {returncode}, run status {status})"


@dataclass
class GeneratedOutcome:
    site: Site
    outcome: str  # one of OUTCOMES
    detail: str  # the invariant and engine that killed it, or the first line of the error
    diff: str  # unified diff of the mutated file against the original
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site.to_json(),
            "outcome": self.outcome,
            "detail": self.detail,
            "diff": self.diff,
            "seconds": round(self.seconds, 3),
        }


class Fleet:
    """The mutants' subprocesses still running, so that an interrupt stops every one. Each leads
    its own process group (pytest-xdist's workers included), which is what a kill signals."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen[bytes]] = set()
        self.stopped = False

    def start(self, cmd: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with self.lock:  # none starts after stop() has swept
            if self.stopped:
                raise KeyboardInterrupt
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
            self.running.add(proc)
        return proc

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            kill_group(proc)
            proc.wait()
        with self.lock:
            self.running.discard(proc)

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for proc in self.running:
                kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def check_command(model: str, *, profile: str, seed: int, budget: str, reports: Path) -> list[str]:
    """``kinv check`` as a module of the scratch copy, not the installed ``kinv`` script."""
    cli = [sys.executable, "-m", "checkers.cli", "check", model, "--profile", profile, "--seed", str(seed)]
    return [*cli, *(["--budget", budget] if budget else []), "--reports", str(reports)]


def run_one(
    site: Site,
    model: str,
    *,
    profile: str = "ci",
    seed: int = 0,
    budget: str = "",
    timeout_s: float = 1800,
    fleet: Fleet | None = None,
) -> GeneratedOutcome:
    """Apply ``site`` in a scratch copy and run ``kinv check model`` there. ``timeout_s`` is only
    a safety cap on a mutant that loops: the process group is killed and the mutant timed out."""
    fleet = fleet or Fleet()
    start = time.perf_counter()
    root = project_root()
    original = (root / site.file).read_text(encoding="utf-8")
    change = unified_diff(site, original, apply(site, original))
    with scratch_copy(site, root) as scratch:
        cmd = check_command(model, profile=profile, seed=seed, budget=budget, reports=scratch / "reports")
        proc = fleet.start(cmd, cwd=scratch, env=scratch_env(scratch))
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
            detail = f"still running after {timeout_s:g} s; killed"
            return GeneratedOutcome(site, TIMED_OUT, detail, change, time.perf_counter() - start)
        finally:
            fleet.done(proc)
        outcome, detail = classify(proc.returncode, read_summary(scratch / "reports"), err.decode(errors="replace"))
    return GeneratedOutcome(site, outcome, detail, change, time.perf_counter() - start)


def baseline(
    model: str, *, profile: str = "ci", seed: int = 0, budget: str = "", timeout_s: float = 1800
) -> tuple[str | None, float]:
    """Why the unmutated model does not pass the check its mutants get (None when it passes,
    exhaustively or within its budget: against a failing baseline every mutant looks killed),
    and the seconds the check took."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kinv-baseline-") as tmp:
        reports = Path(tmp) / "reports"
        cmd = check_command(model, profile=profile, seed=seed, budget=budget, reports=reports)
        try:
            done = subprocess.run(cmd, cwd=project_root(), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"still running after {timeout_s:g} s", time.perf_counter() - start
        seconds = time.perf_counter() - start
        summary = read_summary(reports)
        if summary is None:
            why = _tail(done.stderr.decode(errors="replace")) or f"exit code {done.returncode}"
            return f"no summary.json written: {why}", seconds
    if summary.get("status") in ("pass", "bounded-pass"):
        return None, seconds
    results = [r for r in summary.get("results") or [] if isinstance(r, dict) and r.get("status") != "pass"]
    unreached = sorted({g for r in results for g in r.get("unreached") or []})
    why = f"goals not reached: {', '.join(unreached)}" if unreached else f"engine results short of a pass: {len(results)}"
    return f"run status {summary.get('status')}; {why}", seconds


def mutant_timeout(baseline_seconds: float) -> int:
    """The default wall-clock cap on one mutant's check. Budgets bound a mutant's work as they
    bound the baseline's, so a check that runs ten times as long (a minute at least, for
    load) is a mutant that loops inside a step, where no budget counts."""
    return max(60, math.ceil(10 * baseline_seconds))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a run of mutants as Ctrl-C does (the outcomes so far are reported, and
    the run is incomplete), instead of killing it with nothing written."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_generated(
    model: str,
    chosen: list[Site],
    *,
    seed: int,
    profile: str = "ci",
    budget: str = "",
    timeout_s: float = 1800,
    progress: Callable[[dict[str, Any]], None] | None = None,
    jobs: int = 1,
) -> tuple[list[GeneratedOutcome], bool]:
    """Run ``kinv check model`` under each of the ``chosen`` sites of the model's sources (see
    ``sample``), with ``seed`` for the engines. Returns the outcomes in the sample's order and
    whether an interrupt (Ctrl-C) ended the run early: then only the mutants that finished, and
    no check is left running.

    With ``jobs`` > 1 a thread pool runs that many mutants at once: each one is a subprocess
    already, so threads only wait on them (a process pool would add nothing but pickling)."""
    fleet = Fleet()
    outcomes: dict[int, GeneratedOutcome] = {}

    def report(i: int, o: GeneratedOutcome) -> None:
        outcomes[i] = o
        if progress:
            progress({"mutant": o.site.description, "outcome": o.outcome, "done": len(outcomes), "of": len(chosen)})

    kwargs: dict[str, Any] = {"profile": profile, "seed": seed, "budget": budget, "timeout_s": timeout_s, "fleet": fleet}
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = {pool.submit(run_one, site, model, **kwargs): i for i, site in enumerate(chosen)}
        for future in as_completed(futures):
            report(futures[future], future.result())
    except KeyboardInterrupt:
        fleet.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        interrupted = True
    except BaseException:
        fleet.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        interrupted = False
    finally:
        pool.shutdown(wait=True)  # the workers remove their scratch copies before this returns
    return [outcomes[i] for i in sorted(outcomes)], interrupted


# Mutants a reader judged equivalent (no test can tell them from the original), one Site.id
# per line with the reason after a #: left out of the score's denominator.
EQUIVALENT = Path(__file__).with_name("equivalent.txt")


def read_equivalent(path: Path | None = None) -> frozenset[str]:
    path = path or EQUIVALENT
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path == EQUIVALENT:
            return frozenset()
        raise UsageError(f"{path}: no such file of equivalent mutants") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the equivalent mutants: {e}") from None
    return frozenset(line.split("#", 1)[0].strip() for line in text.splitlines()) - {""}


def score(outcomes: list[GeneratedOutcome], equivalent: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """Counts per outcome, and the share killed by an invariant: over the sample without the
    mutants a reader marked equivalent (by Site.id; no test can kill those), and over all of it."""
    counts = {name: sum(o.outcome == name for o in outcomes) for name in OUTCOMES}
    marked = [o for o in outcomes if o.site.id in equivalent]
    live = [o for o in outcomes if o.site.id not in equivalent]
    killed = sum(o.outcome == KILLED for o in live)
    return counts | {
        "sampled": len(outcomes),
        "equivalent": len(marked),
        "killed_by_invariant_rate": killed / len(live) if live else None,
        "killed_rate_over_sampled": counts[KILLED] / len(outcomes) if outcomes else None,
    }


def print_generated(
    outcomes: list[GeneratedOutcome], console: Any, equivalent: set[str] | frozenset[str] = frozenset()
) -> None:
    from rich.table import Table

    styles = {KILLED: "green", CRASHED: "yellow", SURVIVED: "red", TIMED_OUT: "yellow"}
    table = Table("mutant", "outcome", "detail", title="kinv generated mutants")
    for o in outcomes:
        outcome = "equivalent" if o.site.id in equivalent else o.outcome
        table.add_row(f"{o.site.file} {o.site.description}", f"[{styles[o.outcome]}]{outcome}[/]", o.detail)
    console.print(table)
    s = score(outcomes, equivalent)
    rate = s["killed_by_invariant_rate"]
    console.print(
        f"{s[KILLED]} of {s['sampled']} mutants killed by an invariant"
        + (f" ({rate:.0%} of {s['sampled'] - s['equivalent']} not marked equivalent)" if rate is not None else "")
        + f"; {s[CRASHED]} crashed, {s[SURVIVED]} survived, {s[TIMED_OUT]} timed out"
    )
    for o in outcomes:
        if o.outcome == SURVIVED and o.site.id not in equivalent:
            console.print(f"survived: {o.site.id}")
            console.print(o.diff, markup=False, highlight=False, end="")
