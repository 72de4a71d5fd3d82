"""z3 proofs of the memory controller's page counters (mm/page_counter.c) and of the cpu
controller's share arithmetic (kernel/sched/fair.c).

Each claim runs the model's own code on z3 integers (page_counter_try_charge,
sched_group_set_shares, calc_group_shares): its branches (a level over its max, a new
watermark, a clamp) are taken both ways, path by path (claims.paths), so that the proof
covers the code as written, for every value.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from invariants.claims import Case, Claim, all_of, claim_proof, implies, paths
from model.cgroup import page_counter
from model.cgroup.page_counter import PageCounter
from model.sched import core, fair
from model.sched.model import SchedConfig, SchedModel
from model.sched.sched import MAX_SHARES, MIN_SHARES, ROOT_TASK_GROUP, TgSe

DEPTHS = (1, 2, 3, 4)  # a memcg and up to three ancestors
LEVELS = max(DEPTHS)


def _sample(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    (depth,) = rng.choice(cases)
    usage = sorted(rng.randrange(0, 50) for _ in range(LEVELS))  # a parent holds at least its child
    maxes = [u + rng.randrange(-2, 6) for u in usage]  # some levels full, some over (outside the bounds)
    marks = [u + rng.randrange(0, 3) for u in usage]
    return (depth, rng.randrange(0, 4), *usage, *maxes, *marks)


@claim_proof(
    "cgroup.try_charge_inductive",
    statement=(
        "usage <= max at every level, watermark >= usage, and a parent's usage at least its "
        "child's are inductive under page_counter_try_charge: from any counters that satisfy "
        "them, a charge of nr_pages either raises every level by nr_pages or, refused at some "
        "level, leaves every usage as it was, and they still hold."
    ),
    bounds="chains of 1 to 4 counters (a memcg and its ancestors); every integer usage, max, "
    "watermark and nr_pages >= 1",
    source="mm/page_counter.c page_counter_try_charge, page_counter_cancel",
    bits=None,
    cases=lambda: [(d,) for d in DEPTHS],
    sample=_sample,
)
def try_charge_inductive(
    depth: int, nr_pages: Any, u0: Any, u1: Any, u2: Any, u3: Any, m0: Any, m1: Any, m2: Any, m3: Any,
    w0: Any, w1: Any, w2: Any, w3: Any,
) -> Claim:  # fmt: skip
    usage, maxes, marks = (u0, u1, u2, u3)[:depth], (m0, m1, m2, m3)[:depth], (w0, w1, w2, w3)[:depth]
    chain = tuple(range(depth))

    def charge() -> tuple[int | None, dict[int, PageCounter]]:
        counters = {i: PageCounter(usage[i], maxes[i], marks[i], 0) for i in chain}
        failed = page_counter.page_counter_try_charge(counters, chain, nr_pages)
        return failed, counters

    def invariant(us: Sequence[Any], ms: Sequence[Any], ws: Sequence[Any]) -> Any:
        return all_of(
            *(all_of(u >= 0, u <= m, u <= w) for u, m, w in zip(us, ms, ws, strict=True)),
            *(us[i] <= us[i + 1] for i in range(len(us) - 1)),
        )

    assume = all_of(nr_pages >= 1, invariant(usage, maxes, marks))
    holds = []
    for cond, (failed, counters) in paths(charge):
        after = [counters[i] for i in chain]
        moved = [c.usage - u for c, u in zip(after, usage, strict=True)]
        whole = all_of(*(d == (0 if failed is not None else nr_pages) for d in moved))
        same_max = all_of(*(c.max == m for c, m in zip(after, maxes, strict=True)))
        kept = invariant([c.usage for c in after], [c.max for c in after], [c.watermark for c in after])
        holds.append(implies(cond, all_of(whole, same_max, kept)))
    return assume, all_of(*holds), {}


# The cpu controller's share arithmetic (kernel/sched/fair.c), run on the scheduler model.

SHARE_LOAD_BITS = 40  # group loads below 2^40: over a million nice -20 tasks on one CPU


def _one_group(nr_cpus: int) -> tuple[Any, int]:
    """A scheduler with one empty task group under the root."""
    state = SchedModel(SchedConfig(nr_cpus=nr_cpus, tasks=(), nice_values=())).init_state()
    return state, core.sched_create_group(state, ROOT_TASK_GROUP)


def _sample_shareval(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    return (
        rng.choice(
            (
                rng.randrange(0, 8),
                rng.randrange(0, 1 << 20),
                rng.getrandbits(64),
                MAX_SHARES + rng.randrange(-2, 3),
            )
        ),
    )


@claim_proof(
    "cgroup.shares_clamp",
    statement="A write of any cpu.shares value leaves the task group's shares in [MIN_SHARES, "
    "MAX_SHARES], and exactly the value written when it lies in that range.",
    bounds="every u64 value written to a group's cpu.shares",
    source="kernel/sched/fair.c sched_group_set_shares; kernel/sched/core.c cpu_shares_write_u64",
    bits=None,
    sample=_sample_shareval,
)
def shares_clamp(shareval: Any) -> Claim:
    def write() -> Any:
        state, tg = _one_group(1)
        fair.sched_group_set_shares(state, tg, shareval)
        return state.task_groups[tg].shares

    holds = [
        implies(cond, all_of(shares >= MIN_SHARES, shares <= MAX_SHARES, implies(
            all_of(shareval >= MIN_SHARES, shareval <= MAX_SHARES), shares == shareval)))
        for cond, shares in paths(write)
    ]  # fmt: skip
    return all_of(shareval >= 0, shareval < 1 << 64), all_of(*holds), {}


def _sample_loads(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    def load() -> int:
        return rng.choice((0, rng.randrange(1, 1 << 12), rng.randrange(1 << SHARE_LOAD_BITS)))

    return (
        rng.choice((MIN_SHARES, 1024, rng.randrange(MIN_SHARES, MAX_SHARES + 1), MAX_SHARES)),
        load(),
        load(),
    )


@claim_proof(
    "cgroup.group_shares_nonzero",
    statement="calc_group_shares gives a group entity a weight in [MIN_SHARES, the group's shares] "
    "whatever the loads of the group's cfs_rqs: never 0, so no group entity is weightless.",
    bounds=f"a group of 2 CPUs, its shares in [MIN_SHARES, MAX_SHARES], each CPU's group load below 2^{SHARE_LOAD_BITS}",
    source="kernel/sched/fair.c calc_group_shares, update_cfs_group",
    bits=None,
    sample=_sample_loads,
)
def group_shares_nonzero(tg_shares: Any, load0: Any, load1: Any) -> Claim:
    def weigh() -> Any:
        state, tg = _one_group(2)
        state.task_groups[tg] = state.task_groups[tg]._replace(shares=tg_shares)
        for cpu, load in enumerate((load0, load1)):
            q = TgSe(tg, cpu)
            state.tg_cfs[q] = state.tg_cfs[q]._replace(load=load)
        return fair.calc_group_shares(state, TgSe(tg, 0))

    holds = [implies(cond, all_of(w >= MIN_SHARES, w <= tg_shares)) for cond, w in paths(weigh)]
    assume = all_of(
        tg_shares >= MIN_SHARES, tg_shares <= MAX_SHARES,
        *(all_of(load >= 0, load < 1 << SHARE_LOAD_BITS) for load in (load0, load1)),
    )  # fmt: skip
    return assume, all_of(*holds), {}
