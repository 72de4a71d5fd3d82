"""Invariants of the lock and wake-up protocols (model "sync", model/sync/model.py).

Each looks at one run of one protocol under one memory model; the hang invariants at a run
that can take no step although some thread has not finished (checkers/litmus.py names the
same two kinds of hang).
"""

from __future__ import annotations

from invariants import goal, invariant
from model.contract import Step
from model.sync.machine import describe_hang
from model.sync.model import CORRECT, SyncState
from model.sync.program import (
    Await,
    Const,
    Expr,
    Load,
    Reg,
    SpinIsLocked,
    SpinLock,
    eval_prop,
    prop_refs,
    show_prop,
)

MODEL = "sync"


def _run(state: SyncState) -> str:
    assert state.machine is not None
    return f"{state.machine.program.name} under {state.machine.memory.name}"


def _hang(state: SyncState, sleeping: bool) -> list[str]:
    """The hang of the wanted kind: every blocked thread asleep (lost wakeup) or not (deadlock)."""
    if (
        state.machine is None
        or state.litmus is None
        or not state.stuck()
        or state.machine.bugged(state.litmus)
    ):
        return []
    blocked = state.machine.blocked(state.litmus)
    if not blocked:
        return []
    asleep = all(kind in ("sleep", "futex") for kind in blocked.values())
    if asleep != sleeping:
        return []
    return [f"{_run(state)}: {describe_hang(blocked, sleeping)}"]


@invariant(
    "sync.no_lost_wakeup",
    model=MODEL,
    statement="No run ends with a task asleep in schedule() or futex_wait() and no task left to wake it.",
    source="include/linux/sched.h set_current_state(); kernel/sched/core.c try_to_wake_up()",
)
def no_lost_wakeup(state: SyncState) -> list[str]:
    return _hang(state, sleeping=True)


@invariant(
    "sync.no_deadlock",
    model=MODEL,
    statement="No run ends with tasks waiting on each other: a spin lock never released, an await on a "
    "location no one writes, or a sleeper whose only waker is itself stuck.",
    source="kernel/locking/spinlock.c; kernel/sched/wait.c __wake_up_common_lock()",
)
def no_deadlock(state: SyncState) -> list[str]:
    return _hang(state, sleeping=False)


@invariant(
    "sync.no_bug",
    model=MODEL,
    statement="No BUG_ON() fires (the protocols assert mutual exclusion with one).",
    source="include/asm-generic/bug.h BUG_ON()",
)
def no_bug(state: SyncState) -> list[str]:
    if state.machine is None or state.litmus is None:
        return []
    return [f"{_run(state)}: BUG_ON() fired in P{tid}" for tid in state.machine.bugged(state.litmus)]


@invariant(
    "sync.final_clause",
    model=MODEL,
    statement="Every run that ends with all tasks finished satisfies the protocol's forall or ~exists "
    "clause (a counter that mutual exclusion keeps exact, a queue left empty).",
    source="tools/memory-model/Documentation/litmus-tests.txt (the final clause)",
)
def final_clause(state: SyncState) -> list[str]:
    machine, litmus = state.machine, state.litmus
    if machine is None or litmus is None or not machine.is_final(litmus):
        return []
    final = machine.program.final
    if final.quantifier == "exists":
        return []  # a property of all runs together, not of one
    values = machine.final_values(litmus)
    if final.filter is not None and not eval_prop(final.filter, values):
        return []
    holds = eval_prop(final.prop, values)
    if holds == (final.quantifier == "forall"):
        return []
    shown = ", ".join(f"{r}={values.get(r, 0)}" for r in dict.fromkeys(prop_refs(final.prop)))
    return [f"{_run(state)}: {final.quantifier} {show_prop(final.prop)} fails with {shown}"]


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous. The
# small and large configs are the same, every protocol under SC and TSO.


def _waiting(state: SyncState, kind: str) -> set[int]:
    """The threads blocked at an Await of this kind: the value they read does not let them on."""
    machine, litmus = state.machine, state.litmus
    if machine is None or litmus is None:
        return set()
    return {
        tid
        for tid in range(len(litmus.threads))
        if isinstance(ins := machine.instruction(litmus, tid), Await)
        and ins.kind == kind
        and not machine.outcomes(litmus, tid)
    }


def _released(before: SyncState, after: SyncState, kind: str) -> bool:
    """A thread blocked at an Await of this kind in before may go on in after, on another
    thread's store (or its store buffer draining)."""
    if before.run != after.run or after.machine is None or after.litmus is None or before.litmus is None:
        return False
    for tid in _waiting(before, kind):
        same_pc = after.litmus.threads[tid][0] == before.litmus.threads[tid][0]
        if same_pc and after.machine.outcomes(after.litmus, tid):
            return True
    return False


@goal(
    "sync.schedule_woken",
    model=MODEL,
    statement="A task blocks in schedule() and a waker's store of TASK_RUNNING to its state lets it run.",
    transition=True,
)
def schedule_woken(before: SyncState, step: Step, after: SyncState) -> bool:
    return step.action in ("execute", "flush") and _released(before, after, "sleep")


@goal(
    "sync.futex_woken",
    model=MODEL,
    statement="A task sleeps in futex_wait() and futex_wake() wakes it.",
    transition=True,
)
def futex_woken(before: SyncState, step: Step, after: SyncState) -> bool:
    return step.action in ("execute", "flush") and _released(before, after, "futex")


@goal(
    "sync.spin_handed_over",
    model=MODEL,
    statement="A CPU spins on a lock word (a ticket lock's owner, a qspinlock's locked byte or MCS node) "
    "until another CPU's store lets it through.",
    transition=True,
)
def spin_handed_over(before: SyncState, step: Step, after: SyncState) -> bool:
    return step.action in ("execute", "flush") and _released(before, after, "spin")


def _address(state: SyncState, tid: int, addr: Expr) -> int | None:
    """The location index addr names in thread tid's registers, if it names one."""
    machine, litmus = state.machine, state.litmus
    if machine is None or litmus is None:
        return None
    where = None
    if isinstance(addr, Const):
        where = addr.value
    elif isinstance(addr, Reg):
        where = litmus.threads[tid][1][machine.compiled[tid].index[addr.name]]
    return machine.loc_index.get(where) if isinstance(where, str) else None


@goal(
    "sync.spin_lock_contended",
    model=MODEL,
    statement="A CPU waits in spin_lock() while another holds the lock.",
)
def spin_lock_contended(state: SyncState) -> bool:
    machine, litmus = state.machine, state.litmus
    if machine is None or litmus is None:
        return False
    for tid in range(len(litmus.threads)):
        ins = machine.instruction(litmus, tid)
        if not isinstance(ins, SpinLock) or (loc := _address(state, tid, ins.addr)) is None:
            continue
        if any(value != 0 for value, _ in machine.memory.load(litmus.mem, tid, loc, "once")):
            return True
    return False


@goal(
    "sync.tso_stale_read",
    model=MODEL,
    statement="Under TSO a CPU reads a location's old value from memory while another CPU's newer store "
    "to it waits in that CPU's store buffer.",
    transition=True,
)
def tso_stale_read(before: SyncState, step: Step, after: SyncState) -> bool:
    machine, litmus = before.machine, before.litmus
    if step.action != "execute" or machine is None or litmus is None or machine.memory.name != "tso":
        return False
    tid = step.args[0]
    ins = machine.instruction(litmus, tid)
    if not isinstance(ins, Load | Await | SpinIsLocked) or (loc := _address(before, tid, ins.addr)) is None:
        return False
    ((now, _),) = machine.memory.load(litmus.mem, tid, loc, "once")
    return any(
        pending.loc == loc and pending.value != now
        for cpu in range(len(litmus.threads))
        if cpu != tid
        for pending in machine.memory.buffered(litmus.mem, cpu)
    )


def _final_goal(protocol: str) -> None:
    def reached(state: SyncState) -> bool:
        machine, litmus = state.machine, state.litmus
        if machine is None or litmus is None or machine.program.name != protocol:
            return False
        return machine.is_final(litmus)

    goal(
        f"sync.final.{protocol}",
        model=MODEL,
        statement=f"A run of {protocol} ends with every task finished and every store drained to memory.",
    )(reached)


for _protocol in CORRECT:
    _final_goal(_protocol)
