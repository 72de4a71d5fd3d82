"""Claims that z3 proves and plain Python cross-checks, shared by the subsystems' proof
modules (invariants/slub_proofs.py, invariants/sched_proofs.py).

A claim is one function of the kernel's variables that returns ``(assume, holds, terms)``:
the bounds, the property, and the named values it computed on the way. It calls the model
through its module at each call, so that a mutant replacing a helper changes what is proved.
The proof passes z3 bit-vectors through the claim; the cross-check passes sampled ints
through the same claim and compares every value with the z3 formula evaluated at them.

z3 terms are bit-vectors of a claim's ``bits``, or, with ``bits=None``, z3 integers: the
unbounded integers Python's ints are, with the C widths explicit in the model's truncations.
z3 decides the products and floors of fixed-point arithmetic in integer arithmetic at once,
where a bit-vector query over them is a multiplier circuit it may not refute within minutes.

A claim's property may also be a list of steps: lemmas that z3 needs stated (a property of
integer division, say) and proves first, then the property, proved under them.

Model code that is Python control flow z3 terms cannot pass through is handled two ways:

- cases: a claim's leading parameters may be enumerated. The claim runs once per case with
  those parameters as ints and the rest symbolic, and z3 gets the conjunction.
- tables: a helper of one unsigned argument is evaluated by the model at every value of its
  argument within the bounds, and enters z3 as a piecewise constant of that argument.
"""

from __future__ import annotations

import inspect
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from invariants import proof

Claim = tuple[Any, Any, dict[str, Any]]  # (assume, holds, terms); z3 terms or Python values
Case = tuple[int, ...]


# The operators whose Python and z3 spellings differ: z3's `<` and `>>` are signed, and
# `and`/`or` cannot take z3 Booleans.


def symbolic(*xs: Any) -> bool:
    return any(isinstance(x, z3.ExprRef) for x in xs)


def _bit_vectors(*xs: Any) -> bool:
    return any(isinstance(x, z3.BitVecRef) for x in xs)


def ult(a: Any, b: Any) -> Any:
    """a < b on unsigned operands (z3's < is signed on bit-vectors)."""
    return z3.ULT(a, b) if _bit_vectors(a, b) else a < b


def ule(a: Any, b: Any) -> Any:
    return z3.ULE(a, b) if _bit_vectors(a, b) else a <= b


def all_of(*cs: Any) -> Any:
    return z3.And(*cs) if symbolic(*cs) else all(cs)


def any_of(*cs: Any) -> Any:
    return z3.Or(*cs) if symbolic(*cs) else any(cs)


def implies(a: Any, b: Any) -> Any:
    return z3.Implies(a, b) if symbolic(a, b) else not a or b


def ite(cond: Any, then: Any, otherwise: Any, bits: int) -> Any:
    """cond ? then : otherwise, with int arms read as bits-wide values when cond is symbolic."""
    if not symbolic(cond):
        return then if cond else otherwise
    return z3.If(cond, _bv(then, bits), _bv(otherwise, bits))


def paths(run: Callable[[], Any]) -> list[tuple[Any, Any]]:
    """Every path through model code that branches on z3 terms (an ``if`` on a comparison or
    an integer, ``max``): run() is run once per sequence of branch outcomes, and each result
    comes with its path condition; ``//`` on z3 integers is Python's floor division.
    Infeasible paths come with unsatisfiable conditions. Code that meets no z3 term runs once,
    with the condition True."""
    out: list[tuple[Any, Any]] = []
    todo: list[list[bool]] = [[]]
    original = z3.AstRef.__bool__
    floordiv = getattr(z3.ArithRef, "__floordiv__", None)
    while todo:
        prefix = todo.pop()
        taken: list[bool] = []
        conds: list[Any] = []

        def decide(e: Any, prefix: list[bool] = prefix, taken: list[bool] = taken, conds: list[Any] = conds) -> bool:
            if isinstance(e, z3.ArithRef):
                e = e != 0  # an int's truth
            if not isinstance(e, z3.BoolRef) or z3.is_true(e) or z3.is_false(e):
                return original(e)
            if len(taken) < len(prefix):
                b = prefix[len(taken)]
            else:
                b = False
                todo.append([*taken, True])
            taken.append(b)
            conds.append(e if b else z3.Not(e))
            return b

        z3.AstRef.__bool__ = decide
        z3.ArithRef.__floordiv__ = _floordiv
        try:
            result = run()
        finally:
            z3.AstRef.__bool__ = original
            if floordiv is None:
                del z3.ArithRef.__floordiv__
            else:
                z3.ArithRef.__floordiv__ = floordiv
        out.append((z3.And(*conds) if conds else True, result))
    return out


def _floordiv(a: Any, b: Any) -> Any:
    """Python's a // b on z3 integers (z3's / is Euclidean: the same for b > 0)."""
    return z3.If(b > 0, a / b, (-a) / (-b))


def aligned(x: Any, a: Any) -> Any:
    """x is a multiple of the power of two a (IS_ALIGNED)."""
    return (x & (a - 1)) == 0


def _bv(x: Any, bits: int | None) -> Any:
    """x as a z3 value of the claim's sort: Boolean, bits-wide bit-vector, or integer."""
    if isinstance(x, bool):
        return z3.BoolVal(x)
    if not isinstance(x, int):
        return x
    return z3.IntVal(x) if bits is None else z3.BitVecVal(x, bits)


def _constants(names: list[str], bits: int | None) -> list[Any]:
    joined = " ".join(names)
    return list(z3.Ints(joined) if bits is None else z3.BitVecs(joined, bits))


def select(key: Any, table: dict[int, int], bits: int) -> Any:
    """table[key], 0 for a key not in it (None included): a chain of z3.If for a z3 key."""
    if not symbolic(key):
        return table.get(key, 0)
    out = z3.BitVecVal(0, bits)
    for k, v in table.items():
        out = z3.If(key == k, z3.BitVecVal(v, bits), out)
    return out


@dataclass(frozen=True)
class Table:
    """A model function of one unsigned argument, evaluated by the model at every value from
    ``first`` to ``last``: runs of equal results become ranges, and an argument outside
    first..last reads 0. Ints and z3 terms take the same lookup."""

    first: int
    lasts: tuple[int, ...]  # the last argument of each run
    values: tuple[int, ...]  # the result over each run
    bits: int

    @classmethod
    def of(cls, fn: Callable[[int], int], first: int, last: int, bits: int) -> Table:
        lasts: list[int] = []
        values: list[int] = []
        for x in range(first, last + 1):
            v = fn(x)
            if values and values[-1] == v:
                lasts[-1] = x
            else:
                lasts.append(x)
                values.append(v)
        return cls(first, tuple(lasts), tuple(values), bits)

    def __call__(self, x: Any) -> Any:
        if not symbolic(x):
            i = bisect_left(self.lasts, x)
            return self.values[i] if self.first <= x and i < len(self.lasts) else 0
        out = z3.BitVecVal(0, self.bits)
        for last, value in zip(reversed(self.lasts), reversed(self.values), strict=True):
            out = z3.If(z3.ULE(x, last), z3.BitVecVal(value, self.bits), out)
        return z3.If(z3.ULT(x, self.first), z3.BitVecVal(0, self.bits), out)


# Registration: the proof builds the claim over z3 constants named after the claim's
# positional parameters (the kernel's variable names); the cross-check runs it on ints.

Sampler = Callable[[random.Random, Sequence[Case]], tuple[int, ...]]


def claim_proof(
    name: str,
    *,
    statement: str,
    bounds: str,
    source: str,
    bits: int | None,
    sample: Sampler,
    cases: Callable[[], list[Case]] | None = None,
    setup: Callable[[], dict[str, Any]] | None = None,
    against: Callable[..., dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Claim]], Callable[..., Claim]]:
    """``cases`` enumerates the claim's leading parameters (computed when the proof runs, so
    that a mutant's geometry is what is enumerated); ``setup`` builds keyword arguments for the
    claim (tables) once per proof run; ``against`` gives, for a sampled input, the values the
    model's own code computes for terms the claim restates, which the cross-check compares too."""

    def register(claim: Callable[..., Claim]) -> Callable[..., Claim]:
        params = inspect.signature(claim).parameters.values()
        names = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]

        def encode() -> list[Claim]:
            context = setup() if setup else {}
            xs = _constants(names, bits)
            if cases is None:
                return _steps(claim(*xs, **context))
            # One query per case: z3 refutes many small ones far faster than their disjunction.
            queries = []
            for case in cases():
                at, (assume, holds, terms) = _instance(claim, xs, case, bits, context)
                queries += _steps((z3.And(at, assume), holds, terms))
            return queries

        def crosscheck(rng: random.Random, n: int) -> list[str]:
            context = setup() if setup else {}
            enumerated = cases() if cases else None
            encoded = _named(_encode(claim, names, bits, enumerated, context))
            return _crosscheck(
                claim, names, bits, encoded, context, enumerated or [], sample, against, rng, n
            )

        proof(name, statement=statement, bounds=bounds, source=source, crosscheck=crosscheck)(encode)
        return claim

    return register


def _encode(
    claim: Callable[..., Claim],
    names: list[str],
    bits: int | None,
    cases: list[Case] | None,
    context: dict[str, Any],
) -> Claim:
    """The claim as one formula: over every case, each selected by its enumerated parameters."""
    xs = _constants(names, bits)
    if cases is None:
        assume, holds, terms = claim(*xs, **context)
        return assume, _conjoined(holds), terms
    instances = []
    for case in cases:
        at, (assume, holds, terms) = _instance(claim, xs, case, bits, context)
        instances.append((at, assume, _bv(_conjoined(holds), bits), terms))
    assume = z3.Or(*(z3.And(at, a) for at, a, _, _ in instances))
    holds = z3.And(*(z3.Implies(at, h) for at, _, h, _ in instances))
    terms = {}
    for label in instances[0][3]:
        term = instances[-1][3][label]
        for at, _, _, t in reversed(instances[:-1]):
            term = z3.If(at, t[label], term)
        terms[label] = term
    return assume, holds, terms


def _instance(
    claim: Callable[..., Claim], xs: list[Any], case: Case, bits: int | None, context: dict[str, Any]
) -> tuple[Any, Claim]:
    """The claim for one case, and the condition on the constants that selects it."""
    at = z3.And(*(x == v for x, v in zip(xs, case, strict=False)))
    assume, holds, terms = claim(*case, *xs[len(case) :], **context)
    return at, (_bv(assume, bits), holds, {k: _bv(v, bits) for k, v in terms.items()})


def _steps(claim: Claim) -> list[Claim]:
    """A claim's property may be a list of steps: lemmas z3 proves first, then uses. Each step
    is a query under the bounds and the steps before it, so that together they prove the
    last one under the bounds alone."""
    assume, holds, terms = claim
    if not isinstance(holds, list):
        return [claim]
    return [(all_of(assume, *holds[:i]), step, terms) for i, step in enumerate(holds)]


def _conjoined(holds: Any) -> Any:
    return all_of(*holds) if isinstance(holds, list) else holds


def _named(claim: Claim) -> dict[str, Any]:
    # Terms first: the first value that differs is the one that explains the others.
    assume, holds, terms = claim
    return {**terms, "the bounds": assume, "the property": _conjoined(holds)}


def z3_value(term: Any, at: z3.ModelRef) -> Any:
    """A term's value in a z3 model: a bool, an int, or the term's text for any other sort."""
    if not isinstance(term, z3.ExprRef):
        return term
    v = at.eval(term, model_completion=True)
    if z3.is_true(v) or z3.is_false(v):
        return z3.is_true(v)
    return v.as_long() if z3.is_bv_value(v) or z3.is_int_value(v) else str(v)


def _at(xs: list[z3.ExprRef], values: tuple[int, ...], bits: int | None) -> z3.ModelRef:
    """The inputs as a z3 model, to evaluate terms in (faster than substituting into each)."""
    at = z3.Model()
    for x, v in zip(xs, values, strict=True):
        at.update_value(x, _bv(v, bits))
    return at


def _crosscheck(
    claim: Callable[..., Claim],
    names: list[str],
    bits: int | None,
    encoded: dict[str, Any],
    context: dict[str, Any],
    cases: Sequence[Case],
    sample: Sampler,
    against: Callable[..., dict[str, Any]] | None,
    rng: random.Random,
    n: int,
) -> list[str]:
    """One sentence per sampled input where Python and the z3 formula disagree on a value, or
    where the claim's restatement of model code disagrees with that code (``against``)."""
    xs = _constants(names, bits)
    mismatches = []
    for _ in range(n):
        values = sample(rng, cases)
        where = ", ".join(f"{k}={v}" for k, v in zip(names, values, strict=True))
        concrete = _named(claim(*values, **context))
        at = _at(xs, values, bits)
        for label, term in encoded.items():
            got, want = concrete[label], z3_value(term, at)
            # A z3 term here means the helper built a formula from plain ints.
            if isinstance(got, z3.ExprRef) or got != want:
                mismatches.append(f"{where}: {label} is {got} in Python but {want} in z3")
                break
        else:
            if against is not None:
                found = _compare(concrete, against, values)
                if found:
                    mismatches.append(f"{where}: {found}")
    return mismatches


def _compare(
    concrete: dict[str, Any], against: Callable[..., dict[str, Any]], values: tuple[int, ...]
) -> str:
    try:
        model = against(*values)
    except Exception as e:  # the model's code raised where the claim computed a value
        return f"{against.__name__} raised {type(e).__name__}: {e}"
    for label, want in model.items():
        if concrete[label] != want:
            return f"{label} is {concrete[label]} in the claim but {want} in {against.__name__}"
    return ""
