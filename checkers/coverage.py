"""Which lines and branches of ``model/`` each engine executed (``kinv check --coverage``).

A green run says nothing about code its engines never reached; this module says what that
code is. ``record`` wraps one job (one engine on one model) in a coverage.py measurement
with branch coverage, tagged with the static context ``"model:engine"``; each call writes
its own data file (``data_suffix``), so sequential jobs in one process and pytest-xdist
workers writing into the same directory never clobber each other. ``summarize`` combines
those files and splits the figures per file, per engine and per model by context.

What is measured: function bodies only. By the time a job starts, ``model`` and its
submodules have long been imported, so the module-level lines (``def`` and ``class``
lines, class bodies, constants) ran unmeasured; coverage.py would report them all missed
and inflate every denominator with code no engine can ever run. Counting them as executed
instead would credit engines with work the import did. Neither is honest, so the figures
count only the statements inside function bodies (each statement belongs to the innermost
function around it; a nested ``def`` line to the function that defines it). Functions with
nothing to execute are left out: bodies of only a docstring, ``...`` stubs (Protocol and
abstract methods, which coverage.py excludes) and one-line defs, whose one line is the
``def`` that ran at import. A consequence to read the report by: a function that runs only
at import time (a decorator, a factory called at module level) is listed as never
executed, which is true of the engines' runs.

Figures follow coverage.py's own analysis (multi-line statements folded to their first
line, a branch as an exit of a line with several, ``# pragma: no cover`` and ``no branch``
honoured), computed here from its Python ``FileReporter`` (the plugin API's methods, on
``coverage.python.PythonFileReporter``) so that one parse of each file serves every
context; ``tests/test_coverage.py`` checks the figures agree with coverage.py's report.
User coverage configuration (``.coveragerc``, ``[tool.coverage]``) is ignored so that the
figures do not depend on the directory a run starts in.
"""

from __future__ import annotations

import ast
import contextlib
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import coverage
from coverage.python import PythonFileReporter

import model as model_package

SCHEMA = "kinv.coverage/1"
MODEL_DIR = Path(model_package.__file__).resolve().parent
ROOT = MODEL_DIR.parent  # summary paths are relative to it: "model/mm/page_alloc.py"
ENGINE_ORDER = ("explore", "stateful", "prove")  # plan.ENGINES, not imported: plan may import us
# A job that touches no model code, or modules imported before measuring, are expected.
QUIET = ["no-data-collected", "module-not-measured", "module-not-imported", "already-imported"]
NAMES_SHOWN = 5  # never-executed functions named per Markdown row; the rest are counted

Arc = tuple[int, int]


def _coverage(data_file: Path, **kw: Any) -> coverage.Coverage:
    cov = coverage.Coverage(
        data_file=str(data_file), branch=True, source=[str(MODEL_DIR)], config_file=False, **kw
    )
    cov.set_option("run:disable_warnings", QUIET)
    return cov


@contextlib.contextmanager
def record(model: str, engine: str, data_dir: Path) -> Iterator[None]:
    """Measure ``model/`` while the body runs, as context ``"model:engine"``, into a new data
    file under ``data_dir``; saved on exit, also when the body raises."""
    if ":" in model or ":" in engine:
        raise ValueError(f"coverage context {model}:{engine}: names may not contain ':'")
    data_dir = data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    cov = _coverage(data_dir / ".coverage", data_suffix=True, context=f"{model}:{engine}")
    cov.start()
    try:
        yield
    finally:
        cov.stop()
        cov.save()


@dataclass(frozen=True)
class _Function:
    name: str  # qualified: "BuddyModel.alloc_pages", "outer.inner"
    lines: frozenset[int]  # statements of its own body
    parent: str | None  # the function it is nested in


def _functions(source: str, statements: set[int]) -> list[_Function]:
    """The functions of a file with something to execute, in source order."""
    found: list[tuple[str, set[int], str | None]] = []

    def body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
        # After the header: a one-line function's only statement is its def, run at import.
        start = max(fn.body[0].lineno, fn.lineno + 1)
        return set(range(start, (fn.end_lineno or fn.lineno) + 1)) & statements

    def visit(node: ast.AST, prefix: str, parent: int | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                lines = body(child)
                if parent is not None:  # the enclosing function keeps only the def line
                    found[parent][1].difference_update(lines)
                found.append((name, lines, found[parent][0] if parent is not None else None))
                visit(child, name + ".", len(found) - 1)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", parent)
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):  # no def in an expression
                visit(child, prefix, parent)

    visit(ast.parse(source), "", None)
    return [_Function(name, frozenset(lines), parent) for name, lines, parent in found if lines]


@dataclass
class _Counts:
    statements: int = 0
    executed: int = 0
    branches: int = 0
    branches_taken: int = 0
    functions: int = 0
    functions_entered: int = 0

    def __add__(self, other: _Counts) -> _Counts:
        return _Counts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "executed": self.executed,
            "lines_pct": _pct(self.executed, self.statements),
            "branches": self.branches,
            "branches_taken": self.branches_taken,
            "branches_pct": _pct(self.branches_taken, self.branches),
            "functions": self.functions,
            "functions_entered": self.functions_entered,
        }


def _pct(part: int, whole: int) -> float | None:
    """None, not 100, when there is nothing to count: 0 of 0 is no evidence."""
    return round(100 * part / whole, 1) if whole else None


class _File:
    """One model file's measurable lines and branches, and what each context executed."""

    def __init__(self, path: Path, cov: coverage.Coverage) -> None:
        self.path = path.relative_to(ROOT).as_posix()
        self.reporter = fr = PythonFileReporter(str(path), cov)
        statements = fr.lines()
        self.functions = _functions(fr.source(), statements)
        self.measured: set[int] = set().union(*(f.lines for f in self.functions))
        # As coverage.py's Analysis: a branch is an exit of a line with several; an exit not
        # taken is missing unless its line is marked "no branch" or it leads to excluded code.
        self.exits = {line: n for line, n in fr.exit_counts().items() if n > 1 and line in self.measured}
        excluded, no_branch = fr.excluded_lines(), fr.no_branch_lines()
        possible = fr.arcs()
        self.missable: dict[int, list[Arc]] = {line: [] for line in self.exits}
        for a in possible:
            if a[0] in self.missable and a[0] not in no_branch and a[1] not in excluded:
                self.missable[a[0]].append(a)
        self.executed: dict[str, tuple[set[int], set[Arc]]] = {}

    def load(self, ctx: str, data: coverage.CoverageData) -> None:
        """What ``ctx`` executed here; ``data`` must be querying ``ctx`` alone."""
        fr = self.reporter
        lines = fr.translate_lines(data.lines(fr.filename) or []) & self.measured
        # Arcs a line makes to itself are never possible exits, so they count for nothing.
        self.executed[ctx] = lines, fr.translate_arcs(data.arcs(fr.filename) or [])

    def under(self, contexts: Iterable[str]) -> tuple[set[int], set[Arc]]:
        lines: set[int] = set()
        arcs: set[Arc] = set()
        for ctx in contexts:
            lines |= self.executed[ctx][0]
            arcs |= self.executed[ctx][1]
        return lines, arcs

    def counts(self, contexts: Iterable[str]) -> _Counts:
        lines, arcs = self.under(contexts)
        missing = sum(1 for line in self.exits for a in self.missable[line] if a not in arcs)
        return _Counts(
            statements=len(self.measured),
            executed=len(lines),
            branches=sum(self.exits.values()),
            branches_taken=sum(self.exits.values()) - missing,
            functions=len(self.functions),
            functions_entered=sum(1 for f in self.functions if f.lines & lines),
        )

    def never_executed(self, contexts: Iterable[str]) -> list[str]:
        """Functions no context entered; one nested in a function never entered goes unnamed."""
        lines, _ = self.under(contexts)
        cold = {f.name for f in self.functions if not f.lines & lines}
        return [f.name for f in self.functions if f.name in cold and f.parent not in cold]


def _engine_key(engine: str) -> tuple[int, str]:
    return (ENGINE_ORDER.index(engine) if engine in ENGINE_ORDER else len(ENGINE_ORDER), engine)


def _sum(counts: Iterable[_Counts]) -> _Counts:
    total = _Counts()
    for c in counts:
        total = total + c
    return total


def summarize(data_dir: Path, model_files: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Combine the data files ``record`` wrote into ``data_dir`` (left in place, so this can be
    called again) and return the figures as JSON data: every file under ``model/``, or the
    files of the models ``model_files`` names (paths like ``model/mm/page_alloc.py``).

    A model's files are those its contexts executed a line of, unless ``model_files`` names
    them. Percentages are None when there is nothing
    to count. Raises ValueError for a path in ``model_files`` that is not under ``model/``,
    coverage.exceptions.NoDataError if ``data_dir`` does not exist.
    """
    paths = sorted(p for p in MODEL_DIR.rglob("*.py") if "__pycache__" not in p.parts)
    known = {p.relative_to(ROOT).as_posix() for p in paths}
    for m, named in (model_files or {}).items():
        if unknown := set(named) - known:
            raise ValueError(f"model_files[{m!r}]: no such file under model/: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="kinv-coverage-") as tmp:
        cov = _coverage(Path(tmp) / ".coverage")
        cov.combine([str(data_dir)], keep=True)
        data = cov.get_data()
        contexts = sorted(c for c in data.measured_contexts() if re.fullmatch(r"[^:]+:[^:]+", c))
        files = [_File(p, cov) for p in paths]
        for ctx in contexts:
            data.set_query_contexts([f"^{re.escape(ctx)}$"])
            for f in files:
                f.load(ctx, data)
    engines = sorted({c.split(":")[1] for c in contexts}, key=_engine_key)
    models = sorted({c.split(":")[0] for c in contexts} | set(model_files or {}))

    def of(model: str | None = None, engine: str | None = None) -> list[str]:
        return [c for c in contexts if model in (None, c.split(":")[0]) and engine in (None, c.split(":")[1])]

    def split(fs: list[_File], model: str | None = None) -> dict[str, Any]:
        runs = [e for e in engines if of(model, e)]
        return {
            "all": _sum(f.counts(of(model)) for f in fs).to_json(),
            "engines": {e: _sum(f.counts(of(model, e)) for f in fs).to_json() for e in runs},
        }

    by_model = {}
    for m in models:
        if model_files is not None and m in model_files:
            wanted = set(model_files[m])
            if unknown := wanted - {f.path for f in files}:
                raise ValueError(
                    f"model_files[{m!r}]: no such file under model/: {', '.join(sorted(unknown))}"
                )
            mine = [f for f in files if f.path in wanted]
        else:
            mine = [f for f in files if f.under(of(m))[0]]
        by_model[m] = {"files": [f.path for f in mine], **split(mine, m)}
    if model_files is not None:  # the files of the models named, and only those
        reported = {path for paths in model_files.values() for path in paths}
        files = [f for f in files if f.path in reported]
    return {
        "schema": SCHEMA,
        "measured": "function bodies",
        "engines": engines,
        "files": [
            {
                "path": f.path,
                "all": f.counts(contexts).to_json(),
                "engines": {e: f.counts(of(engine=e)).to_json() for e in engines},
                "never_executed": f.never_executed(contexts),
            }
            for f in files
        ],
        "totals": split(files),
        "models": by_model,
    }


def _ratio(part: int, whole: int, pct: float | None) -> str:
    return f"{part}/{whole} ({pct:.1f}%)" if pct is not None else "–"


def _short(fig: dict[str, Any]) -> str:
    """An engine's cell: lines % / branches %."""
    parts = [f"{fig[k]:.1f}%" if fig[k] is not None else "–" for k in ("lines_pct", "branches_pct")]
    return " / ".join(parts)


def rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per file with code to execute, for report.html: the all-engines figures at the
    top level, ``lines_text``/``branches_text`` for display, and the engines in run order."""
    out = []
    for f in summary["files"]:
        fig = f["all"]
        if not fig["statements"]:
            continue
        out.append(
            {
                "path": f["path"],
                **fig,
                "lines_text": _ratio(fig["executed"], fig["statements"], fig["lines_pct"]),
                "branches_text": _ratio(fig["branches_taken"], fig["branches"], fig["branches_pct"]),
                "engines": [{"engine": e, **f["engines"][e]} for e in summary["engines"]],
                "never_executed": f["never_executed"],
                "untouched": fig["executed"] == 0,
            }
        )
    return out


def markdown_table(summary: dict[str, Any]) -> list[str]:
    """The coverage section of summary.md: a table by model, then one by file (files with
    nothing to execute left out), each engine's cell as lines % / branches %."""
    engines: list[str] = summary["engines"]
    columns = ["lines", "branches", "functions entered", *engines]

    def table(first: str, *extra: str) -> list[str]:
        names = [first, *columns, *extra]
        return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]

    def cells(split: dict[str, Any]) -> str:
        fig = split["all"]
        per = [_short(split["engines"][e]) if e in split["engines"] else "–" for e in engines]
        return " | ".join(
            [
                _ratio(fig["executed"], fig["statements"], fig["lines_pct"]),
                _ratio(fig["branches_taken"], fig["branches"], fig["branches_pct"]),
                f"{fig['functions_entered']}/{fig['functions']}",
                *per,
            ]
        )

    lines = ["Coverage of `model/` function bodies; per engine: lines % / branches %.", "", *table("model")]
    lines += [f"| {m} | {cells(s)} |" for m, s in summary["models"].items()]
    lines += ["", *table("file", "never executed")]
    for f in summary["files"]:
        if f["all"]["statements"]:
            names = [f"`{n}`" for n in f["never_executed"][:NAMES_SHOWN]]
            if len(f["never_executed"]) > NAMES_SHOWN:
                names.append(f"+{len(f['never_executed']) - NAMES_SHOWN} more")
            lines.append(f"| {f['path']} | {cells(f)} | {', '.join(names)} |")
    lines.append(f"| **all** | {cells(summary['totals'])} | |")
    return lines
