"""z3 proofs of the fair scheduler's arithmetic (kernel/sched/fair.c): the fixed-point
weight scaling of __calc_delta against the exact ratio, the (s64)(a - b) order of vruntimes
across the u64 wrap, and the slices of a run queue against its period.

The claims follow invariants/claims.py and call the model through its module at each call
(``fair.calc_delta``), so that a mutant replacing a helper changes what is proved. z3 terms
are integers (``bits=None``): the model's helpers truncate them to the C widths (u64, u32)
where the kernel's types do, and the claims compare them with exact products. Per-nice-level
weights and the period are enumerated as cases (the kernel reads both from tables and
sysctls); run-queue weights are symbolic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache
from types import SimpleNamespace
from typing import Any

from invariants.claims import Case, Claim, all_of, claim_proof, ule, ult
from invariants.sched import CALC_DELTA_ERROR_SHIFT
from model.sched import core, fair
from model.sched.model import SchedConfig, SchedModel
from model.sched.sched import MAX_RT_PRIO, NICE_0_LOAD, WMULT_CONST, LoadWeight, sched_prio_to_weight

U64_BITS = 64  # the sampled values' width
NICE_LEVELS = len(sched_prio_to_weight)  # prio = nice + 20 indexes sched_prio_to_weight

# __calc_delta's error: the inverse weights are 2^32 / weight rounded to the nearest
# (sched_prio_to_wmult) or down (__update_inv_weight), and every product is truncated. Each
# nice level's scaling then lies within a part in 2^26 of the exact ratio (the worst, nice
# -7, is 9.3e-9 off), plus the last product's truncation: under a nanosecond. The
# vruntime_accounting invariant allows exactly this.
ERROR_SHIFT = CALC_DELTA_ERROR_SHIFT
# Below 2^57 ns (4.5 years), delta_exec * 1024 / 15 (nice 19) still fits in a u64.
DELTA_BITS = 57

MIN_WEIGHT, MAX_WEIGHT = min(sched_prio_to_weight), max(sched_prio_to_weight)
# Run queues of up to this many tasks, on machines of 1 to 8 CPUs (the sysctl scaling's range).
SLICE_TASKS = 4  # the claim's weights w0..w3
SLICE_CPUS = (1, 2, 4, 8)


def nice_load(prio: int) -> LoadWeight:
    """The load weight set_load_weight gives a task of static_prio MAX_RT_PRIO + prio."""
    return core.set_load_weight(MAX_RT_PRIO + prio)


# 1. __calc_delta against the exact ratio.


def _sample_delta(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    (prio,) = rng.choice(cases)
    kind = rng.randrange(5)
    if kind == 0:
        delta = rng.randrange(1 << 24)  # up to a few ticks
    elif kind == 1:
        delta = (1 << rng.randrange(1, DELTA_BITS + 1)) + rng.choice((-1, 0, 1))
    elif kind == 2:
        delta = rng.randrange(1 << DELTA_BITS)
    elif kind == 3:
        delta = rng.randrange(1 << DELTA_BITS, 1 << U64_BITS)  # beyond the bounds
    else:
        delta = (1 << DELTA_BITS) - rng.randrange(1, 1 << 20)
    return prio, delta


@claim_proof(
    "sched.calc_delta_fair_error",
    statement=(
        f"For every nice level, calc_delta_fair(delta_exec) lies within a part in 2^{ERROR_SHIFT}"
        " of the exact delta_exec * NICE_0_LOAD / weight, less at most one nanosecond; so no"
        " product on the way overflowed (mul_u64_u32_shr's u64 result would have lost 2^64)."
    ),
    bounds=f"every nice level -20..19, every delta_exec below 2^{DELTA_BITS} ns",
    source="kernel/sched/fair.c calc_delta_fair, __calc_delta, __update_inv_weight; "
    "include/linux/math64.h mul_u64_u32_shr",
    bits=None,
    cases=lambda: [(prio,) for prio in range(NICE_LEVELS)],
    sample=_sample_delta,
)
def calc_delta_fair_error(prio: int, delta_exec: Any) -> Claim:
    load = nice_load(prio)
    se = SimpleNamespace(load=load)  # calc_delta_fair reads se->load only
    got = fair.calc_delta_fair(delta_exec, se)  # type: ignore[arg-type]
    # got ~ exact = delta_exec * NICE_0_LOAD / weight, multiplied through by weight * 2^26
    exact = delta_exec * NICE_0_LOAD
    scaled = got * load.weight * (1 << ERROR_SHIFT)
    holds = all_of(
        ule(scaled, exact * ((1 << ERROR_SHIFT) + 1)),
        ule(exact * ((1 << ERROR_SHIFT) - 1), scaled + load.weight * (1 << ERROR_SHIFT)),
    )
    return all_of(ule(0, delta_exec), ult(delta_exec, 1 << DELTA_BITS)), holds, {"calc_delta_fair": got}


# 2. The vruntime order across the u64 wrap.

TRUE_BITS = 126  # the sampled true vruntimes' width


def _sample_vruntimes(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    x = rng.choice((rng.getrandbits(64), (1 << 64) - rng.getrandbits(20), rng.getrandbits(TRUE_BITS)))
    kind = rng.randrange(4)
    if kind == 0:
        d = rng.randrange(-(1 << 40), 1 << 40)
    elif kind == 1:
        d = rng.choice((-1, 1)) * ((1 << 63) - rng.randrange(3))  # at and around the bound
    elif kind == 2:
        d = rng.randrange(-(1 << 63) + 1, 1 << 63)
    else:
        d = rng.randrange(-(1 << 70), 1 << 70)
    return x, min(max(x + d, 0), (1 << TRUE_BITS) - 1)


@claim_proof(
    "sched.vruntime_order_wraps",
    statement=(
        "For vruntimes stored modulo 2^64, (s64)(a - b) is the true difference whenever that is"
        " below 2^63 in magnitude: entity_before, max_vruntime and min_vruntime order them as"
        " their true values, right across the u64 wrap."
    ),
    bounds="all true (unwrapped) vruntimes whose difference lies strictly between -2^63 and 2^63",
    source="kernel/sched/fair.c entity_before, max_vruntime, min_vruntime",
    bits=None,
    sample=_sample_vruntimes,
)
def vruntime_order_wraps(x: Any, y: Any) -> Claim:
    a, b = fair.u64(x), fair.u64(y)  # what se->vruntime holds
    delta = fair.vruntime_delta(a, b)
    before = fair.entity_before(SimpleNamespace(vruntime=a), SimpleNamespace(vruntime=b))  # type: ignore[arg-type]
    true = x - y
    assume = all_of(ule(0, x), ule(0, y), ult(-(1 << 63), true), ult(true, 1 << 63))
    return assume, all_of(delta == true, before == ult(x, y)), {"(s64)(a - b)": delta}


# 3. Slices against the period.


@cache
def _period(nr_cpus: int, nr_running: int) -> int:
    state = SchedModel(SchedConfig(nr_cpus=nr_cpus, tasks=())).init_state()
    return fair.sched_period(state, nr_running)


def _sample_weights(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    nr_cpus, nr_running = rng.choice(cases)

    def weight() -> int:
        kind = rng.randrange(10)
        if kind < 6:
            return rng.choice(sched_prio_to_weight)
        if kind < 9:
            return rng.randint(MIN_WEIGHT, MAX_WEIGHT)
        return rng.choice((0, MIN_WEIGHT - 1, MAX_WEIGHT + 1, rng.getrandbits(U64_BITS)))

    return (nr_cpus, nr_running, *(weight() for _ in range(SLICE_TASKS)))


@claim_proof(
    "sched.slices_sum_to_period",
    statement=(
        "The slices of the tasks queued on a cfs_rq add up to the period: never more, and less"
        " by at most a nanosecond per task and period * load / 2^32 (the truncated inverse"
        " weight of the queue's load)."
    ),
    bounds=(
        f"1 to {SLICE_TASKS} queued tasks of any weights {MIN_WEIGHT}..{MAX_WEIGHT} (nice 19 to -20"
        f" and between), on {', '.join(map(str, SLICE_CPUS))} CPUs"
    ),
    source="kernel/sched/fair.c sched_slice (every entity queued: __calc_delta(__sched_period("
    "nr_running), se->load.weight, &cfs_rq->load)), __sched_period, __calc_delta",
    bits=None,
    cases=lambda: [(c, n) for c in SLICE_CPUS for n in range(1, SLICE_TASKS + 1)],
    sample=_sample_weights,
)
def slices_sum_to_period(nr_cpus: int, nr_running: int, w0: Any, w1: Any, w2: Any, w3: Any) -> Claim:
    weights = (w0, w1, w2, w3)[:nr_running]
    period = _period(nr_cpus, nr_running)
    # cfs_rq->load: an unsigned long sum, its inverse left to __update_inv_weight
    load = LoadWeight(fair.u64(sum(weights)), 0)
    slices = [fair.calc_delta(period, w, load) for w in weights]
    total = sum(s for s in slices)
    assume = all_of(*(all_of(ule(MIN_WEIGHT, w), ule(w, MAX_WEIGHT)) for w in (w0, w1, w2, w3)))
    # The lemma: __update_inv_weight's inverse is the floor of WMULT_CONST / load. With it
    # stated, each slice is linear in w * inv, and their sum in load * inv.
    inv = fair.update_inv_weight(load)
    lemma = all_of(ule(load.weight * inv, WMULT_CONST), ult(WMULT_CONST - load.weight, load.weight * inv))
    short = period - total
    holds = [
        lemma,
        all_of(ule(total, period), ule(short * (1 << 32), period * load.weight + nr_running * (1 << 32))),
    ]
    return assume, holds, {"sum of the slices": fair.u64(sum(slices))}
