"""The buddy page allocator as a model: state, config, profiles and actions.

Requests are GFP_KERNEL-class: the migratetype argument stands for the mobility bits of
the gfp mask (MIGRATE_UNMOVABLE: GFP_KERNEL; MIGRATE_RECLAIMABLE: GFP_KERNEL |
__GFP_RECLAIMABLE; MIGRATE_MOVABLE: GFP_HIGHUSER_MOVABLE, which is ZONE_NORMAL on x86-64
without ZONE_MOVABLE). gfp_zone() is therefore ZONE_NORMAL for every request, and
alloc_pages walks the CPU's node zonelist Normal -> DMA32 -> DMA, then the other nodes'.
Each request may enter direct reclaim (__GFP_DIRECT_RECLAIM), which here reclaims nothing
and drains the per-CPU lists before the allocation gives up and returns NULL.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from model.contract import Model, action
from model.hw.memory import MemoryRange, PhysicalMemory
from model.mm import page_alloc
from model.mm.mmzone import (
    EMPTY_FREE_AREA,
    MAX_NR_ZONES,
    MIGRATE_PCPTYPES,
    MIGRATETYPE,
    MIGRATETYPE_NAMES,
    MemoryLayout,
    PerCpuPages,
    Zone,
    free_area_init,
)
from model.mm.page import PageFrames


@dataclass(frozen=True)
class BuddyConfig:
    """The machine and the allocator's tunables. Spans are real kernel spans scaled down."""

    MAX_ORDER: int = 11
    pageblock_order: int = 9  # HUGETLB_PAGE_ORDER on x86-64
    # e820 usable RAM as (start_pfn, end_pfn, nid): the defaults keep the 640 KiB-1 MiB hole
    ram: tuple[tuple[int, int, int], ...] = ((0, 159, 0), (256, 4096, 0))
    reserved: tuple[tuple[int, int], ...] = ((0, 1),)  # memblock.reserved [start_pfn, end_pfn)
    max_zone_pfn: tuple[int, int, int] = (1024, 2048, 4096)  # end of ZONE_DMA, ZONE_DMA32, ZONE_NORMAL
    cpu_to_node: tuple[int, ...] = (0, 0)
    min_free_kbytes: int = 0  # 0: init_per_zone_wmark_min's sqrt(16 * lowmem_kbytes)
    watermark_scale_factor: int = 10
    lowmem_reserve_ratio: tuple[int, ...] = (256, 256)  # sysctl_lowmem_reserve_ratio for DMA, DMA32
    percpu_pagelist_fraction: int = 0  # 0: zone_batchsize()
    pcp_high: int = -1  # with pcp_batch >= 0: per_cpu_pages.high as set by the sysctl
    pcp_batch: int = -1
    migratetypes: tuple[str, ...] = MIGRATETYPE_NAMES  # the alloc_pages argument domain
    # offer split_page on allocated blocks up to this order (0: never); 3 is PAGE_ALLOC_COSTLY_ORDER
    split_page_max_order: int = 3

    def __post_init__(self) -> None:
        for name in ("ram", "reserved"):  # JSON gives lists of lists
            object.__setattr__(self, name, tuple(tuple(r) for r in getattr(self, name)))
        for name in ("max_zone_pfn", "cpu_to_node", "lowmem_reserve_ratio", "migratetypes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not 1 <= self.pageblock_order < self.MAX_ORDER:
            raise ValueError(
                f"pageblock_order {self.pageblock_order} is not in 1..MAX_ORDER-1 ({self.MAX_ORDER - 1})"
            )
        if len(self.max_zone_pfn) != MAX_NR_ZONES or list(self.max_zone_pfn) != sorted(self.max_zone_pfn):
            raise ValueError(f"max_zone_pfn {self.max_zone_pfn} is not {MAX_NR_ZONES} ascending zone ends")
        if not self.ram or self.ram[-1][1] > self.max_zone_pfn[-1]:
            raise ValueError(
                f"RAM {self.ram} is empty or extends past ZONE_NORMAL's end {self.max_zone_pfn[-1]}"
            )
        unknown = [mt for mt in self.migratetypes if mt not in MIGRATETYPE]
        if unknown or not self.migratetypes:
            raise ValueError(f"migratetypes {unknown or '()'} are not among {', '.join(MIGRATETYPE_NAMES)}")
        if self.pcp_high >= 0 and not self.pcp_high > self.pcp_batch >= 1:
            raise ValueError(f"pcp_high {self.pcp_high} must exceed pcp_batch {self.pcp_batch} >= 1")

    def physical_memory(self) -> PhysicalMemory:
        ranges = tuple(MemoryRange(start, end, nid) for start, end, nid in self.ram)
        return PhysicalMemory(ranges, self.reserved, self.cpu_to_node)

    def layout(self) -> MemoryLayout:
        return free_area_init(
            self.physical_memory(),
            self.max_zone_pfn,
            MAX_ORDER=self.MAX_ORDER,
            pageblock_order=self.pageblock_order,
            min_free_kbytes=self.min_free_kbytes,
            watermark_scale_factor=self.watermark_scale_factor,
            lowmem_reserve_ratio=self.lowmem_reserve_ratio,
            percpu_pagelist_fraction=self.percpu_pagelist_fraction,
            pcp_high=self.pcp_high,
            pcp_batch=self.pcp_batch,
        )


@dataclass(slots=True, eq=False)
class BuddyState:
    """Everything the allocator changes, plus the registry of blocks it handed out."""

    layout: MemoryLayout = field(repr=False)
    zones: list[Zone]  # node-major, zones[nid * MAX_NR_ZONES + zone_type]
    mem_map: PageFrames
    pageblock_migratetype: list[int]  # get_pageblock_migratetype, one per pageblock
    allocated: tuple[tuple[int, int], ...]  # (pfn, order) of every block handed out, sorted

    def clone(self) -> BuddyState:
        return BuddyState(
            self.layout,
            [z.clone() if z.pageset else z for z in self.zones],  # empty zones never change
            self.mem_map.clone(),
            self.pageblock_migratetype[:],
            self.allocated,
        )

    def fingerprint(self) -> Hashable:
        zones = tuple(
            (
                tuple((area.free_list, area.nr_free) for area in z.free_area),
                z.nr_free_pages,
                tuple((pcp.count, *pcp.lists) for pcp in z.pageset),
            )
            for z in self.zones
        )
        mem_map = self.mem_map
        return (
            zones,
            tuple(sorted(mem_map.buddy)),
            tuple(sorted(mem_map.private.items())),
            tuple(sorted(mem_map.refcount.items())),
            tuple(self.pageblock_migratetype),
            self.allocated,
        )


def alloc_block(
    state: BuddyState,
    order: int,
    migratetype: int,
    cpu: int,
    nid: int | None = None,
    can_direct_reclaim: bool = True,
) -> int | None:
    """alloc_pages on cpu (alloc_pages_node(nid) if given), recording the block it hands out."""
    pfn = page_alloc.alloc_pages(state, order, migratetype, cpu, nid, can_direct_reclaim)
    if pfn is not None:
        blocks = list(state.allocated)
        bisect.insort(blocks, (pfn, order))
        state.allocated = tuple(blocks)
    return pfn


def free_block(state: BuddyState, pfn: int, order: int, cpu: int) -> None:
    """__free_pages on cpu of a block alloc_block handed out."""
    blocks = list(state.allocated)
    blocks.remove((pfn, order))
    state.allocated = tuple(blocks)
    page_alloc.free_pages(state, pfn, order, cpu)


def _alloc_domain(m: BuddyModel, s: BuddyState) -> Iterable[tuple[int, str, int]]:
    return m.alloc_args


def _free_domain(m: BuddyModel, s: BuddyState) -> Iterable[tuple[int, int, int]]:
    return [(pfn, order, cpu) for pfn, order in s.allocated for cpu in m.cpus]


def _drain_domain(m: BuddyModel, s: BuddyState) -> Iterable[tuple[int]]:
    pagesets = [z.pageset for z in s.zones if z.pageset]
    return [(cpu,) for cpu in m.cpus if any(pageset[cpu].count for pageset in pagesets)]


def _split_domain(m: BuddyModel, s: BuddyState) -> Iterable[tuple[int, int]]:
    top = m.config.split_page_max_order
    return ((pfn, order) for pfn, order in s.allocated if 0 < order <= top)


# Small: one node, one CPU, 12 pfns in the three zones (a reserved page in ZONE_DMA, a hole
# in ZONE_NORMAL), blocks of up to 4 pages (MAX_ORDER 3) and 2-page pageblocks
# (pageblock_order = MAX_ORDER - 2, as 9 and 11 on x86-64): small enough for exhaustive
# search to depth 8, yet it reaches splits over two orders, steals, zonelist fallback,
# watermark failures and pcp refills and flushes within a few steps.
SMALL = BuddyConfig(
    MAX_ORDER=3,
    pageblock_order=1,
    ram=((0, 5, 0), (6, 12, 0)),  # pfn 5 is a hole in ZONE_NORMAL
    reserved=((0, 1),),  # pfn 0, the BIOS data page x86 keeps back
    max_zone_pfn=(2, 4, 12),
    cpu_to_node=(0,),
    min_free_kbytes=16,  # WMARK_MIN: DMA 0, DMA32 0, Normal 2
    pcp_high=3,
    pcp_batch=2,
    migratetypes=("MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE"),
    split_page_max_order=0,
)

# Large: the kernel's MAX_ORDER 11 and pageblock_order 9; two nodes and four CPUs; ZONE_DMA
# with the real legacy hole at 640 KiB-1 MiB (pfns 159-255); zone ends scaled down from
# 16 MiB and 4 GiB; watermarks from the kernel's own min_free_kbytes formula; pcp high and
# batch from percpu_pagelist_fraction = 8, since tiny zones would otherwise get batch 1, high 0.
LARGE = BuddyConfig(
    MAX_ORDER=11,
    pageblock_order=9,
    ram=((0, 159, 0), (256, 3072, 0), (3072, 4096, 1)),
    reserved=((0, 1), (1024, 1088)),  # the BIOS page; the kernel image and early memblock allocations
    max_zone_pfn=(1024, 2048, 4096),
    cpu_to_node=(0, 0, 1, 1),
    min_free_kbytes=0,
    percpu_pagelist_fraction=8,
)


class BuddyModel(Model[BuddyState, BuddyConfig]):
    """The zoned buddy allocator with per-CPU lists and migratetype fallback."""

    name = "buddy"
    Config = BuddyConfig
    profiles = {"small": SMALL, "large": LARGE}

    def __init__(self, config: BuddyConfig | None = None) -> None:
        super().__init__(config)
        self.layout = self.config.layout()
        self.cpus = tuple(range(self.layout.memory.nr_cpu_ids))
        self.alloc_args = tuple(
            (order, mt, cpu)
            for order in range(self.config.MAX_ORDER)
            for mt in self.config.migratetypes
            for cpu in self.cpus
        )

    def init_state(self) -> BuddyState:
        """The allocator right after mem_init: all managed memory freed to the buddy lists."""
        layout = self.layout
        zones = [
            Zone(
                info,
                [EMPTY_FREE_AREA] * layout.MAX_ORDER,
                0,
                [PerCpuPages(0, info.pcp_high, info.pcp_batch, ((),) * MIGRATE_PCPTYPES) for _ in self.cpus]
                if info.populated
                else [],
            )
            for info in layout.zones
        ]
        nr_pageblocks = (layout.memory.max_pfn + layout.pageblock_nr_pages - 1) >> layout.pageblock_order
        state = BuddyState(layout, zones, PageFrames(), [0] * nr_pageblocks, ())
        page_alloc.memblock_free_all(state)
        return state

    @action("order", "migratetype", "cpu", domain=_alloc_domain)
    def alloc_pages(self, state: BuddyState, order: int, migratetype: str, cpu: int) -> int | None:
        """alloc_pages(gfp, order) on cpu: the first pfn of the block, or None for NULL."""
        return alloc_block(state, order, MIGRATETYPE[migratetype], cpu)

    @action("pfn", "order", "cpu", domain=_free_domain)
    def free_pages(self, state: BuddyState, pfn: int, order: int, cpu: int) -> None:
        """__free_pages(page, order) on cpu, of a block alloc_pages handed out."""
        free_block(state, pfn, order, cpu)

    @action("cpu", domain=_drain_domain)
    def drain_pages(self, state: BuddyState, cpu: int) -> None:
        """drain_pages(cpu): return the CPU's per-CPU pages of every zone to the free areas."""
        page_alloc.drain_pages(state, cpu)

    @action("pfn", "order", domain=_split_domain)
    def split_page(self, state: BuddyState, pfn: int, order: int) -> None:
        """split_page(page, order): the block becomes 2^order order-0 pages, each freed alone."""
        page_alloc.split_page(state, pfn, order)
        blocks = [b for b in state.allocated if b != (pfn, order)]
        blocks.extend((p, 0) for p in range(pfn, pfn + (1 << order)))
        state.allocated = tuple(sorted(blocks))
