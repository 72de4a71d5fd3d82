"""What a verdict means, end to end: statuses, exit codes, --strict, goals, interruption,
crashes, and the same summary for the same command on a loaded machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from toy_model import WITHIN_LIMIT, ToyConfig, ToyModel, ToyState, install

import invariants
from checkers import plan
from checkers.cli import main

TESTS = Path(__file__).parent


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The toy model, with a small config on which its invariants hold."""
    install(monkeypatch)
    monkeypatch.setattr(plan, "MODELS", {"toy": "toy_model:ToyModel"})
    monkeypatch.setitem(ToyModel.profiles, "small", ToyConfig(sizes=(1,)))
    monkeypatch.setitem(ToyModel.profiles, "large", ToyConfig(sizes=(1,)))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def summary(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())


def test_an_exhaustive_search_passes_with_exit_0(toy: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert main(["check", "toy", "--engine", "explore"]) == 0
    assert summary(tmp_path)["status"] == "pass"


def test_a_sampled_run_is_a_bounded_pass_and_strict_does_not_accept_it(
    toy: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert main(["check", "toy", "--budget", "runs=20,steps=10"]) == 0
    got = summary(tmp_path)
    assert (got["status"], got["exit_code"]) == ("bounded-pass", 0)
    assert [r["status"] for r in got["results"]] == ["pass", "bounded-pass"]
    assert main(["check", "toy", "--budget", "runs=20,steps=10", "--strict"]) == 3
    assert (summary(tmp_path)["status"], summary(tmp_path)["exit_code"]) == ("bounded-pass", 3)
    assert main(["check", "toy", "--engine", "explore", "--strict"]) == 0


def test_a_goal_no_engine_reaches_fails_the_run(toy: pytest.MonkeyPatch, tmp_path: Path) -> None:
    far = invariants.Goal("toy.far", "toy", "The counter reaches 5.", lambda s: s.count >= 5)
    near = invariants.Goal("toy.near", "toy", "The counter reaches 2.", lambda s: s.count >= 2)
    toy.setattr(invariants, "GOALS", {far.name: far, near.name: near})
    assert main(["check", "toy", "--engine", "explore"]) == 1
    got = summary(tmp_path)
    (result,) = got["results"]
    assert result["status"] == "fail" and result["unreached"] == ["toy.far"]
    assert [(g["name"], g["status"]) for g in got["goals"]] == [("toy.far", "unreached"), ("toy.near", "reached")]


def test_a_model_that_raises_is_an_internal_error_with_its_traceback(
    toy: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(state: ToyState) -> list[str]:
        if state.count == 2:
            raise KeyError("pfn 7")
        return []

    inv = invariants.Invariant("toy.within_limit", "toy", "", "", broken)
    toy.setattr(invariants, "REGISTRY", {inv.name: inv})
    assert main(["check", "toy", "--engine", "explore"]) == 4
    got = summary(tmp_path)
    (result,) = got["results"]
    assert result["status"] == "error" and result["error"] == "KeyError: 'pfn 7'"
    text = (tmp_path / "reports" / "latest" / result["traceback"]).read_text()
    assert "Traceback" in text and "in broken" in text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_check_writes_a_report_marked_incomplete(
    toy: pytest.MonkeyPatch, tmp_path: Path, sig: signal.Signals
) -> None:
    """The signal comes from inside the search (its 3rd state), so the test does not depend on
    time: the handler stops the run, the explorer ends it as incomplete, the stateful job not
    yet started ends at once, and the report says so; exit 3."""

    def interrupt(state: ToyState) -> list[str]:
        if state.count == 2:
            os.kill(os.getpid(), sig)
        return WITHIN_LIMIT.check(state)

    inv = invariants.Invariant("toy.within_limit", "toy", "", "", interrupt)
    toy.setattr(invariants, "REGISTRY", {inv.name: inv})
    assert main(["check", "toy"]) == 3
    got = summary(tmp_path)
    assert got["status"] == "incomplete" and got["exit_code"] == 3
    explore, stateful = got["results"]
    assert explore["status"] == "incomplete" and explore["strength"].startswith("incomplete, interrupted")
    assert stateful["status"] == "incomplete" and stateful["strength"].endswith("not started")
    assert signal.getsignal(sig) is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler


SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import pytest, toy_model, invariants
from checkers import plan
from checkers.cli import main
mp = pytest.MonkeyPatch()
toy_model.install(mp)
mp.setattr(plan, "MODELS", {{"toy": "toy_model:ToyModel"}})
mp.setitem(toy_model.ToyModel.profiles, "small", toy_model.ToyConfig(limit=10**9, sizes=(1,)))

def twice(state):
    if state.count == 2:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    return []

inv = invariants.Invariant("toy.within_limit", "toy", "", "", twice)
mp.setattr(invariants, "REGISTRY", {{inv.name: inv}})
sys.exit(main(["check", "toy", "--engine", "explore"]))
"""


def test_a_second_interrupt_exits_at_once(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(TESTS))))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 130, done.stderr
    assert "interrupted again; exiting now" in done.stderr
    assert not (tmp_path / "reports" / "latest").exists()


def test_the_same_command_gives_the_same_summary_on_a_loaded_machine(tmp_path: Path) -> None:
    """Budgets count work: with another process keeping a core busy, two runs of the same
    command and seed write byte-identical summary.json and summary.md."""
    command = [sys.executable, "-m", "checkers.cli", "check", "buddy", "--seed", "3",
               "--budget", "states=3000,runs=25,steps=30,samples=200"]
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        outputs = []
        for _ in range(2):
            done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stdout + done.stderr
            run = tmp_path / "reports" / "latest"
            outputs.append([(run / name).read_bytes() for name in ("summary.json", "summary.md")])
            (run / "latest-seen").write_text("")  # the next run must be another directory
    finally:
        burner.kill()
        burner.wait()
    assert outputs[0] == outputs[1]
    got = json.loads(outputs[0][0])
    assert got["status"] == "bounded-pass" and {r["engine"] for r in got["results"]} == {"explore", "stateful", "prove"}
    assert all(g["status"] == "reached" for g in got["goals"]) and got["goals"]


def test_a_bad_budget_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", "buddy", "--budget", "states=0"]) == 2
    assert "--budget 'states=0': states must be a whole number of at least 1" in capsys.readouterr().err
    assert main(["check", "buddy", "--budget", "seconds=5"]) == 2
    assert "is not KEY=N with KEY one of states, runs, steps, samples, rlimit" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
