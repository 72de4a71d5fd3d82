"""The stateful engine on the toy model: it finds, shrinks, records and is deterministic."""

from __future__ import annotations

import pytest
from toy_model import NEVER_JUMPS, TAKE_TWICE, WITHIN_LIMIT, ToyConfig, ToyModel, ToyState, install

from checkers.control import Control
from checkers.replay import replay
from checkers.stateful import Profile, run_stateful, trace_digests
from invariants import Goal, Invariant

QUICK = Profile(max_examples=100, steps=20)


def test_holding_invariants_pass_with_the_runs_counted() -> None:
    # Limit 3 with sizes (1,) never overshoots: inc is disabled at the limit.
    r = run_stateful(ToyModel(ToyConfig(sizes=(1,))), [WITHIN_LIMIT, NEVER_JUMPS], profile=QUICK, seed_value=3)
    assert r.status == "bounded-pass"  # sampled runs are never "every reachable state"
    assert r.counterexample is None
    assert r.stats["steps"] > 0 and r.stats["runs"] >= QUICK.max_examples
    assert r.strength == "bounded: sampled 100 random runs of up to 20 steps (seed 3)"


def test_goals_record_the_first_run_and_step_that_reached_them() -> None:
    at_three = Goal("toy.at_three", "toy", "count reaches 3", lambda s: s.count == 3)
    undo = Goal("toy.undo", "toy", "a dec", lambda b, step, a: step.action == "dec", transition=True)
    never = Goal("toy.never", "toy", "count passes 100", lambda s: s.count > 100)
    r = run_stateful(ToyModel(ToyConfig(limit=10)), [], profile=QUICK, seed_value=3, goals=[at_three, undo, never])
    assert r.goals["toy.never"] is None
    for name in ("toy.at_three", "toy.undo"):
        where = r.goals[name]
        assert where is not None and where["run"] >= 1 and where["step"] >= 1
    again = run_stateful(ToyModel(ToyConfig(limit=10)), [], profile=QUICK, seed_value=3, goals=[at_three, undo, never])
    assert again.goals == r.goals


def test_a_stopped_control_ends_the_sampling_as_incomplete() -> None:
    control = Control()
    steps = [0]

    def count(state: ToyState) -> list[str]:
        steps[0] += 1
        if steps[0] == 50:
            control.stop("interrupted")
        return []

    watcher = Invariant("toy.count", "toy", "", "", count)
    r = run_stateful(ToyModel(ToyConfig(limit=10)), [watcher], profile=QUICK, seed_value=3, control=control)
    assert r.status == "incomplete" and r.stopped == "interrupted" and r.counterexample is None
    assert r.stats["steps"] < 100 * 20
    assert r.strength.startswith("incomplete, interrupted:")


def test_violation_is_shrunk_and_replayable(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    m = ToyModel()
    r = run_stateful(m, [WITHIN_LIMIT], profile=QUICK, seed_value=1)
    cex = r.counterexample
    assert r.status == "fail" and cex is not None
    # The shortest overshoot of limit 3 from 0 is inc(2), inc(2): shrinking must find it.
    assert [(s.action, s.args) for s in cex.steps] == [("inc", (2,)), ("inc", (2,))]
    assert cex.violations == ["count 4 exceeds limit 3"]
    assert cex.digests == trace_digests(m, cex.steps)
    assert replay(cex).reproduced
    # The runs are those sampled up to the violation; Hypothesis's shrinking is counted apart.
    assert 1 <= r.stats["runs"] <= QUICK.max_examples and r.stats["shrink_runs"] >= 1


def test_same_seed_same_run_and_transition_invariants_checked() -> None:
    m = ToyModel(ToyConfig(limit=10))
    a = run_stateful(m, [NEVER_JUMPS], profile=QUICK, seed_value=5)
    b = run_stateful(m, [NEVER_JUMPS], profile=QUICK, seed_value=5)
    assert a.stats["steps"] == b.stats["steps"] and a.status == b.status == "bounded-pass"
    with TAKE_TWICE.applied():
        r = run_stateful(m, [NEVER_JUMPS], profile=QUICK, seed_value=5, mutant=TAKE_TWICE.name)
    assert r.counterexample is not None
    assert r.counterexample.invariant == "toy.never_jumps"
    assert r.counterexample.mutant == "toy.take_twice"
    assert r.counterexample.violations == ["inc moved count by 4"]


def test_a_state_with_no_action_that_is_not_final_is_a_deadlock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Limit 0: inc is never enabled and there is nothing to undo, as in the explorer's test.
    install(monkeypatch)
    m = ToyModel(ToyConfig(limit=0))
    r = run_stateful(m, [WITHIN_LIMIT], profile=QUICK, seed_value=0)
    cex = r.counterexample
    assert r.status == "fail" and cex is not None
    assert (cex.kind, cex.invariant, cex.steps) == ("deadlock", "deadlock", [])
    assert cex.violations == ["no action is enabled and the state is not final"]
    assert replay(cex).reproduced
