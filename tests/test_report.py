"""Run reports: the artefacts, their content, statuses, atomic writing and ``latest``."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from toy_model import install, record

import invariants
from checkers import report
from checkers.replay import load_counterexample, replay
from checkers.results import SUMMARY_SCHEMA, EngineResult

BOTH = ["toy.within_limit", "toy.never_jumps"]
CEX_FILE = "counterexamples/toy-explore-toy.within_limit.json"
META: dict[str, Any] = {
    "command": ["kinv", "check", "toy"],
    "selectors": ["toy"],
    "seed": 7,
    "started": dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC),
    "finished": dt.datetime(2024, 5, 1, 12, 0, 2, 500000, tzinfo=dt.UTC),
}


@pytest.fixture(autouse=True)
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


def passing() -> EngineResult:
    return EngineResult(
        "toy",
        "stateful",
        list(BOTH),
        "bounded: sampled 200 runs of up to 10 steps",
        stats={"runs": 200, "seconds": 1.5, "steps_per_second": 900, "handle": object()},
    )


def exhaustive() -> EngineResult:
    return EngineResult("toy", "explore", list(BOTH), "exhaustive: all 9 reachable states", complete=True)


def interrupted() -> EngineResult:
    return EngineResult("toy", "explore", list(BOTH), "incomplete, interrupted: every state to depth 1",
                        stopped="interrupted")


def vacuous() -> EngineResult:
    return EngineResult("toy", "explore", list(BOTH), "exhaustive: all 9 reachable states", complete=True,
                        goals={"toy.reaches_limit": None}, unreached=["toy.reaches_limit"])


def failing() -> EngineResult:
    cex = record([("inc", (2,)), ("inc", (2,))])
    return EngineResult("toy", "explore", list(BOTH), "exhaustive to depth 4 (9 states)", counterexample=cex)


def errored() -> EngineResult:
    return EngineResult(
        "toy", "conform", ["toy.within_limit"], "no cases run", error="<script>alert(1)</script> refused"
    )


def read(run: Path, name: str) -> str:
    return (run / name).read_text(encoding="utf-8")


def test_a_run_writes_all_its_artefacts(tmp_path: Path) -> None:
    run = report.write_run([passing(), failing()], reports_dir=tmp_path, meta=META)
    assert run.parent == tmp_path and report.RUN_ID.match(run.name)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == sorted(
        ["summary.json", "timings.json", "junit.xml", "report.html", "summary.md", CEX_FILE]
    )
    assert replay(load_counterexample(run / CEX_FILE)).reproduced


def test_summary_json_records_results_invariants_and_the_run(tmp_path: Path) -> None:
    run = report.write_run([passing(), failing()], reports_dir=tmp_path, meta=META)
    summary = json.loads(read(run, "summary.json"))

    assert summary["schema"] == SUMMARY_SCHEMA
    assert summary["status"] == "fail" and summary["exit_code"] == 1
    assert summary["counts"] == {
        "fail": 1, "error": 0, "incomplete": 0, "bounded-pass": 1, "pass": 0, "results": 2
    }
    meta = summary["run"]
    assert meta["seed"] == 7 and meta["selectors"] == ["toy"]
    assert meta["command"] == "kinv check toy"
    assert meta["python"] and meta["kinv_version"]
    assert "id" not in meta and "duration_s" not in meta and "started" not in meta
    timings = json.loads(read(run, "timings.json"))
    assert timings["run"] == run.name and timings["duration_s"] == 2.5
    assert timings["results"][0] == {"seconds": 1.5, "steps_per_second": 900}

    ok, bad = summary["results"]
    assert ok["status"] == "bounded-pass" and ok["counterexample"] is None
    assert ok["stats"]["runs"] == 200 and ok["stats"]["handle"].startswith("<object object")
    assert "seconds" not in ok["stats"] and "steps_per_second" not in ok["stats"]
    assert bad["status"] == "fail" and bad["strength"] == "exhaustive to depth 4 (9 states)"
    assert bad["counterexample"]["file"] == CEX_FILE
    assert bad["counterexample"]["violations"] == ["count 4 exceeds limit 3"]

    by_name = {inv["name"]: inv for inv in summary["invariants"]}
    assert list(by_name) == BOTH
    limit = by_name["toy.within_limit"]
    assert (
        limit["statement"] == "The counter never exceeds its limit."
        and limit["source"] == "tests/toy_model.py"
    )
    assert limit["status"] == "fail"
    assert [(c["engine"], c["status"]) for c in limit["checks"]] == [
        ("stateful", "bounded-pass"),
        ("explore", "fail"),
    ]
    jumps = by_name["toy.never_jumps"]
    assert jumps["transition"] is True
    assert [(c["engine"], c["status"]) for c in jumps["checks"]] == [
        ("stateful", "bounded-pass"),
        ("explore", "stopped"),
    ]
    assert jumps["status"] == "bounded-pass"
    assert summary["proofs"] == []


@pytest.mark.parametrize(
    ("makers", "status", "code"),
    [
        ([exhaustive], "pass", 0),
        ([exhaustive, passing], "bounded-pass", 0),
        ([exhaustive, interrupted], "incomplete", 3),
        ([passing, errored], "error", 4),
        ([interrupted, errored, failing], "fail", 1),
        ([vacuous], "fail", 1),
    ],
)
def test_the_run_status_is_the_worst_result_and_gives_the_exit_code(
    tmp_path: Path, makers: list[Any], status: str, code: int
) -> None:
    results = [make() for make in makers]
    summary = json.loads(read(report.write_run(results, reports_dir=tmp_path, meta={}), "summary.json"))
    assert (summary["status"], summary["exit_code"]) == (status, code)


def test_strict_does_not_accept_a_bounded_pass(tmp_path: Path) -> None:
    run = report.write_run([exhaustive(), passing()], reports_dir=tmp_path, meta={"strict": True})
    summary = json.loads(read(run, "summary.json"))
    assert (summary["status"], summary["exit_code"]) == ("bounded-pass", 3)
    assert read(run, "summary.md").startswith("### kinv: 🔷 bounded-pass (not accepted: --strict)")
    failures = ET.parse(run / "junit.xml").getroot().findall("testsuite[2]/testcase/failure")
    assert [f.get("type") for f in failures] == ["kinv.bounded", "kinv.bounded"]
    run = report.write_run([exhaustive(), passing()], reports_dir=tmp_path, meta={"strict": False})
    assert json.loads(read(run, "summary.json"))["exit_code"] == 0
    assert ET.parse(run / "junit.xml").getroot().get("failures") == "0"


def test_every_artefact_tells_a_bounded_pass_and_an_incomplete_run_from_a_pass(tmp_path: Path) -> None:
    run = report.write_run([exhaustive(), passing(), interrupted()], reports_dir=tmp_path, meta={})
    md = read(run, "summary.md")
    assert "| explore | toy | ✅ pass | exhaustive: all 9 reachable states |" in md
    assert "| stateful | toy | 🔷 bounded-pass | bounded: sampled 200 runs of up to 10 steps |" in md
    assert "| explore | toy | ⏸️ incomplete | incomplete, interrupted: every state to depth 1 |" in md
    suites = ET.parse(run / "junit.xml").getroot().findall("testsuite")
    bounded = suites[1].find("testcase")
    assert bounded is not None and bounded.find("failure") is None
    assert bounded.find("properties/property[@name='kinv.status']").get("value") == "bounded-pass"  # type: ignore[union-attr]
    assert (bounded.findtext("system-out") or "").startswith("bounded-pass: bounded: sampled 200 runs")
    skipped = suites[2].find("testcase/skipped")
    assert skipped is not None and skipped.get("message", "").startswith("incomplete, interrupted")
    assert suites[0].find("properties/property[@name='status']").get("value") == "pass"  # type: ignore[union-attr]
    page = read(run, "report.html")
    assert 'class="status bounded-pass"' in page and 'class="status incomplete"' in page


def test_goals_show_where_each_engine_reached_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    goal = invariants.Goal("toy.reaches_limit", "toy", "The counter reaches its limit.", lambda s: s.count == 3)
    monkeypatch.setitem(invariants.GOALS, goal.name, goal)
    reached = EngineResult("toy", "stateful", list(BOTH), "bounded: sampled", goals={goal.name: {"run": 2, "step": 5}})
    run = report.write_run([vacuous(), reached], reports_dir=tmp_path, meta={})
    summary = json.loads(read(run, "summary.json"))
    assert summary["goals"] == [{
        "name": "toy.reaches_limit", "model": "toy", "statement": "The counter reaches its limit.",
        "engines": {"explore": {"reached": False, "at": None}, "stateful": {"reached": True, "at": "run 2, step 5"}},
        "status": "unreached",
    }]
    assert summary["status"] == "fail" and summary["results"][0]["unreached"] == ["toy.reaches_limit"]
    # The invariants held: it is the run that is vacuous, not they that failed.
    assert {inv["name"]: inv["status"] for inv in summary["invariants"]} == dict.fromkeys(BOTH, "bounded-pass")
    assert "| `toy.reaches_limit` | ❌ not reached | ✅ run 2, step 5 |" in read(run, "summary.md")
    explore = ET.parse(run / "junit.xml").getroot().find("testsuite[1]")
    assert explore is not None
    failure = explore.find("testcase[@name='toy.reaches_limit']/failure")
    assert failure is not None and failure.get("type") == "kinv.vacuous"


def test_a_traceback_is_saved_beside_the_report(tmp_path: Path) -> None:
    crashed = EngineResult("toy", "explore", list(BOTH), "did not finish", error="KeyError: 3",
                           traceback="Traceback (most recent call last):\n  ...\nKeyError: 3\n")
    run = report.write_run([crashed], reports_dir=tmp_path, meta={})
    summary = json.loads(read(run, "summary.json"))
    assert summary["status"] == "error" and summary["exit_code"] == 4
    name = summary["results"][0]["traceback"]
    assert read(run, name).endswith("KeyError: 3\n")
    assert name in read(run, "summary.md")


def test_a_dead_writers_temporary_directory_is_removed_by_the_next_run(tmp_path: Path) -> None:
    dead = tmp_path / ".tmp-999999999-abcd"  # no such pid
    alive = tmp_path / f".tmp-{os.getpid()}-abcd"
    dead.mkdir()
    alive.mkdir()
    report.write_run([passing()], reports_dir=tmp_path, meta={})
    assert not dead.exists() and alive.exists()


def test_overall_status_is_error_when_an_engine_errs_and_nothing_fails(tmp_path: Path) -> None:
    run = report.write_run([passing(), errored()], reports_dir=tmp_path, meta={})
    summary = json.loads(read(run, "summary.json"))
    assert summary["status"] == "error"
    timings = json.loads(read(run, "timings.json"))
    assert timings["started"] is None and timings["duration_s"] is None
    summary = json.loads(read(report.write_run([passing()], reports_dir=tmp_path, meta={}), "summary.json"))
    assert summary["status"] == "bounded-pass"


def test_proofs_and_deadlocks_get_their_own_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proof = invariants.Proof(
        "toy.take_adds",
        "take adds n to count",
        "all n below 2**64",
        "tests/toy_model.py",
        lambda: (True, None),
        lambda rng, n: [],
    )
    monkeypatch.setitem(invariants.PROOFS, proof.name, proof)
    proved = EngineResult("toy", "prove", [proof.name], "proved for all inputs", complete=True)
    stuck = EngineResult(
        "toy",
        "explore",
        ["toy.within_limit"],
        "exhaustive to depth 0 (1 state)",
        counterexample=record([], invariant="deadlock", kind="deadlock", config=None),
    )
    summary = json.loads(
        read(report.write_run([proved, stuck], reports_dir=tmp_path, meta={}), "summary.json")
    )
    assert [(p["name"], p["bounds"], p["status"]) for p in summary["proofs"]] == [
        ("toy.take_adds", "all n below 2**64", "pass")
    ]
    deadlock = {inv["name"]: inv for inv in summary["invariants"]}["deadlock"]
    assert deadlock["status"] == "fail" and deadlock["statement"] == report.DEADLOCK_STATEMENT


def test_a_refuted_proof_fails_without_a_trace(tmp_path: Path) -> None:
    refuted = EngineResult(
        "toy", "prove", ["toy.take_adds"], "disproved: z3 counterexample n = 3", refutation={"n": 3}
    )
    run = report.write_run([passing(), refuted], reports_dir=tmp_path, meta={})
    summary = json.loads(read(run, "summary.json"))
    assert summary["status"] == "fail"
    assert [(p["name"], p["status"]) for p in summary["proofs"]] == [("toy.take_adds", "fail")]
    assert summary["results"][1]["refutation"] == {"n": 3}
    failure = ET.parse(run / "junit.xml").getroot().find("testsuite[2]/testcase/failure")
    assert failure is not None and failure.get("type") == "kinv.refutation"
    assert '{"n": 3}' in (failure.text or "")
    assert "- **toy.take_adds**: disproved: z3 counterexample n = 3" in read(run, "summary.md")
    assert "refuted by" in read(run, "report.html")


def test_junit_xml_counts_tests_failures_errors_and_skips(tmp_path: Path) -> None:
    run = report.write_run([passing(), failing(), errored()], reports_dir=tmp_path, meta=META)
    root = ET.parse(run / "junit.xml").getroot()

    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["kinv.toy.stateful", "kinv.toy.explore", "kinv.toy.conform"]
    explore = suites[1]
    assert (explore.get("tests"), explore.get("failures"), explore.get("skipped")) == ("2", "1", "1")
    cases = {c.get("name"): c for c in explore.findall("testcase")}
    assert {c.get("classname") for c in cases.values()} == {"kinv.toy.explore"}
    failure = cases["toy.within_limit"].find("failure")
    assert failure is not None and failure.get("message") == "count 4 exceeds limit 3"
    assert f"kinv replay {run / CEX_FILE}" in (failure.text or "")
    assert cases["toy.never_jumps"].find("skipped") is not None
    error = suites[2].find("testcase/error")
    assert error is not None and error.get("message") == "<script>alert(1)</script> refused"
    assert suites[0].get("time") == "1.500"


def test_html_is_self_contained_escaped_and_shows_the_steps(tmp_path: Path) -> None:
    run = report.write_run([passing(), failing(), errored()], reports_dir=tmp_path, meta=META)
    page = read(run, "report.html")

    for expected in (
        "inc(n=2)",
        "zones[0].nr_free",
        "history[1]",
        "count 4 exceeds limit 3",
        "bounded: sampled 200 runs of up to 10 steps",
        "exhaustive to depth 4 (9 states)",
        "The counter never exceeds its limit.",
        "Replay reproduces the violation",
        "<details>",
    ):
        assert expected in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; refused" in page


def test_html_shows_a_failed_replay_instead_of_crashing(tmp_path: Path) -> None:
    broken = failing()
    assert broken.counterexample is not None
    broken.counterexample.signature = "0" * 16
    page = read(report.write_run([broken], reports_dir=tmp_path, meta={}), "report.html")
    assert "replay failed" in page and "recorded against a different model" in page


def test_summary_md_tabulates_invariants_by_engine(tmp_path: Path) -> None:
    md = read(report.write_run([passing(), failing()], reports_dir=tmp_path, meta=META), "summary.md")
    assert md.startswith("### kinv: ❌ fail")
    assert "| invariant | stateful | explore |" in md
    assert "| `toy.within_limit` | 🔷 bounded-pass | ❌ fail |" in md
    assert "| `toy.never_jumps` | 🔷 bounded-pass | ➖ stopped |" in md
    assert f"- **toy.within_limit** (explore, 2 steps): count 4 exceeds limit 3 · `{CEX_FILE}`" in md


def test_colliding_counterexample_names_are_kept_apart(tmp_path: Path) -> None:
    run = report.write_run([failing(), failing()], reports_dir=tmp_path, meta={})
    names = sorted(p.name for p in (run / "counterexamples").iterdir())
    assert names == ["toy-explore-toy.within_limit-2.json", "toy-explore-toy.within_limit.json"]


def test_latest_names_the_newest_run(tmp_path: Path) -> None:
    first = report.write_run([passing()], reports_dir=tmp_path, meta={})
    second = report.write_run([failing()], reports_dir=tmp_path, meta={})
    assert first.name < second.name
    latest = tmp_path / "latest"
    assert latest.is_symlink() and os.readlink(latest) == second.name  # relative, so reports/ can move
    assert report.latest_run(tmp_path) == second
    assert json.loads(read(latest, "timings.json"))["run"] == second.name


def test_a_write_that_fails_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = report.write_run([passing()], reports_dir=tmp_path, meta={})
    before = sorted(os.listdir(tmp_path))

    def explode(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "html", explode)  # the last artefact, after the others are written
    with pytest.raises(RuntimeError, match="disk full"):
        report.write_run([passing(), failing()], reports_dir=tmp_path, meta={})
    assert sorted(os.listdir(tmp_path)) == before == sorted([first.name, "latest"])
    assert report.latest_run(tmp_path) == first
