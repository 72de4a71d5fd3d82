"""Mutants of SLUB's arithmetic for the z3 proofs (invariants/slub_proofs.py): each replaces
one helper or table of model.mm.slab_common with a plausible kernel bug and names the proof
that must refute it.

The replacements take z3 bit-vectors as the originals do (through slab_common's
if_then_else, ule, udiv and array_index), so that z3 refutes them rather than failing to
encode them. Replacements that only change part of a helper's effect call the original,
taken here at import time, so that the bug stays one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from checkers.mutants import mutant
from model.mm import slab_common
from model.mm.slab_common import PAGE_SIZE, Reciprocal

SLAB_COMMON = "model.mm.slab_common"

_reciprocal_value = slab_common.reciprocal_value


def kmalloc_slab_fls_minus_one(size: int) -> int | None:
    """kmalloc_slab indexes by fls(size - 1) - 1 above 192: kmalloc(200) gets a kmalloc-128 object."""
    if isinstance(size, int) and not size:
        return None
    small = slab_common.array_index(slab_common.size_index, slab_common.size_index_elem(size))
    return slab_common.if_then_else(slab_common.ule(size, 192), small, slab_common.fls(size - 1) - 1)


def size_index_elem_no_minus_one(size: Any) -> Any:
    """size_index_elem is bytes / 8, not (bytes - 1) / 8: kmalloc(192) reads past size_index[]."""
    return slab_common.udiv(size, 8)


class SizeIndex72InKmalloc64(tuple[int, ...]):
    """size_index[8] is 6, not 1: kmalloc(65..72) gets a 64-byte kmalloc-64 object."""


class SizeIndex32InKmalloc64(tuple[int, ...]):
    """size_index[3] is 6, not 5: kmalloc(25..32) gets kmalloc-64 where kmalloc-32 would do."""


def _size_index_with(cls: type[tuple[int, ...]], elem: int, index: int) -> Callable[..., Any]:
    table = list(slab_common.size_index)
    table[elem] = index
    # A table, not a function: Mutant.applied sets any module attribute, and the mutant's
    # description is the docstring of its class.
    return cast(Callable[..., Any], cls(table))


def reciprocal_value_no_round_up(d: int) -> Reciprocal:
    """reciprocal_value drops the + 1 from m: an object of a size not a power of two resolves to the one before it."""
    r = _reciprocal_value(d)
    return Reciprocal(r.m - 1, r.sh1, r.sh2)


def obj_to_index_shift(offset: Any, m: Any, sh1: Any, sh2: Any) -> Any:
    """__obj_to_index shifts by fls(size - 1) instead of dividing: right for power-of-two sizes only."""
    return offset >> (sh1 + sh2)


def order_objects_round_up(order: int, size: int) -> int:
    """order_objects counts one object more than fits: the last object runs past the end of the slab."""
    return (PAGE_SIZE << order) // size + 1


def align_down(x: Any, a: Any) -> Any:
    """ALIGN rounds down: calculate_sizes gives a 9-byte object an 8-byte slot."""
    return x & ~(a - 1)


PROOF_MUTANTS = tuple(
    mutant(name, model="slub", breaks=breaks, engine="prove", patches=((SLAB_COMMON, helper, fn),))
    for name, breaks, helper, fn in (
        (
            "slub.prove_kmalloc_slab_fls_minus_one",
            "slub.kmalloc_slab_fits",
            "kmalloc_slab",
            kmalloc_slab_fls_minus_one,
        ),
        (
            "slub.prove_size_index_elem_no_minus_one",
            "slub.kmalloc_slab_fits",
            "size_index_elem",
            size_index_elem_no_minus_one,
        ),
        (
            "slub.prove_size_index_72_in_kmalloc_64",
            "slub.kmalloc_slab_fits",
            "size_index",
            _size_index_with(SizeIndex72InKmalloc64, 8, 6),
        ),
        (
            "slub.prove_size_index_32_in_kmalloc_64",
            "slub.kmalloc_slab_smallest",
            "size_index",
            _size_index_with(SizeIndex32InKmalloc64, 3, 6),
        ),
        (
            "slub.prove_reciprocal_value_no_round_up",
            "slub.obj_to_index_inverts_index_to_obj",
            "reciprocal_value",
            reciprocal_value_no_round_up,
        ),
        (
            "slub.prove_obj_to_index_shift",
            "slub.obj_to_index_inverts_index_to_obj",
            "obj_to_index",
            obj_to_index_shift,
        ),
        (
            "slub.prove_order_objects_round_up",
            "slub.free_pointer_inside_object",
            "order_objects",
            order_objects_round_up,
        ),
        ("slub.prove_align_down", "slub.free_pointer_inside_object", "ALIGN", align_down),
    )
)
