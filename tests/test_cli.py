"""The kinv command end to end, as a user runs it: a subprocess in a scratch directory."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest


def kinv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkers.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_check_buddy_runs_all_three_engines_and_writes_the_reports(tmp_path: Path) -> None:
    budget = "states=5000,runs=30,steps=40,samples=200"  # the ci budget's verdict takes minutes
    done = kinv("check", "buddy", "-n", "2", "--budget", budget, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run = tmp_path / "reports" / "latest"
    assert run.is_symlink()
    assert {p.name for p in run.iterdir()} == {"summary.json", "timings.json", "junit.xml", "report.html", "summary.md"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["schema"] == "kinv.summary/2" and summary["status"] == "bounded-pass"
    assert summary["run"]["budget"] == {"states": 5000, "runs": 30, "steps": 40, "samples": 200}
    assert {r["engine"] for r in summary["results"]} == {"explore", "stateful", "prove"}
    coalesced = next(i for i in summary["invariants"] if i["name"] == "buddy.fully_coalesced")
    assert {c["engine"] for c in coalesced["checks"]} == {"explore", "stateful"}
    assert {g["name"] for g in summary["goals"]} >= {"buddy.fallback_steal", "buddy.merge_to_max_order"}
    suites = ET.parse(run / "junit.xml").getroot()
    assert int(suites.get("tests", "0")) >= 10 and suites.get("failures") == "0"
    assert "BOUNDED-PASS buddy::explore" in done.stdout
    assert "PASS         buddy::prove::buddy.buddy_aligned" in done.stdout


def test_explore_writes_the_state_graph(tmp_path: Path) -> None:
    done = kinv("explore", "buddy", "--max-depth", "3", "--graph", "g.graphml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    graph = nx.read_graphml(tmp_path / "g.graphml")
    assert "bounded: every state to depth 3" in done.stdout
    assert f"({graph.number_of_nodes():,} states" in done.stdout


def test_a_mutant_counterexample_replays_step_by_step(tmp_path: Path) -> None:
    done = kinv("mutants", "buddy.skip_merge", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (cex,) = (tmp_path / "reports" / "latest" / "counterexamples").iterdir()
    shown = kinv("replay", str(cex), cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr  # 1: the violation is reproduced
    assert "mutant    buddy.skip_merge" in shown.stdout
    assert "violation reproduced: buddy.fully_coalesced" in shown.stdout
    as_json = json.loads(kinv("replay", "--json", str(cex), cwd=tmp_path).stdout)
    assert as_json["reproduced"] is True


def test_list_names_each_invariant_with_its_mutants(tmp_path: Path) -> None:
    done = kinv("list", "buddy", cwd=tmp_path)
    assert done.returncode == 0
    line = next(ln for ln in done.stdout.splitlines() if "buddy.nr_free " in ln)
    assert "buddy.nr_free_not_decremented" in line


def test_a_violation_exits_1_with_a_replayable_counterexample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toy_model import install

    from checkers import plan
    from checkers.cli import main

    install(monkeypatch)  # two inc(2) from zero overshoot the toy's limit of 3
    monkeypatch.setattr(plan, "MODELS", {"toy": "toy_model:ToyModel"})
    monkeypatch.chdir(tmp_path)
    assert main(["check", "toy", "--engine", "explore"]) == 1
    run = tmp_path / "reports" / "latest"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "fail"
    (cex,) = (run / "counterexamples").iterdir()
    assert json.loads(cex.read_text())["steps"] == [
        {"action": "inc", "args": [2]},
        {"action": "inc", "args": [2]},
    ]
    assert "toy.within_limit violated (explore, 2 steps)" in capsys.readouterr().out
