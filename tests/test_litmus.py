"""Litmus programs: the parser, SC and x86-TSO, the engine's verdicts, and ``kinv litmus``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from checkers import litmus
from checkers.cli import main
from checkers.explore import explore
from model.sync.litmus import LitmusError, UnsupportedPrimitive, parse, parse_file
from model.sync.machine import LitmusConfig, LitmusModel
from model.sync.memory import SC, TSO
from model.sync.program import Load, SpinLock, Store, While
from model.sync.trace import diagram

HERE = Path(__file__).parent / "litmus"
KERNEL = Path("/work/shared/litmus/linux")


def verdicts(name: str) -> dict[str, litmus.LitmusResult]:
    program = parse_file(HERE / f"{name}.litmus")
    return {m: litmus.run(program, m) for m in ("sc", "tso")}


def shown(name: str) -> tuple[str, str]:
    r = verdicts(name)
    return r["sc"].shown, r["tso"].shown


# Verdicts of the project's own tests (tests/litmus/).


def test_store_buffering_needs_store_buffers() -> None:
    r = verdicts("SB")
    assert (r["sc"].verdict, r["tso"].verdict) == ("Never", "Sometimes")
    assert not r["sc"].holds and r["tso"].holds
    # The witness: both loads run while both stores still sit in the buffers.
    assert r["tso"].witness[:4] == [
        "P0: WRITE_ONCE(*x, 1)",
        "P0: r0 = READ_ONCE(*y)  (read 0)",
        "P1: WRITE_ONCE(*y, 1)",
        "P1: r0 = READ_ONCE(*x)  (read 0)",
    ]
    assert r["sc"].witness == []


def test_smp_mb_forbids_store_buffering() -> None:
    assert shown("SB+mbs") == ("Never", "Never")


def test_message_passing_keeps_order_on_tso() -> None:
    assert shown("MP") == ("Never", "Never")


def test_message_passing_under_a_lock() -> None:
    assert shown("MP+lock") == ("Never", "Never")


def test_load_buffering_is_forbidden() -> None:
    assert shown("LB") == ("Never", "Never")


def test_two_plus_two_writes() -> None:
    r = verdicts("2+2W")
    assert (r["sc"].shown, r["tso"].shown) == ("Never", "Never")
    assert r["tso"].outcomes == ["x=1; y=2", "x=2; y=1", "x=2; y=2"]


def test_cmpxchg_and_xchg() -> None:
    r = verdicts("cmpxchg-once")
    assert (r["sc"].shown, r["tso"].shown) == ("Never", "Never")
    # Who got the word first: P0's cmpxchg, P1's, or P2's xchg; each case seen.
    firsts = {o.split("; ")[0] + "; " + o.split("; ")[1] for o in r["sc"].outcomes}
    assert firsts == {
        "0:r0=0; 1:r0=1",
        "0:r0=0; 1:r0=3",
        "0:r0=2; 1:r0=0",
        "0:r0=3; 1:r0=0",
        "0:r0=3; 1:r0=3",
    }


def test_spinlock_mutual_exclusion_not_exists() -> None:
    r = verdicts("spinlock-counter")
    for res in r.values():
        assert res.verdict == "Never" and res.holds  # ~exists holds when its proposition is Never
        assert res.outcomes == ["0:r0=0; 1:r0=1; counter=2", "0:r0=1; 1:r0=0; counter=2"]


def test_forall_that_holds() -> None:
    r = verdicts("atomic-counter")
    for res in r.values():
        assert (res.verdict, res.holds, res.negative) == ("Always", True, 0)
        assert res.witness == []  # a forall witness is a counterexample


def test_forall_that_fails_has_the_shortest_counterexample() -> None:
    res = verdicts("lost-update")["sc"]
    assert (res.verdict, res.holds) == ("Sometimes", False)
    assert res.witness == [
        "P0: r0 = READ_ONCE(*v)  (read 0)",
        "P1: r0 = READ_ONCE(*v)  (read 0)",
        "P0: WRITE_ONCE(*v, (r0 + 1))",
        "P1: WRITE_ONCE(*v, (r0 + 1))",
    ]


def test_filter_restricts_the_final_states() -> None:
    r = verdicts("SB+filter")
    # SC: P0 read 0 only if P1 ran after it, so P1 read 1: Always. TSO adds (0, 0).
    assert (r["sc"].verdict, r["sc"].positive, r["sc"].negative, r["sc"].filtered) == ("Always", 1, 0, 2)
    assert (r["tso"].verdict, r["tso"].positive, r["tso"].negative) == ("Sometimes", 1, 1)
    unfiltered = parse_file(HERE / "SB+filter.litmus")
    unfiltered = type(unfiltered)(
        **{**vars(unfiltered), "final": type(unfiltered.final)("exists", unfiltered.final.prop)}
    )
    assert litmus.run(unfiltered, "sc").verdict == "Sometimes"


# Exact state counts.


def test_store_buffering_state_counts() -> None:
    """SB has 13 states under SC and 34 under TSO.

    SC: a state is (pc0, pc1) with pc in {0 before the store, 1 before the load, 2 done}, the
    memory following from the pcs, plus the value each finished load read. A thread that has
    loaded read 1 iff the other had stored by then. (pc0, pc1) = (0,0) (1,0) (0,1) (1,1): one
    state each; (2,0) (0,2): one (read 0); (2,1) (1,2): two (the load ran before or after the
    other's store); (2,2): three (0,1) (1,0) (1,1). 4 + 2 + 4 + 3 = 13.

    TSO: each thread is a: not stored, b: store buffered, c: store drained, or, once it has
    loaded (read 0 or 1), d: store still buffered or e: drained; memory follows. Neither has
    loaded: 3 x 3 = 9. Only P0 has loaded: read 0 (P1 had not drained) with P1 in a, b or c
    and P0 in d or e: 6; read 1 (P1 drained, so c): 2; 8, and 8 for P1 alone. Both loaded:
    (0,0) with each in d or e: 4; (1,0): the reader of 1 saw the other drained, so that one
    is in e, the first in d or e: 2, and 2 for (0,1); (1,1): both in e: 1. 9 + 16 + 9 = 34.
    """
    program = parse_file(HERE / "SB.litmus")
    assert litmus.run(program, "sc").states == 13
    assert litmus.run(program, "tso").states == 34
    # The generic explorer drives the same model through the contract and agrees.
    for memory, states in (("sc", 13), ("tso", 34)):
        result = explore(LitmusModel(LitmusConfig(program, memory)), [])
        assert result.status == "pass" and result.stats["states"] == states and result.stats["complete"]


def test_store_forwarding_state_count() -> None:
    """One CPU stores x and reads it back. SC: before, between, done: 3 states. TSO: init;
    store buffered; then drain (buffer empty, x=1) or load first (forwarded 1, buffer full);
    then the other of the two, which meet in one state: 5."""
    program = parse(
        "C fwd\n{}\nP0(int *x)\n{\n\tint r0;\n\tWRITE_ONCE(*x, 1);\n\tr0 = READ_ONCE(*x);\n}\nexists (0:r0=0)\n"
    )
    sc, tso = litmus.run(program, "sc"), litmus.run(program, "tso")
    assert (sc.states, tso.states) == (3, 5)
    assert sc.verdict == tso.verdict == "Never"  # the load sees its own store, buffered or not


def sb_with(between: str) -> str:
    body = "{\n\tint r0;\n\tWRITE_ONCE(*%s, 1);\n\t" + between + "\n\tr0 = READ_ONCE(*%s);\n}\n"
    return (
        "C SB+fence\n{}\nP0(int *x, int *y, atomic_t *z)\n"
        + body % ("x", "y")
        + "P1(int *x, int *y, atomic_t *z)\n"
        + body % ("y", "x")
        + "exists (0:r0=0 /\\ 1:r0=0)\n"
    )


@pytest.mark.parametrize(
    ("between", "tso"),
    [
        ("smp_mb();", "Never"),
        ("smp_wmb(); smp_rmb();", "Sometimes"),
        ("smp_mb__after_atomic();", "Sometimes"),  # barrier() on x86: no atomic, nothing drains
        ("atomic_inc(z); smp_mb__after_atomic();", "Never"),  # the locked increment drains
        ("r0 = cmpxchg_relaxed(z, 5, 6);", "Never"),  # a failed cmpxchg is still locked
        ("smp_store_mb(*z, 1);", "Never"),  # xchg on x86
    ],
)
def test_what_drains_the_store_buffer(between: str, tso: str) -> None:
    program = parse(sb_with(between))
    assert (litmus.run(program, "sc").verdict, litmus.run(program, "tso").verdict) == ("Never", tso)


# The memory models on their own.


def test_tso_buffers_forward_and_drain_in_order() -> None:
    tso = TSO()
    mem = tso.initial((0, 0), 2)
    (mem,) = tso.store(mem, 0, 0, 1, "once")
    (mem,) = tso.store(mem, 0, 1, 2, "once")
    (mem,) = tso.store(mem, 0, 0, 3, "once")
    assert tso.load(mem, 0, 0, "once")[0][0] == 3  # the newest buffered store wins
    assert tso.load(mem, 1, 0, "once")[0][0] == 0  # other CPUs see memory
    assert tso.fence(mem, 0, "mb") == [] and tso.rmw(mem, 0, 1, lambda v: 9, "full") == []
    assert tso.fence(mem, 0, "wmb") == [mem] and tso.fence(mem, 1, "mb") == [mem]
    assert tso.internal(mem) == [(0, 0)] and tso.settled(mem) is None
    mem = tso.flush(mem, 0, 0)
    assert tso.internal(mem) == [(0, 1)]
    mem = tso.flush(tso.flush(mem, 0, 1), 0, 0)
    assert tso.settled(mem) == (3, 2)


def test_sc_writes_at_once() -> None:
    sc = SC()
    mem = sc.initial((0,), 1)
    (mem,) = sc.store(mem, 0, 0, 5, "once")
    assert sc.rmw(mem, 0, 0, lambda v: None, "full") == [(5, mem)]  # a failed cmpxchg writes nothing
    assert sc.settled(mem) == (5,) and sc.internal(mem) == []


# Locks, loops, deadlocks.


ABBA = """C ABBA
{}
P0(spinlock_t *a, spinlock_t *b, int *x)
{
\tspin_lock(a);
\tspin_lock(b);
\tWRITE_ONCE(*x, 1);
\tspin_unlock(b);
\tspin_unlock(a);
}
P1(spinlock_t *a, spinlock_t *b, int *x)
{
\tspin_lock(b);
\tspin_lock(a);
\tWRITE_ONCE(*x, 2);
\tspin_unlock(a);
\tspin_unlock(b);
}
exists (x=1)
"""


def test_locks_taken_in_opposite_orders_deadlock() -> None:
    for memory in ("sc", "tso"):
        res = litmus.run(parse(ABBA), memory)
        assert res.deadlocks == 1 and res.verdict == "Sometimes"
        assert res.deadlock_witness == ["P0: spin_lock(a)", "P1: spin_lock(b)"]


def test_spin_wait_loop_and_register_loops() -> None:
    program = parse_file(HERE / "spin-wait.litmus")
    assert isinstance(program.threads[1].body[0], While)
    for memory in ("sc", "tso"):
        res = litmus.run(program, memory)
        # The spin loop is a cycle in the state graph; every execution ends with r0 = 1 + 3.
        assert (res.verdict, res.holds, res.deadlocks) == ("Always", True, 0)


def test_loop_bound_cuts_executions() -> None:
    program = parse_file(HERE / "spin-wait.litmus")
    loop = program.threads[1].body[0]
    assert isinstance(loop, While)
    bounded = type(loop)(loop.cond, loop.body, loop.head, bound=0, line=loop.line)
    t1 = program.threads[1]
    threads = (program.threads[0], type(t1)(1, (bounded, *t1.body[1:]), t1.registers, t1.line))
    res = litmus.run(type(program)(**{**vars(program), "threads": threads}), "sc")
    # Only executions where P1 never waits survive: P0 ran first.
    assert res.cut > 0 and res.positive == 1 and res.verdict == "Always"


# The parser.


def test_parse_structure() -> None:
    program = parse_file(HERE / "MP+lock.litmus")
    assert program.name == "MP+lock" and program.expected == "Never"
    assert program.locations == {"data": 0, "ready": 0, "lock": 0}
    p0 = program.threads[0].body
    assert isinstance(p0[0], SpinLock) and isinstance(p0[1], Store) and p0[1].line == 15
    assert isinstance(program.threads[1].body[1], Load)


def test_init_block_forms() -> None:
    text = "C init\n{\n\tint x = 2;\n\tatomic_t v = ATOMIC_INIT(3);\n\ty=0x10; 1:r0=7;\n\tint *p = &x;\n}\n"
    text += "P0(int *x, int *y, atomic_t *v, int **p)\n{\n\tint r0;\n\tr0 = READ_ONCE(*x);\n}\n"
    text += "P1(int *x)\n{\n\tint r0;\n}\nexists (0:r0=2 /\\ v=3 /\\ y=16 /\\ 1:r0=7 /\\ p=x)\n"
    program = parse(text)
    assert program.locations == {"x": 2, "v": 3, "y": 16, "p": "x"}
    assert program.reg_init == {(1, "r0"): 7}
    assert litmus.run(program, "sc").verdict == "Always"


def test_plain_accesses_and_loads_inside_expressions() -> None:
    text = """C plain
{}
P0(int *x, int *y, int *z)
{
\tint a = READ_ONCE(*x);
\t*z = a + 1;
\tif (*z == 2 && READ_ONCE(*y) == 0)
\t\tWRITE_ONCE(*y, *z);
}
P1(int *x)
{
\tWRITE_ONCE(*x, 1);
}
exists (y=2)
"""
    res = litmus.run(parse(text), "tso")
    assert res.verdict == "Sometimes" and res.outcomes == ["y=0", "y=2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "C bad\n{}\nP0(int *x)\n{\n\tint r0;\n\tr0 = READ_ONCE(*x)\n\tWRITE_ONCE(*x, 1);\n}\nexists (x=1)\n",
            "bad.litmus:7: C syntax error",
        ),
        (
            "C bad\n{}\nP0(int *x)\n{\n\tint r0;\n}\n\nexists (0:r1=1)\n",
            "bad.litmus:8: 0:r1: P0 has no register r1",
        ),
        ("C bad\n{}\nP0(int *x)\n{\n}\nexists\n(z=1)\n", "bad.litmus:7: z is no shared location of the test"),
        ("C bad\n{}\nP1(int *x)\n{\n}\nexists (x=1)\n", "bad.litmus:3: thread P1 where P0 was expected"),
        ("C bad\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\n", "bad.litmus:6: no final condition"),
        ("X86 bad\n{}\n", "bad.litmus:1: not a C litmus test (architecture X86)"),
        (
            "C bad\n{}\nP0(int *x)\n{\n\n\tr0 = READ_ONCE(*x);\n}\nexists (x=1)\n",
            "bad.litmus:6: r0 is not a register of P0",
        ),
        (
            "C bad\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x);\n}\nexists (x=1)\n",
            "bad.litmus:5: WRITE_ONCE takes 2 arguments",
        ),
        (
            "C bad\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n\nexists (x=1)\n",
            "bad.litmus:4: the thread's body '{' is never",
        ),
        (
            "C bad\n{ x = 1 + ; }\nP0(int *x)\n{\n}\nexists (x=1)\n",
            "bad.litmus:2: cannot read the initial value",
        ),
        ("C bad\n{}\nP0(int *x)\n{\n}\nexists (x=1 /\\ )\n", "bad.litmus:6: expected a register"),
    ],
)
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(LitmusError) as e:
        parse(text, "bad.litmus")
    assert str(e.value).startswith(message)
    assert not isinstance(e.value, UnsupportedPrimitive)


def test_unsupported_primitive_is_named() -> None:
    text = "C rcu\n{}\nP0(int *x)\n{\n\tint r0;\n\n\trcu_read_lock();\n\tr0 = READ_ONCE(*x);\n}\nexists (0:r0=1)\n"
    with pytest.raises(UnsupportedPrimitive) as e:
        parse(text, "rcu.litmus")
    assert str(e.value) == "rcu.litmus:7: unsupported primitive rcu_read_lock"
    assert e.value.primitive == "rcu_read_lock"


# The CLI.


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_cli_runs_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    assert main(["litmus", str(HERE), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "SB+mbs" in out and "Never: agrees" in out
    assert "Never: stronger than LKMM" in out  # MP: LKMM allows it, TSO does not
    assert "0 disagree" in out
    records = {r["name"]: r for r in json.loads(out_json.read_text())["tests"]}
    sb = records["SB"]
    assert sb["expected"] == "Sometimes" and sb["file"].endswith("SB.litmus")
    assert sb["models"]["sc"]["verdict"] == "Never" and sb["models"]["tso"]["verdict"] == "Sometimes"
    assert (
        sb["models"]["sc"]["judgement"] == litmus.STRONGER
        and sb["models"]["tso"]["judgement"] == litmus.AGREES
    )
    assert sb["states"] == 13 + 34 and sb["seconds"] >= 0


def test_cli_disagreement_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (HERE / "SB.litmus").read_text().replace("Result: Sometimes", "Result: Never")
    write(tmp_path, "SB.litmus", text)
    assert main(["litmus", str(tmp_path), "--model", "sc"]) == 0  # SC forbids it too
    assert main(["litmus", str(tmp_path), "--model", "tso"]) == 1
    assert "Sometimes: DISAGREES" in capsys.readouterr().out


def test_cli_expected_from_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "SB.litmus", (HERE / "SB.litmus").read_text())
    with (tmp_path / "MANIFEST.tsv").open("w", newline="") as f:
        csv.writer(f, delimiter="\t").writerows(
            [["path", "name", "expected"], ["sub/SB.litmus", "SB", "Never"]]
        )
    assert main(["litmus", str(tmp_path), "--model", "tso"]) == 1  # the manifest's Never wins over the file's
    assert "Sometimes: DISAGREES" in capsys.readouterr().out


def test_cli_unsupported_is_not_a_disagreement(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(
        tmp_path,
        "rcu.litmus",
        "C rcu\n(* Result: Never *)\n{}\nP0(int *x)\n{\n\trcu_read_lock();\n}\nexists (x=1)\n",
    )
    write(tmp_path, "SB.litmus", (HERE / "SB.litmus").read_text())
    assert main(["litmus", str(tmp_path), "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "unsupported: rcu_read_lock" in out and "1 unsupported" in out
    (rcu,) = [t for t in json.loads((tmp_path / "out.json").read_text())["tests"] if t["name"] == "rcu"]
    assert rcu["expected"] == "Never" and rcu["unsupported"] == "rcu_read_lock" and rcu["models"] == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["litmus", "{dir}/bad.litmus"], "{dir}/bad.litmus:5: WRITE_ONCE takes 2 arguments, not 1"),
        (["litmus", "{dir}/nosuch"], "{dir}/nosuch: no such file or directory"),
        (["litmus", "{dir}/empty"], "{dir}/empty: no .litmus files in this directory"),
        (["litmus", "{dir}/SB.litmus", "--model", "sc,arm"], "--model sc,arm: unknown memory model 'arm'"),
        (
            ["litmus", "{dir}/SB.litmus", "--json", "{dir}/no/out.json"],
            "--json {dir}/no/out.json: no directory",
        ),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "bad.litmus", "C bad\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x);\n}\nexists (x=1)\n")
    write(tmp_path, "SB.litmus", (HERE / "SB.litmus").read_text())
    (tmp_path / "empty").mkdir()
    assert main([a.format(dir=tmp_path) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert err == f"kinv: {message.format(dir=tmp_path)}\n" or (
        err.startswith(f"kinv: {message.format(dir=tmp_path)}") and err.count("\n") == 1
    )
    assert out == "" and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SB.litmus", "bad.litmus", "empty"]


# The kernel's own litmus tests.


@pytest.mark.skipif(not KERNEL.is_dir(), reason=f"{KERNEL} is absent")
def test_kernel_litmus_tests_forbidden_by_lkmm_are_forbidden_by_sc_and_tso() -> None:
    with (KERNEL / "MANIFEST.tsv").open(newline="") as f:
        manifest = {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}
    reports = litmus.run_paths([KERNEL], ("sc", "tso"))
    assert {r.name for r in reports} == set(manifest)
    never = [r for r in reports if r.expected == "Never"]
    assert never
    for r in never:
        if r.unsupported is not None:
            assert r.unsupported in manifest[r.name]["primitives"].split(","), r.name
            assert not r.results
            continue
        for memory in ("sc", "tso"):
            res = r.results[memory]
            assert res.complete and res.verdict == "Never" and r.judgement(memory) == litmus.AGREES, (
                r.name,
                memory,
            )
    assert not [r.name for r in reports for m in r.results if r.judgement(m) == litmus.DISAGREES]


def test_cli_verbose_shows_witness_and_deadlocks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write(tmp_path, "ABBA.litmus", ABBA)
    assert main(["litmus", str(tmp_path / "ABBA.litmus"), "--model", "tso", "-v"]) == 1  # a hang fails the run
    out = capsys.readouterr().out
    assert "ABBA under tso: 1 terminal state(s) where a thread waits forever (deadlock)" in out
    assert "(x drains to memory)" in out  # in the witness of x=1, in CPU 1's column
    deadlock = out[out.index("a deadlock:") :].splitlines()
    assert deadlock[3].split() == ["1", "spin_lock(a)"] and deadlock[4].split() == ["2", "spin_lock(b)"]
    assert deadlock[4].index("spin_lock(b)") > deadlock[3].index("spin_lock(a)")  # P1's column


def test_a_witness_is_drawn_as_per_cpu_columns_with_the_store_buffers() -> None:
    from model.sync.machine import LitmusConfig, LitmusModel

    program = parse_file(HERE / "SB.litmus")
    tso = litmus.run(program, "tso")
    lines = diagram(LitmusModel(LitmusConfig(program, "tso")), tso.witness_steps, width=24)
    assert lines[0].split() == ["CPU", "0", "CPU", "1", "store", "buffers"]
    cells = [(row[4:28].strip(), row[28:52].strip(), row[52:]) for row in lines[2:]]
    assert cells == [
        ("WRITE_ONCE(*x, 1)", "", "CPU0: x=1"),
        ("r0 = READ_ONCE(*y)  (r~", "", "CPU0: x=1"),
        ("", "WRITE_ONCE(*y, 1)", "CPU0: x=1; CPU1: y=1"),
        ("", "r0 = READ_ONCE(*x)  (r~", "CPU0: x=1; CPU1: y=1"),  # cut to its column
        ("(x drains to memory)", "", "CPU1: y=1"),
        ("", "(y drains to memory)", ""),
    ]
    # under SC nothing is ever in flight: no store-buffer column
    mp = parse_file(HERE / "MP.litmus")
    sc = litmus.run(mp, "sc")
    steps = sc.witness_steps or litmus.run(parse_file(HERE / "SB.litmus"), "sc").witness_steps
    drawn = diagram(LitmusModel(LitmusConfig(mp, "sc")), steps)
    assert "store buffers" not in drawn[0]
