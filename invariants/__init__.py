"""Invariants: pure predicates over model state, registered by stable dotted name.

Each subsystem module (``invariants/buddy.py``, ...) registers its invariants with
``@invariant``. A predicate returns the violations it found, each a sentence in kernel terms;
an empty list means the invariant holds. A transition invariant is called with
``(before, step, after)`` instead of a single state.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The subsystems with built-in invariant suites, in the order reports list them.
SUBSYSTEMS = ("buddy", "slub", "sched", "sync", "tcp", "cgroup", "kernel")


@dataclass(frozen=True)
class Invariant:
    name: str  # "buddy.fully_coalesced"
    model: str  # the registry name of the model it reads
    statement: str  # one sentence
    source: str  # the kernel file and function it comes from
    check: Callable[..., list[str]]
    transition: bool = False

    @property
    def subsystem(self) -> str:
        return self.name.split(".", 1)[0]


REGISTRY: dict[str, Invariant] = {}


def invariant(
    name: str, *, model: str, statement: str, source: str, transition: bool = False
) -> Callable[[Callable[..., list[str]]], Callable[..., list[str]]]:
    def register(fn: Callable[..., list[str]]) -> Callable[..., list[str]]:
        if name in REGISTRY:
            raise ValueError(f"invariant {name} registered twice")
        REGISTRY[name] = Invariant(name, model, statement, source, fn, transition)
        return fn

    return register


@dataclass(frozen=True)
class Proof:
    """A z3 proof about model code: what it proves, for which bounds, and a cross-check
    that runs the same claim through the Python implementation on random inputs."""

    name: str  # "buddy.find_buddy_pfn_involution"
    statement: str
    bounds: str  # "all 64-bit pfns, all orders below MAX_ORDER = 11"
    source: str
    prove: Callable[[], Any]  # -> (assume, holds, terms): z3 bounds, claim, named values
    crosscheck: Callable[[Any, int], list[str]]  # (random.Random, n) -> mismatches

    @property
    def subsystem(self) -> str:
        return self.name.split(".", 1)[0]


PROOFS: dict[str, Proof] = {}


def proof(
    name: str, *, statement: str, bounds: str, source: str, crosscheck: Callable[[Any, int], list[str]]
) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        if name in PROOFS:
            raise ValueError(f"proof {name} registered twice")
        PROOFS[name] = Proof(name, statement, bounds, source, fn, crosscheck)
        return fn

    return register


@dataclass(frozen=True)
class Goal:
    """A reachability goal (Stateright's ``Property::sometimes``): a state, or a transition,
    that the engines are meant to reach on the model's configs. A run that never reaches
    one checked its invariants vacuously there, and says so.

    ``check(state)`` (or ``check(before, step, after)`` for a transition goal) is True when
    the goal is reached. ``engines`` are those expected to reach it: ``explore`` on the
    model's ``small`` config, ``stateful`` on its ``large`` one.
    """

    name: str  # "buddy.fallback_steal"
    model: str
    statement: str
    check: Callable[..., bool]
    transition: bool = False
    engines: tuple[str, ...] = ("explore", "stateful")


GOALS: dict[str, Goal] = {}


def goal(
    name: str,
    *,
    model: str,
    statement: str,
    transition: bool = False,
    engines: tuple[str, ...] = ("explore", "stateful"),
) -> Callable[[Callable[..., bool]], Callable[..., bool]]:
    def register(fn: Callable[..., bool]) -> Callable[..., bool]:
        if name in GOALS or name in REGISTRY:
            raise ValueError(f"goal {name} registered twice")
        GOALS[name] = Goal(name, model, statement, fn, transition, engines)
        return fn

    return register


def goals_for(model: str, engine: str | None = None) -> list[Goal]:
    """The goals of ``model`` (those ``engine`` is expected to reach, if given), in
    registration order."""
    load_all()
    return [g for g in GOALS.values() if g.model == model and (engine is None or engine in g.engines)]


def load_all() -> dict[str, Invariant]:
    """Import every subsystem suite (predicates and proofs) and return the invariant registry."""
    for sub in SUBSYSTEMS:
        importlib.import_module(f"invariants.{sub}")
        if importlib.util.find_spec(f"invariants.{sub}_proofs"):
            importlib.import_module(f"invariants.{sub}_proofs")
    return REGISTRY


def for_model(model: str) -> list[Invariant]:
    return [inv for inv in load_all().values() if inv.model == model]


def evaluate(invs: list[Invariant], state: Any, before: Any = None, step: Any = None) -> tuple[Invariant, list[str]] | None:
    """The first invariant that fails on ``state`` (or on the transition into it), with its
    violations; None when all hold. State invariants are checked before transition ones."""
    for inv in invs:
        if not inv.transition:
            found = inv.check(state)
            if found:
                return inv, found
    if before is not None:
        for inv in invs:
            if inv.transition:
                found = inv.check(before, step, after=state)
                if found:
                    return inv, found
    return None
