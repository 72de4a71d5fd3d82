"""What engines return and reports print: one shape for every engine (DESIGN.md, "Reports")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.contract import Step

COUNTEREXAMPLE_SCHEMA = "kinv.counterexample/1"
SUMMARY_SCHEMA = "kinv.summary/1"


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
    "exhaustive to depth 8 (12,345 states)" or "sampled 200 runs of up to 50 steps"."""

    model: str
    engine: str
    invariants: list[str]
    strength: str
    counterexample: Counterexample | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the engine could not run to its end (bound hit is not an error)
    refutation: dict[str, Any] | None = None  # prove: the z3 model refuting a proof (no trace)

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "fail" if self.counterexample or self.refutation else "pass"

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
        )
