"""The prove engine: z3 proofs about model code (DESIGN.md, the "prove" row).

A proof function (``invariants.Proof.prove``) returns ``(assume, holds, terms)``: the bounds
and the property as z3 Booleans over free constants named after the kernel's variables,
and named intermediate values that a refutation shows; or a list of them, one per case,
which z3 answers one by one. The engine first checks that the bounds admit some input
(else the proof would hold vacuously), then asks z3 for an input within the bounds where
the property is false, within a resource budget per query (z3's ``rlimit``, which counts
the solver's work, so that the verdict is the same on a fast or a slow machine):

- unsat: proved for all inputs within the bounds (status pass);
- sat: disproved. A proof has no trace to replay, so ``counterexample`` stays None and the
  z3 model's inputs go into ``EngineResult.refutation`` (status fail), with the named
  terms evaluated in the same model in ``stats["z3_model"]``;
- unknown (the budget spent, or the run interrupted): incomplete, never a pass.

The cross-check then runs the same claim through the Python implementation on seeded random
inputs and compares with the z3 formula evaluated there. A mismatch means the proof is not
about the code that runs: the proof fails whatever z3 said, with the first mismatching
input as its refutation (``{"cross-check": sentence}``) and z3's own model left in the stats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import z3

import invariants
from checkers.control import CONTROL, RLIMIT, Control, stopped_sentence, z3_check
from checkers.results import EngineResult
from invariants import Proof
from invariants.claims import z3_value

DEFAULT_SAMPLES = 200
# z3 resource units per query: ten times what the most expensive proof takes (2.0 million,
# tcp.sequence_matches_rfc9293, about a second).
DEFAULT_RLIMIT = 20_000_000


@dataclass
class Verdict:
    answer: str  # "unsat" (proved), "sat" (refuted), "unknown" or "vacuous"
    seconds: float
    inputs: dict[str, Any] = field(default_factory=dict)  # the refuting input, when sat
    terms: dict[str, Any] = field(default_factory=dict)  # the named terms at that input
    reason: str = ""  # z3's reason for unknown
    stopped: str | None = None  # why it is unknown: the run's control, or z3's budget


def prove(
    proof: Proof,
    *,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    rlimit: int = DEFAULT_RLIMIT,
    mutant: str | None = None,
    control: Control = CONTROL,
) -> EngineResult:
    """Prove one proof and cross-check it on ``samples`` random inputs. A mutant, if named,
    must already be applied by the caller; it is recorded in the stats."""
    stats: dict[str, Any] = {"rlimit": rlimit, "samples": samples, "seed": seed}
    if mutant:
        stats["mutant"] = mutant
    result = EngineResult(proof.subsystem, "prove", [proof.name], "not proved", stats=stats)
    try:
        encoded = proof.prove()
        cases = encoded if isinstance(encoded, list) else [encoded]
        claims = [(_as_bool(a), _as_bool(h), t) for a, h, t in cases]
    except Exception as e:  # a helper that cannot take z3 arguments (it branches on one, say)
        result.error = f"could not encode {proof.name} in z3: {type(e).__name__}: {e}"
        return result

    verdict = solve_all(claims, rlimit, control)
    stats["z3_result"] = verdict.answer
    stats["solve_seconds"] = round(verdict.seconds, 6)
    if verdict.answer == "sat":
        stats["z3_model"] = {**verdict.inputs, **verdict.terms}

    started = time.perf_counter()
    try:
        mismatches = proof.crosscheck(random.Random(f"{seed}:{proof.name}"), samples)
    except Exception as e:  # the claim raised on plain ints: nothing was cross-checked
        result.error = f"cross-check of {proof.name} raised {type(e).__name__}: {e}"
        return result
    stats["crosscheck_seconds"] = round(time.perf_counter() - started, 6)
    if control.reason is not None and verdict.answer != "sat":
        verdict.stopped = control.reason
    stats["crosscheck_mismatches"] = len(mismatches)
    disagree = f"the z3 encoding disagrees with the Python code on {len(mismatches)} of {samples} inputs"

    if mismatches:
        # z3's verdict is about an encoding that is not the running code; the first
        # mismatching input is the refutation, and z3's model (if any) stays in the stats.
        result.refutation = {"cross-check": mismatches[0]}
        result.strength = f"not proved: {disagree}, first {mismatches[0]}"
    elif verdict.answer == "sat":
        result.refutation = verdict.inputs
        result.strength = f"disproved: z3 counterexample {_show(verdict.inputs)}"
    elif verdict.stopped is not None:
        result.stopped = verdict.stopped
        why = stopped_sentence(verdict.stopped)
        result.strength = f"incomplete, {why}: z3 answered unknown ({verdict.reason}; budget: rlimit {rlimit:,})"
    elif verdict.answer == "unsat":
        result.strength = f"proved for all inputs: {proof.bounds}"
        result.complete = True
    elif verdict.answer == "vacuous":
        result.error = f"the bounds of {proof.name} admit no input, so the proof would hold vacuously"
    else:
        result.error = f"z3 returned unknown ({verdict.reason}) for {proof.name}"
    return result


def prove_all(proofs: Iterable[Proof] | None = None, **options: Any) -> list[EngineResult]:
    """One result per proof, all registered proofs by default, in name order."""
    if proofs is None:
        invariants.load_all()
        proofs = [invariants.PROOFS[name] for name in sorted(invariants.PROOFS)]
    return [prove(p, **options) for p in proofs]


def solve_all(
    claims: list[tuple[z3.BoolRef, z3.BoolRef, dict[str, Any]]], rlimit: int, control: Control = CONTROL
) -> Verdict:
    """The first refutation among the cases; else unknown if any case was; else proved,
    unless no case's bounds admit an input."""
    verdicts: list[Verdict] = []
    for claim in claims:
        verdict = solve(*claim, rlimit, control)
        if verdict.answer == "sat":
            verdict.seconds += sum(v.seconds for v in verdicts)
            return verdict
        verdicts.append(verdict)
        if verdict.answer == "unknown" and control.reason is not None:
            break
    seconds = sum(v.seconds for v in verdicts)
    unknown = next((v for v in verdicts if v.answer == "unknown"), None)
    if unknown is not None:
        return Verdict("unknown", seconds, reason=unknown.reason, stopped=unknown.stopped)
    if all(v.answer == "vacuous" for v in verdicts):
        return Verdict("vacuous", seconds)
    return Verdict("unsat", seconds)


def solve(
    assume: z3.BoolRef, holds: z3.BoolRef, terms: dict[str, Any], rlimit: int, control: Control = CONTROL
) -> Verdict:
    # Two solvers rather than one incremental one: z3 bit-blasts a fresh bit-vector query
    # with its fast tactic, which an incremental solver gives up.
    bounds = z3.Solver()
    bounds.set("rlimit", rlimit)
    bounds.add(assume)
    admitted = z3_check(bounds, control)
    if admitted == z3.unsat:
        return Verdict("vacuous", 0.0)
    if admitted == z3.unknown:
        return _unknown(bounds, 0.0, control)

    solver = _solver(assume, holds)
    solver.set("rlimit", rlimit)
    solver.add(assume, z3.Not(holds))
    started = time.perf_counter()
    answer = z3_check(solver, control)
    seconds = time.perf_counter() - started
    if answer == z3.unsat:
        return Verdict("unsat", seconds)
    if answer == z3.unknown:
        return _unknown(solver, seconds, control)
    model = solver.model()
    inputs = {str(c): z3_value(c, model) for c in _constants(holds, assume)}
    return Verdict("sat", seconds, inputs, {k: z3_value(t, model) for k, t in terms.items()})


def _unknown(solver: z3.Solver, seconds: float, control: Control) -> Verdict:
    """An unknown answer, stopped by the run's control or by the budget. z3 says "canceled"
    when interrupted and "max. resource limit exceeded" when its budget is spent; any other
    reason (an incomplete theory) is z3's own and stays an error."""
    reason = solver.reason_unknown()
    stopped = control.reason if control.reason is not None else RLIMIT if "resource limit" in reason else None
    return Verdict("unknown", seconds, reason=reason, stopped=stopped)


def _solver(*exprs: z3.ExprRef) -> z3.Solver:
    """z3's default solver bit-blasts bit-vector queries. Integer queries over fixed-point
    code (a chain of if-then-else per renormalisation and shift) first get each condition
    simplified in the context of the bounds, which settles most branches before search."""
    if any(z3.is_bv(c) for c in _constants(*exprs)):
        return z3.Solver()
    return z3.Then("simplify", "propagate-ineqs", "ctx-simplify", "simplify", "smt").solver()


def _as_bool(x: Any) -> z3.BoolRef:
    """A claim over a mutant that ignores its inputs may come out as a plain bool."""
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if not z3.is_bool(x):
        raise TypeError(f"expected a z3 Boolean, got {x!r}")
    return x


def _constants(*exprs: z3.ExprRef) -> list[z3.ExprRef]:
    """The free constants of ``exprs`` in order of first appearance."""
    found: dict[str, z3.ExprRef] = {}
    seen: set[int] = set()
    stack = list(reversed(exprs))
    while stack:
        e = stack.pop()
        if e.get_id() in seen:
            continue
        seen.add(e.get_id())
        if z3.is_const(e) and e.decl().kind() == z3.Z3_OP_UNINTERPRETED:
            found.setdefault(str(e), e)
        else:
            stack.extend(reversed(e.children()))
    return list(found.values())


def _show(values: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return hex(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 1 << 20 else str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in values.items())


def bench_prove(*, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Benchmark section: per-proof z3 solve and cross-check times for every registered proof."""
    results = prove_all(samples=samples, seed=seed)
    return {
        "samples": samples,
        "seed": seed,
        "proofs": {
            r.invariants[0]: {
                "status": r.status,
                "z3_result": r.stats.get("z3_result"),
                "solve_seconds": r.stats.get("solve_seconds"),
                "crosscheck_seconds": r.stats.get("crosscheck_seconds"),
            }
            for r in results
        },
    }
