"""What a check run does: selectors resolved to jobs, and one job run by its engine.

A selector is a model name (``buddy``), an invariant or proof name
(``buddy.fully_coalesced``) or a shell-style pattern over those names (``buddy.*``).
A job is one engine over one model with the invariants the selectors chose; the prove
engine gets one job per proof so that proofs run in parallel.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import invariants
from checkers import stateful
from checkers.errors import UsageError
from checkers.results import EngineResult
from model import MODELS, model_class

ENGINES = ("explore", "stateful", "prove")


@dataclass(frozen=True)
class Bounds:
    """The explorer's bounds for a check profile; the explorer always uses the model's
    ``small`` config, the stateful engine its ``large`` one."""

    max_states: int
    max_seconds: float


EXPLORE_BOUNDS = {"ci": Bounds(max_states=200_000, max_seconds=120), "deep": Bounds(max_states=2_000_000, max_seconds=3600)}
CROSSCHECK_SAMPLES = {"ci": 2_000, "deep": 100_000}
PROFILES = tuple(stateful.PROFILES)


@dataclass(frozen=True)
class Job:
    model: str
    engine: str
    names: tuple[str, ...]  # the invariants (or the one proof) this job checks

    @property
    def id(self) -> str:
        return f"{self.model}::{self.engine}" + (f"::{self.names[0]}" if self.engine == "prove" else "")


def parse_engines(text: str) -> tuple[str, ...]:
    engines = tuple(e.strip() for e in text.split(",") if e.strip())
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise UsageError(f"--engine {text!r}: unknown engine {bad[0] if bad else '(none)'!r}; choose from {', '.join(ENGINES)}")
    return engines


def resolve(selectors: list[str], engines: tuple[str, ...]) -> list[Job]:
    """The jobs for ``selectors`` (all built-in models when empty), in a stable order."""
    invs = invariants.load_all()
    proofs = invariants.PROOFS
    names = sorted(invs) + sorted(proofs)
    chosen: set[str] = set()
    for sel in selectors or list(MODELS):
        if sel in MODELS:
            hits = [n for n in names if n.split(".", 1)[0] == sel]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(n, sel)]
        if not hits:
            raise UsageError(f"selector {sel!r}: no model, invariant or proof of that name (see `kinv list`)")
        chosen.update(hits)
    jobs = []
    for model in MODELS:
        model_invs = tuple(n for n in sorted(invs) if n in chosen and invs[n].model == model)
        for engine in engines:
            if engine == "prove":
                jobs += [Job(model, "prove", (p,)) for p in sorted(proofs) if p in chosen and proofs[p].subsystem == model]
            elif model_invs:
                jobs.append(Job(model, engine, model_invs))
    if not jobs:
        raise UsageError(f"selectors {' '.join(selectors)!r} with --engine {','.join(engines)}: nothing to check")
    return jobs


def run_job(
    job: Job, *, profile: str, seed: int, progress: Callable[[dict[str, Any]], None] | None = None, mutant: str | None = None
) -> EngineResult:
    """Run one job; the mutant, if named, must already be applied by the caller."""
    registry = invariants.load_all()
    if job.engine == "prove":
        from checkers.prove import prove

        return prove(invariants.PROOFS[job.names[0]], samples=CROSSCHECK_SAMPLES[profile], seed=seed, mutant=mutant)
    invs = [registry[n] for n in job.names]
    cls = model_class(job.model)
    if job.engine == "explore":
        from checkers.explore import explore

        bounds = EXPLORE_BOUNDS[profile]
        return explore(
            cls.from_profile("small"),
            invs,
            max_states=bounds.max_states,
            max_seconds=bounds.max_seconds,
            progress=progress,
            mutant=mutant,
        )
    return stateful.run_stateful(
        cls.from_profile("large"), invs, profile=stateful.PROFILES[profile], seed_value=seed, mutant=mutant
    )
