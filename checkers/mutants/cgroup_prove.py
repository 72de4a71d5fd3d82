"""Mutants of the page counters for the z3 proof (invariants/cgroup_proofs.py): each replaces
page_counter_try_charge with a plausible kernel bug, which the proof must refute.

Registered on import: checkers/mutants/cgroup.py imports this module."""

from __future__ import annotations

from checkers.mutants import mutant
from model.cgroup import page_counter

_try_charge = page_counter.page_counter_try_charge


def try_charge_leaf_first_only(
    counters: page_counter.Counters, chain: tuple[int, ...], nr_pages: int
) -> int | None:
    """page_counter_try_charge checks only the memcg's own max; the ancestors are charged past theirs."""
    failed = _try_charge(counters, chain[:1], nr_pages)
    if failed is None:
        for cg in chain[1:]:
            c = counters[cg]
            counters[cg] = c._replace(
                usage=c.usage + nr_pages, watermark=max(c.watermark, c.usage + nr_pages)
            )
    return failed


def try_charge_no_revert(
    counters: page_counter.Counters, chain: tuple[int, ...], nr_pages: int
) -> int | None:
    """A charge refused at an ancestor is not cancelled at the levels below it."""
    for cg in chain:
        c = counters[cg]
        new = c.usage + nr_pages
        if new > c.max:
            counters[cg] = c._replace(failcnt=c.failcnt + 1)
            return cg
        counters[cg] = c._replace(usage=new, watermark=max(c.watermark, new))
    return None


mutant(
    "cgroup.prove_ancestors_unchecked",
    model="cgroup",
    breaks="cgroup.try_charge_inductive",
    engine="prove",
    patches=(("model.cgroup.page_counter", "page_counter_try_charge", try_charge_leaf_first_only),),
)
mutant(
    "cgroup.prove_refused_charge_kept",
    model="cgroup",
    breaks="cgroup.try_charge_inductive",
    engine="prove",
    patches=(("model.cgroup.page_counter", "page_counter_try_charge", try_charge_no_revert),),
)
