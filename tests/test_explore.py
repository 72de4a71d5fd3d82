"""The explore engine on models with known state spaces: two-phase commit (published counts),
a lock-ordering model with a known deadlock, and deliberately broken variants."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
import pytest

from checkers.control import Control
from checkers.explore import explore
from checkers.graph import to_dot, to_graphml
from checkers.results import Counterexample
from invariants import Goal, Invariant
from model.calibration.two_phase_commit import (
    ABORTED,
    COMMITTED,
    INIT,
    TwoPhaseConfig,
    TwoPhaseModel,
    TwoPhaseState,
)
from model.contract import Action, Args, Model, action, digest


def _tc_consistent(s: TwoPhaseState) -> list[str]:
    if COMMITTED in s.rm_state and ABORTED in s.rm_state:
        return [f"RM {s.rm_state.index(COMMITTED)} committed while RM {s.rm_state.index(ABORTED)} aborted"]
    return []


TC_CONSISTENT = Invariant(
    "two_phase_commit.consistent", "two_phase_commit", "No RM has committed while another has aborted.",
    "TwoPhase.tla TCConsistent", _tc_consistent,
)


def _never_committed(s: TwoPhaseState) -> list[str]:
    return [f"RM {s.rm_state.index(COMMITTED)} committed"] if COMMITTED in s.rm_state else []


NEVER_COMMITTED = Invariant("test.never_committed", "two_phase_commit", "No RM commits.", "test", _never_committed)


def _prepared_never_grows(before: TwoPhaseState, step: Any, after: TwoPhaseState) -> list[str]:
    grown = after.tm_prepared - before.tm_prepared
    return [f"{step.action} added RMs {sorted(grown)} to tm_prepared"] if grown else []


PREPARED_NEVER_GROWS = Invariant(
    "test.prepared_never_grows", "two_phase_commit", "tm_prepared never grows.", "test", _prepared_never_grows,
    transition=True,
)


def reference_depths(model: Model[Any, Any]) -> tuple[dict[Any, int], int]:
    """A plain BFS through model.enabled/step: depth of every fingerprint, and the edge count."""
    init = model.init_state()
    depths = {init.fingerprint(): 0}
    queue = deque([init])
    edges = 0
    while queue:
        state = queue.popleft()
        d = depths[state.fingerprint()]
        for act, args in model.enabled(state):
            nxt, _ = model.step(state, act, args)
            edges += 1
            fp = nxt.fingerprint()
            if fp not in depths:
                depths[fp] = d + 1
                queue.append(nxt)
    return depths, edges


def replay(model: Model[Any, Any], cex: Counterexample) -> tuple[Any, list[str]]:
    """Re-run a counterexample from the initial state, checking every step is enabled."""
    state = model.init_state()
    digests = [digest(state.fingerprint())]
    for step in cex.steps:
        act = model.action_by_name[step.action]
        assert model.is_enabled(state, act, step.args), f"{step} is not enabled"
        state, _ = model.step(state, act, step.args)
        digests.append(digest(state.fingerprint()))
    return state, digests


# Two-phase commit: published state counts.


@pytest.mark.parametrize("rms, states", [(3, 288), (5, 8_832)])
def test_two_phase_commit_state_count(rms: int, states: int) -> None:
    model = TwoPhaseModel(TwoPhaseConfig(rms))
    result = explore(model, [TC_CONSISTENT])
    assert result.status == "pass"
    assert result.stats["states"] == states
    assert result.stats["complete"] is True
    assert result.strength == f"exhaustive: all {states:,} reachable states"
    depths, edges = reference_depths(model)
    assert result.stats["transitions"] == edges
    assert result.stats["max_depth"] == max(depths.values())


def test_generic_path_matches_fast_path() -> None:
    """A model that overrides enabled() is driven through it, with the same results."""

    class Reordered(TwoPhaseModel):
        def enabled(self, state: TwoPhaseState) -> Iterator[tuple[Action, Args]]:
            yield from reversed(list(super().enabled(state)))

    fast = explore(TwoPhaseModel(TwoPhaseConfig(3)), [NEVER_COMMITTED])
    generic = explore(Reordered(TwoPhaseConfig(3)), [NEVER_COMMITTED])
    assert generic.counterexample is not None and fast.counterexample is not None
    assert len(generic.counterexample.steps) == len(fast.counterexample.steps)
    assert replay(Reordered(TwoPhaseConfig(3)), generic.counterexample)[1] == generic.counterexample.digests
    whole = explore(Reordered(TwoPhaseConfig(3)), [])
    assert (whole.stats["states"], whole.stats["transitions"]) == (288, 1145)


# Bounds.


def test_depth_budget_is_a_bounded_pass_and_says_so() -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    depths, _ = reference_depths(model)
    result = explore(model, [TC_CONSISTENT], max_depth=3)
    within = sum(1 for d in depths.values() if d <= 3)
    assert result.stats["states"] == within
    assert result.stats["complete"] is False
    assert result.stats["bound"] == "depth"
    assert result.strength == f"bounded: every state to depth 3 ({within} states; budget: depth 3)"
    assert result.status == "bounded-pass"


def test_state_budget_is_a_bounded_pass_and_names_the_depth_covered() -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    depths, _ = reference_depths(model)
    result = explore(model, [], max_states=50)
    covered = max(d for d in range(20) if sum(1 for x in depths.values() if x <= d) <= 50)
    assert result.stats["states"] == 50
    assert (result.stats["complete"], result.stats["bound"]) == (False, "states")
    assert result.strength == f"bounded: every state to depth {covered} (50 states; budget: 50 states)"
    assert result.status == "bounded-pass"


def test_an_exhaustive_search_is_a_pass() -> None:
    result = explore(TwoPhaseModel(TwoPhaseConfig(3)), [TC_CONSISTENT])
    assert result.status == "pass" and result.complete


def test_a_stopped_control_ends_the_search_as_incomplete() -> None:
    """The control is read before each state is expanded: stopped by the 40th new state (here
    from inside the search, so that the test does not depend on time), the run ends there,
    as incomplete, never as a pass."""
    control = Control()
    seen = [0]

    def count(state: TwoPhaseState) -> list[str]:
        seen[0] += 1
        if seen[0] == 40:
            control.stop("interrupted")
        return []

    watcher = Invariant("test.count", "two_phase_commit", "", "", count)
    result = explore(TwoPhaseModel(TwoPhaseConfig(3)), [watcher], control=control)
    assert result.status == "incomplete" and result.stopped == "interrupted"
    assert result.stats["bound"] == "interrupted" and not result.complete
    assert 40 <= result.stats["states"] < 288
    assert result.strength.startswith("incomplete, interrupted: every state to depth")


def test_goals_are_reached_at_their_depth_or_reported_unreached() -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    depths, _ = reference_depths(model)
    committed = Goal("test.committed", "two_phase_commit", "an RM commits", lambda s: COMMITTED in s.rm_state)
    never = Goal("test.never", "two_phase_commit", "nothing", lambda s: False)
    commit_step = Goal("test.commit_step", "two_phase_commit", "the TM commits",
                       lambda before, step, after: step.action == "tm_commit", transition=True)
    result = explore(model, [], goals=[committed, never, commit_step])
    shortest = min(d for fp, d in depths.items() if COMMITTED in fp[0])
    assert result.goals == {"test.committed": shortest, "test.never": None, "test.commit_step": shortest - 1}
    assert result.status == "pass"  # the engine reports; a check run decides what is vacuous


# Counterexamples.


def test_shortest_counterexample_replays() -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    result = explore(model, [TC_CONSISTENT, NEVER_COMMITTED], mutant="none")
    cex = result.counterexample
    assert cex is not None and result.status == "fail"
    assert (cex.invariant, cex.kind, cex.engine, cex.mutant) == ("test.never_committed", "invariant", "explore", "none")
    # Every RM prepares, the TM hears all three and commits, one RM hears the commit: 8 steps.
    depths, _ = reference_depths(model)
    shortest = min(d for fp, d in depths.items() if COMMITTED in fp[0])
    assert len(cex.steps) == shortest == 8
    assert [s.action for s in cex.steps][-2:] == ["tm_commit", "rm_rcv_commit_msg"]
    state, digests = replay(model, cex)
    assert digests == cex.digests
    assert _never_committed(state) == cex.violations
    assert (cex.model, cex.signature, cex.config) == (model.name, model.signature(), {"rms": 3})
    assert result.strength == f"every state to depth 7 ({result.stats['states']:,} states) before a violation at depth 8"


def test_counterexample_is_deterministic() -> None:
    runs = [explore(TwoPhaseModel(TwoPhaseConfig(3)), [NEVER_COMMITTED]).counterexample for _ in range(2)]
    assert runs[0] is not None and runs[1] is not None
    assert runs[0].to_json() == runs[1].to_json()


def _commit_early_domain(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
    return m.no_args if s.tm_state == INIT else ()


class CommitEarly(TwoPhaseModel):
    """The TM commits without waiting for every RM's Prepared message."""

    @action(domain=_commit_early_domain)
    def tm_commit(self, s: TwoPhaseState) -> None:
        TwoPhaseModel.tm_commit(self, s)


def test_broken_protocol_is_caught_with_a_shortest_trace() -> None:
    model = CommitEarly(TwoPhaseConfig(3))
    result = explore(model, [TC_CONSISTENT])
    cex = result.counterexample
    assert cex is not None
    assert cex.invariant == "two_phase_commit.consistent"
    # One RM aborts on its own, the TM commits anyway, another RM hears the commit.
    assert sorted(s.action for s in cex.steps) == ["rm_choose_to_abort", "rm_rcv_commit_msg", "tm_commit"]
    assert replay(model, cex)[1] == cex.digests


def test_transition_invariant_counterexample_ends_with_the_failing_step() -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    cex = explore(model, [TC_CONSISTENT, PREPARED_NEVER_GROWS]).counterexample
    assert cex is not None
    assert [s.action for s in cex.steps] == ["rm_prepare", "tm_rcv_prepared"]
    assert cex.steps[0].args == cex.steps[1].args
    assert cex.violations == [f"tm_rcv_prepared added RMs [{cex.steps[1].args[0]}] to tm_prepared"]
    assert replay(model, cex)[1] == cex.digests


def _moves(before: TwoPhaseState, step: Any, after: TwoPhaseState) -> list[str]:
    return [f"{step.action}{step.args} changes nothing"] if after.fingerprint() == before.fingerprint() else []


def test_transition_invariant_is_checked_on_edges_into_known_states() -> None:
    """The first self-loop (an RM hearing Abort twice, say) is an edge back into a stored state."""
    model = TwoPhaseModel(TwoPhaseConfig(3))
    moves = Invariant("test.every_step_moves", "two_phase_commit", "Every step changes the state.", "test", _moves,
                      transition=True)
    cex = explore(model, [moves]).counterexample
    assert cex is not None and len(cex.steps) == 3
    assert cex.digests[-1] == cex.digests[-2]
    assert replay(model, cex)[1] == cex.digests


def test_violation_in_the_initial_state() -> None:
    always = Invariant("test.always_fails", "two_phase_commit", "Nothing holds.", "test", lambda s: ["fails"])
    model = TwoPhaseModel(TwoPhaseConfig(2))
    result = explore(model, [always])
    cex = result.counterexample
    assert cex is not None and cex.steps == []
    assert cex.digests == [digest(model.init_state().fingerprint())]
    assert result.strength == "violation in the initial state"


# Deadlock: two threads taking two locks, in the same or in opposite order (ABBA).


@dataclass(frozen=True)
class LocksConfig:
    orders: tuple[tuple[str, ...], ...] = (("A", "B"), ("B", "A"))


@dataclass
class LocksState:
    pc: list[int]  # per thread: locks taken so far, then one release step per lock
    owner: dict[str, int]  # lock -> holding thread

    def fingerprint(self) -> tuple[Any, ...]:
        return (tuple(self.pc), tuple(sorted(self.owner.items())))

    def clone(self) -> LocksState:
        return LocksState(list(self.pc), dict(self.owner))


def _runnable(m: LocksModel, s: LocksState) -> Iterable[Args]:
    for tid, order in enumerate(m.config.orders):
        pc = s.pc[tid]
        if pc < len(order) and order[pc] in s.owner:
            continue  # spinning on a held lock
        if pc < 2 * len(order):
            yield (tid,)


class LocksModel(Model[LocksState, LocksConfig]):
    name = "test_locks"
    Config = LocksConfig
    profiles = {"small": LocksConfig(), "large": LocksConfig()}

    def init_state(self) -> LocksState:
        return LocksState([0] * len(self.config.orders), {})

    @action("tid", domain=_runnable)
    def run(self, s: LocksState, tid: int) -> None:
        order = self.config.orders[tid]
        pc = s.pc[tid]
        if pc < len(order):
            s.owner[order[pc]] = tid
        else:
            del s.owner[order[2 * len(order) - 1 - pc]]
        s.pc[tid] = pc + 1

    def is_final(self, s: LocksState) -> bool:
        return all(pc == 2 * len(o) for pc, o in zip(s.pc, self.config.orders, strict=True))


def test_abba_deadlock_found_with_shortest_trace() -> None:
    model = LocksModel()
    result = explore(model, [])
    cex = result.counterexample
    assert cex is not None and result.status == "fail"
    assert (cex.kind, cex.invariant) == ("deadlock", "deadlock")
    assert sorted(s.args for s in cex.steps) == [(0,), (1,)]
    state, digests = replay(model, cex)
    assert digests == cex.digests
    assert state.owner == {"A": 0, "B": 1}
    assert result.strength.endswith("before a deadlock at depth 2")


def test_same_lock_order_has_no_deadlock_and_final_states_are_not_deadlocks() -> None:
    result = explore(LocksModel(LocksConfig((("A", "B"), ("A", "B")))), [])
    assert result.status == "pass" and result.stats["complete"]


def test_deadlock_check_can_be_turned_off() -> None:
    result = explore(LocksModel(), [], check_deadlock=False)
    assert result.status == "pass" and result.stats["complete"]


# Graph, progress, memory.


def test_graph_export_round_trips(tmp_path: Any) -> None:
    model = TwoPhaseModel(TwoPhaseConfig(3))
    result = explore(model, [TC_CONSISTENT], keep_graph=True)
    graph = result.graph
    assert graph.number_of_nodes() == 288
    init = digest(model.init_state().fingerprint())
    assert graph.nodes[init] == {"depth": 0, "init": True}
    labels = {data["label"] for _, _, data in graph.edges(data=True)}
    assert "tm_commit()" in labels and "rm_prepare(rm=0)" in labels
    assert all(graph.nodes[v]["depth"] <= graph.nodes[u]["depth"] + 1 for u, v in graph.edges)

    to_dot(graph, tmp_path / "g.dot")
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith('digraph "two_phase_commit" {')
    edges = set(re.findall(r'^  "(\w+)" -> "(\w+)" \[label="([^"]*)"\];$', text, re.M))
    nodes = set(re.findall(r'^  "(\w+)" \[label=', text, re.M))
    assert nodes == set(graph.nodes)
    assert edges == {(u, v, d["label"]) for u, v, d in graph.edges(data=True)}

    to_graphml(graph, tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert set(back.nodes) == set(graph.nodes)
    assert {(u, v, d["label"]) for u, v, d in back.edges(data=True)} == edges


def test_no_graph_unless_asked() -> None:
    assert explore(TwoPhaseModel(TwoPhaseConfig(2)), []).graph is None


def test_progress_reports_the_final_figures() -> None:
    seen: list[dict[str, Any]] = []
    explore(TwoPhaseModel(TwoPhaseConfig(3)), [], progress=seen.append)
    assert seen and seen[-1]["states"] == 288 and seen[-1]["frontier"] == 0
    assert set(seen[-1]) == {"states", "depth", "seconds", "frontier"}


def test_memory_measure_counts_the_table() -> None:
    stats = explore(TwoPhaseModel(TwoPhaseConfig(3)), [], measure_memory=True).stats
    assert stats["table_bytes"] > 288 * 50
    assert stats["bytes_per_state"] == round(stats["table_bytes"] / 288, 1)


# A model that breaks the contract: its action depends on hidden state, so traces cannot replay.


@dataclass
class Ticket:
    n: int

    def fingerprint(self) -> int:
        return self.n

    def clone(self) -> Ticket:
        return Ticket(self.n)


class HiddenCounter(Model[Ticket, LocksConfig]):
    name = "test_hidden_counter"
    Config = LocksConfig
    profiles = {"small": LocksConfig(), "large": LocksConfig()}

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def init_state(self) -> Ticket:
        return Ticket(0)

    @action(domain=lambda m, s: [()])
    def take(self, s: Ticket) -> None:
        self.calls += 1
        s.n = self.calls


def test_nondeterministic_model_is_an_error_not_a_wrong_trace() -> None:
    below_three = Invariant("test.below_three", "test_hidden_counter", "n < 3", "test",
                            lambda s: [f"n = {s.n}"] if s.n >= 3 else [])
    result = explore(HiddenCounter(), [below_three])
    assert result.status == "error" and result.counterexample is None
    assert result.error is not None and "not deterministic" in result.error
