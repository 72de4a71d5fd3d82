"""Mutants of the buddy allocator: each replaces one small helper of model.mm.page_alloc with
a plausible kernel bug and names the invariant that must catch it.

Replacements that only change part of a helper's effect call the original, taken here at
import time, so that the bug stays one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from checkers.mutants import mutant
from model.mm import page, page_alloc
from model.mm.mmzone import PerCpuPages, Zone

if TYPE_CHECKING:
    from model.mm.buddy import BuddyState

PAGE_ALLOC = "model.mm.page_alloc"

_page_is_buddy = page_alloc.page_is_buddy
_rmqueue_bulk = page_alloc.rmqueue_bulk
_del_page_from_free_list = page_alloc.del_page_from_free_list


def find_buddy_pfn_add(page_pfn: int, order: int) -> int:
    """__find_buddy_pfn adds 1 << order instead of xoring: a block at an odd index never finds its buddy."""
    return page_pfn + (1 << order)


def page_is_buddy_never(state: BuddyState, pfn: int, buddy_pfn: int, order: int) -> bool:
    """__free_one_page skips the merge: page_is_buddy never reports the free buddy."""
    return False


def page_is_buddy_any_order(state: BuddyState, pfn: int, buddy_pfn: int, order: int) -> bool:
    """page_is_buddy drops the page_order(buddy) == order test and merges with a smaller free block."""
    return page.PageBuddy(state.mem_map, buddy_pfn) and _page_is_buddy(
        state, pfn, buddy_pfn, page.page_order(state.mem_map, buddy_pfn)
    )


def del_page_keeps_nr_free(state: BuddyState, zone: Zone, pfn: int, order: int) -> None:
    """del_page_from_free_list unlinks the block but forgets area->nr_free--."""
    page_alloc.list_del(zone, pfn, order)
    page.rmv_page_order(state.mem_map, pfn)


def del_page_keeps_page_buddy(state: BuddyState, zone: Zone, pfn: int, order: int) -> None:
    """del_page_from_free_list forgets __ClearPageBuddy: an allocated page still looks free."""
    _del_page_from_free_list(state, zone, pfn, order)
    page.set_buddy_order(state.mem_map, pfn, order)


def expand_size_minus_one(
    state: BuddyState, zone: Zone, pfn: int, low: int, high: int, migratetype: int
) -> None:
    """expand lists &page[size - 1] instead of &page[size]: the upper half is listed misaligned."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        page_alloc.add_to_free_list(state, zone, pfn + size - 1, high, migratetype)
        page.set_buddy_order(state.mem_map, pfn + size - 1, high)


def expand_lower_half(state: BuddyState, zone: Zone, pfn: int, low: int, high: int, migratetype: int) -> None:
    """expand lists the lower half, the one it hands out, instead of the upper half."""
    while high > low:
        high -= 1
        page_alloc.add_to_free_list(state, zone, pfn, high, migratetype)
        page.set_buddy_order(state.mem_map, pfn, high)


def rmqueue_bulk_uncounted(
    state: BuddyState, zone: Zone, order: int, count: int, pcp: PerCpuPages, migratetype: int
) -> int:
    """rmqueue_bulk returns 0: pcp->count is not raised by the pages it put on the list."""
    _rmqueue_bulk(state, zone, order, count, pcp, migratetype)
    return 0


def mod_zone_page_state_noop(zone: Zone, nr_pages: int) -> None:
    """rmqueue_bulk forgets __mod_zone_page_state(NR_FREE_PAGES): bulk-allocated pages still count as free."""


def drain_pages_zone_drop(state: BuddyState, zone: Zone, cpu: int) -> None:
    """drain_pages_zone empties the pcp lists without free_pcppages_bulk: the pages are lost."""
    pcp = zone.pageset[cpu]
    pcp.lists = ((),) * len(pcp.lists)
    pcp.count = 0


def zone_watermark_ok_order0(zone: Zone, order: int, mark: int, classzone_idx: int) -> bool:
    """__zone_watermark_ok ignores the order: a large block may take the zone below its min watermark."""
    return zone.nr_free_pages > mark + zone.info.lowmem_reserve[classzone_idx]


def rmqueue_smallest_short(state: BuddyState, zone: Zone, order: int, migratetype: int) -> int | None:
    """__rmqueue_smallest stops at MAX_ORDER - 2: free blocks of the top order are never used."""
    for current_order in range(order, state.layout.MAX_ORDER - 1):
        free_list = zone.free_area[current_order].free_list[migratetype]
        if free_list:
            pfn = free_list[0]
            page_alloc.del_page_from_free_list(state, zone, pfn, current_order)
            page_alloc.expand(state, zone, pfn, order, current_order, migratetype)
            return pfn
    return None


MUTANTS = (
    mutant(
        "buddy.buddy_pfn_add",
        model="buddy",
        breaks="buddy.fully_coalesced",
        engine="explore",
        patches=((PAGE_ALLOC, "find_buddy_pfn", find_buddy_pfn_add),),
    ),
    mutant(
        "buddy.skip_merge",
        model="buddy",
        breaks="buddy.fully_coalesced",
        engine="explore",
        patches=((PAGE_ALLOC, "page_is_buddy", page_is_buddy_never),),
    ),
    mutant(
        "buddy.page_is_buddy_any_order",
        model="buddy",
        breaks="buddy.partition",
        engine="explore",
        patches=((PAGE_ALLOC, "page_is_buddy", page_is_buddy_any_order),),
    ),
    mutant(
        "buddy.nr_free_not_decremented",
        model="buddy",
        breaks="buddy.nr_free",
        engine="explore",
        patches=((PAGE_ALLOC, "del_page_from_free_list", del_page_keeps_nr_free),),
    ),
    mutant(
        "buddy.stale_page_buddy",
        model="buddy",
        breaks="buddy.page_metadata",
        engine="explore",
        patches=((PAGE_ALLOC, "del_page_from_free_list", del_page_keeps_page_buddy),),
    ),
    mutant(
        "buddy.expand_size_minus_one",
        model="buddy",
        breaks="buddy.alignment",
        engine="explore",
        patches=((PAGE_ALLOC, "expand", expand_size_minus_one),),
    ),
    mutant(
        "buddy.expand_lower_half",
        model="buddy",
        breaks="buddy.partition",
        engine="explore",
        patches=((PAGE_ALLOC, "expand", expand_lower_half),),
    ),
    mutant(
        "buddy.pcp_count_not_raised",
        model="buddy",
        breaks="buddy.pcp_count",
        engine="explore",
        patches=((PAGE_ALLOC, "rmqueue_bulk", rmqueue_bulk_uncounted),),
    ),
    mutant(
        "buddy.bulk_keeps_nr_free_pages",
        model="buddy",
        breaks="buddy.nr_free_pages",
        engine="explore",
        patches=((PAGE_ALLOC, "mod_zone_page_state", mod_zone_page_state_noop),),
    ),
    mutant(
        "buddy.drain_drops_pages",
        model="buddy",
        breaks="buddy.conservation",
        engine="stateful",
        patches=((PAGE_ALLOC, "drain_pages_zone", drain_pages_zone_drop),),
    ),
    mutant(
        "buddy.watermark_ignores_order",
        model="buddy",
        breaks="buddy.watermark",
        engine="explore",
        patches=((PAGE_ALLOC, "zone_watermark_ok", zone_watermark_ok_order0),),
    ),
    mutant(
        "buddy.rmqueue_skips_top_order",
        model="buddy",
        breaks="buddy.alloc_failure",
        engine="explore",
        patches=((PAGE_ALLOC, "rmqueue_smallest", rmqueue_smallest_short),),
    ),
)


# Bugs in the pure arithmetic helpers, for the z3 proofs about them.


def find_buddy_pfn_next_order(page_pfn: int, order: int) -> int:
    """__find_buddy_pfn flips bit order + 1: the 'buddy' lies in the neighbouring parent block."""
    return page_pfn ^ (2 << order)


def find_buddy_pfn_plus_one(page_pfn: int, order: int) -> int:
    """__find_buddy_pfn is off by one page: the buddy of an aligned block is misaligned."""
    return (page_pfn ^ (1 << order)) + 1


def find_buddy_pfn_below(page_pfn: int, order: int) -> int:
    """__find_buddy_pfn always looks below: the buddy of a lower half is the block before it."""
    return page_pfn - (1 << order)


def combined_pfn_or(buddy_pfn: int, pfn: int) -> int:
    """__free_one_page merges at buddy_pfn | pfn: the merged block starts at the upper half."""
    return buddy_pfn | pfn


def combined_pfn_keeps_page(buddy_pfn: int, pfn: int) -> int:
    """__free_one_page keeps the freed page as the merged head even when its buddy lies below."""
    return pfn


def pageblock_start_pfn_one_bit(pfn: int, pageblock_order: int) -> int:
    """pageblock_start_pfn masks with ~(1 << pageblock_order), forgetting the - 1."""
    return pfn & ~(1 << pageblock_order)


PROOF_MUTANTS = tuple(
    mutant(name, model="buddy", breaks=breaks, engine="prove", patches=((PAGE_ALLOC, helper, fn),))
    for name, breaks, helper, fn in (
        ("buddy.prove_buddy_pfn_add", "buddy.find_buddy_pfn_involution", "find_buddy_pfn", find_buddy_pfn_add),
        ("buddy.buddy_pfn_next_order", "buddy.buddy_same_parent", "find_buddy_pfn", find_buddy_pfn_next_order),
        ("buddy.buddy_pfn_plus_one", "buddy.buddy_aligned", "find_buddy_pfn", find_buddy_pfn_plus_one),
        ("buddy.buddy_pfn_below", "buddy.expand_halves_are_buddies", "find_buddy_pfn", find_buddy_pfn_below),
        ("buddy.combined_pfn_or", "buddy.merged_block_aligned", "combined_pfn", combined_pfn_or),
        ("buddy.combined_pfn_keeps_page", "buddy.merged_block_is_lower_half", "combined_pfn", combined_pfn_keeps_page),
        (
            "buddy.pageblock_mask_one_bit",
            "buddy.pageblock_start_pfn_rounds_down",
            "pageblock_start_pfn",
            pageblock_start_pfn_one_bit,
        ),
    )
)
