"""The whole kernel on one machine: the scheduler, the buddy allocator, SLUB, the MMU and
the processes and address spaces that use them, driven through the system call table.

The machine (model/hw): N CPUs, each with its preempt_count, interrupt flag and current
task (the scheduler's), a CR3 and a TLB (model/hw/mmu.py: 4-level page tables in page
frames, TLB entries kept until flushed); the physical memory of the buddy allocator; the
periodic timer (``tick``). A CPU is in user mode exactly when its current task has an mm
and is between system calls: every step is one whole entry into the kernel (a system
call, a page fault taken by a user access, a timer interrupt) and its return.

Boot follows start_kernel (init/main.c, as the seed's "init kernel" lists it): trap_init,
mm_init (mem_init frees the page frames to the buddy allocator, kmem_cache_init makes the
caches), sched_init (an idle task per CPU: CPU 0's is init_task, pid 0, idle_pid(0) in the
scheduler's numbering), init_IRQ, time_init, fork_init, cgroup_init, then rest_init:
kernel_thread(kernel_init) is pid 1 and kernel_thread(kthreadd) pid 2. The CPUs then run
until kernel_init has executed the init program (run_init_process: pid 1 gets its mm) and
kthreadd sleeps waiting for kthread_create, which any task may call.

Processes (kernel/fork.c, exec.c, exit.c): every task_struct, mm_struct and
vm_area_struct is an object of its SLUB cache; fork copies the mm copy-on-write, clone
(CLONE_VM | CLONE_THREAD) makes a thread sharing it, execve replaces it (in a process of
one thread), exit tears it down with its last user; a thread is reaped at once, a leader
is left a zombie for wait4 until its group is gone; an exiting task's children go to a
live thread of its group, else to init. Address spaces: mmap, munmap, mprotect and brk
(model/mm/mmap.py) on anonymous private memory, faults, copy-on-write and TLB flushes
(model/mm/memory.py).

Each user page holds one word; a store writes the storing task's pid. The state keeps, as
a checker's record, what each mm stored where (``stored``) and the rights each page was
asked for (``asked``), so that invariants can tell a copy-on-write or protection bug from
right behaviour.

Signals: SIGKILL only, sent by kill: pending on every thread of the process, a sleeper
woken; a task with it pending does nothing but exit when it next returns to user mode. A fatal fault is the exit of the
faulting thread with SIGSEGV's status.

The memory controller is the cgroup model's code (model/cgroup/memcontrol.py) on this
state: boot_cgroups under the root (init runs in the first), cgroup.procs and
memory.limit_in_bytes writes; anonymous pages charged to the mm owner's memcg, page tables
and SLAB_ACCOUNT slabs to the allocating task's; the memcg OOM killer SIGKILLs and reaps
the process in the memcg with the most pages mapped.

Not yet wired in: the cpu and pids controllers, mkdir and rmdir here, pipes, other signals
and handlers, file mappings and the page cache, swap, reclaim and kswapd.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

from model.cgroup import memcontrol
from model.cgroup.cgroup import ROOT, Cgroup, cgroup_mkdir, cgroup_procs_write, in_subtree
from model.cgroup.model import one_machine
from model.cgroup.page_counter import PageCounter
from model.contract import Model, Step, action
from model.hw import mmu
from model.hw.mmu import PAGE_SIZE, PageFault, PageTables, Tlb
from model.mm import buddy, memory, mmap, slub
from model.mm.buddy import BuddyState
from model.mm.mmzone import MIGRATETYPE
from model.mm.slab import SlubConfig, SlubModel, SlubState
from model.mm.slab_common import CacheSpec
from model.sched import core
from model.sched.model import SchedConfig, SchedModel, SchedState, note_epochs
from model.sched.sched import ROOT_TASK_GROUP, TASK_INTERRUPTIBLE, TASK_RUNNING

ESRCH = 3
EINTR = 4
EAGAIN = 11
EINVAL = 22
ECHILD = 10
ENOMEM = 12
ENOSYS = 38
EXIT_ZOMBIE = 0x20
SIGSEGV = 11
SIGKILL = 9
INIT = 1  # the child reaper
KTHREADD = 2
MIGRATE_UNMOVABLE = MIGRATETYPE["MIGRATE_UNMOVABLE"]
# include/uapi/linux/sched.h: CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD
CLONE_THREAD_FLAGS = 0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00010000

# The x86-64 layout of a new mm (arch_pick_mmap_layout, setup_arg_pages): the heap after
# the program's data, mmap areas below mmap_base, one page of stack at the top.
START_BRK = 0x601000
MMAP_BASE = 0x7F0000000000
MMAP_MIN_ADDR = 0x10000  # vm.mmap_min_addr
STACK_TOP = mmap.TASK_SIZE
STACK_FLAGS = mmap.VM_DATA_DEFAULT_FLAGS | mmap.VM_ACCOUNT
ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # the mappings tasks ask for

# arch/x86/entry/syscalls/syscall_64.tbl: the calls modelled; NR_syscalls of 5.4.
NR_syscalls = 436
SYS_CALL_TABLE = {
    9: "sys_mmap",
    10: "sys_mprotect",
    11: "sys_munmap",
    12: "sys_brk",
    39: "sys_getpid",
    56: "sys_clone",
    57: "sys_fork",
    59: "sys_execve",
    60: "sys_exit",
    61: "sys_wait4",
    62: "sys_kill",
}
NR = {name[4:]: nr for nr, name in SYS_CALL_TABLE.items()}


class Proc(NamedTuple):
    """The process part of struct task_struct."""

    parent: int  # real_parent
    mm: int | None  # the mm_struct object; None for a kernel thread
    task_struct: int  # the task_struct object
    tgid: int  # the thread group: the leader's pid
    exit_state: int = 0  # EXIT_ZOMBIE once it has exited
    exit_code: int = 0


class MmStruct(NamedTuple):
    """struct mm_struct: its page tables, VMAs (each a vm_area_struct object) and heap."""

    pgd: int
    vmas: mmap.Vmas
    vma_objects: tuple[int, ...]  # one vm_area_struct object per VMA
    start_brk: int
    brk: int


@dataclass(frozen=True)
class KernelConfig:
    """The machine and what its tasks may ask for."""

    # max_tasks: fork_init's max_threads, the tasks (init and kthreadd included) fork allows.
    sched: SchedConfig = SchedConfig(nr_cpus=2, tasks=(), max_tasks=4, nice_values=(), preempt_sections=False)
    # The page frames and SLUB's caches; task_struct, mm_struct and vm_area_struct sized
    # down so that a few share a page.
    slub: SlubConfig = SlubConfig(
        buddy=replace(buddy.SMALL, ram=((0, 5, 0), (6, 40, 0)), max_zone_pfn=(2, 4, 40), cpu_to_node=(0, 0)),
        slub_max_order=0,
        slub_min_objects=2,
        cpu_partial=2,
        min_partial=1,
        caches=(
            CacheSpec("task_struct", 1024, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            CacheSpec("mm_struct", 1024, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            CacheSpec("vm_area_struct", 512, 0, ("SLAB_ACCOUNT",)),
        ),
        kmalloc_sizes=(),
        irq_window=False,
        bad_frees=False,
    )
    mmap_pages: tuple[int, ...] = (1, 2)  # the lengths mmap asks for, in pages
    brk_pages: tuple[int, ...] = (0, 1)  # where brk may set the break, in pages above start_brk
    max_vmas: int = 4  # mmap is not offered to an mm with this many VMAs
    # The memory cgroups cgroup_init makes under the root (init runs in the first, as a
    # service manager moves itself out of the root) and the limits written to them.
    boot_cgroups: tuple[str, ...] = ("A", "B")
    limits: tuple[str, ...] = ("16K", "-1", "8X")

    def __post_init__(self) -> None:
        for name in ("mmap_pages", "brk_pages", "boot_cgroups", "limits"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        one_machine(self)
        if self.sched.tasks:
            raise ValueError(
                "sched.tasks must be empty: the kernel's tasks are its own (init, kthreadd, forks)"
            )
        names = {c.name for c in self.slub.caches}
        if not {"task_struct", "mm_struct", "vm_area_struct"} <= names:
            raise ValueError(f"slub.caches {sorted(names)} lack task_struct, mm_struct or vm_area_struct")
        if any(n < 1 for n in self.mmap_pages) or any(n < 0 for n in self.brk_pages) or self.max_vmas < 1:
            raise ValueError("mmap_pages and max_vmas must be at least 1, brk_pages at least 0")
        if not self.boot_cgroups or len(set(self.boot_cgroups)) != len(self.boot_cgroups):
            raise ValueError(f"boot_cgroups {list(self.boot_cgroups)} must be distinct names, at least one")


@dataclass(slots=True, eq=False)
class KernelState:
    sched: SchedState  # the tasks, run queues and CPUs' preempt_count and interrupt flags
    slub: SlubState  # the caches, and in slub.mm the buddy allocator's page frames
    pt: PageTables  # every page-table page
    tlb: tuple[Tlb, ...]  # per CPU: its CR3 (tlb.pgd; None: init_mm) and TLB entries
    procs: dict[int, Proc]  # every task but the idle ones, zombies included
    mms: dict[int, MmStruct]  # by mm_struct object
    mapcount: dict[int, int]  # the PTEs mapping each anonymous page
    data: dict[int, int]  # the word each anonymous page holds
    waiting: frozenset[int]  # tasks asleep in wait4
    sigkill: frozenset[int]  # tasks with SIGKILL pending, the one signal modelled
    max_threads: int  # kernel/fork.c max_threads, set by fork_init: copy_process refuses past it
    # The checker's record, per mm: the word each page was last stored, and the rights
    # (VM_READ | VM_WRITE | VM_EXEC) each page was asked for by mmap, mprotect or brk.
    stored: dict[int, tuple[tuple[int, int], ...]]
    asked: dict[int, tuple[tuple[int, int], ...]]
    # The memory controller (model/cgroup): the hierarchy, each task's cgroup, each memcg's
    # page counter, and page->mem_cgroup of every charged page.
    cgroups: dict[int, Cgroup]
    css_set: dict[int, int]
    memory: dict[int, PageCounter]
    page_memcg: dict[int, int]
    boot: tuple[str, ...] = field(default=())  # start_kernel's steps, in order
    # The checker's record of the last step, kept beside the state (out of its fingerprint):
    # each system call it made with what it returned, and the charge and OOM events.
    returns: tuple[tuple[int, int], ...] = field(default=())
    events: tuple[tuple[str, int, int], ...] = field(default=())
    page_cache: tuple[tuple[int, int], ...] = field(default=())  # no file pages here yet

    @property
    def mm(self) -> BuddyState:
        return self.slub.mm

    # The memory controller's hooks: SLUB's (slub.MemcgKmem), try_charge's OOM killer, and
    # the page and page-table charges of model/mm/memory.py.

    def memcg_kmem_charge_memcg(
        self, pfn: int, order: int, memcg: int, cpu: int, reclaim: bool, noretry: bool
    ) -> int:
        return memcontrol.memcg_kmem_charge_memcg(self, pfn, order, memcg, cpu, reclaim, noretry)

    def memcg_kmem_uncharge(self, pfn: int, order: int) -> None:
        memcontrol.memcg_kmem_uncharge(self, pfn, order)

    def mem_cgroup_out_of_memory(self, memcg: int, cpu: int) -> bool:
        return mem_cgroup_out_of_memory(self, memcg, cpu)

    def mem_cgroup_charge(self, pfn: int, mm: int, cpu: int) -> bool:
        return mem_cgroup_charge(self, pfn, mm, cpu)

    def memcg_kmem_charge(self, pfn: int, cpu: int) -> bool:
        return memcg_kmem_charge(self, pfn, cpu)

    def mem_cgroup_uncharge(self, pfn: int) -> None:
        if pfn in self.page_memcg:
            memcontrol.mem_cgroup_uncharge(self, pfn)

    def clone(self) -> KernelState:
        new = KernelState(
            self.sched.clone(),
            self.slub.clone(),
            self.pt,
            self.tlb,
            dict(self.procs),
            dict(self.mms),
            dict(self.mapcount),
            dict(self.data),
            self.waiting,
            self.sigkill,
            self.max_threads,
            dict(self.stored),
            dict(self.asked),
            dict(self.cgroups),
            dict(self.css_set),
            dict(self.memory),
            dict(self.page_memcg),
            self.boot,
        )
        new.slub.kmem = new
        return new

    def fingerprint(self) -> Hashable:
        return (
            self.sched.fingerprint(),
            self.slub.fingerprint(),
            self.pt.fingerprint(),
            tuple(t.fingerprint() for t in self.tlb),
            *(
                tuple(sorted(d.items()))
                for d in (
                    self.procs,
                    self.mms,
                    self.mapcount,
                    self.data,
                    self.stored,
                    self.asked,
                    self.cgroups,
                    self.css_set,
                    self.memory,
                    self.page_memcg,
                )
            ),
            self.waiting,
            self.sigkill,
        )

    def current(self, cpu: int) -> int | None:
        """The user task running on cpu, if it may enter the kernel: a live process with an
        mm, TASK_RUNNING."""
        t = self.sched.curr(cpu)
        p = self.procs.get(t.pid)
        if p is None or p.mm is None or p.exit_state or t.state != TASK_RUNNING or t.pid in self.sigkill:
            return None  # a task with SIGKILL pending does nothing but die (the signal action)
        return t.pid


# Slab objects.


def kmem_cache_alloc(state: KernelState, cache: str, cpu: int) -> int:
    """kmem_cache_alloc(cache, GFP_KERNEL) by the task on cpu: from its memcg's copy of a
    SLAB_ACCOUNT cache (memcg_kmem_get_cache), whose slab pages its memcg is charged for.
    The object, or 0 (NULL)."""
    memcg = task_memcg(state, state.sched.rqs[cpu].curr)
    s = memcontrol.memcg_kmem_get_cache(state, state.slub.caches[cache].s, memcg)
    return slub.slab_alloc_node(state.slub, s, cpu, slub.NUMA_NO_NODE, s.object_size, window=False) or 0


def kmem_cache_free(state: KernelState, addr: int, cpu: int) -> None:
    error = slub.kfree(state.slub, addr, cpu, window=False)
    assert error is None, error


# Address spaces.


def mm_alloc(state: KernelState, cpu: int) -> int:
    """kernel/fork.c mm_alloc with mm_init's pgd_alloc: the mm_struct object with an empty
    PGD page and no VMAs; 0 when either is not to be had."""
    obj = kmem_cache_alloc(state, "mm_struct", cpu)
    if not obj:
        return 0
    pgd = memory.pte_alloc_one(state, cpu)  # pgd_alloc: a page-table page, charged as one
    if pgd is None:
        kmem_cache_free(state, obj, cpu)
        return 0
    got = mmu.pgd_alloc(state.pt, lambda: pgd)
    assert got is not None
    state.pt = got[0]
    state.mms[obj] = MmStruct(pgd, (), (), START_BRK, START_BRK)
    state.stored[obj] = ()
    state.asked[obj] = ()
    return obj


def set_vmas(state: KernelState, mm: int, vmas: mmap.Vmas, cpu: int) -> bool:
    """The mm's VMAs become vmas, with vm_area_struct objects allocated for new ones
    (vm_area_alloc, vm_area_dup on a split) and freed for merged or unmapped ones
    (vm_area_free). False, with nothing changed, when an object is not to be had."""
    m = state.mms[mm]
    objs = list(m.vma_objects)
    while len(objs) < len(vmas):
        obj = kmem_cache_alloc(state, "vm_area_struct", cpu)
        if not obj:
            for extra in objs[len(m.vma_objects) :]:
                kmem_cache_free(state, extra, cpu)
            return False
        objs.append(obj)
    while len(objs) > len(vmas):
        kmem_cache_free(state, objs.pop(), cpu)
    state.mms[mm] = m._replace(vmas=vmas, vma_objects=tuple(objs))
    return True


def note_asked(state: KernelState, mm: int, start: int, end: int, vm_flags: int | None) -> None:
    """The checker's record of the rights asked for [start, end) (None: unmapped); what was
    stored there goes when the pages are unmapped."""
    pages = range(start, end, PAGE_SIZE)
    asked = {v: f for v, f in state.asked[mm] if v not in pages}
    if vm_flags is not None:
        asked.update(dict.fromkeys(pages, vm_flags & (mmap.VM_READ | mmap.VM_WRITE | mmap.VM_EXEC)))
    else:
        state.stored[mm] = tuple((v, w) for v, w in state.stored[mm] if v not in pages)
    state.asked[mm] = tuple(sorted(asked.items()))


def unmap_ranges(state: KernelState, cpu: int, mm: int, ranges: Iterable[tuple[int, int]]) -> None:
    for start, end in ranges:
        memory.zap_page_range(state, cpu, mm, start, end)
        note_asked(state, mm, start, end, None)


def mmput(state: KernelState, mm: int, cpu: int) -> None:
    """The last user of an mm is gone: exit_mmap, then the VMAs' and the mm's objects freed."""
    memory.exit_mmap(state, cpu, mm)
    m = state.mms.pop(mm)
    for obj in m.vma_objects:
        kmem_cache_free(state, obj, cpu)
    kmem_cache_free(state, mm, cpu)
    del state.stored[mm], state.asked[mm]


def bprm_mm_init(state: KernelState, cpu: int) -> int:
    """fs/exec.c bprm_mm_init and setup_arg_pages: a new mm with its stack VMA; 0 on -ENOMEM."""
    mm = mm_alloc(state, cpu)
    if not mm:
        return 0
    stack = (mmap.Vma(STACK_TOP - PAGE_SIZE, STACK_TOP, STACK_FLAGS),)
    if not set_vmas(state, mm, stack, cpu):
        mmput(state, mm, cpu)
        return 0
    note_asked(state, mm, STACK_TOP - PAGE_SIZE, STACK_TOP, STACK_FLAGS)
    return mm


# The memory controller: what the kernel charges to whom, and the memcg OOM killer.


def task_memcg(state: KernelState, pid: int) -> int:
    """mem_cgroup_from_task: the task's memcg (the root's for idle and kernel threads)."""
    return state.css_set.get(pid, ROOT)


def mm_memcg(state: KernelState, mm: int) -> int:
    """get_mem_cgroup_from_mm: the memcg of the mm's owner, its lowest live user."""
    return task_memcg(state, min(p for p, q in state.procs.items() if q.mm == mm))


def mem_cgroup_charge(state: KernelState, pfn: int, mm: int, cpu: int) -> bool:
    """mem_cgroup_try_charge and mem_cgroup_commit_charge of an anonymous page, to the mm
    owner's memcg (a root task's page is committed to the root, uncounted). False when the
    charge fails, the OOM killer having found nothing more to kill."""
    memcg = mm_memcg(state, mm)
    if memcontrol.try_charge(state, memcg, 1, cpu):
        return False
    memcontrol.commit_charge(state, pfn, memcg)
    return True


def memcg_kmem_charge(state: KernelState, pfn: int, cpu: int) -> bool:
    """__memcg_kmem_charge of a page-table page (x86 allocates them __GFP_ACCOUNT): the
    current task's memcg, unless it is the root's (page->mem_cgroup stays NULL)."""
    memcg = task_memcg(state, state.sched.rqs[cpu].curr)
    if memcg == ROOT:
        return True
    if memcontrol.try_charge(state, memcg, 1, cpu):
        return False
    memcontrol.commit_charge(state, pfn, memcg)
    return True


def group_mm(state: KernelState, tgid: int) -> int | None:
    return next((state.procs[t].mm for t in thread_group(state, tgid) if state.procs[t].mm is not None), None)


def mem_cgroup_out_of_memory(state: KernelState, memcg: int, cpu: int) -> bool:
    """mm/oom_kill.c out_of_memory for a memcg: select_bad_process over the memcg's subtree
    (the process with the most pages mapped: oom_badness's rss; the lowest pid of equals;
    never init, nor one already killed), SIGKILL to every thread of it, and the OOM reaper
    frees its anonymous pages at once (__oom_reap_task_mm). False if there is none."""
    candidates = [
        t
        for t in sorted(state.procs)
        if state.procs[t].tgid == t
        and t != INIT
        and group_mm(state, t) is not None
        and not any(c in state.sigkill for c in thread_group(state, t))
        and in_subtree(state, task_memcg(state, t), memcg)
    ]
    if not candidates:
        return False
    victim = max(candidates, key=lambda t: (len(mmu.mapped(state.pt, state.mms[group_mm(state, t)].pgd)), -t))  # type: ignore[index]
    state.events += (("oom", memcg, victim),)
    send_sigkill(state, victim, cpu)
    oom_reap(state, cpu, group_mm(state, victim))  # type: ignore[arg-type]
    return True


def oom_reap(state: KernelState, cpu: int, mm: int) -> None:
    """__oom_reap_task_mm: every anonymous page of the victim's mm unmapped and freed (the
    VMAs and page tables stay for exit_mmap); the victim will read nothing back."""
    pgd = state.mms[mm].pgd
    for vaddr, pfn, _ in mmu.mapped(state.pt, pgd):
        state.pt = mmu.pte_clear(state.pt, pgd, vaddr)
        memory.put_page(state, pfn, cpu)
    memory.flush_tlb_mm_range(state, cpu, mm, 0, mmu.TASK_SIZE_TOP)
    state.stored[mm] = ()


# The system calls, each on behalf of the task running on cpu.


def sys_getpid(state: KernelState, cpu: int, pid: int) -> int:
    return state.procs[pid].tgid


def sys_mmap(state: KernelState, cpu: int, pid: int, addr: int, length: int, prot: int, flags: int) -> int:
    """mm/mmap.c ksys_mmap_pgoff -> do_mmap: the address, or -errno."""
    mm = state.procs[pid].mm
    assert mm is not None
    old = state.mms[mm].vmas
    vmas, ret, unmapped = mmap.do_mmap(old, addr, length, prot, flags, MMAP_BASE, MMAP_MIN_ADDR)
    if ret < 0:
        return ret
    if not set_vmas(state, mm, vmas, cpu):
        return -ENOMEM
    unmap_ranges(state, cpu, mm, unmapped)
    note_asked(state, mm, ret, ret + mmap.page_align(length), mmap.calc_vm_prot_bits(prot))
    return ret


def sys_munmap(state: KernelState, cpu: int, pid: int, addr: int, length: int) -> int:
    mm = state.procs[pid].mm
    assert mm is not None
    vmas, ret, unmapped = mmap.do_munmap(state.mms[mm].vmas, addr, length)
    if ret:
        return ret
    if not set_vmas(state, mm, vmas, cpu):
        return -ENOMEM  # a split needed a vm_area_struct
    unmap_ranges(state, cpu, mm, unmapped)
    return 0


def sys_mprotect(state: KernelState, cpu: int, pid: int, addr: int, length: int, prot: int) -> int:
    """mm/mprotect.c do_mprotect_pkey: each VMA changed (split and merged) and its PTEs and
    TLB entries with it; a hole met part way fails with -ENOMEM after the changes before it."""
    mm = state.procs[pid].mm
    assert mm is not None
    vmas, ret, changed = mmap.mprotect(state.mms[mm].vmas, addr, length, prot)
    if not set_vmas(state, mm, vmas, cpu):
        return -ENOMEM
    for start, end, vm_flags in changed:
        memory.change_protection(state, cpu, mm, start, end, vm_flags)
        note_asked(state, mm, start, end, vm_flags)
    return ret


def sys_brk(state: KernelState, cpu: int, pid: int, new_brk: int) -> int:
    """mm/mmap.c sys_brk: the new break, or the old one when refused."""
    mm = state.procs[pid].mm
    assert mm is not None
    m = state.mms[mm]
    vmas, brk, unmapped = mmap.brk(m.vmas, m.start_brk, m.brk, new_brk)
    if not set_vmas(state, mm, vmas, cpu):
        return m.brk
    state.mms[mm] = state.mms[mm]._replace(brk=brk)
    unmap_ranges(state, cpu, mm, unmapped)
    old_end, new_end = mmap.page_align(m.brk), mmap.page_align(brk)
    if new_end > old_end:
        note_asked(state, mm, old_end, new_end, mmap.VM_DATA_DEFAULT_FLAGS)
    return brk


def sys_fork(state: KernelState, cpu: int, pid: int, target: int) -> int:
    """kernel/fork.c _do_fork -> copy_process: a task_struct, dup_mm (a new mm with the
    parent's VMAs, its pages shared copy-on-write), sched_fork; then wake_up_new_task on
    target. The child's pid, -EAGAIN past the task limit, -ENOMEM without memory."""
    if len(state.procs) >= state.max_threads:
        return -EAGAIN
    task = kmem_cache_alloc(state, "task_struct", cpu)
    if not task:
        return -ENOMEM
    parent_mm = state.procs[pid].mm
    assert parent_mm is not None
    mm = dup_mm(state, cpu, parent_mm)
    if not mm:
        kmem_cache_free(state, task, cpu)
        return -ENOMEM
    child = SchedModel.fork(state.sched, cpu, target)
    state.procs[child] = Proc(pid, mm, task, child)
    state.css_set[child] = state.css_set[pid]  # cgroup_post_fork: the parent's cgroup
    return child


def sys_clone(state: KernelState, cpu: int, pid: int, flags: int, target: int) -> int:
    """kernel/fork.c copy_process with CLONE_VM | CLONE_THREAD (and the CLONE_FS, CLONE_FILES,
    CLONE_SIGHAND these need): a thread of the caller's group sharing its mm, whose parent is
    the caller's parent; woken on target. Other flags are fork's (-EINVAL here)."""
    if flags != CLONE_THREAD_FLAGS:
        return -EINVAL
    if len(state.procs) >= state.max_threads:
        return -EAGAIN
    task = kmem_cache_alloc(state, "task_struct", cpu)
    if not task:
        return -ENOMEM
    p = state.procs[pid]
    child = SchedModel.fork(state.sched, cpu, target)
    state.procs[child] = Proc(p.parent, p.mm, task, p.tgid)
    state.css_set[child] = state.css_set[pid]
    return child


def dup_mm(state: KernelState, cpu: int, old: int) -> int:
    """kernel/fork.c dup_mm -> dup_mmap: the child's mm, or 0."""
    mm = mm_alloc(state, cpu)
    if not mm:
        return 0
    src = state.mms[old]
    if not set_vmas(state, mm, src.vmas, cpu) or not memory.copy_page_range(state, cpu, old, mm):
        mmput(state, mm, cpu)
        return 0
    state.mms[mm] = state.mms[mm]._replace(start_brk=src.start_brk, brk=src.brk)
    state.stored[mm] = state.stored[old]
    state.asked[mm] = state.asked[old]
    return mm


def sys_execve(state: KernelState, cpu: int, pid: int) -> int:
    """fs/exec.c do_execve of the one program: a new mm (bprm_mm_init), then exec_mmap puts
    the old one (flush_old_exec) and the CPU loads the new (activate_mm). 0, or -ENOMEM with
    the old mm kept."""
    mm = bprm_mm_init(state, cpu)
    if not mm:
        return -ENOMEM
    old = state.procs[pid].mm
    state.procs[pid] = state.procs[pid]._replace(mm=mm)
    activate_mm(state, cpu, mm)
    if old is not None:
        mmput(state, old, cpu)
    return 0


def activate_mm(state: KernelState, cpu: int, mm: int) -> None:
    """switch_mm_irqs_off: CR3 loaded with the mm's PGD, which flushes the TLB (no PCID)."""
    state.tlb = (*state.tlb[:cpu], mmu.load_cr3(state.tlb[cpu], state.mms[mm].pgd), *state.tlb[cpu + 1 :])


def sys_exit(state: KernelState, cpu: int, pid: int, code: int) -> int:
    do_exit(state, cpu, pid, code << 8)
    return 0


def thread_group(state: KernelState, tgid: int) -> list[int]:
    return sorted(c for c, q in state.procs.items() if q.tgid == tgid)


def children(state: KernelState, pid: int) -> list[int]:
    """The processes (group leaders) whose parent is a thread of pid's group: what wait4 waits for."""
    tgid = state.procs[pid].tgid
    return sorted(
        c
        for c, q in state.procs.items()
        if q.tgid == c and q.parent in state.procs and state.procs[q.parent].tgid == tgid
    )


def reapable(state: KernelState, pid: int) -> bool:
    """A zombie leader whose threads are all gone (delay_group_leader is false)."""
    return bool(state.procs[pid].exit_state) and thread_group(state, pid) == [pid]


def do_exit(state: KernelState, cpu: int, pid: int, exit_code: int) -> None:
    """kernel/exit.c do_exit: exit_mm (the mm put by its last user), exit_notify (children
    reparented to a live thread of the group, else to init; a thread other than the leader
    is reaped at once; a leader is a zombie, its parent woken from wait4 once the whole
    group is gone: __wake_up_parent), do_task_dead. A fatal signal kills only the thread
    that took it (do_group_exit is not modelled)."""
    p = state.procs[pid]
    if p.mm is not None and not any(q.mm == p.mm for c, q in state.procs.items() if c != pid):
        mmput(state, p.mm, cpu)
    reaper = next(
        (c for c in thread_group(state, p.tgid) if c != pid and not state.procs[c].exit_state), INIT
    )
    orphans = [c for c, q in state.procs.items() if q.parent == pid]
    for c in orphans:
        state.procs[c] = state.procs[c]._replace(parent=reaper)  # forget_original_parent
    state.procs[pid] = p._replace(mm=None, exit_state=EXIT_ZOMBIE, exit_code=exit_code)
    state.sigkill -= {pid}
    if any(reapable(state, c) for c in orphans):
        wake_up_parent(state, reaper, cpu)
    if pid != p.tgid:
        release_task(state, pid, cpu)  # autoreap
    if reapable(state, p.tgid):  # the leader, or a zombie leader whose last thread this was
        wake_up_parent(state, state.procs[p.tgid].parent, cpu)
    core.do_task_dead(state.sched, cpu)


def wake_up_parent(state: KernelState, parent: int, cpu: int) -> None:
    """__wake_up_parent: the threads of the parent's group asleep in wait4 (on its
    signal->wait_chldexit) are woken on this CPU."""
    if parent not in state.procs:
        return
    tgid = state.procs[parent].tgid
    for t in sorted(state.waiting):
        if state.procs[t].tgid == tgid:
            state.waiting -= {t}
            core.try_to_wake_up(state.sched, t, cpu)


def sys_wait4(state: KernelState, cpu: int, pid: int) -> int:
    """kernel/exit.c do_wait for any child: a reapable zombie child is reaped (release_task:
    its task_struct freed) and its pid returned; with children but none reapable the task
    sleeps until one can be (and then calls again: the do_wait loop); -ECHILD without
    children."""
    kids = children(state, pid)
    if not kids:
        return -ECHILD
    zombie = next((c for c in kids if reapable(state, c)), None)
    if zombie is None:
        state.waiting |= {pid}
        core.set_task(state.sched, pid, state=TASK_INTERRUPTIBLE)
        core.schedule(state.sched, cpu)
        return 0
    release_task(state, zombie, cpu)
    return zombie


def sys_kill(state: KernelState, cpu: int, pid: int, target: int, sig: int) -> int:
    """kernel/signal.c kill_pid_info for SIGKILL, the one signal modelled: every thread of
    the target process gets it pending (complete_signal) and is woken or kicked
    (signal_wake_up); init and kernel threads ignore it (SIGNAL_UNKILLABLE, no handler
    allowed), and so does a zombie. 0, -EINVAL for another signal, -ESRCH for no such
    process."""
    if sig != SIGKILL:
        return -EINVAL
    p = state.procs.get(target)
    if p is None or p.tgid != target:
        return -ESRCH
    if target == INIT or p.exit_state or p.mm is None:
        return 0
    send_sigkill(state, target, cpu)
    return 0


def send_sigkill(state: KernelState, tgid: int, cpu: int) -> None:
    """SIGKILL pending on every live thread of the group, each woken (complete_signal)."""
    for t in thread_group(state, tgid):
        if not state.procs[t].exit_state:
            state.sigkill |= {t}
            signal_wake_up(state, t, cpu)


def signal_wake_up(state: KernelState, t: int, cpu: int) -> None:
    """kernel/signal.c signal_wake_up(t, fatal): a task asleep interruptibly (in wait4) is
    woken on this CPU; one running elsewhere is kicked, and delivers on the IPI's return."""
    if t in state.waiting:
        state.waiting -= {t}
        core.try_to_wake_up(state.sched, t, cpu)


def release_task(state: KernelState, pid: int, cpu: int) -> None:
    """kernel/exit.c release_task: the task leaves its cgroup and its task_struct is freed."""
    del state.css_set[pid]
    kmem_cache_free(state, state.procs.pop(pid).task_struct, cpu)


def do_syscall_64(state: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int:
    """arch/x86/entry/common.c do_syscall_64: sys_call_table[nr] for a number in the table,
    -ENOSYS for any other (sys_ni_syscall); then syscall_return_slowpath."""
    pid = state.sched.rqs[cpu].curr
    name = SYS_CALL_TABLE.get(nr) if 0 <= nr < NR_syscalls else None
    ret = globals()[name](state, cpu, pid, *args) if name else -ENOSYS
    state.returns += ((nr, ret),)
    exit_to_usermode_loop(state, cpu)
    return ret


def exit_to_usermode_loop(state: KernelState, cpu: int) -> None:
    """arch/x86/entry/common.c exit_to_usermode_loop: schedule while TIF_NEED_RESCHED is set.
    A pending signal is delivered as the CPU's next event (the ``signal`` action), so that a
    task switched to here returns to user mode in a step of its own."""
    if state.sched.tasks[state.sched.rqs[cpu].curr].need_resched:
        core.schedule(state.sched, cpu)


# User memory accesses and the page fault path.


def access(state: KernelState, cpu: int, vaddr: int, write: bool) -> int:
    """The running task loads or stores the word of a user page: through the MMU, and on a
    page fault do_page_fault, then the access again. A store writes the task's pid; the
    result is the word read or written, or -1 when the fault killed the task (SIGSEGV for a
    bad area, SIGKILL when there was no memory: pagefault_out_of_memory, the global OOM
    killer not being modelled). init's threads are not killed (a kill would panic the
    kernel): their accesses that find no memory fail and may be retried, and they are never
    offered a bad address."""
    pid = state.sched.rqs[cpu].curr
    mm = state.procs[pid].mm
    assert mm is not None
    for _ in range(3):  # a fault, then possibly a copy-on-write fault
        result = memory.translate(state, cpu, vaddr, write)
        if not isinstance(result, PageFault):
            break
        fault = memory.handle_mm_fault(state, cpu, mm, vaddr, result.error_code)
        if fault & memory.VM_FAULT_OOM and state.procs[pid].tgid == INIT:
            return -1
        if fault:
            do_exit(state, cpu, pid, SIGSEGV if fault & memory.VM_FAULT_SIGSEGV else SIGKILL)
            return -1
    else:
        raise AssertionError(f"{vaddr:#x}: the access still faults after its faults were handled")
    if write:
        state.data[result] = pid
        state.stored[mm] = tuple(sorted({**dict(state.stored[mm]), vaddr: pid}.items()))
    word = state.data[result]
    exit_to_usermode_loop(state, cpu)
    return word


def switch_mm(state: KernelState) -> None:
    """Each CPU's CR3 follows its task: a user task's mm is loaded when it runs (a switch to
    another mm flushes the TLB); a kernel thread or idle keeps the mm it found (lazy TLB)."""
    for cpu in range(len(state.tlb)):
        p = state.procs.get(state.sched.rqs[cpu].curr)
        if p is not None and p.mm is not None and state.tlb[cpu].pgd != state.mms[p.mm].pgd:
            activate_mm(state, cpu, p.mm)


# The model.


def _callers(s: KernelState) -> list[tuple[int, int]]:
    return [(cpu, pid) for cpu in range(len(s.tlb)) if (pid := s.current(cpu)) is not None]


def _syscall_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, int, tuple[int, ...]]]:
    out: list[tuple[int, int, tuple[int, ...]]] = []
    ncpus = len(s.tlb)
    for cpu, pid in _callers(s):
        mm = s.mms[s.procs[pid].mm]  # type: ignore[index]
        calls: list[tuple[int, tuple[int, ...]]] = [(NR["getpid"], ()), (NR_syscalls, ())]
        if len(mm.vmas) < m.config.max_vmas:
            for n in m.config.mmap_pages:
                calls.append((NR["mmap"], (0, n * PAGE_SIZE, mmap.PROT_READ | mmap.PROT_WRITE, ANON)))
            calls.append((NR["mmap"], (0, PAGE_SIZE, mmap.PROT_READ, ANON)))
        for v in mm.vmas:
            if v.vm_start != STACK_TOP - PAGE_SIZE:
                calls.append((NR["munmap"], (v.vm_start, PAGE_SIZE)))
                for prot in (mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE):
                    calls.append((NR["mprotect"], (v.vm_start, PAGE_SIZE, prot)))
        calls += [(NR["brk"], (START_BRK + n * PAGE_SIZE,)) for n in m.config.brk_pages]
        calls += [(NR["fork"], (target,)) for target in range(ncpus)]
        calls += [(NR["clone"], (CLONE_THREAD_FLAGS, target)) for target in range(ncpus)]
        if thread_group(s, s.procs[pid].tgid) == [pid]:  # de_thread is not modelled
            calls.append((NR["execve"], ()))
        calls.append((NR["wait4"], ()))
        leaders = [c for c, q in sorted(s.procs.items()) if q.tgid == c]
        calls += [(NR["kill"], (target, SIGKILL)) for target in (*leaders, s.sched.next_pid)]
        if pid != INIT:  # init exiting panics the kernel
            calls.append((NR["exit"], (0,)))
        out += [(cpu, nr, args) for nr, args in calls]
    return out


def _access_domain(write: bool) -> Any:
    """Every page of the running task's VMAs and an address no VMA covers; init's threads
    (whose SIGSEGV would panic the kernel) only what they may access."""

    def domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, int]]:
        out = []
        for cpu, pid in _callers(s):
            mm = s.mms[s.procs[pid].mm]  # type: ignore[index]
            init = s.procs[pid].tgid == INIT
            for vma in mm.vmas:
                if not init or not write or vma.vm_flags & mmap.VM_WRITE:
                    out += [(cpu, v) for v in range(vma.vm_start, vma.vm_end, PAGE_SIZE)]
            if not init:
                out.append((cpu, MMAP_MIN_ADDR))
        return out

    return domain


def _attach_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, int]]:
    bogus = s.sched.next_pid  # a pid no task has: -ESRCH
    leaders = [t for t in sorted(s.procs) if s.procs[t].tgid == t and group_mm(s, t) is not None]
    return [
        (t, cg)
        for t in (*leaders, bogus)
        for cg in sorted(s.cgroups)
        if cg != ROOT and s.css_set.get(t) != cg
    ]


def _write_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, str]]:
    return [(cg, value) for cg in sorted(s.cgroups) if cg != ROOT for value in m.config.limits]


def _signal_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb)) if s.sched.rqs[cpu].curr in s.sigkill]


def _tick_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb))]


def _kthreadd_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [
        (cpu,)
        for cpu in range(len(s.tlb))
        if s.sched.rqs[cpu].curr == KTHREADD and s.sched.tasks[KTHREADD].state == TASK_RUNNING
    ]


def _kernel_init_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb)) if s.sched.rqs[cpu].curr == INIT and s.procs[INIT].mm is None]


# Small: two CPUs, up to four tasks (init, kthreadd and two more), 38 page frames.
SMALL = KernelConfig()
# Large: two CPUs, up to eight tasks, 1,024 page frames.
LARGE = KernelConfig(
    sched=SchedConfig(nr_cpus=2, tasks=(), max_tasks=8, nice_values=(), preempt_sections=False),
    slub=replace(
        SMALL.slub,
        buddy=replace(
            buddy.SMALL,
            MAX_ORDER=11,
            pageblock_order=9,
            ram=((0, 1024, 0),),
            max_zone_pfn=(16, 512, 1024),
            cpu_to_node=(0, 0),
        ),
    ),
    mmap_pages=(1, 2, 3),
    brk_pages=(0, 1, 2),
    max_vmas=6,
)


class KernelModel(Model[KernelState, KernelConfig]):
    """The whole kernel on one machine, driven by its tasks' system calls and memory
    accesses and by the timer."""

    name = "kernel"
    Config = KernelConfig
    profiles: ClassVar[dict[str, Any]] = {"small": SMALL, "large": LARGE}

    def __init__(self, config: KernelConfig | None = None) -> None:
        super().__init__(config)
        self.slub = SlubModel(self.config.slub)

    @classmethod
    def config_from_json(cls, data: dict[str, Any]) -> Any:
        unknown = set(data) - {f.name for f in dataclasses.fields(KernelConfig)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        return KernelConfig(**data)

    def init_state(self) -> KernelState:
        """start_kernel, then the CPUs run until init runs its program and kthreadd sleeps."""
        boot = ["trap_init"]
        mm = self.slub.buddy.init_state()  # mm_init: mem_init
        slab = SlubState(mm, {}, {}, {}, (), (None,) * self.config.sched.nr_cpus)
        for s in (
            self.slub.specs.values()
        ):  # mm_init: kmem_cache_init, then the caches fork_init and proc_caches_init make
            slub.kmem_cache_create(slab, s)
        boot.append("mm_init")
        sched = SchedModel(self.config.sched).init_state()  # sched_init: the idle tasks
        boot += ["sched_init", "init_IRQ", "time_init", "fork_init"]
        state = KernelState(
            sched,
            slab,
            mmu.EMPTY_PAGE_TABLES,
            (mmu.EMPTY_TLB,) * self.config.sched.nr_cpus,
            {},
            {},
            {},
            {},
            frozenset(),
            frozenset(),
            self.config.sched.max_tasks,
            {},
            {},
            {ROOT: Cgroup("", None, ROOT_TASK_GROUP)},
            {},
            {ROOT: PageCounter()},
            {},
        )
        slab.kmem = state
        for name in self.config.boot_cgroups:  # cgroup_init, then the memory cgroups
            state.memory[cgroup_mkdir(state, ROOT, name, ROOT_TASK_GROUP)] = PageCounter()
        boot += ["cgroup_init", "rest_init"]
        for pid, target in ((INIT, 0), (KTHREADD, self.config.sched.nr_cpus - 1)):  # kernel_thread
            task = kmem_cache_alloc(state, "task_struct", 0)
            assert SchedModel.fork(state.sched, 0, target) == pid and task
            state.procs[pid] = Proc(0, None, task, pid)
            state.css_set[pid] = ROOT
        state.css_set[INIT] = min(c for c in state.cgroups if c != ROOT)
        for cpu in range(self.config.sched.nr_cpus):
            core.schedule(state.sched, cpu)
        while self.kernel_init_pending(state):
            for act, args in self.enabled(state):
                if act.name in ("kernel_init", "kthreadd"):
                    act.effect(self, state, *args)
                    break
            else:
                for cpu in range(self.config.sched.nr_cpus):
                    core.scheduler_tick(state.sched, cpu)
        switch_mm(state)
        state.boot = tuple(boot)
        note_epochs(state.sched)
        return state

    @staticmethod
    def kernel_init_pending(state: KernelState) -> bool:
        return state.procs[INIT].mm is None or state.sched.tasks[KTHREADD].state == TASK_RUNNING

    def step(self, state: KernelState, act: Any, args: Any) -> tuple[KernelState, Any]:
        after, result = super().step(state, act, args)
        core.reschedule_ipis(after.sched)
        switch_mm(after)
        note_epochs(after.sched)
        return after, result

    def diagram(self, steps: Sequence[Step]) -> list[str]:
        """Each step with its result and who runs on each CPU, then what it changed: tasks
        (made, exited, reaped), each mm's VMAs and PTEs, and each CPU's CR3 and TLB."""
        state = self.init_state()
        lines = []
        for n, step in enumerate(steps, 1):
            before = state
            state, result = self.step(state, self.action_by_name[step.action], step.args)
            running = " ".join(f"cpu{c}:{_task(state.sched.rqs[c].curr)}" for c in range(len(state.tlb)))
            lines.append(f"{n:>3}  {_call(step)} -> {_num(result)}    [{running}]")
            lines += [f"       {line}" for line in _changes(before, state)]
        return lines

    @action("cpu", domain=_kernel_init_domain)
    def kernel_init(self, s: KernelState, cpu: int) -> int:
        """init/main.c kernel_init, its last step: run_init_process, an execve from the kernel."""
        return sys_execve(s, cpu, INIT)

    @action("cpu", domain=_kthreadd_domain)
    def kthreadd(self, s: KernelState, cpu: int) -> None:
        """kernel/kthread.c kthreadd: nothing on kthread_create_list, so it sleeps."""
        core.set_task(s.sched, KTHREADD, state=TASK_INTERRUPTIBLE)
        core.schedule(s.sched, cpu)

    @action("cpu", "nr", "args", domain=_syscall_domain)
    def syscall(self, s: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int:
        """The running task's SYSCALL instruction: entry_SYSCALL_64 -> do_syscall_64."""
        return do_syscall_64(s, cpu, nr, args)

    @action("cpu", "vaddr", domain=_access_domain(write=False))
    def load(self, s: KernelState, cpu: int, vaddr: int) -> int:
        """The running task reads a word of user memory."""
        return access(s, cpu, vaddr, write=False)

    @action("cpu", "vaddr", domain=_access_domain(write=True))
    def store(self, s: KernelState, cpu: int, vaddr: int) -> int:
        """The running task writes its pid to a word of user memory."""
        return access(s, cpu, vaddr, write=True)

    @action("tgid", "cg", domain=_attach_domain)
    def attach(self, s: KernelState, tgid: int, cg: int) -> int:
        """echo tgid > cgroup.procs: every thread of the process moves; its pages stay
        charged where they are (memory.move_charge_at_immigrate 0). 0, or -ESRCH."""
        err = cgroup_procs_write(s, tgid, cg)
        if not err:
            for t in thread_group(s, tgid):
                s.css_set[t] = cg
        return err

    @action("cg", "value", domain=_write_domain)
    def write(self, s: KernelState, cg: int, value: str) -> int:
        """A write to the cgroup's memory.limit_in_bytes: 0, -EINVAL for a bad value, -EBUSY
        below the usage (nothing is reclaimable: anonymous pages need swap)."""
        return memcontrol.mem_cgroup_write(s, cg, "memory.limit_in_bytes", value, 0)

    @action("cpu", domain=_signal_domain)
    def signal(self, s: KernelState, cpu: int) -> None:
        """The task on cpu, SIGKILL pending, returns to user mode (from the system call, the
        interrupt or the kick that got it there): get_signal, do_group_exit, do_exit."""
        do_exit(s, cpu, s.sched.rqs[cpu].curr, SIGKILL)

    @action("cpu", domain=_tick_domain)
    def tick(self, s: KernelState, cpu: int) -> None:
        """The timer interrupt on cpu: scheduler_tick, and on its return a preemption if due."""
        core.scheduler_tick(s.sched, cpu)


def _task(pid: int) -> str:
    return str(pid) if pid >= 0 else "idle"


def _num(a: Any) -> str:
    """Addresses in hex, small numbers as they are."""
    return hex(a) if isinstance(a, int) and a > 0xFFFF else str(a)


def _call(step: Step) -> str:
    if step.action != "syscall":
        return f"{step.action}({', '.join(map(_num, step.args))})"
    cpu, nr, args = step.args
    name = SYS_CALL_TABLE.get(nr, f"syscall {nr}").removeprefix("sys_")
    return f"cpu{cpu}: {name}({', '.join(map(_num, args))})"


def _pte(flags: int) -> str:
    return "rw" if flags & mmu._PAGE_RW else "ro"


def _changes(before: KernelState, after: KernelState) -> list[str]:
    out = []
    for pid in sorted(set(before.procs) | set(after.procs)):
        p0, p1 = before.procs.get(pid), after.procs.get(pid)
        if p0 is None and p1 is not None:
            out.append(
                f"task {pid}, a thread of {p1.tgid}"
                if p1.tgid != pid
                else f"task {pid} forked by {p1.parent}"
            )
        elif p1 is None:
            out.append(f"task {pid} reaped")
        elif p1.exit_state and not p0.exit_state:  # type: ignore[union-attr]
            out.append(f"task {pid} exited ({p1.exit_code:#x}), a zombie of {p1.parent}")
    for mm in sorted(set(before.mms) | set(after.mms)):
        m0, m1 = before.mms.get(mm), after.mms.get(mm)
        if m1 is None:
            out.append(f"mm {mm:#x} freed")
            continue
        if m0 is None or m0.vmas != m1.vmas:
            vmas = " ".join(f"[{v.vm_start:#x},{v.vm_end:#x}){v.vm_flags & 7}" for v in m1.vmas)
            out.append(f"mm {mm:#x} VMAs {vmas}")
        ptes0 = {v: (p, f) for v, p, f in mmu.mapped(before.pt, m0.pgd)} if m0 else {}
        ptes1 = {v: (p, f) for v, p, f in mmu.mapped(after.pt, m1.pgd)}
        changed = [
            f"{v:#x}->" + (f"pfn {ptes1[v][0]} {_pte(ptes1[v][1])}" if v in ptes1 else "none")
            for v in sorted(set(ptes0) | set(ptes1))
            if ptes0.get(v) != ptes1.get(v)
        ]
        if changed:
            out.append(f"mm {mm:#x} PTEs " + ", ".join(changed))
    for cpu, (t0, t1) in enumerate(zip(before.tlb, after.tlb, strict=True)):
        if t0 != t1:
            entries = ", ".join(
                f"{vpn << 12:#x}->pfn {p} {_pte(f)}" for vpn, (p, f) in sorted(t1.entries.items())
            )
            out.append(f"cpu{cpu} CR3 pgd {t1.pgd}, TLB {{{entries}}}")
    return out
