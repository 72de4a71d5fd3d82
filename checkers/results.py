"""What engines return and reports print: one shape for every engine (DESIGN.md, "Reports")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from checkers.control import stopped_sentence
from model.contract import Step

COUNTEREXAMPLE_SCHEMA = "kinv.counterexample/1"
SUMMARY_SCHEMA = "kinv.summary/2"

# An engine result's status, worst first (DESIGN.md, "Verdicts"): a violation found; the
# model or kinv raised; the run was interrupted or hit a safety cap; no violation within a
# named budget; no violation in any reachable state (or proved for all inputs).
STATUSES = ("fail", "error", "incomplete", "bounded-pass", "pass")
# `kinv` exit codes; 2 (bad usage or input) never comes from a result.
EXIT_PASS, EXIT_VIOLATION, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4


# How the console shows each status (rich styles; pytest's terminal writer takes the same names).
COLOURS = {"pass": "green", "bounded-pass": "cyan", "fail": "red", "error": "yellow", "incomplete": "yellow"}


def worst(statuses: Iterable[str], order: tuple[str, ...] = STATUSES) -> str:
    """The worst of several statuses, by ``order``; its last for none."""
    present = set(statuses)
    return next((s for s in order if s in present), order[-1])


def exit_code(statuses: Iterable[str], *, strict: bool = False) -> int:
    """The exit code of a run with these result statuses. ``strict`` counts a bounded pass
    as incomplete: for users whose CI accepts only exhaustive searches and proofs."""
    status = worst(statuses)
    if status == "bounded-pass" and strict:
        return EXIT_INCOMPLETE
    return {"fail": EXIT_VIOLATION, "error": EXIT_INTERNAL, "incomplete": EXIT_INCOMPLETE}.get(status, EXIT_PASS)


@dataclass
class Counterexample:
    """A replayable violation: the model, its config, the steps from the initial state, and
    the state digest after each step (``kinv replay`` checks them to detect a different model)."""

    model: str
    signature: str  # Model.signature() of the model that produced it
    config: dict[str, Any]
    engine: str
    invariant: str
    violations: list[str]
    steps: list[Step]
    digests: list[str]  # digest of the initial state, then one per step
    mutant: str | None = None
    seed: int | None = None
    kind: str = "invariant"  # or "deadlock"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": COUNTEREXAMPLE_SCHEMA,
            "model": self.model,
            "signature": self.signature,
            "config": self.config,
            "mutant": self.mutant,
            "engine": self.engine,
            "seed": self.seed,
            "kind": self.kind,
            "invariant": self.invariant,
            "violations": self.violations,
            "steps": [s.to_json() for s in self.steps],
            "digests": self.digests,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counterexample:
        """Inverse of ``to_json`` for trusted data (checkers.replay validates user files)."""
        return cls(
            model=data["model"],
            signature=data["signature"],
            config=data["config"],
            engine=data["engine"],
            invariant=data["invariant"],
            violations=list(data["violations"]),
            steps=[Step(s["action"], as_args(s["args"])) for s in data["steps"]],
            digests=list(data["digests"]),
            mutant=data.get("mutant"),
            seed=data.get("seed"),
            kind=data.get("kind", "invariant"),
        )


def as_args(value: Any) -> Any:
    """JSON lists back to the tuples that action arguments are."""
    return tuple(as_args(v) for v in value) if isinstance(value, list) else value


@dataclass
class EngineResult:
    """One engine run over one model: which invariants it checked, how strongly, and the
    counterexample if one failed. ``strength`` is the sentence reports show, e.g.
    "exhaustive: all 12,345 reachable states" or "sampled 200 runs of up to 50 steps".

    ``complete`` is set by an engine that covered everything its claim is about (every
    reachable state, every input of a proof); ``stopped`` names why a run ended before its
    budget did (``checkers.control``: interrupted, the time or memory cap, z3's resource
    limit). ``goals`` maps each reachability goal the engine looked for to where it first
    reached it (None: not reached); ``unreached`` lists the goals whose absence makes this
    run vacuous, which fails it.
    """

    model: str
    engine: str
    invariants: list[str]
    strength: str
    counterexample: Counterexample | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the model or kinv raised (a budget or a cap is not an error)
    refutation: dict[str, Any] | None = None  # prove: the z3 model refuting a proof (no trace)
    complete: bool = False
    stopped: str | None = None
    goals: dict[str, Any] = field(default_factory=dict)
    unreached: list[str] = field(default_factory=list)
    traceback: str | None = None  # with ``error``: where the model or kinv raised

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.counterexample or self.refutation:
            return "fail"
        if self.stopped:
            return "incomplete"
        if self.unreached:
            return "fail"
        return "pass" if self.complete else "bounded-pass"

    @classmethod
    def not_started(cls, model: str, engine: str, names: list[str], reason: str) -> EngineResult:
        """A job the run's control stopped before it began: incomplete, with nothing established."""
        return cls(model, engine, names, f"incomplete, {stopped_sentence(reason)}: not started", stopped=reason)

    @property
    def held(self) -> bool:
        """No violation within what the engine covered, all of it or its budget."""
        return self.status in ("pass", "bounded-pass")

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "status": self.status,
            "invariants": self.invariants,
            "strength": self.strength,
            "counterexample": self.counterexample.to_json() if self.counterexample else None,
            "stats": self.stats,
            "error": self.error,
            "refutation": self.refutation,
            "complete": self.complete,
            "stopped": self.stopped,
            "goals": self.goals,
            "unreached": self.unreached,
            "traceback": self.traceback,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineResult:
        cex = data.get("counterexample")
        return cls(
            model=data["model"],
            engine=data["engine"],
            invariants=list(data["invariants"]),
            strength=data["strength"],
            counterexample=Counterexample.from_json(cex) if cex else None,
            stats=dict(data.get("stats") or {}),
            error=data.get("error"),
            refutation=data.get("refutation"),
            complete=bool(data.get("complete")),
            stopped=data.get("stopped"),
            goals=dict(data.get("goals") or {}),
            unreached=list(data.get("unreached") or []),
            traceback=data.get("traceback"),
        )
