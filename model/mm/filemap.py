"""mm/filemap.c and mm/page-writeback.c for the whole-kernel model: the page cache of the one
regular file, /data, whose pages live on a disk (``state.disk``: the word each file page
holds there, 0 where never written).

A page-cache page is read from the disk on its first fault (filemap_fault ->
add_to_page_cache_lru, charged to the faulting mm's memcg as __add_to_page_cache_locked
charges it) and stays cached, mapped or not, until reclaim drops it. A store through a
MAP_SHARED mapping dirties it: the write fault sets PG_dirty (do_shared_fault,
wp_page_shared) and only a write fault may make its PTE writable (the VMA wants write
notification, as for any filesystem with dirty accounting). Writeback copies a dirty page
to the disk and first write-protects every PTE mapping it (page_mkclean), so that the next
store faults and dirties it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.hw import mmu
from model.hw.mmu import _PAGE_RW, PAGE_SIZE
from model.mm import memory, vmscan

if TYPE_CHECKING:
    from model.kernel import KernelState


def page_index(state: KernelState, pfn: int) -> int | None:
    """page->index of a page-cache page, None for any other page (PageAnon, or not a user page)."""
    return next((index for index, p in state.page_cache.items() if p == pfn), None)


def add_to_page_cache_lru(state: KernelState, pfn: int, index: int) -> None:
    """A new page filled from the disk (mpage_readpage), in the page cache and at the LRU's tail."""
    state.data[pfn] = state.disk.get(index, 0)
    state.page_cache[index] = pfn
    vmscan.lru_cache_add(state, pfn)


def delete_from_page_cache(state: KernelState, pfn: int) -> None:
    """__remove_mapping: an unmapped clean page leaves the page cache and the LRU; the caller frees it."""
    index = page_index(state, pfn)
    assert index is not None and pfn not in state.dirty and not state.mapcount.get(pfn)
    del state.page_cache[index]
    del state.data[pfn]
    vmscan.del_page_from_lru_list(state, pfn)


def set_page_dirty(state: KernelState, pfn: int) -> None:
    state.dirty = state.dirty | {pfn}


def page_mkclean(state: KernelState, cpu: int, pfn: int) -> None:
    """mm/rmap.c page_mkclean: every PTE mapping the page write-protected, and each flushed
    from the TLBs that may cache it (page_mkclean_one's ptep_clear_flush)."""
    for mm, m in sorted(state.mms.items()):
        for vaddr, p, flags in mmu.mapped(state.pt, m.pgd):
            if p == pfn and flags & _PAGE_RW:
                state.pt = mmu.change_pte_flags(state.pt, m.pgd, vaddr, clear_flags=_PAGE_RW)
                memory.flush_tlb_mm_range(state, cpu, mm, vaddr, vaddr + PAGE_SIZE)


def writepage(state: KernelState, cpu: int, pfn: int) -> None:
    """clear_page_dirty_for_io (page_mkclean, then PG_dirty cleared), then the page's word to
    the disk (->writepage, done at once)."""
    page_mkclean(state, cpu, pfn)
    state.dirty = state.dirty - {pfn}
    index = page_index(state, pfn)
    assert index is not None
    state.disk[index] = state.data[pfn]


def write_cache_pages(state: KernelState, cpu: int) -> None:
    """sync's writeback of the file: every dirty page, by index."""
    for _, pfn in sorted(state.page_cache.items()):
        if pfn in state.dirty:
            writepage(state, cpu, pfn)
