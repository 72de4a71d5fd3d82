"""Mutants of the page counters and the group share arithmetic for the z3 proofs
(invariants/cgroup_proofs.py): each replaces a model function with a plausible kernel bug,
which the proof must refute.

Registered on import: checkers/mutants/cgroup.py imports this module."""

from __future__ import annotations

from checkers.mutants import mutant
from model.cgroup import page_counter
from model.sched import fair
from model.sched.model import SchedState
from model.sched.sched import TgSe

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


def shares_unclamped(shares: int) -> int:
    """sched_group_set_shares stores cpu.shares as written, without the clamp to [MIN_SHARES, MAX_SHARES]."""
    return shares


def group_shares_without_floor(state: SchedState, q: TgSe) -> int:
    """calc_group_shares clamps to tg->shares only, not up to MIN_SHARES: a group with little load on a CPU weighs 0 or 1 there."""
    tg_shares = state.task_groups[q.tg].shares
    load = fair.cfs_of(state, q).load
    tg_weight = sum(state.tg_cfs[TgSe(q.tg, cpu)].load for cpu in range(len(state.cpus)))
    shares = tg_shares * load
    if tg_weight:
        shares //= tg_weight
    return min(shares, tg_shares)


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
mutant(
    "cgroup.prove_shares_unclamped",
    model="cgroup",
    breaks="cgroup.shares_clamp",
    engine="prove",
    patches=(("model.sched.fair", "clamp_shares", shares_unclamped),),
)
mutant(
    "cgroup.prove_group_shares_without_floor",
    model="cgroup",
    breaks="cgroup.group_shares_nonzero",
    engine="prove",
    patches=(("model.sched.fair", "calc_group_shares", group_shares_without_floor),),
)
