"""Mutants of the fair scheduler's arithmetic for the z3 proofs (invariants/sched_proofs.py):
each replaces one helper of model.sched.fair with a plausible kernel bug and names the proof
that must refute it. The replacements take z3 integers as the originals do, through fair's
own helpers, so that z3 refutes them rather than failing to encode them."""

from __future__ import annotations

from typing import Any

from checkers.mutants import mutant
from model.sched import fair
from model.sched.sched import WMULT_SHIFT, LoadWeight

FAIR = "model.sched.fair"

_update_inv_weight = fair.update_inv_weight


def calc_delta_one_renormalisation(delta_exec: Any, weight: Any, lw: LoadWeight) -> Any:
    """__calc_delta skips the renormalisation after mul_u32_u32: a fact above 2^32 loses its high bits to mul_u64_u32_shr's u32."""
    fact, shift = fair.renormalise(weight, WMULT_SHIFT)
    fact = fair.truncate(fact, 32) * fair.update_inv_weight(lw)
    return fair.mul_u64_u32_shr(delta_exec, fact, shift)


def update_inv_weight_rounded_up(lw: LoadWeight) -> Any:
    """__update_inv_weight rounds WMULT_CONST / weight up: the slices of a run queue add up to more than its period."""
    if lw.inv_weight:
        return lw.inv_weight
    return _update_inv_weight(lw) + 1


def vruntime_delta_unsigned(a: Any, b: Any) -> Any:
    """The vruntime order compares the u64 values, not (s64)(a - b): after the wrap, a task 1 ns ahead sorts 2^64 ns behind."""
    return fair.u64(a) - fair.u64(b)


def s64_unsigned(x: Any) -> Any:
    """(s64) reads the u64 as unsigned: a difference below 0 comes out near 2^64, so no entity is ever before another."""
    return fair.u64(x + (1 << 64))


PROOF_MUTANTS = tuple(
    mutant(name, model="sched", breaks=breaks, engine="prove", patches=((FAIR, helper, fn),))
    for name, breaks, helper, fn in (
        (
            "sched.prove_calc_delta_one_renormalisation",
            "sched.calc_delta_fair_error",
            "calc_delta",
            calc_delta_one_renormalisation,
        ),
        (
            "sched.prove_inv_weight_rounded_up",
            "sched.slices_sum_to_period",
            "update_inv_weight",
            update_inv_weight_rounded_up,
        ),
        (
            "sched.prove_vruntime_compared_unsigned",
            "sched.vruntime_order_wraps",
            "vruntime_delta",
            vruntime_delta_unsigned,
        ),
        ("sched.prove_s64_unsigned", "sched.vruntime_order_wraps", "s64", s64_unsigned),
    )
)
