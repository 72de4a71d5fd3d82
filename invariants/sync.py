"""Invariants of the lock and wake-up protocols (model "sync", model/sync/model.py).

Each looks at one run of one protocol under one memory model; the hang invariants at a run
that can take no step although some thread has not finished (checkers/litmus.py names the
same two kinds of hang).
"""

from __future__ import annotations

from invariants import invariant
from model.sync.machine import describe_hang
from model.sync.model import SyncState
from model.sync.program import eval_prop, prop_refs, show_prop

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
