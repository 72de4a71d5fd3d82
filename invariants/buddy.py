"""Invariants of the buddy page allocator (model "buddy").

Each predicate takes the free lists, the per-CPU lists and the allocation registry as the
truth and checks the counters and struct page metadata against them. They run after every
step, so the lists are walked once per state (``_summary``, shared by all predicates) and a
message is built only for what is wrong.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from invariants import invariant
from model.contract import Step
from model.mm.buddy import BuddyState
from model.mm.mmzone import MIGRATETYPE, WMARK_MIN, MemoryLayout

MODEL = "buddy"

# Where a block was found: on a free list, on a per-CPU list, or in the allocation registry.
_FREE, _PCP, _ALLOCATED = 0, 1, 2

Block = tuple[int, int, int, int, int]  # (pfn, order, where, zone index or -1, cpu or -1)


@dataclass(frozen=True)
class _Static:
    """Facts about a layout, computed once: where blocks may lie, and prefix counts over pfns."""

    managed: frozenset[int]  # the pfns the buddy allocator manages
    absent_below: tuple[int, ...]  # hole pfns in [0, pfn)
    unmanaged_below: tuple[int, ...]  # unmanaged pfns in [0, pfn)
    heads: tuple[tuple[frozenset[int], ...], ...]  # heads[zone][order]: where a block may start
    blocks: frozenset[tuple[int, int]]  # every (pfn, order) that heads allows in some zone


_STATIC: dict[int, tuple[MemoryLayout, _Static]] = {}


def _static(layout: MemoryLayout) -> _Static:
    found = _STATIC.get(id(layout))
    if found is not None and found[0] is layout:
        return found[1]
    memory = layout.memory
    absent, unmanaged, managed = [0], [0], set()
    for pfn in range(memory.max_pfn):
        present = memory.pfn_present(pfn)
        if present and not memory.pfn_reserved(pfn) and layout.zone_of_pfn[pfn] >= 0:
            managed.add(pfn)
        absent.append(absent[-1] + (not present))
        unmanaged.append(unmanaged[-1] + (pfn not in managed))
    heads = tuple(
        tuple(
            frozenset(
                pfn
                for pfn in range(info.zone_start_pfn, info.zone_end_pfn - (1 << order) + 1)
                if not pfn & ((1 << order) - 1) and absent[pfn + (1 << order)] == absent[pfn]
            )
            for order in range(layout.MAX_ORDER)
        )
        for info in layout.zones
    )
    blocks = frozenset(
        (pfn, order) for zone_heads in heads for order, pfns in enumerate(zone_heads) for pfn in pfns
    )
    static = _Static(frozenset(managed), tuple(absent), tuple(unmanaged), heads, blocks)
    if len(_STATIC) >= 8:  # keep the layouts of the last few models only
        del _STATIC[next(iter(_STATIC))]
    _STATIC[id(layout)] = (layout, static)
    return static


@dataclass
class _Summary:
    """What the lists of a state hold, walked once. Unpopulated zones have no pages to list
    (zone_of_pfn never names them), so they are left out."""

    zones: list[int]  # indexes of the populated zones
    free: dict[int, list[tuple[int, int]]]  # zone -> (pfn, order) of its free blocks
    free_pages: dict[int, int]  # zone -> pages on its free lists
    listed: dict[int, list[int]]  # zone -> blocks on the lists of each order
    pcp_listed: dict[int, list[int]]  # zone -> pages on each CPU's lists
    pcp_pages: list[int]  # every pfn on a per-CPU list
    allocated_pages: dict[int, int]  # zone -> pages in allocated blocks headed there


# The last state's summary, keyed by what it was computed from. Free areas, per-CPU lists and
# the registry are immutable values that states replace, so the key is cheap to take and to
# compare (identical objects compare at once), and it tells whether a state, even one changed
# in place, still has the same lists.
_LAST: list[Any] = [None, None]


def _summary(state: BuddyState) -> _Summary:
    key = (
        state.layout,
        state.allocated,
        [(tuple(zone.free_area), [(pcp.count, pcp.lists) for pcp in zone.pageset]) for zone in state.zones],
    )
    if _LAST[0] is not None and _LAST[0] == key:
        return _LAST[1]
    zones = [z for z, zone in enumerate(state.zones) if zone.pageset]
    free: dict[int, list[tuple[int, int]]] = {}
    free_pages: dict[int, int] = {}
    listed: dict[int, list[int]] = {}
    pcp_listed: dict[int, list[int]] = {}
    pcp_pages: list[int] = []
    for z in zones:
        zone = state.zones[z]
        blocks: list[tuple[int, int]] = []
        counts = []
        pages = 0
        for order, area in enumerate(zone.free_area):
            if not any(area.free_list):
                counts.append(0)
                continue
            n = 0
            for lst in area.free_list:
                n += len(lst)
                blocks.extend(zip(lst, repeat(order)))
            counts.append(n)
            pages += n << order
        free[z], free_pages[z], listed[z] = blocks, pages, counts
        on_cpu = []
        for pcp in zone.pageset:
            n = 0
            for lst in pcp.lists:
                if lst:
                    n += len(lst)
                    pcp_pages.extend(lst)
            on_cpu.append(n)
        pcp_listed[z] = on_cpu
    zone_of_pfn = state.layout.zone_of_pfn
    allocated_pages = dict.fromkeys(zones, 0)
    for pfn, order in state.allocated:
        z = zone_of_pfn[pfn] if 0 <= pfn < len(zone_of_pfn) else -1
        if z in allocated_pages:
            allocated_pages[z] += 1 << order
    summary = _Summary(zones, free, free_pages, listed, pcp_listed, pcp_pages, allocated_pages)
    _LAST[0], _LAST[1] = key, summary
    return summary


def _blocks(state: BuddyState, pcp: bool = True) -> list[Block]:
    """Every free block, per-CPU page (unless pcp is false) and allocated block, for diagnosis."""
    out: list[Block] = []
    for z, zone in enumerate(state.zones):
        for order, area in enumerate(zone.free_area):
            for lst in area.free_list:
                out.extend((pfn, order, _FREE, z, -1) for pfn in lst)
        if pcp:
            for cpu, pageset in enumerate(zone.pageset):
                for lst in pageset.lists:
                    out.extend((pfn, 0, _PCP, z, cpu) for pfn in lst)
    zone_of_pfn = state.layout.zone_of_pfn
    nr_pages = len(zone_of_pfn)
    out.extend(
        (pfn, order, _ALLOCATED, zone_of_pfn[pfn] if 0 <= pfn < nr_pages else -1, -1)
        for pfn, order in state.allocated
    )
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _where(layout: MemoryLayout, block: Block) -> str:
    """A block as violations name it: by the list that holds it, or as allocated."""
    pfn, order, where, z, cpu = block
    if where == _FREE:
        return f"free block pfn {pfn} order {order} on zone {layout.zone_label(z)} free_area[{order}]"
    if where == _PCP:
        return f"pfn {pfn} on cpu {cpu}'s zone {layout.zone_label(z)} pcp list"
    return f"allocated block pfn {pfn} order {order}"


@invariant(
    "buddy.conservation",
    model=MODEL,
    statement="In every zone, free pages plus per-CPU pages plus allocated pages equal managed_pages.",
    source="include/linux/mmzone.h struct zone (managed_pages); mm/page_alloc.c __free_one_page, rmqueue",
)
def conservation(state: BuddyState) -> list[str]:
    summary = _summary(state)
    out = []
    for z in summary.zones:
        free, pcp, allocated = summary.free_pages[z], sum(summary.pcp_listed[z]), summary.allocated_pages[z]
        managed = state.zones[z].info.managed_pages
        if free + pcp + allocated != managed:
            out.append(
                f"zone {state.layout.zone_label(z)}: {free} free + {pcp} per-cpu + {allocated} allocated pages "
                f"!= managed_pages {managed}"
            )
    return out


@invariant(
    "buddy.nr_free",
    model=MODEL,
    statement="free_area[order].nr_free equals the number of blocks on that order's free lists.",
    source="mm/page_alloc.c add_to_free_list, del_page_from_free_list",
)
def nr_free(state: BuddyState) -> list[str]:
    summary = _summary(state)
    out = []
    for z in summary.zones:
        listed = summary.listed[z]
        for order, area in enumerate(state.zones[z].free_area):
            if area.nr_free != listed[order]:
                out.append(
                    f"zone {state.layout.zone_label(z)} free_area[{order}].nr_free is {area.nr_free} "
                    f"but its free lists hold {_count(listed[order], 'block')}"
                )
    return out


@invariant(
    "buddy.nr_free_pages",
    model=MODEL,
    statement="The zone's NR_FREE_PAGES counter equals the pages on its free lists.",
    source="include/linux/vmstat.h __mod_zone_freepage_state; mm/page_alloc.c rmqueue_bulk",
)
def nr_free_pages(state: BuddyState) -> list[str]:
    summary = _summary(state)
    return [
        f"zone {state.layout.zone_label(z)} NR_FREE_PAGES is {state.zones[z].nr_free_pages} "
        f"but its free lists hold {_count(summary.free_pages[z], 'page')}"
        for z in summary.zones
        if state.zones[z].nr_free_pages != summary.free_pages[z]
    ]


def _aligned(state: BuddyState, static: _Static) -> bool:
    """The fast test: every listed pfn is an allowed head for its zone and order."""
    for z, zone in enumerate(state.zones):
        heads = static.heads[z]
        for order, area in enumerate(zone.free_area):
            for lst in area.free_list:
                if lst and not heads[order].issuperset(lst):
                    return False
        for pcp in zone.pageset:
            for lst in pcp.lists:
                if lst and not heads[0].issuperset(lst):
                    return False
    return static.blocks.issuperset(state.allocated)


@invariant(
    "buddy.alignment",
    model=MODEL,
    statement="Every free, per-CPU and allocated block has 0 <= order < MAX_ORDER, starts on a multiple "
    "of 2^order and lies inside its zone's span, on present memory.",
    source="mm/page_alloc.c __free_one_page (VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))), bad_range, expand",
)
def alignment(state: BuddyState) -> list[str]:
    static = _static(state.layout)
    if _aligned(state, static):
        return []
    layout = state.layout
    absent = static.absent_below
    out = []
    for block in _blocks(state):
        pfn, order, _, z, _ = block
        if z < 0:
            out.append(f"{_where(layout, block)} is outside every zone")
            continue
        info = layout.zones[z]
        start, end = info.zone_start_pfn, info.zone_end_pfn
        size = 1 << order if order >= 0 else 0
        if not 0 <= order < layout.MAX_ORDER:
            out.append(
                f"{_where(layout, block)} has order {order}, outside 0..MAX_ORDER-1 ({layout.MAX_ORDER - 1})"
            )
        elif pfn & (size - 1):
            out.append(f"{_where(layout, block)} is not aligned to its {size} pages")
        elif not start <= pfn <= end - size:
            out.append(f"{_where(layout, block)} lies outside zone {layout.zone_label(z)} [{start}, {end})")
        elif absent[pfn + size] != absent[pfn]:
            hole = next(p for p in range(pfn, pfn + size) if absent[p + 1] != absent[p])
            out.append(f"{_where(layout, block)} covers the hole at pfn {hole}")
    return out


@invariant(
    "buddy.partition",
    model=MODEL,
    statement="Free blocks, per-CPU pages and allocated blocks are pairwise disjoint and cover only managed pages.",
    source="mm/page_alloc.c free_pages_check, check_new_page (a page is never both free and in use)",
)
def partition(state: BuddyState) -> list[str]:
    layout = state.layout
    static = _static(layout)
    summary = _summary(state)
    if _partitioned(state, static, summary):
        return []
    unmanaged = static.unmanaged_below
    nr_pages = len(unmanaged) - 1
    # Free and allocated blocks, in pfn order: each must start at or after the furthest end so far.
    spans = [(pfn, order, _FREE, z, -1) for z in summary.zones for pfn, order in summary.free[z]]
    spans.extend((pfn, order, _ALLOCATED, -1, -1) for pfn, order in state.allocated)
    spans.sort()
    covered = bytearray(nr_pages)
    out = []
    reach, holder = -1, None
    for block in spans:
        pfn, order = block[0], block[1]
        end = min(pfn + (1 << order), nr_pages) if order >= 0 else pfn
        if pfn < 0 or pfn >= end:
            continue  # outside memory altogether: buddy.alignment reports it
        if unmanaged[end] != unmanaged[pfn]:
            bad = next(p for p in range(pfn, end) if p not in static.managed)
            out.append(f"pfn {bad} is not managed by the buddy allocator but is in {_where(layout, block)}")
        if pfn < reach and holder is not None:
            out.append(f"pfn {pfn} is both in {_where(layout, holder)} and in {_where(layout, block)}")
        if end > reach:
            reach, holder = end, block
        covered[pfn:end] = b"\x01" * (end - pfn)
    if summary.pcp_pages:
        out.extend(_pcp_overlaps(state, static, covered, spans))
    return out


def _partitioned(state: BuddyState, static: _Static, summary: _Summary) -> bool:
    """The fast test: sorted blocks never overlap or touch unmanaged pages, and per-CPU pages
    are distinct, managed and outside every block."""
    unmanaged = static.unmanaged_below
    nr_pages = len(unmanaged) - 1
    spans = [(pfn, pfn + (1 << order)) for z in summary.zones for pfn, order in summary.free[z]]
    spans.extend((pfn, pfn + (1 << order) if order >= 0 else pfn) for pfn, order in state.allocated)
    spans.sort()
    reach = 0
    for pfn, end in spans:
        if pfn < reach or end > nr_pages or end <= pfn or unmanaged[end] != unmanaged[pfn]:
            return False
        reach = end
    pcp_pages = summary.pcp_pages
    if not pcp_pages:
        return True
    if len(set(pcp_pages)) != len(pcp_pages) or not static.managed.issuperset(pcp_pages):
        return False
    covered = bytearray(nr_pages)
    for pfn, end in spans:
        covered[pfn:end] = b"\x01" * (end - pfn)
    return not _any_covered(covered, pcp_pages)


def _any_covered(covered: bytearray, pfns: list[int]) -> bool:
    """Whether any of pfns (all managed, so inside memory) is marked in covered."""
    if len(pfns) == 1:
        return bool(covered[pfns[0]])
    return any(operator.itemgetter(*pfns)(covered))


def _pcp_overlaps(state: BuddyState, static: _Static, covered: bytearray, spans: list[Block]) -> list[str]:
    """The slow diagnosis of per-CPU pages that are listed twice, unmanaged or inside a block."""
    layout = state.layout
    out = []
    seen: dict[int, Block] = {}
    for block in _blocks(state):
        pfn = block[0]
        if block[2] != _PCP:
            continue
        if pfn not in static.managed:
            out.append(f"pfn {pfn} is not managed by the buddy allocator but is {_where(layout, block)}")
        elif covered[pfn]:
            holder = next(b for b in spans if b[0] <= pfn < b[0] + (1 << b[1]))
            out.append(f"pfn {pfn} is both in {_where(layout, holder)} and {_where(layout, block)}")
        if pfn in seen:
            out.append(f"pfn {pfn} is both {_where(layout, seen[pfn])} and {_where(layout, block)}")
        seen[pfn] = block
    return out


@invariant(
    "buddy.fully_coalesced",
    model=MODEL,
    statement="No two free buddies of the same order below MAX_ORDER-1 sit on a zone's free lists: "
    "freeing always merges them.",
    source="mm/page_alloc.c __free_one_page, page_is_buddy",
)
def fully_coalesced(state: BuddyState) -> list[str]:
    top = state.layout.MAX_ORDER - 1
    summary = _summary(state)
    out = []
    for z in summary.zones:
        free = set(summary.free[z])
        for pfn, order in free:
            buddy = pfn ^ (1 << order)
            if order < top and buddy > pfn and (buddy, order) in free:
                out.append(
                    f"pfn {pfn} order {order} and its buddy pfn {buddy} order {order} are both free "
                    f"on free_area[{order}] of zone {state.layout.zone_label(z)}"
                )
    return sorted(out)


@invariant(
    "buddy.page_metadata",
    model=MODEL,
    statement="PageBuddy is set, with page_private = order, exactly on the heads of free blocks; an allocated "
    "block's head has _refcount >= 1 and every other page 0: free pages, per-CPU pages and the tail pages "
    "of an allocated block (split_page turns a block into order-0 blocks).",
    source="mm/page_alloc.c set_page_order/rmv_page_order, free_pages_check, prep_new_page, split_page",
)
def page_metadata(state: BuddyState) -> list[str]:
    mem_map = state.mem_map
    summary = _summary(state)
    heads: dict[int, int] = {}
    for z in summary.zones:
        heads.update(summary.free[z])
    allocated = {pfn for pfn, _ in state.allocated}
    if (
        mem_map.buddy.keys() == heads.keys()
        and mem_map.private == {pfn: order for pfn, order in heads.items() if order}
        and mem_map.refcount.keys() == allocated
        and all(count >= 1 for count in mem_map.refcount.values())
    ):
        return []
    out = []
    for pfn, order in sorted(heads.items()):
        if pfn not in mem_map.buddy:
            out.append(f"pfn {pfn} heads a free order-{order} block but is not PageBuddy")
        elif mem_map.private.get(pfn, 0) != order:
            out.append(
                f"pfn {pfn} heads a free order-{order} block but its page_private order is {mem_map.private.get(pfn, 0)}"
            )
    for pfn in sorted(mem_map.buddy.keys() - heads.keys()):
        out.append(f"pfn {pfn} is PageBuddy (order {mem_map.private.get(pfn, 0)}) but heads no free block")
    for pfn in sorted(mem_map.private.keys() - mem_map.buddy.keys()):
        out.append(f"pfn {pfn} is not PageBuddy but its page_private is {mem_map.private[pfn]}")
    for pfn, order in state.allocated:
        if mem_map.refcount.get(pfn, 0) < 1:
            out.append(
                f"allocated block pfn {pfn} order {order} has _refcount {mem_map.refcount.get(pfn, 0)} on its head page"
            )
    blocks = _blocks(state)
    for pfn in sorted(mem_map.refcount.keys() - allocated):
        holder = next((b for b in blocks if b[0] <= pfn < b[0] + (1 << b[1])), None)
        what = _where(state.layout, holder) if holder else "no block"
        out.append(f"pfn {pfn} has _refcount {mem_map.refcount[pfn]} but lies in {what}, where it must be 0")
    return out


@invariant(
    "buddy.pcp_count",
    model=MODEL,
    statement="Each per_cpu_pages count equals the number of pages on its lists.",
    source="mm/page_alloc.c rmqueue_pcplist, free_unref_page, free_pcppages_bulk",
)
def pcp_count(state: BuddyState) -> list[str]:
    summary = _summary(state)
    out = []
    for z in summary.zones:
        for cpu, (pcp, listed) in enumerate(zip(state.zones[z].pageset, summary.pcp_listed[z], strict=True)):
            if pcp.count != listed:
                out.append(
                    f"cpu {cpu}'s zone {state.layout.zone_label(z)} per_cpu_pages count is {pcp.count} "
                    f"but its lists hold {_count(listed, 'page')}"
                )
    return out


def _alloc_request(step: Any) -> tuple[int, int, int] | None:
    """(order, migratetype, cpu) of an alloc_pages step; None for other actions."""
    if step.action != "alloc_pages":
        return None
    order, migratetype, cpu = step.args
    return order, MIGRATETYPE[migratetype], cpu


def _floor(layout: MemoryLayout, z: int, cpu: int) -> int:
    """The zone's min watermark plus its lowmem_reserve against cpu's classzone."""
    info = layout.zones[z]
    return info.watermark[WMARK_MIN] + info.lowmem_reserve[layout.classzone_idx(cpu)]


@invariant(
    "buddy.watermark",
    model=MODEL,
    statement="An allocation of order > 0 (served from the free areas) never leaves its zone with fewer "
    "free pages than the min watermark plus lowmem_reserve for the request's classzone.",
    source="mm/page_alloc.c get_page_from_freelist, __zone_watermark_ok",
    transition=True,
)
def watermark(before: BuddyState, step: Step, after: BuddyState) -> list[str]:
    request = _alloc_request(step)
    if request is None or request[0] == 0 or len(after.allocated) == len(before.allocated):
        return []
    order, _, cpu = request
    layout = after.layout
    summary = _summary(after)
    out = []
    for pfn, _order in set(after.allocated) - set(before.allocated):
        z = layout.zone_of_pfn[pfn] if 0 <= pfn < len(layout.zone_of_pfn) else -1
        if z in summary.free_pages and summary.free_pages[z] < _floor(layout, z, cpu):
            out.append(
                f"order-{order} allocation of pfn {pfn} left zone {layout.zone_label(z)} with "
                f"{_count(summary.free_pages[z], 'free page')}, below min watermark + lowmem_reserve = "
                f"{_floor(layout, z, cpu)}"
            )
    return out


@invariant(
    "buddy.alloc_failure",
    model=MODEL,
    statement="alloc_pages returns NULL only after draining every per-CPU list, when no zone of the "
    "zonelist passes its min watermark with a free block of the requested order.",
    source="mm/page_alloc.c __alloc_pages_slowpath, __alloc_pages_direct_reclaim, __zone_watermark_ok",
    transition=True,
)
def alloc_failure(before: BuddyState, step: Step, after: BuddyState) -> list[str]:
    request = _alloc_request(step)
    if request is None or len(after.allocated) != len(before.allocated):
        return []
    order, _, cpu = request
    layout = after.layout
    summary = _summary(after)
    out = []
    for z in summary.zones:
        held = sum(summary.pcp_listed[z])
        if held:
            out.append(
                f"alloc_pages failed with {_count(held, 'page')} still on zone {layout.zone_label(z)}'s per-cpu lists"
            )
    for z in layout.cpu_zonelist(cpu):
        free = summary.free_pages[z]
        has_block = any(summary.listed[z][order:])
        if free - ((1 << order) - 1) > _floor(layout, z, cpu) and has_block:
            out.append(
                f"alloc_pages(order={order}) on cpu {cpu} returned NULL though zone {layout.zone_label(z)} has "
                f"{_count(free, 'free page')}, above min watermark + lowmem_reserve = {_floor(layout, z, cpu)}, "
                f"and a free block of order >= {order}"
            )
    return out
