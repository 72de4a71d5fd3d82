"""Concurrent programs in the shape of the kernel's litmus tests (tools/memory-model/litmus-tests).

A Program is a few threads (P0..Pn) sharing named locations, each thread a tree of
instructions in the kernel's own vocabulary (READ_ONCE, smp_store_release, xchg_acquire,
atomic_inc_return, spin_lock...), and a final clause over the registers and locations left
when every thread has finished. The IR says *what* each thread does; what a load returns and
when a store becomes visible is the memory model's business (model/sync/memory.py).

Values are ints or the address of a location (a pointer such as ``int *r0 = y``), spelled by
the location's name, as in herd's final clauses (``1:r0=x``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Value = int | str  # an int, or the address of the shared location of that name

# Orderings, with the kernel's names. "once" is READ_ONCE/WRITE_ONCE, "plain" an unmarked C
# access, "mb" smp_store_mb; read-modify-writes use relaxed/acquire/release/full (the unsuffixed
# value-returning atomics are fully ordered, Documentation/atomic_t.txt).
Order = Literal["plain", "once", "acquire", "release", "mb", "relaxed", "full"]
FenceKind = Literal["mb", "rmb", "wmb", "before_atomic", "after_atomic", "after_spinlock"]
RmwOp = Literal["xchg", "cmpxchg", "add", "sub", "and", "or", "xor", "add_unless"]
RmwReturns = Literal["old", "new", "written", "none"]
BINARY_OPS = (
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
)
UNARY_OPS = ("-", "!", "~")


# Expressions over a thread's registers: no memory access inside (loads are instructions).


@dataclass(frozen=True)
class Const:
    value: Value


@dataclass(frozen=True)
class Reg:
    name: str


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr


Expr = Const | Reg | Binary | Unary


@dataclass(frozen=True)
class Field:
    """A sub-word of a location, for the kernel's unions over one word: qspinlock's ``locked``
    byte, ``pending`` byte, ``locked_pending`` and ``tail`` halves of ``val``. A store to a field
    writes its bits only (a byte or halfword MOV); an RMW of a field is atomic on the word."""

    name: str
    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift


# struct qspinlock (include/asm-generic/qspinlock_types.h) with _Q_PENDING_BITS == 8, the
# layout of every configuration with fewer than 16K CPUs; ``val`` is the whole word.
QSPINLOCK_FIELDS: dict[str, Field | None] = {
    "val": None,
    "locked": Field("locked", 0, 8),
    "pending": Field("pending", 8, 8),
    "locked_pending": Field("locked_pending", 0, 16),
    "tail": Field("tail", 16, 16),
}


# Instructions. ``addr`` is an expression whose value is a location (a Const naming a shared
# location for ``*x`` with x a parameter, a Reg for a pointer held in a register).


@dataclass(frozen=True)
class Load:
    """dst = READ_ONCE(*addr) / smp_load_acquire(addr) / atomic_read(addr) / a plain read."""

    dst: str
    addr: Expr
    order: Order = "once"
    line: int = 0


@dataclass(frozen=True)
class Store:
    """WRITE_ONCE(*addr, value) / smp_store_release / smp_store_mb / atomic_set / a plain write."""

    addr: Expr
    value: Expr
    order: Order = "once"
    line: int = 0
    field: Field | None = None  # a store to these bits of *addr only


@dataclass(frozen=True)
class Fence:
    """smp_mb(), smp_rmb(), smp_wmb(), smp_mb__{before,after}_atomic(), smp_mb__after_spinlock()."""

    kind: FenceKind
    line: int = 0


@dataclass(frozen=True)
class Rmw:
    """An atomic read-modify-write of *addr: xchg, cmpxchg and the atomic_* arithmetic.

    ``operands`` are xchg's new value, cmpxchg's (old, new), the arithmetic's operand, or
    add_unless's (a, u). ``returns`` says what dst receives: the old value (xchg, cmpxchg,
    atomic_fetch_*), the new one (atomic_*_return), whether it wrote (add_unless), or nothing.
    """

    dst: str | None
    addr: Expr
    op: RmwOp
    operands: tuple[Expr, ...]
    order: Order = "full"
    returns: RmwReturns = "old"
    line: int = 0
    field: Field | None = None  # the RMW reads, updates and returns these bits of *addr only


@dataclass(frozen=True)
class SpinLock:
    """spin_lock(addr): waits until the lock is free, then takes it (an acquire RMW)."""

    addr: Expr
    line: int = 0


@dataclass(frozen=True)
class SpinUnlock:
    """spin_unlock(addr): a release store of 0 to the lock word."""

    addr: Expr
    line: int = 0


@dataclass(frozen=True)
class SpinTrylock:
    """dst = spin_trylock(addr): takes the lock if free; 1 if it did, else 0."""

    dst: str | None
    addr: Expr
    line: int = 0


@dataclass(frozen=True)
class SpinIsLocked:
    """dst = spin_is_locked(addr): a plain read of the lock word."""

    dst: str
    addr: Expr
    line: int = 0


@dataclass(frozen=True)
class Assign:
    """A register computation: no memory access."""

    dst: str
    value: Expr
    line: int = 0


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple[Instr, ...]
    orelse: tuple[Instr, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class While:
    """while (cond) body. ``head`` runs before each test of cond (it holds the loads cond
    needs). With a ``bound``, an execution that would start iteration bound+1 is cut off, as
    herd's loop unrolling does; without one, a loop that spins on memory is a cycle in the
    state graph, which exhaustive search handles."""

    cond: Expr
    body: tuple[Instr, ...]
    head: tuple[Instr, ...] = ()
    bound: int | None = None
    line: int = 0


# Sleeping and waiting, beyond what herd expresses. The sleeping primitives (set_current_state,
# schedule, wake_up_process, wait queues, futexes) are lowered by the parser into the loads,
# stores, fences and locks the kernel performs, plus Await where a task blocks.

AwaitKind = Literal["spin", "sleep", "futex"]


@dataclass(frozen=True)
class Await:
    """dst = load(*addr), taken only once ``cond`` (over the registers, dst holding the value
    read) holds: until then the thread is blocked, not spinning.

    "sleep" is schedule() waiting for a wake-up to set the task state to TASK_RUNNING, "futex"
    the same inside futex_wait(), "spin" a busy-wait loop (``while (!READ_ONCE(*x))
    cpu_relax();``) whose only effect is to re-read memory. A terminal state with a blocked
    thread is a hang: the engine names it a lost wakeup or a deadlock by these kinds."""

    dst: str
    addr: Expr
    cond: Expr
    order: Order = "once"
    kind: AwaitKind = "spin"
    line: int = 0


@dataclass(frozen=True)
class Bug:
    """BUG_ON(cond): the execution stops with an assertion failure when cond holds."""

    cond: Expr
    line: int = 0


Instr = (
    (Load | Store | Fence | Rmw | SpinLock | SpinUnlock | SpinTrylock | SpinIsLocked | Assign | If | While)
    | Await
    | Bug
)
SHARED = (Load, Store, Fence, Rmw, SpinLock, SpinUnlock, SpinTrylock, SpinIsLocked, Await)

# Task states (include/linux/sched.h) and wait-queue entry flags (include/linux/wait.h).
TASK_RUNNING = 0
TASK_INTERRUPTIBLE = 1
TASK_UNINTERRUPTIBLE = 2
TASK_NORMAL = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE
WQ_FLAG_EXCLUSIVE = 0x01
WQ_FLAG_WOKEN = 0x02
KERNEL_CONSTANTS: dict[str, int] = {
    "TASK_RUNNING": TASK_RUNNING,
    "TASK_INTERRUPTIBLE": TASK_INTERRUPTIBLE,
    "TASK_UNINTERRUPTIBLE": TASK_UNINTERRUPTIBLE,
    "TASK_NORMAL": TASK_NORMAL,
    "WQ_FLAG_EXCLUSIVE": WQ_FLAG_EXCLUSIVE,
    "WQ_FLAG_WOKEN": WQ_FLAG_WOKEN,
    "MAX_SCHEDULE_TIMEOUT": 2**63 - 1,  # LONG_MAX
    # include/asm-generic/qspinlock_types.h, _Q_PENDING_BITS == 8
    "_Q_LOCKED_VAL": 1,
    "_Q_PENDING_VAL": 1 << 8,
    "_Q_LOCKED_MASK": 0xFF,
    "_Q_PENDING_MASK": 0xFF00,
    "_Q_LOCKED_PENDING_MASK": 0xFFFF,
    "_Q_TAIL_MASK": 0xFFFF0000,
    "_Q_TAIL_OFFSET": 16,
    "_Q_TAIL_CPU_OFFSET": 18,
}


def task_state(tid: int) -> str:
    """The location of task P<tid>'s ``state`` (read by wakers, so it is shared memory)."""
    return f"P{tid}.state"


# The final clause: a proposition over ``N:reg`` and shared locations.


@dataclass(frozen=True)
class RegRef:
    tid: int
    reg: str

    def __str__(self) -> str:
        return f"{self.tid}:{self.reg}"


@dataclass(frozen=True)
class LocRef:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Atom:
    ref: RegRef | LocRef
    value: Value
    negated: bool = False  # ``!=``


@dataclass(frozen=True)
class Not:
    prop: Prop


@dataclass(frozen=True)
class And:
    left: Prop
    right: Prop


@dataclass(frozen=True)
class Or:
    left: Prop
    right: Prop


@dataclass(frozen=True)
class Truth:
    value: bool


Prop = Atom | Not | And | Or | Truth
Quantifier = Literal["exists", "~exists", "forall"]


@dataclass(frozen=True)
class Final:
    """``exists P``, ``~exists P`` or ``forall P``, with herd's ``filter`` and ``locations``."""

    quantifier: Quantifier
    prop: Prop
    filter: Prop | None = None
    locations: tuple[RegRef | LocRef, ...] = ()


@dataclass(frozen=True)
class Thread:
    tid: int
    body: tuple[Instr, ...]
    registers: tuple[str, ...]  # declared registers, in order (temporaries included)
    line: int = 0


@dataclass(frozen=True)
class Program:
    """A litmus test: shared locations with initial values, register inits, threads, final clause."""

    name: str
    locations: dict[str, Value]  # every shared location, with its initial value
    threads: tuple[Thread, ...]
    final: Final
    reg_init: dict[tuple[int, str], Value] = field(default_factory=dict)
    expected: str | None = None  # the header comment's "Result:" (herd's observation)
    file: str = ""

    def __post_init__(self) -> None:
        if not self.threads:
            raise ValueError(f"program {self.name} has no threads")


def eval_prop(prop: Prop, lookup: dict[RegRef | LocRef, Value]) -> bool:
    """The truth of a final-clause proposition in a final state (a reference that no thread
    ever set reads as 0, herd's default)."""
    if isinstance(prop, Atom):
        equal = lookup.get(prop.ref, 0) == prop.value
        return equal != prop.negated
    if isinstance(prop, Not):
        return not eval_prop(prop.prop, lookup)
    if isinstance(prop, And):
        return eval_prop(prop.left, lookup) and eval_prop(prop.right, lookup)
    if isinstance(prop, Or):
        return eval_prop(prop.left, lookup) or eval_prop(prop.right, lookup)
    return prop.value


def prop_refs(prop: Prop | None) -> list[RegRef | LocRef]:
    """The registers and locations a proposition mentions, in order of appearance."""
    if prop is None or isinstance(prop, Truth):
        return []
    if isinstance(prop, Atom):
        return [prop.ref]
    if isinstance(prop, Not):
        return prop_refs(prop.prop)
    return prop_refs(prop.left) + prop_refs(prop.right)


def show_prop(prop: Prop) -> str:
    """herd's spelling of a proposition."""
    if isinstance(prop, Atom):
        return f"{prop.ref}{'!=' if prop.negated else '='}{prop.value}"
    if isinstance(prop, Not):
        return f"~({show_prop(prop.prop)})"
    if isinstance(prop, And):
        return f"({show_prop(prop.left)} /\\ {show_prop(prop.right)})"
    if isinstance(prop, Or):
        return f"({show_prop(prop.left)} \\/ {show_prop(prop.right)})"
    return "true" if prop.value else "false"


def show_expr(expr: Expr) -> str:
    if isinstance(expr, Const):
        return str(expr.value)
    if isinstance(expr, Reg):
        return expr.name
    if isinstance(expr, Unary):
        return f"{expr.op}{show_expr(expr.operand)}"
    return f"({show_expr(expr.left)} {expr.op} {show_expr(expr.right)})"


_LOADS = {"once": "READ_ONCE(*{a})", "acquire": "smp_load_acquire({a})", "plain": "*{a}"}
_STORES = {
    "once": "WRITE_ONCE(*{a}, {v})",
    "release": "smp_store_release({a}, {v})",
    "mb": "smp_store_mb(*{a}, {v})",
    "plain": "*{a} = {v}",
}
_FIELD_STORES = {
    "once": "WRITE_ONCE({a}, {v})",
    "release": "smp_store_release(&{a}, {v})",
    "mb": "smp_store_mb({a}, {v})",
    "plain": "{a} = {v}",
}


def show_instr(ins: Instr) -> str:
    """A shared-memory instruction in the kernel's spelling (for traces)."""
    if isinstance(ins, Load):
        return f"{ins.dst} = " + _LOADS.get(ins.order, "load(*{a})").format(a=show_expr(ins.addr))
    if isinstance(ins, Store):
        if ins.field is not None:  # WRITE_ONCE(lock->locked, 1), smp_store_release(&lock->locked, 0)
            return _FIELD_STORES.get(ins.order, "store({a}, {v})").format(
                a=f"{show_expr(ins.addr)}->{ins.field.name}", v=show_expr(ins.value)
            )
        return _STORES.get(ins.order, "store(*{a}, {v})").format(
            a=show_expr(ins.addr), v=show_expr(ins.value)
        )
    if isinstance(ins, Fence):
        return "smp_" + {"mb": "mb", "rmb": "rmb", "wmb": "wmb"}.get(ins.kind, f"mb__{ins.kind}") + "()"
    if isinstance(ins, Rmw):
        addr = show_expr(ins.addr) if ins.field is None else f"&{show_expr(ins.addr)}->{ins.field.name}"
        args = ", ".join([addr, *(show_expr(e) for e in ins.operands)])
        call = f"{ins.op}_{ins.order}({args})"
        return f"{ins.dst} = {call}" if ins.dst else call
    if isinstance(ins, (SpinLock, SpinUnlock)):
        return f"{'spin_lock' if isinstance(ins, SpinLock) else 'spin_unlock'}({show_expr(ins.addr)})"
    if isinstance(ins, SpinTrylock):
        call = f"spin_trylock({show_expr(ins.addr)})"
        return f"{ins.dst} = {call}" if ins.dst else call
    if isinstance(ins, SpinIsLocked):
        return f"{ins.dst} = spin_is_locked({show_expr(ins.addr)})"
    if isinstance(ins, Assign):
        return f"{ins.dst} = {show_expr(ins.value)}"
    if isinstance(ins, Await):
        what = {"sleep": "schedule()", "futex": "schedule() in futex_wait"}.get(ins.kind, "spin")
        load = _LOADS.get(ins.order, "load(*{a})").format(a=show_expr(ins.addr))
        return f"{what}: {ins.dst} = {load} until {show_expr(ins.cond)}"
    if isinstance(ins, Bug):
        return f"BUG_ON({show_expr(ins.cond)})"
    return type(ins).__name__
