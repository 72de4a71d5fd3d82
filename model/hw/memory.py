"""Physical memory: page frames as the firmware reports them.

The machine's RAM is a set of usable ranges (the e820 map on x86), each owned by a NUMA node
(the ACPI SRAT memory affinity). The gaps between ranges are holes: their page frames have a
``struct page`` (x86-64 SPARSEMEM_VMEMMAP maps whole sections) but no memory behind them.
Firmware and the kernel image keep some RAM for themselves (memblock.reserved): present, but
never handed to the page allocator. Everything here is in page frame numbers (4 KiB pages).
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE_SHIFT = 12  # 4 KiB pages, as on x86


@dataclass(frozen=True)
class MemoryRange:
    """One usable RAM range [start_pfn, end_pfn) and the node it belongs to."""

    start_pfn: int
    end_pfn: int
    nid: int = 0


@dataclass(frozen=True)
class PhysicalMemory:
    """The RAM map: usable ranges (holes between them), reservations, and CPU-to-node affinity."""

    ranges: tuple[MemoryRange, ...]
    reserved: tuple[tuple[int, int], ...]  # memblock.reserved [start, end) inside RAM
    cpu_to_node: tuple[int, ...]  # cpu_to_node(cpu), one entry per possible CPU

    def __post_init__(self) -> None:
        last = 0
        for r in self.ranges:
            if not 0 <= r.start_pfn < r.end_pfn or r.start_pfn < last:
                raise ValueError(
                    f"RAM range [{r.start_pfn}, {r.end_pfn}) is empty or overlaps the one before"
                )
            last = r.end_pfn
        if not self.cpu_to_node:
            raise ValueError("no CPUs")

    @property
    def max_pfn(self) -> int:
        """One past the highest RAM page frame: the extent of the struct page array."""
        return self.ranges[-1].end_pfn if self.ranges else 0

    @property
    def nr_node_ids(self) -> int:
        return 1 + max([r.nid for r in self.ranges] + list(self.cpu_to_node))

    @property
    def nr_cpu_ids(self) -> int:
        return len(self.cpu_to_node)

    def pfn_valid(self, pfn: int) -> bool:
        """A struct page exists for pfn (include/linux/mmzone.h pfn_valid)."""
        return 0 <= pfn < self.max_pfn

    def pfn_present(self, pfn: int) -> bool:
        """pfn is backed by RAM, not in a hole."""
        return any(r.start_pfn <= pfn < r.end_pfn for r in self.ranges)

    def pfn_reserved(self, pfn: int) -> bool:
        """pfn is RAM that memblock reserved (PageReserved, never freed to the buddy allocator)."""
        return any(start <= pfn < end for start, end in self.reserved)

    def free_mem_ranges(self) -> list[tuple[int, int]]:
        """mm/memblock.c for_each_free_mem_range: RAM less the reservations, as [start, end) runs."""
        runs = []
        for r in self.ranges:
            start = r.start_pfn
            for res_start, res_end in sorted(self.reserved):
                if res_end <= start or res_start >= r.end_pfn:
                    continue
                if res_start > start:
                    runs.append((start, res_start))
                start = max(start, res_end)
            if start < r.end_pfn:
                runs.append((start, r.end_pfn))
        return runs

    def node_ranges(self, nid: int) -> list[MemoryRange]:
        return [r for r in self.ranges if r.nid == nid]
