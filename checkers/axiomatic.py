"""Axiomatic SC and x86-TSO for litmus programs, in the style of herd7's cat models, solved by z3.

checkers/litmus.py runs a Program on the operational machine (model/sync/memory.py) through
every interleaving; here the same Program is a set of candidate executions, and a memory model
is a few axioms over their relations. The two must give the same verdict on every test: a
disagreement is a bug in one of them.

Candidate executions. Each thread is executed symbolically: a load's value is a fresh z3
variable, registers are z3 terms over those values, and every event carries a guard (it is
executed iff the branch conditions on its path hold). Loops are unrolled: a loop with a bound
exactly as the machine runs it (cut after ``bound`` iterations); one without, until its test no
longer depends on memory or ``unroll`` such tests have passed, executions that need more being
left out as herd's ``-unroll`` leaves them (``bounded`` says so). A loop that only re-reads one
location is an await, as the machine compiles it, and needs no unrolling.
Events are reads, writes (one initial write per location, co-first), fences, and the two
halves of a read-modify-write (the write only where it writes: not for a failed cmpxchg).
spin_lock is such a pair that must read 0 and writes 1, spin_trylock one that writes only
where it read 0, spin_unlock a plain write of 0, as the machine runs them. An await
(schedule(), futex_wait(), a spin loop) is a read whose value must pass its condition: a wait
that never ends leaves no final state. An execution where a BUG_ON fires is left out too, as
the machine stops there. Values are 64-bit bit-vectors; a location's address is a code no
program constant uses.

Relations. rf: each executed read reads from exactly one executed write to the same location
with the value it read. co: the order of the clock (below) on writes to one location, the
initial write first; fr = rf^-1;co. po: the order in which a thread's events are created
(events on the two sides of a branch are never both executed).

Acyclicity is an integer clock per event: an edge a -> b forces clock(a) < clock(b).

- SC: acyclic(po | rf | co | fr); atomicity: rmw & (fre;coe) empty.
- TSO (herd's x86tso.cat, after Owens, Sarkar and Sewell, "A better x86 memory model"):
  uniproc acyclic(po-loc | rf | co | fr) on a second clock; atomicity as for SC; and
  acyclic(ppo | rfe | co | fr | mfence | implied) where ppo is po less its write -> read pairs,
  and a write -> read pair stays ordered when an smp_mb() lies between them or either end is
  a locked access. What is locked is what model/sync/memory.py's TSO makes wait for the store
  buffer to drain: every read-modify-write (xchg, cmpxchg even when it fails, the atomics,
  spin_lock, spin_trylock) and smp_store_mb (xchg on x86). rfi is not in the global order.

The verdict is herd's, from two z3 queries over the executions that pass the ``filter``: one
satisfying the proposition P (else Never), one violating it (else Always), else Sometimes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from checkers.control import z3_check
from checkers.litmus import FileReport, LitmusResult
from model.sync.litmus import parse_file
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
    If,
    Instr,
    Load,
    LocRef,
    Not,
    Or,
    Program,
    Prop,
    Reg,
    RegRef,
    Rmw,
    SpinIsLocked,
    SpinLock,
    SpinTrylock,
    SpinUnlock,
    Store,
    Truth,
    Unary,
    Value,
    While,
    prop_refs,
    show_instr,
)

MEMORY_MODELS = ("sc", "tso")
DEFAULT_UNROLL = 2  # iterations of a loop without a bound that depend on memory, as herd's -unroll
_MAX_ITERATIONS = 10_000  # of a loop whose test the registers decide
# z3 resource units per query, which count work, not seconds, so that the verdict does not
# depend on the machine: the futex mutex under TSO, the costliest query, takes about 20 s.
DEFAULT_RLIMIT = 1_000_000_000
WIDTH = 64
_ADDRESS_BASE = 1 << 40  # location codes start here: far above any value a litmus test uses


class Unsupported(Exception):
    """The program uses something the axiomatic encoding has no events for."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"the axiomatic engine does not support {feature}")
        self.feature = feature


@dataclass
class AxiomaticResult:
    """One program under one memory model, decided by z3."""

    name: str
    memory: str
    verdict: str  # Never, Sometimes, Always (about the proposition)
    holds: bool  # the clause, quantifier included
    seconds: float  # z3's solving time, both queries
    encode_seconds: float
    events: int  # events of the encoding: initial writes, reads, writes, fences
    executions: bool  # some execution passes the filter
    bounded: bool = False  # a loop without a bound was unrolled; longer executions are left out
    witness: dict[str, Value] = field(default_factory=dict)  # final values of the witness execution
    reads_from: list[str] = field(default_factory=list)  # the witness's rf, read by read

    @property
    def shown(self) -> str:
        """As litmus.LitmusResult.shown: no execution at all is DEADLOCK."""
        return self.verdict if self.executions else "DEADLOCK"

    @property
    def complete(self) -> bool:
        """Every execution was considered (no loop without a bound was cut short)."""
        return not self.bounded

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.shown,
            "holds": self.holds,
            "seconds": self.seconds,
            "encode_seconds": self.encode_seconds,
            "events": self.events,
            "bounded": self.bounded,
            "witness": dict(self.witness),
            "reads_from": self.reads_from,
        }


def axiomatic_verdict(
    program: Program,
    memory: str = "sc",
    *,
    unroll: int = DEFAULT_UNROLL,
    rlimit: int = DEFAULT_RLIMIT,
) -> AxiomaticResult:
    """The verdict of program's final clause under the axiomatic ``memory`` ("sc" or "tso").
    Raises Unsupported for a memory model or an instruction the encoding lacks."""
    start = time.perf_counter()
    enc, base, lookup, filt, prop = _encode(program, memory, unroll)
    encoded = time.perf_counter()

    solver = _solver(base, rlimit)
    models: dict[bool, z3.ModelRef | None] = {}
    for want in (True, False):
        solver.push()
        solver.add(filt, prop if want else z3.Not(prop))
        models[want] = _check(solver, program, memory)
        solver.pop()
    solved = time.perf_counter()

    final = program.final
    positive, negative = models[True] is not None, models[False] is not None
    verdict = "Never" if not positive else "Always" if not negative else "Sometimes"
    holds = {"exists": positive, "~exists": not positive, "forall": not negative}[final.quantifier]
    # The witness as checkers.litmus picks it: P holds in it, or for forall a counterexample.
    model = models[final.quantifier != "forall"]
    witness: dict[str, Value] = {}
    reads_from: list[str] = []
    if model is not None:
        refs = list(dict.fromkeys([*final.locations, *prop_refs(final.filter), *prop_refs(final.prop)]))
        witness = {str(r): enc.decode(model.eval(lookup[r], model_completion=True)) for r in refs}
        reads_from = enc.describe(model)
    return AxiomaticResult(
        name=program.name,
        memory=memory,
        verdict=verdict,
        holds=holds,
        seconds=round(solved - encoded, 4),
        encode_seconds=round(encoded - start, 4),
        events=len(enc.events),
        executions=positive or negative,
        bounded=enc.bounded,
        witness=witness,
        reads_from=reads_from,
    )


def axiomatic_outcomes(
    program: Program,
    memory: str = "sc",
    *,
    unroll: int = DEFAULT_UNROLL,
    rlimit: int = DEFAULT_RLIMIT,
    limit: int = 10_000,
) -> list[str]:
    """The distinct final outcomes that pass the filter, spelled as LitmusResult.outcomes is
    (the clause's ``locations`` and the references of its proposition), one z3 query each."""
    enc, base, lookup, filt, _ = _encode(program, memory, unroll)
    final = program.final
    refs = list(dict.fromkeys([*final.locations, *prop_refs(final.prop)]))
    solver = _solver(base, rlimit)
    solver.add(filt)
    found = []
    while (model := _check(solver, program, memory)) is not None:
        values = [model.eval(lookup[r], model_completion=True) for r in refs]
        found.append("; ".join(f"{r}={enc.decode(v)}" for r, v in zip(refs, values, strict=True)))
        if not refs or len(found) >= limit:
            break
        solver.add(z3.Or([lookup[r] != v for r, v in zip(refs, values, strict=True)]))
    return sorted(found)


def _encode(
    program: Program, memory: str, unroll: int
) -> tuple[_Encoding, list[z3.BoolRef], dict[RegRef | LocRef, z3.BitVecRef], z3.BoolRef, z3.BoolRef]:
    if memory not in MEMORY_MODELS:
        raise Unsupported(f"the memory model {memory!r} (known: {', '.join(MEMORY_MODELS)})")
    enc = _Encoding(program, memory, unroll)
    lookup = enc.final_values()
    base = enc.axioms()
    final = program.final
    filt = _prop(final.filter, lookup, enc) if final.filter is not None else z3.BoolVal(True)
    return enc, base, lookup, filt, _prop(final.prop, lookup, enc)


def _solver(base: list[z3.BoolRef], rlimit: int) -> z3.Solver:
    solver = z3.Solver()
    solver.set("rlimit", rlimit)
    solver.add(base)
    return solver


def _check(solver: z3.Solver, program: Program, memory: str) -> z3.ModelRef | None:
    answer = z3_check(solver)
    if answer == z3.unknown:
        raise RuntimeError(f"{program.name} under {memory}: z3 gave up ({solver.reason_unknown()})")
    return solver.model() if answer == z3.sat else None


def run_reports(
    reports: Sequence[FileReport], models: Sequence[str], *, unroll: int = DEFAULT_UNROLL
) -> dict[str, dict[str, AxiomaticResult | Unsupported]]:
    """The axiomatic verdicts of checkers.litmus's parsed files: file -> model -> the result, or
    what the encoding does not support (files whose parse failed are left out)."""
    out: dict[str, dict[str, AxiomaticResult | Unsupported]] = {}
    for report in reports:
        if report.unsupported is not None:
            continue
        program = parse_file(report.file)
        out[report.file] = {}
        for memory in models:
            try:
                out[report.file][memory] = axiomatic_verdict(program, memory, unroll=unroll)
            except Unsupported as e:
                out[report.file][memory] = e
    return out


def agrees(operational: LitmusResult, axiomatic: AxiomaticResult) -> bool | None:
    """Whether the two engines give the same verdict (None when the search was bounded)."""
    if not operational.complete:
        return None
    return (operational.verdict, operational.shown, operational.holds) == (
        axiomatic.verdict,
        axiomatic.shown,
        axiomatic.holds,
    )


# Events.


@dataclass(eq=False)
class _Event:
    eid: int
    tid: int  # -1 for an initial write
    kind: str  # "R", "W" or "F"
    guard: z3.BoolRef  # executed
    loc: z3.BitVecRef | None  # None for a fence
    static_loc: int | None  # the location's code when the address is a constant
    value: z3.BitVecRef | None = None
    locked: bool = False  # an x86 locked access: it drains the store buffer
    fence: str | None = None
    rmw: _Event | None = None  # a write's read half, when both are one atomic read-modify-write
    text: str = ""
    clock: z3.ArithRef = field(init=False)  # the order of SC, or of TSO's global happens-before
    uclock: z3.ArithRef = field(init=False)  # TSO's per-location order (uniproc)

    def __post_init__(self) -> None:
        self.clock = z3.Int(f"clock{self.eid}")
        self.uclock = z3.Int(f"uclock{self.eid}")


Regs = dict[str, z3.BitVecRef]


def _bv(value: int) -> z3.BitVecRef:
    return z3.BitVecVal(value, WIDTH)


def _truth(e: z3.BitVecRef) -> z3.BoolRef:
    return e != _bv(0)


def _bit(b: z3.BoolRef) -> z3.BitVecRef:
    return z3.If(b, _bv(1), _bv(0))


def _simplify(b: z3.BoolRef) -> z3.BoolRef:
    out = z3.simplify(b)
    assert isinstance(out, z3.BoolRef)
    return out


class _Encoding:
    """The candidate executions of one program and the axioms of one memory model over them."""

    def __init__(self, program: Program, memory: str, unroll: int) -> None:
        self.program = program
        self.memory = memory
        self.unroll = unroll
        self.codes = {name: _ADDRESS_BASE + i for i, name in enumerate(program.locations)}
        self.names = {code: name for name, code in self.codes.items()}
        self.events: list[_Event] = []
        self.threads: list[list[_Event]] = []
        self.constraints: list[z3.BoolRef] = []
        self.final_regs: dict[RegRef | LocRef, z3.BitVecRef] = {}
        self.bounded = False
        self.reads = 0
        for name, init in program.locations.items():
            code = self.codes[name]
            self._event(-1, "W", z3.BoolVal(True), _bv(code), code, self.value(init), text=f"{name}={init}")
        for thread in program.threads:
            self.threads.append([])
            regs = {r: self.value(program.reg_init.get((thread.tid, r), 0)) for r in thread.registers}
            guard, regs = self._block(thread.tid, thread.body, z3.BoolVal(True), regs)
            for r in thread.registers:
                self.final_regs[RegRef(thread.tid, r)] = regs[r]

    def value(self, v: Value) -> z3.BitVecRef:
        if isinstance(v, str):
            if v not in self.codes:
                raise Unsupported(f"the address of {v}, which is no shared location")
            return _bv(self.codes[v])
        if abs(v) >= _ADDRESS_BASE:
            raise Unsupported(f"the constant {v}, beyond the values kept apart from addresses")
        return _bv(v)

    def decode(self, e: z3.ExprRef) -> Value:
        assert isinstance(e, z3.BitVecNumRef)
        v = e.as_signed_long()
        return self.names.get(v, v)

    def _event(
        self,
        tid: int,
        kind: str,
        guard: z3.BoolRef,
        loc: z3.BitVecRef | None,
        static_loc: int | None,
        value: z3.BitVecRef | None = None,
        **extra: Any,
    ) -> _Event:
        e = _Event(len(self.events), tid, kind, guard, loc, static_loc, value, **extra)
        self.events.append(e)
        if tid >= 0:
            self.threads[tid].append(e)
        return e

    # Symbolic execution of a thread: (guard, registers) through its instructions.

    def _block(
        self, tid: int, body: Iterable[Instr], guard: z3.BoolRef, regs: Regs
    ) -> tuple[z3.BoolRef, Regs]:
        for ins in body:
            if z3.is_false(guard):
                break
            guard, regs = self._instr(tid, ins, guard, regs)
        return guard, regs

    def _instr(self, tid: int, ins: Instr, guard: z3.BoolRef, regs: Regs) -> tuple[z3.BoolRef, Regs]:
        text = f"P{tid}: {show_instr(ins)}"
        if getattr(ins, "field", None) is not None:
            # rf and co relate whole writes; a byte store's value depends on the write it lands on.
            raise Unsupported(f"mixed-size accesses: {show_instr(ins)} (P{tid} line {getattr(ins, 'line', 0)})")
        if isinstance(ins, Assign):
            return guard, {**regs, ins.dst: self.expr(ins.value, regs)}
        if isinstance(ins, Load):
            r = self._read(tid, guard, ins.addr, regs, text=text)
            return guard, {**regs, ins.dst: r.value}
        if isinstance(ins, SpinIsLocked):
            r = self._read(tid, guard, ins.addr, regs, text=text)
            return guard, {**regs, ins.dst: _bit(_truth(r.value))}
        if isinstance(ins, Store):
            loc, static = self.address(ins.addr, regs, guard)
            # smp_store_mb is xchg on x86: locked, the store is in memory before anything after it.
            self._event(
                tid, "W", guard, loc, static, self.expr(ins.value, regs), locked=ins.order == "mb", text=text
            )
            return guard, regs
        if isinstance(ins, SpinUnlock):
            loc, static = self.address(ins.addr, regs, guard)
            self._event(tid, "W", guard, loc, static, _bv(0), text=text)  # a release store: a plain MOV
            return guard, regs
        if isinstance(ins, Fence):
            self._event(tid, "F", guard, None, None, fence=ins.kind, text=text)
            return guard, regs
        if isinstance(ins, Rmw):
            return guard, self._rmw(tid, ins, guard, regs, text)
        if isinstance(ins, SpinLock):
            # arch_spin_lock: a locked RMW that takes a free lock (the machine waits until it is).
            r = self._read(tid, guard, ins.addr, regs, locked=True, text=text)
            self.constraints.append(z3.Implies(guard, r.value == _bv(0)))
            self._write_half(r, guard, _bv(1), text)
            return guard, regs
        if isinstance(ins, SpinTrylock):
            r = self._read(tid, guard, ins.addr, regs, locked=True, text=text)
            assert r.value is not None
            free = r.value == _bv(0)
            self._write_half(r, _simplify(z3.And(guard, free)), _bv(1), text)
            return guard, regs if ins.dst is None else {**regs, ins.dst: _bit(free)}
        if isinstance(ins, If):
            cond = _truth(self.expr(ins.cond, regs))
            g_then = _simplify(z3.And(guard, cond))
            g_else = _simplify(z3.And(guard, z3.Not(cond)))
            _, then_regs = self._block(tid, ins.then, g_then, dict(regs))
            _, else_regs = self._block(tid, ins.orelse, g_else, dict(regs))
            return guard, _merge([(cond, then_regs)], else_regs)
        if isinstance(ins, Await):
            # Blocked until the value read passes cond: a waiting that never ends is no final state.
            r = self._read(tid, guard, ins.addr, regs, text=text)
            regs = {**regs, ins.dst: r.value}
            self.constraints.append(z3.Implies(guard, _truth(self.expr(ins.cond, regs))))
            return guard, regs
        if isinstance(ins, Bug):
            # The machine stops when a BUG_ON fires: such an execution has no final state.
            self.constraints.append(z3.Not(z3.And(guard, _truth(self.expr(ins.cond, regs)))))
            return guard, regs
        if isinstance(ins, While) and _spin_await(ins):
            # As machine.compile_thread does: a loop that only re-reads one location is an await.
            # Exact: the failed re-reads are removable from any execution, and only the last counts.
            head = ins.head[0]
            assert isinstance(head, Load)
            await_ = Await(head.dst, head.addr, Unary("!", ins.cond), head.order, "spin", ins.line)
            return self._instr(tid, await_, guard, regs)
        if isinstance(ins, While):
            return self._loop(tid, ins, guard, regs)
        raise Unsupported(f"{type(ins).__name__} (P{tid} line {getattr(ins, 'line', 0)})")

    def _read(
        self, tid: int, guard: z3.BoolRef, addr: Expr, regs: Regs, *, locked: bool = False, text: str = ""
    ) -> _Event:
        loc, static = self.address(addr, regs, guard)
        self.reads += 1
        value = z3.BitVec(f"read{self.reads}", WIDTH)
        return self._event(tid, "R", guard, loc, static, value, locked=locked, text=text)

    def _write_half(self, read: _Event, guard: z3.BoolRef, value: z3.BitVecRef, text: str) -> _Event | None:
        if z3.is_false(guard):
            return None
        return self._event(
            read.tid, "W", guard, read.loc, read.static_loc, value, locked=True, rmw=read, text=text
        )

    def _rmw(self, tid: int, ins: Rmw, guard: z3.BoolRef, regs: Regs, text: str) -> Regs:
        args = [self.expr(e, regs) for e in ins.operands]
        # Every read-modify-write is a locked instruction on x86, whatever its ordering suffix.
        r = self._read(tid, guard, ins.addr, regs, locked=True, text=text)
        old = r.value
        assert old is not None
        wrote: z3.BoolRef = z3.BoolVal(True)
        if ins.op == "xchg":
            new = args[0]
        elif ins.op == "cmpxchg":
            wrote, new = old == args[0], args[1]
        elif ins.op == "add_unless":
            wrote, new = old != args[1], old + args[0]
        else:
            new = {
                "add": lambda: old + args[0],
                "sub": lambda: old - args[0],
                "and": lambda: old & args[0],
                "or": lambda: old | args[0],
                "xor": lambda: old ^ args[0],
            }[ins.op]()
        self._write_half(r, _simplify(z3.And(guard, wrote)), new, text)
        if ins.dst is None or ins.returns == "none":
            return regs
        result = {"old": old, "new": z3.If(wrote, new, old), "written": _bit(wrote)}[ins.returns]
        return {**regs, ins.dst: result}

    def _loop(self, tid: int, ins: While, guard: z3.BoolRef, regs: Regs) -> tuple[z3.BoolRef, Regs]:
        """Unrolled as machine.compile_thread lays the loop out: head, test, (bound check), body.
        Without a bound, only iterations whose test depends on memory count toward ``unroll``:
        a loop over registers alone (``for (i = 0; i < 3; i++)``) runs to its end."""
        exits: list[tuple[z3.BoolRef, Regs]] = []
        n = open_tests = 0
        while True:
            guard, regs = self._block(tid, ins.head, guard, regs)
            cond = _simplify(_truth(self.expr(ins.cond, regs)))
            exits.append((_simplify(z3.And(guard, z3.Not(cond))), regs))
            guard = _simplify(z3.And(guard, cond))
            if z3.is_false(guard):
                break
            open_tests += not z3.is_true(cond)
            if n == ins.bound or (ins.bound is None and open_tests > self.unroll):
                # An execution that would start one more iteration is cut off (the machine's _Cut).
                self.constraints.append(z3.Not(guard))
                self.bounded |= ins.bound is None
                break
            if n == _MAX_ITERATIONS:
                raise Unsupported(
                    f"a loop that runs more than {_MAX_ITERATIONS} times (P{tid} line {ins.line})"
                )
            guard, regs = self._block(tid, ins.body, guard, regs)
            n += 1
        live = [(g, r) for g, r in exits if not z3.is_false(g)]
        if not live:
            return z3.BoolVal(False), regs
        after = _simplify(z3.Or([g for g, _ in live]))
        return after, _merge(live[:-1], live[-1][1])

    # Expressions: C's values over 64-bit registers.

    def expr(self, e: Expr, regs: Regs) -> z3.BitVecRef:
        if isinstance(e, Const):
            return self.value(e.value)
        if isinstance(e, Reg):
            return regs[e.name]
        if isinstance(e, Unary):
            v = self.expr(e.operand, regs)
            return {"-": lambda: -v, "!": lambda: _bit(v == _bv(0)), "~": lambda: ~v}[e.op]()
        if isinstance(e, Binary):
            a, b = self.expr(e.left, regs), self.expr(e.right, regs)
            op = e.op
            if op in ("&&", "||"):
                both = (z3.And if op == "&&" else z3.Or)(_truth(a), _truth(b))
                return _bit(both)
            table: dict[str, Any] = {
                "+": lambda: a + b,
                "-": lambda: a - b,
                "*": lambda: a * b,
                "/": lambda: a / b,  # bvsdiv truncates, as C does
                "%": lambda: z3.SRem(a, b),  # the remainder takes the dividend's sign, as in C
                "&": lambda: a & b,
                "|": lambda: a | b,
                "^": lambda: a ^ b,
                "<<": lambda: a << b,
                ">>": lambda: a >> b,  # arithmetic, as Python's (the machine's) is
                "==": lambda: _bit(a == b),
                "!=": lambda: _bit(a != b),
                "<": lambda: _bit(a < b),
                "<=": lambda: _bit(a <= b),
                ">": lambda: _bit(a > b),
                ">=": lambda: _bit(a >= b),
            }
            if op not in table:
                raise Unsupported(f"the operator {op}")
            return table[op]()
        raise Unsupported(f"the expression {type(e).__name__}")

    def address(self, addr: Expr, regs: Regs, guard: z3.BoolRef) -> tuple[z3.BitVecRef, int | None]:
        loc = z3.simplify(self.expr(addr, regs))
        assert isinstance(loc, z3.BitVecRef)
        if isinstance(loc, z3.BitVecNumRef):
            code = loc.as_signed_long()
            if code not in self.names:
                raise Unsupported(f"an access to {code}, which is not the address of a location")
            return loc, code
        # A pointer held in a register: it must point at a location (the machine would stop).
        self.constraints.append(z3.Implies(guard, z3.Or([loc == _bv(c) for c in self.names])))
        return loc, None

    # The relations and the axioms.

    def axioms(self) -> list[z3.BoolRef]:
        tso = self.memory == "tso"
        out = list(self.constraints)
        mem = [e for e in self.events if e.kind != "F"]
        writes = [e for e in mem if e.kind == "W"]
        reads = [e for e in mem if e.kind == "R"]
        for e in mem:
            # Initial writes come first, in every order.
            out.append(e.clock == 0 if e.tid < 0 else e.clock > 0)
            if tso:
                out.append(e.uclock == 0 if e.tid < 0 else e.uclock > 0)

        # po, as SC sees it, and TSO's preserved program order and its per-location order.
        for events in self.threads:
            accesses = [e for e in events if e.kind != "F"]
            if not tso:
                out += [a.clock < b.clock for a, b in zip(accesses, accesses[1:], strict=False)]
                continue
            for i, a in enumerate(accesses):
                for b in accesses[i + 1 :]:
                    both = z3.And(a.guard, b.guard)
                    out.append(z3.Implies(z3.And(both, _same(a, b)), a.uclock < b.uclock))
                    ordered = self._ppo(a, b, events)
                    if not z3.is_false(ordered):
                        out.append(z3.Implies(z3.And(both, ordered), a.clock < b.clock))

        # co: the clock's order on the writes to one location, so they need distinct clocks.
        for i, w1 in enumerate(writes):
            for w2 in writes[i + 1 :]:
                if not _may_alias(w1, w2) or w1.tid < 0 or w2.tid < 0 or (w1.tid == w2.tid and not tso):
                    continue
                both = z3.And(w1.guard, w2.guard, _same(w1, w2))
                if w1.tid != w2.tid:
                    out.append(z3.Implies(both, w1.clock != w2.clock))
                if tso:
                    out.append(z3.Implies(z3.And(both, w1.clock < w2.clock), w1.uclock < w2.uclock))
                    out.append(z3.Implies(z3.And(both, w2.clock < w1.clock), w2.uclock < w1.uclock))

        self.rf: dict[_Event, list[tuple[_Event, z3.BoolRef]]] = {}
        self.source: dict[_Event, z3.ArithRef] = {}
        for r in reads:
            sources = []
            for w in writes:
                # A read never reads from its own thread's po-later writes (uniproc forbids it).
                if not _may_alias(w, r) or (w.tid == r.tid and w.eid > r.eid):
                    continue
                rf = z3.Bool(f"rf{w.eid}_{r.eid}")
                sources.append((w, rf))
                assert r.value is not None and w.value is not None
                out.append(z3.Implies(rf, z3.And(r.guard, w.guard, _same(w, r), r.value == w.value)))
                external = w.tid != r.tid
                if not tso or external:  # TSO: rfe is global, rfi (store forwarding) is not
                    out.append(z3.Implies(rf, w.clock < r.clock))
                if tso:
                    out.append(z3.Implies(rf, w.uclock < r.uclock))
            self.rf[r] = sources
            if sources:
                out.append(z3.Implies(r.guard, z3.PbEq([(b, 1) for _, b in sources], 1)))
            else:
                out.append(z3.Not(r.guard))
            # fr: r reads from a write co-before w2, so r comes before w2. co is the clock's order,
            # so the clock of r's source stands for the source itself.
            source = z3.Int(f"source{r.eid}")
            self.source[r] = source
            out += [z3.Implies(rf, source == w.clock) for w, rf in sources]
            for w2 in writes:
                if w2.tid < 0 or not _may_alias(w2, r):
                    continue
                later = z3.And(r.guard, w2.guard, _same(w2, r), source < w2.clock)
                out.append(z3.Implies(later, r.clock < w2.clock))
                if tso:
                    out.append(z3.Implies(later, r.uclock < w2.uclock))

        # Atomicity: no write to the location comes in co between an RMW's source and its write.
        for w in writes:
            read = w.rmw
            if read is None:
                continue
            for w2 in writes:
                if w2 is w or w2.tid < 0 or not _may_alias(w2, read):
                    continue
                between = z3.And(self.source[read] < w2.clock, w2.clock < w.clock)
                out.append(z3.Implies(z3.And(w.guard, w2.guard, _same(w2, read)), z3.Not(between)))
        return out

    def _ppo(self, a: _Event, b: _Event, events: list[_Event]) -> z3.BoolRef:
        """When TSO keeps a before b (a po-before b, same thread): always, but for a write before
        a read, only across an smp_mb() or a locked access (x86tso.cat's mfence and implied)."""
        if not (a.kind == "W" and b.kind == "R") or a.locked or b.locked:
            return z3.BoolVal(True)
        fences = [f.guard for f in events if f.kind == "F" and f.fence == "mb" and a.eid < f.eid < b.eid]
        return _simplify(z3.Or(fences)) if fences else z3.BoolVal(False)

    def final_values(self) -> dict[RegRef | LocRef, z3.BitVecRef]:
        """Every final register, and every location's co-last write."""
        out: dict[RegRef | LocRef, z3.BitVecRef] = dict(self.final_regs)
        writes = [e for e in self.events if e.kind == "W"]
        for name, code in self.codes.items():
            final = z3.BitVec(f"final_{name}", WIDTH)
            to_here = [w for w in writes if w.static_loc in (code, None)]
            for w in to_here:
                assert w.loc is not None and w.value is not None
                at = z3.And(w.guard, w.loc == _bv(code))
                later = [
                    z3.And(o.guard, o.loc == _bv(code), o.clock > w.clock) for o in to_here if o is not w
                ]
                last = z3.And(at, z3.Not(z3.Or(later))) if later else at
                self.constraints.append(z3.Implies(last, final == w.value))
            out[LocRef(name)] = final
        return out

    def describe(self, model: z3.ModelRef) -> list[str]:
        """The witness's reads, each with the write it read from."""
        lines = []
        for r, sources in self.rf.items():
            if not z3.is_true(model.eval(r.guard, model_completion=True)):
                continue
            for w, rf in sources:
                if z3.is_true(model.eval(rf, model_completion=True)):
                    assert r.value is not None
                    value = self.decode(model.eval(r.value, model_completion=True))
                    source = f"the initial {w.text}" if w.tid < 0 else w.text
                    lines.append(f"{r.text} reads {value} from {source}")
        return lines


def _spin_await(loop: While) -> bool:
    return loop.bound is None and not loop.body and len(loop.head) == 1 and isinstance(loop.head[0], Load)


def _may_alias(a: _Event, b: _Event) -> bool:
    return a.static_loc is None or b.static_loc is None or a.static_loc == b.static_loc


def _same(a: _Event, b: _Event) -> z3.BoolRef:
    if a.static_loc is not None and b.static_loc is not None:
        return z3.BoolVal(a.static_loc == b.static_loc)
    assert a.loc is not None and b.loc is not None
    return a.loc == b.loc


def _merge(branches: Sequence[tuple[z3.BoolRef, Regs]], otherwise: Regs) -> Regs:
    """The registers after control flow joins: each branch's where its condition held."""
    out = dict(otherwise)
    for cond, regs in reversed(branches):
        for name, v in regs.items():
            if not v.eq(out[name]):
                out[name] = z3.If(cond, v, out[name])
    return out


def _prop(prop: Prop, lookup: dict[RegRef | LocRef, z3.BitVecRef], enc: _Encoding) -> z3.BoolRef:
    if isinstance(prop, Atom):
        equal = lookup[prop.ref] == enc.value(prop.value)
        return z3.Not(equal) if prop.negated else equal
    if isinstance(prop, Not):
        return z3.Not(_prop(prop.prop, lookup, enc))
    if isinstance(prop, And):
        return z3.And(_prop(prop.left, lookup, enc), _prop(prop.right, lookup, enc))
    if isinstance(prop, Or):
        return z3.Or(_prop(prop.left, lookup, enc), _prop(prop.right, lookup, enc))
    assert isinstance(prop, Truth)
    return z3.BoolVal(prop.value)
