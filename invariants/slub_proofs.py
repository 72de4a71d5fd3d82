"""z3 proofs of SLUB's arithmetic: the kmalloc cache a size gets (mm/slab_common.c
kmalloc_slab), the object an address lies in (mm/slub.c __obj_to_index with
lib/reciprocal_div.c), and the object layout a cache is created with (mm/slub.c
calculate_sizes, calculate_order).

The claims follow invariants/claims.py and call the model through its module at each call
(``slab_common.kmalloc_slab``). Where model code is Python control flow, the proofs run it
on every value their bounds admit, and say so in their bounds:

- cases: obj_to_index is proved per slot size, as the kernel computes
  reciprocal_value(size) once, from a concrete size, at cache creation. Each slot size that
  is not a power of two costs z3 a multiplier circuit to refute (0.1 s to 0.6 s alone, more
  together), so the proof enumerates the slot sizes of the caches the model creates, not
  every multiple of 8.
- tables: calculate_alignment for a given flags and align, calculate_order, get_order and
  order_objects are evaluated by the model at every value of their argument within the
  bounds, and enter z3 as piecewise constants of that argument.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from invariants.claims import (
    Case,
    Claim,
    Table,
    aligned,
    all_of,
    any_of,
    claim_proof,
    implies,
    ite,
    select,
    ule,
    ult,
)
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


@claim_proof(
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


@claim_proof(
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


@claim_proof(
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


@claim_proof(
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
