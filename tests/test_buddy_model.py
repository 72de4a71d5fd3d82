"""The buddy allocator model against concrete kernel scenarios, with the kernel's own numbers."""

from __future__ import annotations

import dataclasses
import json

import pytest
import z3

import invariants
from model.contract import Step, to_jsonable
from model.mm import page, page_alloc
from model.mm.buddy import BuddyConfig, BuddyModel, BuddyState
from model.mm.mmzone import (
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NORMAL,
    init_per_zone_wmark_min,
    pcp_high_batch,
    setup_per_zone_lowmem_reserve,
    zone_batchsize,
)

MOVABLE, UNMOVABLE = "MIGRATE_MOVABLE", "MIGRATE_UNMOVABLE"

# One 16-page ZONE_NORMAL, MAX_ORDER 4, 4-page pageblocks: boot leaves two order-3 blocks.
FLAT = BuddyConfig(
    MAX_ORDER=4,
    pageblock_order=2,
    ram=((0, 16, 0),),
    reserved=(),
    max_zone_pfn=(0, 0, 16),
    cpu_to_node=(0,),
    min_free_kbytes=4,
    pcp_high=3,
    pcp_batch=2,
    split_page_max_order=3,
)


def run(m: BuddyModel, state: BuddyState, name: str, *args: object) -> tuple[BuddyState, object]:
    """One enabled step, with every invariant checked on it."""
    act = m.action_by_name[name]
    assert m.is_enabled(state, act, args), f"{name}{args} is not enabled"
    after, result = m.step(state, act, args)
    found = invariants.evaluate(invariants.for_model("buddy"), after, state, Step(name, args))
    assert found is None, found
    return after, result


def free_lists(state: BuddyState, z: int, migratetype: int) -> dict[int, tuple[int, ...]]:
    """The zone's non-empty free lists of one migratetype, by order."""
    return {
        o: a.free_list[migratetype]
        for o, a in enumerate(state.zones[z].free_area)
        if a.free_list[migratetype]
    }


def test_find_buddy_pfn_follows_the_kernel_comment() -> None:
    # __find_buddy_pfn: "if the starting buddy (buddy2) is #8 its order 1 buddy is #10"
    assert page_alloc.find_buddy_pfn(8, 1) == 10
    assert page_alloc.find_buddy_pfn(10, 1) == 8
    # the order O+1 parent is P = B & ~(1 << O), whichever of the two is freed
    assert page_alloc.combined_pfn(10, 8) == 8
    assert page_alloc.combined_pfn(8, 10) == 8
    assert page_alloc.find_buddy_pfn(8, 3) == 0
    assert page_alloc.pageblock_start_pfn(1000, 9) == 512


def test_pfn_arithmetic_takes_z3_bitvectors() -> None:
    pfn, order = z3.BitVecs("pfn order", 64)
    buddy = page_alloc.find_buddy_pfn(pfn, order)
    solver = z3.Solver()
    solver.add(z3.ULT(order, 11), page_alloc.find_buddy_pfn(buddy, order) != pfn)
    assert solver.check() == z3.unsat
    solver = z3.Solver()
    solver.add(z3.ULT(order, 11), page_alloc.combined_pfn(buddy, pfn) != pfn & ~(1 << order))
    assert solver.check() == z3.unsat


def test_boot_frees_the_largest_aligned_blocks() -> None:
    m = BuddyModel.from_profile("small")
    s = m.init_state()
    dma, dma32, normal = s.zones
    # pfn 0 is reserved, pfn 5 is a hole: DMA keeps pfn 1, Normal splits around the hole
    assert free_lists(s, ZONE_DMA, MIGRATE_MOVABLE) == {0: (1,)}
    assert free_lists(s, ZONE_DMA32, MIGRATE_MOVABLE) == {1: (2,)}
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {0: (4,), 1: (6,), 2: (8,)}
    assert [z.nr_free_pages for z in s.zones] == [1, 2, 7]
    assert s.mem_map.buddy.keys() == {1, 2, 4, 6, 8}
    assert s.mem_map.private == {2: 1, 6: 1, 8: 2}
    assert set(s.pageblock_migratetype) == {MIGRATE_MOVABLE}  # memmap_init_zone
    assert invariants.evaluate(invariants.for_model("buddy"), s) is None


def test_zone_spans_present_and_managed_pages() -> None:
    layout = BuddyModel.from_profile("small").layout
    spans = [(z.zone_start_pfn, z.spanned_pages, z.present_pages, z.managed_pages) for z in layout.zones]
    assert spans == [
        (0, 2, 2, 1),
        (2, 2, 2, 2),
        (4, 8, 7, 7),
    ]  # managed = present - reserved, present = spanned - holes
    assert [z.watermark[0] for z in layout.zones] == [
        0,
        0,
        2,
    ]  # min_free_kbytes 16: 4 pages, by managed share
    large = BuddyModel.from_profile("large").layout
    dma = large.zones[ZONE_DMA]
    assert (dma.spanned_pages, dma.present_pages, dma.managed_pages) == (
        1024,
        927,
        926,
    )  # 640K-1M hole, BIOS page
    assert large.cpu_zonelist(0) == (2, 1, 0, 5)  # local Normal, DMA32, DMA, then node 1's Normal
    assert large.cpu_zonelist(2) == (5, 2, 1, 0)


def test_kernel_sizing_formulas() -> None:
    # a 4 GiB zone: batch 31 and high 186, as /proc/zoneinfo shows
    assert zone_batchsize(1 << 20) == 31
    assert pcp_high_batch(1 << 20, 0, -1, -1) == (186, 31)
    # a tiny zone gets batch 1 and high 0: every free goes straight back to the buddy
    assert pcp_high_batch(100, 0, -1, -1) == (0, 1)
    assert pcp_high_batch(1024, 8, -1, -1) == (128, 32)  # percpu_pagelist_fraction = 8
    # init_per_zone_wmark_min's table: 16MB -> 512k, 1024MB -> 4096k, 16384MB -> 16384k
    assert init_per_zone_wmark_min(16 << 8) == 512
    assert init_per_zone_wmark_min(1024 << 8) == 4096
    assert init_per_zone_wmark_min(16384 << 8) == 16384
    # "NORMAL allocation will leave 784M/256 of ram reserved in the ZONE_DMA"
    reserve = setup_per_zone_lowmem_reserve([4096, 0, 784 << 8], (256, 256))
    assert reserve[ZONE_DMA][ZONE_NORMAL] == (784 << 8) // 256
    assert reserve[ZONE_DMA][ZONE_DMA] == reserve[ZONE_NORMAL][ZONE_NORMAL] == 0


def test_expand_leaves_one_block_per_order_above_the_request() -> None:
    s = BuddyModel(FLAT).init_state()
    zone = s.zones[ZONE_NORMAL]
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {3: (8, 0)}
    pfn = page_alloc.rmqueue_smallest(s, zone, 0, MIGRATE_MOVABLE)
    assert pfn == 8
    # an order-3 block split for an order-0 request: page+1, page+2, page+4 at orders 0, 1, 2
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {0: (9,), 1: (10,), 2: (12,), 3: (0,)}
    assert [a.nr_free for a in zone.free_area] == [1, 1, 1, 1]
    assert {p: page.page_order(s.mem_map, p) for p in s.mem_map.buddy} == {9: 0, 10: 1, 12: 2, 0: 3}


def test_freeing_both_halves_coalesces_back_to_boot() -> None:
    m = BuddyModel(FLAT)
    boot = m.init_state()
    s, first = run(m, boot, "alloc_pages", 1, MOVABLE, 0)
    s, second = run(m, s, "alloc_pages", 1, MOVABLE, 0)
    assert (first, second) == (8, 10)
    s, _ = run(m, s, "free_pages", 8, 1, 0)
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {1: (8,), 2: (12,), 3: (0,)}
    s, _ = run(m, s, "free_pages", 10, 1, 0)
    # 10 merges with 8, then with 12, then stops at MAX_ORDER - 1 beside its buddy 0
    assert s.fingerprint() == boot.fingerprint()


def test_rmqueue_bulk_takes_pages_in_physical_order() -> None:
    m = BuddyModel(dataclasses.replace(FLAT, pcp_high=8, pcp_batch=4))
    s, pfn = run(m, m.init_state(), "alloc_pages", 0, MOVABLE, 0)
    pcp = s.zones[ZONE_NORMAL].pageset[0]
    assert pfn == 8
    assert pcp.lists[MIGRATE_MOVABLE] == (9, 10, 11) and pcp.count == 3
    assert s.zones[ZONE_NORMAL].nr_free_pages == 12  # rmqueue_bulk took 4 off NR_FREE_PAGES


def test_free_pcppages_bulk_frees_a_batch_from_the_tail_at_high() -> None:
    m = BuddyModel(FLAT)  # pcp high 3, batch 2
    s, a = run(m, m.init_state(), "alloc_pages", 0, MOVABLE, 0)
    s, b = run(m, s, "alloc_pages", 0, MOVABLE, 0)
    s, c = run(m, s, "alloc_pages", 0, MOVABLE, 0)
    assert (a, b, c) == (8, 9, 10)
    pcp = s.zones[ZONE_NORMAL].pageset[0]
    assert pcp.lists[MIGRATE_MOVABLE] == (11,) and pcp.count == 1
    s, _ = run(m, s, "free_pages", 8, 0, 0)
    assert s.zones[ZONE_NORMAL].pageset[0].lists[MIGRATE_MOVABLE] == (8, 11)  # list_add at the head
    s, _ = run(m, s, "free_pages", 9, 0, 0)
    # count reached high (3): batch (2) pages go back, oldest first: 11, then 8
    pcp = s.zones[ZONE_NORMAL].pageset[0]
    assert pcp.lists[MIGRATE_MOVABLE] == (9,) and pcp.count == 1
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE)[0] == (8, 11)


def test_fallback_steals_the_largest_block_of_the_fallback_type() -> None:
    m = BuddyModel(FLAT)
    s, pfn = run(m, m.init_state(), "alloc_pages", 2, MOVABLE, 0)
    assert pfn == 8 and free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {2: (12,), 3: (0,)}
    # no UNMOVABLE block anywhere: __rmqueue_fallback takes the order-3 block, not the order-2 one
    s, pfn = run(m, s, "alloc_pages", 1, UNMOVABLE, 0)
    assert pfn == 0
    assert s.pageblock_migratetype == [MIGRATE_UNMOVABLE, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_MOVABLE]
    assert free_lists(s, ZONE_NORMAL, MIGRATE_UNMOVABLE) == {1: (2,), 2: (4,)}
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {2: (12,)}


def test_steal_moves_the_pageblock_free_pages_and_claims_it_when_half_free() -> None:
    m = BuddyModel(FLAT)
    s = m.init_state()
    for order, expect in ((1, 8), (1, 10), (1, 12), (3, 0)):
        s, pfn = run(m, s, "alloc_pages", order, MOVABLE, 0)
        assert pfn == expect
    s, _ = run(m, s, "free_pages", 10, 1, 0)
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {1: (10, 14)}
    zone = s.zones[ZONE_NORMAL]
    pfn = page_alloc.rmqueue_locked(s, zone, 0, MIGRATE_UNMOVABLE)
    # order 1 >= pageblock_order / 2, so the pageblock [8, 12) is stolen: its free block
    # (2 pages, half of it) moves to the UNMOVABLE lists and the pageblock changes type
    assert pfn == 10
    assert s.pageblock_migratetype == [MIGRATE_MOVABLE, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE]
    assert free_lists(s, ZONE_NORMAL, MIGRATE_UNMOVABLE) == {0: (11,)}
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {1: (14,)}


def test_watermark_sends_allocations_down_the_zonelist_then_fails() -> None:
    m = BuddyModel.from_profile("small")
    s, pfn = run(m, m.init_state(), "alloc_pages", 2, MOVABLE, 0)
    assert pfn == 8
    normal = s.zones[ZONE_NORMAL]
    assert normal.nr_free_pages == 3 and normal.info.watermark[0] == 2
    # order 1 from Normal would leave 3 - 1 = 2 <= min 2: the zone is skipped for DMA32
    assert not page_alloc.zone_watermark_ok(normal, 1, 2, ZONE_NORMAL)
    assert page_alloc.zone_watermark_ok(normal, 0, 2, ZONE_NORMAL)
    s, pfn = run(m, s, "alloc_pages", 1, MOVABLE, 0)
    assert pfn == 2  # ZONE_DMA32
    s, pfn = run(m, s, "alloc_pages", 1, MOVABLE, 0)
    assert pfn is None  # DMA has one page left: NULL


def test_drain_pages_empties_the_pcp_lists() -> None:
    m = BuddyModel.from_profile("small")
    s, pfn = run(m, m.init_state(), "alloc_pages", 0, MOVABLE, 0)
    pcp = s.zones[ZONE_NORMAL].pageset[0]
    assert pfn == 4 and pcp.lists[MIGRATE_MOVABLE] == (6,) and pcp.count == 1
    assert [act for act, _ in m.enabled(s)].count(m.action_by_name["drain_pages"]) == 1
    s, _ = run(m, s, "drain_pages", 0)
    pcp = s.zones[ZONE_NORMAL].pageset[0]
    assert pcp.count == 0 and pcp.lists == ((), (), ())
    assert free_lists(s, ZONE_NORMAL, MIGRATE_MOVABLE) == {1: (6,), 2: (8,)}  # 6 merged with 7 again
    assert s.zones[ZONE_NORMAL].nr_free_pages == 6
    assert not any(act.name == "drain_pages" for act, _ in m.enabled(s))


def test_split_page_pages_are_freed_one_by_one_and_merge_back() -> None:
    m = BuddyModel(FLAT)
    boot = m.init_state()
    s, pfn = run(m, boot, "alloc_pages", 2, MOVABLE, 0)
    s, _ = run(m, s, "split_page", pfn, 2)
    assert s.allocated == ((8, 0), (9, 0), (10, 0), (11, 0))
    assert s.mem_map.refcount == {8: 1, 9: 1, 10: 1, 11: 1}
    for p in (8, 9, 10, 11):
        s, _ = run(m, s, "free_pages", p, 0, 0)
    s, _ = run(m, s, "drain_pages", 0)
    assert s.fingerprint() == boot.fingerprint()


def test_state_is_plain_data_and_clones_are_independent() -> None:
    m = BuddyModel.from_profile("large")
    s = m.init_state()
    json.dumps(to_jsonable(s))
    before = s.fingerprint()
    t, _ = m.step(s, m.action_by_name["alloc_pages"], (0, MOVABLE, 2))
    assert s.fingerprint() == before != t.fingerprint()


@pytest.mark.parametrize("profile", ["small", "large"])
def test_config_round_trips_through_json(profile: str) -> None:
    m = BuddyModel.from_profile(profile)
    assert BuddyModel.config_from_json(json.loads(json.dumps(m.config_json()))) == m.config


def test_bad_config_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="pageblock_order 0"):
        BuddyConfig(MAX_ORDER=3, pageblock_order=0)
    with pytest.raises(ValueError, match="MIGRATE_CMA"):
        BuddyConfig(migratetypes=("MIGRATE_CMA",))
