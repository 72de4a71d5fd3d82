"""A tiny model for testing reports and replay without a kernel model.

A counter with a limit and one zone whose ``nr_free`` pages the counter consumes: ``inc(n)``
is enabled below the limit, so two ``inc(2)`` from zero overshoot a limit of 3 and break
``toy.within_limit``. A limit of 0 makes the initial state a deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest

import invariants
import model
from checkers import mutants
from checkers.results import Counterexample
from model.contract import Model, Step, action, digest


@dataclass(frozen=True)
class ToyConfig:
    limit: int = 3
    sizes: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError(f"limit {self.limit} is negative")


@dataclass
class Zone:
    nr_free: int = 8


@dataclass
class ToyState:
    count: int = 0
    history: list[int] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=lambda: [Zone()])

    def fingerprint(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return self.count, tuple(self.history), tuple(z.nr_free for z in self.zones)

    def clone(self) -> ToyState:
        return ToyState(self.count, list(self.history), [Zone(z.nr_free) for z in self.zones])


def take(state: ToyState, n: int) -> None:
    """Helper that actions call through the module, so a mutant can replace it."""
    state.count += n
    state.zones[0].nr_free -= n


def take_twice(state: ToyState, n: int) -> None:
    """inc takes twice what it is asked for."""
    state.count += 2 * n
    state.zones[0].nr_free -= 2 * n


def _inc_domain(m: ToyModel, s: ToyState) -> Iterable[tuple[int]]:
    return [(n,) for n in m.config.sizes] if s.count < m.config.limit else []


def _dec_domain(m: ToyModel, s: ToyState) -> Iterable[tuple[()]]:
    return [()] if s.history else []


class ToyModel(Model[ToyState, ToyConfig]):
    name = "toy"
    Config = ToyConfig
    profiles = {"small": ToyConfig(), "large": ToyConfig(limit=10)}

    def init_state(self) -> ToyState:
        return ToyState()

    @action("n", domain=_inc_domain)
    def inc(self, state: ToyState, n: int) -> int:
        """Add n to the counter."""
        take(state, n)  # looked up as a module global at call time, so a mutant can patch it
        state.history.append(n)
        return state.count

    @action(domain=_dec_domain)
    def dec(self, state: ToyState) -> None:
        """Undo the last inc."""
        n = state.history.pop()
        state.count -= n
        state.zones[0].nr_free += n


def within_limit(state: ToyState) -> list[str]:
    limit = ToyModel.profiles["small"].limit
    return [f"count {state.count} exceeds limit {limit}"] if state.count > limit else []


def never_jumps(before: ToyState, step: Step, after: ToyState) -> list[str]:
    jump = after.count - before.count
    return [f"{step.action} moved count by {jump}"] if jump > 2 else []


WITHIN_LIMIT = invariants.Invariant(
    "toy.within_limit", "toy", "The counter never exceeds its limit.", "tests/toy_model.py", within_limit
)
NEVER_JUMPS = invariants.Invariant(
    "toy.never_jumps",
    "toy",
    "No step moves the counter by more than 2.",
    "tests/toy_model.py",
    never_jumps,
    True,
)
TAKE_TWICE = mutants.Mutant(
    "toy.take_twice",
    "toy",
    "inc takes twice what it is asked for",
    ((__name__, "take", take_twice),),
    "toy.never_jumps",
    "explore",
)


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the toy model, its invariants and its mutant, and nothing else."""
    monkeypatch.setitem(model.MODELS, "toy", f"{__name__}:ToyModel")
    monkeypatch.setattr(invariants, "SUBSYSTEMS", ())
    monkeypatch.setattr(invariants, "REGISTRY", {i.name: i for i in (WITHIN_LIMIT, NEVER_JUMPS)})
    monkeypatch.setattr(invariants, "PROOFS", {})
    monkeypatch.setattr(mutants, "SUBSYSTEMS", ())
    monkeypatch.setattr(mutants, "REGISTRY", {TAKE_TWICE.name: TAKE_TWICE})


def record(
    steps: list[tuple[str, tuple[Any, ...]]],
    *,
    invariant: str = "toy.within_limit",
    config: ToyConfig | None = None,
    mutant: str | None = None,
    kind: str = "invariant",
    engine: str = "explore",
) -> Counterexample:
    """Run ``steps`` on the toy model as an engine would and record the counterexample."""
    m = ToyModel(config)
    ctx = mutants.REGISTRY[mutant].applied() if mutant else nullcontext()
    with ctx:
        before = state = m.init_state()
        digests = [digest(state.fingerprint())]
        for name, args in steps:
            act = m.action_by_name[name]
            assert m.is_enabled(state, act, args), f"{name}{args} is not enabled"
            before = state
            state, _ = m.step(state, act, args)
            digests.append(digest(state.fingerprint()))
        if kind == "deadlock":
            violations = ["no action is enabled"]
        elif invariants.REGISTRY[invariant].transition:
            violations = invariants.REGISTRY[invariant].check(before, Step(*steps[-1]), after=state)
        else:
            violations = invariants.REGISTRY[invariant].check(state)
    return Counterexample(
        model="toy",
        signature=ToyModel.signature(),
        config=m.config_json(),
        engine=engine,
        invariant=invariant,
        violations=violations,
        steps=[Step(name, args) for name, args in steps],
        digests=digests,
        mutant=mutant,
        seed=7,
        kind=kind,
    )
