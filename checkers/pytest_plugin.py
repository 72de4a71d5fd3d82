"""pytest plugin: ``pytest --kinv`` adds one test item per kinv job to a test run.

``kinv check`` is this plugin driven by ``pytest.main`` with ``--kinv-only`` (which leaves
out the files pytest would otherwise collect), so pytest-xdist's ``-n`` parallelism and
every CI integration of pytest come with it. Each item returns its EngineResult to the
controlling process through ``user_properties`` (the channel pytest-xdist forwards), and
the controller writes the run's reports once the session has finished whole.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from checkers import plan
from checkers.errors import UsageError
from checkers.results import EngineResult

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


class Session:
    """The plugin's state for one pytest session."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.option
        self.profile: str = opt.kinv_profile
        self.seed: int = opt.kinv_seed
        self.selectors: list[str] = opt.kinv_select
        try:
            self.jobs = plan.resolve(self.selectors, plan.parse_engines(opt.kinv_engine))
        except UsageError as e:
            raise pytest.UsageError(str(e)) from None
        self.results: dict[int, EngineResult] = {}
        self.started = time.time()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.kinv or config.option.kinv_only:
        config.stash[_KEY] = Session(config)


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
        try:
            result = plan.run_job(self.job, profile=state.profile, seed=state.seed, progress=self._progress())
        except Exception as e:  # a model that raises is a finding, not a crash of the run
            last = traceback.format_exception_only(e)[-1].strip()
            result = EngineResult(self.job.model, self.job.engine, list(self.job.names), "did not finish", error=last)
        self.user_properties.append((RESULT_KEY, json.dumps({"index": self.index, "result": result.to_json()})))
        if result.status != "pass":
            raise KinvFailure(result)

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
    if not reports or exitstatus not in (0, 1) or not complete:
        return
    from checkers.report import write_run

    meta = {
        "command": " ".join(sys.argv),
        "selectors": state.selectors,
        "profile": state.profile,
        "seed": state.seed,
        "started": state.started,
        "finished": time.time(),
    }
    run = write_run([state.results[i] for i in sorted(state.results)], reports_dir=Path(reports), meta=meta)
    session.config.stash[REPORT_KEY] = run


REPORT_KEY = pytest.StashKey[Path]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return
    tr = terminalreporter
    tr.section("kinv")
    for i in sorted(state.results):
        r = state.results[i]
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[r.status]
        tr.write_line(f"{mark:5} {state.jobs[i].id:48} {r.strength}")
    run = config.stash.get(REPORT_KEY, None)
    if run is not None:
        tr.write_line(f"report: {run / 'report.html'}")
