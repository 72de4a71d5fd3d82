"""Nodes, zones, free areas and per-CPU page lists (include/linux/mmzone.h).

The boot-time constant part of the memory layout (node and zone spans, watermarks,
lowmem_reserve, zonelists) is a frozen ``MemoryLayout`` shared by every state; the part that
changes under zone->lock and with interrupts off (free_area, NR_FREE_PAGES, the per-CPU
lists) is a ``Zone`` that states copy.

A ``FreeArea`` is immutable and replaced on every change, so a state copies a zone's
free_area as one list of references. Free lists and per-CPU lists are tuples of pfns, list
head first: list_add prepends, list_add_tail appends, list_first_entry reads [0],
list_last_entry [-1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.hw.memory import PAGE_SHIFT, PhysicalMemory

# enum migratetype. Only the types that sit on per-CPU lists are modelled: no CMA, no
# MIGRATE_HIGHATOMIC reserve (no atomic allocations), no MIGRATE_ISOLATE (no offlining).
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATETYPE_NAMES = ("MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE", "MIGRATE_RECLAIMABLE")
MIGRATETYPE = {name: mt for mt, name in enumerate(MIGRATETYPE_NAMES)}

# enum zone_type on x86-64 without ZONE_MOVABLE (no kernelcore= / movablecore=).
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
MAX_NR_ZONES = 3
ZONE_NAMES = ("DMA", "DMA32", "Normal")

# enum zone_watermarks
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2

# mm/page_alloc.c fallbacks[]: where each migratetype steals from when its own lists are empty.
fallbacks: dict[int, tuple[int, ...]] = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
}


@dataclass(frozen=True, slots=True)
class FreeArea:
    """struct free_area: one list of free blocks per migratetype, and their count."""

    free_list: tuple[tuple[int, ...], ...]
    nr_free: int


EMPTY_FREE_AREA = FreeArea(((),) * MIGRATE_PCPTYPES, 0)


@dataclass(slots=True, eq=False)
class PerCpuPages:
    """struct per_cpu_pages: order-0 pages cached per CPU, one list per migratetype."""

    count: int  # number of pages on the lists
    high: int  # high watermark: a free that brings count to high frees batch pages
    batch: int  # chunk size for buddy add/remove
    lists: tuple[tuple[int, ...], ...]  # lists[MIGRATE_PCPTYPES], head first; replaced, never changed

    def clone(self) -> PerCpuPages:
        return PerCpuPages(self.count, self.high, self.batch, self.lists)


@dataclass(frozen=True)
class ZoneInfo:
    """The fields of struct zone fixed at boot."""

    node_id: int
    zone_type: int  # ZONE_DMA, ZONE_DMA32 or ZONE_NORMAL
    zone_start_pfn: int
    spanned_pages: int  # zone_end_pfn - zone_start_pfn
    present_pages: int  # spanned_pages - pages in holes
    managed_pages: int  # present_pages - reserved pages
    watermark: tuple[int, int, int]  # _watermark[WMARK_MIN, WMARK_LOW, WMARK_HIGH]
    lowmem_reserve: tuple[int, ...]  # lowmem_reserve[classzone_idx]
    pcp_high: int
    pcp_batch: int

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.zone_type]

    @property
    def zone_end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    def zone_spans_pfn(self, pfn: int) -> bool:
        return self.zone_start_pfn <= pfn < self.zone_end_pfn

    @property
    def populated(self) -> bool:
        """managed_zone(): the zone has pages the buddy allocator manages."""
        return self.managed_pages > 0


@dataclass(slots=True, eq=False)
class Zone:
    """The fields of struct zone that change: free_area, NR_FREE_PAGES and the pagesets."""

    info: ZoneInfo = field(repr=False)
    free_area: list[FreeArea]  # free_area[MAX_ORDER]
    nr_free_pages: int  # zone_page_state(zone, NR_FREE_PAGES)
    pageset: list[PerCpuPages]  # per_cpu_ptr(zone->pageset, cpu)->pcp, one per CPU

    def clone(self) -> Zone:
        return Zone(self.info, self.free_area[:], self.nr_free_pages, [p.clone() for p in self.pageset])


@dataclass(frozen=True)
class PglistData:
    """pg_data_t: a node's span, its zones (indexes into MemoryLayout.zones) and its zonelist."""

    node_id: int
    node_start_pfn: int
    node_spanned_pages: int
    node_present_pages: int
    node_zones: tuple[int, ...]
    node_zonelist: tuple[int, ...]  # ZONELIST_FALLBACK for GFP zone ZONE_NORMAL


@dataclass(frozen=True)
class MemoryLayout:
    """The memory layout after boot: what free_area_init_nodes, setup_per_zone_wmarks,
    setup_per_zone_lowmem_reserve and zone_pcp_init leave behind."""

    MAX_ORDER: int
    pageblock_order: int
    memory: PhysicalMemory
    nodes: tuple[PglistData, ...]
    zones: tuple[ZoneInfo, ...]  # node-major: zones[nid * MAX_NR_ZONES + zone_type]
    zone_of_pfn: tuple[int, ...]  # page_zone(pfn) as an index into zones, -1 for none

    @property
    def pageblock_nr_pages(self) -> int:
        return 1 << self.pageblock_order

    def cpu_zonelist(self, cpu: int) -> tuple[int, ...]:
        """node_zonelist(numa_node_id(), GFP_KERNEL) on cpu."""
        return self.nodes[self.memory.cpu_to_node[cpu]].node_zonelist

    def classzone_idx(self, cpu: int) -> int:
        """ac_classzone_idx(): the zone type of the preferred (first) zone of cpu's zonelist."""
        return self.zones[self.cpu_zonelist(cpu)[0]].zone_type

    def zone_label(self, z: int) -> str:
        """How reports name zone z: "Normal", or "node 1 Normal" on a NUMA machine."""
        info = self.zones[z]
        return info.name if len(self.nodes) == 1 else f"node {info.node_id} {info.name}"


def zone_batchsize(managed_pages: int) -> int:
    """mm/page_alloc.c zone_batchsize: about a quarter of a MiB of pages, a power of two minus 1."""
    batch = managed_pages // 1024
    batch = min(batch, (512 * 1024) >> PAGE_SHIFT) // 4
    batch = max(batch, 1)
    b = batch + batch // 2
    return (1 << (b.bit_length() - 1)) - 1  # rounddown_pow_of_two(b) - 1


def pcp_high_batch(
    managed_pages: int, percpu_pagelist_fraction: int, high: int, batch: int
) -> tuple[int, int]:
    """mm/page_alloc.c pageset_set_batch / pageset_set_high: a zone's pcp high and batch.

    Explicit ``high``/``batch`` stand for values set through the sysctl on a scaled-down zone.
    """
    if high >= 0 and batch >= 0:
        return high, batch
    if percpu_pagelist_fraction:
        high = managed_pages // percpu_pagelist_fraction
        batch = PAGE_SHIFT * 8 if high // 4 > PAGE_SHIFT * 8 else max(1, high // 4)
        return high, batch
    batch = zone_batchsize(managed_pages)
    return 6 * batch, max(1, batch)


def init_per_zone_wmark_min(lowmem_pages: int) -> int:
    """mm/page_alloc.c init_per_zone_wmark_min: min_free_kbytes = sqrt(lowmem_kbytes * 16)."""
    lowmem_kbytes = lowmem_pages << (PAGE_SHIFT - 10)
    return min(max(int((lowmem_kbytes * 16) ** 0.5), 128), 65536)


def setup_per_zone_wmarks(
    managed: list[int], min_free_kbytes: int, watermark_scale_factor: int
) -> list[tuple[int, int, int]]:
    """mm/page_alloc.c __setup_per_zone_wmarks (4.6+): min in proportion to managed pages,
    low and high a scale-factor step above it."""
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    lowmem_pages = sum(managed)  # no ZONE_HIGHMEM on x86-64
    marks = []
    for m in managed:
        wmin = pages_min * m // lowmem_pages if lowmem_pages else 0
        step = max(wmin >> 2, m * watermark_scale_factor // 10000)
        marks.append((wmin, wmin + step, wmin + 2 * step))
    return marks


def setup_per_zone_lowmem_reserve(managed: list[int], ratio: tuple[int, ...]) -> list[tuple[int, ...]]:
    """mm/page_alloc.c setup_per_zone_lowmem_reserve, for one node's zones: a lower zone keeps
    back managed(higher zones up to j) / sysctl_lowmem_reserve_ratio from allocations of class j."""
    reserve = [[0] * MAX_NR_ZONES for _ in range(MAX_NR_ZONES)]
    for j in range(MAX_NR_ZONES):
        pages = managed[j]
        for idx in range(j - 1, -1, -1):
            reserve[idx][j] = pages // max(ratio[idx], 1)
            pages += managed[idx]
    return [tuple(r) for r in reserve]


def build_zonelists(memory: PhysicalMemory, zones: list[ZoneInfo]) -> list[tuple[int, ...]]:
    """mm/page_alloc.c build_zonelists (node order, 4.14+ default): the local node's zones from
    ZONE_NORMAL down, then each other node's by distance (|a - b| stands for the SLIT distance)."""
    nr_nodes = memory.nr_node_ids
    lists = []
    for nid in range(nr_nodes):
        order = sorted(range(nr_nodes), key=lambda other: (abs(other - nid), other))
        lists.append(
            tuple(
                n * MAX_NR_ZONES + zt
                for n in order
                for zt in range(ZONE_NORMAL, -1, -1)
                if zones[n * MAX_NR_ZONES + zt].populated
            )
        )
    return lists


def free_area_init(
    memory: PhysicalMemory,
    max_zone_pfn: tuple[int, ...],
    *,
    MAX_ORDER: int,
    pageblock_order: int,
    min_free_kbytes: int,
    watermark_scale_factor: int,
    lowmem_reserve_ratio: tuple[int, ...],
    percpu_pagelist_fraction: int = 0,
    pcp_high: int = -1,
    pcp_batch: int = -1,
) -> MemoryLayout:
    """mm/page_alloc.c free_area_init_nodes and the per-zone setup that follows it.

    Zone j of a node spans the node's memory clipped to [max_zone_pfn[j-1], max_zone_pfn[j])
    (zone_spanned_pages_in_node); holes inside the span count as absent, memblock
    reservations as present but not managed (calculate_node_totalpages, mem_init).
    """
    spans: list[tuple[int, int, int, int]] = []  # per zone: start, spanned, present, managed
    nodes_span = []
    for nid in range(memory.nr_node_ids):
        ranges = memory.node_ranges(nid)
        node_start = ranges[0].start_pfn if ranges else 0
        node_end = ranges[-1].end_pfn if ranges else 0
        nodes_span.append((node_start, node_end))
        for zt in range(MAX_NR_ZONES):
            lo = max(max_zone_pfn[zt - 1] if zt else 0, node_start)
            hi = min(max_zone_pfn[zt], node_end)
            if hi <= lo:
                spans.append((0, 0, 0, 0))
                continue
            present = sum(max(0, min(hi, r.end_pfn) - max(lo, r.start_pfn)) for r in ranges)
            reserved = sum(
                1
                for start, end in memory.reserved
                for pfn in range(max(lo, start), min(hi, end))
                if memory.pfn_present(pfn)
            )
            spans.append((lo, hi - lo, present, present - reserved))
    managed = [s[3] for s in spans]
    if min_free_kbytes <= 0:
        min_free_kbytes = init_per_zone_wmark_min(sum(managed))
    marks = setup_per_zone_wmarks(managed, min_free_kbytes, watermark_scale_factor)
    zones: list[ZoneInfo] = []
    for nid in range(memory.nr_node_ids):
        node_managed = managed[nid * MAX_NR_ZONES : (nid + 1) * MAX_NR_ZONES]
        reserve = setup_per_zone_lowmem_reserve(node_managed, lowmem_reserve_ratio)
        for zt in range(MAX_NR_ZONES):
            z = nid * MAX_NR_ZONES + zt
            start, spanned, present, zmanaged = spans[z]
            high, batch = pcp_high_batch(zmanaged, percpu_pagelist_fraction, pcp_high, pcp_batch)
            zones.append(
                ZoneInfo(nid, zt, start, spanned, present, zmanaged, marks[z], reserve[zt], high, batch)
            )
    zonelists = build_zonelists(memory, zones)
    nodes = tuple(
        PglistData(
            nid,
            nodes_span[nid][0],
            nodes_span[nid][1] - nodes_span[nid][0],
            sum(zones[nid * MAX_NR_ZONES + zt].present_pages for zt in range(MAX_NR_ZONES)),
            tuple(range(nid * MAX_NR_ZONES, (nid + 1) * MAX_NR_ZONES)),
            zonelists[nid],
        )
        for nid in range(memory.nr_node_ids)
    )
    zone_of_pfn = [-1] * memory.max_pfn
    for z, info in enumerate(zones):
        for pfn in range(info.zone_start_pfn, info.zone_end_pfn):
            zone_of_pfn[pfn] = z
    return MemoryLayout(MAX_ORDER, pageblock_order, memory, nodes, tuple(zones), tuple(zone_of_pfn))
