"""Mutants of the whole-kernel model: bugs at the boundaries between its subsystems (the
fault path and the page allocator, VMAs and page tables, page tables and the TLBs, reclaim
and the page tables, the page cache and the disk, exit and the scheduler, pipes and their
wait queue, signals and sleepers, fork and the controllers), each naming the invariant that
must catch it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkers.mutants import mutant
from model import kernel
from model.cgroup import cgroup, pids
from model.fs import pipe as fs_pipe
from model.hw import mmu
from model.mm import filemap, memory, mmap, swapfile, vmscan
from model.sched import core
from model.sched.sched import TASK_RUNNING

if TYPE_CHECKING:
    from model.kernel import KernelState
    from model.sched.model import SchedState

MEMORY = "model.mm.memory"
MMAP = "model.mm.mmap"
KERNEL = "model.kernel"

_brk = mmap.brk


def wp_page_always_reused(state: KernelState, cpu: int, mm: int, vaddr: int, old: int, vm_flags: int) -> int:
    """do_wp_page makes a shared copy-on-write page writable in place instead of copying it: the child's write shows in the parent."""
    state.pt = mmu.change_pte_flags(state.pt, state.mms[mm].pgd, vaddr, set_flags=mmu._PAGE_RW)
    return 0


def tlb_finish_without_flush(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """munmap's tlb_finish_mmu frees the pages without flushing the TLBs: a CPU keeps translating to a freed page."""


def exit_mmap_keeps_tables(state: KernelState, cpu: int, mm: int) -> None:
    """exit_mmap unmaps the pages but never frees the page tables (no free_pgtables, no pgd_free)."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, flags in mmu.leaves(state.pt, pgd):
        memory.zap_pte(state, cpu, pgd, vaddr, pfn, flags)
    state.tlb = tuple(mmu.EMPTY_TLB if t.pgd == pgd else t for t in state.tlb)


def merge_ignores_flags(vma: mmap.Vma, new: mmap.Vma) -> bool:
    """is_mergeable_vma ignores vm_flags: a VMA merges with a neighbour of other protections."""
    return vma.vm_file == new.vm_file


def brk_shrink_keeps_pages(
    vmas: mmap.Vmas, mm_start_brk: int, mm_brk: int, new_brk: int
) -> tuple[mmap.Vmas, int, list[tuple[int, int]]]:
    """sys_brk shrinks the heap VMA but does not unmap its pages: their PTEs stay beyond the VMA."""
    vmas, brk, _ = _brk(vmas, mm_start_brk, mm_brk, new_brk)
    return vmas, brk, []


def fork_shares_writable(state: KernelState, cpu: int, src: int, dst: int) -> bool:
    """copy_page_range copies writable PTEs without write-protecting them: parent and child write one page."""
    return _copy_ptes(state, cpu, src, dst, write_protect=False, swap_duplicate=True)


def fork_without_swap_duplicate(state: KernelState, cpu: int, src: int, dst: int) -> bool:
    """copy_one_pte copies a swap entry without swap_duplicate: the slot's count misses the child's entry, and the first swap-in frees a slot the other still holds."""
    return _copy_ptes(state, cpu, src, dst, write_protect=True, swap_duplicate=False)


def _copy_ptes(
    state: KernelState, cpu: int, src: int, dst: int, write_protect: bool, swap_duplicate: bool
) -> bool:
    spgd, dpgd = state.mms[src].pgd, state.mms[dst].pgd
    for vaddr, _, _ in mmu.leaves(state.pt, spgd):
        if not memory.pte_alloc(state, cpu, dpgd, vaddr):
            return False
        pte = mmu.walk(state.pt, spgd, vaddr)
        if pte is None:
            continue
        pfn, flags = pte
        if not flags & mmu._PAGE_PRESENT:
            if swap_duplicate:
                swapfile.swap_duplicate(state, pfn)
        else:
            if write_protect and flags & mmu._PAGE_RW:
                state.pt = mmu.change_pte_flags(state.pt, spgd, vaddr, clear_flags=mmu._PAGE_RW)
                flags &= ~mmu._PAGE_RW
            memory.page_add_rmap(state, pfn)
        memory.set_pte(state, dpgd, vaddr, pfn, flags)
    memory.flush_tlb_mm_range(state, cpu, src, 0, mmu.TASK_SIZE_TOP)
    return True


def exit_wakes_nobody(state: KernelState, parent: int, cpu: int) -> None:
    """exit_notify does not wake the parent (__wake_up_parent): a parent asleep in wait4 sleeps on."""


def syscall_keeps_nr(state: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int | None:
    """do_syscall_64 does not preset regs->ax to -ENOSYS: a number outside the table returns itself."""
    if nr in kernel.SYS_CALL_TABLE:
        return _do_syscall_64(state, cpu, nr, args)
    state.returns += ((nr, nr),)
    kernel.exit_to_usermode_loop(state, cpu)
    return nr


_do_syscall_64 = kernel.do_syscall_64


def protection_without_flush(
    state: KernelState, cpu: int, mm: int, start: int, end: int, vm_flags: int
) -> None:
    """change_protection write-protects the PTEs but skips flush_tlb_range: a stale writable TLB entry survives mprotect."""
    pgd = state.mms[mm].pgd
    for vaddr, _, _ in mmu.mapped(state.pt, pgd):
        if start <= vaddr < end and not vm_flags & mmap.VM_WRITE:
            state.pt = mmu.change_pte_flags(state.pt, pgd, vaddr, clear_flags=mmu._PAGE_RW)


def wp_page_copy_keeps_old_mapping(
    state: KernelState, cpu: int, mm: int, vaddr: int, old: int, vm_flags: int
) -> int:
    """wp_page_copy maps the copy but never drops the old page's mapping (no page_remove_rmap): its mapcount stays high and it is never freed."""
    if state.mapcount[old] == 1:
        return _do_wp_page(state, cpu, mm, vaddr, old, vm_flags)
    new = memory.charged_page(state, cpu, mm)
    if new is None:
        return memory.VM_FAULT_OOM
    memory.map_new_anon_page(
        state, state.mms[mm].pgd, vaddr, new, memory.mk_pte_flags(vm_flags, True), state.data[old]
    )
    memory.flush_tlb_mm_range(state, cpu, mm, vaddr, vaddr + mmu.PAGE_SIZE)
    return 0


_do_wp_page = memory.do_wp_page


def wake_up_without_enqueue(state: KernelState, queue: tuple[str, int], cpu: int) -> None:
    """__wake_up sets each sleeper TASK_RUNNING itself instead of try_to_wake_up: it is runnable on no run queue."""
    for t, sleep in sorted(state.sleeps.items()):
        if sleep.queue == queue and not sleep.woken:
            state.sleeps[t] = sleep._replace(woken=True)
            core.set_task(state.sched, t, state=TASK_RUNNING)


def exit_without_task_dead(state: SchedState, cpu: int) -> None:
    """do_exit makes the task a zombie but never reaches do_task_dead: the zombie stays on the CPU and its run queue."""


def flush_local_only(state: KernelState, cpu: int, mm: int, start: int, end: int) -> None:
    """flush_tlb_mm_range flushes this CPU only and sends no IPIs: another CPU running a thread of the mm keeps its entries."""
    if state.tlb[cpu].pgd == state.mms[mm].pgd:
        state.tlb = (*state.tlb[:cpu], mmu.flush_tlb_range(state.tlb[cpu], start, end), *state.tlb[cpu + 1 :])


def kill_without_wakeup(state: KernelState, t: int, cpu: int) -> None:
    """signal_wake_up is left out: a process killed while asleep in wait4 sleeps on with SIGKILL pending."""


def group_exit_one_thread(state: KernelState, tgid: int, code: int, cpu: int) -> None:
    """A fatal signal is queued to one thread only, not to the whole group (no SIGNAL_GROUP_EXIT, no zap_other_threads): its sibling threads run on."""
    t = next(t for t in kernel.thread_group(state, tgid) if not state.procs[t].exit_state)
    state.sigkill[t] = code
    kernel.signal_wake_up(state, t, cpu)


def pipe_write_wakes_nobody(state: KernelState, obj: int, cpu: int) -> None:
    """pipe_write leaves out wake_up_interruptible_sync_poll(EPOLLIN): a reader asleep on the empty pipe sleeps on though bytes came."""


def pipe_release_without_wakeup(state: KernelState, file: kernel.File, cpu: int) -> None:
    """pipe_release drops the reader or writer count but wakes nobody: a reader waits for good on a pipe whose last writer closed."""
    p = state.pipes[file.pipe]
    readers = p.readers - (file.f_mode == kernel.FMODE_READ)
    writers = p.writers - (file.f_mode == kernel.FMODE_WRITE)
    if readers or writers:
        state.pipes[file.pipe] = p._replace(readers=readers, writers=writers)
    else:
        _pipe_release(state, file, cpu)


_pipe_release = kernel.pipe_release


def merge_what_fits(pipe: Any, writer: int, total_len: int) -> tuple[Any, int]:
    """pipe_write merges as much of the head as fits in the last buffer, not the whole head or nothing: a small write is split, and another writer's bytes may come between its parts."""
    chars = total_len & (mmu.PAGE_SIZE - 1)
    if not pipe.bufs or not chars:
        return pipe, 0
    last = pipe.bufs[-1]
    chars = min(chars, mmu.PAGE_SIZE - last.offset - last.len)
    if not chars:
        return pipe, 0
    last = last._replace(runs=fs_pipe.append(last.runs, writer, chars))
    return pipe._replace(bufs=(*pipe.bufs[:-1], last)), chars


def no_sigpipe(state: KernelState, sig: int, t: int, cpu: int) -> None:
    """pipe_write fails with -EPIPE but sends no SIGPIPE: a writer to a pipe nobody reads runs on."""


def dup_fd_without_get_file(state: KernelState, fds: tuple[int, ...]) -> tuple[int, ...]:
    """dup_fd copies the parent's fd table without get_file: the files' f_count misses the child's fds, and the first close frees a file still in use."""
    return fds


def fork_tables_uncharged(state: KernelState, cpu: int, src: int, dst: int) -> bool:
    """copy_page_range allocates the child's page tables without __GFP_ACCOUNT: fork does not charge them to the memcg."""
    spgd, dpgd = state.mms[src].pgd, state.mms[dst].pgd
    for vaddr, pfn, flags in mmu.leaves(state.pt, spgd):
        if not flags & mmu._PAGE_PRESENT:
            swapfile.swap_duplicate(state, pfn)
        state.pt = mmu.change_pte_flags(state.pt, spgd, vaddr, clear_flags=mmu._PAGE_RW)
        pt = mmu.set_pte_at(
            state.pt,
            dpgd,
            vaddr,
            pfn,
            flags & ~mmu._PAGE_RW,
            lambda: memory.alloc_page(state, cpu, memory.MIGRATE_UNMOVABLE),
        )
        if pt is None:
            return False
        state.pt = pt
        if flags & mmu._PAGE_PRESENT:
            memory.page_add_rmap(state, pfn)
    memory.flush_tlb_mm_range(state, cpu, src, 0, mmu.TASK_SIZE_TOP)
    return True


def oom_anywhere(state: KernelState, memcg: int, cpu: int) -> bool:
    """The memcg OOM killer scans every task (the global tasklist), not the memcg's: it may kill a process outside the memcg."""
    if not _out_of_memory(state, cgroup.ROOT, cpu):
        return False
    kind, _, victim = state.events[-1]
    state.events = (*state.events[:-1], (kind, memcg, victim))  # reported as the memcg's kill
    return True


_out_of_memory = kernel.mem_cgroup_out_of_memory


def uncharge_keeps_counter(state: Any, memcg: int, nr_pages: int) -> None:
    """An uncharge clears page->mem_cgroup but never uncharges the page counters (cancel_charge left out)."""


def pids_charge_unchecked(state: Any, cg: int, num: int) -> int:
    """pids_try_charge charges every level without comparing it to pids.max: a fork passes the limit."""
    pids.pids_charge(state, cg, num)
    return 0


def release_keeps_pid(state: Any, cg: int) -> None:
    """release_task does not uncharge the pids controller (no cgroup_release): a reaped task still counts, and the cgroup fills up."""


def unmap_without_flush(state: KernelState, cpu: int, pfn: int, slot: int | None) -> None:
    """try_to_unmap_one clears the PTEs of a page it reclaims without ptep_clear_flush: a CPU keeps translating to the freed page."""
    for m in state.mms.values():
        for vaddr, p, _ in mmu.mapped(state.pt, m.pgd):
            if p != pfn:
                continue
            if slot is None:
                state.pt = mmu.pte_clear(state.pt, m.pgd, vaddr)
            else:
                memory.set_pte(state, m.pgd, vaddr, slot, 0)
                swapfile.swap_duplicate(state, slot)
    state.mapcount.pop(pfn, None)


def swap_in_keeps_slot(
    state: KernelState, cpu: int, mm: int, vaddr: int, slot: int, vm_flags: int, write: bool
) -> int:
    """do_swap_page maps the page read back but never calls swap_free: the slot stays counted for an entry that is gone, and is never freed."""
    pfn = memory.charged_page(state, cpu, mm)
    if pfn is None:
        return memory.VM_FAULT_OOM
    pgd = state.mms[mm].pgd
    if mmu.walk(state.pt, pgd, vaddr) != (slot, 0):
        memory.free_user_page(state, pfn, cpu)
        return 0
    memory.map_new_anon_page(
        state, pgd, vaddr, pfn, memory.mk_pte_flags(vm_flags, write), state.swap_data[slot]
    )
    return 0


def reclaim_drops_dirty_page(state: KernelState, cpu: int, pfn: int) -> bool:
    """shrink_page_list takes a dirty page-cache page as clean (no pageout): a store through a shared mapping is lost when the page is reclaimed."""
    if filemap.page_index(state, pfn) is not None:
        state.dirty = state.dirty - {pfn}
    return _shrink_page(state, cpu, pfn)


_shrink_page = vmscan.shrink_page


def mkclean_forgotten(state: KernelState, cpu: int, pfn: int) -> None:
    """Writeback cleans a page without page_mkclean: a writable PTE of a clean page survives, and stores through it never dirty the page again."""


def cow_fault_maps_the_cache(
    state: KernelState, cpu: int, mm: int, vaddr: int, vma: mmap.Vma, write: bool
) -> int:
    """do_fault takes a write to a private file mapping as do_shared_fault's: the process writes the page-cache page, and its private store reaches the file."""
    return _do_fault(state, cpu, mm, vaddr, vma._replace(vm_flags=vma.vm_flags | mmap.VM_SHARED), write)


_do_fault = memory.do_fault


def kswapd_not_woken(state: KernelState, cpu: int) -> None:
    """The allocator's slow path does not wake kswapd (no wake_all_kswapds): memory below the low watermark waits for direct reclaim."""


def put_page_leaves_lru(state: KernelState, pfn: int, cpu: int) -> None:
    """The last unmap frees an anonymous page without taking it off the LRU list (no del_page_from_lru_list): reclaim would find a freed page."""
    lru = state.lru
    _put_page(state, pfn, cpu)
    if pfn not in state.mapcount:
        state.lru = lru


_put_page = memory.put_page


_handle_mm_fault = memory.handle_mm_fault


def fault_at_vm_start_is_bad_area(state: KernelState, cpu: int, mm: int, vaddr: int, error_code: int) -> int:
    """__do_page_fault tests vaddr <= vma->vm_start for a bad area: the first page of every VMA faults with SIGSEGV."""
    vma = mmap.find_vma(state.mms[mm].vmas, vaddr)
    if vma is not None and vaddr == vma.vm_start:
        return memory.VM_FAULT_SIGSEGV
    return _handle_mm_fault(state, cpu, mm, vaddr, error_code)


def _mutant(name: str, breaks: str, engine: str, *patches: tuple[str, str, Callable[..., Any]]) -> None:
    mutant(f"kernel.{name}", model="kernel", breaks=f"kernel.{breaks}", engine=engine, patches=patches)


_mutant(
    "cow_write_shows_in_parent", "private_memory", "explore", (MEMORY, "do_wp_page", wp_page_always_reused)
)
_mutant(
    "munmap_without_tlb_flush",
    "tlb_coherent",
    "explore",
    (MEMORY, "tlb_finish_mmu", tlb_finish_without_flush),
)
_mutant("fault_at_vm_start_segv", "access_granted", "explore", (MEMORY, "handle_mm_fault", fault_at_vm_start_is_bad_area))
_mutant("exit_keeps_page_tables", "page_owner", "explore", (MEMORY, "exit_mmap", exit_mmap_keeps_tables))
_mutant(
    "vma_merge_across_protections", "vma_layout", "explore", (MMAP, "is_mergeable_vma", merge_ignores_flags)
)
_mutant("brk_shrink_without_unmap", "pte_in_vma", "explore", (MMAP, "brk", brk_shrink_keeps_pages))
_mutant(
    "fork_without_write_protect",
    "private_memory",
    "explore",
    (MEMORY, "copy_page_range", fork_shares_writable),
)
_mutant("exit_without_wakeup", "wait_wakeable", "explore", (KERNEL, "wake_up_parent", exit_wakes_nobody))
_mutant(
    "pipe_write_wakes_no_reader",
    "wait_wakeable",
    "explore",
    (KERNEL, "wake_up_pipe_readers", pipe_write_wakes_nobody),
)
_mutant(
    "pipe_release_wakes_nobody",
    "wait_wakeable",
    "explore",
    (KERNEL, "pipe_release", pipe_release_without_wakeup),
)
_mutant(
    "pipe_write_splits_small_writes",
    "pipe_write",
    "explore",
    ("model.fs.pipe", "merge_head", merge_what_fits),
)
_mutant("epipe_without_sigpipe", "pipe_write", "explore", (KERNEL, "send_sig", no_sigpipe))
_mutant("fork_without_get_file", "files", "explore", (KERNEL, "dup_fd", dup_fd_without_get_file))
_mutant("enosys_not_preset", "enosys", "explore", (KERNEL, "do_syscall_64", syscall_keeps_nr))
_mutant(
    "mprotect_without_tlb_flush",
    "tlb_coherent",
    "explore",
    (MEMORY, "change_protection", protection_without_flush),
)
_mutant(
    "cow_copy_keeps_old_mapping",
    "mapcount",
    "explore",
    (MEMORY, "do_wp_page", wp_page_copy_keeps_old_mapping),
)
_mutant(
    "wake_up_without_enqueue",
    "scheduler",
    "explore",
    (KERNEL, "wake_up", wake_up_without_enqueue),
)
_mutant(
    "exit_without_task_dead",
    "task_places",
    "explore",
    ("model.sched.core", "do_task_dead", exit_without_task_dead),
)
_mutant("tlb_flush_without_ipi", "tlb_coherent", "explore", (MEMORY, "flush_tlb_mm_range", flush_local_only))
_mutant("kill_without_wakeup", "signals", "explore", (KERNEL, "signal_wake_up", kill_without_wakeup))
_mutant("kill_one_thread", "signals", "explore", (KERNEL, "send_group_exit", group_exit_one_thread))
_mutant(
    "fork_page_tables_uncharged",
    "memcg_charged",
    "explore",
    (MEMORY, "copy_page_range", fork_tables_uncharged),
)
_mutant(
    "pids_max_ignored",
    "pids_fork_within_max",
    "explore",
    ("model.cgroup.pids", "pids_try_charge", pids_charge_unchecked),
)
_mutant("reap_keeps_pid", "pids_counted", "explore", ("model.cgroup.pids", "pids_release", release_keeps_pid))
_mutant("oom_outside_memcg", "oom_in_memcg", "stateful", (KERNEL, "mem_cgroup_out_of_memory", oom_anywhere))
_mutant(
    "uncharge_keeps_counter",
    "memcg_usage",
    "explore",
    ("model.cgroup.memcontrol", "cancel_charge", uncharge_keeps_counter),
)
_mutant(
    "swap_out_without_tlb_flush",
    "tlb_coherent",
    "explore",
    ("model.mm.vmscan", "try_to_unmap", unmap_without_flush),
)
_mutant(
    "fork_without_swap_duplicate",
    "swap_counted",
    "explore",
    (MEMORY, "copy_page_range", fork_without_swap_duplicate),
)
_mutant("swap_in_without_swap_free", "swap_counted", "explore", (MEMORY, "do_swap_page", swap_in_keeps_slot))
_mutant(
    "reclaim_without_pageout",
    "file_data",
    "explore",
    ("model.mm.vmscan", "shrink_page", reclaim_drops_dirty_page),
)
_mutant(
    "writeback_without_mkclean",
    "pte_in_vma",
    "explore",
    ("model.mm.filemap", "page_mkclean", mkclean_forgotten),
)
_mutant("private_file_write_shared", "file_data", "explore", (MEMORY, "do_fault", cow_fault_maps_the_cache))
_mutant(
    "kswapd_never_woken", "kswapd_woken", "explore", ("model.mm.vmscan", "wakeup_kswapd", kswapd_not_woken)
)
_mutant("unmap_leaves_page_on_lru", "lru", "explore", (MEMORY, "put_page", put_page_leaves_lru))
