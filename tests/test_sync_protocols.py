"""Sleeping primitives (set_current_state, schedule, wake-ups, wait queues, futexes,
completions), await loops, BUG_ON, and the verdicts of the protocol library
(model/sync/protocols/): every correct protocol holds under SC and TSO, every broken twin is
caught under the memory model that breaks it, with its shortest counterexample."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkers import litmus
from checkers.cli import main
from model.sync.litmus import LitmusError, parse, parse_file
from model.sync.machine import LitmusConfig, LitmusModel
from model.sync.program import Assign, Await, Binary, Bug, Const, Fence, If, Load, Reg, Store, task_state

PROTOCOLS = Path(__file__).resolve().parent.parent / "model" / "sync" / "protocols"

OK = "ok"
LOST = "lost wakeup"
CLAUSE = "clause fails"
BUG = "BUG_ON"
DEADLOCK = "deadlock"

# name -> {memory: (verdict, length of the shortest counterexample)}
VERDICTS: dict[str, dict[str, tuple[str, int]]] = {
    "sleep-wake": {"sc": (OK, 0), "tso": (OK, 0)},
    "sleep-wake+no-mb": {"sc": (OK, 0), "tso": (LOST, 8)},
    "waitqueue-active": {"sc": (OK, 0), "tso": (OK, 0)},
    "waitqueue-active+no-mb": {"sc": (OK, 0), "tso": (LOST, 12)},
    "wait-woken": {"sc": (OK, 0), "tso": (OK, 0)},
    "wait-woken+inline": {"sc": (OK, 0), "tso": (OK, 0)},
    "wait-woken+no-A": {"sc": (OK, 0), "tso": (LOST, 27)},
    "wait-woken+no-B": {"sc": (OK, 0), "tso": (LOST, 34)},
    # C orders two stores: TSO keeps them in order, so only a weaker model can break it.
    "wait-woken+no-C": {"sc": (OK, 0), "tso": (OK, 0)},
    "futex": {"sc": (OK, 0), "tso": (OK, 0)},
    "futex+inline": {"sc": (OK, 0), "tso": (OK, 0)},
    "futex+no-keyref-mb": {"sc": (OK, 0), "tso": (LOST, 15)},
    "lll-mutex": {"sc": (OK, 0), "tso": (OK, 0)},
    "lll-mutex+wake-on-1": {"sc": (LOST, 18), "tso": (LOST, 23)},
    "lll-mutex+unlocked-test": {"sc": (BUG, 7), "tso": (BUG, 9)},
    "completion": {"sc": (OK, 0), "tso": (OK, 0)},
    "completion+unlocked": {"sc": (LOST, 7), "tso": (LOST, 9)},
    "ticket-spinlock": {"sc": (OK, 0), "tso": (OK, 0)},
    "ticket-spinlock+racy-next": {"sc": (BUG, 9), "tso": (BUG, 11)},
    "ticket-spinlock+test-and-set": {"sc": (BUG, 6), "tso": (BUG, 6)},
    "qspinlock": {"sc": (OK, 0), "tso": (OK, 0)},
    "qspinlock+tail-no-cmpxchg": {"sc": (DEADLOCK, 32), "tso": (DEADLOCK, 48)},
    "qspinlock+pending-no-wait": {"sc": (BUG, 7), "tso": (BUG, 8)},
}
# The twins whose full search is long (100k-300k states): their verdicts run in the deep suite.
LARGE = {("qspinlock+pending-no-wait", "tso"), ("ticket-spinlock+racy-next", "tso")}


def verdict(r: litmus.LitmusResult) -> tuple[str, int]:
    assert r.complete and not r.cut
    if r.bugs:
        return BUG, len(r.bug_steps)
    if r.lost_wakeups:
        return LOST, len(r.lost_wakeup_steps)
    if r.deadlocks:
        return DEADLOCK, len(r.deadlock_steps)
    if not r.holds:
        return CLAUSE, len(r.witness_steps)
    return OK, 0


def run_text(text: str, memory: str = "sc") -> litmus.LitmusResult:
    return litmus.run(parse(text), memory)


def test_the_library_is_what_the_table_lists() -> None:
    assert sorted(p.stem for p in PROTOCOLS.glob("*.litmus")) == sorted(VERDICTS)


@pytest.mark.parametrize(
    ("name", "memory"),
    [
        pytest.param(name, memory, marks=[pytest.mark.deep] if (name, memory) in LARGE else [])
        for name in sorted(VERDICTS)
        for memory in ("sc", "tso")
    ],
)
def test_protocol_verdict(name: str, memory: str) -> None:
    r = litmus.run(parse_file(PROTOCOLS / f"{name}.litmus"), memory)
    assert verdict(r) == VERDICTS[name][memory]
    assert r.correct == (VERDICTS[name][memory][0] == OK)
    assert r.states < 400_000  # small enough for ``kinv check`` to run them all in seconds


def test_the_spinlock_twins_fail_the_way_their_comments_say() -> None:
    # The test-and-set lock keeps mutual exclusion: what fires is the FIFO check on served.
    tas = litmus.run(parse_file(PROTOCOLS / "ticket-spinlock+test-and-set.litmus"), "sc")
    assert tas.bug_witness[-1] == "P1: %t2 = READ_ONCE(*served)  (read 0)"
    # qspinlock: P2 queues behind the head (P0) after P0 read a word whose tail was its own;
    # P0's atomic_set() erases P2 from the tail, and P2 links itself to P0's node too late.
    tail = litmus.run(parse_file(PROTOCOLS / "qspinlock+tail-no-cmpxchg.litmus"), "sc")
    trace = tail.deadlock_witness
    queued = trace.index("P2: %t2 = xchg_relaxed(&lock->tail, 12)  (read 4)")
    assert trace.index("P0: WRITE_ONCE(*lock, 1)") == queued + 1
    assert trace[-1] == "P2: WRITE_ONCE(*prev, n2_locked)"
    assert tail.hang == "deadlock: P2 spins on a location no one will change"


def test_every_broken_twin_is_caught_by_some_memory_model() -> None:
    for name, by_memory in VERDICTS.items():
        broken = "+" in name and name.split("+")[1] not in ("inline", "no-C")
        assert broken == any(v != OK for v, _ in by_memory.values()), name


@pytest.mark.parametrize("memory", ["sc", "tso"])
def test_a_broken_mutex_also_loses_an_increment(memory: str) -> None:
    r = litmus.run(parse_file(PROTOCOLS / "lll-mutex+unlocked-test.litmus"), memory)
    assert not r.holds and "cnt=1; f=0" in r.outcomes
    assert litmus.run(parse_file(PROTOCOLS / "lll-mutex.litmus"), memory).outcomes == ["cnt=2; f=0"]


def test_written_out_primitives_agree_with_the_builtins() -> None:
    for builtin, inline in (("wait-woken", "wait-woken+inline"), ("futex", "futex+inline")):
        for memory in ("sc", "tso"):
            a = litmus.run(parse_file(PROTOCOLS / f"{builtin}.litmus"), memory)
            b = litmus.run(parse_file(PROTOCOLS / f"{inline}.litmus"), memory)
            assert a.correct and b.correct


def test_a_lost_wakeup_names_the_sleeper_and_its_trace() -> None:
    r = litmus.run(parse_file(PROTOCOLS / "sleep-wake+no-mb.litmus"), "tso")
    assert r.hang.startswith("lost wakeup: P0 sleeps in schedule()")
    assert r.lost_wakeup_witness == [
        "P0: WRITE_ONCE(*P0.state, 2)",
        "P0: %t1 = READ_ONCE(*cond)  (read 0)",
        "P1: WRITE_ONCE(*cond, 1)",
        "CPU1: store buffer drains its oldest store, to cond",
        "P1: smp_mb()",
        "P1: %t2 = READ_ONCE(*P0.state)  (read 0)",
        "CPU0: store buffer drains its oldest store, to P0.state",
        "P0: smp_mb()",
    ]
    futex = litmus.run(parse_file(PROTOCOLS / "lll-mutex+wake-on-1.litmus"), "sc")
    assert "sleeps in futex_wait()" in futex.hang


# The lowering: each primitive is the accesses the kernel performs.


def lowered(body: str, params: str = "int *x") -> tuple:
    text = (
        f"C t\n{{}}\nP0({params})\n{{\n{body}\n}}\nP1(int *x)\n{{\n\tWRITE_ONCE(*x, 1);\n}}\nexists (x=1)\n"
    )
    return parse(text).threads[0].body


def test_set_current_state_is_a_store_then_a_full_barrier() -> None:
    state = Const(task_state(0))
    (ins,) = lowered("set_current_state(TASK_INTERRUPTIBLE);")
    assert ins == Store(state, Const(1), "mb", ins.line)
    (plain,) = lowered("__set_current_state(TASK_UNINTERRUPTIBLE);")
    assert plain == Store(state, Const(2), "once", plain.line)


def test_schedule_is_a_barrier_then_a_sleep_until_running() -> None:
    fence, sleep = lowered("schedule();")
    assert fence == Fence("mb", fence.line)
    assert sleep == Await(
        "%t1", Const(task_state(0)), Binary("==", Reg("%t1"), Const(0)), "once", "sleep", sleep.line
    )


def test_wake_up_process_reads_the_state_after_a_barrier() -> None:
    fence, load, test, result = lowered("int r; r = wake_up_process(P1);")
    state = Const(task_state(1))
    assert fence == Fence("mb", fence.line)
    assert load == Load("%t1", state, "once", load.line)
    assert isinstance(test, If) and test.then == (Store(state, Const(0), "once", test.line),)
    assert isinstance(result, Assign) and result.dst == "r"


def test_wake_up_process_needs_a_thread_of_the_test() -> None:
    with pytest.raises(LitmusError, match="must name a thread"):
        lowered("wake_up_process(P7);")


def test_futex_needs_a_shared_location() -> None:
    with pytest.raises(LitmusError, match="must be a parameter"):
        lowered("int r; r = 0; futex_wait(r, 0);")


def test_schedule_while_running_returns_at_once() -> None:
    r = run_text("C t\n{}\nP0(int *x)\n{\n\tschedule();\n\tWRITE_ONCE(*x, 1);\n}\nforall (x=1)\n")
    assert r.correct and r.positive == 1


def test_a_wake_up_of_a_running_task_does_nothing() -> None:
    text = "C t\n{}\nP0(int *x)\n{\n\tint r;\n\tr = wake_up_process(P1);\n}\nP1(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\nforall (0:r=0)\n"
    assert run_text(text).correct


# Await loops.

SPIN = """C spin
{}
P0(int *x, int *y)
{
	int r0;

	while (!READ_ONCE(*x))
		cpu_relax();
	r0 = READ_ONCE(*y);
}

P1(int *x, int *y)
{
	WRITE_ONCE(*y, 1);
	WRITE_ONCE(*WHERE, 1);
}

forall (0:r0=1)
"""


def test_a_spin_loop_is_an_await() -> None:
    model = LitmusModel(LitmusConfig(parse(SPIN.replace("WHERE", "x"))))
    assert isinstance(model.compiled[0].code[0], Await) and model.compiled[0].code[0].kind == "spin"


@pytest.mark.parametrize("memory", ["sc", "tso"])
def test_a_spin_loop_waits_for_its_condition(memory: str) -> None:
    r = run_text(SPIN.replace("WHERE", "x"), memory)
    assert r.correct
    assert r.states <= (8 if memory == "sc" else 20)  # no state per re-read


def test_a_spin_loop_that_nothing_ends_is_a_deadlock() -> None:
    r = run_text(SPIN.replace("WHERE", "y"))
    assert not r.correct and r.deadlocks == 1 and r.lost_wakeups == 0
    assert r.hang == "deadlock: P0 spins on a location no one will change"


def test_a_sleeper_whose_waker_is_stuck_is_a_deadlock_not_a_lost_wakeup() -> None:
    text = """C t
{}
P0(int *x)
{
	set_current_state(TASK_UNINTERRUPTIBLE);
	schedule();
}

P1(spinlock_t *l)
{
	spin_lock(l);
	spin_lock(l);
	wake_up_process(P0);
}

exists (l=1)
"""
    r = run_text(text)
    assert r.deadlocks == 1 and r.lost_wakeups == 0
    assert r.hang == ("deadlock: P0 sleeps in schedule(), P1 waits for a spin lock no one will release")


# BUG_ON.


def test_bug_on_is_an_assertion_failure_with_its_trace() -> None:
    text = """C t
{}
P0(int *x, int *in)
{
	int r;

	WRITE_ONCE(*in, 1);
	r = READ_ONCE(*x);
	BUG_ON(r == 1 && READ_ONCE(*in) == 1);
}

P1(int *x)
{
	WRITE_ONCE(*x, 1);
}

exists (x=1)
"""
    program = parse(text)
    assert any(isinstance(i, Bug) for i in program.threads[0].body)
    r = litmus.run(program, "sc")
    assert r.bugs == 1 and not r.correct
    assert r.bug_witness == [
        "P0: WRITE_ONCE(*in, 1)",
        "P1: WRITE_ONCE(*x, 1)",
        "P0: r = READ_ONCE(*x)  (read 1)",
        "P0: %t1 = READ_ONCE(*in)  (read 1)",
    ]
    quiet = litmus.run(parse(text.replace("BUG_ON(r == 1", "BUG_ON(r == 2")), "sc")
    assert quiet.bugs == 0 and quiet.correct


# The registered model: every correct protocol under SC and TSO, and the broken twins as mutants.


def test_kinv_check_sync_explores_every_correct_protocol_under_sc_and_tso() -> None:
    from checkers import plan
    from model.sync.model import CORRECT, SyncModel

    model = SyncModel.from_profile("small")
    assert model.runs == [(p, m) for p in CORRECT for m in ("sc", "tso")]
    job = plan.Job(
        "sync", "explore", tuple(sorted(n for n in plan.invariants.load_all() if n.startswith("sync.")))
    )
    result = plan.run_job(job, profile="ci", seed=0)
    assert result.status == "pass" and result.stats["complete"]
    expected = 1 + sum(
        litmus.run(parse_file(PROTOCOLS / f"{p}.litmus"), m).states for p in CORRECT for m in ("sc", "tso")
    )
    assert result.stats["states"] == expected


def test_a_twin_mutant_is_killed_by_its_litmus_counterexample() -> None:
    """A twin's counterexample is its litmus counterexample after the step that picks the run."""
    from checkers.mutants.run import run_mutants

    outcomes, _ = run_mutants(["sync.sleep_wake_no_mb", "sync.wait_woken_no_B"], seed=0)
    kills = {o.mutant.name: len(o.result.counterexample.steps) for o in outcomes if o.result.counterexample}
    assert kills["sync.sleep_wake_no_mb"] == 1 + VERDICTS["sleep-wake+no-mb"]["tso"][1]
    assert kills["sync.wait_woken_no_B"] == 1 + VERDICTS["wait-woken+no-B"]["tso"][1]


@pytest.mark.parametrize("name", ["sync.wait_woken_no_B", "sync.set_current_state_no_mb"])
def test_a_sync_mutant_counterexample_replays(name: str) -> None:
    from checkers import plan
    from checkers.mutants import load_all
    from checkers.replay import replay

    m = load_all()[name]
    with m.applied():
        result = plan.run_job(plan.Job("sync", "explore", (m.breaks,)), profile="ci", seed=0, mutant=m.name)
    assert result.counterexample is not None
    again = replay(result.counterexample)  # builds the model first, applies the mutant after
    assert again.reproduced and again.violations == result.counterexample.violations


def test_kinv_litmus_fails_on_a_lost_wakeup_only_under_the_model_that_breaks_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    twin = str(PROTOCOLS / "sleep-wake+no-mb.litmus")
    assert main(["litmus", twin, "--model", "sc"]) == 0
    assert main(["litmus", twin, "--model", "tso"]) == 1
    assert "sleep-wake+no-mb under tso: 1 terminal state(s) where a task sleeps forever" in capsys.readouterr().out
