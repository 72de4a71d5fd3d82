"""pytest plugin: ``pytest --kinv`` adds one test item per kinv job to a test run.

``kinv check`` is this plugin driven by ``pytest.main`` with ``--kinv-only`` (which leaves
out the files pytest would otherwise collect), so pytest-xdist's ``-n`` parallelism and
every CI integration of pytest come with it. Each item returns its EngineResult to the
controlling process through ``user_properties`` (the channel pytest-xdist forwards), and
the controller writes the run's reports once the session has finished whole.

An item passes when its result is a pass, or a bounded pass without ``--kinv-strict``.
Ctrl-C or SIGTERM stops the run (``checkers.control``): the controller touches a cancel file
that every worker's watchdog watches, the job under way ends as incomplete, the jobs not yet
started end at once as incomplete, and the report is written with what was established.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from checkers import plan
from checkers.control import CONTROL, default_max_memory, install_signal_handlers
from checkers.errors import UsageError
from checkers.results import COLOURS, EngineResult, exit_code, worst

RESULT_KEY = "kinv_result"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kinv", "kinv invariant checks")
    group.addoption("--kinv", action="store_true", help="add kinv's invariant checks to the test run")
    group.addoption("--kinv-only", action="store_true", help="run only kinv's checks, collecting no test files")
    group.addoption("--kinv-select", action="append", default=[], metavar="SELECTOR", help="model, invariant or pattern")
    group.addoption("--kinv-engine", default=",".join(plan.ENGINES), help="comma-separated engines")
    group.addoption("--kinv-profile", default="ci", choices=plan.PROFILES, help="search effort")
    group.addoption("--kinv-seed", type=int, default=0, help="seed of the random engines")
    group.addoption("--kinv-reports", default=None, metavar="DIR", help="write the run's reports under DIR")
    group.addoption("--kinv-strict", action="store_true", help="fail anything short of exhaustive or proved")
    group.addoption("--kinv-budget", default="", metavar="KEY=N,...", help="override the profile's budget")
    group.addoption("--kinv-coverage", default=None, metavar="DIR",
                    help="record the model code each job executes (coverage.py data under DIR) into the report")
    group.addoption("--kinv-max-seconds", type=float, default=None, help="wall-clock cap: the run ends incomplete")
    group.addoption("--kinv-max-memory", type=int, default=None, help="resident bytes per process before it stops")


class Session:
    """The plugin's state for one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.option
        self.profile: str = opt.kinv_profile
        self.seed: int = opt.kinv_seed
        self.strict: bool = opt.kinv_strict
        self.selectors: list[str] = opt.kinv_select
        try:
            self.jobs = plan.resolve(self.selectors, plan.parse_engines(opt.kinv_engine))
            self.budget = plan.parse_budget(opt.kinv_budget)
        except UsageError as e:
            raise pytest.UsageError(str(e)) from None
        self.results: dict[int, EngineResult] = {}
        self.started = time.time()
        workerinput = getattr(config, "workerinput", None)
        if workerinput is None:  # the controller, or a run without workers
            self.cancel_dir: Path | None = Path(tempfile.mkdtemp(prefix="kinv-cancel-"))
            self.cancel_file = self.cancel_dir / "cancel"
            workers = getattr(opt, "numprocesses", None) or 1
        else:
            self.cancel_dir = None
            self.cancel_file = Path(workerinput["kinv_cancel_file"])
            workers = workerinput.get("workercount", 1)
        max_memory = opt.kinv_max_memory or default_max_memory(int(workers))
        CONTROL.reset()
        CONTROL.configure(max_seconds=opt.kinv_max_seconds, max_memory=max_memory, cancel_file=self.cancel_file)
        cancel = self.cancel_file
        self.restore_signals = install_signal_handlers(CONTROL, on_first=lambda: cancel.touch())


def pytest_configure(config: pytest.Config) -> None:
    if config.option.kinv or config.option.kinv_only:
        config.stash[_KEY] = Session(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each worker where the controller's cancel file is."""
    state = node.config.stash.get(_KEY, None)
    if state is not None:
        node.workerinput["kinv_cancel_file"] = str(state.cancel_file)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if state is None:
        return
    state.restore_signals()
    CONTROL.reset()
    if state.cancel_dir is not None:
        shutil.rmtree(state.cancel_dir, ignore_errors=True)


_KEY = pytest.StashKey[Session]()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if config.option.kinv_only else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(_KEY, None)
    if state is not None:
        items.extend(
            KinvItem.from_parent(session, name=job.id, nodeid=f"kinv::{job.id}", job=job, index=i)
            for i, job in enumerate(state.jobs)
        )


class KinvFailure(Exception):
    def __init__(self, result: EngineResult) -> None:
        self.result = result


class KinvItem(pytest.Item):
    def __init__(self, *, job: plan.Job, index: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.job = job
        self.index = index

    def runtest(self) -> None:
        state = self.config.stash[_KEY]
        names = list(self.job.names)
        if CONTROL.reason is not None:
            result = EngineResult.not_started(self.job.model, self.job.engine, names, CONTROL.reason)
        else:
            try:
                with self._coverage():
                    result = plan.run_job(self.job, profile=state.profile, seed=state.seed,
                                          progress=self._progress(), overrides=state.budget)
            except Exception as e:  # the model (or kinv) raised: an error, never a verdict
                result = EngineResult(self.job.model, self.job.engine, names, "did not finish",
                                      error=traceback.format_exception_only(e)[-1].strip(),
                                      traceback="".join(traceback.format_exception(e)))
        self.user_properties.append((RESULT_KEY, json.dumps({"index": self.index, "result": result.to_json()})))
        if exit_code([result.status], strict=state.strict):
            raise KinvFailure(result)

    def _coverage(self) -> Any:
        data = self.config.option.kinv_coverage
        if data is None:
            return contextlib.nullcontext()
        from checkers import coverage

        return coverage.record(self.job.model, self.job.engine, Path(data))

    def _progress(self) -> Any:
        """A live status line on long single-process runs at a terminal; silent elsewhere."""
        if hasattr(self.config, "workerinput") or not sys.stdout.isatty():
            return None
        tw = self.config.get_terminal_writer()

        def show(p: dict[str, Any]) -> None:
            tw.write(f"\r  {self.name}: {p.get('states', 0):,} states, depth {p.get('depth', 0)}, {p.get('seconds', 0):.0f}s ")
            tw.flush()

        return show

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, KinvFailure):
            return describe(excinfo.value.result)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        # No domain: pytest would read one as a dotted Python path and show "." as "::".
        return self.path, None, ""


def describe(result: EngineResult) -> str:
    """The failure text pytest shows: what broke, in kernel terms, and how to see it again."""
    if result.error:
        return f"{result.engine} on {result.model}: {result.error}"
    if result.status in ("incomplete", "bounded-pass"):
        return f"{result.engine} on {result.model}: {result.strength}"
    if result.unreached and not result.counterexample:
        return f"{result.engine} on {result.model} is vacuous: it never reached {', '.join(result.unreached)}"
    if result.refutation is not None:
        how = "the cross-check" if "cross-check" in result.refutation else "z3"
        return f"{result.invariants[0]} refuted by {how}: {result.refutation}"
    cex = result.counterexample
    assert cex is not None
    lines = [f"{cex.invariant} violated ({cex.engine}, {len(cex.steps)} steps):"]
    lines += [f"  {v}" for v in cex.violations[:5]]
    return "\n".join(lines)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for key, value in report.user_properties:
        if key == RESULT_KEY:
            data = json.loads(str(value))
            _pending.append((data["index"], EngineResult.from_json(data["result"])))


# Filled by pytest_runtest_logreport, which gets no config; drained at session end.
_pending: list[tuple[int, EngineResult]] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_KEY, None)
    if state is None or hasattr(session.config, "workerinput"):
        return
    state.results.update(_pending)
    _pending.clear()
    reports = session.config.option.kinv_reports
    complete = len(state.results) == len(state.jobs)
    if not complete or exitstatus not in (0, 1):
        return
    results = [state.results[i] for i in sorted(state.results)]
    LAST_RUN.update(statuses=[r.status for r in results], run=None)
    if not reports:
        return
    from checkers.report import write_run

    meta = {
        "command": " ".join(sys.argv),
        "selectors": state.selectors,
        "profile": state.profile,
        "seed": state.seed,
        "strict": state.strict,
        "budget": state.budget,
        "started": state.started,
        "finished": time.time(),
    }
    figures = None
    if session.config.option.kinv_coverage is not None:
        from checkers import coverage
        from checkers.sources import model_sources, project_root

        root = project_root()
        files = {job.model: [p.relative_to(root).as_posix() for p in model_sources(job.model)] for job in state.jobs}
        figures = coverage.summarize(Path(session.config.option.kinv_coverage), model_files=files)
    run = write_run(results, reports_dir=Path(reports), meta=meta, coverage=figures)
    session.config.stash[REPORT_KEY] = run
    LAST_RUN["run"] = run


REPORT_KEY = pytest.StashKey[Path]()
# What the last session established, for ``kinv check``'s exit code: the result statuses
# (absent when the session did not finish whole) and the run directory written.
LAST_RUN: dict[str, Any] = {}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return
    tr = terminalreporter
    tr.section("kinv")
    for i in sorted(state.results):
        r = state.results[i]
        line = f"{r.status.upper():12} {state.jobs[i].id:48} {r.strength}"
        tr.write_line(line, **{COLOURS[r.status]: True})
        if r.unreached and r.status == "fail" and not r.counterexample:
            tr.write_line(f"{'':12} never reached: {', '.join(r.unreached)}")
    statuses = [r.status for r in state.results.values()]
    if statuses and worst(statuses) == "bounded-pass":
        what = "not accepted under --kinv-strict" if state.strict else "a bounded pass: no violation within the budgets"
        tr.write_line(f"kinv: {what}")
    run = config.stash.get(REPORT_KEY, None)
    if run is not None:
        tr.write_line(f"report: {run / 'report.html'}")

