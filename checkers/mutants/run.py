"""``kinv mutants``: run each mutant's engine with only the invariant it must break.

A mutant is killed when that engine reports that invariant (or refutes that proof) while
the mutant is applied; a model that raises instead is not a kill, since no invariant caught
the bug. The run fails if a mutant survives or if an invariant or proof has no mutant.
Each engine runs within the ``ci`` budget, which counts work, so a kill does not depend on
the machine's speed, and the outcome says how much of the budget the kill took.
"""

from __future__ import annotations

import fnmatch
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import invariants
from checkers import plan
from checkers.control import CONTROL
from checkers.errors import UsageError
from checkers.mutants import Mutant, load_all
from checkers.results import EngineResult


@dataclass
class Outcome:
    mutant: Mutant
    result: EngineResult

    @property
    def killed(self) -> bool:
        cex = self.result.counterexample
        return self.result.refutation is not None or (cex is not None and cex.invariant == self.mutant.breaks)

    @property
    def undecided(self) -> bool:
        """Interrupted, or stopped at a cap, before a kill: neither killed nor survived."""
        return not self.killed and self.result.status == "incomplete"

    @property
    def work(self) -> str:
        """What the engine did before the kill (or in all, for a survivor)."""
        stats = self.result.stats
        if self.result.engine == "explore":
            return f"{stats.get('states', 0):,} states, {stats.get('transitions', 0):,} transitions"
        if self.result.engine == "stateful":
            return f"{stats.get('runs', 0):,} runs, {stats.get('steps', 0):,} steps"
        return f"{stats.get('samples', 0):,} cross-check inputs, rlimit {stats.get('rlimit', 0):,}"

    @property
    def detail(self) -> str:
        r = self.result
        if r.counterexample is not None and self.killed:
            n = len(r.counterexample.steps)
            return f"killed in {n} step{'' if n == 1 else 's'} ({self.work}): {r.counterexample.violations[0]}"
        if r.counterexample is not None:
            return f"survived: the engine stopped at {r.counterexample.invariant} instead"
        if r.refutation is not None:
            how = "the cross-check" if "cross-check" in r.refutation else "z3"
            values = ", ".join(f"{k}={v}" for k, v in r.refutation.items())
            return f"refuted by {how}: {values}"
        if r.error:
            return f"survived: the model raised {r.error}; no invariant caught it"
        if r.stopped:
            return f"not decided: {r.strength}"
        return f"survived: {r.strength}"


def select(selectors: list[str]) -> list[Mutant]:
    catalog = load_all()
    if not selectors:
        return list(catalog.values())
    chosen: dict[str, Mutant] = {}
    for sel in selectors:
        hits = [m for m in catalog.values() if m.model == sel or fnmatch.fnmatchcase(m.name, sel)]
        if not hits:
            raise UsageError(f"selector {sel!r}: no mutant or model of that name (see `kinv list`)")
        chosen.update((m.name, m) for m in hits)
    return list(chosen.values())


def orphans(chosen: list[Mutant]) -> list[str]:
    """Invariants and proofs of the chosen mutants' models that no mutant in the catalog breaks."""
    targets = {m.breaks for m in load_all().values()}
    models = {m.model for m in chosen}
    names = [i.name for i in invariants.load_all().values() if i.model in models]
    names += [p.name for p in invariants.PROOFS.values() if p.subsystem in models]
    return sorted(n for n in names if n not in targets)


def run_mutants(
    selectors: list[str], *, seed: int, progress: Callable[[dict[str, Any]], None] | None = None
) -> tuple[list[Outcome], list[str]]:
    chosen = select(selectors)
    invs = invariants.load_all()
    for m in chosen:
        if m.breaks not in invs and m.breaks not in invariants.PROOFS:
            raise UsageError(f"mutant {m.name}: names unknown invariant {m.breaks!r}")
    outcomes = []
    for i, m in enumerate(chosen):
        if CONTROL.reason is not None:  # interrupted: the rest are neither killed nor survived
            outcomes.append(Outcome(m, EngineResult.not_started(m.model, m.engine, [m.breaks], CONTROL.reason)))
            continue
        if progress:
            progress({"mutant": m.name, "done": i, "of": len(chosen)})
        job = plan.Job(m.model, m.engine, (m.breaks,))
        with m.applied():
            try:
                result = plan.run_job(job, profile="ci", seed=seed, mutant=m.name)
            except Exception as e:  # the mutant made the model raise: reported, not a kill
                result = EngineResult(m.model, m.engine, [m.breaks], "did not finish", error=f"{type(e).__name__}: {e}",
                                      traceback="".join(traceback.format_exception(e)))
        outcomes.append(Outcome(m, result))
    return outcomes, orphans(chosen)


def print_outcomes(outcomes: list[Outcome], missing: list[str], console: Any) -> None:
    from rich.table import Table

    table = Table("mutant", "must break", "engine", "verdict", title="kinv mutants")
    for o in outcomes:
        verdict = f"[green]{o.detail}[/]" if o.killed else f"[yellow]{o.detail}[/]" if o.undecided else f"[red]{o.detail}[/]"
        table.add_row(o.mutant.name, o.mutant.breaks, o.mutant.engine, verdict)
    console.print(table)
    killed = sum(o.killed for o in outcomes)
    undecided = sum(o.undecided for o in outcomes)
    console.print(f"{killed} of {len(outcomes)} mutants killed" + (f", {undecided} not decided" if undecided else ""))
    for name in missing:
        console.print(f"[red]no mutant breaks {name}[/]: every invariant needs one (checkers/mutants/)")
