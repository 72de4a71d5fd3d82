"""The z3 proofs of SLUB's arithmetic: each is proved and its cross-check agrees; each prove
mutant is refuted by a z3 counterexample that plain Python confirms; the cross-check catches
a kmem_cache_open that the restated layout does not describe; and concrete values of
kmalloc_slab, fls and obj_to_index at the boundaries."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import pytest

import invariants
from checkers.mutants import Mutant, slub_prove
from checkers.prove import prove
from invariants import slub_proofs
from model.mm import slab_common
from model.mm.slab import SlubModel
from model.mm.slab_common import SLAB_TYPESAFE_BY_RCU, CacheSpec, KmemCache

CLAIMS: dict[str, Callable[..., Any]] = {
    "slub.kmalloc_slab_fits": slub_proofs.kmalloc_slab_fits,
    "slub.kmalloc_slab_smallest": slub_proofs.kmalloc_slab_smallest,
    "slub.obj_to_index_inverts_index_to_obj": slub_proofs.obj_to_index_inverts_index_to_obj,
    "slub.free_pointer_inside_object": slub_proofs.free_pointer_inside_object,
}


def slub_proof_names() -> list[str]:
    return sorted(n for n, p in invariants.PROOFS.items() if p.subsystem == "slub")


def test_the_proofs_are_registered() -> None:
    assert slub_proof_names() == sorted(CLAIMS)


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_every_slub_proof_is_proved(name: str) -> None:
    r = prove(invariants.PROOFS[name], samples=100, seed=1)
    assert r.status == "pass", (r.strength, r.error, r.refutation)
    assert r.stats["z3_result"] == "unsat" and r.stats["crosscheck_mismatches"] == 0
    assert r.strength == f"proved for all inputs: {invariants.PROOFS[name].bounds}"
    assert r.model == "slub" and r.engine == "prove" and r.invariants == [name]


def test_every_proof_has_a_prove_mutant() -> None:
    assert {m.breaks for m in slub_prove.PROOF_MUTANTS} == set(CLAIMS)
    for m in slub_prove.PROOF_MUTANTS:
        assert m.name.startswith("slub.prove_") and m.model == "slub" and m.engine == "prove"
        assert m.description and m.description != m.name


@pytest.mark.parametrize("m", slub_prove.PROOF_MUTANTS, ids=lambda m: m.name)
def test_every_prove_mutant_is_refuted_by_a_real_counterexample(m: Mutant) -> None:
    claim = CLAIMS[m.breaks]
    with m.applied():
        r = prove(invariants.PROOFS[m.breaks], samples=50, seed=0, mutant=m.name)
        context = slub_proofs.layout_tables() if m.breaks == "slub.free_pointer_inside_object" else {}
        names = [
            p.name for p in inspect.signature(claim).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        inputs = {k: r.stats["z3_model"][k] for k in names}
        # z3's counterexample, run through the mutated Python code on plain ints, violates the claim.
        assume, holds, _ = claim(**inputs, **context)
    assert r.status == "fail" and r.stats["z3_result"] == "sat" and r.stats["mutant"] == m.name, (
        r.strength,
        r.error,
    )
    assert assume is True and holds is False, inputs


def test_kmalloc_slab_counterexamples_name_the_bug() -> None:
    wrong_entry = next(
        m for m in slub_prove.PROOF_MUTANTS if m.name == "slub.prove_size_index_72_in_kmalloc_64"
    )
    with wrong_entry.applied():
        r = prove(invariants.PROOFS["slub.kmalloc_slab_fits"], samples=10)
    assert r.refutation is not None and 65 <= r.refutation["size"] <= 72
    assert r.stats["z3_model"]["kmalloc_size"] == 64


def test_the_crosscheck_catches_a_layout_the_proof_does_not_restate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The offset placement is restated in the claim: z3 cannot see a bug in kmem_cache_open's
    own copy of it, and the cross-check is what compares the two."""
    original = slab_common.kmem_cache_open

    def free_pointer_inside_ctor_object(*args: Any, **kwargs: Any) -> KmemCache:
        s = original(*args, **kwargs)
        return dataclasses.replace(s, offset=s.offset - 8) if s.offset else s

    monkeypatch.setattr(slab_common, "kmem_cache_open", free_pointer_inside_ctor_object)
    r = prove(invariants.PROOFS["slub.free_pointer_inside_object"], samples=200, seed=0)
    assert r.stats["z3_result"] == "unsat"  # what z3 alone would have reported
    assert r.status == "fail" and r.refutation is not None
    assert (
        "s->offset" in r.refutation["cross-check"]
        and "in kmem_cache_open_layout" in r.refutation["cross-check"]
    )


def size_index_elem_two_faced(size: Any) -> Any:
    """Right for z3, off by one entry for the ints the model really runs on."""
    return size // 8 if isinstance(size, int) else slab_common.udiv(size - 1, 8)


def obj_to_index_two_faced(offset: Any, m: Any, sh1: Any, sh2: Any) -> Any:
    """Right for z3, a plain shift for ints."""
    return (
        offset >> (sh1 + sh2)
        if isinstance(offset, int)
        else slab_common.reciprocal_divide(offset, m, sh1, sh2)
    )


@pytest.mark.parametrize(
    ("attr", "helper", "name"),
    [
        ("size_index_elem", size_index_elem_two_faced, "slub.kmalloc_slab_fits"),
        ("obj_to_index", obj_to_index_two_faced, "slub.obj_to_index_inverts_index_to_obj"),
    ],
)
def test_the_crosscheck_catches_code_that_z3_sees_differently(
    attr: str, helper: Callable[..., Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slab_common, attr, helper)
    r = prove(invariants.PROOFS[name], samples=200, seed=3)
    assert r.stats["z3_result"] == "unsat"  # z3 alone sees the right code
    assert r.status == "fail" and r.stats["crosscheck_mismatches"] > 0
    assert r.refutation is not None and "in Python but" in r.refutation["cross-check"]


def test_slab_orders_stay_within_the_proved_orders() -> None:
    for config in SlubModel.profiles.values():
        p = config.params()
        caches = list(slab_common.create_kmalloc_caches(p)) + [
            slab_common.kmem_cache_open(p, s) for s in config.caches
        ]
        for s in caches:
            assert max(s.oo[0], s.min[0]) <= slub_proofs.MAX_SLAB_ORDER, s.name


# Concrete values.


@pytest.mark.parametrize(
    ("size", "cache"),
    [
        (1, 8),
        (8, 8),
        (9, 16),
        (96, 96),
        (97, 128),
        (128, 128),
        (129, 192),
        (192, 192),
        (193, 256),
        (256, 256),
        (257, 512),
        (4096, 4096),
        (4097, 8192),
        (8192, 8192),
    ],
)
def test_kmalloc_slab_at_the_class_boundaries(size: int, cache: int) -> None:
    index = slab_common.kmalloc_slab(size)
    assert index in slab_common.kmalloc_indexes() and slab_common.kmalloc_size(index) == cache


def test_kmalloc_slab_of_zero_is_zero_size_ptr() -> None:
    assert slab_common.kmalloc_slab(0) is None


def test_kmalloc_slab_is_the_kernels_if_else_on_every_size() -> None:
    def kernel(size: int) -> int:
        return slab_common.size_index[(size - 1) // 8] if size <= 192 else (size - 1).bit_length()

    assert all(
        slab_common.kmalloc_slab(size) == kernel(size)
        for size in range(1, 4 * slab_common.KMALLOC_MAX_CACHE_SIZE)
    )


def test_fls_is_the_bit_length_of_an_unsigned_int() -> None:
    xs = [*range(1 << 12), *(1 << i for i in range(32)), *((1 << i) - 1 for i in range(33)), 0xDEADBEEF]
    assert all(slab_common.fls(x) == x.bit_length() for x in xs)
    assert slab_common.fls(1 << 32) == 0  # an unsigned int: bits above 31 are not there


@pytest.mark.parametrize(
    ("size", "order", "offset", "index"),
    [
        (8, 0, 4095, 511),
        (96, 0, 95, 0),
        (96, 0, 96, 1),
        (96, 1, 8159, 84),
        (192, 3, 32639, 169),
        (3840, 3, 30719, 7),
        (8200, 3, 8200, 1),
        (8200, 3, 24599, 2),
    ],
)
def test_obj_to_index(size: int, order: int, offset: int, index: int) -> None:
    assert offset < slab_common.order_objects(order, size) * size
    r = slab_common.reciprocal_value(size)
    assert slab_common.obj_to_index(offset, r.m, r.sh1, r.sh2) == index == offset // size


def test_object_index_of_a_ctor_cache_finds_interior_pointers() -> None:
    p = slab_common.SlubParams()
    s = slab_common.kmem_cache_open(p, CacheSpec("anon_vma", 88, 0, (SLAB_TYPESAFE_BY_RCU,), ctor=True))
    assert (s.size, s.offset) == (96, 88)
    pfn = 0x1234
    for k in range(s.oo[1]):
        for j in (0, 1, s.offset, s.size - 1):
            assert s.object_index(pfn, s.object_address(pfn, k) + j) == k


def test_obj_to_index_at_every_object_boundary_of_every_slot_size() -> None:
    """Beyond the proof's slot sizes: the first and last byte of every object, for every slot
    size that is a multiple of 8 up to MAX_SLOT and every order up to MAX_SLAB_ORDER."""
    for size in range(8, slub_proofs.MAX_SLOT + 1, 8):
        r = slab_common.reciprocal_value(size)
        for k in range(slab_common.order_objects(slub_proofs.MAX_SLAB_ORDER, size)):
            start = slab_common.index_to_obj(0, k, size)
            assert slab_common.obj_to_index(start, r.m, r.sh1, r.sh2) == k, (size, k)
            assert slab_common.obj_to_index(start + size - 1, r.m, r.sh1, r.sh2) == k, (size, k)
