"""Coverage of model/ per engine: recorded by coverage.py per job, split by "model:engine"."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import coverage as coverage_py
import pytest

from checkers import coverage
from model.mm import page_alloc
from model.mm.buddy import BuddyModel
from model.sched import fair

PAGE_ALLOC = "model/mm/page_alloc.py"
FAIR = "model/sched/fair.py"
SEQ = "model/tcp/seq.py"
PIPE = "model/fs/pipe.py"  # run by nothing here

# A second process, started in another directory, writing into the same data directory.
OTHER_PROCESS = """
import sys
from pathlib import Path
from checkers.coverage import record
from model.tcp import seq
with record("tcp", "stateful", Path(sys.argv[1])):
    seq.before(1, 2)
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("coverage")
    with coverage.record("buddy", "explore", d):
        page_alloc.find_buddy_pfn(4, 1)
        m = BuddyModel.from_profile("small")
        s = m.init_state()
        pfn = m.alloc_pages(s, 0, "MIGRATE_MOVABLE", 0)
        assert pfn is not None
        m.free_pages(s, pfn, 0, 0)
    with coverage.record("sched", "stateful", d):  # a second job in the same process
        fair.max_vruntime(1, 2)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(d)], cwd=elsewhere, check=True)
    return d


@pytest.fixture(scope="module")
def summary(data_dir: Path) -> dict[str, Any]:
    return coverage.summarize(data_dir)


def entry(summary: dict[str, Any], path: str) -> dict[str, Any]:
    return next(f for f in summary["files"] if f["path"] == path)


def test_figures_are_percentages_credited_to_the_engine_that_ran_the_code(summary: dict[str, Any]) -> None:
    assert summary["engines"] == ["explore", "stateful"]
    pa = entry(summary, PAGE_ALLOC)
    explore = pa["engines"]["explore"]
    assert 0 < explore["lines_pct"] < 100 and 0 < explore["branches_pct"] < 100
    assert (
        0 < explore["executed"] < explore["statements"]
        and 0 < explore["branches_taken"] < explore["branches"]
    )
    assert explore == pa["all"]
    assert pa["engines"]["stateful"]["executed"] == pa["engines"]["stateful"]["branches_taken"] == 0


def test_each_engine_and_model_is_credited_only_with_its_own_lines(summary: dict[str, Any]) -> None:
    for path, ran, idle in [
        (PAGE_ALLOC, "explore", "stateful"),
        (FAIR, "stateful", "explore"),
        (SEQ, "stateful", "explore"),
    ]:
        engines = entry(summary, path)["engines"]
        assert engines[ran]["executed"] > 0 and engines[idle]["executed"] == 0, path
    totals = summary["totals"]
    assert (
        totals["engines"]["explore"]["executed"] + totals["engines"]["stateful"]["executed"]
        == totals["all"]["executed"]
    )
    models = summary["models"]
    assert sorted(models) == ["buddy", "sched", "tcp"]
    assert PAGE_ALLOC in models["buddy"]["files"] and FAIR not in models["buddy"]["files"]
    assert models["sched"]["files"] == [FAIR] and models["tcp"]["files"] == [SEQ]
    assert list(models["buddy"]["engines"]) == ["explore"] and list(models["sched"]["engines"]) == [
        "stateful"
    ]
    assert models["sched"]["all"] == entry(summary, FAIR)["all"]


def test_never_executed_names_the_functions_no_engine_entered(summary: dict[str, Any]) -> None:
    never = {f["path"]: set(f["never_executed"]) for f in summary["files"]}
    assert (
        "find_buddy_pfn" not in never[PAGE_ALLOC] and {"split_page", "drain_all_pages"} <= never[PAGE_ALLOC]
    )
    assert "BuddyModel.alloc_pages" not in never["model/mm/buddy.py"]
    assert "BuddyModel.split_page" in never["model/mm/buddy.py"]
    assert "max_vruntime" not in never[FAIR] and "min_vruntime" in never[FAIR]
    # A function nested in one never entered is implied; stubs have nothing to execute.
    assert (
        "_syscall_domain" in never["model/kernel.py"]
        and "_syscall_domain.domain" not in never["model/kernel.py"]
    )
    assert "State.fingerprint" not in never["model/contract.py"]
    assert "mem_cgroup_can_attach" not in never["model/cgroup/memcontrol.py"]


def test_a_file_no_job_ran_is_listed_with_nothing_executed(data_dir: Path, summary: dict[str, Any]) -> None:
    ran = set()
    for f in data_dir.glob(".coverage.*"):
        data = coverage_py.CoverageData(basename=str(f))
        data.read()
        ran |= {Path(m).as_posix() for m in data.measured_files() if data.lines(m)}
    assert ran and not any(m.endswith(PIPE) for m in ran)
    pipe = entry(summary, PIPE)
    assert pipe["all"]["statements"] > 0 and pipe["all"]["executed"] == 0 and pipe["all"]["lines_pct"] == 0.0
    assert len(pipe["never_executed"]) == pipe["all"]["functions"] > 0
    paths = [f["path"] for f in summary["files"]]
    on_disk = sorted(p.relative_to(coverage.ROOT).as_posix() for p in coverage.MODEL_DIR.rglob("*.py"))
    assert paths == on_disk


def test_module_level_lines_are_left_out_and_the_rest_agrees_with_coverage_py(
    data_dir: Path, summary: dict[str, Any], tmp_path: Path
) -> None:
    # coverage.py's own report of the same data: the lines run at import count as missed there.
    cov = coverage_py.Coverage(data_file=str(tmp_path / ".coverage"), branch=True, config_file=False)
    cov.combine([str(data_dir)], keep=True)
    cov.json_report(
        outfile=str(tmp_path / "coverage.json"), include=[str(coverage.MODEL_DIR / "mm" / "*.py")]
    )
    theirs = {
        Path(k).resolve().relative_to(coverage.ROOT).as_posix(): v
        for k, v in json.loads((tmp_path / "coverage.json").read_text())["files"].items()
    }
    def_line = page_alloc.find_buddy_pfn.__code__.co_firstlineno
    assert def_line in theirs[PAGE_ALLOC]["missing_lines"]
    for path in (PAGE_ALLOC, "model/mm/buddy.py", "model/mm/mmzone.py", "model/mm/page.py"):
        ours, cp = entry(summary, path)["all"], theirs[path]["summary"]
        assert ours["statements"] < cp["num_statements"], path
        assert (ours["executed"], ours["branches_taken"]) == (cp["covered_lines"], cp["covered_branches"]), (
            path
        )
        assert ours["branches"] <= cp["num_branches"], path


def test_data_files_of_two_jobs_and_two_processes_combine_and_are_kept(
    data_dir: Path, summary: dict[str, Any]
) -> None:
    files = list(data_dir.glob(".coverage.*"))
    # .coverage.<host>.pid<N>.<random>: two jobs in this process, one in the other
    pids = {pid for f in files for pid in re.findall(r"\.pid(\d+)\.", f.name)}
    assert len(files) == 3 and len(pids) == 2
    assert entry(summary, SEQ)["engines"]["stateful"]["executed"] > 0  # from the other process
    again = coverage.summarize(data_dir, model_files={"buddy": [PAGE_ALLOC]})
    assert again["files"] == [entry(summary, PAGE_ALLOC)]  # named models' files only
    assert again["totals"]["all"] == entry(summary, PAGE_ALLOC)["all"]
    assert again["models"]["buddy"] == {
        "files": [PAGE_ALLOC],
        "all": entry(summary, PAGE_ALLOC)["engines"]["explore"],
        "engines": {"explore": entry(summary, PAGE_ALLOC)["engines"]["explore"]},
    }
    assert again["models"]["tcp"] == summary["models"]["tcp"]


def test_record_saves_when_the_job_raises_and_measures_nothing_after(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), coverage.record("buddy", "explore", tmp_path / "data"):
        page_alloc.find_buddy_pfn(1, 0)
        raise RuntimeError("the model raised")
    page_alloc.combined_pfn(3, 2)
    pa = entry(coverage.summarize(tmp_path / "data"), PAGE_ALLOC)
    assert pa["all"]["executed"] == 1
    assert "find_buddy_pfn" not in pa["never_executed"] and "combined_pfn" in pa["never_executed"]


def test_an_empty_run_reports_every_file_as_not_executed(tmp_path: Path) -> None:
    s = coverage.summarize(tmp_path)
    assert s["engines"] == [] and s["models"] == {} and s["totals"]["engines"] == {}
    assert s["files"] and all(f["all"]["executed"] == 0 for f in s["files"])
    assert s["totals"]["all"]["statements"] > 0 and s["totals"]["all"]["lines_pct"] == 0.0


def test_bad_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="may not contain"), coverage.record("a:b", "explore", tmp_path):
        pass
    with pytest.raises(ValueError, match="no such file under model/: model/mm/nope.py"):
        coverage.summarize(tmp_path, model_files={"buddy": [PAGE_ALLOC, "model/mm/nope.py"]})


def test_markdown_table_and_html_rows(summary: dict[str, Any]) -> None:
    md = coverage.markdown_table(summary)
    title, by_model, by_file = "\n".join(md).split("\n\n")
    assert "function bodies" in title
    for table in (by_model, by_file):  # every row as wide as its header
        assert len({line.count("|") for line in table.splitlines()}) == 1, table
    assert by_model.splitlines()[0] == "| model | lines | branches | functions entered | explore | stateful |"
    sched = summary["models"]["sched"]["engines"]["stateful"]
    cell = f"{sched['lines_pct']:.1f}% / {sched['branches_pct']:.1f}%"
    assert next(line for line in md if line.startswith("| sched |")).endswith(f"| – | {cell} |")
    pa, never = entry(summary, PAGE_ALLOC)["all"], entry(summary, PAGE_ALLOC)["never_executed"]
    lines = f"{pa['executed']}/{pa['statements']} ({pa['lines_pct']:.1f}%)"
    row = next(line for line in md if line.startswith(f"| {PAGE_ALLOC} |"))
    assert f"| {lines} |" in row
    assert f"`{never[0]}`" in row and f"+{len(never) - coverage.NAMES_SHOWN} more" in row
    assert md[-1].startswith("| **all** |")

    rows = coverage.rows(summary)
    assert all(r["statements"] > 0 for r in rows) and len(rows) < len(summary["files"])
    r = next(r for r in rows if r["path"] == PAGE_ALLOC)
    assert (r["executed"], r["branches_taken"]) == (pa["executed"], pa["branches_taken"])
    assert r["lines_text"] == lines and r["never_executed"] == never and not r["untouched"]
    assert [e["engine"] for e in r["engines"]] == ["explore", "stateful"]
    assert next(r for r in rows if r["path"] == PIPE)["untouched"]


# Multi-line statements (one that raises before its first line runs), one-line loops,
# comprehensions, try/finally, a "no branch" pragma: where the figures depend on folding
# lines and arcs the way coverage.py does.
TRICKY = """\
def loops(n):
    total = 0
    while n: n -= 1; total += n
    for i in range(3): total += i
    values = [
        i * 2
        for i in range(n + 3)
        if i % 2
    ]
    if (total > 2 and
            n == 0):
        total = sum(
            values,
        )
    return total


def unused():
    return 1


def handled(x):
    if x is None:  # pragma: no branch
        x = 1
    try:
        if x:
            y = (
                1 / 0
            )
    except ZeroDivisionError:
        return 1
    finally:
        x = 0
    return y
"""


def test_figures_agree_with_coverage_py_on_tricky_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "src" / "kinv_coverage_tricky"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tricky.py").write_text(TRICKY)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(coverage, "MODEL_DIR", pkg)
    monkeypatch.setattr(coverage, "ROOT", pkg.parent)
    import kinv_coverage_tricky.tricky as tricky  # before recording, as model/ is

    with coverage.record("toy", "explore", tmp_path / "data"):
        tricky.loops(3)
        tricky.handled(True)
    ours = entry(coverage.summarize(tmp_path / "data"), "kinv_coverage_tricky/tricky.py")

    cov = coverage_py.Coverage(data_file=str(tmp_path / ".coverage"), branch=True, config_file=False)
    cov.combine([str(tmp_path / "data")], keep=True)
    cov.json_report(outfile=str(tmp_path / "coverage.json"))
    report = json.loads((tmp_path / "coverage.json").read_text())["files"]
    cp = next(v["summary"] for k, v in report.items() if k.endswith("tricky.py"))
    assert ours["never_executed"] == ["unused"]
    assert ours["all"]["statements"] == cp["num_statements"] - 3  # the three def lines ran at import
    assert (ours["all"]["executed"], ours["all"]["branches"]) == (cp["covered_lines"], cp["num_branches"])
    assert ours["all"]["branches_taken"] == cp["covered_branches"] < cp["num_branches"]


def test_functions_are_named_by_class_and_enclosing_function() -> None:
    source = "\n".join(
        [
            "def top():",  # 1
            "    def inner():",  # 2
            "        return 1",  # 3
            "    return inner",  # 4
            "class C:",  # 5
            "    def method(self): return 2",  # 6: a one-liner's only line is its def
            "    def other(self):",  # 7
            "        '''Only a docstring.'''",  # 8
            "    def real(self):",  # 9
            "        return 3",  # 10
        ]
    )
    every_line = set(range(1, 11)) - {8}  # coverage.py does not count docstrings
    found = {f.name: (sorted(f.lines), f.parent) for f in coverage._functions(source, every_line)}
    assert found == {"top": ([2, 4], None), "top.inner": ([3], "top"), "C.real": ([10], None)}
