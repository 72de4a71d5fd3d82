"""Generated mutants: every operator finds its sites, each mutant is a one-hunk edit that
compiles, samples are reproducible, outcomes are classified from a run's summary, and a
mutant runs in a scratch copy that shadows the installed packages and is removed after."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from checkers.mutants import generate
from checkers.mutants.generate import (
    OPERATORS,
    GeneratedOutcome,
    Site,
    apply,
    classify,
    print_generated,
    run_generated,
    run_one,
    sample,
    score,
    scratch_copy,
    scratch_env,
    sites,
    sites_in,
)
from checkers.sources import model_sources, project_root

ROOT = project_root()
PAGE_ALLOC = ROOT / "model" / "mm" / "page_alloc.py"

SOURCE = textwrap.dedent(
    '''\
    """A module docstring: 1 < 2 is never mutated."""

    from __future__ import annotations

    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        LIMIT = 99 < 100 + 1

    ORDER = 10


    def pick(a: int, b: int = 3) -> int:
        """Docstring: 5 < 6 and 7 are never mutated."""
        total = a + b  # a comment that survives
        if a < b and b != 0:
            total -= 1
        while total >= 100:
            total = total // 2
        assert total * 2 >= 0
        flag = True
        return total if flag else 0


    def is_free(x: int) -> bool:
        return x & 1 == 0 or not x << 2


    def nothing() -> bool:
        return False
    '''
)
DOCSTRING_AND_TYPE_CHECKING_LINES = {1, 7, 8, 14}


def changed(original: str, mutated: str) -> list[tuple[int, int]]:
    """(first, last) original line numbers, 1-based, of each differing run of lines."""
    matcher = difflib.SequenceMatcher(a=original.splitlines(), b=mutated.splitlines(), autojunk=False)
    return [(i1 + 1, i2) for op, i1, i2, _, _ in matcher.get_opcodes() if op != "equal"]


def test_each_operator_finds_sites_and_every_mutant_compiles_and_differs() -> None:
    found = sites_in(SOURCE, "model/fake.py")
    assert {s.operator for s in found} == set(OPERATORS)
    for s in found:
        mutated = apply(s, SOURCE)
        assert mutated != SOURCE, s.description
        compile(mutated, "model/fake.py", "exec", dont_inherit=True)
        assert s.line not in DOCSTRING_AND_TYPE_CHECKING_LINES, s.description
        assert s.description.startswith(f"line {s.line}: `"), s.description
    assert len({s.id for s in found}) == len(found)


@pytest.mark.parametrize(
    ("operator", "line", "before", "after"),
    [
        ("comparison", 16, "    if a < b and b != 0:", "    if a <= b and b != 0:"),
        ("comparison", 16, "    if a < b and b != 0:", "    if a < b and b == 0:"),
        ("arithmetic", 15, "    total = a + b  # a comment that survives", "    total = a - b  # a comment that survives"),
        ("arithmetic", 17, "        total -= 1", "        total += 1"),
        ("arithmetic", 19, "        total = total // 2", "        total = total * 2"),
        ("arithmetic", 26, "    return x & 1 == 0 or not x << 2", "    return x | 1 == 0 or not x << 2"),
        ("arithmetic", 26, "    return x & 1 == 0 or not x << 2", "    return x & 1 == 0 or not x >> 2"),
        ("boolean", 16, "    if a < b and b != 0:", "    if a < b or b != 0:"),
        ("boolean", 26, "    return x & 1 == 0 or not x << 2", "    return x & 1 == 0 and not x << 2"),
        ("constant", 10, "ORDER = 10", "ORDER = 11"),
        ("constant", 17, "        total -= 1", "        total -= 0"),
        ("constant", 20, "    assert total * 2 >= 0", "    assert total * 2 >= 1"),
        ("constant", 21, "    flag = True", "    flag = False"),
        ("constant", 13, "def pick(a: int, b: int = 3) -> int:", "def pick(a: int, b: int = 4) -> int:"),
        ("negate", 16, "    if a < b and b != 0:", "    if not (a < b and b != 0):"),
        ("negate", 18, "    while total >= 100:", "    while not (total >= 100):"),
        ("negate", 20, "    assert total * 2 >= 0", "    assert not (total * 2 >= 0)"),
        ("negate", 22, "    return total if flag else 0", "    return total if not (flag) else 0"),
        ("delete", 15, "    total = a + b  # a comment that survives", "    pass  # a comment that survives"),
        ("delete", 22, "    return total if flag else 0", "    pass"),
        ("return", 22, "    return total if flag else 0", "    return None"),
        ("return", 30, "    return False", "    return True"),
    ],
)
def test_each_operator_makes_the_token_edit_it_names(operator: str, line: int, before: str, after: str) -> None:
    lines = SOURCE.splitlines()
    assert lines[line - 1] == before
    made = []
    for s in sites_in(SOURCE, "model/fake.py"):
        if s.operator == operator and s.line == line:
            mutated = apply(s, SOURCE).splitlines()
            made.append(mutated[line - 1])
            assert mutated[: line - 1] + mutated[line:] == lines[: line - 1] + lines[line:], s.description
    assert after in made


def test_no_mutant_of_a_return_constant_twice_and_no_not_not() -> None:
    found = sites_in(SOURCE, "model/fake.py")
    # return False is the return operator's to flip; constant leaves it alone.
    assert sorted(s.operator for s in found if s.line == 30) == ["delete", "return"]
    unsure = "def f(x: int) -> int:\n    if not x:\n        return 1\n    return 2\n"
    (negated,) = [apply(s, unsure) for s in sites_in(unsure, "model/fake.py") if s.operator == "negate"]
    assert negated.splitlines()[1] == "    if (x):"


def test_a_mutant_that_does_not_compile_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    edits = generate._edits(SOURCE)
    broken = dataclasses.replace(edits[0], text="(")
    monkeypatch.setattr(generate, "_edits", lambda source: (*edits, broken))
    assert len(sites_in(SOURCE, "model/fake.py")) == len(edits)


def test_apply_refuses_a_source_the_site_was_not_found_in() -> None:
    site = next(s for s in sites_in(SOURCE, "model/fake.py") if s.operator == "comparison")
    with pytest.raises(ValueError, match="no comparison site"):
        apply(site, "\n\n" + SOURCE)


def test_sites_of_page_alloc_cover_every_operator_compile_and_touch_one_hunk() -> None:
    found = sites(PAGE_ALLOC)
    source = PAGE_ALLOC.read_text(encoding="utf-8")
    assert {s.operator for s in found} == set(OPERATORS)
    assert all(s.file == "model/mm/page_alloc.py" for s in found)
    assert any("in rmqueue_smallest" in s.description for s in found)
    for s in found:
        mutated = apply(s, source)
        compile(mutated, s.file, "exec", dont_inherit=True)
        hunks = changed(source, mutated)
        assert len(hunks) == 1 and hunks[0][0] == s.line, (s.description, hunks)
        if s.operator != "delete":  # a deleted statement may span lines; other edits are one token
            assert hunks[0] == (s.line, s.line), s.description
        diff = generate.unified_diff(s, source, mutated)
        assert diff.startswith("--- a/model/mm/page_alloc.py\n+++ b/model/mm/page_alloc.py\n")
        assert diff.count("\n@@ ") == 1


def test_sample_is_deterministic_in_source_order_and_depends_on_the_seed() -> None:
    found = sites(PAGE_ALLOC)
    first = sample(found, 20, seed=1)
    assert first == sample(found, 20, seed=1)
    assert len(first) == 20 and len(set(first)) == 20
    assert first != sample(found, 20, seed=2)
    assert [found.index(s) for s in first] == sorted(found.index(s) for s in first)
    assert sample(found[:5], 20, seed=1) == found[:5]


def test_model_sources_are_the_modules_the_model_imports_without_the_framework() -> None:
    files = [p.relative_to(ROOT).as_posix() for p in model_sources("buddy")]
    assert {"model/mm/page_alloc.py", "model/mm/buddy.py", "model/mm/mmzone.py"} <= set(files)
    assert "model/contract.py" not in files
    assert not any(f.endswith("__init__.py") for f in files)
    # Only what the buddy model imports, not every file of the package.
    assert "model/kernel.py" not in files and not any(f.startswith("model/sched/") for f in files)


# Classification of a finished run.


def result(engine: str = "explore", status: str = "pass", **extra: Any) -> dict[str, Any]:
    base = {"model": "buddy", "engine": engine, "status": status, "strength": "exhaustive", "invariants": []}
    return base | {"error": None, "counterexample": None, "refutation": None} | extra


def summary(*results: dict[str, Any], status: str = "pass") -> dict[str, Any]:
    return {"schema": "kinv.summary/2", "status": status, "results": list(results)}


def cex(invariant: str, kind: str = "invariant", steps: int = 3) -> dict[str, Any]:
    return {"invariant": invariant, "kind": kind, "steps": steps, "violations": ["pfn 6 and 7 both free"]}


def test_classify_a_counterexample_a_deadlock_and_a_refutation_as_killed() -> None:
    bad = result("stateful", "fail", counterexample=cex("buddy.nr_free"))
    assert classify(1, summary(result(), bad, status="fail"), "") == ("killed", "buddy.nr_free by stateful in 3 steps")
    hang = result("explore", "fail", counterexample=cex("sync.no_deadlock", kind="deadlock", steps=1))
    assert classify(1, summary(hang, status="fail"), "") == ("killed", "deadlock by explore in 1 step")
    refuted = result("prove", "fail", invariants=["buddy.buddy_pfn_xor"], refutation={"pfn": 3})
    assert classify(1, summary(refuted, status="fail"), "") == ("killed", "buddy.buddy_pfn_xor refuted by prove")
    outcome, detail = classify(1, summary(bad, refuted, status="fail"), "")
    assert outcome == "killed" and detail.endswith("(and 1 more)")


def test_classify_an_invariant_kill_beats_an_engine_that_raised() -> None:
    raised = result("stateful", "error", error="ZeroDivisionError: division by zero")
    bad = result("explore", "fail", counterexample=cex("buddy.nr_free"))
    assert classify(4, summary(raised, bad, status="fail"), "")[0] == "killed"


def test_classify_an_error_or_exit_4_or_no_summary_as_crashed() -> None:
    raised = result("stateful", "error", error="IndexError: list index out of range\n  in expand")
    assert classify(4, summary(result(), raised, status="error"), "") == (
        "crashed",
        "stateful: IndexError: list index out of range",
    )
    traceback = "Traceback (most recent call last):\n  File ...\nNameError: name 'pfn' is not defined\n"
    assert classify(4, summary(result()), traceback) == ("crashed", "NameError: name 'pfn' is not defined")
    outcome, detail = classify(1, None, traceback)
    assert outcome == "crashed" and detail.endswith("NameError: name 'pfn' is not defined")


def test_classify_a_pass_an_incomplete_run_and_a_non_invariant_failure_as_survived() -> None:
    assert classify(0, summary(result(), result("prove")), "")[0] == "survived"
    assert classify(3, summary(result(), status="incomplete"), "") == (
        "survived",
        "no invariant caught it (run status incomplete)",
    )
    odd = result("explore", "fail", counterexample=cex("buddy.nr_free", kind="nondeterminism"))
    assert classify(1, summary(odd, status="fail"), "")[0] == "survived"


# Scores and the printed table.


def outcome(site: Site, name: str) -> GeneratedOutcome:
    return GeneratedOutcome(site, name, f"detail of {site.line}", f"--- a/{site.file}\n+++ b/{site.file}\n@@ {site.line}\n", 1.0)


def test_score_counts_outcomes_and_leaves_equivalent_mutants_out_of_the_rate() -> None:
    found = sites_in(SOURCE, "model/fake.py")[:5]
    outs = [outcome(found[0], "killed"), outcome(found[1], "killed"), outcome(found[2], "survived")]
    outs += [outcome(found[3], "crashed"), outcome(found[4], "timed out")]
    s = score(outs, equivalent={found[2].id})
    assert (s["killed"], s["survived"], s["crashed"], s["timed out"]) == (2, 1, 1, 1)
    assert (s["sampled"], s["equivalent"]) == (5, 1)
    assert s["killed_by_invariant_rate"] == 2 / 4
    assert s["killed_rate_over_sampled"] == 2 / 5
    assert score([])["killed_by_invariant_rate"] is None


def test_print_generated_shows_each_mutant_a_summary_and_the_survivors_diffs() -> None:
    found = sites_in(SOURCE, "model/fake.py")
    killed, survived = outcome(found[0], "killed"), outcome(found[1], "survived")
    console = Console(record=True, width=250)
    print_generated([killed, survived], console)
    text = console.export_text()
    assert found[0].description in text and found[1].description in text
    assert "1 of 2 mutants killed by an invariant (50% of 2 not marked equivalent)" in text
    assert f"@@ {found[1].line}" in text and f"@@ {found[0].line}\n" not in text


# The scratch copy a mutant runs in.


def page_alloc_site() -> Site:
    return next(s for s in sites(PAGE_ALLOC) if s.operator == "comparison" and s.description.endswith(" in expand"))


def sources(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for package in generate.PACKAGES
        for p in (root / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_scratch_copy_holds_the_mutated_file_and_the_rest_unchanged() -> None:
    site = page_alloc_site()
    with scratch_copy(site) as copy:
        copied, original = sources(copy), sources(ROOT)
        assert copied.keys() == original.keys()
        differ = [name for name in copied if copied[name] != original[name]]
        assert differ == [site.file]
        assert copied[site.file].decode() == apply(site, PAGE_ALLOC.read_text(encoding="utf-8"))
    assert not copy.exists()


def test_scratch_copy_is_removed_on_keyboard_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt), scratch_copy(page_alloc_site()) as copy:
        assert copy.is_dir()
        raise KeyboardInterrupt
    assert not copy.exists()


def test_the_scratch_copy_shadows_the_installed_packages(tmp_path: Path) -> None:
    site = page_alloc_site()
    script = (
        "import json, model, checkers.cli, model.mm.page_alloc as p\n"
        "print(json.dumps([model.__file__, checkers.cli.__file__, p.__file__, open(p.__file__).read()]))"
    )
    with scratch_copy(site) as copy:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=scratch_env(copy), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        model_file, cli_file, page_alloc_file, text = json.loads(done.stdout)
        for f in (model_file, cli_file, page_alloc_file):
            assert Path(f).resolve().is_relative_to(copy.resolve()), f
        assert text == (copy / site.file).read_text(encoding="utf-8") != PAGE_ALLOC.read_text(encoding="utf-8")
        assert not list(copy.rglob("__pycache__"))  # PYTHONDONTWRITEBYTECODE


# run_one and run_generated with a stand-in for ``kinv check``: the real models take minutes.

FAKE_CHECK = """
import json, os, sys
import model.mm.page_alloc as p
reports = sys.argv[1]
mutated = open(p.__file__).read() != open(sys.argv[2]).read()
if sys.argv[3] == "hang":
    import time; time.sleep(120)
if sys.argv[3] == "vacuous":
    mutated = True
run = os.path.join(reports, "run-1")
os.makedirs(run)
cex = {"invariant": "buddy.nr_free", "kind": "invariant", "steps": 2, "violations": ["x"]}
result = {"model": "buddy", "engine": "explore", "status": "fail" if mutated else "pass", "strength": "s",
          "invariants": ["buddy.nr_free"], "error": None, "counterexample": cex if mutated else None,
          "refutation": None}
json.dump({"status": result["status"], "results": [result]}, open(os.path.join(run, "summary.json"), "w"))
os.symlink("run-1", os.path.join(reports, "latest"))
sys.exit(1 if mutated else 0)
"""


@pytest.fixture
def fake_check(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def command(model: str, *, profile: str, seed: int, budget: str, reports: Path) -> list[str]:
        calls.append(model)
        return [sys.executable, "-c", FAKE_CHECK, str(reports), str(PAGE_ALLOC), profile]

    monkeypatch.setattr(generate, "check_command", command)
    return calls


def test_run_one_runs_the_mutated_copy_and_classifies_its_summary(fake_check: list[str]) -> None:
    site = page_alloc_site()
    done = run_one(site, "buddy", profile="ci")
    assert (done.outcome, done.detail) == ("killed", "buddy.nr_free by explore in 2 steps")
    assert done.diff.startswith(f"--- a/{site.file}") and done.diff.count("\n@@ ") == 1
    assert fake_check == ["buddy"]


def test_run_one_kills_a_mutant_that_runs_past_the_timeout(fake_check: list[str]) -> None:
    done = run_one(page_alloc_site(), "buddy", profile="hang", timeout_s=1)
    assert done.outcome == "timed out" and "killed" in done.detail


def test_run_generated_runs_the_sample_in_order_and_reports_progress(
    fake_check: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = sample(sites(PAGE_ALLOC), 3, seed=5)
    seen: list[dict[str, Any]] = []
    outcomes, interrupted = run_generated("buddy", chosen, seed=5, progress=seen.append, jobs=2)
    assert [o.site for o in outcomes] == chosen and not interrupted
    assert [o.outcome for o in outcomes] == ["killed"] * 3
    assert sorted(p["done"] for p in seen) == [1, 2, 3] and {p["of"] for p in seen} == {3}


def test_an_interrupt_keeps_the_mutants_that_finished_and_leaves_none_running(fake_check: list[str]) -> None:
    def interrupt(p: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # Ctrl-C as the first mutant's outcome arrives

    chosen = sample(sites(PAGE_ALLOC), 3, seed=5)
    outcomes, interrupted = run_generated("buddy", chosen, seed=5, progress=interrupt)
    assert interrupted and [o.site for o in outcomes] == chosen[:1]


def test_sigterm_interrupts_a_run_of_mutants_as_ctrl_c_does() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), generate.sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode, before this ends
    assert signal.getsignal(signal.SIGTERM) is before


def test_classify_a_goal_the_mutant_made_unreachable_as_killed() -> None:
    vacuous = result("explore", "fail") | {"unreached": ["buddy.fallback_steal"]}
    assert classify(1, summary(vacuous, status="fail"), "") == ("killed", "goal buddy.fallback_steal not reached by explore")


def test_a_baseline_that_fails_its_own_check_is_named(fake_check: list[str]) -> None:
    assert generate.baseline("buddy", profile="ci")[0] is None
    assert generate.baseline("buddy", profile="vacuous")[0] == "run status fail; engine results short of a pass: 1"


def test_a_mutant_is_timed_out_at_ten_times_the_baseline_and_never_under_a_minute() -> None:
    assert generate.mutant_timeout(2.5) == 60 and generate.mutant_timeout(30.01) == 301


def test_the_equivalent_file_names_ids_with_reasons(tmp_path: Path) -> None:
    listed = tmp_path / "equivalent.txt"
    listed.write_text("# judged by a reader\nmodel/mm/a.py:3:4:comparison:7:0  # the loop ends either way\n\n")
    assert generate.read_equivalent(listed) == {"model/mm/a.py:3:4:comparison:7:0"}
    with pytest.raises(generate.UsageError, match="no such file"):
        generate.read_equivalent(tmp_path / "missing.txt")


def test_kinv_mutants_generate_scores_the_sample_and_writes_its_report(
    fake_check: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from checkers import sources
    from checkers.cli import main

    monkeypatch.setattr(sources, "model_sources", lambda model: [PAGE_ALLOC])
    args = ["mutants", "--generate", "buddy", "--sample", "2", "--seed", "5", "--reports", str(tmp_path)]
    assert main(args) == 0
    assert "2 of 2 mutants killed by an invariant (100% of 2" in capsys.readouterr().out
    report = json.loads((tmp_path / "generated" / "buddy-seed5.json").read_text())
    assert report["score"]["killed_by_invariant_rate"] == 1.0 and len(report["mutants"]) == 2
    assert report["sampled"] == 2 and report["sites"] == len(sites(PAGE_ALLOC)) and not report["interrupted"]
    assert main([*args, "--fail-under", "100"]) == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["buddy", "slub"], "one model"),
        (["nosuch"], "no built-in model 'nosuch'"),
        (["buddy", "--budget", "states=0"], "states must be a whole number"),
        (["buddy", "--equivalent", "/nonexistent/eq.txt"], "no such file"),
    ],
)
def test_kinv_mutants_generate_refuses_bad_input_in_one_line(
    args: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from checkers.cli import main

    assert main(["mutants", "--generate", *args, "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
