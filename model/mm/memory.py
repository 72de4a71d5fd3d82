"""mm/memory.c and the TLB flushes of arch/x86/mm/tlb.c: user page tables filled by page
faults, copied by fork and torn down by munmap and exit, in the whole-kernel model.

Anonymous memory only: a private anonymous page is allocated zeroed on the first touch
(do_anonymous_page) and charged to its mm's memcg, shared copy-on-write by fork (copy_page_range write-protects both
sides), and copied or reused on a write fault (do_wp_page). Page-table pages come from the
buddy allocator as the faults need them (__pte_alloc and its upper levels), charged to the
allocating task's memcg, and go back when their range is unmapped (free_pgtables) or the mm
dies (exit_mmap).

A TLB flush reaches every CPU whose CR3 holds the mm (mm_cpumask: the CPUs running it and
those lazily keeping it under a kernel thread or idle), as flush_tlb_mm_range's IPIs do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.hw import mmu
from model.hw.mmu import _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, PAGE_SIZE, PageFault
from model.mm import buddy, mmap
from model.mm.mmzone import MIGRATETYPE

if TYPE_CHECKING:
    from model.kernel import KernelState

MIGRATE_MOVABLE = MIGRATETYPE["MIGRATE_MOVABLE"]
MIGRATE_UNMOVABLE = MIGRATETYPE["MIGRATE_UNMOVABLE"]
VM_FAULT_OOM = 0x0001
VM_FAULT_SIGSEGV = 0x0040


def vma_pte_flags(vm_flags: int) -> int:
    """vm_get_page_prot for a private mapping: present and user; writable only with VM_WRITE
    (a private writable page shared copy-on-write is mapped read-only instead)."""
    return _PAGE_PRESENT | _PAGE_USER | (_PAGE_RW if vm_flags & mmap.VM_WRITE else 0)


def alloc_page(state: KernelState, cpu: int, migratetype: int) -> int | None:
    return buddy.alloc_block(state.mm, 0, migratetype, cpu)


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


def set_pte_at(state: KernelState, cpu: int, pgd: int, vaddr: int, pfn: int, flags: int) -> bool:
    """Install a PTE, allocating the missing page-table pages (__pud_alloc, __pmd_alloc,
    __pte_alloc); False, with nothing allocated kept, when a table page is not to be had.

    Each table page is allocated before the tables are rebuilt from state.pt, since its
    charge may run the OOM killer, whose reaper changes another mm's page tables. __pte_alloc
    too allocates before it takes the page-table lock, and frees its page if the table was
    filled meanwhile."""
    spare: list[int] = []
    while True:
        pool = list(spare)
        pt = mmu.set_pte_at(state.pt, pgd, vaddr, pfn, flags, lambda pool=pool: pool.pop() if pool else None)  # type: ignore[misc]
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


def put_page(state: KernelState, pfn: int, cpu: int) -> None:
    """A mapping of an anonymous page goes (page_remove_rmap); the last one frees it,
    uncharged from its memcg."""
    n = state.mapcount[pfn] - 1
    if n:
        state.mapcount[pfn] = n
        return
    del state.mapcount[pfn]
    state.data.pop(pfn, None)
    state.mem_cgroup_uncharge(pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)


def handle_mm_fault(state: KernelState, cpu: int, mm: int, vaddr: int, error_code: int) -> int:
    """arch/x86/mm/fault.c __do_page_fault then handle_mm_fault: a fault outside every VMA or
    against its rights is VM_FAULT_SIGSEGV (bad_area); otherwise a missing page is
    do_anonymous_page's, a write to a present read-only page in a writable VMA do_wp_page's.
    0 when the access may be retried."""
    vma = mmap.find_vma(state.mms[mm].vmas, vaddr)
    write = bool(error_code & mmu.X86_PF_WRITE)
    if vma is None or vaddr < vma.vm_start:
        return VM_FAULT_SIGSEGV
    if (write and not vma.vm_flags & mmap.VM_WRITE) or not vma.vm_flags & (mmap.VM_READ | mmap.VM_WRITE):
        return VM_FAULT_SIGSEGV  # access_error
    pgd = state.mms[mm].pgd
    pte = mmu.walk(state.pt, pgd, vaddr)
    if pte is None or not pte[1] & _PAGE_PRESENT:
        return do_anonymous_page(state, cpu, mm, vaddr, vma.vm_flags)
    if write and not pte[1] & _PAGE_RW:
        return do_wp_page(state, cpu, mm, vaddr, pte[0], vma.vm_flags)
    return 0  # a spurious fault: another path fixed the PTE already


def do_anonymous_page(state: KernelState, cpu: int, mm: int, vaddr: int, vm_flags: int) -> int:
    """A zeroed movable page (alloc_zeroed_user_highpage_movable), charged to the mm's memcg
    (mem_cgroup_try_charge_delay), mapped with the VMA's rights (set_pte_at, allocating the
    page tables); VM_FAULT_OOM when there is no page or no charge."""
    pfn = alloc_page(state, cpu, MIGRATE_MOVABLE)
    if pfn is None:
        return VM_FAULT_OOM
    if not state.mem_cgroup_charge(pfn, mm, cpu):
        buddy.free_block(state.mm, pfn, 0, cpu)  # oom_free_page
        return VM_FAULT_OOM
    if not set_pte_at(state, cpu, state.mms[mm].pgd, vaddr, pfn, vma_pte_flags(vm_flags)):
        state.mem_cgroup_uncharge(pfn)
        buddy.free_block(state.mm, pfn, 0, cpu)
        return VM_FAULT_OOM
    state.mapcount[pfn] = 1
    state.data[pfn] = 0
    return 0


def do_wp_page(state: KernelState, cpu: int, mm: int, vaddr: int, old: int, vm_flags: int) -> int:
    """A write to a copy-on-write page: reuse it when this is its only mapping
    (wp_page_reuse), else copy it to a new page and map that (wp_page_copy), the old page
    losing a mapping and the TLB entry flushed; unless the PTE changed while the new page
    was charged (pte_same fails), when the new page goes back and the fault is retried."""
    pgd = state.mms[mm].pgd
    if state.mapcount[old] == 1:
        state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, set_flags=_PAGE_RW)
        return 0
    new = alloc_page(state, cpu, MIGRATE_MOVABLE)
    if new is None:
        return VM_FAULT_OOM
    if not state.mem_cgroup_charge(new, mm, cpu):
        buddy.free_block(state.mm, new, 0, cpu)
        return VM_FAULT_OOM
    pte = mmu.walk(state.pt, pgd, vaddr)
    if pte is None or pte[0] != old or not pte[1] & _PAGE_PRESENT:
        # !pte_same: the charge's OOM kill reaped this mm meanwhile; the fault is retried.
        state.mem_cgroup_uncharge(new)
        buddy.free_block(state.mm, new, 0, cpu)
        return 0
    state.data[new] = state.data.get(old, 0)  # cow_user_page
    state.mapcount[new] = 1
    set_pte_at(state, cpu, pgd, vaddr, new, vma_pte_flags(vm_flags))  # the tables are there
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
    """unmap_vmas over [start, end): each present PTE cleared and its page's mapping dropped,
    then the TLB flushed (tlb_finish_mmu) and the page-table pages left empty in the range
    freed (free_pgtables)."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, _ in mmu.mapped(state.pt, pgd):
        if start <= vaddr < end:
            state.pt = mmu.pte_clear(state.pt, pgd, vaddr)
            put_page(state, pfn, cpu)
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
    (a copy-on-write page stays read-only), then the range is flushed."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, _ in mmu.mapped(state.pt, pgd):
        if start <= vaddr < end:
            rw = vm_flags & mmap.VM_WRITE and state.mapcount[pfn] == 1
            if rw:
                state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, set_flags=_PAGE_RW)
            else:
                state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, clear_flags=_PAGE_RW)
    flush_tlb_mm_range(state, cpu, mm, start, end)


def copy_page_range(state: KernelState, cpu: int, src: int, dst: int) -> bool:
    """fork's dup_mmap -> copy_page_range: every present PTE of the parent is copied to the
    child; a private writable page is write-protected in both (copy_one_pte) and gains a
    mapping; then the parent's TLB is flushed (flush_tlb_mm in dup_mmap), whether or not the
    copy got through. False when a page-table page is not to be had (the child's tables are
    the caller's to free; the parent's pages stay write-protected, to be reused on a write
    fault)."""
    spgd, dpgd = state.mms[src].pgd, state.mms[dst].pgd
    copied = True
    for vaddr, pfn, flags in mmu.mapped(state.pt, spgd):
        if flags & _PAGE_RW:
            state.pt = mmu.change_pte_flags(state.pt, spgd, vaddr, clear_flags=_PAGE_RW)
            flags &= ~_PAGE_RW
        if not set_pte_at(state, cpu, dpgd, vaddr, pfn, flags):
            copied = False
            break
        state.mapcount[pfn] += 1
    flush_tlb_mm_range(state, cpu, src, 0, mmu.TASK_SIZE_TOP)  # on failure too: dup_mmap's out: path
    return copied


def exit_mmap(state: KernelState, cpu: int, mm: int) -> None:
    """mm/mmap.c exit_mmap: every page unmapped, every page-table page freed with the PGD
    (pgd_free), and no CPU left holding the mm in CR3 (its lazy users switch to init_mm)."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, _ in mmu.mapped(state.pt, pgd):
        state.pt = mmu.pte_clear(state.pt, pgd, vaddr)
        put_page(state, pfn, cpu)
    state.pt, freed = mmu.pgd_free(state.pt, pgd)
    for table in freed:
        free_page_account(state, table, cpu)
    state.tlb = tuple(mmu.EMPTY_TLB if t.pgd == pgd else t for t in state.tlb)
