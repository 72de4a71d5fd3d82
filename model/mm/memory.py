"""mm/memory.c and the TLB flushes of arch/x86/mm/tlb.c: user page tables filled by page
faults, copied by fork and torn down by munmap and exit, in the whole-kernel model.

An anonymous page is allocated zeroed on the first touch (do_anonymous_page) and charged to
its mm's memcg, shared copy-on-write by fork (copy_page_range write-protects both sides),
and copied or reused on a write fault (do_wp_page). A file page comes from the page cache
(model/mm/filemap.py): do_read_fault maps it read-only, do_cow_fault maps a private copy for
a write to a MAP_PRIVATE mapping, do_shared_fault maps it writable and dirty for a write to
a MAP_SHARED one. A swap entry left by reclaim (model/mm/vmscan.py) is read back into a new
page by do_swap_page. Page-table pages come from the buddy allocator as the faults need
them (__pte_alloc and its upper levels, allocated before the fault takes any page), charged
to the allocating task's memcg, and go back when their range is unmapped (free_pgtables)
or the mm dies (exit_mmap).

The page allocations of this module go through alloc_page: the slow path of
__alloc_pages_nodemask wakes kswapd when the low watermark is not met, and when no page is
to be had it reclaims (try_to_free_pages), then calls the OOM killer, trying again after
each.

A TLB flush reaches every CPU whose CR3 holds the mm (mm_cpumask: the CPUs running it and
those lazily keeping it under a kernel thread or idle), as flush_tlb_mm_range's IPIs do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.hw import mmu
from model.hw.mmu import _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, PAGE_SIZE, PageFault
from model.mm import buddy, filemap, mmap, swapfile, vmscan
from model.mm.mmzone import MIGRATETYPE, WMARK_LOW

if TYPE_CHECKING:
    from model.kernel import KernelState

MIGRATE_MOVABLE = MIGRATETYPE["MIGRATE_MOVABLE"]
MIGRATE_UNMOVABLE = MIGRATETYPE["MIGRATE_UNMOVABLE"]
VM_FAULT_OOM = 0x0001
VM_FAULT_SIGBUS = 0x0002
VM_FAULT_SIGSEGV = 0x0040


def mk_pte_flags(vm_flags: int, writable: bool) -> int:
    """The PTE of a page in a VMA: present and user; writable only in a VM_WRITE VMA, and only
    when the fault makes it so (a page shared copy-on-write, a page-cache page in a private
    mapping and a clean one in a shared mapping are mapped read-only)."""
    rw = _PAGE_RW if writable and vm_flags & mmap.VM_WRITE else 0
    return _PAGE_PRESENT | _PAGE_USER | rw


def alloc_page(state: KernelState, cpu: int, migratetype: int) -> int | None:
    """An order-0 GFP_KERNEL or GFP_HIGHUSER_MOVABLE page (see the module doc); None when
    neither reclaim nor the OOM killer got one."""
    if not vmscan.zone_watermarks_ok(state, cpu, WMARK_LOW):
        vmscan.wakeup_kswapd(state, cpu)
    while True:
        pfn = buddy.alloc_block(state.mm, 0, migratetype, cpu)
        if pfn is not None:
            return pfn
        if not vmscan.try_to_free_pages(state, cpu) and not state.out_of_memory(cpu):
            return None


def alloc_page_account(state: KernelState, cpu: int) -> int | None:
    """alloc_page(GFP_KERNEL_ACCOUNT), as x86's page-table pages (pte_alloc_one and its upper
    levels) and pipe buffers are allocated: an unmovable page charged to the current task's
    memcg (__memcg_kmem_charge); None when there is no page or no charge."""
    pfn = alloc_page(state, cpu, MIGRATE_UNMOVABLE)
    if pfn is not None and not state.memcg_kmem_charge(pfn, cpu):
        buddy.free_block(state.mm, pfn, 0, cpu)
        return None
    return pfn


def free_page_account(state: KernelState, pfn: int, cpu: int) -> None:
    """__free_page of such a page: uncharged (PageKmemcg in free_pages_prepare), then freed."""
    state.mem_cgroup_uncharge(pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)


def free_user_page(state: KernelState, pfn: int, cpu: int) -> None:
    """A user page that was never mapped goes back (its charge with it)."""
    state.mem_cgroup_uncharge(pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)


def pte_alloc(state: KernelState, cpu: int, pgd: int, vaddr: int) -> bool:
    """The page-table pages down to vaddr's PTE table (__pud_alloc, __pmd_alloc,
    __pte_alloc); False, with nothing allocated kept, when one is not to be had.

    Each table page is allocated before the tables are rebuilt from state.pt, since its
    charge may run reclaim or the OOM killer, which change other page tables. __pte_alloc
    too allocates before it takes the page-table lock, and frees its page if the table was
    filled meanwhile."""
    spare: list[int] = []
    while True:
        pool = list(spare)
        pt = mmu.pte_alloc(state.pt, pgd, vaddr, lambda pool=pool: pool.pop() if pool else None)  # type: ignore[misc]
        if pt is not None:
            break
        table = alloc_page_account(state, cpu)
        if table is None:
            for table in spare:
                free_page_account(state, table, cpu)
            return False
        spare.insert(0, table)
    state.pt = pt
    for table in pool:  # a level filled meanwhile
        free_page_account(state, table, cpu)
    return True


def set_pte(state: KernelState, pgd: int, vaddr: int, pfn: int, flags: int) -> None:
    """set_pte_at on a PTE table pte_alloc has made present."""
    pt = mmu.set_pte_at(state.pt, pgd, vaddr, pfn, flags, lambda: None)
    assert pt is not None, f"{vaddr:#x} has no PTE table"
    state.pt = pt


def map_new_anon_page(state: KernelState, pgd: int, vaddr: int, pfn: int, flags: int, word: int) -> None:
    """A new anonymous page, holding word, mapped at vaddr: set_pte_at,
    page_add_new_anon_rmap and lru_cache_add_active_or_unevictable."""
    state.data[pfn] = word
    set_pte(state, pgd, vaddr, pfn, flags)
    page_add_rmap(state, pfn)
    vmscan.lru_cache_add(state, pfn)


def page_add_rmap(state: KernelState, pfn: int) -> None:
    """One more PTE maps the page (page_add_new_anon_rmap, page_dup_rmap, page_add_file_rmap)."""
    state.mapcount[pfn] = state.mapcount.get(pfn, 0) + 1


def put_page(state: KernelState, pfn: int, cpu: int) -> None:
    """A mapping of a page goes (page_remove_rmap). The last one frees an anonymous page,
    uncharged from its memcg and off the LRU; a page-cache page stays cached."""
    n = state.mapcount[pfn] - 1
    if n:
        state.mapcount[pfn] = n
        return
    del state.mapcount[pfn]
    if filemap.page_index(state, pfn) is not None:
        return
    del state.data[pfn]
    vmscan.del_page_from_lru_list(state, pfn)
    free_user_page(state, pfn, cpu)


def zap_pte(state: KernelState, cpu: int, pgd: int, vaddr: int, pfn: int, flags: int) -> None:
    """zap_pte_range for one PTE: cleared, and its page's mapping or its swap slot dropped."""
    state.pt = mmu.pte_clear(state.pt, pgd, vaddr)
    if flags & _PAGE_PRESENT:
        put_page(state, pfn, cpu)
    else:
        swapfile.swap_free(state, pfn)  # free_swap_and_cache


def handle_mm_fault(state: KernelState, cpu: int, mm: int, vaddr: int, error_code: int) -> int:
    """arch/x86/mm/fault.c __do_page_fault then handle_mm_fault: a fault outside every VMA or
    against its rights is VM_FAULT_SIGSEGV (bad_area); otherwise the page tables down to the
    PTE table are allocated and the PTE decides (handle_pte_fault): none is do_fault's in a
    file VMA, do_anonymous_page's in another; a swap entry is do_swap_page's; a write to a
    present read-only page is do_wp_page's. 0 when the access may be retried."""
    vma = mmap.find_vma(state.mms[mm].vmas, vaddr)
    write = bool(error_code & mmu.X86_PF_WRITE)
    if vma is None or vaddr < vma.vm_start:
        return VM_FAULT_SIGSEGV
    if (write and not vma.vm_flags & mmap.VM_WRITE) or not vma.vm_flags & (mmap.VM_READ | mmap.VM_WRITE):
        return VM_FAULT_SIGSEGV  # access_error
    pgd = state.mms[mm].pgd
    if not pte_alloc(state, cpu, pgd, vaddr):
        return VM_FAULT_OOM
    pte = mmu.walk(state.pt, pgd, vaddr)
    if pte is None:
        if vma.vm_file:
            return do_fault(state, cpu, mm, vaddr, vma, write)
        return do_anonymous_page(state, cpu, mm, vaddr, vma.vm_flags)
    if not pte[1] & _PAGE_PRESENT:
        return do_swap_page(state, cpu, mm, vaddr, pte[0], vma.vm_flags, write)
    if write and not pte[1] & _PAGE_RW:
        if vma.vm_flags & mmap.VM_SHARED:
            return wp_page_shared(state, mm, vaddr, pte[0])
        return do_wp_page(state, cpu, mm, vaddr, pte[0], vma.vm_flags)
    return 0  # a spurious fault: another path fixed the PTE already


def charged_page(state: KernelState, cpu: int, mm: int) -> int | None:
    """A movable page for a user mapping, charged to the mm owner's memcg
    (mem_cgroup_try_charge_delay); None when there is no page or no charge."""
    pfn = alloc_page(state, cpu, MIGRATE_MOVABLE)
    if pfn is None:
        return None
    if not state.mem_cgroup_charge(pfn, mm, cpu):
        buddy.free_block(state.mm, pfn, 0, cpu)  # oom_free_page
        return None
    return pfn


def do_anonymous_page(state: KernelState, cpu: int, mm: int, vaddr: int, vm_flags: int) -> int:
    """A zeroed page (alloc_zeroed_user_highpage_movable), charged, mapped with the VMA's
    rights and put on the LRU; VM_FAULT_OOM when there is no page or no charge."""
    pfn = charged_page(state, cpu, mm)
    if pfn is None:
        return VM_FAULT_OOM
    map_new_anon_page(state, state.mms[mm].pgd, vaddr, pfn, mk_pte_flags(vm_flags, True), 0)
    return 0


def filemap_fault(state: KernelState, cpu: int, mm: int, index: int) -> int | None:
    """mm/filemap.c filemap_fault: the file page from the page cache (find_get_page), else
    read into a new page charged to the mm's memcg; None when there is no page or no charge."""
    pfn = state.page_cache.get(index)
    if pfn is None:
        pfn = charged_page(state, cpu, mm)
        if pfn is not None:
            filemap.add_to_page_cache_lru(state, pfn, index)
    return pfn


def do_fault(state: KernelState, cpu: int, mm: int, vaddr: int, vma: mmap.Vma, write: bool) -> int:
    """A file page not yet mapped: past the end of the file VM_FAULT_SIGBUS; a read maps the
    page-cache page read-only (do_read_fault); a write to a private mapping maps a copy of
    it (do_cow_fault), to a shared one the page itself, dirtied (do_shared_fault)."""
    index = mmap.linear_page_index(vma, vaddr)
    if index >= state.file_pages:
        return VM_FAULT_SIGBUS
    pgd = state.mms[mm].pgd
    if write and not vma.vm_flags & mmap.VM_SHARED:  # do_cow_fault
        new = charged_page(state, cpu, mm)
        if new is None:
            return VM_FAULT_OOM
        page = filemap_fault(state, cpu, mm, index)
        if page is None:
            free_user_page(state, new, cpu)
            return VM_FAULT_OOM
        map_new_anon_page(state, pgd, vaddr, new, mk_pte_flags(vma.vm_flags, True), state.data[page])
        return 0
    page = filemap_fault(state, cpu, mm, index)
    if page is None:
        return VM_FAULT_OOM
    if write:  # do_shared_fault: fault_dirty_shared_page
        filemap.set_page_dirty(state, page)
    set_pte(state, pgd, vaddr, page, mk_pte_flags(vma.vm_flags, write))
    page_add_rmap(state, page)
    return 0


def do_swap_page(
    state: KernelState, cpu: int, mm: int, vaddr: int, slot: int, vm_flags: int, write: bool
) -> int:
    """A swap entry: the slot read into a new charged page (swapin_readahead, done at once),
    mapped writable for a write, and the slot's reference dropped (swap_free); unless the PTE
    changed while the page was charged (pte_same fails), when the page goes back and the
    fault is retried."""
    pfn = charged_page(state, cpu, mm)
    if pfn is None:
        return VM_FAULT_OOM
    pgd = state.mms[mm].pgd
    if mmu.walk(state.pt, pgd, vaddr) != (slot, 0):
        free_user_page(state, pfn, cpu)
        return 0
    map_new_anon_page(state, pgd, vaddr, pfn, mk_pte_flags(vm_flags, write), state.swap_data[slot])
    swapfile.swap_free(state, slot)
    return 0


def wp_page_shared(state: KernelState, mm: int, vaddr: int, page: int) -> int:
    """A write to a read-only page of a shared file mapping: the page is dirtied and the PTE
    made writable (wp_page_shared -> wp_page_reuse)."""
    filemap.set_page_dirty(state, page)
    state.pt = mmu.change_pte_flags(state.pt, state.mms[mm].pgd, vaddr, set_flags=_PAGE_RW)
    return 0


def do_wp_page(state: KernelState, cpu: int, mm: int, vaddr: int, old: int, vm_flags: int) -> int:
    """A write to a copy-on-write page: reuse an anonymous page when this is its only mapping
    (wp_page_reuse), else copy the page (a page-cache page always) to a new page and map that
    (wp_page_copy), the old page losing a mapping and the TLB entry flushed; unless the PTE
    changed while the new page was charged (pte_same fails), when the new page goes back and
    the fault is retried."""
    pgd = state.mms[mm].pgd
    if state.mapcount[old] == 1 and filemap.page_index(state, old) is None:
        state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, set_flags=_PAGE_RW)
        return 0
    new = charged_page(state, cpu, mm)
    if new is None:
        return VM_FAULT_OOM
    pte = mmu.walk(state.pt, pgd, vaddr)
    if pte is None or pte[0] != old or not pte[1] & _PAGE_PRESENT:
        # !pte_same: the charge's reclaim or OOM kill unmapped the page meanwhile; retried.
        free_user_page(state, new, cpu)
        return 0
    map_new_anon_page(state, pgd, vaddr, new, mk_pte_flags(vm_flags, True), state.data[old])  # cow_user_page
    flush_tlb_mm_range(state, cpu, mm, vaddr, vaddr + PAGE_SIZE)  # ptep_clear_flush
    put_page(state, old, cpu)
    return 0


def translate(state: KernelState, cpu: int, vaddr: int, write: bool) -> int | PageFault:
    """A user access through the CPU's MMU, for the mm in its CR3: through the TLB, walking
    on a miss. The pfn, or the page fault."""
    tlb = state.tlb[cpu]
    assert tlb.pgd is not None, "a user access with init_mm in CR3"
    result, new = mmu.translate(state.pt, tlb, tlb.pgd, vaddr, write, True)
    state.tlb = (*state.tlb[:cpu], new, *state.tlb[cpu + 1 :])
    return result


def flush_tlb_mm_range(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """arch/x86/mm/tlb.c flush_tlb_mm_range on cpu: every CPU in mm_cpumask (its CR3 holds
    the mm) drops the range: this one by invlpg, the others by IPI (flush_tlb_others)."""
    pgd = state.mms[mm].pgd
    state.tlb = tuple(mmu.flush_tlb_range(t, start, end) if t.pgd == pgd else t for t in state.tlb)


def zap_page_range(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """unmap_vmas over [start, end): each PTE in the range cleared (zap_pte), then the TLB
    flushed (tlb_finish_mmu) and the page-table pages left empty in the range freed
    (free_pgtables)."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, flags in mmu.leaves(state.pt, pgd):
        if start <= vaddr < end:
            zap_pte(state, cpu, pgd, vaddr, pfn, flags)
    tlb_finish_mmu(state, cpu, mm, start, end)
    free_pgtables(state, cpu, mm, start, end)


def tlb_finish_mmu(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """mm/mmu_gather.c tlb_finish_mmu: the TLB flush of the gathered range, before the pages
    and tables are reused."""
    flush_tlb_mm_range(state, cpu, mm, start, end)


def free_pgtables(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """mm/memory.c free_pgtables (free_pgd_range between the neighbouring VMAs): page-table
    pages that map nothing but the unmapped range go back to the buddy allocator."""
    vmas = state.mms[mm].vmas
    floor = max((v.vm_end for v in vmas if v.vm_end <= start), default=0)
    ceiling = min((v.vm_start for v in vmas if v.vm_start >= end), default=mmu.TASK_SIZE_TOP)
    state.pt, freed = mmu.free_pgd_range(state.pt, state.mms[mm].pgd, start, end, floor, ceiling)
    for table in freed:
        free_page_account(state, table, cpu)


def change_protection(state: KernelState, cpu: int, mm: int, start: int, end: int, vm_flags: int) -> None:
    """mm/mprotect.c change_protection: the present PTEs in the range get the VMA's new rights
    (a page shared copy-on-write, a page-cache page in a private mapping and a clean one in
    a shared mapping stay read-only), then the range is flushed."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, _ in mmu.mapped(state.pt, pgd):
        if start <= vaddr < end:
            if vm_flags & mmap.VM_SHARED:
                rw = pfn in state.dirty
            else:
                rw = state.mapcount[pfn] == 1 and filemap.page_index(state, pfn) is None
            if vm_flags & mmap.VM_WRITE and rw:
                state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, set_flags=_PAGE_RW)
            else:
                state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, clear_flags=_PAGE_RW)
    flush_tlb_mm_range(state, cpu, mm, start, end)


def copy_page_range(state: KernelState, cpu: int, src: int, dst: int) -> bool:
    """fork's dup_mmap -> copy_page_range: every PTE of the parent is copied to the child
    (copy_one_pte): a swap entry gains a reference (swap_duplicate); a present page gains a
    mapping, and in a private mapping a writable one is write-protected in both. Then the
    parent's TLB is flushed (flush_tlb_mm in dup_mmap), whether or not the copy got through.
    Each PTE is read after the child's tables for it are allocated, since that allocation
    may reclaim the parent's pages. False when a page-table page is not to be had (the
    child's tables are the caller's to free; the parent's pages stay write-protected, to be
    reused on a write fault)."""
    spgd, dpgd = state.mms[src].pgd, state.mms[dst].pgd
    copied = True
    for vaddr, _, _ in mmu.leaves(state.pt, spgd):
        if not pte_alloc(state, cpu, dpgd, vaddr):
            copied = False
            break
        pte = mmu.walk(state.pt, spgd, vaddr)
        if pte is None:
            continue
        pfn, flags = pte
        if not flags & _PAGE_PRESENT:
            swapfile.swap_duplicate(state, pfn)
        else:
            vma = mmap.find_vma(state.mms[src].vmas, vaddr)
            if flags & _PAGE_RW and vma is not None and not vma.vm_flags & mmap.VM_SHARED:
                state.pt = mmu.change_pte_flags(state.pt, spgd, vaddr, clear_flags=_PAGE_RW)
                flags &= ~_PAGE_RW
            page_add_rmap(state, pfn)
        set_pte(state, dpgd, vaddr, pfn, flags)
    flush_tlb_mm_range(state, cpu, src, 0, mmu.TASK_SIZE_TOP)  # on failure too: dup_mmap's out: path
    return copied


def exit_mmap(state: KernelState, cpu: int, mm: int) -> None:
    """mm/mmap.c exit_mmap: every PTE zapped, every page-table page freed with the PGD
    (pgd_free), and no CPU left holding the mm in CR3 (its lazy users switch to init_mm)."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, flags in mmu.leaves(state.pt, pgd):
        zap_pte(state, cpu, pgd, vaddr, pfn, flags)
    state.pt, freed = mmu.pgd_free(state.pt, pgd)
    for table in freed:
        free_page_account(state, table, cpu)
    state.tlb = tuple(mmu.EMPTY_TLB if t.pgd == pgd else t for t in state.tlb)
