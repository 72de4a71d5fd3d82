"""The litmus engine: run a concurrent program under a memory model, every interleaving, and
judge its final clause the way herd7 does.

Verdicts (herd7's ``Observation`` line, herd/top_herd.ml). Let the final states be the settled
terminal states the search reaches (every thread finished, nothing in flight), less those
that the ``filter`` proposition rejects. P is the clause's proposition; ``positive`` counts the
final states satisfying P, ``negative`` the others. Then, for every kind of clause alike:

- Never: no final state satisfies P (positive = 0; also when there is no final state);
- Always: every final state does (negative = 0 < positive);
- Sometimes: some do and some do not.

The quantifier decides only whether the clause *holds* (herd's Ok/No): ``exists P`` holds when
P is Sometimes or Always, ``~exists P`` when P is Never, ``forall P`` when P is Always. So a
test's expected result (``Result: Never``) is about P whatever the quantifier, and the witness
is the shortest trace to a final state satisfying P (``exists``, ``~exists``: the outcome the
clause asks about) or violating it (``forall``: a counterexample).

Counts are of distinct final states (herd counts executions); the verdicts are the same.
A terminal state where some thread can never go on is a hang, counted apart: a *lost wakeup*
when every thread still there sleeps (in schedule() or futex_wait()) and every other thread
has finished, so no task is left to wake them; a *deadlock* when threads wait on each other
(a spin_lock never released, an await loop on a location no one will write, a sleeper whose
only waker is itself stuck). An execution where a BUG_ON fired is an assertion failure, and
one cut off by a loop bound is counted apart too. Each kind keeps its shortest trace.
"""

from __future__ import annotations

import csv
import time
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model.contract import Step
from model.sync.litmus import LitmusError, UnsupportedPrimitive, parse_file, stated_result
from model.sync.machine import (
    LitmusConfig,
    LitmusModel,
    LitmusState,
    ProgramError,
    describe_hang,
    evaluate,
)
from model.sync.memory import MEMORY_MODELS, TSO
from model.sync.program import (
    Await,
    Bug,
    Const,
    Load,
    LocRef,
    Program,
    RegRef,
    SpinIsLocked,
    eval_prop,
    prop_refs,
)
from model.sync.trace import describe

DEFAULT_MAX_STATES = 2_000_000

AGREES = "agrees"
STRONGER = "stronger than LKMM"
DISAGREES = "DISAGREES"


@dataclass
class LitmusResult:
    """One program under one memory model, searched exhaustively (unless ``complete`` is false)."""

    name: str
    memory: str
    verdict: str  # Never, Sometimes, Always (about the proposition), or Unknown when bounded
    holds: bool  # the clause, quantifier included (herd's Ok)
    positive: int  # final states that pass the filter and satisfy the proposition
    negative: int  # final states that pass the filter and do not
    filtered: int  # final states the filter removed
    deadlocks: int  # terminal states where threads wait on each other forever
    cut: int  # terminal states cut off by a loop bound
    states: int
    transitions: int
    seconds: float
    complete: bool = True
    witness: list[str] = field(default_factory=list)  # the shortest witness trace, step by step
    witness_steps: list[Step] = field(default_factory=list)
    deadlock_witness: list[str] = field(default_factory=list)  # the shortest trace to a deadlock
    outcomes: list[str] = field(default_factory=list)  # distinct final outcomes, herd-style
    lost_wakeups: int = 0  # terminal states where only sleepers are left, with no waker
    bugs: int = 0  # terminal states where a BUG_ON fired
    deadlock_steps: list[Step] = field(default_factory=list)
    lost_wakeup_witness: list[str] = field(default_factory=list)  # the shortest trace to one
    lost_wakeup_steps: list[Step] = field(default_factory=list)
    bug_witness: list[str] = field(default_factory=list)
    bug_steps: list[Step] = field(default_factory=list)
    hang: str = ""  # what the first lost wakeup or deadlock found looks like
    reduction: str = "none"
    # The full search's counts, when a reduced one is compared with it (run(compare=True)).
    unreduced_states: int | None = None
    unreduced_transitions: int | None = None

    @property
    def correct(self) -> bool:
        """A protocol's verdict: the search finished, the clause holds, and no execution hangs,
        hits a BUG_ON or runs past a loop bound."""
        return (
            self.complete
            and self.holds
            and not (self.deadlocks or self.lost_wakeups or self.bugs or self.cut)
        )

    @property
    def shown(self) -> str:
        """The verdict as the kernel's Result lines spell it: no final state at all is DEADLOCK."""
        return "DEADLOCK" if self.complete and self.positive + self.negative == 0 else self.verdict

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.shown,
            "holds": self.holds,
            "positive": self.positive,
            "negative": self.negative,
            "filtered": self.filtered,
            "deadlocks": self.deadlocks,
            "states": self.states,
            "transitions": self.transitions,
            "seconds": self.seconds,
            "complete": self.complete,
            "outcomes": self.outcomes,
            "witness": self.witness,
            "deadlock_witness": self.deadlock_witness,
            "lost_wakeups": self.lost_wakeups,
            "lost_wakeup_witness": self.lost_wakeup_witness,
            "bugs": self.bugs,
            "bug_witness": self.bug_witness,
            "hang": self.hang,
            "reduction": self.reduction,
            "unreduced_states": self.unreduced_states,
            "unreduced_transitions": self.unreduced_transitions,
        }


def run(
    program: Program,
    memory: str = "sc",
    *,
    max_states: int = DEFAULT_MAX_STATES,
    reduction: str = "none",
    compare: bool = False,
) -> LitmusResult:
    """Breadth-first search of every state of ``program`` under ``memory``; the verdict of its
    final clause. Raises ProgramError if a thread goes wrong (a pointer used as a number).

    Reductions (Godefroid, "Partial-Order Methods for the Verification of Concurrent
    Systems", 1996): ``"sleep"`` prunes transitions with sleep sets, visiting every reachable
    state; ``"por"`` adds persistent sets, taking only one thread's steps where no other
    thread can ever touch what they touch, so some non-terminal states are skipped. Every
    property the engine reports is of terminal states, which both keep, so the verdict,
    outcomes and hang, BUG_ON and cut counts are those of the full search; only the witnesses
    may be longer than the shortest ones, which is why the default is ``"none"``.

    ``"symmetry"`` merges states that differ only by a permutation of identical threads (same
    code and initial registers, none of their registers in the final clause), and
    ``"por+symmetry"`` adds persistent sets to it (without sleep sets, whose transitions name
    threads). Final states that differ only so are counted once, so ``positive``, ``negative``
    and the hang counts may be smaller; the verdict, outcomes and whether any execution hangs
    or hits a BUG_ON are those of the full search.

    With ``compare``, a reduced search is followed by the full one, whose state and
    transition counts the result carries, and whose witnesses, the shortest, it reports."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r} (known: {', '.join(REDUCTIONS)})")
    if compare and reduction != "none":
        reduced = run(program, memory, max_states=max_states, reduction=reduction)
        full = run(program, memory, max_states=max_states)
        return replace(
            full,
            reduction=reduction,
            states=reduced.states,
            transitions=reduced.transitions,
            seconds=reduced.seconds,
            unreduced_states=full.states,
            unreduced_transitions=full.transitions,
        )
    model = LitmusModel(LitmusConfig(program, memory))
    por = reduction != "none"
    use_sleep_sets = reduction in ("sleep", "por")  # sleep sets name threads: not under symmetry
    may_bug = [any(isinstance(ins, Bug) for ins in comp.code) for comp in model.compiled]
    table = _Conflicts(model) if reduction in ("por", "por+symmetry") else None
    groups = symmetric_groups(program) if "symmetry" in reduction else []

    def fingerprint(state: LitmusState) -> Hashable:
        return _canonical(model, state, groups) if groups else state.fingerprint()

    sleep: dict[Hashable, frozenset[Hashable]] = {}  # the state's sleep set: keys not to take
    taken: dict[Hashable, set[Hashable]] = {}  # the keys already taken from the state
    pending: set[Hashable] = set()  # states in the queue
    expanded: set[Hashable] = set()
    final = program.final
    shown_refs = _unique([*final.locations, *prop_refs(final.prop)])
    start = time.perf_counter()
    init = model.init_state()
    parent: dict[Hashable, tuple[Hashable, Step] | None] = {fingerprint(init): None}
    queue: deque[LitmusState] = deque([init])
    if por:
        sleep[fingerprint(init)] = frozenset()
        pending.add(fingerprint(init))
    positive = negative = filtered = deadlocks = cut = transitions = lost = bugs = 0
    witness_fp: Hashable | None = None
    deadlock_fp: Hashable | None = None
    lost_fp: Hashable | None = None
    bug_fp: Hashable | None = None
    hang = ""
    outcomes: set[tuple[Any, ...]] = set()
    complete = True
    want = final.quantifier != "forall"  # the witness satisfies P, or for forall violates it
    while queue:
        state = queue.popleft()
        fp = fingerprint(state)
        enabled = list(model.enabled(state))
        terminal = not enabled
        if por:
            revisit = fp in expanded  # expanded before: only what a smaller sleep set wakes
            expanded.add(fp)
            pending.discard(fp)
            asleep = sleep[fp]
            done = taken.setdefault(fp, set())
            feet: dict[Hashable, _Foot] = {
                (act.name, args): _footprint(model, state, act, args, may_bug) for act, args in enabled
            }
            slept = [k for k in asleep if k in feet]
            siblings: list[Hashable] = []
            if table is not None:
                ample = table.ample(state, feet)
                if ample is not None:
                    enabled = [(a, g) for a, g in enabled if (a.name, g) in ample]
        for act, args in enabled:
            if por:
                key = (act.name, args)
                if key in asleep or key in done:
                    continue
                done.add(key)
                foot = feet[key]
                znew = frozenset(
                    k for k in (*slept, *siblings) if use_sleep_sets and _independent(feet[k], foot)
                )
                siblings.append(key)
            nxt, _ = model.step(state, act, args)
            transitions += 1
            nfp = fingerprint(nxt)
            if por:
                old = sleep.get(nfp)
                if old is None:
                    sleep[nfp] = znew
                elif not old <= znew:
                    # Reached again with fewer transitions asleep: those woken must be taken
                    # from it too (the state-caching fix of Godefroid's sleep-set search).
                    sleep[nfp] = old & znew
                    if nfp in parent and nfp not in pending:
                        pending.add(nfp)
                        queue.append(nxt)
                        continue
            if nfp in parent:
                continue
            if len(parent) >= max_states:
                complete = False
                queue.clear()
                break
            parent[nfp] = (fp, Step(act.name, args))
            queue.append(nxt)
            if por:
                pending.add(nfp)
        if not terminal or (por and revisit):
            continue
        if model.bugged(state):
            bugs += 1
            bug_fp = fp if bug_fp is None else bug_fp
        elif model.cut(state):
            cut += 1
        elif not model.is_final(state):
            blocked = model.blocked(state)
            sleeping = bool(blocked) and all(kind in ("sleep", "futex") for kind in blocked.values())
            if sleeping:
                lost += 1
                lost_fp = fp if lost_fp is None else lost_fp
            else:
                deadlocks += 1
                deadlock_fp = fp if deadlock_fp is None else deadlock_fp
            if (sleeping and lost == 1) or (not sleeping and deadlocks == 1 and not hang):
                hang = describe_hang(blocked, sleeping)
        else:
            values = model.final_values(state)
            if final.filter is not None and not eval_prop(final.filter, values):
                filtered += 1
                continue
            outcomes.add(tuple(values.get(r, 0) for r in shown_refs))
            ok = eval_prop(final.prop, values)
            if ok:
                positive += 1
            else:
                negative += 1
            if ok == want and witness_fp is None:
                witness_fp = fp
    seconds = time.perf_counter() - start
    if not complete:
        verdict = "Unknown"
    elif positive == 0:
        verdict = "Never"
    elif negative == 0:
        verdict = "Always"
    else:
        verdict = "Sometimes"
    holds = {"exists": positive > 0, "~exists": positive == 0, "forall": negative == 0}[final.quantifier]
    steps = _path(parent, witness_fp) if witness_fp is not None else []
    deadlock_steps = _path(parent, deadlock_fp) if deadlock_fp is not None else []
    lost_steps = _path(parent, lost_fp) if lost_fp is not None else []
    bug_steps = _path(parent, bug_fp) if bug_fp is not None else []
    return LitmusResult(
        name=program.name,
        memory=memory,
        verdict=verdict,
        holds=holds,
        positive=positive,
        negative=negative,
        filtered=filtered,
        deadlocks=deadlocks,
        cut=cut,
        states=len(parent),
        transitions=transitions,
        seconds=round(seconds, 4),
        complete=complete,
        witness=describe(model, steps),
        witness_steps=steps,
        deadlock_witness=describe(model, deadlock_steps),
        outcomes=sorted("; ".join(f"{r}={v}" for r, v in zip(shown_refs, o, strict=True)) for o in outcomes),
        lost_wakeups=lost,
        bugs=bugs,
        deadlock_steps=deadlock_steps,
        lost_wakeup_witness=describe(model, lost_steps),
        lost_wakeup_steps=lost_steps,
        bug_witness=describe(model, bug_steps),
        bug_steps=bug_steps,
        hang=hang,
        reduction=reduction,
    )


REDUCTIONS = ("none", "sleep", "por", "symmetry", "por+symmetry")


def _shape(obj: Any) -> Any:
    """An instruction tree with its source lines left out, to compare two threads' code."""
    if isinstance(obj, tuple):
        return tuple(_shape(o) for o in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return (
            type(obj).__name__,
            *(_shape(getattr(obj, f)) for f in obj.__dataclass_fields__ if f != "line"),
        )
    return obj


def symmetric_groups(program: Program) -> list[list[int]]:
    """Groups of two or more threads that a permutation maps onto each other: the same code
    and registers, the same initial registers, and no register of theirs in the final clause,
    its filter or its locations (which then read the same after any permutation)."""
    final = program.final
    named = {
        r.tid
        for r in [*final.locations, *prop_refs(final.prop), *prop_refs(final.filter)]
        if isinstance(r, RegRef)
    }
    by_shape: dict[Any, list[int]] = {}
    for t in program.threads:
        if t.tid in named:
            continue
        init = tuple(program.reg_init.get((t.tid, r), 0) for r in t.registers)
        by_shape.setdefault((_shape(t.body), t.registers, init), []).append(t.tid)
    return [tids for tids in by_shape.values() if len(tids) > 1]


def _canonical(model: LitmusModel, state: LitmusState, groups: list[list[int]]) -> Hashable:
    """The fingerprint with each group's threads sorted, each with its CPU's store buffer."""
    threads = list(state.threads)
    # TSO's memory is (values, per-CPU buffers); SC's has nothing per CPU.
    bufs: list[Any] | None = list(state.mem[1]) if isinstance(model.memory, TSO) else None  # type: ignore[index]
    for tids in groups:
        items = sorted(((threads[t], bufs[t] if bufs is not None else ()) for t in tids), key=repr)
        for t, (thread, buf) in zip(tids, items, strict=True):
            threads[t] = thread
            if bufs is not None:
                bufs[t] = buf
    mem = (state.mem[0], tuple(bufs)) if bufs is not None else state.mem  # type: ignore[index]
    return (tuple(threads), mem)


# A transition's footprint: (thread or CPU, location touched or None, writes it, global). A
# store-buffer flush of (cpu, loc) belongs to cpu and writes loc; a fence touches only its
# CPU's buffer; a step after which a BUG_ON fires stops every thread, so it is global.
_Foot = tuple[int, int | None, bool, bool]


def _footprint(
    model: LitmusModel, state: LitmusState, act: Any, args: tuple[Any, ...], may_bug: list[bool]
) -> _Foot:
    if act.name == "flush":
        cpu, loc = args
        return (cpu, model.loc_index[loc], True, False)
    tid = args[0]
    ins = model.instruction(state, tid)
    bug = may_bug[tid] and bool(model.bugged(model.step(state, act, args)[0]))
    addr = getattr(ins, "addr", None)
    if addr is None:
        return (tid, None, False, bug)
    pc, regs = state.threads[tid]
    comp = model.compiled[tid]
    where = evaluate(addr, regs, comp.index)
    loc = model.loc_index[where] if isinstance(where, str) else None
    writes = not isinstance(ins, (Load, Await, SpinIsLocked))
    return (tid, loc, writes, bug)


def _independent(a: _Foot, b: _Foot) -> bool:
    """Steps that commute and neither enables nor disables the other."""
    if a[0] == b[0] or a[3] or b[3]:
        return False
    return a[1] is None or b[1] is None or a[1] != b[1] or not (a[2] or b[2])


class _Conflicts:
    """What each thread (and its CPU's store buffer) may ever touch, from its code: a step
    that conflicts with none of the other threads' is a persistent set on its own."""

    def __init__(self, model: LitmusModel) -> None:
        self.model = model
        n = len(model.locations)
        self.reads: list[set[int]] = []
        self.writes: list[set[int]] = []
        self.may_bug = [any(isinstance(ins, Bug) for ins in comp.code) for comp in model.compiled]
        for comp in model.compiled:
            reads: set[int] = set()
            writes: set[int] = set()
            for ins in comp.code:
                addr = getattr(ins, "addr", None)
                if addr is None:
                    continue
                where = addr.value if isinstance(addr, Const) else None
                locs = {model.loc_index[where]} if isinstance(where, str) else set(range(n))
                (reads if isinstance(ins, (Load, Await, SpinIsLocked)) else writes).update(locs)
            self.reads.append(reads)
            self.writes.append(writes)

    def ample(self, state: LitmusState, feet: dict[Hashable, _Foot]) -> set[Hashable] | None:
        """The steps of the first thread whose steps no other thread can ever depend on, or
        None. Its CPU's buffer must be empty (a flush is the CPU's own step, and writes)."""
        model = self.model
        by_thread: dict[int, set[Hashable]] = {}
        for key, foot in feet.items():
            by_thread.setdefault(foot[0], set()).add(key)
        live = [u for u in range(len(state.threads)) if not model.done(state, u)]
        for tid, keys in by_thread.items():
            if any(k[0] != "execute" for k in keys):  # type: ignore[index]
                continue
            if any(self.may_bug[u] for u in live if u != tid):
                return None  # a BUG_ON elsewhere stops this thread too
            if all(self._private(tid, feet[k]) for k in keys):
                return keys
        return None

    def _private(self, tid: int, foot: _Foot) -> bool:
        _, loc, writes, bug = foot
        if bug:
            return False
        if loc is None:
            return True
        for u in range(len(self.reads)):
            if u != tid and (loc in self.writes[u] or (writes and loc in self.reads[u])):
                return False
        return True


def _unique(refs: Iterable[RegRef | LocRef]) -> list[RegRef | LocRef]:
    return list(dict.fromkeys(refs))


def _path(parent: dict[Hashable, tuple[Hashable, Step] | None], fp: Hashable) -> list[Step]:
    steps = []
    link = parent[fp]
    while link is not None:
        fp, step = link
        steps.append(step)
        link = parent[fp]
    return steps[::-1]


# Files, expected results and agreement with LKMM.


@dataclass
class FileReport:
    """One litmus file: its expected result and its result under each memory model."""

    file: str
    name: str
    expected: str  # from MANIFEST.tsv, else the file's Result: comment, else "-"
    results: dict[str, LitmusResult] = field(default_factory=dict)
    unsupported: str | None = None  # the primitive that stopped the parse

    def judgement(self, memory: str) -> str:
        if self.unsupported is not None:
            return ""
        return judge(self.expected, self.results[memory])

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "expected": self.expected,
            "unsupported": self.unsupported,
            "models": {m: {**r.to_json(), "judgement": self.judgement(m)} for m, r in self.results.items()},
            "states": sum(r.states for r in self.results.values()),
            "seconds": round(sum(r.seconds for r in self.results.values()), 4),
        }


def judge(expected: str, result: LitmusResult) -> str:
    """How a model's verdict stands to LKMM's expected one. SC and TSO are stronger than LKMM:
    forbidding what LKMM allows is expected of them ("stronger than LKMM"); allowing what LKMM
    forbids is a disagreement."""
    if expected not in ("Never", "Sometimes", "Always", "DEADLOCK") or not result.complete:
        return ""
    got = result.shown
    if got == expected or (expected == "Never" and got == "DEADLOCK"):
        return AGREES
    if expected == "Sometimes" and got in ("Never", "Always", "DEADLOCK"):
        return STRONGER
    return DISAGREES


def litmus_files(paths: Sequence[str | Path]) -> list[Path]:
    """Every .litmus file named, or under a directory named."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.rglob("*.litmus"))
            if not files:
                raise LitmusError(str(p), 0, "no .litmus files in this directory")
            found += files
        elif p.is_file():
            found.append(p)
        else:
            raise LitmusError(str(p), 0, "no such file or directory")
    return found


def expected_result(file: Path, manifests: dict[Path, dict[Path, str]]) -> str | None:
    """The expected result that a MANIFEST.tsv in the file's directory or one above it gives
    for the file (its ``path`` column is relative to the manifest's directory)."""
    target = file.resolve()
    for here in target.parents:
        manifest = here / "MANIFEST.tsv"
        if manifest.is_file():
            if manifest not in manifests:
                manifests[manifest] = _read_manifest(manifest)
            found = manifests[manifest].get(target)
            if found is not None:
                return found
    return None


def _read_manifest(manifest: Path) -> dict[Path, str]:
    with manifest.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or "path" not in rows[0] or "expected" not in rows[0]:
        raise LitmusError(
            str(manifest), 1, "a MANIFEST.tsv needs a header row with path and expected columns"
        )
    path_col, expected_col = rows[0].index("path"), rows[0].index("expected")
    out = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) <= max(path_col, expected_col):
            raise LitmusError(
                str(manifest), n, f"expected {len(rows[0])} tab-separated columns, found {len(row)}"
            )
        out[(manifest.parent / row[path_col]).resolve()] = row[expected_col]
    return out


def run_paths(
    paths: Sequence[str | Path],
    models: Sequence[str] = ("sc", "tso"),
    *,
    max_states: int = DEFAULT_MAX_STATES,
    reduction: str = "none",
) -> list[FileReport]:
    """Parse every litmus file first (a malformed one raises LitmusError before anything runs),
    then run each under each memory model."""
    unknown = [m for m in models if m not in MEMORY_MODELS]
    if unknown:
        raise ValueError(f"unknown memory model {unknown[0]!r} (known: {', '.join(MEMORY_MODELS)})")
    manifests: dict[Path, dict[Path, str]] = {}
    parsed: list[tuple[FileReport, Program | None]] = []
    for file in litmus_files(paths):
        expected = expected_result(file, manifests)
        try:
            program: Program | None = parse_file(file)
        except UnsupportedPrimitive as e:
            expected = expected or stated_result(file.read_text())
            report = FileReport(str(file), file.stem, expected or "-", unsupported=e.primitive)
            parsed.append((report, None))
            continue
        assert program is not None
        report = FileReport(str(file), program.name, expected or program.expected or "-")
        parsed.append((report, program))
    for report, program in parsed:
        if program is None:
            continue
        for memory in models:
            try:
                report.results[memory] = run(
                    program, memory, max_states=max_states, reduction=reduction, compare=reduction != "none"
                )
            except ProgramError as e:
                raise LitmusError(report.file, 0, str(e)) from None
    return [r for r, _ in parsed]
