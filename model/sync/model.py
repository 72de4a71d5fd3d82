"""The ``sync`` model: every correct protocol of the library (model/sync/protocols/) under
every memory model, as one state space.

The first step picks a (protocol, memory model) run; from then on the steps are the litmus
machine's (model/sync/machine.py): a thread's next shared-memory instruction, or a store
buffer draining. A run that has ended (every thread finished, or some thread stuck for good)
may ``restart``, back to the choice, so that random runs cover several protocols and the
explorer's deadlock check never fires on a hang that the invariants (invariants/sync.py)
are there to name: a lost wakeup, a deadlock, a BUG_ON, a final clause that fails.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from model.contract import Model, Step, action
from model.sync.litmus import parse_file
from model.sync.machine import LitmusConfig, LitmusModel, LitmusState
from model.sync.program import Program, Value
from model.sync.trace import diagram as trace_diagram

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"

# The protocols that hold under SC and TSO: each file's broken twins are the mutants'
# (checkers/mutants/sync.py). wait-woken+no-C is left out: it holds under both, but only
# because TSO is too strong to break it.
CORRECT = (
    "sleep-wake",
    "waitqueue-active",
    "wait-woken",
    "wait-woken+inline",
    "futex",
    "futex+inline",
    "lll-mutex",
    "completion",
    "ticket-spinlock",
    "qspinlock",
)


def protocol_file(name: str) -> Path:
    """The file of a protocol of the library (a module global, so that a mutant can swap a
    protocol for its broken twin)."""
    return PROTOCOL_DIR / f"{name}.litmus"


@dataclass(frozen=True)
class SyncConfig:
    protocols: tuple[str, ...] = CORRECT
    memories: tuple[str, ...] = ("sc", "tso")


@dataclass(slots=True, eq=False)
class SyncState:
    run: int  # index into SyncModel.runs, or -1 before a run is chosen
    litmus: LitmusState | None
    machine: LitmusModel | None = field(default=None, repr=False)  # the run's machine, for invariants

    def clone(self) -> SyncState:
        return SyncState(self.run, self.litmus.clone() if self.litmus is not None else None, self.machine)

    def fingerprint(self) -> Hashable:
        return (self.run, self.litmus.fingerprint() if self.litmus is not None else None)

    # What the invariants ask.

    def stuck(self) -> bool:
        """The run can take no step: it has finished or hangs."""
        if self.machine is None or self.litmus is None:
            return False
        return not any(True for _ in self.machine.enabled(self.litmus))

    @property
    def program(self) -> Program | None:
        return self.machine.program if self.machine is not None else None


def _start_domain(m: SyncModel, s: SyncState) -> Iterable[tuple[str, str]]:
    return list(m.runs) if s.run < 0 else []


def _execute_domain(m: SyncModel, s: SyncState) -> Iterable[tuple[int, int]]:
    if s.machine is None or s.litmus is None:
        return []
    return s.machine.action_by_name["execute"].domain(s.machine, s.litmus)


def _flush_domain(m: SyncModel, s: SyncState) -> Iterable[tuple[int, str]]:
    if s.machine is None or s.litmus is None:
        return []
    return s.machine.action_by_name["flush"].domain(s.machine, s.litmus)


def _restart_domain(m: SyncModel, s: SyncState) -> Iterable[tuple[()]]:
    return [()] if s.stuck() else []


class SyncModel(Model[SyncState, SyncConfig]):
    name = "sync"
    Config = SyncConfig
    profiles: ClassVar[dict[str, Any]] = {"small": SyncConfig(), "large": SyncConfig()}

    def __init__(self, config: SyncConfig | None = None) -> None:
        super().__init__(config)
        self.runs = [(name, memory) for name in self.config.protocols for memory in self.config.memories]
        self.run_index = {run: i for i, run in enumerate(self.runs)}
        self.machines: dict[int, LitmusModel] = {}

    def machine(self, run: int) -> LitmusModel:
        """The machine of a run, built on first use: a mutant (checkers/mutants/sync.py) that
        replaces the protocol files or the lowering is in force by then, even on replay,
        which builds the model before it applies the mutant."""
        if run not in self.machines:
            name, memory = self.runs[run]
            program = parse_file(protocol_file(name))
            self.machines[run] = LitmusModel(LitmusConfig(program, memory))
        return self.machines[run]

    def init_state(self) -> SyncState:
        return SyncState(-1, None)

    @action("protocol", "memory", domain=_start_domain)
    def start(self, state: SyncState, protocol: str, memory: str) -> None:
        """Run ``protocol`` under the memory model ``memory`` from its initial state."""
        state.run = self.run_index[(protocol, memory)]
        state.machine = self.machine(state.run)
        state.litmus = state.machine.init_state()

    @action("tid", "choice", domain=_execute_domain)
    def execute(self, state: SyncState, tid: int, choice: int) -> Value | None:
        """Thread tid performs its next shared-memory instruction (outcome ``choice``)."""
        assert state.machine is not None and state.litmus is not None
        return state.machine.execute(state.litmus, tid, choice)

    @action("cpu", "loc", domain=_flush_domain)
    def flush(self, state: SyncState, cpu: int, loc: str) -> None:
        """The memory system moves cpu's store to loc along (TSO: the oldest one drains)."""
        assert state.machine is not None and state.litmus is not None
        state.machine.flush(state.litmus, cpu, loc)

    @action(domain=_restart_domain)
    def restart(self, state: SyncState) -> None:
        """The run is over (finished or stuck for good): choose the next one."""
        state.run, state.litmus, state.machine = -1, None, None

    def diagram(self, steps: Sequence[Step]) -> list[str] | None:
        """The trace's last run (from its last ``start``) drawn as the litmus machine draws its
        witnesses: per-CPU columns with the store buffers (model/sync/trace.py), under a line
        naming the program run, the memory model and the steps drawn. None if no run starts."""
        trace = list(steps)
        starts = [i for i, step in enumerate(trace) if step.action == "start"]
        if not starts:
            return None
        first = starts[-1]
        protocol, memory = trace[first].args
        run = trace[first + 1 :]
        if run and run[-1].action == "restart":  # the run is over; no other step can follow it
            run.pop()
        machine = self.machine(self.run_index[(protocol, memory)])
        name = machine.program.name  # a mutant's broken twin runs in place of the protocol
        ran = name if name == protocol else f"{name} (in place of {protocol})"
        drawn = f"steps {first + 2} to {first + 1 + len(run)} of the trace" if run else "no step yet"
        return [f"{ran} under {memory}: {drawn}", *trace_diagram(machine, run)]
