"""Reductions of the litmus engine's search: sleep sets, persistent sets and symmetry keep
every verdict, outcome and hang of the full search while exploring less."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkers import litmus
from checkers.cli import main
from model.sync.litmus import UnsupportedPrimitive, parse_file
from model.sync.model import PROTOCOL_DIR
from model.sync.program import Program

HERE = Path(__file__).parent / "litmus"
KERNEL = Path("/work/shared/litmus/linux")
REDUCED = [r for r in litmus.REDUCTIONS if r != "none"]


def _files() -> list[Path]:
    files = sorted(HERE.glob("*.litmus")) + sorted(PROTOCOL_DIR.glob("*.litmus"))
    if KERNEL.is_dir():
        files += sorted(KERNEL.rglob("*.litmus"))
    return files


def _parsed(file: Path) -> Program | None:
    try:
        return parse_file(file)
    except UnsupportedPrimitive:
        return None


def judged(r: litmus.LitmusResult) -> tuple[object, ...]:
    """What a reduction must keep: the verdict, the outcomes, and which kinds of terminal
    state occur (symmetry may merge final states, so not how many)."""
    kinds = (r.positive, r.negative, r.filtered, r.deadlocks, r.lost_wakeups, r.bugs, r.cut)
    return (r.shown, r.holds, r.complete, r.outcomes, tuple(n > 0 for n in kinds))


@pytest.mark.parametrize(
    "file",
    # The qspinlock family and the racy ticket lock run 20k-300k states each: deep suite only.
    [
        pytest.param(f, marks=[pytest.mark.deep] if f.stem.startswith(("qspinlock", "ticket-spinlock+racy")) else [])
        for f in _files()
    ],
    ids=lambda f: f.name,
)
def test_every_reduction_keeps_the_verdicts(file: Path) -> None:
    program = _parsed(file)
    if program is None:
        pytest.skip("unsupported primitive")
    for memory in ("sc", "tso"):
        full = litmus.run(program, memory)
        for reduction in REDUCED:
            reduced = litmus.run(program, memory, reduction=reduction)
            assert judged(reduced) == judged(full), (memory, reduction)
            assert reduced.states <= full.states and reduced.transitions <= full.transitions
            if "symmetry" not in reduction:  # without merging, the counts are the full search's
                assert (reduced.positive, reduced.negative, reduced.deadlocks, reduced.lost_wakeups) == (
                    full.positive,
                    full.negative,
                    full.deadlocks,
                    full.lost_wakeups,
                )
            if reduction == "sleep":  # sleep sets prune transitions, never states
                assert reduced.states == full.states


def counts(program: Program, memory: str) -> dict[str, tuple[int, int]]:
    out = {}
    for reduction in litmus.REDUCTIONS:
        r = litmus.run(program, memory, reduction=reduction)
        out[reduction] = (r.states, r.transitions)
    return out


def test_store_buffering_counts() -> None:
    # Under SC the two threads' four steps form a diamond: sleep sets keep a spanning tree of it.
    assert counts(parse_file(HERE / "SB.litmus"), "sc")["sleep"] == (13, 12)
    assert counts(parse_file(HERE / "SB.litmus"), "sc")["none"] == (13, 14)
    # smp_mb() waits only on its own CPU's buffer: a persistent set on its own, fewer states.
    mbs = counts(parse_file(HERE / "SB+mbs.litmus"), "tso")
    assert mbs["none"] == (31, 44)
    assert mbs["sleep"] == (31, 32)
    assert mbs["por"] == (27, 28)


def test_protocol_counts() -> None:
    sc = counts(parse_file(PROTOCOL_DIR / "wait-woken.litmus"), "sc")
    assert sc["none"] == (1311, 2129)
    assert sc["sleep"] == (1311, 1431)
    assert sc["por"] == (1174, 1293)
    tso = counts(parse_file(PROTOCOL_DIR / "sleep-wake.litmus"), "tso")
    assert tso["none"] == (49, 71)
    assert tso["por"] == (41, 48)
    # No two threads are alike here: symmetry alone is the full search, with no sleep sets.
    no_a = counts(parse_file(PROTOCOL_DIR / "wait-woken+no-A.litmus"), "tso")
    assert no_a["none"] == no_a["symmetry"] == (2308, 4716)
    assert no_a["sleep"] == (2308, 3345)
    assert no_a["por+symmetry"] == (2019, 3525)


def test_symmetry_between_three_lockers() -> None:
    program = parse_file(HERE / "spinlock-counter3.litmus")
    assert litmus.symmetric_groups(program) == [[0, 1, 2]]
    sc = counts(program, "sc")
    assert sc["none"] == (61, 60)
    assert sc["symmetry"] == (13, 15)
    tso = counts(program, "tso")
    assert tso["none"] == (106, 120)
    assert tso["por+symmetry"] == (22, 27)
    full = litmus.run(program, "tso")
    sym = litmus.run(program, "tso", reduction="por+symmetry")
    assert judged(sym) == judged(full) and sym.shown == "Never"
    assert sym.negative < full.negative  # final states that differ by a permutation merge


def test_symmetry_needs_the_final_clause_to_be_symmetric() -> None:
    # spinlock-counter names 0:r0 and 1:r0: swapping the threads is not a symmetry of it.
    assert litmus.symmetric_groups(parse_file(HERE / "spinlock-counter.litmus")) == []
    # lost-update names only x, and its two threads are the same code.
    assert litmus.symmetric_groups(parse_file(HERE / "lost-update.litmus")) == [[0, 1]]
    # A sleeper and its waker are different code.
    assert litmus.symmetric_groups(parse_file(PROTOCOL_DIR / "sleep-wake.litmus")) == []


def test_a_lost_wakeup_is_still_found_under_every_reduction() -> None:
    program = parse_file(PROTOCOL_DIR / "sleep-wake+no-mb.litmus")
    full = litmus.run(program, "tso")
    assert full.lost_wakeups > 0
    for reduction in REDUCED:
        r = litmus.run(program, "tso", reduction=reduction)
        assert r.lost_wakeups == full.lost_wakeups and r.hang == full.hang
        assert r.lost_wakeup_steps  # a trace to it, if maybe not the shortest


def test_compare_reports_both_searches_and_the_shortest_witness() -> None:
    program = parse_file(PROTOCOL_DIR / "sleep-wake+no-mb.litmus")
    full = litmus.run(program, "tso")
    both = litmus.run(program, "tso", reduction="por", compare=True)
    assert (both.states, both.transitions) == (60, 79)
    assert (both.unreduced_states, both.unreduced_transitions) == (full.states, full.transitions) == (70, 113)
    assert both.lost_wakeup_steps == full.lost_wakeup_steps
    assert both.to_json()["reduction"] == "por" and both.to_json()["unreduced_states"] == 70


def test_unknown_reduction() -> None:
    with pytest.raises(ValueError, match="unknown reduction"):
        litmus.run(parse_file(HERE / "SB.litmus"), reduction="dpor")


def test_cli_reduction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    code = main(
        ["litmus", str(HERE / "spinlock-counter3.litmus"), "--reduction", "symmetry", "--json", str(out)]
    )
    assert code == 0
    assert "13 of 61" in capsys.readouterr().out
    data = json.loads(out.read_text())
    record = data[0] if isinstance(data, list) else data
    text = json.dumps(record)
    assert '"unreduced_states": 61' in text and '"reduction": "symmetry"' in text
    assert main(["litmus", str(HERE / "SB.litmus"), "--reduction", "dpor"]) == 2
