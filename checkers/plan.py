"""What a check run does: selectors resolved to jobs, and one job run by its engine within
its profile's budget.

A selector is a model name (``buddy``), an invariant or proof name
(``buddy.fully_coalesced``) or a shell-style pattern over those names (``buddy.*``).
A job is one engine over one model with the invariants the selectors chose; the prove
engine gets one job per proof so that proofs run in parallel.

A budget counts work, never seconds (DESIGN.md, "Verdicts"): the explorer's stored states,
the stateful engine's runs and steps, the proofs' cross-check inputs and z3 resource units.
So the same command and seed give the same verdict on any machine; a wall-clock cap, if
the user sets one, only ends a run as incomplete (``checkers.control``). The ``ci`` budgets
are sized so that ``kinv check`` takes a few minutes a model on one core.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import invariants
from checkers import stateful
from checkers.errors import UsageError
from checkers.prove import DEFAULT_RLIMIT
from checkers.results import EngineResult
from model import MODELS, model_class

ENGINES = ("explore", "stateful", "prove")


@dataclass(frozen=True)
class Budget:
    """The work a profile gives each engine. The explorer always searches the model's
    ``small`` config, the stateful engine samples its ``large`` one."""

    states: int  # explore: states stored
    runs: int  # stateful: random runs
    steps: int  # stateful: steps per run at most
    samples: int  # prove: cross-check inputs
    rlimit: int  # prove: z3 resource units per query

    def sampling(self) -> stateful.Profile:
        return stateful.Profile(self.runs, self.steps)


BUDGETS = {
    "ci": Budget(states=200_000, runs=200, steps=60, samples=2_000, rlimit=DEFAULT_RLIMIT),
    "deep": Budget(states=2_000_000, runs=3_000, steps=200, samples=100_000, rlimit=10 * DEFAULT_RLIMIT),
}
# Per-model exceptions to a profile's budget, as {(profile, model): {field: value}}. None now:
# the kernel's catalog needs the default's 200,000 states (kernel.reclaim_without_pageout is
# killed at the 196,500th), though each kernel state costs four times a buddy state.
MODEL_BUDGETS: dict[tuple[str, str], dict[str, int]] = {}
PROFILES = tuple(BUDGETS)


def budget(profile: str, model: str, overrides: dict[str, int] | None = None) -> Budget:
    """The profile's budget for ``model``, with the user's ``--budget`` overrides on top."""
    return replace(BUDGETS[profile], **MODEL_BUDGETS.get((profile, model), {}), **(overrides or {}))


def parse_budget(text: str) -> dict[str, int]:
    """``--budget states=5000,runs=20``: the fields of Budget to override, as whole numbers >= 1."""
    known = [f.name for f in fields(Budget)]
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in known:
            raise UsageError(f"--budget {text!r}: {item!r} is not KEY=N with KEY one of {', '.join(known)}")
        if not value.strip().isascii() or not value.strip().isdigit() or int(value) < 1:
            raise UsageError(f"--budget {text!r}: {key.strip()} must be a whole number of at least 1")
        out[key.strip()] = int(value)
    return out


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
    job: Job,
    *,
    profile: str,
    seed: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
    mutant: str | None = None,
    overrides: dict[str, int] | None = None,
) -> EngineResult:
    """Run one job within ``profile``'s budget; the mutant, if named, must already be applied
    by the caller. A check (no mutant) also looks for the model's reachability goals, and a
    goal the engine is meant to reach but did not makes the result vacuous, which fails it;
    a mutant run looks only for the violation it must cause."""
    registry = invariants.load_all()
    work = budget(profile, job.model, overrides)
    if job.engine == "prove":
        from checkers.prove import prove

        proof = invariants.PROOFS[job.names[0]]
        return prove(proof, samples=work.samples, seed=seed, rlimit=work.rlimit, mutant=mutant)
    invs = [registry[n] for n in job.names]
    goals = [] if mutant else invariants.goals_for(job.model, job.engine)
    cls = model_class(job.model)
    if job.engine == "explore":
        from checkers.explore import explore

        result: EngineResult = explore(
            cls.from_profile("small"), invs, max_states=work.states, goals=goals, progress=progress, mutant=mutant
        )
    else:
        result = stateful.run_stateful(
            cls.from_profile("large"),
            invs,
            profile=work.sampling(),
            seed_value=seed,
            mutant=mutant,
            goals=goals,
        )
    if result.status in ("pass", "bounded-pass"):
        result.unreached = [g.name for g in goals if result.goals.get(g.name) is None]
    return result
