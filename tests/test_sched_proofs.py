"""The z3 proofs of the fair scheduler's arithmetic: each is proved and its cross-check agrees;
each prove mutant is refuted by a z3 counterexample that plain Python confirms; the bounds
the proofs state are tight; and the claims compute what the model's sched_slice does."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import invariants
from checkers.mutants import Mutant, sched_prove
from checkers.prove import prove
from invariants import sched_proofs
from model.sched import fair
from model.sched.model import SchedConfig, SchedModel
from model.sched.sched import LoadWeight

CLAIMS: dict[str, Callable[..., Any]] = {
    "sched.calc_delta_fair_error": sched_proofs.calc_delta_fair_error,
    "sched.vruntime_order_wraps": sched_proofs.vruntime_order_wraps,
    "sched.slices_sum_to_period": sched_proofs.slices_sum_to_period,
}
MS = 1_000_000


def test_the_proofs_are_registered() -> None:
    invariants.load_all()
    assert sorted(n for n, p in invariants.PROOFS.items() if p.subsystem == "sched") == sorted(CLAIMS)


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_every_sched_proof_is_proved(name: str) -> None:
    invariants.load_all()
    r = prove(invariants.PROOFS[name], samples=200, seed=1)
    assert r.status == "pass", (r.strength, r.error, r.refutation)
    assert r.stats["z3_result"] == "unsat" and r.stats["crosscheck_mismatches"] == 0
    assert r.strength == f"proved for all inputs: {invariants.PROOFS[name].bounds}"


def test_every_proof_has_a_prove_mutant() -> None:
    assert {m.breaks for m in sched_prove.PROOF_MUTANTS} == set(CLAIMS)
    for m in sched_prove.PROOF_MUTANTS:
        assert m.name.startswith("sched.prove_") and m.model == "sched" and m.engine == "prove"
        assert m.description and m.description != m.name


def _holds(claim: Callable[..., Any], inputs: dict[str, int]) -> tuple[Any, bool]:
    assume, holds, _ = claim(**inputs)
    return assume, all(holds) if isinstance(holds, list) else holds


@pytest.mark.parametrize("m", sched_prove.PROOF_MUTANTS, ids=lambda m: m.name)
def test_every_prove_mutant_is_refuted_by_a_real_counterexample(m: Mutant) -> None:
    invariants.load_all()
    claim = CLAIMS[m.breaks]
    names = [p.name for p in inspect.signature(claim).parameters.values()]
    with m.applied():
        r = prove(invariants.PROOFS[m.breaks], samples=50, seed=0, mutant=m.name)
        inputs = {k: r.stats["z3_model"][k] for k in names}
        # z3's counterexample, run through the mutated Python code on plain ints, violates the claim.
        assume, holds = _holds(claim, inputs)
    assert r.status == "fail" and r.stats["z3_result"] == "sat", (r.strength, r.error)
    assert assume is True and holds is False, inputs
    # ... and the same input satisfies it without the mutant
    assert _holds(claim, inputs) == (True, True)


def test_the_error_bound_is_within_a_factor_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    # nice -7's inverse weight is rounded up: 9.3e-9 above the exact ratio, more than 2^-27
    monkeypatch.setattr(sched_proofs, "ERROR_SHIFT", 27)
    invariants.load_all()
    r = prove(invariants.PROOFS["sched.calc_delta_fair_error"], samples=10)
    assert r.status == "fail" and r.refutation is not None


def test_the_order_fails_at_a_difference_of_2_63() -> None:
    for x, y in ((1 << 63, 0), ((1 << 64) + 5, 5 - (1 << 63) + (1 << 64))):  # 2^63 apart
        a, b = fair.u64(x), fair.u64(y)
        assert fair.vruntime_delta(a, b) != x - y
    # one less, and it holds right across the wrap
    x, y = (1 << 64) + 3, (1 << 64) + 3 - (1 << 63) + 1
    assert fair.vruntime_delta(fair.u64(x), fair.u64(y)) == x - y == (1 << 63) - 1
    assert _holds(sched_proofs.vruntime_order_wraps, {"x": x, "y": y}) == (True, True)
    assert _holds(sched_proofs.vruntime_order_wraps, {"x": 1 << 63, "y": 0})[0] is False


def test_calc_delta_fair_error_at_the_kernel_numbers() -> None:
    # nice 5 (prio 25) charged a 4 ms tick: 12_226_865, the floor of 12_226_865.67
    assert _holds(sched_proofs.calc_delta_fair_error, {"prio": 25, "delta_exec": 4 * MS}) == (True, True)
    assert fair.calc_delta(4 * MS, 1024, sched_proofs.nice_load(25)) == 12_226_865
    # beyond 2^57 ns nice 19's result no longer fits a u64: outside the bounds, and wrong
    delta = 1 << 59
    assume, holds = _holds(sched_proofs.calc_delta_fair_error, {"prio": 39, "delta_exec": delta})
    assert assume is False and holds is False


def test_the_slices_are_the_model_sched_slice() -> None:
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(-5, 0, 5)))
    s = m.init_state()
    cfs = s.rqs[0].cfs
    queued = [s.tasks[p].se for p in s.tasks if s.tasks[p].se.on_rq and not s.tasks[p].is_idle]
    assert len(queued) == cfs.nr_running == 3
    period = sched_proofs._period(1, 3)
    assert period == fair.sched_period(s, 3) == 6 * MS
    load = LoadWeight(cfs.load, 0)
    assert [fair.sched_slice(s, 0, se) for se in queued] == [
        fair.calc_delta(period, se.load.weight, load) for se in queued
    ]
    weights = [se.load.weight for se in queued]
    assume, holds = _holds(
        sched_proofs.slices_sum_to_period,
        dict(zip(("w0", "w1", "w2"), weights, strict=True), nr_cpus=1, nr_running=3, w3=15),
    )
    assert assume is True and holds is True
    assert sched_proofs._period(8, 4) == 4 * 6 * MS  # 1 + ilog2(8) times sched_latency
