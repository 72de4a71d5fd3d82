"""z3 proofs of SLUB's arithmetic: the kmalloc cache a size gets (mm/slab_common.c
kmalloc_slab), the object an address lies in (mm/slub.c __obj_to_index with
lib/reciprocal_div.c), and the object layout a cache is created with (mm/slub.c
calculate_sizes, calculate_order).

As in invariants/buddy_proofs.py, each claim is one function of the kernel's variables that
returns ``(assume, holds, terms)``, and it calls the model through its module at each call
(``slab_common.kmalloc_slab``), so that a mutant replacing a helper changes what is proved.
The proof passes z3 bit-vectors through the claim; the cross-check passes sampled ints
through the same claim and compares every value with the z3 formula evaluated at them.

Some model code is Python control flow that z3 terms cannot pass through. The proofs then
run that code on every value their bounds admit, and say so in their bounds:

- cases: a claim's leading parameters may be enumerated. The claim runs once per case with
  those parameters as ints and the rest symbolic, and z3 gets the conjunction. obj_to_index
  is proved this way, per slot size, as the kernel computes reciprocal_value(size) once,
  from a concrete size, at cache creation. Each slot size that is not a power of two costs
  z3 a multiplier circuit to refute (0.1 s to 0.6 s alone, more together), so the proof
  enumerates the slot sizes of the caches the model creates, not every multiple of 8.
- tables: a helper of one unsigned argument (calculate_alignment for a given flags and align,
  calculate_order, get_order, order_objects) is evaluated by the model at every value of its
  argument within the bounds, and enters z3 as a piecewise constant of that argument.
"""

from __future__ import annotations

import inspect
import random
from bisect import bisect_left
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import z3

from invariants import proof
from model.mm import slab_common
from model.mm.slab import SlubModel
from model.mm.slab_common import (
    KMALLOC_MAX_CACHE_SIZE,
    PAGE_SIZE,
    SIZEOF_VOID_P,
    SLAB_HWCACHE_ALIGN,
    SLAB_TYPESAFE_BY_RCU,
    CacheSpec,
    SlubParams,
)

SIZE_T = 64  # kmalloc's size_t; also wide enough for reciprocal_divide's u64 product
UINT = 32  # struct kmem_cache's unsigned int object_size, size, align and offset
# The boot parameters of the model's profiles: cache geometry depends on them.
PARAMS = {name: config.params() for name, config in SlubModel.profiles.items()}
# Orders up to slub_max_order's default, PAGE_ALLOC_COSTLY_ORDER = 3: every slab order the
# profiles give their caches lies within (tests/test_slub_proofs.py checks it).
MAX_SLAB_ORDER = SlubParams().slub_max_order
ALIGNS = (0, 8, 16, 32, 64)  # the align a kmem_cache_create caller passes, in the proofs' bounds
# The largest slot kmem_cache_open gives an object within the bounds: 8192 bytes, a free
# pointer past them, and the cache line alignment.
MAX_SLOT = slab_common.ALIGN(
    KMALLOC_MAX_CACHE_SIZE + SIZEOF_VOID_P, max(ALIGNS + (slab_common.CACHE_LINE_SIZE,))
)

Claim = tuple[Any, Any, dict[str, Any]]  # (assume, holds, terms); z3 terms or Python values
Case = tuple[int, ...]


# The operators whose Python and z3 spellings differ, as in invariants/buddy_proofs.py.


def _symbolic(*xs: Any) -> bool:
    return any(isinstance(x, z3.ExprRef) for x in xs)


def ult(a: Any, b: Any) -> Any:
    return z3.ULT(a, b) if _symbolic(a, b) else a < b


def ule(a: Any, b: Any) -> Any:
    return z3.ULE(a, b) if _symbolic(a, b) else a <= b


def all_of(*cs: Any) -> Any:
    return z3.And(*cs) if _symbolic(*cs) else all(cs)


def any_of(*cs: Any) -> Any:
    return z3.Or(*cs) if _symbolic(*cs) else any(cs)


def implies(a: Any, b: Any) -> Any:
    return z3.Implies(a, b) if _symbolic(a, b) else not a or b


def ite(cond: Any, then: Any, otherwise: Any, bits: int) -> Any:
    """cond ? then : otherwise, with int arms read as bits-wide values when cond is symbolic."""
    if not _symbolic(cond):
        return then if cond else otherwise
    return z3.If(cond, _bv(then, bits), _bv(otherwise, bits))


def aligned(x: Any, a: Any) -> Any:
    """x is a multiple of the power of two a (IS_ALIGNED)."""
    return (x & (a - 1)) == 0


def _bv(x: Any, bits: int) -> Any:
    if isinstance(x, bool):
        return z3.BoolVal(x)
    return z3.BitVecVal(x, bits) if isinstance(x, int) else x


def select(key: Any, table: dict[int, int], bits: int) -> Any:
    """table[key], 0 for a key not in it (None included): a chain of z3.If for a z3 key."""
    if not _symbolic(key):
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
        if not _symbolic(x):
            i = bisect_left(self.lasts, x)
            return self.values[i] if self.first <= x and i < len(self.lasts) else 0
        out = z3.BitVecVal(0, self.bits)
        for last, value in zip(reversed(self.lasts), reversed(self.values), strict=True):
            out = z3.If(z3.ULE(x, last), z3.BitVecVal(value, self.bits), out)
        return z3.If(z3.ULT(x, self.first), z3.BitVecVal(0, self.bits), out)


# Registration: the proof builds the claim over z3 constants named after the claim's
# positional parameters (the kernel's variable names); the cross-check runs it on ints.

Sampler = Callable[[random.Random, Sequence[Case]], tuple[int, ...]]


def slub_proof(
    name: str,
    *,
    statement: str,
    bounds: str,
    source: str,
    bits: int,
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

        def encode() -> Claim:
            context = setup() if setup else {}
            return _encode(claim, names, bits, cases() if cases else None, context)

        def crosscheck(rng: random.Random, n: int) -> list[str]:
            context = setup() if setup else {}
            enumerated = cases() if cases else None
            symbolic = _named(_encode(claim, names, bits, enumerated, context))
            return _crosscheck(
                claim, names, bits, symbolic, context, enumerated or [], sample, against, rng, n
            )

        proof(name, statement=statement, bounds=bounds, source=source, crosscheck=crosscheck)(encode)
        return claim

    return register


def _encode(
    claim: Callable[..., Claim],
    names: list[str],
    bits: int,
    cases: list[Case] | None,
    context: dict[str, Any],
) -> Claim:
    xs = z3.BitVecs(" ".join(names), bits)
    if cases is None:
        return claim(*xs, **context)
    # One instance per case; z3 gets the instance that the enumerated parameters select.
    instances = []
    for case in cases:
        at = z3.And(*(x == v for x, v in zip(xs, case, strict=False)))
        assume, holds, terms = claim(*case, *xs[len(case) :], **context)
        instances.append(
            (at, _bv(assume, bits), _bv(holds, bits), {k: _bv(v, bits) for k, v in terms.items()})
        )
    assume = z3.Or(*(z3.And(at, a) for at, a, _, _ in instances))
    holds = z3.And(*(z3.Implies(at, h) for at, _, h, _ in instances))
    terms = {}
    for label in instances[0][3]:
        term = instances[-1][3][label]
        for at, _, _, t in reversed(instances[:-1]):
            term = z3.If(at, t[label], term)
        terms[label] = term
    return assume, holds, terms


def _named(claim: Claim) -> dict[str, Any]:
    # Terms first: the first value that differs is the one that explains the others.
    assume, holds, terms = claim
    return {**terms, "the bounds": assume, "the property": holds}


def _z3_value(term: Any, at: z3.ModelRef) -> Any:
    if not isinstance(term, z3.ExprRef):
        return term
    v = at.eval(term, model_completion=True)
    if z3.is_true(v) or z3.is_false(v):
        return z3.is_true(v)
    return v.as_long() if z3.is_bv_value(v) else str(v)


def _at(xs: list[z3.ExprRef], values: tuple[int, ...], bits: int) -> z3.ModelRef:
    """The inputs as a z3 model, to evaluate terms in (faster than substituting into each)."""
    at = z3.Model()
    for x, v in zip(xs, values, strict=True):
        at.update_value(x, z3.BitVecVal(v, bits))
    return at


def _crosscheck(
    claim: Callable[..., Claim],
    names: list[str],
    bits: int,
    symbolic: dict[str, Any],
    context: dict[str, Any],
    cases: Sequence[Case],
    sample: Sampler,
    against: Callable[..., dict[str, Any]] | None,
    rng: random.Random,
    n: int,
) -> list[str]:
    """One sentence per sampled input where Python and the z3 formula disagree on a value, or
    where the claim's restatement of model code disagrees with that code (``against``)."""
    xs = z3.BitVecs(" ".join(names), bits)
    mismatches = []
    for _ in range(n):
        values = sample(rng, cases)
        where = ", ".join(f"{k}={v}" for k, v in zip(names, values, strict=True))
        concrete = _named(claim(*values, **context))
        at = _at(xs, values, bits)
        for label, term in symbolic.items():
            got, want = concrete[label], _z3_value(term, at)
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


# Sampling: sizes where the size classes change (powers of two and their neighbours, 96/97,
# 192/193, 8192), small sizes, and uniform ones; a few beyond the bounds.


def _interesting_size(rng: random.Random, limit: int) -> int:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randint(1, min(256, limit))
    if kind == 1:
        return max(1, min(limit, (1 << rng.randrange(limit.bit_length())) + rng.choice((-1, 0, 1))))
    if kind == 2:
        return min(
            limit,
            rng.choice(
                (8, 9, 16, 17, 24, 25, 32, 33, 64, 65, 72, 73, 96, 97, 128, 129, 192, 193, 8191, 8192)
            ),
        )
    return rng.randint(1, limit)


def _sample_kmalloc_size(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    if rng.random() < 0.9:
        return (_interesting_size(rng, KMALLOC_MAX_CACHE_SIZE),)
    beyond = (
        rng.randint(KMALLOC_MAX_CACHE_SIZE + 1, 1 << 20),
        (1 << SIZE_T) - rng.randint(1, 1 << 20),
        rng.getrandbits(SIZE_T),
    )
    return (max(1, rng.choice(beyond)),)  # size 0 is ZERO_SIZE_PTR: kmalloc_slab returns no index


def _sample_object(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    size, order = rng.choice(list(cases))
    objects = slab_common.order_objects(order, size)
    k = rng.choice(
        (0, max(objects - 1, 0), rng.randrange(max(objects, 1)), objects)
    )  # objects: one past the slab
    j = rng.choice((0, size - 1, rng.randrange(size), size))  # size: the next object's first byte
    return size, order, k, j


def _sample_spec(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    if rng.random() < 0.9:
        object_size, align = _interesting_size(rng, KMALLOC_MAX_CACHE_SIZE), rng.choice(ALIGNS)
    else:
        object_size, align = (
            rng.choice((0, rng.randint(KMALLOC_MAX_CACHE_SIZE + 1, 1 << 16))),
            rng.choice((4, 24, 128, 4096)),
        )
    return object_size, align, rng.getrandbits(1), rng.getrandbits(1), rng.getrandbits(1)


# kmalloc_slab


KMALLOC_BOUNDS = (
    f"every size from 1 to KMALLOC_MAX_CACHE_SIZE = {KMALLOC_MAX_CACHE_SIZE}, as a {SIZE_T}-bit size_t"
)
KMALLOC_SOURCE = (
    "mm/slab_common.c kmalloc_slab, size_index, size_index_elem; include/asm-generic/bitops/fls.h"
)


def kmalloc_cache_size(index: Any) -> Any:
    """kmalloc_size(index) for the index of a cache create_kmalloc_caches makes, 0 for any
    other index (kmalloc_caches[] holds NULL there)."""
    sizes = {i: slab_common.kmalloc_size(i) for i in slab_common.kmalloc_indexes()}
    return select(index, sizes, SIZE_T)


def in_kmalloc_range(size: Any) -> Any:
    return all_of(ule(1, size), ule(size, KMALLOC_MAX_CACHE_SIZE))


@slub_proof(
    "slub.kmalloc_slab_fits",
    statement="kmalloc_slab gives every size a kmalloc cache that create_kmalloc_caches makes, with objects at least that large.",
    bounds=KMALLOC_BOUNDS,
    source=KMALLOC_SOURCE,
    bits=SIZE_T,
    sample=_sample_kmalloc_size,
)
def kmalloc_slab_fits(size: Any) -> Claim:
    index = slab_common.kmalloc_slab(size)
    cache = kmalloc_cache_size(index)
    made = any_of(*(index == i for i in slab_common.kmalloc_indexes()))
    return (
        in_kmalloc_range(size),
        all_of(made, ule(size, cache)),
        {"kmalloc_slab": index, "kmalloc_size": cache},
    )


@slub_proof(
    "slub.kmalloc_slab_smallest",
    statement="No kmalloc cache smaller than the one kmalloc_slab picks would hold the size: every smaller one is too small.",
    bounds=KMALLOC_BOUNDS,
    source=KMALLOC_SOURCE,
    bits=SIZE_T,
    sample=_sample_kmalloc_size,
)
def kmalloc_slab_smallest(size: Any) -> Claim:
    index = slab_common.kmalloc_slab(size)
    cache = kmalloc_cache_size(index)
    smaller = (slab_common.kmalloc_size(i) for i in slab_common.kmalloc_indexes())
    holds = all_of(*(implies(ult(other, cache), ult(other, size)) for other in smaller))
    return in_kmalloc_range(size), holds, {"kmalloc_slab": index, "kmalloc_size": cache}


# obj_to_index


def slot_sizes() -> list[int]:
    """The slot size of every cache the model's profiles create: the kmalloc caches and the
    profiles' kmem_cache_create specs, as kmem_cache_open lays them out."""
    sizes = set()
    for name, config in SlubModel.profiles.items():
        p = PARAMS[name]
        sizes |= {s.size for s in slab_common.create_kmalloc_caches(p)}
        sizes |= {slab_common.kmem_cache_open(p, spec).size for spec in config.caches}
    return sorted(sizes)


def slab_geometries() -> list[Case]:
    return [(size, order) for size in slot_sizes() for order in range(MAX_SLAB_ORDER + 1)]


@slub_proof(
    "slub.obj_to_index_inverts_index_to_obj",
    statement=(
        "obj_to_index, by reciprocal_value(size), maps every byte of object k of a slab (offset"
        " index_to_obj(0, k, size) + j, j < size) back to k: it inverts index_to_obj, and an"
        " interior pointer resolves to the object that holds it."
    ),
    bounds=(
        f"every object index and every byte of the object, in slabs of orders 0 to {MAX_SLAB_ORDER}"
        " (slub_max_order's default), for the slot sizes of the caches the model's profiles create,"
        " enumerated with reciprocal_value run on each:"
        f" {', '.join(map(str, slot_sizes()))} (the kmalloc caches and the profiles' caches). Not other"
        " slot sizes: z3 needs up to 0.6 s for each that is not a power of two, two minutes for all"
        f" multiples of 8 up to {MAX_SLOT} one by one, and did not finish them as one query in 10 minutes"
    ),
    source="mm/slub.c __obj_to_index, check_valid_pointer; lib/reciprocal_div.c; include/linux/reciprocal_div.h",
    bits=SIZE_T,
    sample=_sample_object,
    cases=slab_geometries,
)
def obj_to_index_inverts_index_to_obj(size: int, order: int, k: Any, j: Any) -> Claim:
    r = slab_common.reciprocal_value(size)
    objects = slab_common.order_objects(order, size)
    obj = slab_common.index_to_obj(0, k, size)
    index = slab_common.obj_to_index(obj + j, r.m, r.sh1, r.sh2)
    terms = {"objects": objects, "reciprocal m": r.m, "index_to_obj": obj, "obj_to_index": index}
    return all_of(ult(k, objects), ult(j, size)), index == k, terms


# Object layout


@dataclass(frozen=True)
class Geometry:
    """By slot size, for one profile's boot parameters: whether kmem_cache_open creates the
    cache (calculate_order finds an order below MAX_ORDER; else it fails with -EINVAL), and
    the slab order and objects per slab of oo (calculate_order) and min (get_order, the
    fallback when an oo block is not to be had); 0 where no cache is created."""

    created: Table
    oo_order: Table
    oo_objects: Table
    min_order: Table
    min_objects: Table


def geometry_tables(p: SlubParams) -> Geometry:
    orders: dict[int, int] = {}  # calculate_order by slot size, where it finds an order
    for size in range(1, MAX_SLOT + 1):
        with suppress(ValueError):  # no order below MAX_ORDER holds the object: no cache
            orders[size] = slab_common.calculate_order(p, size)

    def table(fn: Callable[[int, int], int]) -> Table:
        return Table.of(lambda size: fn(orders[size], size) if size in orders else 0, 1, MAX_SLOT, UINT)

    return Geometry(
        created=table(lambda order, size: 1),
        oo_order=table(lambda order, size: order),
        oo_objects=table(slab_common.order_objects),
        min_order=table(lambda order, size: slab_common.get_order(size)),
        min_objects=table(lambda order, size: slab_common.order_objects(slab_common.get_order(size), size)),
    )


def layout_tables() -> dict[str, Any]:
    """calculate_alignment by (SLAB_HWCACHE_ALIGN, align) over every object size in the bounds,
    and each profile's slab geometry over every slot size up to MAX_SLOT."""

    def alignment(flags: tuple[str, ...], align: int) -> Table:
        return Table.of(
            lambda size: slab_common.calculate_alignment(flags, align, size), 1, KMALLOC_MAX_CACHE_SIZE, UINT
        )

    hwcache = {0: (), 1: (SLAB_HWCACHE_ALIGN,)}
    tables = {(hw, align): alignment(flags, align) for hw, flags in hwcache.items() for align in ALIGNS}
    return {"alignment": tables, "geometry": {name: geometry_tables(p) for name, p in PARAMS.items()}}


def alignment_of(
    alignment: dict[tuple[int, int], Table], hwcache_align: Any, align: Any, object_size: Any
) -> Any:
    out: Any = 0
    for (hw, a), table in alignment.items():
        out = ite(all_of(hwcache_align == hw, align == a), table(object_size), out, UINT)
    return out


def kmem_cache_open_layout(
    object_size: int, align: int, hwcache_align: int, ctor: int, typesafe_by_rcu: int
) -> dict[str, Any]:
    """The layout kmem_cache_open gives the cache, for each profile's boot parameters."""
    if not (1 <= object_size <= KMALLOC_MAX_CACHE_SIZE and align in ALIGNS):
        return {}  # beyond the bounds: CacheSpec refuses it
    flags = ((SLAB_HWCACHE_ALIGN,) if hwcache_align else ()) + (
        (SLAB_TYPESAFE_BY_RCU,) if typesafe_by_rcu else ()
    )
    out: dict[str, Any] = {}
    for name, p in PARAMS.items():
        try:
            s = slab_common.kmem_cache_open(p, CacheSpec("proof", object_size, align, flags, bool(ctor)))
        except ValueError:  # calculate_order found no order below MAX_ORDER: -EINVAL
            out[f"created ({name})"] = 0
            continue
        out |= {"s->align": s.align, "s->offset": s.offset, "s->size": s.size, f"created ({name})": 1}
        out |= {f"oo order ({name})": s.oo[0], f"oo objects ({name})": s.oo[1]}
        out |= {f"min order ({name})": s.min[0], f"min objects ({name})": s.min[1]}
    return out


@slub_proof(
    "slub.free_pointer_inside_object",
    statement=(
        "In every cache kmem_cache_open lays out, the object fits its slot, the free pointer word"
        " [offset, offset + 8) is aligned and lies inside the slot, and past the object in caches"
        " with a constructor or SLAB_TYPESAFE_BY_RCU; the slot is a multiple of the cache's alignment;"
        " and where calculate_order finds the cache an order below MAX_ORDER (else it is not created),"
        " a slab of either order the cache allocates (oo, min) holds at least one object and"
        " objects * size <= PAGE_SIZE << order, so objects neither overlap nor run past the slab."
    ),
    bounds=(
        f"every object size from 1 to {KMALLOC_MAX_CACHE_SIZE}, align {', '.join(map(str, ALIGNS))}, with and"
        " without SLAB_HWCACHE_ALIGN, a constructor and SLAB_TYPESAFE_BY_RCU, under the boot parameters of"
        f" each profile ({', '.join(PARAMS)}). calculate_sizes' arithmetic is symbolic, restated from"
        " kmem_cache_open (the cross-check compares the two); calculate_alignment, calculate_order, get_order"
        f" and order_objects are run on every object size and on every slot size from 1 to {MAX_SLOT},"
        " and enter z3 as tables"
    ),
    source="mm/slub.c kmem_cache_open, calculate_sizes, calculate_order, order_objects; mm/slab_common.c calculate_alignment",
    bits=UINT,
    sample=_sample_spec,
    setup=layout_tables,
    against=kmem_cache_open_layout,
)
def free_pointer_inside_object(
    object_size: Any,
    align: Any,
    hwcache_align: Any,
    ctor: Any,
    typesafe_by_rcu: Any,
    *,
    alignment: dict[tuple[int, int], Table],
    geometry: dict[str, Geometry],
) -> Claim:
    # calculate_sizes, for a cache without debug flags.
    s_align = alignment_of(alignment, hwcache_align, align, object_size)
    size = slab_common.ALIGN(object_size, SIZEOF_VOID_P)
    outside = any_of(typesafe_by_rcu == 1, ctor == 1)  # (flags & SLAB_TYPESAFE_BY_RCU) || s->ctor
    offset = ite(outside, size, 0, UINT)
    size = ite(outside, size + SIZEOF_VOID_P, size, UINT)
    size = slab_common.ALIGN(size, s_align)
    assume = all_of(
        ule(1, object_size),
        ule(object_size, KMALLOC_MAX_CACHE_SIZE),
        any_of(*(align == a for a in ALIGNS)),
        ule(hwcache_align, 1),
        ule(ctor, 1),
        ule(typesafe_by_rcu, 1),
    )
    holds = [
        ule(object_size, size),
        aligned(offset, SIZEOF_VOID_P),
        ule(offset + SIZEOF_VOID_P, size),
        implies(outside, ule(object_size, offset)),
        aligned(size, s_align),
    ]
    terms: dict[str, Any] = {"s->align": s_align, "s->offset": offset, "s->size": size}
    for name, g in geometry.items():
        created = g.created(size) == 1
        terms[f"created ({name})"] = g.created(size)
        for which, order, objects in (
            ("oo", g.oo_order(size), g.oo_objects(size)),
            ("min", g.min_order(size), g.min_objects(size)),
        ):
            holds.append(implies(created, all_of(ule(1, objects), ule(objects * size, PAGE_SIZE << order))))
            terms |= {f"{which} order ({name})": order, f"{which} objects ({name})": objects}
    return assume, all_of(*holds), terms
