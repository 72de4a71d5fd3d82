"""The explore engine: breadth-first search over every reachable state (DESIGN.md, "explore").

Generic over the model contract: successors come from the model's declared actions, state
invariants are checked on every new state and transition invariants on every edge. Because
the search is breadth first, the first violation found has a shortest trace.

Memory. The visited table maps each state's stored key to its parent's stored key and holds
no states and no labels; the queue holds the states still to expand. The stored key is the
fingerprint with its top-level components interned, so states that share a component (the
same run queue, the same free list) share one object, as Spin's COLLAPSE mode does. The
action that led to a state is not stored: when a trace is wanted it is recovered by re-running
the parent's enabled actions and taking the first whose successor has the child's
fingerprint (models are deterministic).

Speed. When the model keeps the contract's own ``enabled`` and ``step``, the loop calls each
action's domain and effect directly, with the arguments spread by arity, instead of going
through a generator and ``step`` per edge; a model that overrides either is driven through
them, with the same results. Per-edge work that most runs do not need (transition
invariants, the graph) sits behind one test. The cyclic garbage collector is paused during
the search: the visited table is millions of acyclic tuples that it would rescan in vain.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from checkers.control import CONTROL, Control, stopped_sentence
from checkers.results import Counterexample, EngineResult
from invariants import Goal, Invariant
from model.contract import Action, Args, Model, Step, digest

Progress = Callable[[dict[str, Any]], None]

_ROOT: Any = object()  # the parent link of the initial state
_PROGRESS_EVERY = 256  # expanded states between clock reads for the progress line
_PROGRESS_INTERVAL = 0.5  # seconds between progress callbacks


class ExploreResult(EngineResult):
    """An EngineResult that also carries the explored state graph when ``keep_graph`` was set.

    ``graph`` is a networkx.DiGraph: one node per state, named by its digest (node attribute
    ``depth``; ``init`` on the initial state), one edge per pair of states an action links,
    with ``label`` the action label (several labels joined by `` | ``). It is a plain attribute,
    not a dataclass field, so serialising the result never touches it. Export it with
    ``checkers.graph.to_dot`` / ``to_graphml``.
    """

    graph: Any = None


class _Nondeterministic(Exception):
    """Re-running a stored path from the initial state did not reach the stored states."""


class _Stop(Exception):
    """Raised inside the search loop when a violation or deadlock ends the run."""

    def __init__(
        self, key: Hashable, depth: int, inv: str, violations: list[str], kind: str = "invariant",
        last: Step | None = None,
    ) -> None:
        super().__init__(inv)
        self.key = key  # the stored key of the last state of the trace
        self.depth = depth  # its depth, plus one when ``last`` is the failing edge out of it
        self.inv = inv
        self.violations = violations
        self.kind = kind  # "invariant", "deadlock", or "bound" (not a failure)
        self.last = last  # the failing step of a transition invariant


def explore(
    model: Model[Any, Any],
    invariants: Iterable[Invariant],
    *,
    max_states: int | None = None,
    max_depth: int | None = None,
    goals: Iterable[Goal] = (),
    check_deadlock: bool = True,
    keep_graph: bool = False,
    progress: Progress | None = None,
    mutant: str | None = None,
    measure_memory: bool = False,
    control: Control = CONTROL,
) -> ExploreResult:
    """Search every state reachable from ``model.init_state()`` within the budget.

    Stops at the first violation (shortest trace) or deadlock (a state with no enabled action
    that ``model.is_final`` does not accept, when ``check_deadlock``). The budget decides how
    far a verdict reaches, in work: ``max_states`` caps the stored states, ``max_depth`` the
    steps from the initial state (states at that depth are checked against the invariants
    but neither expanded nor checked for deadlock). ``control`` ends the search early, as
    incomplete, when it is interrupted or meets a time or memory cap; it is read before each
    state is expanded. ``progress`` is called about twice a second, and once at the end,
    with ``{"states", "depth", "seconds", "frontier"}``. ``goals`` are looked for on every
    new state (and, for transition goals, every edge) until each is reached; the result's
    ``goals`` maps each to the depth of the first state (or edge's end) that reached it.
    ``measure_memory`` adds ``table_bytes`` (the visited table with its keys, each shared
    object counted once) and ``bytes_per_state`` to the stats, at the cost of one pass over
    the table. ``mutant`` is only recorded in the counterexample; applying it is the caller's.

    The result's ``stats``: states, transitions, max_depth, complete, bound (None, "depth",
    "states", or the control's reason), seconds, states_per_second, peak_frontier (the
    largest BFS level). A model whose stored path does not replay (it is not deterministic)
    gives a result with ``error`` set instead of a counterexample.
    """
    invs = list(invariants)
    state_checks = [inv for inv in invs if not inv.transition]
    edge_checks = [inv for inv in invs if inv.transition]
    all_goals = list(goals)
    state_goals = [g for g in all_goals if not g.transition]
    edge_goals = [g for g in all_goals if g.transition]
    reached: dict[str, int] = {}
    graph = _new_graph(model) if keep_graph else None
    digests: dict[Hashable, str] = {}

    # Per-action dispatch. arity -1 marks the contract path: the "domain" yields (action, args)
    # pairs from model.enabled and the successor comes from model.step.
    fast = type(model).enabled is Model.enabled and type(model).step is Model.step
    table: list[tuple[Action | None, Callable[..., Any], Callable[..., Iterable[Any]], int]]
    if fast:
        table = [(a, a.effect, a.domain, len(a.params)) for a in model.actions]
    else:
        table = [(None, model.step, lambda m, s: m.enabled(s), -1)]
    is_final = model.is_final
    edges = _Edges(edge_checks, edge_goals, reached, graph, digests)
    slow_edges = edges.wanted()

    start = time.perf_counter()
    init = model.init_state()
    init_fp = init.fingerprint()
    canon: dict[Any, Any] = {}
    intern = canon.setdefault
    init_key = tuple(map(intern, init_fp, init_fp)) if type(init_fp) is tuple else init_fp
    visited: dict[Hashable, Any] = {init_key: _ROOT}
    if graph is not None:
        graph.add_node(_digest(digests, init_fp), depth=0, init=True)

    states: deque[Any] = deque([init])
    keys: deque[Hashable] = deque([init_key])
    limit = max_states if max_states is not None else sys.maxsize
    transitions = 0
    depth = deepest = 0
    peak_frontier = 1
    bound: str | None = None
    stop: _Stop | None = None
    next_report = start + _PROGRESS_INTERVAL
    tick = _PROGRESS_EVERY

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        found = _check_state(state_checks, init)
        if found:
            raise _Stop(init_key, 0, found[0].name, found[1])
        _reach(state_goals, init, 0, reached)
        while states:
            if max_depth is not None and depth >= max_depth:
                bound = "depth"
                break
            level = len(states)
            peak_frontier = max(peak_frontier, level)
            pop_state, pop_key = states.popleft, keys.popleft
            push_state, push_key = states.append, keys.append
            child_depth = depth + 1
            for _ in range(level):
                if control.reason is not None:
                    bound = control.reason
                    break
                tick -= 1
                if not tick:
                    tick = _PROGRESS_EVERY
                    now = time.perf_counter()
                    if progress is not None and now >= next_report:
                        next_report = now + _PROGRESS_INTERVAL
                        progress({"states": len(visited), "depth": depth, "seconds": now - start,
                                  "frontier": len(states)})
                state = pop_state()
                key = pop_key()
                before = transitions
                clone = state.clone
                for act, effect, domain, arity in table:
                    for args in domain(model, state):
                        if arity == 1:
                            nxt = clone()
                            result = effect(model, nxt, args[0])
                        elif arity == 0:
                            nxt = clone()
                            result = effect(model, nxt)
                        elif arity > 0:
                            nxt = clone()
                            result = effect(model, nxt, *args)
                        else:
                            act, args = args
                            nxt, result = effect(state, act, args)
                        transitions += 1
                        fp = nxt.fingerprint()
                        if fp in visited:
                            if slow_edges:
                                edges.visit(state, key, act, args, result, nxt, fp, None, depth)
                                slow_edges = edges.wanted()
                            continue
                        if len(visited) >= limit:
                            bound = "states"
                            raise _Stop(key, depth, "", [], "bound")
                        child = tuple(map(intern, fp, fp)) if type(fp) is tuple else fp
                        visited[child] = key
                        deepest = child_depth
                        for inv in state_checks:
                            violations = inv.check(nxt)
                            if violations:
                                raise _Stop(child, child_depth, inv.name, violations)
                        if state_goals:
                            _reach(state_goals, nxt, child_depth, reached)
                        if slow_edges:
                            edges.visit(state, key, act, args, result, nxt, fp, child_depth, depth)
                            slow_edges = edges.wanted()
                        push_state(nxt)
                        push_key(child)
                if transitions == before and check_deadlock and not is_final(state):
                    raise _Stop(key, depth, "deadlock", ["no action is enabled and the state is not final"], "deadlock")
            if bound is not None:
                break
            depth = child_depth
    except _Stop as s:
        if s.kind != "bound":
            stop = s
    finally:
        if gc_was_enabled:
            gc.enable()

    seconds = time.perf_counter() - start
    complete = stop is None and bound is None
    n = len(visited)
    if progress is not None:
        progress({"states": n, "depth": deepest, "seconds": seconds, "frontier": len(states)})
    stats: dict[str, Any] = {
        "states": n,
        "transitions": transitions,
        "max_depth": deepest,
        "complete": complete,
        "bound": bound,
        "max_states": max_states,
        "max_depth_budget": max_depth,
        "seconds": round(seconds, 3),
        "states_per_second": round(n / seconds) if seconds > 0 else None,
        "peak_frontier": peak_frontier,
    }
    if measure_memory:
        stats["table_bytes"] = table_bytes(visited, canon)
        stats["bytes_per_state"] = round(stats["table_bytes"] / n, 1)
    result = ExploreResult(
        model=model.name,
        engine="explore",
        invariants=[inv.name for inv in invs],
        strength=_strength(n, depth, bound, stop, max_states, max_depth),
        stats=stats,
        complete=complete,
        stopped=bound if bound not in (None, "depth", "states") else None,
        goals={g.name: reached.get(g.name) for g in all_goals},
    )
    if stop is not None:
        try:
            result.counterexample = _counterexample(model, visited, stop, mutant)
        except _Nondeterministic as exc:
            result.error = str(exc)
    result.graph = graph
    return result


def _reach(goals: list[Goal], state: Any, depth: int, reached: dict[str, int]) -> None:
    """Record the state goals ``state`` reaches, and stop looking for them."""
    for g in [g for g in goals if g.check(state)]:
        reached[g.name] = depth
        goals.remove(g)


class _Edges:
    """The per-edge work that most runs skip: transition invariants, transition goals not
    yet reached, and the graph."""

    def __init__(
        self, checks: list[Invariant], goals: list[Goal], reached: dict[str, int], graph: Any,
        digests: dict[Hashable, str],
    ) -> None:
        self.checks, self.goals, self.reached, self.graph, self.digests = checks, goals, reached, graph, digests

    def wanted(self) -> bool:
        return bool(self.checks or self.goals) or self.graph is not None

    def visit(
        self, state: Any, key: Hashable, act: Action | None, args: Args, result: Any, nxt: Any, fp: Hashable,
        new_depth: int | None, depth: int,
    ) -> None:
        assert act is not None
        graph = self.graph
        if graph is not None:
            src = _digest(self.digests, key)
            dst = _digest(self.digests, fp)
            if new_depth is not None:
                graph.add_node(dst, depth=new_depth)
            label = act.label(args)
            if graph.has_edge(src, dst):
                graph[src][dst]["label"] += " | " + label
            else:
                graph.add_edge(src, dst, label=label)
        if self.checks or self.goals:
            step = Step(act.name, args, result)
            for inv in self.checks:
                violations = inv.check(state, step, after=nxt)
                if violations:
                    raise _Stop(key, depth + 1, inv.name, violations, last=step)
            for g in [g for g in self.goals if g.check(state, step, nxt)]:
                self.reached[g.name] = depth + 1
                self.goals.remove(g)


def _check_state(checks: list[Invariant], state: Any) -> tuple[Invariant, list[str]] | None:
    for inv in checks:
        violations = inv.check(state)
        if violations:
            return inv, violations
    return None


def _digest(cache: dict[Hashable, str], fp: Hashable) -> str:
    found = cache.get(fp)
    if found is None:
        found = cache[fp] = digest(fp)
    return found


def _new_graph(model: Model[Any, Any]) -> Any:
    import networkx as nx  # only graph runs pay for the import

    return nx.DiGraph(name=model.name)


def _strength(
    n: int, depth: int, bound: str | None, stop: _Stop | None, max_states: int | None, max_depth: int | None
) -> str:
    states = f"{n:,} state{'' if n == 1 else 's'}"
    if stop is not None:
        what = "deadlock" if stop.kind == "deadlock" else "violation"
        if stop.depth == 0:
            return f"{what} in the initial state"
        return f"every state to depth {stop.depth - 1} ({states}) before a {what} at depth {stop.depth}"
    if bound is None:
        return f"exhaustive: all {n:,} reachable states" if n != 1 else "exhaustive: the only reachable state"
    if bound == "depth":
        return f"bounded: every state to depth {depth} ({states}; budget: depth {max_depth})"
    if bound == "states":
        return f"bounded: every state to depth {depth} ({states}; budget: {max_states:,} states)"
    return f"incomplete, {stopped_sentence(bound)}: every state to depth {depth} ({states})"


def _counterexample(
    model: Model[Any, Any], visited: dict[Hashable, Any], stop: _Stop, mutant: str | None
) -> Counterexample:
    """The trace to ``stop.key`` (plus the failing edge, for a transition invariant), rebuilt by
    walking parent links back to the initial state and re-running the steps forward."""
    path = []
    key = stop.key
    while key is not _ROOT:
        path.append(key)
        key = visited[key]
    path.reverse()
    state = model.init_state()
    digests = [digest(state.fingerprint())]
    steps: list[Step] = []
    for target in path[1:]:
        for act, args in model.enabled(state):
            nxt, _ = model.step(state, act, args)
            fp = nxt.fingerprint()
            if fp == target:
                steps.append(Step(act.name, args))
                digests.append(digest(fp))
                state = nxt
                break
        else:
            raise _Nondeterministic(
                f"{stop.inv} failed, but the trace to it does not replay: model {model.name} is not deterministic"
            )
    if stop.last is not None:
        nxt, _ = model.step(state, model.action_by_name[stop.last.action], stop.last.args)
        steps.append(stop.last)
        digests.append(digest(nxt.fingerprint()))
    return Counterexample(
        model=model.name,
        signature=model.signature(),
        config=model.config_json(),
        engine="explore",
        invariant=stop.inv,
        violations=stop.violations,
        steps=steps,
        digests=digests,
        mutant=mutant,
        kind=stop.kind,
    )


def table_bytes(visited: dict[Hashable, Any], canon: dict[Any, Any]) -> int:
    """Bytes held by the visited table: the dict, each stored key, and each interned component
    once, with what it contains. Parent links are references to keys already counted. Keys
    that are not tuples are measured one by one (shared parts counted again: an upper bound)."""
    seen: set[int] = set()
    total = sys.getsizeof(visited) + sys.getsizeof(canon)
    total += sum(_deep_size(c, seen) for c in canon)
    for key in visited:
        total += sys.getsizeof(key) if type(key) is tuple else _deep_size(key, set())
    return total


def _deep_size(obj: Any, seen: set[int]) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (tuple, list, frozenset, set)):
        size += sum(_deep_size(x, seen) for x in obj)
    elif isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    return size
