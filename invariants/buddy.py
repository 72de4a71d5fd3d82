"""Invariants of the buddy page allocator (model "buddy").

Each predicate takes the free lists, the per-CPU lists and the allocation registry as the
truth and checks the counters and struct page metadata against them. They run after every
step, so each zone's lists are walked once, into a summary that serves every state sharing them
(``_summary``), each predicate first asks whether anything is wrong with set, dict and big-int
operations over that walk, and a message is built only for what is wrong.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from itertools import chain, repeat
from typing import Any

from invariants import goal, invariant
from model.contract import Step
from model.mm.buddy import BuddyState
from model.mm.mmzone import MIGRATETYPE, WMARK_MIN, FreeArea, MemoryLayout, PerCpuPages, Zone

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
    zone_blocks: tuple[frozenset[tuple[int, int]], ...]  # zone_blocks[zone]: every (pfn, order) heads allows
    blocks: frozenset[tuple[int, int]]  # every (pfn, order) that heads allows in some zone
    # Sets of pages as the bits of an int: the unmanaged pages, and an order-n block at pfn 0.
    unmanaged_mask: int
    block_mask: tuple[int, ...]


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
    zone_blocks = tuple(
        frozenset((pfn, order) for order, pfns in enumerate(zone_heads) for pfn in pfns)
        for zone_heads in heads
    )
    static = _Static(
        frozenset(managed),
        tuple(absent),
        tuple(unmanaged),
        heads,
        zone_blocks,
        frozenset().union(*zone_blocks),
        sum(1 << pfn for pfn in range(memory.max_pfn) if pfn not in managed),
        tuple((1 << (1 << order)) - 1 for order in range(layout.MAX_ORDER)),
    )
    if len(_STATIC) >= 8:  # keep the layouts of the last few models only
        del _STATIC[next(iter(_STATIC))]
    _STATIC[id(layout)] = (layout, static)
    return static


def _mask(static: _Static, pfns: tuple[int, ...], orders: tuple[int, ...]) -> int:
    """The pages of the blocks (pfns[i], orders[i]), allowed blocks all, as the bits of an int."""
    return reduce(operator.or_, map(operator.lshift, map(static.block_mask.__getitem__, orders), pfns), 0)


class _FreeLists:
    """What one zone's free lists hold, and what the predicates ask of them alone, worked out
    once: free areas are immutable values that a state's clone shares until they change, so
    one walk serves every state that keeps them."""

    __slots__ = (
        "by_order",
        "listed",
        "pages",
        "pfns",
        "orders",
        "nr_free_agrees",
        "heads",
        "aligned",
        "has_free_buddies",
        "mask",
    )
    by_order: list[tuple[int, ...]]  # each order's pfns
    listed: list[int]  # blocks on each order's lists
    nr_free_agrees: bool
    pfns: tuple[int, ...]  # every listed pfn, by order,
    orders: tuple[int, ...]  # and its order
    pages: int
    heads: dict[int, int]  # pfn -> order (the later listing of a pfn listed twice)
    aligned: bool  # every block is one the zone allows, at its order
    has_free_buddies: bool  # two free buddies of the same order below MAX_ORDER-1 are listed
    mask: int | None  # the blocks' pages, when they are allowed blocks (so inside memory) that do not overlap

    def __init__(self, layout: MemoryLayout, static: _Static, z: int, free_area: list[FreeArea]) -> None:
        self.by_order = by_order = [sum(area.free_list, ()) for area in free_area]
        self.listed = listed = list(map(len, by_order))
        self.nr_free_agrees = [area.nr_free for area in free_area] == listed
        self.pfns = sum(by_order, ())
        if not self.pfns:  # as in many a zone of a small machine
            self.orders, self.pages, self.heads = (), 0, {}
            self.aligned, self.has_free_buddies, self.mask = True, False, 0
            return
        self.orders = tuple(order for order, pfns in enumerate(by_order) for _ in pfns)
        self.pages = sum(map(operator.lshift, listed, range(len(listed))))
        self.heads = dict(self.listing())
        self.aligned = static.zone_blocks[z].issuperset(self.listing())
        self.has_free_buddies = any(
            len(pfns) > 1 and not set(pfns).isdisjoint(map((1 << order).__xor__, pfns))
            for order, pfns in enumerate(by_order[: layout.MAX_ORDER - 1])
        )
        self.mask = None
        if self.aligned:
            mask = _mask(static, self.pfns, self.orders)
            if mask.bit_count() == self.pages:
                self.mask = mask

    def listing(self) -> Iterator[tuple[int, int]]:
        """(pfn, order) of every listed block, in listing order."""
        return zip(self.pfns, self.orders, strict=True)


class _PcpLists:
    """What one zone's per-CPU lists hold, worked out once, as for free areas: the lists are
    immutable values too."""

    __slots__ = ("lists", "listed", "pfns", "aligned", "mask")
    lists: list[tuple[tuple[int, ...], ...]]  # each CPU's lists, as walked
    listed: list[int]  # pages on each CPU's lists
    pfns: tuple[int, ...]  # every pfn on them
    aligned: bool  # every page is one the zone allows as an order-0 block
    mask: int | None  # the pages, when they are managed and distinct

    def __init__(self, static: _Static, z: int, lists: list[tuple[tuple[int, ...], ...]]) -> None:
        self.lists = lists
        on_cpu = [sum(cpu_lists, ()) for cpu_lists in lists]
        self.listed = list(map(len, on_cpu))
        self.pfns = sum(on_cpu, ())
        self.aligned = static.heads[z][0].issuperset(self.pfns)
        self.mask = None
        if static.managed.issuperset(self.pfns):
            mask = reduce(operator.or_, map(operator.lshift, repeat(1), self.pfns), 0)
            if mask.bit_count() == len(self.pfns):
                self.mask = mask


class _Registry:
    """What the allocation registry holds, worked out once: states share the tuple until an
    allocation or a free replaces it."""

    __slots__ = ("allocated", "pfns", "aligned", "pages", "mask")
    allocated: tuple[tuple[int, int], ...]
    pfns: set[int]  # the head of every allocated block
    aligned: bool  # every block is one some zone allows
    # the blocks' pages, counted and as a set, when they are allowed blocks (so inside memory)
    pages: int
    mask: int | None

    def __init__(self, static: _Static, allocated: tuple[tuple[int, int], ...]) -> None:
        self.allocated = allocated
        pfns, orders = zip(*allocated, strict=True) if allocated else ((), ())
        self.pfns = set(pfns)
        self.aligned = static.blocks.issuperset(allocated)
        self.pages = 0
        self.mask = None
        if self.aligned:
            self.pages = sum(map(operator.lshift, repeat(1), orders))
            self.mask = _mask(static, pfns, orders)


_free_area = operator.attrgetter("free_area")
_pageset = operator.attrgetter("pageset")
_lists = operator.attrgetter("lists")


@dataclass(slots=True, eq=False)
class _Summary:
    """What the lists of a state hold, zone by zone, and the registry it was taken with."""

    layout: MemoryLayout
    registry: _Registry
    free: list[_FreeLists]  # free[zone]
    pcp: list[_PcpLists]  # pcp[zone]
    # Unpopulated zones have no pages to list (zone_of_pfn never names them), so the predicates
    # leave them out; only buddy.alignment reads their free lists.
    zones: list[int]  # indexes of the populated zones
    # What was walked, in the shape a state holds it: comparing that with a state's is cheap
    # (identical immutable values compare at once) and tells whether that state, even one
    # changed in place since, still has these lists.
    free_areas: list[list[FreeArea]]
    pagesets: list[list[PerCpuPages]]
    pcps: list[PerCpuPages]  # every per_cpu_pages, zone by zone
    pcp_lists: list[tuple[tuple[int, ...], ...]]  # and its lists

    def describes(self, state: BuddyState) -> bool:
        return (
            state.layout is self.layout
            and state.allocated == self.registry.allocated
            and list(map(_free_area, state.zones)) == self.free_areas
            and list(map(_pageset, state.zones)) == self.pagesets
            and list(map(_lists, self.pcps)) == self.pcp_lists
        )


_LAST: list[_Summary] = []  # the summary of the state checked last


def _summary(state: BuddyState) -> _Summary:
    last = _LAST[0] if _LAST else None
    if last is not None and last.describes(state):
        return last
    layout = state.layout
    static = _static(layout)
    free_areas = [zone.free_area[:] for zone in state.zones]
    pagesets = [zone.pageset[:] for zone in state.zones]
    zone_lists = [list(map(_lists, pageset)) for pageset in pagesets]
    # Only what changed since the last summary is walked again.
    was = last if last is not None and last.layout is layout and len(last.free) == len(free_areas) else None
    free = [
        was.free[z]
        if was is not None and was.free_areas[z] == free_area
        else _FreeLists(layout, static, z, free_area)
        for z, free_area in enumerate(free_areas)
    ]
    pcp = [
        was.pcp[z] if was is not None and was.pcp[z].lists == lists else _PcpLists(static, z, lists)
        for z, lists in enumerate(zone_lists)
    ]
    if was is not None and was.registry.allocated == state.allocated:
        registry = was.registry
    else:
        registry = _Registry(static, state.allocated)
    summary = _Summary(
        layout,
        registry,
        free,
        pcp,
        [z for z, lists in enumerate(zone_lists) if lists],
        free_areas,
        pagesets,
        list(chain.from_iterable(pagesets)),
        list(chain.from_iterable(zone_lists)),
    )
    _LAST[:] = [summary]
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
    zone_of_pfn = state.layout.zone_of_pfn
    allocated_pages = dict.fromkeys(summary.zones, 0)  # zone -> pages in allocated blocks headed there
    for pfn, order in state.allocated:
        z = zone_of_pfn[pfn] if 0 <= pfn < len(zone_of_pfn) else -1
        if z in allocated_pages:
            allocated_pages[z] += 1 << order
    out = []
    for z in summary.zones:
        free, pcp, allocated = summary.free[z].pages, sum(summary.pcp[z].listed), allocated_pages[z]
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
        if summary.free[z].nr_free_agrees:
            continue
        listed = summary.free[z].listed
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
        f"but its free lists hold {_count(summary.free[z].pages, 'page')}"
        for z in summary.zones
        if state.zones[z].nr_free_pages != summary.free[z].pages
    ]


def _aligned(summary: _Summary) -> bool:
    """The fast test: every listed pfn is an allowed head for its zone and order."""
    return (
        all(part.aligned for part in summary.free)
        and all(summary.pcp[z].aligned for z in summary.zones)
        and summary.registry.aligned
    )


@invariant(
    "buddy.alignment",
    model=MODEL,
    statement="Every free, per-CPU and allocated block has 0 <= order < MAX_ORDER, starts on a multiple "
    "of 2^order and lies inside its zone's span, on present memory.",
    source="mm/page_alloc.c __free_one_page (VM_BUG_ON_PAGE(pfn & ((1 << order) - 1))), bad_range, expand",
)
def alignment(state: BuddyState) -> list[str]:
    static = _static(state.layout)
    if _aligned(_summary(state)):
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
    spans = [(pfn, order, _FREE, z, -1) for z in summary.zones for pfn, order in summary.free[z].listing()]
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
    if any(summary.pcp[z].pfns for z in summary.zones):
        out.extend(_pcp_overlaps(state, static, covered, spans))
    return out


def _partitioned(state: BuddyState, static: _Static, summary: _Summary) -> bool:
    """The fast test, on sets of pages as the bits of an int: blocks are ones some zone allows
    (so inside memory), never overlap and touch no unmanaged page; per-CPU pages are managed,
    distinct and outside every block."""
    registry = summary.registry
    free = [summary.free[z].mask for z in summary.zones]
    pcp = [summary.pcp[z].mask for z in summary.zones]
    if registry.mask is None or None in free or None in pcp:
        return False
    blocks = reduce(operator.or_, free, registry.mask)
    pages = registry.pages + sum(summary.free[z].pages for z in summary.zones)
    pcp_pages = reduce(operator.or_, pcp, 0)
    return (
        blocks.bit_count() == pages
        and not blocks & static.unmanaged_mask
        and pcp_pages.bit_count() == sum(len(summary.pcp[z].pfns) for z in summary.zones)
        and not pcp_pages & blocks
    )


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
    if not any(summary.free[z].has_free_buddies for z in summary.zones):
        return []
    out = []
    for z in summary.zones:
        free = set(summary.free[z].listing())
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
        heads.update(summary.free[z].heads)
    allocated = summary.registry.pfns
    if (
        mem_map.buddy.keys() == heads.keys()
        and mem_map.private == {pfn: order for pfn, order in heads.items() if order}
        and mem_map.refcount.keys() == allocated
        and min(mem_map.refcount.values(), default=1) >= 1
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
        pageset = state.zones[z].pageset
        if [pcp.count for pcp in pageset] == summary.pcp[z].listed:
            continue
        for cpu, (pcp, listed) in enumerate(zip(pageset, summary.pcp[z].listed, strict=True)):
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


def _free_pages(zone: Zone) -> int:
    """The pages on a zone's free lists. The transition invariants read a zone or two, mostly of
    states the state invariants never see (the explorer checks every edge into a known state),
    so they walk those zones rather than summarise the whole state."""
    return sum(len(lst) << order for order, area in enumerate(zone.free_area) for lst in area.free_list)


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
    out = []
    for pfn, _order in set(after.allocated) - set(before.allocated):
        z = layout.zone_of_pfn[pfn] if 0 <= pfn < len(layout.zone_of_pfn) else -1
        if z < 0 or not after.zones[z].pageset:  # outside every populated zone
            continue
        free = _free_pages(after.zones[z])
        if free < _floor(layout, z, cpu):
            out.append(
                f"order-{order} allocation of pfn {pfn} left zone {layout.zone_label(z)} with "
                f"{_count(free, 'free page')}, below min watermark + lowmem_reserve = "
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
    out = []
    for z, zone in enumerate(after.zones):
        held = sum(len(lst) for pcp in zone.pageset for lst in pcp.lists)
        if held:
            out.append(
                f"alloc_pages failed with {_count(held, 'page')} still on zone {layout.zone_label(z)}'s per-cpu lists"
            )
    for z in layout.cpu_zonelist(cpu):
        zone = after.zones[z]
        free = _free_pages(zone)
        has_block = any(any(area.free_list) for area in zone.free_area[order:])
        if free - ((1 << order) - 1) > _floor(layout, z, cpu) and has_block:
            out.append(
                f"alloc_pages(order={order}) on cpu {cpu} returned NULL though zone {layout.zone_label(z)} has "
                f"{_count(free, 'free page')}, above min watermark + lowmem_reserve = {_floor(layout, z, cpu)}, "
                f"and a free block of order >= {order}"
            )
    return out


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.


def _zone_free_blocks(state: BuddyState, z: int, order: int) -> bool:
    return any(any(area.free_list) for area in state.zones[z].free_area[order:])


@goal(
    "buddy.fallback_steal",
    model=MODEL,
    statement="An allocation falls back to another migratetype and steals a pageblock for its own.",
    transition=True,
)
def fallback_steal(before: BuddyState, step: Step, after: BuddyState) -> bool:
    return step.action == "alloc_pages" and before.pageblock_migratetype != after.pageblock_migratetype


@goal(
    "buddy.zonelist_fallback",
    model=MODEL,
    statement="An allocation is served by a zone after the first of its CPU's zonelist.",
    transition=True,
)
def zonelist_fallback(before: BuddyState, step: Step, after: BuddyState) -> bool:
    request = _alloc_request(step)
    if request is None:
        return False
    layout = after.layout
    first = layout.cpu_zonelist(request[2])[0]
    return any(layout.zone_of_pfn[pfn] != first for pfn, _ in set(after.allocated) - set(before.allocated))


@goal(
    "buddy.watermark_refusal",
    model=MODEL,
    statement="alloc_pages returns NULL while a zone of its zonelist still has a free block of the "
    "order asked for: the watermark refused it.",
    transition=True,
    engines=("explore",),  # the large machine's random runs do not come near its watermarks
)
def watermark_refusal(before: BuddyState, step: Step, after: BuddyState) -> bool:
    request = _alloc_request(step)
    if request is None or len(after.allocated) != len(before.allocated):
        return False
    order, _, cpu = request
    return any(_zone_free_blocks(after, z, order) for z in after.layout.cpu_zonelist(cpu))


@goal(
    "buddy.pcp_drained_by_reclaim",
    model=MODEL,
    statement="Direct reclaim drains a per-CPU list holding two or more pages before the last try.",
    transition=True,
    engines=("explore",),  # as buddy.watermark_refusal: only a full machine enters direct reclaim
)
def pcp_drained_by_reclaim(before: BuddyState, step: Step, after: BuddyState) -> bool:
    return step.action == "alloc_pages" and any(
        was.count >= 2 and now.count == 0
        for old, new in zip(before.zones, after.zones, strict=True)
        for was, now in zip(old.pageset, new.pageset, strict=True)
    )


@goal(
    "buddy.merge_to_max_order",
    model=MODEL,
    statement="Freeing a smaller block merges buddies up to a free block of order MAX_ORDER-1.",
    transition=True,
)
def merge_to_max_order(before: BuddyState, step: Step, after: BuddyState) -> bool:
    top = after.layout.MAX_ORDER - 1
    if not (step.action == "drain_pages" or (step.action == "free_pages" and step.args[1] < top)):
        return False
    return any(
        new.free_area[top].nr_free > old.free_area[top].nr_free
        for old, new in zip(before.zones, after.zones, strict=True)
    )
