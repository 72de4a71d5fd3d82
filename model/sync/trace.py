"""Litmus traces for people: each step as the instruction it ran (``describe``), and the steps
as per-CPU columns with the store buffers (``diagram``). The litmus engine's witnesses
(checkers/litmus.py), ``kinv litmus -v`` and the ``sync`` model's counterexamples in reports
and ``kinv replay`` (``SyncModel.diagram``) all use these."""

from __future__ import annotations

from collections.abc import Sequence

from model.contract import Step
from model.sync.machine import LitmusModel, LitmusState
from model.sync.memory import Buffered
from model.sync.program import show_instr


def describe(model: LitmusModel, steps: Sequence[Step]) -> list[str]:
    """The steps replayed from the initial state, each as the instruction it ran."""
    state = model.init_state()
    lines = []
    for step in steps:
        if step.action == "execute":
            tid = step.args[0]
            ins = model.instruction(state, tid)
            state, value = model.step(state, model.action_by_name["execute"], step.args)
            text = show_instr(ins) if ins is not None else "?"  # type: ignore[arg-type]
            read = f"  (read {value})" if value is not None else ""
            lines.append(f"P{tid}: {text}{read}")
        else:
            cpu, loc = step.args
            state, _ = model.step(state, model.action_by_name[step.action], step.args)
            lines.append(f"CPU{cpu}: store buffer drains its oldest store, to {loc}")
    return lines


def diagram(model: LitmusModel, steps: Sequence[Step], width: int = 36) -> list[str]:
    """The steps as per-CPU columns, in the style of the diagrams in the kernel's
    Documentation/memory-barriers.txt: each step in its CPU's column, in the order they ran,
    and where the memory model holds stores in flight (TSO), each CPU's store buffer after
    the step, oldest first. A drain shows in the column of the CPU whose buffer it empties."""
    nr_cpus = len(model.compiled)
    names = model.locations

    def buffers(state: LitmusState) -> str:
        shown = [
            f"CPU{cpu}: " + ", ".join(_in_flight(names[store.loc], store) for store in pending)
            for cpu in range(nr_cpus)
            if (pending := model.memory.buffered(state.mem, cpu))
        ]
        return "; ".join(shown)

    state = model.init_state()
    rows = []
    for step, text in zip(steps, describe(model, steps), strict=True):
        state, _ = model.step(state, model.action_by_name[step.action], step.args)
        cells = ["" for _ in range(nr_cpus)]
        text = text.split(": ", 1)[1] if step.action == "execute" else f"({step.args[1]} drains to memory)"
        cells[step.args[0]] = text if len(text) < width else text[: width - 2] + "~"
        rows.append((cells, buffers(state)))
    buffering = any(pending for _, pending in rows)  # no column where nothing is ever in flight
    last = "store buffers" if buffering else ""
    lines = ["    " + "".join(f"{f'CPU {cpu}':<{width}}" for cpu in range(nr_cpus)) + last]
    lines.append("    " + "=" * (len(lines[0]) - 4))
    for n, (cells, pending) in enumerate(rows, 1):
        lines.append((f"{n:>3} " + "".join(f"{c:<{width}}" for c in cells) + pending).rstrip())
    return lines


def _in_flight(name: str, store: Buffered) -> str:
    """``x=1``, or for a store to some bits of the word (qspinlock's locked byte) ``lock[7:0]=1``."""
    if store.mask is None:
        return f"{name}={store.value}"
    low = (store.mask & -store.mask).bit_length() - 1
    value = store.value >> low if isinstance(store.value, int) else store.value
    return f"{name}[{store.mask.bit_length() - 1}:{low}]={value}"
