"""z3 proofs of the buddy allocator's pfn arithmetic (mm/internal.h __find_buddy_pfn,
mm/page_alloc.c __free_one_page and expand, include/linux/pageblock-flags.h).

Each claim is one function of a pfn and an order that returns ``(assume, holds, terms)``:
the bounds, the property, and the named values it computed on the way. It calls the model's
helpers through their module at each call (``page_alloc.find_buddy_pfn``), so a mutant that
replaces a helper changes what is proved. The proof passes 64-bit z3 bit-vectors through
the claim (a pfn is an unsigned long); the cross-check passes plain ints through the same
claim and compares every value with the z3 formula evaluated at those ints.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any

import z3

from invariants import proof
from invariants.claims import all_of, any_of, symbolic, ule, ult
from model.mm import page_alloc
from model.mm.buddy import BuddyModel

BITS = 64  # unsigned long
MASK = (1 << BITS) - 1
# The largest MAX_ORDER of the model's profiles: the kernel's default, 11 (include/linux/mmzone.h).
MAX_ORDER = max(config.MAX_ORDER for config in BuddyModel.profiles.values())
SOURCE = "mm/internal.h __find_buddy_pfn; mm/page_alloc.c __free_one_page"
BOUNDS = f"all {BITS}-bit pfns, all orders below MAX_ORDER = {MAX_ORDER}"
ALIGNED_BOUNDS = f"all {BITS}-bit pfns aligned to 2^order, all orders below MAX_ORDER = {MAX_ORDER}"

Claim = tuple[Any, Any, dict[str, Any]]  # (assume, holds, terms); z3 terms or Python values
ClaimFn = Callable[[Any, Any], Claim]


# The operators whose Python and z3 spellings differ (invariants/claims.py), and z3's
# logical shift, which claims over pfns need.


def lshr(a: Any, k: Any) -> Any:
    return z3.LShR(a, k) if symbolic(a, k) else a >> k


def unsigned_long(x: Any) -> Any:
    """A value read as the kernel's unsigned long, as z3 reads it: Python ints do not wrap."""
    return x & MASK if isinstance(x, int) else x


def aligned(pfn: Any, order: Any) -> Any:
    """``pfn`` is a multiple of 2^order, the alignment every free block of that order has."""
    return (pfn & ((1 << order) - 1)) == 0


def in_bounds(order: Any) -> Any:
    return ult(order, MAX_ORDER)


# The model's helpers, looked up at each call so that a mutant's replacement is what runs.


def find_buddy_pfn(page_pfn: Any, order: Any) -> Any:
    return unsigned_long(page_alloc.find_buddy_pfn(page_pfn, order))


def combined_pfn(buddy_pfn: Any, pfn: Any) -> Any:
    return unsigned_long(page_alloc.combined_pfn(buddy_pfn, pfn))


def pageblock_start_pfn(pfn: Any, pageblock_order: Any) -> Any:
    return unsigned_long(page_alloc.pageblock_start_pfn(pfn, pageblock_order))


# Registration: the proof builds the claim over z3 constants named after the claim's
# parameters (the kernel's variable names); the cross-check runs it on ints.


def buddy_proof(name: str, *, statement: str, bounds: str, source: str = SOURCE) -> Callable[[ClaimFn], ClaimFn]:
    def register(claim: ClaimFn) -> ClaimFn:
        names = " ".join(inspect.signature(claim).parameters)

        def encode() -> Claim:
            pfn, order = z3.BitVecs(names, BITS)
            return claim(pfn, order)

        def crosscheck(rng: random.Random, n: int) -> list[str]:
            return _crosscheck(claim, names, rng, n)

        proof(name, statement=statement, bounds=bounds, source=source, crosscheck=crosscheck)(encode)
        return claim

    return register


def _sample(rng: random.Random) -> tuple[int, int]:
    """A pfn and an order: mostly in bounds; pfns small (real zones), near 2^64 (where
    wrapping and signed operators show) or uniform; half of them aligned to 2^order and a
    quarter to 2^(order+1), so that the alignment preconditions hold often."""
    order = rng.randrange(MAX_ORDER) if rng.random() < 0.9 else rng.randrange(MAX_ORDER, BITS)
    pfn = (rng.getrandbits(20), MASK - rng.getrandbits(20), rng.getrandbits(BITS))[rng.randrange(3)]
    align = rng.choice((0, 0, order, order + 1))
    return pfn & ~((1 << align) - 1), order


def _named(claim: Claim) -> dict[str, Any]:
    # Terms first: the first value that differs is the one that explains the others.
    assume, holds, terms = claim
    return {**terms, "the bounds": assume, "the property": holds}


def _z3_value(term: Any, at: tuple[tuple[z3.ExprRef, z3.ExprRef], ...]) -> Any:
    if not isinstance(term, z3.ExprRef):
        return term
    v = z3.simplify(z3.substitute(term, *at))
    if z3.is_true(v) or z3.is_false(v):
        return z3.is_true(v)
    return v.as_long() if z3.is_bv_value(v) else str(v)


def _crosscheck(claim: ClaimFn, names: str, rng: random.Random, n: int) -> list[str]:
    """One sentence per sampled input where Python and the z3 formula disagree on a value."""
    pfn, order = z3.BitVecs(names, BITS)
    pfn_name, order_name = names.split()
    encoded = _named(claim(pfn, order))
    mismatches = []
    for _ in range(n):
        p, o = _sample(rng)
        concrete = _named(claim(p, o))
        at = ((pfn, z3.BitVecVal(p, BITS)), (order, z3.BitVecVal(o, BITS)))
        for label, term in encoded.items():
            got, want = concrete[label], _z3_value(term, at)
            # A z3 term here means the helper built a formula from plain ints.
            if isinstance(got, z3.ExprRef) or got != want:
                mismatches.append(f"{pfn_name}={p:#x}, {order_name}={o}: {label} is {got} in Python but {want} in z3")
                break
    return mismatches


# The proofs.


@buddy_proof(
    "buddy.find_buddy_pfn_involution",
    statement="The buddy of a block's buddy is the block itself.",
    bounds=BOUNDS,
)
def find_buddy_pfn_involution(pfn: Any, order: Any) -> Claim:
    buddy_pfn = find_buddy_pfn(pfn, order)
    back = find_buddy_pfn(buddy_pfn, order)
    return in_bounds(order), back == pfn, {"buddy_pfn": buddy_pfn, "buddy of buddy_pfn": back}


@buddy_proof(
    "buddy.buddy_same_parent",
    statement="A block and its buddy are distinct and lie in the same block of the next order.",
    bounds=BOUNDS,
)
def buddy_same_parent(pfn: Any, order: Any) -> Claim:
    buddy_pfn = find_buddy_pfn(pfn, order)
    holds = all_of(buddy_pfn != pfn, lshr(pfn, order + 1) == lshr(buddy_pfn, order + 1))
    return in_bounds(order), holds, {"buddy_pfn": buddy_pfn}


@buddy_proof(
    "buddy.buddy_aligned",
    statement="The buddy of a block aligned to its order is aligned to that order too.",
    bounds=ALIGNED_BOUNDS,
)
def buddy_aligned(pfn: Any, order: Any) -> Claim:
    buddy_pfn = find_buddy_pfn(pfn, order)
    return all_of(in_bounds(order), aligned(pfn, order)), aligned(buddy_pfn, order), {"buddy_pfn": buddy_pfn}


@buddy_proof(
    "buddy.merged_block_aligned",
    statement="Merging a block aligned to its order with its buddy gives a block aligned to the next order.",
    bounds=ALIGNED_BOUNDS,
)
def merged_block_aligned(pfn: Any, order: Any) -> Claim:
    buddy_pfn = find_buddy_pfn(pfn, order)
    merged = combined_pfn(buddy_pfn, pfn)
    assume = all_of(in_bounds(order), aligned(pfn, order))
    return assume, aligned(merged, order + 1), {"buddy_pfn": buddy_pfn, "combined_pfn": merged}


@buddy_proof(
    "buddy.merged_block_is_lower_half",
    statement="The merged block starts at the lower of a block and its buddy, so it covers both.",
    bounds=BOUNDS,
)
def merged_block_is_lower_half(pfn: Any, order: Any) -> Claim:
    buddy_pfn = find_buddy_pfn(pfn, order)
    merged = combined_pfn(buddy_pfn, pfn)
    holds = all_of(any_of(merged == pfn, merged == buddy_pfn), ule(merged, pfn), ule(merged, buddy_pfn))
    return in_bounds(order), holds, {"buddy_pfn": buddy_pfn, "combined_pfn": merged}


@buddy_proof(
    "buddy.expand_halves_are_buddies",
    statement=(
        "The upper half that expand lists at pfn + 2^order is the buddy of the lower half, and"
        " merging the two gives back the block expand split."
    ),
    bounds=f"all {BITS}-bit pfns aligned to 2^(order+1), all orders below MAX_ORDER - 1 = {MAX_ORDER - 1}",
    source="mm/page_alloc.c expand (page[size], restated: it is inline there) and __free_one_page",
)
def expand_halves_are_buddies(pfn: Any, order: Any) -> Claim:
    upper = unsigned_long(pfn + (1 << order))  # expand: &page[size], size = 1 << high
    buddy_pfn = find_buddy_pfn(pfn, order)
    merged = combined_pfn(find_buddy_pfn(upper, order), upper)
    assume = all_of(ult(order, MAX_ORDER - 1), aligned(pfn, order + 1))
    holds = all_of(buddy_pfn == upper, merged == pfn)
    return assume, holds, {"upper half": upper, "buddy_pfn": buddy_pfn, "combined_pfn": merged}


@buddy_proof(
    "buddy.pageblock_start_pfn_rounds_down",
    statement="pageblock_start_pfn is the start of the pageblock that holds pfn: aligned, at or below it, within one pageblock.",
    bounds=f"all {BITS}-bit pfns, all pageblock orders below MAX_ORDER = {MAX_ORDER}",
    source="include/linux/pageblock-flags.h pageblock_start_pfn",
)
def pageblock_start_pfn_rounds_down(pfn: Any, pageblock_order: Any) -> Claim:
    start = pageblock_start_pfn(pfn, pageblock_order)
    holds = all_of(aligned(start, pageblock_order), ule(start, pfn), ult(unsigned_long(pfn - start), 1 << pageblock_order))
    return in_bounds(pageblock_order), holds, {"pageblock_start_pfn": start}
