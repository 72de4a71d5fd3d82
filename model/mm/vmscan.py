"""mm/vmscan.c and mm/rmap.c try_to_unmap for the whole-kernel model: page reclaim, by the
memcg charge path (try_to_free_mem_cgroup_pages), by an allocation that finds no page
(direct reclaim, try_to_free_pages) and by kswapd, woken when an allocation finds free
memory at or below the low watermark and reclaiming until it is above the high one
(balance_pgdat).

The user pages (anonymous pages and the page cache) are on one LRU list (``state.lru``),
oldest first, and reclaim takes them from its head. The kernel's four lists (active and
inactive, anonymous and file) age pages by the accessed bits of their PTEs, which this
MMU does not set: without them, the lists hold pages in the order they were added, which
is what one list keeps. shrink_page_list unmaps a page from every PTE (the rmap walk of
try_to_unmap: here a walk of every mm's page tables, the set the kernel's anon_vma and
i_mmap trees lead to), flushing each TLB that may cache it; an anonymous page goes to a
swap slot (add_to_swap), its PTEs becoming swap entries; a page-cache page is written back
first if dirty (pageout, at once). Both are then freed and uncharged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.cgroup.cgroup import ROOT, in_subtree
from model.hw import mmu
from model.hw.mmu import PAGE_SIZE
from model.mm import buddy, filemap, memory, page_alloc, swapfile
from model.mm.mmzone import WMARK_HIGH
from model.sched import core
from model.sched.sched import TASK_INTERRUPTIBLE

if TYPE_CHECKING:
    from model.kernel import KernelState

SWAP_CLUSTER_MAX = 32


def lru_cache_add(state: KernelState, pfn: int) -> None:
    """mm/swap.c lru_cache_add: a new user page at the LRU's tail."""
    state.lru += (pfn,)


def del_page_from_lru_list(state: KernelState, pfn: int) -> None:
    state.lru = tuple(p for p in state.lru if p != pfn)


def zone_watermarks_ok(state: KernelState, cpu: int, mark: int) -> bool:
    """Some zone of cpu's zonelist has an order-0 page above the watermark: the check
    get_page_from_freelist makes (pgdat_balanced with it for kswapd)."""
    layout = state.mm.layout
    zonelist = layout.cpu_zonelist(cpu)
    classzone_idx = layout.zones[zonelist[0]].zone_type
    return any(
        page_alloc.zone_watermark_ok(
            state.mm.zones[z], 0, state.mm.zones[z].info.watermark[mark], classzone_idx
        )
        for z in zonelist
    )


def wakeup_kswapd(state: KernelState, cpu: int) -> None:
    """wake_all_kswapds: kswapd, if it sleeps on pgdat->kswapd_wait, is woken."""
    if state.sched.tasks[state.kswapd].state == TASK_INTERRUPTIBLE:
        core.try_to_wake_up(state.sched, state.kswapd, cpu)


def balance_pgdat(state: KernelState, cpu: int) -> None:
    """kswapd's work: reclaim until the high watermark is met or nothing is left to reclaim."""
    while not zone_watermarks_ok(state, cpu, WMARK_HIGH) and shrink_node(state, cpu, None, 1):
        pass


def try_to_free_pages(state: KernelState, cpu: int) -> int:
    """Direct reclaim by an allocation that found no page: up to SWAP_CLUSTER_MAX pages."""
    return shrink_node(state, cpu, None, SWAP_CLUSTER_MAX)


def try_to_free_mem_cgroup_pages(state: KernelState, memcg: int, nr_pages: int, cpu: int) -> int:
    """Reclaim for a memcg over its limit: its subtree's pages, at least SWAP_CLUSTER_MAX."""
    return shrink_node(state, cpu, memcg, max(nr_pages, SWAP_CLUSTER_MAX))


def shrink_node(state: KernelState, cpu: int, memcg: int | None, nr_to_reclaim: int) -> int:
    """shrink_page_list over the LRU from its head (memcg's subtree's pages only, if given),
    until nr_to_reclaim pages are freed. An anonymous page stays when no swap slot is free.
    The number freed."""
    freed = 0
    for pfn in state.lru:
        if freed == nr_to_reclaim:
            break
        if memcg is not None and not in_subtree(state, state.page_memcg.get(pfn, ROOT), memcg):
            continue
        freed += shrink_page(state, cpu, pfn)
    return freed


def shrink_page(state: KernelState, cpu: int, pfn: int) -> bool:
    """shrink_page_list for one page: unmapped (to a swap slot if anonymous), written back if
    dirty, freed. False when it must stay (no swap slot)."""
    if filemap.page_index(state, pfn) is None:
        slot = swapfile.get_swap_page(state)
        if slot is None:
            return False
        swapfile.swap_writepage(state, slot, state.data.pop(pfn))
        try_to_unmap(state, cpu, pfn, slot)
        del_page_from_lru_list(state, pfn)
    else:
        try_to_unmap(state, cpu, pfn, None)
        if pfn in state.dirty:
            filemap.writepage(state, cpu, pfn)  # pageout
        filemap.delete_from_page_cache(state, pfn)
    state.events += (("reclaim", state.page_memcg.get(pfn, ROOT), pfn),)
    state.mem_cgroup_uncharge(pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)
    return True


def try_to_unmap(state: KernelState, cpu: int, pfn: int, slot: int | None) -> None:
    """Every PTE mapping pfn, in every mm, becomes the swap entry of slot (None: none) and is
    flushed from the TLBs of its mm (try_to_unmap_one's ptep_clear_flush)."""
    for mm, m in sorted(state.mms.items()):
        for vaddr, p, _ in mmu.mapped(state.pt, m.pgd):
            if p != pfn:
                continue
            if slot is None:
                state.pt = mmu.pte_clear(state.pt, m.pgd, vaddr)
            else:
                memory.set_pte(state, m.pgd, vaddr, slot, 0)
                swapfile.swap_duplicate(state, slot)
            memory.flush_tlb_mm_range(state, cpu, mm, vaddr, vaddr + PAGE_SIZE)
    state.mapcount.pop(pfn, None)
