"""The prove engine on the buddy allocator's pfn arithmetic: every proof holds on the model,
each fails on a wrong helper with a counterexample that plain Python confirms, the
cross-check catches code that z3 and Python see differently, and z3 giving up is an error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import z3

import invariants
from checkers.control import Control
from checkers.prove import bench_prove, prove, prove_all
from invariants import Proof, buddy_proofs
from model.mm import page_alloc

MASK = (1 << 64) - 1
REQUIRED = {"buddy.find_buddy_pfn_involution", "buddy.merged_block_aligned", "buddy.buddy_same_parent"}


def buddy_proof_names() -> list[str]:
    return sorted(n for n, p in invariants.PROOFS.items() if p.subsystem == "buddy")


def test_the_required_proofs_are_registered() -> None:
    assert set(buddy_proof_names()) >= REQUIRED


@pytest.mark.parametrize("name", buddy_proof_names())
def test_every_buddy_proof_is_proved(name: str) -> None:
    r = prove(invariants.PROOFS[name], samples=500, seed=1)
    assert r.status == "pass", (r.strength, r.error, r.refutation)
    assert r.strength.startswith("proved for all inputs: all 64-bit pfns")
    assert r.stats["z3_result"] == "unsat"
    assert r.stats["crosscheck_mismatches"] == 0
    assert r.model == "buddy" and r.engine == "prove" and r.invariants == [name]


# For each proof, a wrong helper (the page_alloc function it replaces) and the claim it breaks.
WRONG: dict[str, tuple[str, Callable[[Any, Any], Any], Callable[..., Any]]] = {
    "buddy.find_buddy_pfn_involution": (
        "find_buddy_pfn",
        lambda p, o: p + (1 << o),
        buddy_proofs.find_buddy_pfn_involution,
    ),
    "buddy.buddy_same_parent": ("find_buddy_pfn", lambda p, o: p ^ (1 << (o + 1)), buddy_proofs.buddy_same_parent),
    "buddy.buddy_aligned": ("find_buddy_pfn", lambda p, o: (p ^ (1 << o)) | 1, buddy_proofs.buddy_aligned),
    "buddy.merged_block_aligned": ("combined_pfn", lambda b, p: b | p, buddy_proofs.merged_block_aligned),
    "buddy.merged_block_is_lower_half": ("combined_pfn", lambda b, p: b | p, buddy_proofs.merged_block_is_lower_half),
    "buddy.expand_halves_are_buddies": (
        "find_buddy_pfn",
        lambda p, o: p ^ (1 << (o + 1)),
        buddy_proofs.expand_halves_are_buddies,
    ),
    "buddy.pageblock_start_pfn_rounds_down": (
        "pageblock_start_pfn",
        lambda p, k: p & ~(1 << k),
        buddy_proofs.pageblock_start_pfn_rounds_down,
    ),
}


def test_every_buddy_proof_has_a_wrong_helper() -> None:
    assert set(WRONG) == set(buddy_proof_names())


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_helper_is_refuted_by_a_real_counterexample(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attr, wrong, claim = WRONG[name]
    monkeypatch.setattr(page_alloc, attr, wrong)
    r = prove(invariants.PROOFS[name], samples=200, seed=0, mutant="test.wrong_helper")
    assert r.status == "fail", (r.strength, r.error)
    assert r.stats["z3_result"] == "sat" and r.stats["mutant"] == "test.wrong_helper"
    assert r.strength.startswith("disproved: z3 counterexample ")
    assert r.refutation is not None and r.counterexample is None
    # The counterexample, run through the Python code on plain ints, violates the claim.
    assume, holds, _ = claim(**r.refutation)
    assert assume is True and holds is False


def test_involution_counterexample_in_plain_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(p: Any, o: Any) -> Any:
        return p + (1 << o)

    monkeypatch.setattr(page_alloc, "find_buddy_pfn", wrong)
    r = prove(invariants.PROOFS["buddy.find_buddy_pfn_involution"], samples=50)
    assert r.refutation is not None
    pfn, order = r.refutation["pfn"], r.refutation["order"]
    assert 0 <= pfn <= MASK and 0 <= order < buddy_proofs.MAX_ORDER
    assert wrong(wrong(pfn, order), order) & MASK != pfn
    assert r.stats["z3_model"]["buddy_pfn"] == (pfn + (1 << order)) & MASK


def two_faced(page_pfn: Any, order: Any) -> Any:
    """Right for z3, wrong for the ints the model really runs on."""
    if isinstance(page_pfn, int):
        return page_pfn + (1 << order)
    return page_pfn ^ (1 << order)


def branches_on_bit(page_pfn: Any, order: Any) -> Any:
    """Right on ints; on z3 terms the test is z3's structural equality, always False here."""
    if page_pfn & (1 << order) == 0:
        return page_pfn + (1 << order)
    return page_pfn - (1 << order)


@pytest.mark.parametrize(("helper", "z3_says"), [(two_faced, "unsat"), (branches_on_bit, "sat")])
def test_the_crosscheck_catches_code_that_z3_sees_differently(
    helper: Callable[[Any, Any], Any], z3_says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page_alloc, "find_buddy_pfn", helper)
    runs = [
        prove(invariants.PROOFS["buddy.find_buddy_pfn_involution"], samples=100, seed=7) for _ in range(2)
    ]
    r = runs[0]
    assert r.stats["z3_result"] == z3_says  # what z3 alone would have reported
    assert r.status == "fail" and r.stats["crosscheck_mismatches"] > 0
    assert r.refutation is not None and "in Python but" in r.refutation["cross-check"]
    assert r.strength.startswith("not proved: the z3 encoding disagrees with the Python code")
    assert runs[1].refutation == r.refutation  # the same seed gives the same samples


def test_a_helper_that_cannot_take_z3_arguments_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def guarded(page_pfn: Any, order: Any) -> Any:
        return page_pfn ^ (1 << order) if order < 64 else page_pfn

    monkeypatch.setattr(page_alloc, "find_buddy_pfn", guarded)
    r = prove(invariants.PROOFS["buddy.find_buddy_pfn_involution"], samples=10)
    assert r.status == "error" and r.error is not None and "could not encode" in r.error


def custom_proof(
    claim: Callable[[], Any], crosscheck: Callable[[Any, int], list[str]] | None = None
) -> Proof:
    return Proof("test.custom", "a claim", "a bound", "nowhere", claim, crosscheck or (lambda rng, n: []))


def factoring() -> tuple[Any, Any, dict[str, Any]]:
    """No 64-bit x, y > 1 multiply to a product of two 32-bit primes: z3 must factor it."""
    x, y = z3.BitVecs("x y", 128)
    n = 4294967291 * 4294967279
    assume = z3.And(z3.ULT(1, x), z3.ULT(1, y), z3.ULT(x, 1 << 64), z3.ULT(y, 1 << 64))
    return assume, x * y != n, {}


def test_a_spent_resource_budget_is_incomplete_not_a_pass() -> None:
    r = prove(custom_proof(factoring), rlimit=1_000)
    assert r.status == "incomplete" and r.stopped == "rlimit" and r.error is None
    assert r.stats["z3_result"] == "unknown" and "budget: rlimit 1,000" in r.strength


def test_an_interrupted_proof_is_incomplete_not_an_error() -> None:
    """z3 is interrupted from another thread, as a signal handler or the watchdog does: here
    the control is stopped as soon as the solver has started, whenever that is."""
    control = Control()
    started = threading.Event()
    real_check = z3.Solver.check

    def check(self: z3.Solver, *args: Any) -> Any:
        started.set()
        return real_check(self, *args)

    def stop_when_started() -> None:
        started.wait()
        control.stop("interrupted")

    threading.Thread(target=stop_when_started, daemon=True).start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(z3.Solver, "check", check)
        r = prove(custom_proof(factoring), rlimit=0, control=control)  # rlimit 0: no budget at all
    assert r.status == "incomplete" and r.stopped == "interrupted" and r.error is None
    assert r.strength.startswith("incomplete, interrupted")


def test_bounds_that_admit_no_input_are_an_error() -> None:
    def vacuous() -> tuple[Any, Any, dict[str, Any]]:
        x = z3.BitVec("x", 8)
        return z3.And(x == 1, x == 2), x == 3, {}

    r = prove(custom_proof(vacuous))
    assert r.status == "error" and r.error is not None and "vacuously" in r.error


def test_prove_all_and_bench_return_one_entry_per_proof() -> None:
    names = buddy_proof_names()
    results = prove_all([invariants.PROOFS[n] for n in names], samples=20)
    assert [r.invariants[0] for r in results] == names
    bench = bench_prove(samples=20)
    assert set(names) <= set(bench["proofs"])
    assert all(e["status"] == "pass" and e["solve_seconds"] >= 0 for e in bench["proofs"].values())
