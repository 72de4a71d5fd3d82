"""Stores to part of a word (qspinlock's locked byte, pending byte, tail half), the
smp_cond_load_*() and atomic_cond_read_*() waits, and the ticket and queued spinlocks built
on them (model/sync/protocols/)."""

from __future__ import annotations

import pytest

from checkers import axiomatic, litmus
from model.contract import Step
from model.sync.litmus import LitmusError, parse
from model.sync.machine import LitmusConfig, LitmusModel
from model.sync.memory import SC, TSO
from model.sync.program import QSPINLOCK_FIELDS, Await, Field, Rmw, Store, show_instr
from model.sync.trace import diagram

LOCKED = QSPINLOCK_FIELDS["locked"]
PENDING = QSPINLOCK_FIELDS["pending"]
TAIL = QSPINLOCK_FIELDS["tail"]


def test_the_layout_is_the_kernels_with_eight_pending_bits() -> None:
    assert QSPINLOCK_FIELDS["val"] is None
    assert (LOCKED.mask, PENDING.mask, TAIL.mask) == (0xFF, 0xFF00, 0xFFFF0000)
    assert QSPINLOCK_FIELDS["locked_pending"] == Field("locked_pending", 0, 16)


def test_a_byte_store_in_the_buffer_merges_over_the_word() -> None:
    tso = TSO()
    mem = tso.initial((0x40000,), 2)  # a CPU queued in the tail, nothing locked
    (mem,) = tso.store(mem, 0, 0, 1, "once", LOCKED.mask)
    assert tso.load(mem, 0, 0, "once")[0][0] == 0x40001  # forwarded: its own byte over memory
    assert tso.load(mem, 1, 0, "once")[0][0] == 0x40000  # the other CPU still sees memory
    # Another CPU's locked RMW of the tail lands first; the byte store then keeps it.
    ((old, mem),) = tso.rmw(mem, 1, 0, lambda v: (v & 0xFFFF) | 0x80000, "full")  # type: ignore[operator]
    assert old == 0x40000
    assert tso.settled(tso.flush(mem, 0, 0)) == (0x80001,)


def test_a_whole_store_after_a_byte_store_wins_the_forwarding() -> None:
    tso = TSO()
    mem = tso.initial((0x100,), 1)
    (mem,) = tso.store(mem, 0, 0, 1, "once", LOCKED.mask)
    (mem,) = tso.store(mem, 0, 0, 7, "once")
    (mem,) = tso.store(mem, 0, 0, 0x200, "once", PENDING.mask)
    assert tso.load(mem, 0, 0, "once")[0][0] == 0x207
    mem = tso.flush(tso.flush(tso.flush(mem, 0, 0), 0, 0), 0, 0)
    assert tso.settled(mem) == (0x207,)


def test_sc_writes_the_bits_at_once() -> None:
    sc = SC()
    (mem,) = sc.store(sc.initial((0x101,), 1), 0, 0, 0, "release", LOCKED.mask)
    assert sc.settled(mem) == (0x100,)


QSPIN = """C fields
{}
P0(struct qspinlock *lock)
{
\tint old;
\tint val;

\tWRITE_ONCE(lock->locked, _Q_LOCKED_VAL);
\told = xchg_relaxed(&lock->tail, 4);
\tval = smp_load_acquire(&lock->pending);
\tsmp_store_release(&lock->locked, 0);
}
P1(struct qspinlock *lock)
{
\tint val;

\tval = atomic_fetch_or_acquire(_Q_PENDING_VAL, &lock->val);
}
forall (lock=0x40100 /\\ 0:old=0)
"""


def test_fields_parse_to_stores_and_rmws_of_their_bits() -> None:
    p0 = parse(QSPIN).threads[0].body
    assert p0[0] == Store(p0[0].addr, p0[0].value, "once", 8, LOCKED)  # type: ignore[union-attr]
    assert isinstance(p0[1], Rmw) and p0[1].field == TAIL and p0[1].order == "relaxed"
    assert [show_instr(i) for i in p0 if isinstance(i, (Store, Rmw))] == [
        "WRITE_ONCE(lock->locked, 1)",
        "old = xchg_relaxed(&lock->tail, 4)",
        "smp_store_release(&lock->locked, 0)",
    ]


@pytest.mark.parametrize("memory", ["sc", "tso"])
def test_field_accesses_keep_the_other_bits(memory: str) -> None:
    # Whatever the interleaving, P0's byte stores and tail xchg leave P1's pending bit alone,
    # and the tail xchg returns the tail's old bits only.
    r = litmus.run(parse(QSPIN), memory)
    assert r.holds and r.verdict == "Always" and r.outcomes == ["lock=262400; 0:old=0"]


def test_the_axiomatic_engine_declines_mixed_size_accesses() -> None:
    with pytest.raises(axiomatic.Unsupported, match="mixed-size accesses: WRITE_ONCE\\(lock->locked, 1\\)"):
        axiomatic.axiomatic_verdict(parse(QSPIN), "tso")


def test_a_byte_store_in_flight_is_drawn_with_its_bits() -> None:
    model = LitmusModel(LitmusConfig(parse(QSPIN), "tso"))
    lines = diagram(model, [Step("execute", (0, 0)), Step("execute", (1, 0))])
    assert lines[-2].split()[1:] == ["WRITE_ONCE(lock->locked,", "1)", "CPU0:", "lock[7:0]=1"]
    assert "or_acquire(lock, 256)" in lines[-1] and lines[-1].endswith("CPU0: lock[7:0]=1")


COND = """C cond
{}
P0(int *x, int *y)
{
\tint r0;

\tr0 = smp_cond_load_acquire(x, VAL >= 2);
\tWRITE_ONCE(*y, r0);
}
P1(int *x)
{
\tWRITE_ONCE(*x, 1);
\tWRITE_ONCE(*x, 2);
}
forall (y=2)
"""


def test_cond_load_waits_until_its_condition_holds() -> None:
    (await_, _store) = parse(COND).threads[0].body
    assert isinstance(await_, Await) and await_.order == "acquire" and await_.kind == "spin"
    for memory in ("sc", "tso"):
        r = litmus.run(parse(COND), memory)
        assert r.holds and not r.deadlocks
    # Nobody writes 3: the waiter is left spinning, a deadlock with its trace.
    r = litmus.run(parse(COND.replace("VAL >= 2", "VAL == 3")), "sc")
    assert r.deadlocks and r.hang == "deadlock: P0 spins on a location no one will change"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("WRITE_ONCE(lock->nosuch, 1);", "bad.litmus:5: struct qspinlock has no field nosuch"),
        ("WRITE_ONCE(x->locked, 1);", "bad.litmus:5: fields are supported on struct qspinlock *"),
        ("spin_lock(&lock->locked);", "bad.litmus:5: spin_lock takes the whole word"),
        (
            "r0 = smp_cond_load_relaxed(x, READ_ONCE(*x));",
            "bad.litmus:5: the condition of smp_cond_load_relaxed",
        ),
    ],
)
def test_field_and_cond_load_errors_name_the_line(body: str, message: str) -> None:
    text = f"C bad\n{{}}\nP0(struct qspinlock *lock, int *x)\n{{\n\tint r0; {body}\n}}\nexists (x=1)\n"
    with pytest.raises(LitmusError) as e:
        parse(text, "bad.litmus")
    assert str(e.value).startswith(message)
