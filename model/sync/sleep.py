"""Sleeping and waking, lowered to the memory accesses the kernel performs.

herd7 has no notion of a task that sleeps. Here each sleeping primitive becomes the loads,
stores, fences and spin locks of its kernel implementation, so that the memory model (SC,
x86-TSO) decides every race, plus one blocking step: ``schedule()`` is an Await on the task's
own state, taken once a waker has stored TASK_RUNNING there.

Shared state the primitives add to the program (locations named so traces read naturally):

- ``P<n>.state``: task P<n>'s ``state`` (TASK_RUNNING is 0);
- a wait queue ``wait_queue_head_t *wq`` is the location ``wq``, holding its list as a bitmask
  of the entries on it (``list_empty(&wq->head)`` is one read of one word, as the kernel's
  ``head.next``), and ``wq.lock``, its spinlock;
- a wait-queue entry ``struct wait_queue_entry *wait`` is the location ``wait``, holding its
  ``flags`` (WQ_FLAG_WOKEN); its task and wake function come from the thread that initialises
  or enqueues it (``init_waitqueue_func_entry(wait, woken_wake_function)``);
- a futex word ``int *f`` has a hash bucket: ``f.hb.lock``, ``f.hb.waiters`` and, per waiting
  task, ``f.q.P<n>`` (1 while its futex_q is on the bucket's chain; each futex word hashes to
  a bucket of its own);
- a completion ``struct completion *c`` is the location ``c`` (``c->done``), ``c.wait`` (its
  swait queue, a bitmask of tasks) and ``c.lock``.

Which tasks may wait on a queue, futex or completion is read from the whole program before
lowering (the waker's loop over the list is unrolled over those tasks, in thread order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycparser import c_ast

from model.sync.program import (
    TASK_INTERRUPTIBLE,
    TASK_NORMAL,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WQ_FLAG_WOKEN,
    Assign,
    Await,
    AwaitKind,
    Binary,
    Const,
    Expr,
    Fence,
    If,
    Instr,
    Load,
    Reg,
    Rmw,
    SpinLock,
    SpinUnlock,
    Store,
    Unary,
    While,
    task_state,
)

if TYPE_CHECKING:
    from model.sync.litmus import _Lower

EWOULDBLOCK = 11  # futex_wait's -EWOULDBLOCK (EAGAIN) when *uaddr != val

WAKE_FUNCTIONS = ("default_wake_function", "autoremove_wake_function", "woken_wake_function")
_WAKE_MODES = {
    "wake_up": TASK_NORMAL,
    "wake_up_all": TASK_NORMAL,
    "wake_up_interruptible": TASK_INTERRUPTIBLE,
    "wake_up_interruptible_all": TASK_INTERRUPTIBLE,
}
# The calls that enqueue an entry: (name, position of the queue, position of the entry).
_ENQUEUE = {"add_wait_queue": (0, 1), "prepare_to_wait": (0, 1)}
_ENTRY_INIT = ("init_waitqueue_func_entry", "init_waitqueue_entry")
_NO_OPS = (*_ENTRY_INIT, "init_completion", "reinit_completion")
SLEEPING = frozenset(
    {
        "set_current_state",
        "__set_current_state",
        "schedule",
        "wake_up_process",
        "wake_up_state",
        "add_wait_queue",
        "remove_wait_queue",
        "prepare_to_wait",
        "finish_wait",
        "waitqueue_active",
        "wq_has_sleeper",
        "wait_woken",
        "futex_wait",
        "futex_wake",
        "complete",
        "wait_for_completion",
        *_WAKE_MODES,
        *_NO_OPS,
    }
)


@dataclass
class Sleepers:
    """Who may sleep where, read from every thread before any is lowered."""

    entries: dict[str, tuple[int, str]] = field(default_factory=dict)  # entry -> (task, wake function)
    queues: dict[str, list[str]] = field(default_factory=dict)  # wait queue -> its entries, in order
    futexes: dict[str, list[int]] = field(default_factory=dict)  # futex word -> tasks that wait on it
    completions: dict[str, list[int]] = field(default_factory=dict)  # completion -> waiting tasks
    nr_threads: int = 0

    @classmethod
    def collect(cls, funcs: list[c_ast.FuncDef], nr_threads: int) -> Sleepers:
        out = cls(nr_threads=nr_threads)
        for tid, func in enumerate(funcs):
            for call in _calls(func):
                name, args = call
                if name in _ENTRY_INIT and args:
                    func_name = args[1] if name == "init_waitqueue_func_entry" and len(args) > 1 else ""
                    out.entries[args[0]] = (tid, func_name or "default_wake_function")
        for tid, func in enumerate(funcs):
            for name, args in _calls(func):
                if name in _ENQUEUE and len(args) >= 2:
                    wq, entry = args[0], args[1]
                    out.entries.setdefault(entry, (tid, "default_wake_function"))
                    queue = out.queues.setdefault(wq, [])
                    if entry not in queue:
                        queue.append(entry)
                elif name == "futex_wait" and args:
                    _add(out.futexes.setdefault(args[0], []), tid)
                elif name == "wait_for_completion" and args:
                    _add(out.completions.setdefault(args[0], []), tid)
        return out


def _add(tasks: list[int], tid: int) -> None:
    if tid not in tasks:
        tasks.append(tid)


def _calls(func: c_ast.FuncDef) -> list[tuple[str, list[str]]]:
    """Every call in func, with the names its arguments spell (``wq``, ``&wait`` -> ``wait``)."""
    found: list[tuple[str, list[str]]] = []

    class Visitor(c_ast.NodeVisitor):
        def visit_FuncCall(self, node: c_ast.FuncCall) -> None:
            if isinstance(node.name, c_ast.ID):
                args = node.args.exprs if node.args is not None else []
                found.append((node.name.name, [_name(a) for a in args]))
            self.generic_visit(node)

    Visitor().visit(func)
    return found


def _name(node: Any) -> str:
    if isinstance(node, c_ast.UnaryOp) and node.op in ("&", "*"):
        return _name(node.expr)
    return node.name if isinstance(node, c_ast.ID) else ""


def lower_sleeping(
    lower: _Lower, name: str, args: list[Any], dst: str | None, node: c_ast.FuncCall, value_needed: bool
) -> list[Instr]:
    """The instructions of one call of a sleeping primitive."""
    return SleepLowering(lower, name, args, dst, node, value_needed).run()


class SleepLowering:
    """One call of a sleeping primitive, lowered; a mutant may replace the class."""

    def __init__(
        self, lower: _Lower, name: str, args: list[Any], dst: str | None, node: Any, value_needed: bool
    ) -> None:
        self.lower = lower
        self.name = name
        self.args = args
        self.dst = dst
        self.node = node
        self.value_needed = value_needed
        self.line = lower.line(node)
        self.me = lower.tid
        self.sleepers: Sleepers = lower.parser.sleepers
        self.pre: list[Instr] = []

    # Helpers.

    def fail(self, message: str) -> Any:
        return self.lower.fail(self.node, f"{self.name}: {message}")

    def arity(self, *counts: int) -> None:
        if len(self.args) not in counts:
            self.fail(f"takes {' or '.join(map(str, counts))} arguments, not {len(self.args)}")

    def value(self, i: int) -> Expr:
        pre, e = self.lower.expr(self.args[i])
        self.pre.extend(pre)
        return e

    def location(self, i: int) -> str:
        """The shared location argument i names (a parameter, ``*p``/``&p`` of one)."""
        name = _name(self.args[i])
        if name not in self.lower.params:
            self.fail(f"argument {i + 1} must be a parameter naming a shared location")
        return name

    def synth(self, name: str, initial: int = 0) -> Const:
        self.lower.parser.locations.setdefault(name, initial)
        return Const(name)

    def temp(self) -> str:
        return self.lower.temp()

    def result(self) -> str:
        """The register the call's value goes to (a temporary when the caller names none)."""
        return self.dst if self.dst is not None else self.temp()

    def nothing(self) -> None:
        if self.value_needed:
            self.fail("returns no value")

    def state(self, tid: int) -> Const:
        return self.synth(task_state(tid))

    def task(self, i: int) -> int:
        m = re.fullmatch(r"P(\d+)", _name(self.args[i]))
        if m is None or int(m.group(1)) >= self.sleepers.nr_threads:
            return self.fail(f"argument {i + 1} must name a thread of the test, such as P1")
        return int(m.group(1))

    # The primitives, each named after the kernel function it follows.

    def run(self) -> list[Instr]:
        name = self.name
        if name in _NO_OPS:  # they set fields (func, private, done) the model keeps statically
            self.nothing()
            return []
        method = getattr(self, {"__set_current_state": "set_state_plain"}.get(name, name), None)
        if name in _WAKE_MODES:
            method = self.wake_up
        assert method is not None, name
        body: list[Instr] = method()
        return [*self.pre, *body]

    def set_current_state(self) -> list[Instr]:
        # include/linux/sched.h: smp_store_mb(current->state, state), a store then a full barrier.
        self.arity(1)
        self.nothing()
        return [Store(self.state(self.me), self.value(0), "mb", self.line)]

    def set_state_plain(self) -> list[Instr]:
        # __set_current_state: WRITE_ONCE(current->state, state), no barrier.
        self.arity(1)
        self.nothing()
        return [Store(self.state(self.me), self.value(0), "once", self.line)]

    def schedule(self, kind: AwaitKind = "sleep") -> list[Instr]:
        self.arity(0)
        self.nothing()
        return self.sleep(kind)

    def sleep(self, kind: AwaitKind = "sleep") -> list[Instr]:
        # kernel/sched/core.c __schedule(): rq_lock() then smp_mb__after_spinlock() (a full
        # barrier: on x86 the lock's locked RMW), then a task whose state is not TASK_RUNNING
        # is dequeued and runs again only once try_to_wake_up() stores TASK_RUNNING.
        t = self.temp()
        ready = Binary("==", Reg(t), Const(TASK_RUNNING))
        return [Fence("mb", self.line), Await(t, self.state(self.me), ready, "once", kind, self.line)]

    def ttwu(self, tid: int, mode: int, woke: str | None = None) -> list[Instr]:
        # kernel/sched/core.c try_to_wake_up(): raw_spin_lock_irqsave(&p->pi_lock) then
        # smp_mb__after_spinlock(), which orders the waker's condition store before its read
        # of p->state; "if (!(p->state & state)) goto out"; ttwu_do_wakeup(): p->state =
        # TASK_RUNNING. (p->pi_lock only serialises wakers of one task; it is left out.)
        t = self.temp()
        matches = Binary("&", Reg(t), Const(mode))
        body: list[Instr] = [
            Fence("mb", self.line),
            Load(t, self.state(tid), "once", self.line),
            If(matches, (Store(self.state(tid), Const(TASK_RUNNING), "once", self.line),), (), self.line),
        ]
        if woke is not None:
            body.append(Assign(woke, Binary("!=", matches, Const(0)), self.line))
        return body

    def wake_up_process(self) -> list[Instr]:
        self.arity(1)
        return self.ttwu(self.task(0), TASK_NORMAL, self.result())

    def wake_up_state(self) -> list[Instr]:
        self.arity(2)
        mode = self.value(1)
        if not isinstance(mode, Const) or not isinstance(mode.value, int):
            return self.fail("the state must be a constant such as TASK_INTERRUPTIBLE")
        return self.ttwu(self.task(0), mode.value, self.result())

    # Wait queues (kernel/sched/wait.c).

    def queue(self, i: int) -> tuple[str, Const]:
        wq = self.location(i)
        return wq, self.synth(f"{wq}.lock")

    def bit(self, wq: str, entry: str) -> int:
        return 1 << self.sleepers.queues[wq].index(entry)

    def list_update(self, wq: str, op: str, bit: int, only_if: bool | None = None) -> list[Instr]:
        """Read the list word and write it back with the entry's bit set (|) or cleared (&~)."""
        t = self.temp()
        new = Binary("|", Reg(t), Const(bit)) if op == "|" else Binary("&", Reg(t), Const(~bit))
        store: Instr = Store(Const(wq), new, "once", self.line)
        if only_if is not None:  # list_empty(&wq_entry->entry) first
            linked = Binary("&", Reg(t), Const(bit))
            store = If(Unary("!", linked) if only_if is False else linked, (store,), (), self.line)
        return [Load(t, Const(wq), "once", self.line), store]

    def add_wait_queue(self) -> list[Instr]:
        # add_wait_queue(): spin_lock_irqsave(&wq_head->lock); __add_wait_queue(); unlock.
        return self.locked_list_update("|")

    def remove_wait_queue(self) -> list[Instr]:
        return self.locked_list_update("&")

    def locked_list_update(self, op: str) -> list[Instr]:
        """(add|remove)_wait_queue(wq_head, wq_entry): the list update under wq_head->lock."""
        self.arity(2)
        self.nothing()
        wq, lock = self.queue(0)
        entry = self.location(1)
        return [
            SpinLock(lock, self.line),
            *self.list_update(wq, op, self.bit(wq, entry)),
            SpinUnlock(lock, self.line),
        ]

    def prepare_to_wait(self) -> list[Instr]:
        # prepare_to_wait(): under wq_head->lock, enqueue the entry if it is not queued, then
        # set_current_state(state) (still under the lock).
        self.arity(3)
        self.nothing()
        wq, lock = self.queue(0)
        entry = self.location(1)
        state = self.value(2)
        return [
            SpinLock(lock, self.line),
            *self.list_update(wq, "|", self.bit(wq, entry), only_if=False),
            Store(self.state(self.me), state, "mb", self.line),
            SpinUnlock(lock, self.line),
        ]

    def finish_wait(self) -> list[Instr]:
        # finish_wait(): __set_current_state(TASK_RUNNING); if (!list_empty_careful(entry)),
        # dequeue it under the lock. The lockless look at the entry reads the list word.
        self.arity(2)
        self.nothing()
        wq, lock = self.queue(0)
        bit = self.bit(wq, self.location(1))
        t = self.temp()
        return [
            Store(self.state(self.me), Const(TASK_RUNNING), "once", self.line),
            Load(t, Const(wq), "once", self.line),
            If(
                Binary("&", Reg(t), Const(bit)),
                (SpinLock(lock, self.line), *self.list_update(wq, "&", bit), SpinUnlock(lock, self.line)),
                (),
                self.line,
            ),
        ]

    def waitqueue_active(self, barrier: bool = False) -> list[Instr]:
        # include/linux/wait.h: !list_empty(&wq_head->head), a lockless read (racy by design:
        # the caller needs a full barrier between its condition store and this read).
        self.arity(1)
        wq, _ = self.queue(0)
        t, out = self.temp(), self.result()
        body: list[Instr] = [Fence("mb", self.line)] if barrier else []
        return [
            *body,
            Load(t, Const(wq), "once", self.line),
            Assign(out, Binary("!=", Reg(t), Const(0)), self.line),
        ]

    def wq_has_sleeper(self) -> list[Instr]:
        # wq_has_sleeper(): smp_mb() then waitqueue_active().
        return self.waitqueue_active(barrier=True)

    def wake_up(self) -> list[Instr]:
        # __wake_up_common_lock(): under wq_head->lock, call each entry's wake function
        # (non-exclusive entries: every one).
        self.arity(1)
        self.nothing()
        wq, lock = self.queue(0)
        mode = _WAKE_MODES[self.name]
        t = self.temp()
        body: list[Instr] = [SpinLock(lock, self.line), Load(t, Const(wq), "once", self.line)]
        for i, entry in enumerate(self.sleepers.queues.get(wq, [])):
            owner, func = self.sleepers.entries[entry]
            call = self.wake_function(func, entry, owner, mode, wq, 1 << i, t)
            body.append(If(Binary("&", Reg(t), Const(1 << i)), tuple(call), (), self.line))
        return [*body, SpinUnlock(lock, self.line)]

    def wake_function(
        self, func: str, entry: str, owner: int, mode: int, wq: str, bit: int, t: str
    ) -> list[Instr]:
        if func == "woken_wake_function":
            # woken_wake_function(): smp_mb() (C); wq_entry->flags |= WQ_FLAG_WOKEN (a plain
            # read-modify-write); default_wake_function().
            f = self.temp()
            return [
                Fence("mb", self.line),
                Load(f, Const(entry), "plain", self.line),
                Store(Const(entry), Binary("|", Reg(f), Const(WQ_FLAG_WOKEN)), "plain", self.line),
                *self.ttwu(owner, mode),
            ]
        if func == "autoremove_wake_function":
            # autoremove_wake_function(): on a successful wake-up, list_del_init() the entry.
            woke = self.temp()
            unlink = (
                Assign(t, Binary("&", Reg(t), Const(~bit)), self.line),
                Store(Const(wq), Reg(t), "once", self.line),
            )
            return [*self.ttwu(owner, mode, woke), If(Reg(woke), unlink, (), self.line)]
        if func != "default_wake_function":
            self.fail(f"unknown wake function {func} (known: {', '.join(WAKE_FUNCTIONS)})")
        return self.ttwu(owner, mode)

    def wait_woken(self) -> list[Instr]:
        # kernel/sched/wait.c wait_woken(), with the seed's barriers A and B.
        self.arity(3)
        entry = self.location(0)
        state = self.value(1)
        timeout = self.value(2)
        f, g = self.temp(), self.temp()
        body: list[Instr] = [
            Store(self.state(self.me), state, "mb", self.line),  # set_current_state(mode): A
            Load(f, Const(entry), "plain", self.line),
            If(Unary("!", Binary("&", Reg(f), Const(WQ_FLAG_WOKEN))), tuple(self.sleep()), (), self.line),
            Store(self.state(self.me), Const(TASK_RUNNING), "once", self.line),
            Load(g, Const(entry), "plain", self.line),
            Store(Const(entry), Binary("&", Reg(g), Const(~WQ_FLAG_WOKEN)), "mb", self.line),  # B
        ]
        if self.dst is not None or self.value_needed:
            body.append(Assign(self.result(), timeout, self.line))
        return body

    # Futexes (kernel/futex.c of 4.x-5.x).

    def bucket(self, uaddr: str) -> tuple[Const, Const]:
        return self.synth(f"{uaddr}.hb.lock"), self.synth(f"{uaddr}.hb.waiters")

    def futex_q(self, uaddr: str, tid: int) -> Const:
        return self.synth(f"{uaddr}.q.P{tid}")

    def futex_wait(self) -> list[Instr]:
        self.arity(2)
        uaddr = self.location(0)
        val = self.value(1)
        lock, waiters = self.bucket(uaddr)
        q = self.futex_q(uaddr, self.me)
        out = self.result()
        u, queued, again = self.temp(), self.temp(), self.temp()
        ln = self.line
        dec = Rmw(None, waiters, "sub", (Const(1),), "relaxed", "none", ln)
        # unqueue_me(): still queued after the wake-up (woken by someone else): dequeue it.
        unqueue = If(
            Reg(again),
            (
                SpinLock(lock, ln),
                Load(again, q, "once", ln),
                If(Reg(again), (Store(q, Const(0), "once", ln), dec), (), ln),
                SpinUnlock(lock, ln),
            ),
            (),
            ln,
        )
        sleep = (
            Store(self.state(self.me), Const(TASK_INTERRUPTIBLE), "mb", ln),  # futex_wait_queue_me()
            Store(q, Const(1), "once", ln),  # queue_me(): plist_add() to the chain ...
            SpinUnlock(lock, ln),  # ... and spin_unlock(&hb->lock)
            Load(queued, q, "once", ln),  # if (likely(!plist_node_empty(&q->list)))
            If(Reg(queued), tuple(self.sleep("futex")), (), ln),
            Store(self.state(self.me), Const(TASK_RUNNING), "once", ln),
            Load(again, q, "once", ln),
            unqueue,
            Assign(out, Const(0), ln),
        )
        return [
            # queue_lock(): hb_waiters_inc() is atomic_inc() then smp_mb__after_atomic() (A in
            # futex.c's ordering comment), then spin_lock(&hb->lock). (get_futex_key()'s own
            # barrier comes before the atomic_inc, which on its own is a full barrier on x86.)
            Rmw(None, waiters, "add", (Const(1),), "relaxed", "none", ln),
            Fence("after_atomic", ln),
            SpinLock(lock, ln),
            Load(u, Const(uaddr), "once", ln),  # get_futex_value_locked()
            If(
                Binary("!=", Reg(u), val),
                (SpinUnlock(lock, ln), dec, Assign(out, Const(-EWOULDBLOCK), ln)),  # queue_unlock()
                sleep,
                ln,
            ),
        ]

    def futex_wake(self) -> list[Instr]:
        # futex_wake(): get_futex_key() implies smp_mb() (B; for private futexes only since
        # "futex: Ensure get_futex_key_refs() always implies a barrier", 2014); if
        # (!hb_waiters_pending(hb)) return; then under hb->lock each queued waiter is taken off
        # the chain (__unqueue_futex(), which decrements hb->waiters) and woken, up to nr_wake.
        # The wake-up runs under the lock, as wake_futex() did before wake_q.
        self.arity(2)
        uaddr = self.location(0)
        nr_wake = self.value(1)
        lock, waiters = self.bucket(uaddr)
        out = self.result()
        w = self.temp()
        ln = self.line
        chain: list[Instr] = [SpinLock(lock, ln)]
        for tid in self.sleepers.futexes.get(uaddr, []):
            q = self.futex_q(uaddr, tid)
            t = self.temp()
            wake = (
                Store(q, Const(0), "once", ln),
                Rmw(None, waiters, "sub", (Const(1),), "relaxed", "none", ln),
                *self.ttwu(tid, TASK_NORMAL),
                Assign(out, Binary("+", Reg(out), Const(1)), ln),
            )
            look = (Load(t, q, "once", ln), If(Reg(t), wake, (), ln))
            chain.append(If(Binary("<", Reg(out), nr_wake), look, (), ln))
        chain.append(SpinUnlock(lock, ln))
        return [
            Assign(out, Const(0), ln),
            Fence("mb", ln),
            Load(w, waiters, "once", ln),
            If(Reg(w), tuple(chain), (), ln),
        ]

    # Completions (kernel/sched/completion.c, 5.x: a swait queue under x->wait.lock).

    def completion(self) -> tuple[str, Const, Const]:
        x = self.location(0)
        return x, self.synth(f"{x}.lock"), self.synth(f"{x}.wait")

    def complete(self) -> list[Instr]:
        # complete(): under x->wait.lock, x->done++ and swake_up_locked(): wake the first
        # waiter on the list and list_del_init() it.
        self.arity(1)
        self.nothing()
        x, lock, wait = self.completion()
        d, w = self.temp(), self.temp()
        ln = self.line
        body: list[Instr] = [
            SpinLock(lock, ln),
            Load(d, Const(x), "once", ln),
            Store(Const(x), Binary("+", Reg(d), Const(1)), "once", ln),
            Load(w, wait, "once", ln),
        ]
        done: Instr | None = None  # wake only the first: nest each later waiter in the else
        for i, tid in reversed(list(enumerate(self.sleepers.completions.get(x, [])))):
            bit = 1 << i
            first = (*self.ttwu(tid, TASK_NORMAL), Store(wait, Binary("&", Reg(w), Const(~bit)), "once", ln))
            done = If(Binary("&", Reg(w), Const(bit)), first, (done,) if done else (), ln)
        if done is not None:
            body.append(done)
        return [*body, SpinUnlock(lock, ln)]

    def wait_for_completion(self) -> list[Instr]:
        # do_wait_for_common(): under x->wait.lock, while !x->done: __prepare_to_swait() (add
        # to the tail if not queued), __set_current_state(TASK_UNINTERRUPTIBLE), unlock,
        # schedule(), lock; then __finish_swait() and x->done--.
        self.arity(1)
        self.nothing()
        x, lock, wait = self.completion()
        bit = 1 << self.sleepers.completions[x].index(self.me)
        d, w = self.temp(), self.temp()
        ln = self.line
        loop = While(
            Unary("!", Reg(d)),
            (
                Load(w, wait, "once", ln),
                If(
                    Unary("!", Binary("&", Reg(w), Const(bit))),
                    (Store(wait, Binary("|", Reg(w), Const(bit)), "once", ln),),
                    (),
                    ln,
                ),
                Store(self.state(self.me), Const(TASK_UNINTERRUPTIBLE), "once", ln),
                SpinUnlock(lock, ln),
                *self.sleep(),
                SpinLock(lock, ln),
                Load(d, Const(x), "once", ln),
            ),
            line=ln,
        )
        finish = (
            Store(self.state(self.me), Const(TASK_RUNNING), "once", ln),
            Load(w, wait, "once", ln),
            If(
                Binary("&", Reg(w), Const(bit)),
                (Store(wait, Binary("&", Reg(w), Const(~bit)), "once", ln),),
                (),
                ln,
            ),
        )
        return [
            SpinLock(lock, ln),
            Load(d, Const(x), "once", ln),
            If(Unary("!", Reg(d)), (loop, *finish), (), ln),
            Store(Const(x), Binary("-", Reg(d), Const(1)), "once", ln),
            SpinUnlock(lock, ln),
        ]
