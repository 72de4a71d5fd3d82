"""Every buddy mutant breaks the invariant it names within a small breadth-first search of the
small profile, and the unmutated model breaks nothing to the same depth."""

from __future__ import annotations

from typing import Any

import pytest

import invariants
from checkers import mutants
from invariants import Invariant
from model.contract import Step
from model.mm.buddy import BuddyModel

DEPTH = 8

invariants.load_all()
mutants.load_all()
BUDDY_MUTANTS = sorted(name for name, m in mutants.REGISTRY.items() if m.model == "buddy")


def bfs(checks: list[Invariant], depth: int) -> tuple[int, str, list[str]] | int:
    """Search the small profile to ``depth`` steps; the first violation as (depth, invariant,
    violations), or the number of distinct states when there is none. State invariants run once
    per new state, transition invariants on every edge."""
    model: Any = BuddyModel.from_profile("small")
    state_checks = [c for c in checks if not c.transition]
    edge_checks = [c for c in checks if c.transition]
    initial = model.init_state()
    for check in state_checks:
        if found := check.check(initial):
            return 0, check.name, found
    seen = {initial.fingerprint()}
    frontier = [initial]
    for level in range(1, depth + 1):
        following = []
        for state in frontier:
            for act, args in model.enabled(state):
                after, _ = model.step(state, act, args)
                step = Step(act.name, args)
                for check in edge_checks:
                    if found := check.check(state, step, after=after):
                        return level, check.name, found
                fingerprint = after.fingerprint()
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                following.append(after)
                for check in state_checks:
                    if found := check.check(after):
                        return level, check.name, found
        frontier = following
    return len(seen)


@pytest.mark.parametrize("name", BUDDY_MUTANTS)
def test_mutant_breaks_its_invariant(name: str) -> None:
    mutant = mutants.REGISTRY[name]
    with mutant.applied():
        result = bfs([invariants.REGISTRY[mutant.breaks]], DEPTH)
    assert isinstance(result, tuple), f"{name} survived {result} states to depth {DEPTH}"
    assert result[1] == mutant.breaks and result[2]


def test_unmutated_model_breaks_nothing() -> None:
    assert bfs(invariants.for_model("buddy"), DEPTH) == 57500


def test_every_invariant_has_a_mutant() -> None:
    targets = {mutants.REGISTRY[name].breaks for name in BUDDY_MUTANTS}
    assert targets == {inv.name for inv in invariants.for_model("buddy")}
    for name in BUDDY_MUTANTS:
        for _, _, replacement in mutants.REGISTRY[name].patches:
            assert replacement.__doc__ and "\n" not in replacement.__doc__.strip()
