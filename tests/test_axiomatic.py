"""The axiomatic SC and x86-TSO (checkers/axiomatic.py): the same verdicts and the same final
outcomes as the operational engine on every litmus test at hand, and the classic shapes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import pytest
from test_litmus import sb_with

from checkers import axiomatic, litmus
from checkers.axiomatic import Unsupported, axiomatic_outcomes, axiomatic_verdict
from checkers.cli import main
from model.sync.litmus import UnsupportedPrimitive, parse, parse_file
from model.sync.program import Instr, Program, Thread, While

HERE = Path(__file__).parent / "litmus"
KERNEL = Path("/work/shared/litmus/linux")


def _files() -> list[Any]:
    files = sorted(HERE.glob("*.litmus"))
    params = [pytest.param(f, id=f"{f.parent.name}/{f.stem}") for f in files]
    if KERNEL.is_dir():
        params += [pytest.param(f, id=str(f.relative_to(KERNEL))) for f in sorted(KERNEL.rglob("*.litmus"))]
    else:
        params.append(pytest.param(KERNEL, id="kernel", marks=pytest.mark.skip(reason=f"{KERNEL} is absent")))
    return params


def program_of(name: str) -> Program:
    return parse_file(HERE / f"{name}.litmus")


def verdicts(program: Program) -> tuple[str, str]:
    return axiomatic_verdict(program, "sc").verdict, axiomatic_verdict(program, "tso").verdict


# The two engines against each other.


@pytest.mark.parametrize("memory", ["sc", "tso"])
@pytest.mark.parametrize("file", _files())
def test_axiomatic_agrees_with_operational(file: Path, memory: str) -> None:
    try:
        program = parse_file(file)
    except UnsupportedPrimitive as e:
        pytest.skip(f"the parser does not support {e.primitive}")
    operational = litmus.run(program, memory)
    try:
        result = axiomatic_verdict(program, memory)
    except Unsupported as e:
        pytest.skip(str(e))
    assert operational.complete
    assert (result.verdict, result.shown, result.holds) == (
        operational.verdict,
        operational.shown,
        operational.holds,
    )
    assert axiomatic.agrees(operational, result)
    # Stronger than the verdict: the very same set of final outcomes.
    assert axiomatic_outcomes(program, memory) == operational.outcomes


# The classic shapes.


def test_store_buffering_needs_store_buffers() -> None:
    program = program_of("SB")
    sc, tso = axiomatic_verdict(program, "sc"), axiomatic_verdict(program, "tso")
    assert (sc.verdict, tso.verdict) == ("Never", "Sometimes")
    assert not sc.holds and tso.holds and sc.executions
    assert sc.witness == {} and sc.reads_from == []
    # The witness: both loads read the initial values, past the other CPU's buffered store.
    assert tso.witness == {"0:r0": 0, "1:r0": 0}
    assert sorted(tso.reads_from) == [
        "P0: r0 = READ_ONCE(*y) reads 0 from the initial y=0",
        "P1: r0 = READ_ONCE(*x) reads 0 from the initial x=0",
    ]


def test_smp_mb_forbids_store_buffering() -> None:
    assert verdicts(program_of("SB+mbs")) == ("Never", "Never")


def test_message_passing_keeps_order_on_tso() -> None:
    program = program_of("MP")
    assert verdicts(program) == ("Never", "Never")
    assert axiomatic_outcomes(program, "tso") == ["1:r0=0; 1:r1=0", "1:r0=0; 1:r1=42", "1:r0=1; 1:r1=42"]


@pytest.mark.parametrize(
    ("between", "tso"),
    [
        ("smp_mb();", "Never"),
        ("smp_wmb(); smp_rmb();", "Sometimes"),
        ("smp_mb__after_atomic();", "Sometimes"),  # barrier() on x86
        ("atomic_inc(z); smp_mb__after_atomic();", "Never"),  # the locked increment is implied mfence
        ("r0 = cmpxchg_relaxed(z, 5, 6);", "Never"),  # a failed cmpxchg is still locked
        ("smp_store_mb(*z, 1);", "Never"),  # xchg on x86
        ("if (0) smp_mb();", "Sometimes"),  # a fence that is not executed orders nothing
    ],
)
def test_what_orders_a_write_before_a_read(between: str, tso: str) -> None:
    assert verdicts(parse(sb_with(between))) == ("Never", tso)


def test_cmpxchg_and_xchg() -> None:
    program = program_of("cmpxchg-once")
    assert verdicts(program) == ("Never", "Never")
    firsts = {"; ".join(o.split("; ")[:2]) for o in axiomatic_outcomes(program, "sc")}
    # Who got the word first: P0's cmpxchg, P1's, or P2's xchg.
    assert firsts == {
        "0:r0=0; 1:r0=1",
        "0:r0=0; 1:r0=3",
        "0:r0=2; 1:r0=0",
        "0:r0=3; 1:r0=0",
        "0:r0=3; 1:r0=3",
    }


def test_rmw_atomicity() -> None:
    # Without the atomicity axiom both increments could read 0 under SC (no cycle in po|rf|co|fr).
    result = axiomatic_verdict(program_of("atomic-counter"), "sc")
    assert (result.verdict, result.holds, result.witness) == ("Always", True, {})


def test_forall_that_fails_has_a_counterexample() -> None:
    result = axiomatic_verdict(program_of("lost-update"), "tso")
    assert (result.verdict, result.holds) == ("Sometimes", False)
    assert result.witness == {"v": 1}  # an increment was lost


def test_filter_restricts_the_executions() -> None:
    program = program_of("SB+filter")
    assert verdicts(program) == ("Always", "Sometimes")
    unfiltered = dataclasses.replace(program, final=dataclasses.replace(program.final, filter=None))
    assert axiomatic_verdict(unfiltered, "sc").verdict == "Sometimes"
    assert axiomatic_outcomes(program, "sc") == ["x=1; y=1; 1:r0=1"]


def test_no_execution_is_deadlock() -> None:
    text = (
        "C stuck\n{}\nP0(spinlock_t *s)\n{\n\tspin_lock(s);\n}\nP1(spinlock_t *s)\n{\n\tspin_lock(s);\n}\n"
        "exists (s=1)\n"
    )
    result = axiomatic_verdict(parse(text), "tso")
    assert (result.verdict, result.shown, result.executions) == ("Never", "DEADLOCK", False)


def test_store_forwarding() -> None:
    text = """C SB+rfi
{}
P0(int *x, int *y)
{
\tint r0;
\tint r1;
\tWRITE_ONCE(*x, 1);
\tr0 = READ_ONCE(*x);
\tr1 = READ_ONCE(*y);
}
P1(int *x, int *y)
{
\tint r0;
\tint r1;
\tWRITE_ONCE(*y, 1);
\tr0 = READ_ONCE(*y);
\tr1 = READ_ONCE(*x);
}
exists (0:r0=1 /\\ 0:r1=0 /\\ 1:r0=1 /\\ 1:r1=0)
"""
    # Each CPU reads its own store from its buffer before the other's reaches memory: rfi is
    # not in TSO's global order.
    assert verdicts(parse(text)) == ("Never", "Sometimes")
    # But a CPU never reads past its own store (uniproc): CoWR.
    cowr = "C CoWR\n{}\nP0(int *x)\n{\n\tint r0;\n\tWRITE_ONCE(*x, 1);\n\tr0 = READ_ONCE(*x);\n}\nexists (0:r0=0)\n"
    assert verdicts(parse(cowr)) == ("Never", "Never")


def test_store_forwarding_and_pointers() -> None:
    text = """C fwd+ptr
{ p=x; }
P0(int *x, int *y, int **p)
{
\tint r0;
\tWRITE_ONCE(*y, 2);
\tsmp_store_release(p, y);
\tr0 = READ_ONCE(*y);
}
P1(int *x, int *y, int **p)
{
\tint *r0;
\tint r1;
\tr0 = smp_load_acquire(p);
\tr1 = READ_ONCE(*r0);
}
exists (1:r0=y /\\ 1:r1=0)
"""
    program = parse(text)
    for memory in ("sc", "tso"):
        result = axiomatic_verdict(program, memory)
        assert result.verdict == "Never"
        assert axiomatic_outcomes(program, memory) == litmus.run(program, memory).outcomes
    assert axiomatic_outcomes(program, "tso") == ["1:r0=x; 1:r1=0", "1:r0=y; 1:r1=2"]


def test_loops_spin_wait_and_register_loop() -> None:
    program = program_of("spin-wait")
    for memory in ("sc", "tso"):
        result = axiomatic_verdict(program, memory)
        # The spin loop is an await and the register loop ends by itself: nothing is cut short.
        assert (result.verdict, result.holds, result.complete) == ("Always", True, True)


def test_loop_bound_cuts_executions() -> None:
    program = program_of("spin-wait")
    loop = program.threads[1].body[0]
    assert isinstance(loop, While)
    t1 = program.threads[1]
    bounded = dataclasses.replace(loop, bound=0)
    threads = (program.threads[0], dataclasses.replace(t1, body=(bounded, *t1.body[1:])))
    program = dataclasses.replace(program, threads=threads)
    # Only executions where P1 never waits survive: it reads the flag set.
    for memory in ("sc", "tso"):
        assert axiomatic_outcomes(program, memory) == litmus.run(program, memory).outcomes == ["1:r0=4"]


def test_unbounded_loop_with_effects_is_unrolled() -> None:
    text = """C count
{}
P0(int *x)
{
\tint r0;
\tr0 = READ_ONCE(*x);
\twhile (r0 < 3) {
\t\tWRITE_ONCE(*x, r0 + 1);
\t\tr0 = READ_ONCE(*x);
\t}
}
forall (x=3)
"""
    program = parse(text)
    deep = axiomatic_verdict(program, "sc", unroll=3)
    assert deep.verdict == litmus.run(program, "sc").verdict == "Always"
    assert not deep.complete  # the test after the third iteration still reads memory
    # Two iterations cannot count to 3: every execution is cut short.
    assert not axiomatic_verdict(program, "sc", unroll=2).executions


def test_unsupported_is_named() -> None:
    with pytest.raises(Unsupported, match="memory model 'lkmm'"):
        axiomatic_verdict(program_of("SB"), "lkmm")

    @dataclasses.dataclass(frozen=True)
    class Mystery:
        line: int = 7

    sb = program_of("SB")
    odd = Thread(0, (cast(Instr, Mystery()),), ())
    with pytest.raises(Unsupported, match=r"Mystery \(P0 line 7\)"):
        axiomatic_verdict(dataclasses.replace(sb, threads=(odd, sb.threads[1])), "sc")


# kinv litmus --engine.


def test_cli_both_engines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    code = main(["litmus", str(HERE), "--engine", "operational,axiomatic", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    assert "sc axiomatic" in out and "tso axiomatic" in out
    assert "0 disagree with the operational engine" in out
    data = json.loads(out_json.read_text())
    assert data["engines"] == ["operational", "axiomatic"]
    sb = next(t for t in data["tests"] if t["name"] == "SB")
    assert sb["axiomatic"]["tso"]["verdict"] == "Sometimes" and sb["axiomatic"]["tso"]["agrees"] is True
    assert sb["axiomatic"]["sc"]["seconds"] >= 0


def test_cli_axiomatic_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["litmus", str(HERE / "SB.litmus"), "--engine", "axiomatic", "--model", "tso"]) == 0
    out = capsys.readouterr().out
    assert "Sometimes: agrees" in out and "states" not in out


def test_cli_engine_disagreement_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = axiomatic.axiomatic_verdict

    def wrong(program: Program, memory: str = "sc", **kw: Any) -> axiomatic.AxiomaticResult:
        result = real(program, memory, **kw)
        return dataclasses.replace(result, verdict="Always" if result.verdict != "Always" else "Never")

    monkeypatch.setattr(axiomatic, "axiomatic_verdict", wrong)
    code = main(["litmus", str(HERE / "SB.litmus"), "--engine", "operational,axiomatic"])
    out = capsys.readouterr().out
    assert code == 1
    assert "SB under sc: the axiomatic and operational engines disagree" in out


def test_cli_unknown_engine_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["litmus", str(HERE), "--engine", "herd"]) == 2
    assert "unknown engine 'herd'" in capsys.readouterr().err
