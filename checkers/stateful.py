"""The stateful engine: a Hypothesis RuleBasedStateMachine generated from a model's actions.

One rule per declared action; its precondition is a non-empty argument domain and its
arguments are drawn from that domain in the current state, so the same declaration that
feeds the explorer drives the random runs. Every invariant is checked after every step.
The shrunk failing run is kept as a replayable Counterexample.

Hypothesis's own work per step dominates a run, so the machine adds as little as it can: each
action's domain is listed once per state and shared by its precondition and its rule, and
the arguments are one integer choice, the index into that domain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Verbosity, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from checkers.control import CONTROL, Control, stopped_sentence
from checkers.results import Counterexample, EngineResult
from invariants import Goal, Invariant, evaluate
from model.contract import Action, Args, Model, Step, digest


@dataclass(frozen=True)
class Profile:
    """How much random search a run does (checkers.plan.BUDGETS has the ``ci`` and ``deep``
    ones): runs, and steps per run at most."""

    max_examples: int
    steps: int


class _Violation(AssertionError):
    pass


class _Stopped(BaseException):
    """The run's control asked it to stop. Not an Exception, so that Hypothesis passes it
    through, as it does KeyboardInterrupt, instead of shrinking it as a failure."""


def _machine(
    model: Model[Any, Any], invs: list[Invariant], goals: list[Goal], record: dict[str, Any], control: Control
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class with one rule per action of ``model``."""
    state_goals = [g for g in goals if not g.transition]
    edge_goals = [g for g in goals if g.transition]
    reached: dict[str, dict[str, int]] = record["goals"]

    def reach(run: int, step: int, before: Any, last: Step | None, after: Any) -> None:
        for g in [g for g in state_goals if g.check(after)]:
            reached[g.name] = {"run": run, "step": step}
            state_goals.remove(g)
        if last is not None:
            for g in [g for g in edge_goals if g.check(before, last, after)]:
                reached[g.name] = {"run": run, "step": step}
                edge_goals.remove(g)

    def init(self: Any) -> None:
        if control.reason is not None:
            raise _Stopped
        RuleBasedStateMachine.__init__(self)
        self.state = model.init_state()
        self.domains = {}  # action name -> its argument domain in self.state, listed on first use
        self.steps = []
        # Runs after the first violation are Hypothesis shrinking it, not sampling: counted apart.
        record["runs" if record["failure"] is None else "shrink_runs"] += 1
        self.run = record["runs"]
        found = evaluate(invs, self.state)
        if found:
            _fail(self, *found)
        if state_goals:
            reach(self.run, 0, None, None, self.state)

    def _fail(self: Any, inv: Invariant, violations: list[str]) -> None:
        record["failure"] = (list(self.steps), inv.name, violations, "invariant")
        raise _Violation(f"{inv.name}: {violations[0]}")

    def domain(self: Any, act: Action) -> Sequence[Args]:
        choices = self.domains.get(act.name)
        if choices is None:
            choices = self.domains[act.name] = tuple(act.domain(model, self.state))
        return choices

    def make_rule(act: Action) -> Callable[..., None]:
        def enabled(self: Any) -> bool:
            return bool(domain(self, act))

        def fire(self: Any, data: Any) -> None:
            if control.reason is not None:
                raise _Stopped
            choices = domain(self, act)
            # The index st.sampled_from(choices) would draw, shrinking towards the first choice,
            # taken straight from the test case's data: a strategy over a list that changes every
            # step would be built and validated anew each time (a quarter of a step's cost).
            # ConjectureData.draw_integer is Hypothesis-internal: pyproject.toml pins <7.
            index = data.conjecture_data.draw_integer(0, len(choices) - 1) if len(choices) > 1 else 0
            args = choices[index]
            before = self.state
            self.state, result = model.step(before, act, args)
            self.domains = {}
            step = Step(act.name, args, result)
            self.steps.append(step)
            record["steps"] += 1
            found = evaluate(invs, self.state, before, step)
            if found:
                _fail(self, *found)
            if state_goals or edge_goals:
                reach(self.run, len(self.steps), before, step, self.state)

        fire.__name__ = act.name
        return rule(data=st.data())(precondition(enabled)(fire))

    def stuck(self: Any) -> bool:
        return not any(domain(self, act) for act in model.actions)

    def end(self: Any) -> None:
        """No action is enabled: a final state idles to the end of the run; any other is a
        deadlock, as the explorer reports it."""
        if not model.is_final(self.state):
            record["failure"] = (list(self.steps), "deadlock", ["no action is enabled and the state is not final"], "deadlock")
            raise _Violation("deadlock")

    body: dict[str, Any] = {"__init__": init, "end": rule()(precondition(stuck)(end))}
    for act in model.actions:
        # A model's weights make random runs draw some actions more often (a machine ticks far
        # more often than it forks): Hypothesis picks among rules, so an action gets one per unit.
        for i in range(model.weights.get(act.name, 1)):
            body[act.name if not i else f"{act.name}_{i}"] = make_rule(act)
    return type(f"{model.name}_machine", (RuleBasedStateMachine,), body)


def run_stateful(
    model: Model[Any, Any],
    invs: list[Invariant],
    *,
    profile: Profile,
    seed_value: int,
    mutant: str | None = None,
    goals: list[Goal] | None = None,
    control: Control = CONTROL,
) -> EngineResult:
    """Sample ``profile.max_examples`` runs of up to ``profile.steps`` steps; deterministic
    for a given seed. A violation comes back shrunk, as a replayable counterexample. Each of
    ``goals`` is looked for after every step until reached; the result's ``goals`` maps it
    to the first run and step that reached it. ``control`` ends the sampling early, as
    incomplete."""
    record: dict[str, Any] = {"runs": 0, "shrink_runs": 0, "steps": 0, "failure": None, "goals": {}}
    goals = list(goals or [])
    machine = seed(seed_value)(_machine(model, invs, goals, record, control))
    conf = settings(
        max_examples=profile.max_examples,
        stateful_step_count=profile.steps,
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=False,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
    )
    started = time.perf_counter()
    stopped = None
    try:
        run_state_machine_as_test(machine, settings=conf)
    except* _Violation:  # the failure is in ``record``, shrunk (one of them, if several kinds)
        pass
    except* _Stopped:  # a failure found before the stop is in ``record``, shrunk or not
        stopped = control.reason
    seconds = time.perf_counter() - started
    stats = {
        "runs": record["runs"],
        "shrink_runs": record["shrink_runs"],
        "steps": record["steps"],  # shrinking's included: the work done
        "seconds": round(seconds, 3),
        "steps_per_second": round(record["steps"] / seconds) if seconds else None,
        "seed": seed_value,
        "max_examples": profile.max_examples,
        "max_steps": profile.steps,
    }
    sampled = f"{profile.max_examples:,} random runs of up to {profile.steps} steps (seed {seed_value})"
    if stopped is not None:
        strength = f"incomplete, {stopped_sentence(stopped)}: {record['steps']:,} steps of {sampled}"
    else:
        strength = f"bounded: sampled {sampled}"
    result = EngineResult(
        model=model.name,
        engine="stateful",
        invariants=[inv.name for inv in invs],
        strength=strength,
        stats=stats,
        stopped=stopped,
        goals={g.name: record["goals"].get(g.name) for g in goals},
    )
    if record["failure"] is not None:
        steps, name, violations, kind = record["failure"]
        result.counterexample = Counterexample(
            model=model.name,
            signature=model.signature(),
            config=model.config_json(),
            engine="stateful",
            invariant=name,
            violations=violations,
            kind=kind,
            steps=steps,
            digests=trace_digests(model, steps),
            mutant=mutant,
            seed=seed_value,
        )
    return result


def trace_digests(model: Model[Any, Any], steps: list[Step]) -> list[str]:
    """Digests of the initial state and of the state after each step, replayed from init."""
    state = model.init_state()
    out = [digest(state.fingerprint())]
    for s in steps:
        state, _ = model.step(state, model.action_by_name[s.action], s.args)
        out.append(digest(state.fingerprint()))
    return out
