"""Counterexamples of the ``sync`` model drawn as per-CPU columns (``SyncModel.diagram``) in
every report artefact and in ``kinv replay``, and left out for models that draw nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markupsafe import escape
from rich.console import Console

from checkers import plan, report
from checkers.mutants import load_all
from checkers.replay import Replay, print_replay, replay
from checkers.results import EngineResult
from model.contract import Step
from model.sync.model import SyncModel

# sleep-wake+no-mb under TSO: the sleeper's state store waits in CPU 0's store buffer while it
# reads the condition, and the waker reads the old state (README, the protocol table).
HEADER = "sleep-wake+no-mb (in place of sleep-wake) under tso: steps 2 to 9 of the trace"
BUFFERED = "CPU0: P0.state=2; CPU1: cond=1"


def found(name: str) -> EngineResult:
    m = load_all()[name]
    with m.applied():
        result = plan.run_job(plan.Job("sync", "explore", (m.breaks,)), profile="ci", seed=0, mutant=m.name)
    assert result.counterexample is not None
    return result


@pytest.fixture(scope="module")
def lost_wakeup() -> EngineResult:
    return found("sync.sleep_wake_no_mb")


@pytest.fixture(scope="module")
def replayed(lost_wakeup: EngineResult) -> Replay:
    assert lost_wakeup.counterexample is not None
    return replay(lost_wakeup.counterexample, source="cex.json")


def test_the_last_run_is_drawn_in_per_cpu_columns_with_the_store_buffers(replayed: Replay) -> None:
    lines = replayed.diagram
    assert lines is not None and replayed.reproduced
    assert lines[0] == HEADER
    assert lines[1].split() == ["CPU", "0", "CPU", "1", "store", "buffers"]
    rows = lines[3:]
    assert len(rows) == len(replayed.cex.steps) - 1  # every step after start(), one row each
    assert rows[0].split() == ["1", "WRITE_ONCE(*P0.state,", "2)", "CPU0:", "P0.state=2"]
    assert rows[2].endswith(BUFFERED)
    column = lines[1].index("CPU 1")
    assert rows[2].index("WRITE_ONCE(*cond, 1)") == column  # the waker's store, in CPU 1's column
    assert "(P0.state drains to memory)" in rows[6] and rows[6].index("(P0.state") < column


def test_an_earlier_run_is_left_out_and_a_trace_without_a_run_draws_nothing(replayed: Replay) -> None:
    model = SyncModel()
    state = model.init_state()
    earlier = [Step("start", ("sleep-wake", "sc"))]
    state, _ = model.step(state, model.action_by_name["start"], earlier[0].args)
    while not state.stuck():
        act, args = next(iter(model.enabled(state)))
        earlier.append(Step(act.name, args))
        state, _ = model.step(state, act, args)
    earlier.append(Step("restart", ()))
    just_started = model.diagram(earlier[:1])
    assert just_started is not None and just_started[0] == "sleep-wake under sc: no step yet"
    assert len(just_started) == 3 and just_started[1].split() == ["CPU", "0", "CPU", "1"]  # no rows
    sc = model.diagram(earlier)
    assert sc is not None and sc[0] == f"sleep-wake under sc: steps 2 to {len(earlier) - 1} of the trace"
    assert "store buffers" not in sc[1]  # nothing is ever in flight under SC

    with load_all()["sync.sleep_wake_no_mb"].applied():
        both = SyncModel().diagram([*earlier, *replayed.cex.steps])
    assert replayed.diagram is not None and both is not None
    shift = len(earlier)
    assert (
        both[0]
        == f"sleep-wake+no-mb (in place of sleep-wake) under tso: steps {2 + shift} to {9 + shift} of the trace"
    )
    assert both[1:] == replayed.diagram[1:]
    assert model.diagram([]) is None


def test_every_report_artefact_shows_the_diagram(
    lost_wakeup: EngineResult, replayed: Replay, tmp_path: Path
) -> None:
    lines = replayed.diagram
    assert lines is not None
    run = report.write_run([lost_wakeup], reports_dir=tmp_path, meta={})

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["results"][0]["counterexample"]["diagram"] == lines

    page = (run / "report.html").read_text(encoding="utf-8")
    assert f'<pre class="diagram">{escape(chr(10).join(lines))}</pre>' in page  # escaped, whole
    assert "CPU 0" in page and "CPU 1" in page and BUFFERED in page

    md = (run / "summary.md").read_text(encoding="utf-8")
    block = "\n".join(["  ```text", *(f"  {line}" for line in lines), "  ```"])
    assert f"mutant sync.sleep_wake_no_mb): {replayed.violations[0]}" in md
    assert block in md and md.index(block) > md.index("**Counterexamples**")

    failure = ET.parse(run / "junit.xml").getroot().find(".//failure")
    assert failure is not None and "\n".join(lines) in (failure.text or "")


def test_replay_prints_the_diagram_after_the_steps_and_puts_it_in_its_json(replayed: Replay) -> None:
    console = Console(record=True, width=80, color_system=None)  # narrower than the diagram
    print_replay(replayed, console)
    text = console.export_text()
    assert replayed.diagram is not None
    for line in replayed.diagram:
        assert f"\n{line}\n" in text  # whole lines: never wrapped
    assert text.index("  9. execute(") < text.index(HEADER) < text.index("violation reproduced")
    assert json.loads(json.dumps(replayed.to_json()))["diagram"] == replayed.diagram


def test_kinv_replay_of_a_saved_sync_counterexample_draws_it(
    lost_wakeup: EngineResult, tmp_path: Path
) -> None:
    assert lost_wakeup.counterexample is not None
    path = tmp_path / "cex.json"
    path.write_text(json.dumps(lost_wakeup.counterexample.to_json()), encoding="utf-8")

    def kinv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "checkers.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )

    shown = kinv("replay", str(path))
    assert shown.returncode == 1, shown.stderr  # 1: the violation is reproduced
    assert HEADER in shown.stdout and BUFFERED in shown.stdout
    assert json.loads(kinv("replay", "--json", str(path)).stdout)["diagram"][0] == HEADER


def test_a_model_that_draws_nothing_gets_no_diagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toy_model import install, record

    install(monkeypatch)
    cex = record([("inc", (2,)), ("inc", (2,))])
    rep = replay(cex)
    assert rep.diagram is None and "diagram" not in rep.to_json()
    failed = EngineResult("toy", "explore", ["toy.within_limit"], "exhaustive", counterexample=cex)
    run = report.write_run([failed], reports_dir=tmp_path, meta={})
    assert "diagram" not in json.loads((run / "summary.json").read_text())["results"][0]["counterexample"]
    assert 'class="diagram"' not in (run / "report.html").read_text()
    assert "```" not in (run / "summary.md").read_text()
