"""Each buddy invariant holds on a real state and fails, naming the right pfn and order, on a
hand-corrupted one. Corrupted states are clones: a checked state is never changed."""

from __future__ import annotations

import pytest

from invariants import buddy as inv
from model.contract import Step
from model.mm.buddy import BuddyConfig, BuddyModel, BuddyState
from model.mm.mmzone import MIGRATE_MOVABLE, ZONE_DMA32, ZONE_NORMAL, FreeArea

MOVABLE, UNMOVABLE = "MIGRATE_MOVABLE", "MIGRATE_UNMOVABLE"
MODEL = BuddyModel.from_profile("small")


def boot() -> BuddyState:
    """Small profile after boot. Normal: pfn 4 (order 0), 6 (order 1), 8 (order 2), hole at 5."""
    return MODEL.init_state()


def busy() -> BuddyState:
    """Allocated 4, 8 (order 1, stealing pageblocks [8, 12) for UNMOVABLE) and 10; pfn 6 and 11
    on the pcp lists; pfn 7 free."""
    s = boot()
    for args in ((0, MOVABLE, 0), (1, UNMOVABLE, 0), (0, UNMOVABLE, 0)):
        s, _ = MODEL.step(s, MODEL.action_by_name["alloc_pages"], args)
    assert s.allocated == ((4, 0), (8, 1), (10, 0))
    assert s.zones[ZONE_NORMAL].pageset[0].lists == ((11,), (6,), ())
    assert s.zones[ZONE_NORMAL].free_area[0].free_list == ((), (7,), ())
    return s


def set_list(
    state: BuddyState, z: int, order: int, pfns: tuple[int, ...], nr_free: int | None = None
) -> None:
    """Replace the MIGRATE_MOVABLE free list of one order (nr_free follows unless given)."""
    area = state.zones[z].free_area[order]
    lists = list(area.free_list)
    lists[MIGRATE_MOVABLE] = pfns
    listed = sum(map(len, lists))
    state.zones[z].free_area[order] = FreeArea(tuple(lists), listed if nr_free is None else nr_free)


def corrupted(state: BuddyState) -> BuddyState:
    return state.clone()


STATE_CHECKS = [
    inv.conservation,
    inv.nr_free,
    inv.nr_free_pages,
    inv.alignment,
    inv.partition,
    inv.fully_coalesced,
    inv.page_metadata,
    inv.pcp_count,
]


@pytest.mark.parametrize("check", STATE_CHECKS, ids=lambda c: c.__name__)
def test_state_invariants_hold_on_real_states(check: object) -> None:
    for state in (boot(), busy()):
        assert check(state) == []  # type: ignore[operator]


def test_conservation() -> None:
    s = corrupted(boot())
    set_list(s, ZONE_NORMAL, 0, ())  # pfn 4 vanishes
    assert inv.conservation(s) == ["zone Normal: 6 free + 0 per-cpu + 0 allocated pages != managed_pages 7"]


def test_nr_free() -> None:
    s = corrupted(boot())
    set_list(s, ZONE_NORMAL, 1, (6,), nr_free=2)
    assert inv.nr_free(s) == ["zone Normal free_area[1].nr_free is 2 but its free lists hold 1 block"]


def test_nr_free_pages() -> None:
    s = corrupted(boot())
    s.zones[ZONE_NORMAL].nr_free_pages += 1
    assert inv.nr_free_pages(s) == ["zone Normal NR_FREE_PAGES is 8 but its free lists hold 7 pages"]


@pytest.mark.parametrize(
    ("z", "order", "pfns", "message"),
    [
        (
            ZONE_NORMAL,
            1,
            (7,),
            "free block pfn 7 order 1 on zone Normal free_area[1] is not aligned to its 2 pages",
        ),
        (
            ZONE_NORMAL,
            0,
            (5,),
            "free block pfn 5 order 0 on zone Normal free_area[0] covers the hole at pfn 5",
        ),
        (
            ZONE_DMA32,
            1,
            (6,),
            "free block pfn 6 order 1 on zone DMA32 free_area[1] lies outside zone DMA32 [2, 4)",
        ),
    ],
)
def test_alignment(z: int, order: int, pfns: tuple[int, ...], message: str) -> None:
    s = corrupted(boot())
    set_list(s, z, order, pfns)
    assert message in inv.alignment(s)


def test_alignment_of_allocated_blocks() -> None:
    s = corrupted(boot())
    s.allocated = ((12, 0), (8, 3))
    assert inv.alignment(s) == [
        "allocated block pfn 12 order 0 is outside every zone",
        "allocated block pfn 8 order 3 has order 3, outside 0..MAX_ORDER-1 (2)",
    ]


def test_partition() -> None:
    s = corrupted(boot())
    s.allocated = ((0, 0), (9, 0))
    assert inv.partition(s) == [
        "pfn 0 is not managed by the buddy allocator but is in allocated block pfn 0 order 0",
        "pfn 9 is both in free block pfn 8 order 2 on zone Normal free_area[2] and in allocated block pfn 9 order 0",
    ]


def test_partition_of_pcp_pages() -> None:
    s = corrupted(busy())
    s.zones[ZONE_NORMAL].pageset[0].lists = ((11, 11), (7, 6), ())
    assert inv.partition(s) == [
        "pfn 11 is both pfn 11 on cpu 0's zone Normal pcp list and pfn 11 on cpu 0's zone Normal pcp list",
        "pfn 7 is both in free block pfn 7 order 0 on zone Normal free_area[0] and pfn 7 on cpu 0's zone Normal pcp list",
    ]


def test_fully_coalesced() -> None:
    s = corrupted(boot())
    set_list(s, ZONE_NORMAL, 2, ())
    set_list(s, ZONE_NORMAL, 1, (6, 8, 10))
    assert inv.fully_coalesced(s) == [
        "pfn 8 order 1 and its buddy pfn 10 order 1 are both free on free_area[1] of zone Normal"
    ]


def test_fully_coalesced_allows_free_buddies_at_the_top_order() -> None:
    flat = BuddyConfig(MAX_ORDER=3, pageblock_order=1, ram=((0, 8, 0),), reserved=(), max_zone_pfn=(0, 0, 8))
    s = BuddyModel(flat).init_state()
    assert s.zones[ZONE_NORMAL].free_area[2].free_list[MIGRATE_MOVABLE] == (4, 0)
    assert inv.fully_coalesced(s) == []


def test_page_metadata_buddy_and_order() -> None:
    s = corrupted(boot())
    del s.mem_map.buddy[8]
    s.mem_map.private[6] = 2
    s.mem_map.buddy[9] = True
    assert inv.page_metadata(s) == [
        "pfn 6 heads a free order-1 block but its page_private order is 2",
        "pfn 8 heads a free order-2 block but is not PageBuddy",
        "pfn 9 is PageBuddy (order 0) but heads no free block",
        "pfn 8 is not PageBuddy but its page_private is 2",
    ]


def test_page_metadata_refcount() -> None:
    s = corrupted(busy())
    del s.mem_map.refcount[8]
    s.mem_map.refcount[7] = 1
    s.mem_map.refcount[9] = 1
    assert inv.page_metadata(s) == [
        "allocated block pfn 8 order 1 has _refcount 0 on its head page",
        "pfn 7 has _refcount 1 but lies in free block pfn 7 order 0 on zone Normal free_area[0], where it must be 0",
        "pfn 9 has _refcount 1 but lies in allocated block pfn 8 order 1, where it must be 0",
    ]


def test_pcp_count() -> None:
    s = corrupted(busy())
    s.zones[ZONE_NORMAL].pageset[0].count = 5
    assert inv.pcp_count(s) == ["cpu 0's zone Normal per_cpu_pages count is 5 but its lists hold 2 pages"]


def test_watermark() -> None:
    before = boot()
    after, pfn = MODEL.step(before, MODEL.action_by_name["alloc_pages"], (2, MOVABLE, 0))
    assert pfn == 8 and inv.watermark(before, Step("alloc_pages", (2, MOVABLE, 0)), after=after) == []
    # an order-1 block taken from Normal as well would leave 1 page against min 2
    bad = corrupted(after)
    set_list(bad, ZONE_NORMAL, 1, ())
    bad.allocated = ((6, 1), (8, 2))
    assert inv.watermark(after, Step("alloc_pages", (1, MOVABLE, 0)), after=bad) == [
        "order-1 allocation of pfn 6 left zone Normal with 1 free page, below min watermark + lowmem_reserve = 2"
    ]


def test_alloc_failure() -> None:
    s = boot()
    for args in ((2, MOVABLE, 0), (1, MOVABLE, 0)):
        s, _ = MODEL.step(s, MODEL.action_by_name["alloc_pages"], args)
    after, pfn = MODEL.step(s, MODEL.action_by_name["alloc_pages"], (1, MOVABLE, 0))
    assert pfn is None and inv.alloc_failure(s, Step("alloc_pages", (1, MOVABLE, 0)), after=after) == []
    # NULL from a fresh machine is wrong, and so is failing with pages left on a pcp list
    fresh = boot()
    unchanged = corrupted(fresh)
    unchanged.zones[ZONE_NORMAL].pageset[0].lists = ((), (4,), ())
    unchanged.zones[ZONE_NORMAL].pageset[0].count = 1
    assert inv.alloc_failure(fresh, Step("alloc_pages", (1, MOVABLE, 0)), after=unchanged) == [
        "alloc_pages failed with 1 page still on zone Normal's per-cpu lists",
        "alloc_pages(order=1) on cpu 0 returned NULL though zone Normal has 7 free pages, above min watermark "
        "+ lowmem_reserve = 2, and a free block of order >= 1",
        "alloc_pages(order=1) on cpu 0 returned NULL though zone DMA32 has 2 free pages, above min watermark "
        "+ lowmem_reserve = 0, and a free block of order >= 1",
    ]


def test_transition_invariants_ignore_other_actions() -> None:
    s = busy()
    pfn, order = s.allocated[0]
    after, _ = MODEL.step(s, MODEL.action_by_name["free_pages"], (pfn, order, 0))
    step = Step("free_pages", (pfn, order, 0))
    assert inv.watermark(s, step, after=after) == inv.alloc_failure(s, step, after=after) == []


def test_a_state_changed_in_place_is_checked_afresh() -> None:
    s = boot()
    assert inv.conservation(s) == []
    set_list(s, ZONE_NORMAL, 0, ())
    assert inv.conservation(s) == ["zone Normal: 6 free + 0 per-cpu + 0 allocated pages != managed_pages 7"]
