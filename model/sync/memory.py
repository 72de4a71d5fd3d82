"""Memory models as operational semantics, chosen per run: what a load returns, what a store,
a fence and a read-modify-write do, and which steps the memory system takes on its own.

The machine (model/sync/machine.py) asks the model and never looks inside its state, so a
weaker model (release/acquire views, LKMM's propagation) is one more class here. Memory
states are immutable and hashable: they go into the explorer's fingerprints as they are.
Every operation returns the list of its possible outcomes: one for SC and TSO, several for a
model whose loads may read older stores, none while the operation must wait (an mfence
behind a non-empty store buffer).

Locations are numbered 0..n-1 by the machine; values are ints or location names (pointers).
A store may write only some bits of its location (``mask``: a byte or halfword of a word, as
qspinlock's ``locked`` byte); the bits outside keep what they hold when it reaches memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import ClassVar, NamedTuple, cast

from model.sync.program import FenceKind, Order, Value

Mem = Hashable
# An RMW's update: the new value from the old one, or None to write nothing (failed cmpxchg).
Update = Callable[[Value], Value | None]


class Buffered(NamedTuple):
    """A store in flight: to loc, of value, in the bits of mask (None: the whole location)."""

    loc: int
    value: Value
    mask: int | None = None

    def onto(self, old: Value) -> Value:
        """The location's value once this store has written it over old."""
        if self.mask is None:
            return self.value
        if isinstance(old, str) or isinstance(self.value, str):
            raise ValueError("a store to part of a location that holds an address")
        return (old & ~self.mask) | (self.value & self.mask)


class MemoryModel(ABC):
    """The interface every memory model implements."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def initial(self, values: tuple[Value, ...], nr_cpus: int) -> Mem:
        """Memory holding ``values`` (one per location) with nothing in flight."""

    @abstractmethod
    def load(self, mem: Mem, cpu: int, loc: int, order: Order) -> list[tuple[Value, Mem]]:
        """The values a load by cpu may return, each with the memory after it."""

    @abstractmethod
    def store(self, mem: Mem, cpu: int, loc: int, value: Value, order: Order, mask: int | None = None) -> list[Mem]:
        """The memories after cpu stores value to loc (to the bits of mask only, if given)."""

    @abstractmethod
    def rmw(self, mem: Mem, cpu: int, loc: int, update: Update, order: Order) -> list[tuple[Value, Mem]]:
        """An atomic read-modify-write: the old values it may read, each with the memory after."""

    @abstractmethod
    def fence(self, mem: Mem, cpu: int, kind: FenceKind) -> list[Mem]:
        """The memories after cpu executes the fence; empty while the fence must wait."""

    def internal(self, mem: Mem) -> list[tuple[int, int]]:
        """The (cpu, loc) pairs for which the memory system may move a store of cpu to loc
        along on its own (TSO: drain the oldest buffered store)."""
        return []

    def flush(self, mem: Mem, cpu: int, loc: int) -> Mem:
        """The memory after the internal step (cpu, loc)."""
        raise ValueError(f"{self.name} has no internal steps")

    @abstractmethod
    def settled(self, mem: Mem) -> tuple[Value, ...] | None:
        """The value of every location once nothing is in flight; None while something is."""

    def buffered(self, mem: Mem, cpu: int) -> tuple[Buffered, ...]:
        """The stores of cpu still in flight, oldest first: what a trace shows beside each
        step (TSO's store buffer)."""
        return ()


class SC(MemoryModel):
    """Sequential consistency: one memory, each access reads or writes it at once, in the
    order the threads' steps interleave. Fences are no-ops: nothing is ever reordered."""

    name = "sc"
    description = "sequential consistency"

    def initial(self, values: tuple[Value, ...], nr_cpus: int) -> Mem:
        return values

    def load(self, mem: Mem, cpu: int, loc: int, order: Order) -> list[tuple[Value, Mem]]:
        assert isinstance(mem, tuple)
        return [(mem[loc], mem)]

    def store(self, mem: Mem, cpu: int, loc: int, value: Value, order: Order, mask: int | None = None) -> list[Mem]:
        assert isinstance(mem, tuple)
        return [_write(mem, loc, Buffered(loc, value, mask).onto(mem[loc]))]

    def rmw(self, mem: Mem, cpu: int, loc: int, update: Update, order: Order) -> list[tuple[Value, Mem]]:
        assert isinstance(mem, tuple)
        old = mem[loc]
        new = update(old)
        return [(old, mem if new is None else _write(mem, loc, new))]

    def fence(self, mem: Mem, cpu: int, kind: FenceKind) -> list[Mem]:
        return [mem]

    def settled(self, mem: Mem) -> tuple[Value, ...] | None:
        assert isinstance(mem, tuple)
        return mem


# The one fence that waits for the store buffer: smp_mb() (a locked add, or mfence, on x86).
# smp_mb__{before,after}_atomic() and smp_mb__after_spinlock() are barrier() on x86, because
# the atomic or spin_lock they stand next to is a locked instruction that drains the buffer.
_DRAINING_FENCES = frozenset({"mb"})


class TSO(MemoryModel):
    """x86-TSO (Sewell et al., "x86-TSO", CACM 2010): each CPU has a FIFO store buffer.

    A store enters its CPU's buffer; the buffer's oldest store drains to memory as a separate,
    nondeterministic step. A load returns memory overwritten by its own CPU's buffered stores to
    that location, oldest first: the newest whole-location store is forwarded, with any newer
    byte stores merged over it. smp_mb, smp_store_mb (xchg on x86) and every locked
    read-modify-write (xchg, cmpxchg, the atomics, spin_lock, spin_trylock) wait until the
    buffer is empty, then act on memory directly; a failed cmpxchg is locked too. smp_rmb,
    smp_wmb, smp_mb__{before,after}_atomic, smp_mb__after_spinlock, acquire and release are
    compiler barriers only (plain MOVs), as in arch/x86/include/asm/barrier.h.

    The memory is ``(values, buffers)``; buffers[cpu] is a tuple of Buffered, oldest first.
    """

    name = "tso"
    description = "x86-TSO: per-CPU FIFO store buffers"

    def initial(self, values: tuple[Value, ...], nr_cpus: int) -> Mem:
        return (values, ((),) * nr_cpus)

    def buffered(self, mem: Mem, cpu: int) -> tuple[Buffered, ...]:
        return _split(mem)[1][cpu]

    def load(self, mem: Mem, cpu: int, loc: int, order: Order) -> list[tuple[Value, Mem]]:
        values, buffers = _split(mem)
        value = values[loc]
        for pending in buffers[cpu]:
            if pending.loc == loc:
                value = pending.onto(value)  # store forwarding
        return [(value, mem)]

    def store(self, mem: Mem, cpu: int, loc: int, value: Value, order: Order, mask: int | None = None) -> list[Mem]:
        values, buffers = _split(mem)
        pending = Buffered(loc, value, mask)
        if order == "mb":  # smp_store_mb is xchg on x86: locked, so it waits for the drain
            return [(_write(values, loc, pending.onto(values[loc])), buffers)] if not buffers[cpu] else []
        return [(values, _set(buffers, cpu, (*buffers[cpu], pending)))]

    def rmw(self, mem: Mem, cpu: int, loc: int, update: Update, order: Order) -> list[tuple[Value, Mem]]:
        values, buffers = _split(mem)
        if buffers[cpu]:
            return []
        old = values[loc]
        new = update(old)
        return [(old, mem if new is None else (_write(values, loc, new), buffers))]

    def fence(self, mem: Mem, cpu: int, kind: FenceKind) -> list[Mem]:
        values, buffers = _split(mem)
        if kind in _DRAINING_FENCES and buffers[cpu]:
            return []
        return [mem]

    def internal(self, mem: Mem) -> list[tuple[int, int]]:
        _, buffers = _split(mem)
        return [(cpu, buf[0].loc) for cpu, buf in enumerate(buffers) if buf]

    def flush(self, mem: Mem, cpu: int, loc: int) -> Mem:
        values, buffers = _split(mem)
        oldest, *rest = buffers[cpu]
        if oldest.loc != loc:
            raise ValueError(f"CPU {cpu}'s oldest buffered store is to location {oldest.loc}, not {loc}")
        return (_write(values, loc, oldest.onto(values[loc])), _set(buffers, cpu, tuple(rest)))

    def settled(self, mem: Mem) -> tuple[Value, ...] | None:
        values, buffers = _split(mem)
        return None if any(buffers) else values


Buffer = tuple[Buffered, ...]  # oldest first


def _split(mem: Mem) -> tuple[tuple[Value, ...], tuple[Buffer, ...]]:
    return cast(tuple[tuple[Value, ...], tuple[Buffer, ...]], mem)


def _write(values: tuple[Value, ...], loc: int, value: Value) -> tuple[Value, ...]:
    return (*values[:loc], value, *values[loc + 1 :])


def _set(items: tuple[Buffer, ...], i: int, item: Buffer) -> tuple:
    return (*items[:i], item, *items[i + 1 :])


MEMORY_MODELS: dict[str, type[MemoryModel]] = {m.name: m for m in (SC, TSO)}
