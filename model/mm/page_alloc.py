"""The buddy page allocator (mm/page_alloc.c, Linux 4.x-5.x).

Allocation: alloc_pages walks the CPU's zonelist (get_page_from_freelist) checking
zone_watermark_ok; order-0 requests come from the per-CPU lists (rmqueue_pcplist, refilled
by rmqueue_bulk), larger ones from the free areas (rmqueue_smallest splitting with expand,
else rmqueue_fallback stealing from another migratetype). Freeing: order-0 pages go to the
per-CPU lists (free_unref_page) until count reaches high, when free_pcppages_bulk returns a
batch; larger blocks go straight to free_one_page, which coalesces with free buddies.

Where kernel versions differ: helper names and the per-CPU paths follow 5.x (add_to_free_list,
free_unref_page, rmqueue_pcplist, free_pcppages_bulk counting pcp->count itself; no
high-order pcp lists, which came in 5.13). With only the MIGRATE_PCPTYPES types modelled, a
pcp page's set_pcppage_migratetype() is always the index of the list it is on, so it is
not stored. The
fallback follows 4.4-4.12 (expand the stolen block at once; 4.13+ moves it to the
requested list and retries rmqueue_smallest, and weighs allocated pages in the pageblock).
Not modelled: CMA, MIGRATE_HIGHATOMIC reserves and ALLOC_HARDER, MIGRATE_ISOLATE (so
merging is never capped at pageblock_order), ALLOC_NOFRAGMENT and watermark boosting (5.0+),
page shuffling (5.2+), reclaim, compaction and the OOM killer.

Every helper a mutant may replace is a module-level function called through this module's
globals. The pfn arithmetic (find_buddy_pfn, combined_pfn, pageblock_start_pfn) uses
operators only, so that z3 bit-vectors pass through the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.mm import mmzone, page
from model.mm.mmzone import (
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    WMARK_LOW,
    WMARK_MIN,
    FreeArea,
    PerCpuPages,
    Zone,
)

if TYPE_CHECKING:
    from model.mm.buddy import BuddyState


# pfn arithmetic


def find_buddy_pfn(page_pfn: int, order: int) -> int:
    """mm/internal.h __find_buddy_pfn: the buddy of an order-``order`` block is B ^ (1 << O)."""
    return page_pfn ^ (1 << order)


def combined_pfn(buddy_pfn: int, pfn: int) -> int:
    """mm/page_alloc.c __free_one_page: the merged block starts at P = B & ~(1 << O)."""
    return buddy_pfn & pfn


def pageblock_start_pfn(pfn: int, pageblock_order: int) -> int:
    """include/linux/pageblock-flags.h pageblock_start_pfn: round pfn down to its pageblock."""
    return pfn & ~((1 << pageblock_order) - 1)


# vmstat counters


def mod_zone_freepage_state(zone: Zone, nr_pages: int) -> None:
    """include/linux/vmstat.h __mod_zone_freepage_state: NR_FREE_PAGES += nr_pages."""
    zone.nr_free_pages += nr_pages


def mod_zone_page_state(zone: Zone, nr_pages: int) -> None:
    """mm/vmstat.c __mod_zone_page_state(zone, NR_FREE_PAGES, nr_pages), as rmqueue_bulk calls it."""
    zone.nr_free_pages += nr_pages


# free lists


def _with_list(
    free_list: tuple[tuple[int, ...], ...], mt: int, new: tuple[int, ...]
) -> tuple[tuple[int, ...], ...]:
    """The lists with list mt replaced by new: lists are immutable tuples, replaced whole."""
    lists = list(free_list)
    lists[mt] = new
    return tuple(lists)


def list_del(zone: Zone, pfn: int, order: int) -> None:
    """include/linux/list.h list_del(&page->lru): unlink pfn from the free list that holds it.

    That is free_area[order] unless the metadata is already wrong; list_del does not care.
    """
    for o in (order, *range(len(zone.free_area))):
        area = zone.free_area[o]
        for mt, lst in enumerate(area.free_list):
            if pfn in lst:
                i = lst.index(pfn)
                zone.free_area[o] = FreeArea(
                    _with_list(area.free_list, mt, lst[:i] + lst[i + 1 :]), area.nr_free
                )
                return


def add_to_free_list(state: BuddyState, zone: Zone, pfn: int, order: int, migratetype: int) -> None:
    """mm/page_alloc.c add_to_free_list (5.6+; list_add and nr_free++ before): at the head."""
    area = zone.free_area[order]
    new = (pfn,) + area.free_list[migratetype]
    zone.free_area[order] = FreeArea(_with_list(area.free_list, migratetype, new), area.nr_free + 1)


def add_to_free_list_tail(state: BuddyState, zone: Zone, pfn: int, order: int, migratetype: int) -> None:
    """mm/page_alloc.c add_to_free_list_tail: at the tail, where it is taken last."""
    area = zone.free_area[order]
    new = area.free_list[migratetype] + (pfn,)
    zone.free_area[order] = FreeArea(_with_list(area.free_list, migratetype, new), area.nr_free + 1)


def move_to_free_list(state: BuddyState, zone: Zone, pfn: int, order: int, migratetype: int) -> None:
    """mm/page_alloc.c move_to_free_list (5.6+; the list_move in move_freepages before): to the
    head of another migratetype's list (5.10+ moves to the tail)."""
    list_del(zone, pfn, order)
    area = zone.free_area[order]
    new = (pfn,) + area.free_list[migratetype]
    zone.free_area[order] = FreeArea(_with_list(area.free_list, migratetype, new), area.nr_free)


def del_page_from_free_list(state: BuddyState, zone: Zone, pfn: int, order: int) -> None:
    """mm/page_alloc.c del_page_from_free_list: list_del, clear PageBuddy and the order, nr_free--."""
    list_del(zone, pfn, order)
    page.rmv_page_order(state.mem_map, pfn)
    area = zone.free_area[order]
    zone.free_area[order] = FreeArea(area.free_list, area.nr_free - 1)


# allocation from the free areas


def expand(state: BuddyState, zone: Zone, pfn: int, low: int, high: int, migratetype: int) -> None:
    """mm/page_alloc.c expand: split an order-high block down to order low, listing the upper
    half at each step, so one free block is left at each order low..high-1, at pfn + 2^k."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        add_to_free_list(state, zone, pfn + size, high, migratetype)
        page.set_buddy_order(state.mem_map, pfn + size, high)


def rmqueue_smallest(state: BuddyState, zone: Zone, order: int, migratetype: int) -> int | None:
    """mm/page_alloc.c __rmqueue_smallest: the first block of the smallest order >= order on
    the migratetype's lists, split down to order."""
    for current_order in range(order, state.layout.MAX_ORDER):
        free_list = zone.free_area[current_order].free_list[migratetype]
        if not free_list:
            continue
        pfn = free_list[0]
        del_page_from_free_list(state, zone, pfn, current_order)
        expand(state, zone, pfn, order, current_order, migratetype)
        return pfn
    return None


def can_steal_fallback(order: int, start_mt: int, pageblock_order: int) -> bool:
    """mm/page_alloc.c can_steal_fallback: steal the whole pageblock for big blocks, and always
    for unmovable and reclaimable requests, which fragment worse than movable ones."""
    if order >= pageblock_order:
        return True
    return order >= pageblock_order // 2 or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)


def find_suitable_fallback(
    area: FreeArea, order: int, migratetype: int, only_stealable: bool, pageblock_order: int
) -> tuple[int, bool]:
    """mm/page_alloc.c find_suitable_fallback: the first fallbacks[] type with a free block at
    this order (-1 for none), and whether its pageblock may be stolen."""
    if area.nr_free == 0:
        return -1, False
    can_steal = False
    for fallback_mt in mmzone.fallbacks[migratetype]:
        if not area.free_list[fallback_mt]:
            continue
        if can_steal_fallback(order, migratetype, pageblock_order):
            can_steal = True
        if not only_stealable or can_steal:
            return fallback_mt, can_steal
    return -1, can_steal


def move_freepages(state: BuddyState, zone: Zone, start_pfn: int, end_pfn: int, migratetype: int) -> int:
    """mm/page_alloc.c move_freepages: move the free blocks in [start_pfn, end_pfn] to the
    migratetype's lists; the number of pages moved."""
    mem_map = state.mem_map
    pfn = start_pfn
    moved = 0
    while pfn <= end_pfn:
        if not page.PageBuddy(mem_map, pfn):
            pfn += 1
            continue
        order = page.page_order(mem_map, pfn)
        move_to_free_list(state, zone, pfn, order, migratetype)
        pfn += 1 << order
        moved += 1 << order
    return moved


def move_freepages_block(state: BuddyState, zone: Zone, pfn: int, migratetype: int) -> int:
    """mm/page_alloc.c move_freepages_block: move_freepages over pfn's pageblock, clipped to the zone."""
    pageblock_order = state.layout.pageblock_order
    start_pfn = pageblock_start_pfn(pfn, pageblock_order)
    end_pfn = start_pfn + (1 << pageblock_order) - 1
    if not zone.info.zone_spans_pfn(start_pfn):
        start_pfn = pfn
    if not zone.info.zone_spans_pfn(end_pfn):
        return 0
    return move_freepages(state, zone, start_pfn, end_pfn, migratetype)


def change_pageblock_range(state: BuddyState, pfn: int, start_order: int, migratetype: int) -> None:
    """mm/page_alloc.c change_pageblock_range: retype every pageblock of an order-start_order block."""
    pageblock_order = state.layout.pageblock_order
    for i in range(1 << (start_order - pageblock_order)):
        page.set_pageblock_migratetype(
            state.pageblock_migratetype, pfn + (i << pageblock_order), pageblock_order, migratetype
        )


def steal_suitable_fallback(state: BuddyState, zone: Zone, pfn: int, start_type: int) -> None:
    """mm/page_alloc.c steal_suitable_fallback (4.4-4.12): take a whole pageblock for a block of
    pageblock_order or more; else move the pageblock's free pages and claim it when at least
    half of it was free."""
    pageblock_order = state.layout.pageblock_order
    current_order = page.page_order(state.mem_map, pfn)
    if current_order >= pageblock_order:
        change_pageblock_range(state, pfn, current_order, start_type)
        return
    pages = move_freepages_block(state, zone, pfn, start_type)
    if pages >= 1 << (pageblock_order - 1):
        page.set_pageblock_migratetype(state.pageblock_migratetype, pfn, pageblock_order, start_type)


def rmqueue_fallback(state: BuddyState, zone: Zone, order: int, start_migratetype: int) -> int | None:
    """mm/page_alloc.c __rmqueue_fallback (4.4-4.12): the largest block of a fallback type,
    stealing its pageblock when allowed, split down to order onto the requested type's lists."""
    layout = state.layout
    for current_order in range(layout.MAX_ORDER - 1, order - 1, -1):
        area = zone.free_area[current_order]
        fallback_mt, can_steal = find_suitable_fallback(
            area, current_order, start_migratetype, False, layout.pageblock_order
        )
        if fallback_mt == -1:
            continue
        pfn = area.free_list[fallback_mt][0]
        if can_steal:
            steal_suitable_fallback(state, zone, pfn, start_migratetype)
        del_page_from_free_list(state, zone, pfn, current_order)
        expand(state, zone, pfn, order, current_order, start_migratetype)
        return pfn
    return None


def rmqueue_locked(state: BuddyState, zone: Zone, order: int, migratetype: int) -> int | None:
    """mm/page_alloc.c __rmqueue: the requested migratetype's lists first, then a fallback."""
    pfn = rmqueue_smallest(state, zone, order, migratetype)
    if pfn is None:
        pfn = rmqueue_fallback(state, zone, order, migratetype)
    return pfn


def rmqueue_buddy(state: BuddyState, zone: Zone, order: int, migratetype: int) -> int | None:
    """mm/page_alloc.c rmqueue, order > 0 (rmqueue_buddy since 6.0): straight from the free areas."""
    pfn = rmqueue_locked(state, zone, order, migratetype)
    if pfn is not None:
        mod_zone_freepage_state(zone, -(1 << order))
    return pfn


# per-CPU lists


def rmqueue_bulk(
    state: BuddyState, zone: Zone, order: int, count: int, pcp: PerCpuPages, migratetype: int
) -> int:
    """mm/page_alloc.c rmqueue_bulk: take up to count blocks for the pcp list, in the order
    they come off the free areas; the number taken."""
    taken = 0
    for _ in range(count):
        pfn = rmqueue_locked(state, zone, order, migratetype)
        if pfn is None:
            break
        pcp.lists = _with_list(pcp.lists, migratetype, pcp.lists[migratetype] + (pfn,))
        taken += 1
    mod_zone_page_state(zone, -(taken << order))
    return taken


def rmqueue_pcplist(state: BuddyState, zone: Zone, cpu: int, migratetype: int) -> int | None:
    """mm/page_alloc.c rmqueue_pcplist (4.13+; buffered_rmqueue before): an order-0 page off
    the head of this CPU's list, refilling an empty list with a batch."""
    pcp = zone.pageset[cpu]
    if not pcp.lists[migratetype]:
        pcp.count += rmqueue_bulk(state, zone, 0, pcp.batch, pcp, migratetype)
        if not pcp.lists[migratetype]:
            return None
    lst = pcp.lists[migratetype]
    pcp.lists = _with_list(pcp.lists, migratetype, lst[1:])
    pcp.count -= 1
    return lst[0]


def rmqueue(state: BuddyState, zone: Zone, order: int, migratetype: int, cpu: int) -> int | None:
    """mm/page_alloc.c rmqueue (4.13+): order-0 pages through the per-CPU lists."""
    if order == 0:
        return rmqueue_pcplist(state, zone, cpu, migratetype)
    return rmqueue_buddy(state, zone, order, migratetype)


def free_pcppages_bulk(state: BuddyState, zone: Zone, count: int, pcp: PerCpuPages) -> None:
    """mm/page_alloc.c free_pcppages_bulk (4.17+): give count pages back to the free areas,
    round-robin over the lists (more from fuller ones), oldest (tail) first."""
    count = min(pcp.count, count)
    migratetype = 0
    batch_free = 0
    to_free = []
    while count > 0:
        if not any(pcp.lists):
            break  # pcp->count out of step with the lists: the kernel would spin here
        while True:
            batch_free += 1
            migratetype = (migratetype + 1) % MIGRATE_PCPTYPES
            if pcp.lists[migratetype]:
                break
        if batch_free == MIGRATE_PCPTYPES:
            batch_free = count  # the only non-empty list: take it all
        while True:
            lst = pcp.lists[migratetype]
            to_free.append((lst[-1], migratetype))
            pcp.lists = _with_list(pcp.lists, migratetype, lst[:-1])
            pcp.count -= 1
            count -= 1
            if count == 0:
                break
            batch_free -= 1
            if batch_free == 0 or not pcp.lists[migratetype]:
                break
    for pfn, mt in to_free:
        free_one_page(state, zone, pfn, 0, mt)


def drain_pages_zone(state: BuddyState, zone: Zone, cpu: int) -> None:
    """mm/page_alloc.c drain_pages_zone: return all of cpu's pcp pages of the zone."""
    pcp = zone.pageset[cpu]
    if pcp.count:
        free_pcppages_bulk(state, zone, pcp.count, pcp)


def drain_pages(state: BuddyState, cpu: int) -> None:
    """mm/page_alloc.c drain_pages: drain_pages_zone for every populated zone."""
    for zone in state.zones:
        if zone.pageset:
            drain_pages_zone(state, zone, cpu)


def drain_all_pages(state: BuddyState) -> None:
    """mm/page_alloc.c drain_all_pages(NULL): drain_pages on every CPU (an IPI to each in the kernel)."""
    for cpu in range(state.layout.memory.nr_cpu_ids):
        drain_pages(state, cpu)


def free_unref_page(state: BuddyState, pfn: int, cpu: int) -> None:
    """mm/page_alloc.c free_unref_page (4.15+; free_hot_cold_page before): an order-0 page to
    the head of this CPU's list of its pageblock's type; at high, a batch goes back."""
    layout = state.layout
    zone = state.zones[layout.zone_of_pfn[pfn]]
    migratetype = page.get_pfnblock_migratetype(state.pageblock_migratetype, pfn, layout.pageblock_order)
    pcp = zone.pageset[cpu]
    pcp.lists = _with_list(pcp.lists, migratetype, (pfn,) + pcp.lists[migratetype])
    pcp.count += 1
    if pcp.count >= pcp.high:
        free_pcppages_bulk(state, zone, pcp.batch, pcp)


# freeing to the free areas


def page_is_buddy(state: BuddyState, pfn: int, buddy_pfn: int, order: int) -> bool:
    """mm/page_alloc.c page_is_buddy: buddy_pfn heads a free block of the same order in the
    same zone (a hole never does: its pages are never PageBuddy)."""
    mem_map = state.mem_map
    zone_of_pfn = state.layout.zone_of_pfn
    if not 0 <= buddy_pfn < len(zone_of_pfn):  # pfn_valid
        return False
    if not page.PageBuddy(mem_map, buddy_pfn) or page.page_order(mem_map, buddy_pfn) != order:
        return False
    return zone_of_pfn[pfn] == zone_of_pfn[buddy_pfn]


def buddy_merge_likely(state: BuddyState, pfn: int, order: int) -> bool:
    """mm/page_alloc.c buddy_merge_likely (5.2+; inline in __free_one_page before): the block's
    buddy one order up is free, so the block goes to the tail, likely to merge soon."""
    if order >= state.layout.MAX_ORDER - 2:
        return False
    higher_pfn = combined_pfn(find_buddy_pfn(pfn, order), pfn)
    return page_is_buddy(state, higher_pfn, find_buddy_pfn(higher_pfn, order + 1), order + 1)


def free_one_page(state: BuddyState, zone: Zone, pfn: int, order: int, migratetype: int) -> None:
    """mm/page_alloc.c __free_one_page: merge with free buddies up to MAX_ORDER-1, then list the
    merged block on its migratetype's list (at the tail if it may merge further)."""
    mod_zone_freepage_state(zone, 1 << order)
    while order < state.layout.MAX_ORDER - 1:
        buddy_pfn = find_buddy_pfn(pfn, order)
        if not page_is_buddy(state, pfn, buddy_pfn, order):
            break
        del_page_from_free_list(state, zone, buddy_pfn, order)
        pfn = combined_pfn(buddy_pfn, pfn)
        order += 1
    page.set_buddy_order(state.mem_map, pfn, order)
    if buddy_merge_likely(state, pfn, order):
        add_to_free_list_tail(state, zone, pfn, order, migratetype)
    else:
        add_to_free_list(state, zone, pfn, order, migratetype)


def free_pages_ok(state: BuddyState, pfn: int, order: int) -> None:
    """mm/page_alloc.c __free_pages_ok: a block of order > 0 straight to free_one_page."""
    layout = state.layout
    migratetype = page.get_pfnblock_migratetype(state.pageblock_migratetype, pfn, layout.pageblock_order)
    free_one_page(state, state.zones[layout.zone_of_pfn[pfn]], pfn, order, migratetype)


def free_pages(state: BuddyState, pfn: int, order: int, cpu: int) -> None:
    """mm/page_alloc.c __free_pages: drop the reference; the last one frees the block."""
    if page.put_page_testzero(state.mem_map, pfn):
        if order == 0:
            free_unref_page(state, pfn, cpu)
        else:
            free_pages_ok(state, pfn, order)


# allocation


def zone_watermark_ok(zone: Zone, order: int, mark: int, classzone_idx: int) -> bool:
    """mm/page_alloc.c __zone_watermark_ok (4.4+): after the allocation more than mark +
    lowmem_reserve pages stay free, and a block of at least order is free on some list."""
    free_pages = zone.nr_free_pages - ((1 << order) - 1)
    if free_pages <= mark + zone.info.lowmem_reserve[classzone_idx]:
        return False
    if order == 0:
        return True
    return any(area.nr_free and any(area.free_list) for area in zone.free_area[order:])


def prep_new_page(state: BuddyState, pfn: int, order: int) -> None:
    """mm/page_alloc.c prep_new_page: the head page gets its reference (not compound, no __GFP_COMP)."""
    page.set_page_private(state.mem_map, pfn, 0)
    page.set_page_refcounted(state.mem_map, pfn)


def get_page_from_freelist(
    state: BuddyState, order: int, migratetype: int, cpu: int, wmark: int, nid: int | None = None
) -> int | None:
    """mm/page_alloc.c get_page_from_freelist: the first zone of the zonelist (cpu's node's,
    or node nid's) that passes the watermark and has a block (node_reclaim_mode 0: a failing
    zone is skipped)."""
    layout = state.layout
    zonelist = layout.cpu_zonelist(cpu) if nid is None else layout.nodes[nid].node_zonelist
    classzone_idx = layout.zones[zonelist[0]].zone_type
    for z in zonelist:
        zone = state.zones[z]
        if not zone_watermark_ok(zone, order, zone.info.watermark[wmark], classzone_idx):
            continue
        pfn = rmqueue(state, zone, order, migratetype, cpu)
        if pfn is not None:
            prep_new_page(state, pfn, order)
            return pfn
    return None


def alloc_pages(
    state: BuddyState,
    order: int,
    migratetype: int,
    cpu: int,
    nid: int | None = None,
    can_direct_reclaim: bool = True,
) -> int | None:
    """mm/page_alloc.c __alloc_pages_nodemask for a GFP_KERNEL-class request on cpu, preferring
    node nid if given (alloc_pages_node without __GFP_THISNODE): the fast path at the low
    watermark; the slow path at min; then, if the request may reclaim (__GFP_DIRECT_RECLAIM),
    which finds nothing to reclaim here, drain_all_pages and one last try at min
    (__alloc_pages_direct_reclaim). None is NULL."""
    pfn = get_page_from_freelist(state, order, migratetype, cpu, WMARK_LOW, nid)
    if pfn is None:
        pfn = get_page_from_freelist(state, order, migratetype, cpu, WMARK_MIN, nid)
    if pfn is None and can_direct_reclaim:
        drain_all_pages(state)
        pfn = get_page_from_freelist(state, order, migratetype, cpu, WMARK_MIN, nid)
    return pfn


def split_page(state: BuddyState, pfn: int, order: int) -> None:
    """mm/page_alloc.c split_page: every page of a non-compound block gets its own reference,
    to be freed one by one."""
    for tail in range(pfn + 1, pfn + (1 << order)):
        page.set_page_refcounted(state.mem_map, tail)


# boot


def free_pages_memory(state: BuddyState, start: int, end: int) -> None:
    """mm/memblock.c __free_pages_memory: free [start, end) in the largest aligned blocks.

    Each block goes through __free_pages_core (its head gets the one reference that
    __free_pages drops); at boot the zone pagesets are boot_pageset (high 0, batch 1), so
    order-0 pages pass the pcp lists straight to free_one_page as well.
    """
    MAX_ORDER = state.layout.MAX_ORDER
    while start < end:
        order = min(MAX_ORDER - 1, ((start & -start).bit_length() - 1) if start else MAX_ORDER - 1)  # __ffs
        while start + (1 << order) > end:
            order -= 1
        page.set_page_refcounted(state.mem_map, start)
        if page.put_page_testzero(state.mem_map, start):
            free_pages_ok(state, start, order)
        start += 1 << order


def memblock_free_all(state: BuddyState) -> None:
    """mm/memblock.c memblock_free_all (free_all_bootmem before 5.0): every pageblock starts
    MIGRATE_MOVABLE (memmap_init_zone), then each free memblock range, cut at zone ends,
    goes to the buddy allocator."""
    layout = state.layout
    for pb in range(len(state.pageblock_migratetype)):
        state.pageblock_migratetype[pb] = MIGRATE_MOVABLE
    for start, end in layout.memory.free_mem_ranges():
        for info in layout.zones:
            lo, hi = max(start, info.zone_start_pfn), min(end, info.zone_end_pfn)
            if lo < hi:
                free_pages_memory(state, lo, hi)
