"""Mutants of the lock and wake-up protocols (model "sync").

Two kinds. A protocol mutant swaps one correct protocol of the library for its broken twin
(model/sync/protocols/*+*.litmus) by replacing ``model.sync.model.protocol_file``; a
lowering mutant replaces the class that lowers the sleeping primitives
(``model.sync.sleep.SleepLowering``) with a subclass that gets one primitive wrong, so that every
protocol using it runs the bug. Each must be caught by the explorer over every protocol
under SC and TSO.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from checkers.mutants import mutant
from model.sync import model as sync_model
from model.sync import sleep
from model.sync.program import Instr, SpinUnlock, Store

MODEL = "model.sync.model"
SLEEP = "model.sync.sleep"

_protocol_file = sync_model.protocol_file


def _swap(correct: str, twin: str, name: str) -> Path:
    return _protocol_file(twin if name == correct else name)


def sleep_wake_no_mb(name: str) -> Path:
    """The sleeper sets its state with __set_current_state(): no smp_mb() before it tests the condition."""
    return _swap("sleep-wake", "sleep-wake+no-mb", name)


def waitqueue_active_no_mb(name: str) -> Path:
    """The waker calls waitqueue_active() with no smp_mb() after storing the condition."""
    return _swap("waitqueue-active", "waitqueue-active+no-mb", name)


def wait_woken_no_a(name: str) -> Path:
    """wait_woken() sets the task state with __set_current_state(): barrier A is gone."""
    return _swap("wait-woken+inline", "wait-woken+no-A", name)


def wait_woken_no_b(name: str) -> Path:
    """wait_woken() clears WQ_FLAG_WOKEN with a plain store: barrier B is gone."""
    return _swap("wait-woken+inline", "wait-woken+no-B", name)


def futex_wake_no_keyref_mb(name: str) -> Path:
    """futex_wake() on a private futex without get_futex_key_refs()'s smp_mb(), as before the 2014 fix."""
    return _swap("futex+inline", "futex+no-keyref-mb", name)


def lll_unlock_wakes_on_1(name: str) -> Path:
    """lll_unlock() calls futex_wake() only when the old value was 1, not 2: a contended unlock wakes no one."""
    return _swap("lll-mutex", "lll-mutex+wake-on-1", name)


def lll_lock_unlocked_test(name: str) -> Path:
    """lll_lock()'s fast path tests and sets the lock word with a plain read and write instead of cmpxchg()."""
    return _swap("lll-mutex", "lll-mutex+unlocked-test", name)


def completion_unlocked(name: str) -> Path:
    """A hand-rolled completion tests the flag before it sets the task state, outside any lock."""
    return _swap("completion", "completion+unlocked", name)


def ticket_racy_next(name: str) -> Path:
    """The ticket spinlock draws its ticket with a plain read and write of next instead of xadd."""
    return _swap("ticket-spinlock", "ticket-spinlock+racy-next", name)


def ticket_test_and_set(name: str) -> Path:
    """A test-and-set spinlock stands in for the ticket lock: waiters win it in any order."""
    return _swap("ticket-spinlock", "ticket-spinlock+test-and-set", name)


def qspinlock_tail_no_cmpxchg(name: str) -> Path:
    """The qspinlock queue head clears the tail with atomic_set(), erasing a CPU queued behind it."""
    return _swap("qspinlock", "qspinlock+tail-no-cmpxchg", name)


def qspinlock_pending_no_wait(name: str) -> Path:
    """The qspinlock pending CPU takes the lock without waiting for the owner to release it."""
    return _swap("qspinlock", "qspinlock+pending-no-wait", name)


class SetCurrentStateWithoutBarrier(sleep.SleepLowering):
    """set_current_state() is WRITE_ONCE(current->state, state) with no smp_mb() after it."""

    def set_current_state(self) -> list[Instr]:
        return [
            Store(ins.addr, ins.value, "once", ins.line) if isinstance(ins, Store) else ins
            for ins in super().set_current_state()
        ]


class TryToWakeUpWithoutBarrier(sleep.SleepLowering):
    """try_to_wake_up() reads p->state with no full barrier after the waker's condition store."""

    def ttwu(self, tid: int, mode: int, woke: str | None = None) -> list[Instr]:
        return super().ttwu(tid, mode, woke)[1:]  # drop the leading Fence


class WakeUpKeepsTheLock(sleep.SleepLowering):
    """__wake_up() returns without spin_unlock(&wq_head->lock)."""

    def wake_up(self) -> list[Instr]:
        return [ins for ins in super().wake_up() if not isinstance(ins, SpinUnlock)]


def _mutant(name: str, breaks: str, module: str, attr: str, replacement: Callable[..., Any]) -> None:
    mutant(
        f"sync.{name}",
        model="sync",
        breaks=f"sync.{breaks}",
        engine="explore",
        patches=((module, attr, replacement),),
    )


_mutant("sleep_wake_no_mb", "no_lost_wakeup", MODEL, "protocol_file", sleep_wake_no_mb)
_mutant("waitqueue_active_no_mb", "no_lost_wakeup", MODEL, "protocol_file", waitqueue_active_no_mb)
_mutant("wait_woken_no_A", "no_lost_wakeup", MODEL, "protocol_file", wait_woken_no_a)
_mutant("wait_woken_no_B", "no_lost_wakeup", MODEL, "protocol_file", wait_woken_no_b)
_mutant("futex_wake_no_keyref_mb", "no_lost_wakeup", MODEL, "protocol_file", futex_wake_no_keyref_mb)
_mutant("lll_unlock_wakes_on_1", "no_lost_wakeup", MODEL, "protocol_file", lll_unlock_wakes_on_1)
_mutant("completion_unlocked", "no_lost_wakeup", MODEL, "protocol_file", completion_unlocked)
_mutant("lll_lock_unlocked_test", "no_bug", MODEL, "protocol_file", lll_lock_unlocked_test)
_mutant("lll_lock_unlocked_test_count", "final_clause", MODEL, "protocol_file", lll_lock_unlocked_test)
_mutant("ticket_racy_next", "no_bug", MODEL, "protocol_file", ticket_racy_next)
_mutant("ticket_test_and_set", "no_bug", MODEL, "protocol_file", ticket_test_and_set)
_mutant("qspinlock_tail_no_cmpxchg", "no_deadlock", MODEL, "protocol_file", qspinlock_tail_no_cmpxchg)
_mutant("qspinlock_pending_no_wait", "no_bug", MODEL, "protocol_file", qspinlock_pending_no_wait)
_mutant("set_current_state_no_mb", "no_lost_wakeup", SLEEP, "SleepLowering", SetCurrentStateWithoutBarrier)
_mutant("ttwu_no_barrier", "no_lost_wakeup", SLEEP, "SleepLowering", TryToWakeUpWithoutBarrier)
_mutant("wake_up_keeps_lock", "no_deadlock", SLEEP, "SleepLowering", WakeUpKeepsTheLock)
