"""A litmus program running on a machine with a chosen memory model, as a model (model/contract.py).

Each thread runs on its own CPU. Actions are ``execute(tid, choice)``: thread tid performs its
next shared-memory instruction, taking the memory model's outcome number ``choice`` (SC and
TSO have one outcome, so choice is 0); and ``flush(cpu, loc)``: the memory system moves a
store of cpu to loc along on its own (TSO: the oldest buffered store drains to memory).

Register-only work (assignments, branches, loop tests) never is a step of its own: after every
step a thread runs on to its next shared instruction, so interleavings differ only where
threads touch memory. spin_lock waits by being disabled while the lock is held (await, not a
busy-wait loop), so a thread that can never take the lock leaves a terminal state behind it:
a deadlock, which the engine reports. So does an Await: schedule() (model/sync/sleep.py) and
a spin loop that only re-reads one location (``while (!READ_ONCE(*x)) cpu_relax();``) block
until the value read lets them through, and the engine tells a lost wakeup (only sleepers
left) from a deadlock by what the blocked threads wait on. A BUG_ON that fires stops the
execution: no thread steps again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from model.contract import Model, action
from model.sync.memory import MEMORY_MODELS, Mem, MemoryModel, Update
from model.sync.program import (
    And,
    Assign,
    Atom,
    Await,
    Binary,
    Bug,
    Const,
    Expr,
    Fence,
    Field,
    Final,
    If,
    Instr,
    Load,
    LocRef,
    Program,
    Reg,
    RegRef,
    Rmw,
    SpinIsLocked,
    SpinLock,
    SpinTrylock,
    SpinUnlock,
    Store,
    Thread,
    Unary,
    Value,
    While,
)

CUT = -1  # the pc of a thread whose loop ran past its bound: the execution is dropped
BUG = -2  # the pc of a thread whose BUG_ON fired: the execution stops there
_LOCAL_STEPS = 100_000  # register-only steps in a row before a thread is said to spin forever


class ProgramError(ValueError):
    """The program went wrong while running (a pointer used as a number, division by zero,
    a loop that never touches memory)."""


@dataclass(frozen=True)
class _Branch:
    cond: Expr
    target: int  # where to go when cond is false
    line: int = 0


@dataclass(frozen=True)
class _Jump:
    target: int


@dataclass(frozen=True)
class _Cut:
    line: int = 0


_Code = Instr | _Branch | _Jump | _Cut


@dataclass(frozen=True)
class _Compiled:
    """One thread as flat code: shared instructions, assignments, branches and jumps."""

    code: tuple[_Code, ...]
    registers: tuple[str, ...]
    index: dict[str, int]


def compile_thread(thread: Thread) -> _Compiled:
    code: list[_Code] = []
    registers = list(thread.registers)
    counters = 0

    def emit(body: Iterable[Instr]) -> None:
        nonlocal counters
        for ins in body:
            if isinstance(ins, If):
                branch = len(code)
                code.append(_Branch(ins.cond, -1, ins.line))
                emit(ins.then)
                if ins.orelse:
                    jump = len(code)
                    code.append(_Jump(-1))
                    code[branch] = _Branch(ins.cond, len(code), ins.line)
                    emit(ins.orelse)
                    code[jump] = _Jump(len(code))
                else:
                    code[branch] = _Branch(ins.cond, len(code), ins.line)
            elif isinstance(ins, While) and (spin := _spin_await(ins)) is not None:
                code.append(spin)
            elif isinstance(ins, While):
                counter = ""
                if ins.bound is not None:
                    counter = f"%loop{counters}"
                    counters += 1
                    registers.append(counter)
                    code.append(Assign(counter, Const(0), ins.line))
                top = len(code)
                emit(ins.head)
                test = len(code)
                code.append(_Branch(ins.cond, -1, ins.line))
                guard = -1
                if counter:
                    guard = len(code)
                    code.append(_Branch(Binary("<", Reg(counter), Const(ins.bound or 0)), -1, ins.line))
                    code.append(Assign(counter, Binary("+", Reg(counter), Const(1)), ins.line))
                emit(ins.body)
                code.append(_Jump(top))
                if counter:
                    code[guard] = _Branch(code[guard].cond, len(code), ins.line)  # type: ignore[union-attr]
                    code.append(_Cut(ins.line))
                code[test] = _Branch(ins.cond, len(code), ins.line)
            else:
                code.append(ins)

    emit(thread.body)
    return _Compiled(tuple(code), tuple(registers), {r: i for i, r in enumerate(registers)})


def _spin_await(loop: While) -> Await | None:
    """``while (!READ_ONCE(*x)) cpu_relax();`` as an await: an unbounded loop whose body does
    nothing and whose test reads one location can only leave once that location changes, so
    the thread is blocked until then. Spinning as a cycle would hide a hang (the spinner is
    always enabled, so no state is terminal) and cost a state per re-read."""
    if loop.bound is not None or loop.body or len(loop.head) != 1 or not isinstance(loop.head[0], Load):
        return None
    load = loop.head[0]
    return Await(load.dst, load.addr, Unary("!", loop.cond), load.order, "spin", loop.line)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "&": operator.and_,
    "|": operator.or_,
    "^": operator.xor,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(expr: Expr, regs: tuple[Value, ...], index: dict[str, int]) -> Value:
    """C's value of expr over the registers (ints are unbounded: litmus values stay small)."""
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Reg):
        return regs[index[expr.name]]
    if isinstance(expr, Unary):
        v = evaluate(expr.operand, regs, index)
        if expr.op == "!":
            return int(not v)  # the address of a location is never NULL
        if isinstance(v, str):
            raise ProgramError(f"the address of {v} used as a number")
        return -v if expr.op == "-" else ~v
    op = expr.op
    left = evaluate(expr.left, regs, index)
    if op in ("&&", "||"):
        if bool(left) == (op == "||"):
            return int(bool(left))
        return int(bool(evaluate(expr.right, regs, index)))
    right = evaluate(expr.right, regs, index)
    if op == "==":
        return int(left == right)
    if op == "!=":
        return int(left != right)
    if isinstance(left, str) or isinstance(right, str):
        raise ProgramError(f"the address of a location used in {op!r}")
    if op in ("/", "%"):
        if right == 0:
            raise ProgramError("division by zero")
        q = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)  # C truncates
        return q if op == "/" else left - q * right
    return int(_BINARY[op](left, right))


@dataclass(frozen=True)
class LitmusConfig:
    program: Program
    memory: str = "sc"

    def __post_init__(self) -> None:
        if self.memory not in MEMORY_MODELS:
            raise ValueError(f"unknown memory model {self.memory!r} (known: {', '.join(MEMORY_MODELS)})")


ThreadState = tuple[int, tuple[Value, ...]]  # (pc, registers)


@dataclass(slots=True, eq=False)
class LitmusState:
    threads: tuple[ThreadState, ...]
    mem: Mem  # the memory model's state

    def clone(self) -> LitmusState:
        return LitmusState(self.threads, self.mem)  # both parts are immutable

    def fingerprint(self) -> Hashable:
        return (self.threads, self.mem)


def _execute_domain(m: LitmusModel, s: LitmusState) -> Iterable[tuple[int, int]]:
    if m.bugged(s):
        return []
    return [(tid, c) for tid in range(len(s.threads)) for c in range(len(m.outcomes(s, tid)))]


def _flush_domain(m: LitmusModel, s: LitmusState) -> Iterable[tuple[int, str]]:
    if m.bugged(s):
        return []
    return [(cpu, m.locations[loc]) for cpu, loc in m.memory.internal(s.mem)]


class LitmusModel(Model[LitmusState, LitmusConfig]):
    name = "litmus"
    Config = LitmusConfig
    profiles: ClassVar[dict[str, Any]] = {}  # filled in below: store buffering under SC and under TSO

    def __init__(self, config: LitmusConfig | None = None) -> None:
        super().__init__(config)
        program = self.config.program
        self.program = program
        self.memory: MemoryModel = MEMORY_MODELS[self.config.memory]()
        self.locations: tuple[str, ...] = tuple(program.locations)
        self.loc_index = {name: i for i, name in enumerate(self.locations)}
        self.compiled = tuple(compile_thread(t) for t in program.threads)

    def init_state(self) -> LitmusState:
        mem = self.memory.initial(tuple(self.program.locations.values()), len(self.compiled))
        threads = []
        for t, comp in zip(self.program.threads, self.compiled, strict=True):
            regs = tuple(self.program.reg_init.get((t.tid, r), 0) for r in comp.registers)
            threads.append(self._run_local(t.tid, 0, regs))
        return LitmusState(tuple(threads), mem)

    @action("tid", "choice", domain=_execute_domain)
    def execute(self, state: LitmusState, tid: int, choice: int) -> Value | None:
        """Thread tid performs its next shared-memory instruction (outcome ``choice``)."""
        mem, regs, value = self.outcomes(state, tid)[choice]
        threads = list(state.threads)
        threads[tid] = self._run_local(tid, state.threads[tid][0] + 1, regs)
        state.threads = tuple(threads)
        state.mem = mem
        return value

    @action("cpu", "loc", domain=_flush_domain)
    def flush(self, state: LitmusState, cpu: int, loc: str) -> None:
        """The memory system moves cpu's store to loc along (TSO: the oldest one drains)."""
        state.mem = self.memory.flush(state.mem, cpu, self.loc_index[loc])

    def is_final(self, state: LitmusState) -> bool:
        return all(self.done(state, tid) for tid in range(len(state.threads))) and (
            self.memory.settled(state.mem) is not None
        )

    # What the engine asks of a state.

    def done(self, state: LitmusState, tid: int) -> bool:
        return state.threads[tid][0] == len(self.compiled[tid].code)

    def cut(self, state: LitmusState) -> bool:
        """Some thread ran a loop past its bound."""
        return any(pc == CUT for pc, _ in state.threads)

    def bugged(self, state: LitmusState) -> list[int]:
        """The threads whose BUG_ON fired."""
        return [tid for tid, (pc, _) in enumerate(state.threads) if pc == BUG]

    def blocked(self, state: LitmusState) -> dict[int, str]:
        """The threads that have not finished, each with what it waits on: "sleep" (schedule),
        "futex" (futex_wait), "spin" (an await loop), "lock" (spin_lock), or "other"."""
        out: dict[int, str] = {}
        for tid in range(len(state.threads)):
            if self.done(state, tid) or state.threads[tid][0] in (CUT, BUG):
                continue
            ins = self.instruction(state, tid)
            out[tid] = (
                ins.kind if isinstance(ins, Await) else "lock" if isinstance(ins, SpinLock) else "other"
            )
        return out

    def final_values(self, state: LitmusState) -> dict[RegRef | LocRef, Value]:
        """Every register and location by its final-clause name, in a settled state."""
        values = self.memory.settled(state.mem)
        assert values is not None, "stores are still in flight"
        out: dict[RegRef | LocRef, Value] = {
            LocRef(n): v for n, v in zip(self.locations, values, strict=True)
        }
        for tid, (_, regs) in enumerate(state.threads):
            for r, v in zip(self.compiled[tid].registers, regs, strict=True):
                out[RegRef(tid, r)] = v
        return out

    def instruction(self, state: LitmusState, tid: int) -> _Code | None:
        pc = state.threads[tid][0]
        code = self.compiled[tid].code
        return code[pc] if 0 <= pc < len(code) else None

    def outcomes(self, state: LitmusState, tid: int) -> list[tuple[Mem, tuple[Value, ...], Value | None]]:
        """The possible results of thread tid's next instruction: (memory, registers, value
        read), none when the thread is done, cut off, or must wait."""
        pc, regs = state.threads[tid]
        code = self.compiled[tid].code
        if not 0 <= pc < len(code):
            return []
        ins = code[pc]
        index = self.compiled[tid].index
        mem, model = state.mem, self.memory

        def loc_of(addr: Expr) -> int:
            where = evaluate(addr, regs, index)
            if not isinstance(where, str) or where not in self.loc_index:
                raise ProgramError(f"P{tid} line {ins.line}: {where!r} is not the address of a location")  # type: ignore[union-attr]
            return self.loc_index[where]

        def put(dst: str | None, value: Value) -> tuple[Value, ...]:
            if dst is None:
                return regs
            i = index[dst]
            return (*regs[:i], value, *regs[i + 1 :])

        if isinstance(ins, Load):
            return [(m, put(ins.dst, v), v) for v, m in model.load(mem, tid, loc_of(ins.addr), ins.order)]
        if isinstance(ins, Store):
            value = evaluate(ins.value, regs, index)
            if ins.field is not None:  # a byte or halfword store: the word's other bits stay
                value, mask = _arith("<<", value, ins.field.shift), ins.field.mask
                return [(m, regs, None) for m in model.store(mem, tid, loc_of(ins.addr), value, ins.order, mask)]
            return [(m, regs, None) for m in model.store(mem, tid, loc_of(ins.addr), value, ins.order)]
        if isinstance(ins, Fence):
            return [(m, regs, None) for m in model.fence(mem, tid, ins.kind)]
        if isinstance(ins, Rmw):
            update = _update(ins, [evaluate(e, regs, index) for e in ins.operands])
            out: list[tuple[Mem, tuple[Value, ...], Value | None]] = []
            for word, m in model.rmw(mem, tid, loc_of(ins.addr), update, ins.order):
                old = _bits(word, ins.field)
                written = update(word)
                new = None if written is None else _bits(written, ins.field)
                result = {"old": old, "new": old if new is None else new, "written": int(new is not None)}
                out.append((m, put(ins.dst, result.get(ins.returns, 0)), old))
            return out
        if isinstance(ins, SpinLock):
            # arch_spin_lock: a locked RMW (acquire) that only succeeds on a free lock.
            return [
                (m, regs, None)
                for old, m in model.rmw(mem, tid, loc_of(ins.addr), _take, "acquire")
                if old == 0
            ]
        if isinstance(ins, SpinUnlock):
            return [(m, regs, None) for m in model.store(mem, tid, loc_of(ins.addr), 0, "release")]
        if isinstance(ins, SpinTrylock):
            return [
                (m, put(ins.dst, int(old == 0)), old)
                for old, m in model.rmw(mem, tid, loc_of(ins.addr), _take_if_free, "acquire")
            ]
        if isinstance(ins, Await):
            # Blocked (no outcome) while the value read fails the condition.
            ready: list[tuple[Mem, tuple[Value, ...], Value | None]] = []
            for v, m in model.load(mem, tid, loc_of(ins.addr), ins.order):
                after = put(ins.dst, v)
                if evaluate(ins.cond, after, index):
                    ready.append((m, after, v))
            return ready
        if isinstance(ins, SpinIsLocked):
            return [
                (m, put(ins.dst, int(v != 0)), v) for v, m in model.load(mem, tid, loc_of(ins.addr), "once")
            ]
        raise AssertionError(f"P{tid} rests on a local instruction {ins}")

    def _run_local(self, tid: int, pc: int, regs: tuple[Value, ...]) -> ThreadState:
        """Run register-only code from pc up to the next shared instruction, the end, or a cut."""
        comp = self.compiled[tid]
        code, index = comp.code, comp.index
        for _ in range(_LOCAL_STEPS):
            if pc >= len(code):
                return pc, regs
            ins = code[pc]
            try:
                if isinstance(ins, Assign):
                    i = index[ins.dst]
                    regs = (*regs[:i], evaluate(ins.value, regs, index), *regs[i + 1 :])
                    pc += 1
                elif isinstance(ins, _Branch):
                    pc = pc + 1 if evaluate(ins.cond, regs, index) else ins.target
                elif isinstance(ins, _Jump):
                    pc = ins.target
                elif isinstance(ins, _Cut):
                    return CUT, regs
                elif isinstance(ins, Bug):
                    if evaluate(ins.cond, regs, index):
                        return BUG, regs
                    pc += 1
                else:
                    return pc, regs
            except ProgramError as e:
                raise ProgramError(f"P{tid} line {ins.line}: {e}") from None  # type: ignore[union-attr]
        raise ProgramError(f"P{tid} runs {_LOCAL_STEPS} steps without touching memory: an endless loop")


_WAITS = {
    "sleep": "sleeps in schedule()",
    "futex": "sleeps in futex_wait()",
    "spin": "spins on a location no one will change",
    "lock": "waits for a spin lock no one will release",
    "other": "cannot go on",
}


def describe_hang(blocked: dict[int, str], sleeping: bool) -> str:
    """One sentence for a terminal state with blocked threads."""
    who = ", ".join(f"P{tid} {_WAITS[kind]}" for tid, kind in sorted(blocked.items()))
    if sleeping:
        return f"lost wakeup: {who}, and every other task has finished, so none is left to wake it"
    return f"deadlock: {who}"


def _take(old: Value) -> Value:
    return 1


def _take_if_free(old: Value) -> Value | None:
    return 1 if old == 0 else None


def _update(ins: Rmw, args: list[Value]) -> Update:
    """The RMW as a function of the word; one on a field acts on its bits and keeps the rest."""
    update = _update_value(ins, args)
    field = ins.field
    if field is None:
        return update

    def update_field(old: Value) -> Value | None:
        new = update(_bits(old, field))
        if new is None:
            return None
        return _arith("|", _arith("&", old, ~field.mask), _arith("&", _arith("<<", new, field.shift), field.mask))

    return update_field


def _bits(word: Value, field: Field | None) -> Value:
    if field is None:
        return word
    return _arith("&", _arith(">>", word, field.shift), (1 << field.width) - 1)


def _update_value(ins: Rmw, args: list[Value]) -> Update:
    op = ins.op
    if op == "xchg":
        return lambda old: args[0]
    if op == "cmpxchg":
        return lambda old: args[1] if old == args[0] else None
    if op == "add_unless":
        return lambda old: _arith("+", old, args[0]) if old != args[1] else None
    sym = {"add": "+", "sub": "-", "and": "&", "or": "|", "xor": "^"}[op]
    return lambda old: _arith(sym, old, args[0])


def _arith(op: str, a: Value, b: Value) -> Value:
    if isinstance(a, str) or isinstance(b, str):
        raise ProgramError(f"the address of a location used in {op!r}")
    return int(_BINARY[op](a, b))


def store_buffering() -> Program:
    """SB: each thread writes one location and reads the other (the profiles' program)."""
    x, y = Const("x"), Const("y")
    threads = (
        Thread(0, (Store(x, Const(1)), Load("r0", y)), ("r0",)),
        Thread(1, (Store(y, Const(1)), Load("r0", x)), ("r0",)),
    )
    final = Final("exists", And(Atom(RegRef(0, "r0"), 0), Atom(RegRef(1, "r0"), 0)))
    return Program("SB", {"x": 0, "y": 0}, threads, final)


LitmusModel.profiles = {
    "small": LitmusConfig(store_buffering(), "sc"),
    "large": LitmusConfig(store_buffering(), "tso"),
}
