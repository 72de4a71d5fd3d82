"""Invariants of the whole kernel (model "kernel"): every subsystem's own rules on the
subsystem inside, and the rules that cross their boundaries: who owns each page frame, page
tables against VMAs and the TLBs, what processes read back, where each task is and what can
wake it, signals, files and pipes.

The buddy allocator's and SLUB's invariants are not rerun here: the kernel's page_owner
rule covers what crosses into them (every allocated block owned exactly once), and their
own suites check them on their own.
"""

from __future__ import annotations

from collections import Counter

from invariants import REGISTRY, goal, invariant
from model.cgroup.cgroup import ROOT, in_subtree, path
from model.cgroup.memcontrol import compound_nr
from model.contract import Step
from model.fs import pipe as fs_pipe
from model.fs.pipe import PIPE_BUF
from model.hw import mmu
from model.hw.mmu import _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, PAGE_SIZE
from model.kernel import (
    ENOSYS,
    EPIPE,
    EXIT_ZOMBIE,
    FMODE_READ,
    FMODE_WRITE,
    INIT,
    KTHREADD,
    NR,
    SIGPIPE,
    SIGSEGV,
    SYS_CALL_TABLE,
    SYSCALL_ACTIONS,
    KernelState,
    children,
    reapable,
    sig_ignored,
    thread_group,
)
from model.mm import mmap
from model.mm.mmzone import WMARK_LOW
from model.mm.vmscan import zone_watermarks_ok
from model.sched.sched import TASK_INTERRUPTIBLE, TASK_RUNNING

MODEL = "kernel"
PROT = mmap.VM_READ | mmap.VM_WRITE | mmap.VM_EXEC


@invariant(
    "kernel.page_owner",
    model=MODEL,
    statement="Every allocated block of page frames has exactly one owner: a slab, a page-table page "
    "of a live mm, an anonymous page mapped by at least one PTE, the page cache, or a live pipe's "
    "buffer or tmp_page; nothing owned is free.",
    source="mm/page_alloc.c; mm/slub.c allocate_slab, __free_slab; mm/memory.c __pte_alloc, "
    "free_pgtables; kernel/fork.c mm_init (pgd_alloc), mmdrop (pgd_free); mm/filemap.c "
    "add_to_page_cache_lru; mm/vmscan.c __remove_mapping; fs/pipe.c pipe_write, "
    "anon_pipe_buf_release, free_pipe_info",
)
def page_owner(state: KernelState) -> list[str]:
    owners: Counter[tuple[int, int]] = Counter()
    what: dict[tuple[int, int], str] = {}
    for pfn, slab in state.slub.slabs.items():
        owners[(pfn, slab.order)] += 1
        what[(pfn, slab.order)] = f"a slab of {slab.cache}"
    for mm, m in sorted(state.mms.items()):
        for table in mmu.table_pages(state.pt, m.pgd):
            owners[(table, 0)] += 1
            what[(table, 0)] = f"a page table of mm {mm:#x}"
    cached = set(state.page_cache.values())
    for pfn in set(state.mapcount) - cached:
        owners[(pfn, 0)] += 1
        what[(pfn, 0)] = "an anonymous page"
    for index, pfn in sorted(state.page_cache.items()):
        owners[(pfn, 0)] += 1
        what[(pfn, 0)] = f"page {index} of /data in the page cache"
    for obj, pipe in sorted(state.pipes.items()):
        for pfn in fs_pipe.pages(pipe):
            owners[(pfn, 0)] += 1
            what[(pfn, 0)] = f"a buffer of pipe {obj:#x}"
    allocated = set(state.mm.allocated)
    out = [f"pfn {pfn} is owned {n} times" for (pfn, _), n in sorted(owners.items()) if n > 1]
    out += [f"pfn {pfn} (order {o}), {what[(pfn, o)]}, is free" for pfn, o in sorted(set(owners) - allocated)]
    out += [
        f"pfn {pfn} (order {o}) is allocated but nobody owns it" for pfn, o in sorted(allocated - set(owners))
    ]
    orphans = set(state.pt.tables) - {t for m in state.mms.values() for t in mmu.table_pages(state.pt, m.pgd)}
    out += [f"page-table page {pfn} belongs to no live mm" for pfn in sorted(orphans)]
    return out


@invariant(
    "kernel.mapcount",
    model=MODEL,
    statement="A user page's mapcount is the number of present PTEs mapping it, in every mm "
    "together; every mapped page holds a word.",
    source="mm/rmap.c page_add_new_anon_rmap, page_add_file_rmap, page_dup_rmap, page_remove_rmap",
)
def mapcount(state: KernelState) -> list[str]:
    maps = Counter(pfn for m in state.mms.values() for _, pfn, _ in mmu.mapped(state.pt, m.pgd))
    out = [
        f"pfn {pfn}: mapcount {state.mapcount.get(pfn, 0)}, but {maps.get(pfn, 0)} PTEs map it"
        for pfn in sorted(set(maps) | set(state.mapcount))
        if maps.get(pfn, 0) != state.mapcount.get(pfn, 0)
    ]
    out += [f"pfn {pfn} is mapped but holds no word" for pfn in sorted(set(maps) - set(state.data))]
    return out


@invariant(
    "kernel.pte_in_vma",
    model=MODEL,
    statement="Every PTE, present or a swap entry, lies inside a VMA of its mm, and a present one "
    "grants no more than the VMA allows: user access, and writes only in a VM_WRITE VMA: in a private "
    "one to an anonymous page no other PTE maps (copy-on-write), in a shared one to a dirty page-cache "
    "page (write notification).",
    source="mm/memory.c do_anonymous_page, do_wp_page, do_fault, copy_one_pte; mm/mprotect.c "
    "change_pte_range; mm/mmap.c unmap_region, vma_wants_writenotify; mm/rmap.c page_mkclean",
)
def pte_in_vma(state: KernelState) -> list[str]:
    out = []
    cached = set(state.page_cache.values())
    for mm, m in sorted(state.mms.items()):
        for vaddr, pfn, flags in mmu.leaves(state.pt, m.pgd):
            vma = mmap.find_vma(m.vmas, vaddr)
            if vma is None or vaddr < vma.vm_start:
                out.append(f"mm {mm:#x}: a PTE maps {vaddr:#x} (pfn or slot {pfn}), outside every VMA")
                continue
            if not flags & _PAGE_PRESENT:
                continue
            if not flags & _PAGE_USER:
                out.append(f"mm {mm:#x}: the PTE of {vaddr:#x} is not a user one")
            if not flags & _PAGE_RW:
                continue
            if not vma.vm_flags & mmap.VM_WRITE:
                out.append(f"mm {mm:#x}: {vaddr:#x} is writable in a VMA without VM_WRITE")
            elif vma.vm_flags & mmap.VM_SHARED:
                if pfn not in state.dirty:
                    out.append(f"mm {mm:#x}: {vaddr:#x} is writable, but page-cache pfn {pfn} is clean")
            elif pfn in cached:
                out.append(f"mm {mm:#x}: {vaddr:#x} is writable in a private mapping of page-cache pfn {pfn}")
            elif state.mapcount.get(pfn, 0) > 1:
                out.append(
                    f"mm {mm:#x}: {vaddr:#x} is writable, but pfn {pfn} is mapped {state.mapcount[pfn]} times"
                )
    return out


@invariant(
    "kernel.tlb_coherent",
    model=MODEL,
    statement="After every entry into the kernel has returned, no CPU's TLB maps a page its page "
    "tables do not map there, or grants a right they do not; a CPU running a user task has that "
    "task's mm in CR3.",
    source="arch/x86/mm/tlb.c flush_tlb_mm_range, switch_mm_irqs_off; mm/mmu_gather.c tlb_finish_mmu",
)
def tlb_coherent(state: KernelState) -> list[str]:
    out = []
    for cpu, tlb in enumerate(state.tlb):
        for vaddr, (pfn, flags), now in mmu.stale_entries(state.pt, tlb):
            if now is None or now[0] != pfn or flags & ~now[1] & (_PAGE_RW | _PAGE_USER):
                out.append(
                    f"cpu {cpu}: the TLB maps {vaddr:#x} to pfn {pfn} (flags {flags:#x}); the page tables: {now}"
                )
        p = state.procs.get(state.sched.rqs[cpu].curr)
        if p is not None and p.mm is not None and tlb.pgd != state.mms[p.mm].pgd:
            out.append(
                f"cpu {cpu} runs task {state.sched.rqs[cpu].curr} with pgd {tlb.pgd} in CR3, not its own"
            )
    return out


@invariant(
    "kernel.private_memory",
    model=MODEL,
    statement="Every page a process has mapped, present or swapped out, reads back the word it last "
    "stored there; a page it has not stored to reads zero, or in a file mapping the file's word; a "
    "page of a shared mapping reads the last word stored to that file page through any shared "
    "mapping. No other process's private store shows through (copy-on-write after fork), and no "
    "private store survives an unmap.",
    source="mm/memory.c do_wp_page, wp_page_copy, do_cow_fault, do_shared_fault, do_swap_page, "
    "copy_one_pte; mm/vmscan.c shrink_page_list; kernel/fork.c dup_mmap",
)
def private_memory(state: KernelState) -> list[str]:
    out = []
    for mm, m in sorted(state.mms.items()):
        stored = dict(state.stored[mm])
        for vaddr, pfn, flags in mmu.leaves(state.pt, m.pgd):
            vma = mmap.find_vma(m.vmas, vaddr)
            if vma is None or vaddr < vma.vm_start:
                continue  # pte_in_vma's
            file_word = state.file_stored.get(mmap.linear_page_index(vma, vaddr), 0) if vma.vm_file else 0
            want = file_word if vma.vm_flags & mmap.VM_SHARED else stored.get(vaddr, file_word)
            word = state.data.get(pfn) if flags & _PAGE_PRESENT else state.swap_data.get(pfn)
            if word != want:
                where = "" if flags & _PAGE_PRESENT else f" (in swap slot {pfn})"
                out.append(f"mm {mm:#x}: {vaddr:#x} reads {word}{where}, but {want} was stored there")
    return out


@invariant(
    "kernel.file_data",
    model=MODEL,
    statement="Each page of /data holds the last word stored to it through a shared mapping (zero if "
    "none): in its page-cache page if cached, else on the disk; a clean cached page holds what the "
    "disk holds; only pages inside the file are cached.",
    source="mm/filemap.c; mm/page-writeback.c clear_page_dirty_for_io; mm/vmscan.c pageout, "
    "__remove_mapping; mm/memory.c do_shared_fault, do_cow_fault",
)
def file_data(state: KernelState) -> list[str]:
    out = [
        f"page {i} of /data is cached but the file has {state.file_pages}"
        for i in state.page_cache
        if i >= state.file_pages
    ]
    for index in range(state.file_pages):
        want = state.file_stored.get(index, 0)
        pfn = state.page_cache.get(index)
        word = state.disk.get(index, 0) if pfn is None else state.data.get(pfn)
        if word != want:
            where = "on the disk" if pfn is None else f"in page-cache pfn {pfn}"
            out.append(f"page {index} of /data holds {word} {where}, but {want} was stored to it")
        if pfn is not None and pfn not in state.dirty and word != state.disk.get(index, 0):
            out.append(f"page {index} of /data is clean in pfn {pfn} but differs from the disk")
    out += [
        f"dirty pfn {pfn} is not in the page cache"
        for pfn in sorted(state.dirty - set(state.page_cache.values()))
    ]
    return out


@invariant(
    "kernel.swap_counted",
    model=MODEL,
    statement="Each swap slot in use is held by exactly as many swap entries (in every mm together) "
    "as its count says and holds a word; a slot no entry holds is free; every slot is in the swap area.",
    source="mm/swapfile.c swap_duplicate, swap_free, get_swap_page; mm/rmap.c try_to_unmap_one; "
    "mm/memory.c copy_one_pte, zap_pte_range, do_swap_page",
)
def swap_counted(state: KernelState) -> list[str]:
    held = Counter(
        slot
        for m in state.mms.values()
        for _, slot, flags in mmu.leaves(state.pt, m.pgd)
        if not flags & _PAGE_PRESENT
    )
    out = [
        f"swap slot {slot} has count {state.swap_map.get(slot, 0)}, but {held.get(slot, 0)} swap entries hold it"
        for slot in sorted(set(held) | set(state.swap_map))
        if held.get(slot, 0) != state.swap_map.get(slot, 0)
    ]
    out += [
        f"swap slot {slot} is in use but holds no word"
        for slot in sorted(set(state.swap_map) - set(state.swap_data))
    ]
    out += [
        f"swap slot {slot} is free but holds a word"
        for slot in sorted(set(state.swap_data) - set(state.swap_map))
    ]
    out += [
        f"swap slot {slot} is outside the {state.nr_swap} slots"
        for slot in sorted(state.swap_map)
        if slot >= state.nr_swap
    ]
    return out


@invariant(
    "kernel.lru",
    model=MODEL,
    statement="The LRU list holds every user page once: each anonymous page and each page-cache "
    "page, and nothing else.",
    source="mm/swap.c lru_cache_add; mm/vmscan.c isolate_lru_pages, __remove_mapping; mm/memory.c "
    "do_anonymous_page, wp_page_copy (lru_cache_add_active_or_unevictable)",
)
def lru(state: KernelState) -> list[str]:
    want = set(state.mapcount) | set(state.page_cache.values())
    seen = Counter(state.lru)
    out = [f"pfn {pfn} is on the LRU {n} times" for pfn, n in sorted(seen.items()) if n > 1]
    out += [f"user pfn {pfn} is not on the LRU" for pfn in sorted(want - set(seen))]
    out += [f"pfn {pfn} is on the LRU but is no user page" for pfn in sorted(set(seen) - want)]
    return out


def _order0_allocated(before: KernelState, after: KernelState) -> bool:
    """The step allocated a page through the kernel's page allocator and no slab. SLUB takes
    its pages from the buddy allocator itself, without waking kswapd, and its failing
    allocation drains the per-CPU lists, which may lift the free pages above the low
    watermark before the next allocation looks at them: steps that make a slab are left out."""
    new = set(after.mm.allocated) - set(before.mm.allocated)
    if set(after.slub.slabs) - set(before.slub.slabs):
        return False
    return any(order == 0 for _, order in new)


@invariant(
    "kernel.kswapd_woken",
    model=MODEL,
    statement="A page allocation that finds the free pages at or below the low watermark leaves "
    "kswapd awake (it sleeps again only after its own reclaim); steps that make a slab are not judged.",
    source="mm/page_alloc.c __alloc_pages_slowpath (wake_all_kswapds); mm/vmscan.c wakeup_kswapd, "
    "kswapd_try_to_sleep",
    transition=True,
)
def kswapd_woken(before: KernelState, step: Step, after: KernelState) -> list[str]:
    if zone_watermarks_ok(before, 0, WMARK_LOW) or not _order0_allocated(before, after):
        return []
    t = after.sched.tasks[after.kswapd]
    if t.state == TASK_INTERRUPTIBLE and not t.on_rq:
        return [
            f"a page was allocated below the low watermark ({_free(before)} pages free), and kswapd sleeps"
        ]
    return []


def _free(state: KernelState) -> int:
    return sum(z.nr_free_pages for z in state.mm.zones)


@invariant(
    "kernel.vma_layout",
    model=MODEL,
    statement="Each mm's VMAs are sorted, page-aligned and disjoint, abutting ones with equal flags "
    "merged, one vm_area_struct object each; every page in them has the rights mmap, mprotect or brk "
    "asked for it, and no page outside them was asked for.",
    source="mm/mmap.c vma_merge, __split_vma, do_munmap, do_brk_flags; mm/mprotect.c mprotect_fixup",
)
def vma_layout(state: KernelState) -> list[str]:
    out = []
    for mm, m in sorted(state.mms.items()):
        out += [f"mm {mm:#x}: {msg}" for msg in mmap.vma_merge_ok(m.vmas)]
        if len(m.vma_objects) != len(m.vmas) or len(set(m.vma_objects)) != len(m.vma_objects):
            out.append(f"mm {mm:#x}: {len(m.vmas)} VMAs but vm_area_struct objects {m.vma_objects}")
        have = {v: vma.vm_flags & PROT for vma in m.vmas for v in range(vma.vm_start, vma.vm_end, PAGE_SIZE)}
        asked = dict(state.asked[mm])
        for v in sorted(set(have) | set(asked)):
            if have.get(v) != asked.get(v):
                out.append(
                    f"mm {mm:#x}: page {v:#x} has rights {have.get(v)}, but {asked.get(v)} were asked for"
                )
    return out


@invariant(
    "kernel.task_places",
    model=MODEL,
    statement="Every task is in exactly one place: running on one CPU, queued on one run queue, "
    "asleep (on a wait queue, or kthreadd waiting for work), or a zombie off every queue; a live task's "
    "parent is alive or a zombie-reaping ancestor, and a user process has its own mm.",
    source="kernel/sched/core.c; kernel/exit.c do_exit, exit_notify, forget_original_parent",
)
def task_places(state: KernelState) -> list[str]:
    out = []
    running = Counter(state.sched.rqs[cpu].curr for cpu in range(len(state.tlb)))
    for pid, p in sorted(state.procs.items()):
        t = state.sched.tasks.get(pid)
        if p.exit_state == EXIT_ZOMBIE:
            if t is not None and t.on_rq:
                out.append(f"zombie {pid} is still queued")
            if p.mm is not None:
                out.append(f"zombie {pid} still has an mm")
            continue
        if t is None:
            out.append(f"task {pid} is alive but the scheduler has no such task")
            continue
        places = (
            running[pid]
            + (bool(t.on_rq) and not running[pid])
            + (not t.on_rq and t.state == TASK_INTERRUPTIBLE)
        )
        if places != 1:
            out.append(f"task {pid} is in {places} places (running on {running[pid]} CPUs, on_rq {t.on_rq})")
        if p.parent not in state.procs and p.parent != 0:
            out.append(f"task {pid}'s parent {p.parent} is gone")
    groups: dict[int, set[int]] = {}
    for p in state.procs.values():
        if p.mm is not None:
            groups.setdefault(p.mm, set()).add(p.tgid)
    out += [
        f"mm {mm:#x} is shared by the thread groups {sorted(g)}"
        for mm, g in sorted(groups.items())
        if len(g) > 1
    ]
    out += [f"mm {mm:#x} belongs to no process" for mm in sorted(set(state.mms) - set(groups))]
    return out


@invariant(
    "kernel.wait_wakeable",
    model=MODEL,
    statement="No task sleeps without something left to wake it. A task asleep interruptibly is on a "
    "wait queue (kthreadd aside), off the run queues: in wait4, with a child not yet reapable and "
    "none reapable (whose exit would have woken it); on a pipe, reading an empty one that has a "
    "writer or writing a full one that has a reader.",
    source="kernel/exit.c do_wait, exit_notify (__wake_up_parent), delay_group_leader; fs/pipe.c "
    "pipe_read, pipe_write, pipe_release",
)
def wait_wakeable(state: KernelState) -> list[str]:
    out = []
    for pid, t in sorted(state.sched.tasks.items()):
        if t.state == TASK_INTERRUPTIBLE and not t.on_rq and pid not in (KTHREADD, state.kswapd):
            sleep = state.sleeps.get(pid)
            if sleep is None or sleep.woken:
                out.append(f"task {pid} sleeps on no wait queue")
    for pid, sleep in sorted(state.sleeps.items()):
        t = state.sched.tasks[pid]
        if sleep.woken:
            if t.state == TASK_INTERRUPTIBLE and not t.on_rq:
                out.append(f"task {pid} was woken from {sleep.queue[0]} but still sleeps")
            continue
        if t.state != TASK_INTERRUPTIBLE or t.on_rq:
            out.append(f"task {pid} is on {sleep.queue[0]} but is {t.state}, on_rq {t.on_rq}")
        kind, key = sleep.queue
        if kind == "wait_chldexit":
            kids = children(state, pid)
            if all(reapable(state, c) for c in kids):
                out.append(f"task {pid} sleeps in wait4 with no child left to wake it")
            zombies = [c for c in kids if reapable(state, c)]
            if zombies:
                out.append(f"task {pid} sleeps in wait4 though its children {zombies} can be reaped")
            continue
        pipe = state.pipes.get(key)
        if pipe is None:
            out.append(f"task {pid} sleeps on pipe {key:#x}, which is freed")
        elif sleep.nr == NR["read"] and (pipe.bufs or not pipe.writers):
            out.append(
                f"task {pid} sleeps reading pipe {key:#x}, which holds {pipe.len} bytes and has {pipe.writers} writers"
            )
        elif sleep.nr == NR["write"] and (not pipe.full or not pipe.readers):
            out.append(
                f"task {pid} sleeps writing pipe {key:#x}, which has {len(pipe.bufs)} of {pipe.buffers} "
                f"buffers full and {pipe.readers} readers"
            )
    return out


@invariant(
    "kernel.signals",
    model=MODEL,
    statement="A group exit (SIGKILL pending) is on every live thread of its process or on none; a "
    "pending signal is one its handler does not ignore; no task asleep on a wait queue has a signal "
    "of its own pending, and a process's signals have a thread awake to take them (signal_wake_up).",
    source="kernel/signal.c complete_signal (SIGNAL_GROUP_EXIT), prepare_signal (sig_ignored), "
    "do_sigaction, signal_wake_up, retarget_shared_pending",
)
def signals(state: KernelState) -> list[str]:
    out = []
    for pid in sorted({*state.sigkill, *state.pending}):
        p = state.procs.get(pid)
        if p is None or p.exit_state:
            out.append(f"task {pid} has a signal pending but is not alive")
    for tgid in sorted(state.shared_pending):
        if not any(not state.procs[t].exit_state for t in thread_group(state, tgid)):
            out.append(f"process {tgid} has signals pending but no live thread")
    pending = [(t, sig) for t, sigs in state.pending.items() for sig in sigs]
    pending += [(tgid, sig) for tgid, sigs in state.shared_pending.items() for sig in sigs]
    for pid in sorted(state.sigkill):
        p = state.procs.get(pid)
        if p is None:
            continue
        spared = [
            c for c in thread_group(state, p.tgid) if not state.procs[c].exit_state and c not in state.sigkill
        ]
        if spared:
            out.append(f"task {pid} has SIGKILL pending but its threads {spared} do not")
    for t, sig in sorted(pending):
        if t in state.procs and sig_ignored(state, state.procs[t].tgid, sig) and state.procs[t].tgid != INIT:
            out.append(f"signal {sig} is pending on {t}, whose handler ignores it")
    asleep = {pid for pid, sleep in state.sleeps.items() if not sleep.woken}
    for pid in sorted(asleep & {*state.sigkill, *state.pending}):
        out.append(f"task {pid} sleeps on {state.sleeps[pid].queue[0]} with a signal of its own pending")
    for tgid in sorted(state.shared_pending):
        live = [t for t in thread_group(state, tgid) if not state.procs[t].exit_state]
        if live and set(live) <= asleep:
            out.append(f"process {tgid} has signals pending, but all its threads {live} sleep")
    return out


@invariant(
    "kernel.files",
    model=MODEL,
    statement="Each live process's fd table exists and only theirs; a file's f_count is the number "
    "of fds, sleeping calls and VMAs holding it; a pipe's readers and writers are the files open on each end, and a pipe "
    "with neither is freed; each ring holds at most its buffers, each inside its page.",
    source="fs/file.c dup_fd, __close_fd, put_files_struct; fs/file_table.c fput; fs/pipe.c "
    "pipe_release, free_pipe_info",
)
def files(state: KernelState) -> list[str]:
    out = []
    users = {p.files for p in state.procs.values() if p.files}
    out += [f"fd table {k} has no live task" for k in sorted(set(state.fdt) - users)]
    out += [f"fd table {k} is used but freed" for k in sorted(users - set(state.fdt))]
    out += [
        f"zombie {pid} keeps fd table {p.files}"
        for pid, p in sorted(state.procs.items())
        if p.exit_state and p.files
    ]
    refs = Counter(f for fds in state.fdt.values() for f in fds if f)
    refs.update(sleep.file for sleep in state.sleeps.values() if sleep.file)
    refs.update(v.vm_file for m in state.mms.values() for v in m.vmas if v.vm_file)
    for f in sorted(set(refs) | set(state.files)):
        file = state.files.get(f)
        if file is None:
            out.append(f"an fd holds file {f:#x}, which is freed")
        elif file.f_count != refs[f]:
            out.append(f"file {f:#x} has f_count {file.f_count}, but {refs[f]} fds, sleeps and VMAs hold it")
    ends = Counter((file.pipe, file.f_mode) for file in state.files.values())
    for obj, pipe in sorted(state.pipes.items()):
        if (pipe.readers, pipe.writers) != (ends[(obj, FMODE_READ)], ends[(obj, FMODE_WRITE)]):
            out.append(
                f"pipe {obj:#x} counts {pipe.readers} readers and {pipe.writers} writers, but has "
                f"{ends[(obj, FMODE_READ)]} and {ends[(obj, FMODE_WRITE)]} files"
            )
        if not pipe.readers and not pipe.writers:
            out.append(f"pipe {obj:#x} has no end open but is not freed")
        out += [f"pipe {obj:#x}: {msg}" for msg in fs_pipe.ring_ok(pipe)]
    out += [
        f"file {f:#x} is on pipe {file.pipe:#x}, which is freed"
        for f, file in sorted(state.files.items())
        if file.pipe and file.pipe not in state.pipes
    ]
    return out


def _pipe_write(before: KernelState, step: Step) -> tuple[int, int, int] | None:
    """The writer, the pipe and the count of a step that is (or goes on with) a pipe write."""
    if step.action not in ("fs_syscall", "resume"):
        return None
    pid = before.sched.rqs[step.args[0]].curr
    if step.action == "fs_syscall" and step.args[1] == NR["write"]:
        fd, count = step.args[2]
        return pid, before.files[before.fdt[before.procs[pid].files][fd]].pipe, count
    if step.action == "resume" and before.sleeps[pid].nr == NR["write"]:
        sleep = before.sleeps[pid]
        return pid, before.files[sleep.file].pipe, sleep.args[1]
    return None


@invariant(
    "kernel.pipe_write",
    model=MODEL,
    statement="A pipe write only appends the writer's bytes; one of at most PIPE_BUF bytes appends "
    "all of them in one go or none (no other writer's bytes come between); a write to a pipe with "
    "no reader fails with -EPIPE and raises SIGPIPE (unless ignored).",
    source="fs/pipe.c pipe_write; POSIX write(2) on pipes; include/linux/limits.h PIPE_BUF",
    transition=True,
)
def pipe_write(before: KernelState, step: Step, after: KernelState) -> list[str]:
    found = _pipe_write(before, step)
    if found is None:
        return []
    pid, obj, count = found
    out: list[str] = []
    if obj not in after.pipes:
        return out  # the call put the last reference to a pipe closed meanwhile
    old, new = fs_pipe.contents(before.pipes[obj]), fs_pipe.contents(after.pipes[obj])
    grown = sum(n for _, n in new) - sum(n for _, n in old)
    if grown < 0 or new != (fs_pipe.append(old, pid, grown) if grown else old):
        out.append(f"task {pid}'s write to pipe {obj:#x} made its bytes {old} into {new}")
    elif count <= PIPE_BUF and grown not in (0, count):
        out.append(f"task {pid}'s write of {count} bytes to pipe {obj:#x} put {grown} of them in it at once")
    if not before.pipes[obj].readers:
        tgid = before.procs[pid].tgid
        ret = next((r for nr, r in after.returns if nr == NR["write"]), None)
        raised = after.sigkill.get(pid) == SIGPIPE or SIGPIPE in after.pending.get(pid, ())
        if ret is not None and ret <= 0 and ret != -EPIPE:
            out.append(f"task {pid} wrote to pipe {obj:#x}, which has no reader, and got {ret}, not -EPIPE")
        if not raised and not sig_ignored(before, tgid, SIGPIPE):
            out.append(f"task {pid} wrote to pipe {obj:#x}, which has no reader, and got no SIGPIPE")
    return out


@invariant(
    "kernel.memcg_usage",
    model=MODEL,
    statement="Each memcg's usage is exactly the pages committed to memcgs in its subtree (a slab's "
    "1 << order; the root charges nothing of its own), and at most its max.",
    source="mm/memcontrol.c try_charge, commit_charge, uncharge_page, memcg_kmem_charge_memcg; "
    "mm/page_counter.c",
)
def memcg_usage(state: KernelState) -> list[str]:
    charged: Counter[int] = Counter()
    for pfn, memcg in state.page_memcg.items():
        if memcg != ROOT:
            charged[memcg] += compound_nr(state, pfn)
    out = []
    for cg, c in sorted(state.memory.items()):
        want = sum(n for memcg, n in charged.items() if in_subtree(state, memcg, cg))
        if c.usage != want:
            out.append(f"{path(state, cg)}: usage {c.usage}, but {want} pages are charged in its subtree")
        if c.usage > c.max:
            out.append(f"{path(state, cg)}: usage {c.usage} is above max {c.max}")
    return out


@invariant(
    "kernel.memcg_charged",
    model=MODEL,
    statement="Every anonymous and page-cache page is committed to a memcg, every page-table page of a user mm and "
    "every pipe page to one of the memcgs user tasks run in (never the root, here), a slab of a memcg's cache to that "
    "memcg and a root cache's to none; nothing else is committed.",
    source="mm/memory.c do_anonymous_page, wp_page_copy (mem_cgroup_try_charge); "
    "arch/x86/mm/pgtable.c, fs/pipe.c pipe_write (__GFP_ACCOUNT); mm/slab.h memcg_charge_slab",
)
def memcg_charged(state: KernelState) -> list[str]:
    out = []
    want: dict[int, str] = {}
    for pfn in set(state.mapcount) | set(state.page_cache.values()):
        want[pfn] = "user"
        if pfn not in state.page_memcg:
            out.append(f"user pfn {pfn} is not committed to a memcg")
    for mm, m in sorted(state.mms.items()):
        for table in mmu.table_pages(state.pt, m.pgd):
            want[table] = "page table"
            if state.page_memcg.get(table, ROOT) == ROOT:
                out.append(f"page-table page {table} of mm {mm:#x} is charged to no memcg")
    for obj, pipe in sorted(state.pipes.items()):
        for pfn in fs_pipe.pages(pipe):
            want[pfn] = "pipe"
            if state.page_memcg.get(pfn, ROOT) == ROOT:
                out.append(f"page {pfn} of pipe {obj:#x} is charged to no memcg")
    for pfn, slab in sorted(state.slub.slabs.items()):
        memcg = state.slub.caches[slab.cache].s.memcg
        want[pfn] = "slab"
        if state.page_memcg.get(pfn) != memcg:
            out.append(
                f"slab pfn {pfn} of {slab.cache} is charged to {state.page_memcg.get(pfn)}, not {memcg}"
            )
    out += [
        f"pfn {pfn} is committed to {path(state, memcg)} but is no user, page-table, pipe or slab page"
        for pfn, memcg in sorted(state.page_memcg.items())
        if pfn not in want
    ]
    return out


@invariant(
    "kernel.pids_counted",
    model=MODEL,
    statement="pids.current of every cgroup but the root is the number of tasks in its subtree not "
    "yet reaped (zombies count until release_task).",
    source="kernel/cgroup/pids.c pids_can_fork, pids_can_attach, pids_release (cgroup_release)",
)
def pids_counted(state: KernelState) -> list[str]:
    out = []
    for cg, p in sorted(state.pids.items()):
        if cg == ROOT:
            continue
        n = sum(1 for t in state.css_set.values() if in_subtree(state, t, cg))
        if p.counter != n:
            out.append(f"{path(state, cg)}: pids.current {p.counter}, but {n} tasks are in it")
    return out


@invariant(
    "kernel.pids_fork_within_max",
    model=MODEL,
    statement="A fork or clone never takes a cgroup's pids.current above its pids.max, at any level.",
    source="kernel/cgroup/pids.c pids_try_charge (cgroup_can_fork, before the task is visible)",
    transition=True,
)
def pids_fork_within_max(before: KernelState, step: Step, after: KernelState) -> list[str]:
    if step.action not in SYSCALL_ACTIONS or step.args[1] not in (NR["fork"], NR["clone"]):
        return []
    return [
        f"a fork took {path(after, cg)} to pids.current {p.counter}, above pids.max {p.limit}"
        for cg, p in sorted(after.pids.items())
        if p.counter > p.limit and p.counter > before.pids[cg].counter
    ]


@invariant(
    "kernel.oom_in_memcg",
    model=MODEL,
    statement="The memcg OOM killer kills only a process inside the memcg whose limit refused the "
    "charge, and never init.",
    source="mm/oom_kill.c select_bad_process, oom_evaluate_task (oc->memcg: mem_cgroup_scan_tasks)",
    transition=True,
)
def oom_in_memcg(before: KernelState, step: Step, after: KernelState) -> list[str]:
    out = []
    for kind, memcg, victim in after.events:
        if kind != "oom":
            continue
        cg = before.css_set.get(victim, ROOT)
        if victim == INIT or not in_subtree(before, cg, memcg):
            out.append(
                f"the OOM killer of {path(before, memcg)} killed task {victim}, which is in {path(before, cg)}"
            )
    return out


def _memory(state: KernelState) -> tuple[object, ...]:
    return (
        state.slub.fingerprint(),
        state.pt.fingerprint(),
        state.procs,
        state.mms,
        state.mapcount,
        state.data,
        state.page_cache,
        state.swap_map,
        state.lru,
    )


@invariant(
    "kernel.enosys",
    model=MODEL,
    statement="A system call number outside the table returns -ENOSYS and changes nothing but what "
    "the return to user mode does (a reschedule).",
    source="arch/x86/entry/common.c do_syscall_64; kernel/sys_ni.c sys_ni_syscall",
    transition=True,
)
def enosys(before: KernelState, step: Step, after: KernelState) -> list[str]:
    if step.action not in SYSCALL_ACTIONS or step.args[1] in SYS_CALL_TABLE:
        return []
    out = [f"system call {nr} returned {ret}, not -ENOSYS" for nr, ret in after.returns if ret != -ENOSYS]
    if _memory(before) != _memory(after):
        out.append(f"system call {step.args[1]}, outside the table, changed the kernel's state")
    return out


_SCHED_STEPS = {NR["fork"]: "fork_task", NR["exit"]: "exit_task"}


@invariant(
    "kernel.scheduler",
    model=MODEL,
    statement="Every invariant of the CFS model (sched.*) holds of the scheduler inside the kernel.",
    source="kernel/sched/fair.c; invariants/sched.py",
    transition=True,
)
def scheduler(before: KernelState, step: Step, after: KernelState) -> list[str]:
    sched_step = step
    if step.action in SYSCALL_ACTIONS and step.args[1] in _SCHED_STEPS:
        name = _SCHED_STEPS[step.args[1]]
        sched_step = Step(name, (step.args[0], *step.args[2]) if name == "fork_task" else step.args[:1])
    out = []
    for inv in sorted((i for i in REGISTRY.values() if i.model == "sched"), key=lambda i: i.name):
        found = inv.check(before.sched, sched_step, after.sched) if inv.transition else inv.check(after.sched)
        out += [f"{inv.name}: {msg}" for msg in found]
    return out


@invariant(
    "kernel.access_granted",
    model=MODEL,
    statement="A load or store inside one of the task's VMAs that allows it (VM_READ or VM_WRITE; "
    "VM_WRITE for a store) never ends the task with SIGSEGV.",
    source="arch/x86/mm/fault.c __do_page_fault (bad_area, access_error)",
    transition=True,
)
def access_granted(before: KernelState, step: Step, after: KernelState) -> list[str]:
    if step.action not in ("load", "store"):
        return []
    cpu, vaddr = step.args
    pid = before.sched.rqs[cpu].curr
    p, q = before.procs.get(pid), after.procs.get(pid)
    if p is None or p.mm is None or p.exit_state or q is None or q.exit_code != SIGSEGV:
        return []
    need = mmap.VM_WRITE if step.action == "store" else mmap.VM_READ | mmap.VM_WRITE
    return [
        f"task {pid}'s {step.action} at {vaddr:#x}, inside its VMA [{v.vm_start:#x}, {v.vm_end:#x}) that "
        f"allows it, ended the task with SIGSEGV"
        for v in before.mms[p.mm].vmas
        if v.vm_start <= vaddr < v.vm_end and v.vm_flags & need
    ]


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.


@goal(
    "kernel.fork",
    model=MODEL,
    statement="fork() makes a child process with a copy-on-write copy of its parent's mm.",
    transition=True,
)
def fork(before: KernelState, step: Step, after: KernelState) -> bool:
    return any(nr == NR["fork"] and ret > 0 for nr, ret in after.returns)


@goal(
    "kernel.wait4_reaps",
    model=MODEL,
    statement="wait4 reaps a child that has exited (release_task) and returns its pid.",
    transition=True,
)
def wait4_reaps(before: KernelState, step: Step, after: KernelState) -> bool:
    return any(nr == NR["wait4"] and ret > 0 for nr, ret in after.returns)


def _pte(state: KernelState, mm: int | None, vaddr: int) -> tuple[int, int] | None:
    """The leaf PTE (pfn, flags) of vaddr in mm, None if mm is gone or its tables do not reach it."""
    m = state.mms.get(mm) if mm is not None else None
    return mmu.walk(state.pt, m.pgd, vaddr) if m is not None else None


def _accessed(
    before: KernelState, step: Step, after: KernelState
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The PTE of a load's or store's address before and after the step, both there."""
    if step.action not in ("load", "store"):
        return None
    cpu, vaddr = step.args
    p = before.procs.get(before.sched.rqs[cpu].curr)
    mm = p.mm if p is not None else None
    old, new = _pte(before, mm, vaddr), _pte(after, mm, vaddr)
    return (old, new) if old is not None and new is not None else None


@goal(
    "kernel.cow_copy",
    model=MODEL,
    statement="A store to a page shared copy-on-write copies it to a new page mapped writable "
    "(do_wp_page -> wp_page_copy).",
    transition=True,
)
def cow_copy(before: KernelState, step: Step, after: KernelState) -> bool:
    ptes = _accessed(before, step, after)
    if ptes is None or step.action != "store":
        return False
    (old, old_flags), (new, new_flags) = ptes
    present = old_flags & new_flags & _PAGE_PRESENT
    return bool(present) and not old_flags & _PAGE_RW and bool(new_flags & _PAGE_RW) and new != old


@goal(
    "kernel.kswapd_wakeup",
    model=MODEL,
    statement="An allocation that finds the free pages at the low watermark wakes kswapd.",
    transition=True,
    engines=("explore",),  # the large machine's 1,024 pages stay far above its low watermark
)
def kswapd_wakeup(before: KernelState, step: Step, after: KernelState) -> bool:
    was, now = before.sched.tasks.get(before.kswapd), after.sched.tasks.get(after.kswapd)
    return (
        was is not None and now is not None and was.state == TASK_INTERRUPTIBLE and now.state == TASK_RUNNING
    )


@goal(
    "kernel.swap_out",
    model=MODEL,
    statement="Reclaim writes an anonymous page to a swap slot and turns the PTEs that mapped it "
    "into swap entries (add_to_swap, try_to_unmap).",
    transition=True,
)
def swap_out(before: KernelState, step: Step, after: KernelState) -> bool:
    return bool(after.swap_map.keys() - before.swap_map.keys())


@goal(
    "kernel.swap_in",
    model=MODEL,
    statement="An access to a swapped-out page reads it back from its slot into a new page (do_swap_page).",
    transition=True,
)
def swap_in(before: KernelState, step: Step, after: KernelState) -> bool:
    ptes = _accessed(before, step, after)
    return ptes is not None and not ptes[0][1] & _PAGE_PRESENT and bool(ptes[1][1] & _PAGE_PRESENT)


@goal(
    "kernel.oom_kill",
    model=MODEL,
    statement="An allocation or charge that reclaim cannot serve runs the OOM killer (global or a "
    "memcg's), which SIGKILLs a process and reaps its memory.",
    transition=True,
)
def oom_kill(before: KernelState, step: Step, after: KernelState) -> bool:
    return any(kind == "oom" for kind, _, _ in after.events)


@goal(
    "kernel.pipe_writer_blocked",
    model=MODEL,
    statement="A write to a pipe whose buffers are full (and that has a reader) sleeps in pipe_wait, "
    "holding what it has written so far.",
    transition=True,
)
def pipe_writer_blocked(before: KernelState, step: Step, after: KernelState) -> bool:
    return any(
        sleep.nr == NR["write"] and sleep.queue[0] == "pipe" and not sleep.woken and before.sleeps.get(t) != sleep
        for t, sleep in after.sleeps.items()
    )


@goal(
    "kernel.pipe_reader_woken",
    model=MODEL,
    statement="A reader asleep on an empty pipe is woken when a writer fills a buffer or the last "
    "writer goes.",
    transition=True,
    # Random runs seldom make a pipe, fork, and read and write it from the two tasks in turn:
    # 200 runs of the large config do not, 1,000 first do at run 520.
    engines=("explore",),
)
def pipe_reader_woken(before: KernelState, step: Step, after: KernelState) -> bool:
    # Woken by the other end, not by a signal: the pipe it sleeps on changed in the step.
    for t, sleep in before.sleeps.items():
        if sleep.nr != NR["read"] or sleep.woken or sleep.queue[0] != "pipe":
            continue
        now, obj = after.sleeps.get(t), sleep.queue[1]
        if now is not None and now.woken and before.pipes.get(obj) != after.pipes.get(obj):
            return True
    return False


@goal(
    "kernel.signal_handler",
    model=MODEL,
    statement="A pending signal with a user handler is delivered on the way back to user mode, "
    "through a frame on the user stack (setup_rt_frame).",
    transition=True,
)
def signal_handler(before: KernelState, step: Step, after: KernelState) -> bool:
    return any(kind == "signal" for kind, _, _ in after.events)


@goal(
    "kernel.tlb_shootdown",
    model=MODEL,
    statement="A TLB flush drops an entry from another CPU's TLB that holds the same mm (flush_tlb_others).",
    transition=True,
)
def tlb_shootdown(before: KernelState, step: Step, after: KernelState) -> bool:
    cpu = 0 if step.action in ("attach", "write") else step.args[0]  # the cgroup writes run on CPU 0
    return any(
        c != cpu and old.pgd is not None and old.pgd == new.pgd and old.entries.items() - new.entries.items()
        for c, (old, new) in enumerate(zip(before.tlb, after.tlb, strict=True))
    )


@goal(
    "kernel.writeback",
    model=MODEL,
    statement="A dirty page of /data is written back to the disk, its PTEs write-protected first "
    "(sync's write_cache_pages, or reclaim's pageout).",
    transition=True,
    engines=("stateful",),  # it takes open, mmap(MAP_SHARED), a store and sync: beyond depth 3
)
def writeback(before: KernelState, step: Step, after: KernelState) -> bool:
    return bool(before.dirty - after.dirty)
