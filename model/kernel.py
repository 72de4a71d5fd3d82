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
(model/mm/mmap.py) on private anonymous memory and on MAP_PRIVATE and MAP_SHARED mappings
of the one regular file, faults, copy-on-write and TLB flushes (model/mm/memory.py).

Memory (model/mm/filemap.py, vmscan.py, swapfile.py): the file, /data, has file_pages
pages on a disk and a page cache; sync writes its dirty pages back. The user pages are on
an LRU list; reclaim (a memcg over its limit, an allocation that finds no page, and kswapd,
a kernel thread woken when an allocation finds the free pages at the low watermark) writes
back and drops page-cache pages and swaps anonymous pages out to a swap area of swap_pages
slots, from which do_swap_page reads them back. An allocation that reclaim cannot serve
calls the OOM killer over every process (out_of_memory).

Each user page holds one word; a store writes the storing task's pid. The state keeps, as
a checker's record, what each mm stored where (``stored``) and the rights each page was
asked for (``asked``), so that invariants can tell a copy-on-write or protection bug from
right behaviour.

Files and pipes (fs/file.c, fs/pipe.c): a task's fd table (files_struct: shared by the
threads of a clone, copied by fork, closed by the exit of its last user) holds struct file
objects of the "filp" cache, each held also by the VMAs that map it; open() opens /data
(which is only mapped: read and write on it are -EINVAL, as for a file without
read_iter and write_iter); pipe() makes a pipe_inode_info and a read and a write end.
A pipe is a ring of page-frame buffers (model/fs/pipe.py), charged like any __GFP_ACCOUNT
page; a read of an empty pipe and a write to a full one sleep on pipe->wait until the other
side wakes them; a write with no reader left raises SIGPIPE and fails with -EPIPE.

A system call that sleeps (wait4, a pipe read or write) leaves the task on a wait queue
with how far it got (``sleeps``); woken, it goes on from there when it next runs (the
``resume`` action), as the kernel's task returns from schedule() inside the call. The
call's return value is that of the step that finishes it.

Signals (kernel/signal.c): SIGKILL, SIGPIPE and SIGCHLD, with the handlers rt_sigaction
installs per process (SIG_DFL, SIG_IGN or a user function). A signal its handler ignores is
not queued; a fatal one (SIGKILL, or SIGPIPE left SIG_DFL) makes the whole group exit at
once (complete_signal: SIGNAL_GROUP_EXIT, SIGKILL on every thread, the signal as the exit
code); any other is pending on the task (send_sig) or its group (kill, SIGCHLD) and is
delivered when a thread of it returns to user mode (the ``signal`` action): its handler is
entered through a frame written on the user stack. A pending signal interrupts a sleeping
call with -EINTR (no SA_RESTART). A child's exit wakes its parent's wait4 and sends it
SIGCHLD; a parent ignoring SIGCHLD has its children reaped as they die. A fatal fault is
the group's exit with SIGSEGV's status (SIGBUS's past the end of the file).

The memory and pids controllers are the cgroup model's code (model/cgroup/memcontrol.py,
pids.py) on this state: boot_cgroups under the root (init runs in the first), cgroup.procs,
memory.limit_in_bytes and pids.max writes; anonymous pages charged to the mm owner's memcg,
page tables, pipe pages and SLAB_ACCOUNT slabs to the allocating task's; the memcg OOM
killer SIGKILLs and reaps the process in the memcg with the most pages mapped; fork and
clone charged a pid in every level (cgroup_can_fork), a task uncharged when it is reaped.

Not yet wired in: the cpu controller, mkdir and rmdir here, signal masks, the swap cache,
the active and inactive LRU lists (the MMU sets no accessed bits to age pages by), read and
write of a regular file, and SLUB's own page allocations waking kswapd or reclaiming.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

from model.cgroup import memcontrol, pids
from model.cgroup.cgroup import ROOT, Cgroup, cgroup_mkdir, cgroup_procs_write, in_subtree
from model.cgroup.model import one_machine
from model.cgroup.page_counter import PageCounter
from model.cgroup.pids import PidsCgroup
from model.contract import Model, Step, action
from model.fs import pipe as fs_pipe
from model.fs.pipe import Pipe
from model.hw import mmu
from model.hw.mmu import PAGE_SIZE, PageFault, PageTables, Tlb
from model.mm import buddy, filemap, memory, mmap, slub, vmscan
from model.mm.buddy import BuddyState
from model.mm.mmzone import MIGRATETYPE
from model.mm.slab import SlubConfig, SlubModel, SlubState
from model.mm.slab_common import CacheSpec
from model.sched import core
from model.sched.model import SchedConfig, SchedModel, SchedState, note_epochs
from model.sched.sched import ROOT_TASK_GROUP, TASK_INTERRUPTIBLE, TASK_RUNNING

ESRCH = 3
EINTR = 4
EBADF = 9
ECHILD = 10
EAGAIN = 11
ENOMEM = 12
EACCES = 13
ENODEV = 19
EINVAL = 22
ENFILE = 23
EMFILE = 24
EPIPE = 32
ENOSYS = 38
# kernel-internal (include/linux/errno.h): copy_process's "a signal came in; restart the fork
# after it", which the task sees as its fork done again once the signal is handled.
ERESTARTNOINTR = 513
EXIT_ZOMBIE = 0x20
SIGBUS = 7
SIGKILL = 9
SIGSEGV = 11
SIGPIPE = 13
SIGCHLD = 17
SIG_DFL = 0
SIG_IGN = 1
SIG_HANDLER = 0x401000  # a handler function in the program's text
FMODE_READ = 0x1
FMODE_WRITE = 0x2
O_RDONLY = 0
O_RDWR = 2
O_NONBLOCK = 0o4000
INIT = 1  # the child reaper
KTHREADD = 2
KSWAPD = 3
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
    0: "sys_read",
    1: "sys_write",
    2: "sys_open",
    3: "sys_close",
    9: "sys_mmap",
    10: "sys_mprotect",
    11: "sys_munmap",
    12: "sys_brk",
    13: "sys_rt_sigaction",
    22: "sys_pipe",
    39: "sys_getpid",
    56: "sys_clone",
    57: "sys_fork",
    59: "sys_execve",
    60: "sys_exit",
    61: "sys_wait4",
    62: "sys_kill",
    162: "sys_sync",
    293: "sys_pipe2",
}
NR = {name[4:]: nr for nr, name in SYS_CALL_TABLE.items()}
# The random engines draw an action first, then its arguments: the system calls are three
# actions, so that files and pipes, and signals, are not drowned by the thirty-odd others.
FS_CALLS = frozenset(NR[n] for n in ("read", "write", "open", "close", "pipe", "pipe2", "sync"))
SIGNAL_CALLS = frozenset(NR[n] for n in ("kill", "rt_sigaction"))
SYSCALL_ACTIONS = ("syscall", "fs_syscall", "signal_syscall")


def syscall_action(nr: int) -> str:
    """The action that makes system call nr (any number outside the table: ``syscall``)."""
    return "fs_syscall" if nr in FS_CALLS else "signal_syscall" if nr in SIGNAL_CALLS else "syscall"


# The calls that take the caller's mmap_sem for write (dup_mmap: the parent's).
MMAP_SEM_WRITERS = {"sys_mmap", "sys_munmap", "sys_mprotect", "sys_brk", "sys_fork"}


class Proc(NamedTuple):
    """The process part of struct task_struct."""

    parent: int  # real_parent
    mm: int | None  # the mm_struct object; None for a kernel thread
    task_struct: int  # the task_struct object
    tgid: int  # the thread group: the leader's pid
    exit_state: int = 0  # EXIT_ZOMBIE once it has exited
    exit_code: int = 0
    files: int = 0  # its fd table (a key of KernelState.fdt); 0: none (exited, kthreadd)


class File(NamedTuple):
    """struct file: the pipe_inode_info of a pipe end (FMODE_READ or FMODE_WRITE), 0 for
    /data (FMODE_READ, with FMODE_WRITE if opened O_RDWR); f_count; f_flags (O_NONBLOCK or 0)."""

    pipe: int
    f_mode: int
    f_count: int
    f_flags: int = 0


class Sleep(NamedTuple):
    """A task inside a system call that slept: the wait queue it went on (("wait_chldexit",
    its tgid) or ("pipe", the pipe)), whether a wake-up has taken it off (autoremove), and
    for a pipe read or write the file it holds a reference to (fdget: a close of the fd
    meanwhile does not end the call) and the bytes it had moved."""

    nr: int
    args: tuple[int, ...]
    queue: tuple[str, int]
    woken: bool = False
    file: int = 0
    done: int = 0


class MmStruct(NamedTuple):
    """struct mm_struct: its page tables, VMAs (each a vm_area_struct object) and heap."""

    pgd: int
    vmas: mmap.Vmas
    vma_objects: tuple[int, ...]  # one vm_area_struct object per VMA
    start_brk: int
    brk: int


KERNEL_CACHES = ("task_struct", "mm_struct", "vm_area_struct", "filp", "pipe_inode_info")


@dataclass(frozen=True)
class KernelConfig:
    """The machine and what its tasks may ask for."""

    # max_tasks: fork_init's max_threads, the tasks (init, kthreadd and kswapd included) fork allows.
    sched: SchedConfig = SchedConfig(nr_cpus=2, tasks=(), max_tasks=5, nice_values=(), preempt_sections=False)
    # The page frames and SLUB's caches; task_struct, mm_struct and vm_area_struct sized
    # down so that a few share a page.
    slub: SlubConfig = SlubConfig(
        # A machine kept near its watermarks, so that a few steps reach reclaim: the Normal
        # zone's min, low and high are 20, 25 and 30 of its 35 pages (vm.min_free_kbytes 88,
        # and vm.watermark_scale_factor at its maximum, 1000).
        buddy=replace(
            buddy.SMALL,
            ram=((0, 5, 0), (6, 40, 0)),
            max_zone_pfn=(2, 4, 40),
            cpu_to_node=(0, 0),
            min_free_kbytes=88,
            watermark_scale_factor=1000,
        ),
        slub_max_order=0,
        slub_min_objects=2,
        cpu_partial=2,
        min_partial=1,
        caches=(
            CacheSpec("task_struct", 1024, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            CacheSpec("mm_struct", 1024, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            CacheSpec("vm_area_struct", 512, 0, ("SLAB_ACCOUNT",)),
            CacheSpec("filp", 256, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            # alloc_pipe_info's kzalloc(GFP_KERNEL_ACCOUNT), with its bufs array.
            CacheSpec("pipe_inode_info", 512, 0, ("SLAB_ACCOUNT",)),
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
    pids_limits: tuple[str, ...] = ("2", "max", "-1")  # values written to pids.max
    nr_open: int = 4  # the fds a table has
    pipe_buffers: int = 2  # a new pipe's ring (PIPE_DEF_BUFFERS is 16)
    pipe_writes: tuple[int, ...] = (3072, 6144)  # the bytes a pipe write asks for
    pipe_reads: tuple[int, ...] = (4096,)
    file_pages: int = 2  # the size of /data
    swap_pages: int = 2  # the slots of the swap area

    def __post_init__(self) -> None:
        for name in (
            "mmap_pages",
            "brk_pages",
            "boot_cgroups",
            "limits",
            "pids_limits",
            "pipe_writes",
            "pipe_reads",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        one_machine(self)
        if self.sched.tasks:
            raise ValueError(
                "sched.tasks must be empty: the kernel's tasks are its own (init, kthreadd, forks)"
            )
        names = {c.name for c in self.slub.caches}
        if not set(KERNEL_CACHES) <= names:
            raise ValueError(f"slub.caches {sorted(names)} lack one of {list(KERNEL_CACHES)}")
        if any(n < 1 for n in self.mmap_pages) or any(n < 0 for n in self.brk_pages) or self.max_vmas < 1:
            raise ValueError("mmap_pages and max_vmas must be at least 1, brk_pages at least 0")
        if (
            self.nr_open < 2
            or self.pipe_buffers < 1
            or min((*self.pipe_writes, *self.pipe_reads), default=0) < 1
        ):
            raise ValueError("nr_open must be at least 2, pipe_buffers and the pipe sizes at least 1")
        if self.file_pages < 1 or self.swap_pages < 0:
            raise ValueError("file_pages must be at least 1, swap_pages at least 0")
        if self.pipe_buffers & (self.pipe_buffers - 1):
            raise ValueError(
                f"pipe_buffers {self.pipe_buffers} is not a power of 2 (pipe_set_size rounds up)"
            )
        if not self.boot_cgroups or len(set(self.boot_cgroups)) != len(self.boot_cgroups):
            raise ValueError(f"boot_cgroups {list(self.boot_cgroups)} must be distinct names, at least one")


@dataclass(slots=True, eq=False)
class KernelState(memcontrol.MemcgKmemHooks):
    sched: SchedState  # the tasks, run queues and CPUs' preempt_count and interrupt flags
    slub: SlubState  # the caches, and in slub.mm the buddy allocator's page frames
    pt: PageTables  # every page-table page
    tlb: tuple[Tlb, ...]  # per CPU: its CR3 (tlb.pgd; None: init_mm) and TLB entries
    max_threads: int  # kernel/fork.c max_threads, set by fork_init: copy_process refuses past it
    nr_open: int  # the fds of a table
    pipe_buffers: int  # a new pipe's ring
    file_pages: int  # the size of /data
    nr_swap: int  # the slots of the swap area
    kswapd: int = 0  # pgdat->kswapd, set at boot
    procs: dict[int, Proc] = field(default_factory=dict)  # every task but the idle ones, zombies included
    mms: dict[int, MmStruct] = field(default_factory=dict)  # by mm_struct object
    mapcount: dict[int, int] = field(default_factory=dict)  # the PTEs mapping each user page
    data: dict[int, int] = field(default_factory=dict)  # the word each user page holds
    # The file, the swap area and reclaim: /data's page cache (file page -> pfn) and disk
    # (file page -> word), each swap slot's count of PTEs and its word, the LRU list of user
    # pages (oldest first) and the dirty page-cache pages.
    page_cache: dict[int, int] = field(default_factory=dict)
    disk: dict[int, int] = field(default_factory=dict)
    swap_map: dict[int, int] = field(default_factory=dict)
    swap_data: dict[int, int] = field(default_factory=dict)
    lru: tuple[int, ...] = ()
    dirty: frozenset[int] = frozenset()
    sleeps: dict[int, Sleep] = field(default_factory=dict)  # tasks inside a call that slept
    # Signals: the threads of an exiting group (SIGNAL_GROUP_EXIT: SIGKILL pending) with the
    # group's exit code; the other pending signals, per task and per group (tgid); each
    # group's handlers other than SIG_DFL (struct sighand_struct).
    sigkill: dict[int, int] = field(default_factory=dict)
    pending: dict[int, frozenset[int]] = field(default_factory=dict)
    shared_pending: dict[int, frozenset[int]] = field(default_factory=dict)
    sighand: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # Files: each fd table (per fd, a struct file object or 0), the files, the pipes.
    fdt: dict[int, tuple[int, ...]] = field(default_factory=dict)
    files: dict[int, File] = field(default_factory=dict)
    pipes: dict[int, Pipe] = field(default_factory=dict)
    # The checker's record, per mm: the word each page was last stored, and the rights
    # (VM_READ | VM_WRITE | VM_EXEC) each page was asked for by mmap, mprotect or brk.
    stored: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    asked: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    file_stored: dict[int, int] = field(default_factory=dict)  # per page of /data, its last shared store
    # The memory and pids controllers (model/cgroup): the hierarchy, each task's cgroup, each
    # memcg's page counter, page->mem_cgroup of every charged page, each cgroup's pids.
    cgroups: dict[int, Cgroup] = field(default_factory=dict)
    css_set: dict[int, int] = field(default_factory=dict)
    memory: dict[int, PageCounter] = field(default_factory=dict)
    page_memcg: dict[int, int] = field(default_factory=dict)
    pids: dict[int, PidsCgroup] = field(default_factory=dict)  # the pids controller's counters
    boot: tuple[str, ...] = field(default=())  # start_kernel's steps, in order
    # The checker's record of the last step, kept beside the state (out of its fingerprint):
    # each system call it made with what it returned, and the charge, OOM and signal events.
    returns: tuple[tuple[int, int], ...] = field(default=())
    events: tuple[tuple[str, int, int], ...] = field(default=())
    mmap_locked: int | None = None  # the mm whose mmap_sem the running call holds for write

    @property
    def mm(self) -> BuddyState:
        return self.slub.mm

    # The memory controller's other hooks (SLUB's come from MemcgKmemHooks): try_charge's
    # OOM killer, and the page and page-table charges of model/mm/memory.py.

    def mem_cgroup_out_of_memory(self, memcg: int, cpu: int) -> bool:
        return mem_cgroup_out_of_memory(self, memcg, cpu)

    def out_of_memory(self, cpu: int) -> bool:
        """The global OOM killer: the memcg one's choice over every process."""
        return mem_cgroup_out_of_memory(self, ROOT, cpu)

    def try_to_free_mem_cgroup_pages(self, memcg: int, nr_pages: int, cpu: int) -> int:
        return vmscan.try_to_free_mem_cgroup_pages(self, memcg, nr_pages, cpu)

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
            self.max_threads,
            self.nr_open,
            self.pipe_buffers,
            self.file_pages,
            self.nr_swap,
            self.kswapd,
        )
        for name in _STATE_DICTS:
            setattr(new, name, dict(getattr(self, name)))
        new.lru, new.dirty = self.lru, self.dirty
        new.boot = self.boot
        new.slub.kmem = new
        return new

    def fingerprint(self) -> Hashable:
        return (
            self.sched.fingerprint(),
            self.slub.fingerprint(),
            self.pt.fingerprint(),
            tuple(t.fingerprint() for t in self.tlb),
            *(tuple(sorted(getattr(self, name).items())) for name in _STATE_DICTS),
            self.lru,
            self.dirty,
        )

    def current(self, cpu: int) -> int | None:
        """The user task running on cpu, if it may enter the kernel: a live process with an
        mm, TASK_RUNNING, in no system call and with no signal to take first."""
        t = self.sched.curr(cpu)
        p = self.procs.get(t.pid)
        if p is None or p.mm is None or p.exit_state or t.state != TASK_RUNNING or t.pid in self.sleeps:
            return None
        return None if signal_pending(self, t.pid) else t.pid


_STATE_DICTS = tuple(f.name for f in dataclasses.fields(KernelState) if str(f.type).startswith("dict["))


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
    pgd = memory.alloc_page_account(state, cpu)  # pgd_alloc: a page-table page, charged
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
    (vm_area_free), and each VMA's file referenced (get_file in mmap_region, __split_vma
    and dup_mmap; fput in remove_vma and vma_merge). False, with nothing changed, when an
    object is not to be had."""
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
    refs = Counter(v.vm_file for v in vmas if v.vm_file)
    refs.subtract(v.vm_file for v in m.vmas if v.vm_file)
    for f, n in sorted(refs.items()):
        if n > 0:
            state.files[f] = state.files[f]._replace(f_count=state.files[f].f_count + n)
    for f, n in sorted(refs.items()):
        for _ in range(-n):
            fput(state, f, cpu)
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
    """The last user of an mm is gone: exit_mmap, then the VMAs (their objects freed, their
    files put) and the mm's object."""
    memory.exit_mmap(state, cpu, mm)
    set_vmas(state, mm, (), cpu)
    del state.mms[mm]
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
    frees its anonymous pages at once (__oom_reap_task_mm), unless the running call holds the
    mm's mmap_sem for write (the reaper's trylock fails; the victim's exit frees them). False
    if there is none."""
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
    send_group_exit(state, victim, SIGKILL, cpu)
    mm = group_mm(state, victim)
    if mm != state.mmap_locked:  # oom_reap_task_mm: down_read_trylock(&mm->mmap_sem)
        oom_reap(state, cpu, mm)  # type: ignore[arg-type]
    return True


def oom_reap(state: KernelState, cpu: int, mm: int) -> None:
    """__oom_reap_task_mm: the private mappings of the victim's mm unmapped, their pages and
    swap slots freed (the VMAs and page tables stay for exit_mmap); the victim will read
    nothing back."""
    m = state.mms[mm]
    for vaddr, pfn, flags in mmu.leaves(state.pt, m.pgd):
        vma = mmap.find_vma(m.vmas, vaddr)
        if vma is None or not vma.vm_flags & mmap.VM_SHARED:
            memory.zap_pte(state, cpu, m.pgd, vaddr, pfn, flags)
    memory.flush_tlb_mm_range(state, cpu, mm, 0, mmu.TASK_SIZE_TOP)
    state.stored[mm] = ()


# The system calls, each on behalf of the task running on cpu.


def sys_getpid(state: KernelState, cpu: int, pid: int) -> int:
    return state.procs[pid].tgid


def sys_mmap(
    state: KernelState,
    cpu: int,
    pid: int,
    addr: int,
    length: int,
    prot: int,
    flags: int,
    fd: int = -1,
    off: int = 0,
) -> int:
    """mm/mmap.c ksys_mmap_pgoff -> do_mmap: the address, or -errno (-EBADF for a bad fd
    without MAP_ANONYMOUS, -ENODEV for a pipe, -EINVAL for an offset not page-aligned)."""
    mm = state.procs[pid].mm
    assert mm is not None
    file = None
    if not flags & mmap.MAP_ANONYMOUS:
        f = fd_file(state, pid, fd, FMODE_READ | FMODE_WRITE)
        if not f:
            return -EBADF
        if state.files[f].pipe:
            return -ENODEV
        if off & (PAGE_SIZE - 1):
            return -EINVAL
        mode = state.files[f].f_mode
        file = (f, bool(mode & FMODE_READ), bool(mode & FMODE_WRITE))
    old = state.mms[mm].vmas
    vmas, ret, unmapped = mmap.do_mmap(
        old, addr, length, prot, flags, MMAP_BASE, MMAP_MIN_ADDR, file, off // PAGE_SIZE
    )
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
    target. The child's pid, -EAGAIN past the task limit or a pids.max, -ENOMEM without
    memory, -ERESTARTNOINTR if a signal came meanwhile."""
    if len(state.procs) >= state.max_threads:
        return -EAGAIN
    task = kmem_cache_alloc(state, "task_struct", cpu)
    if not task:
        return -ENOMEM
    parent_mm = state.procs[pid].mm
    assert parent_mm is not None
    mm = dup_mm(state, cpu, parent_mm)
    err = copy_process_checks(state, pid) if mm else -ENOMEM
    if err:
        if mm:
            mmput(state, mm, cpu)
        kmem_cache_free(state, task, cpu)
        return err
    child = SchedModel.fork(state.sched, cpu, target)
    parent = state.procs[pid]
    state.fdt[child] = dup_fd(state, state.fdt[parent.files])
    state.procs[child] = Proc(pid, mm, task, child, files=child)
    if parent.tgid in state.sighand:  # copy_sighand
        state.sighand[child] = state.sighand[parent.tgid]
    state.css_set[child] = state.css_set[pid]  # cgroup_post_fork: the parent's cgroup
    return child


def copy_process_checks(state: KernelState, pid: int) -> int:
    """copy_process's checks after its allocations: cgroup_can_fork (the pids controller's
    charge: -EAGAIN past a pids.max), then, the charge cancelled if it fails, a signal that
    came meanwhile (recalc_sigpending: -ERESTARTNOINTR, the fork done again after it; an
    allocation's OOM kill may have chosen this very group, whose new thread would escape)."""
    err = pids.pids_can_fork(state, state.css_set[pid])
    if err:
        return err
    if signal_pending(state, pid):
        pids.pids_uncharge(state, state.css_set[pid], 1)  # cgroup_cancel_fork
        return -ERESTARTNOINTR
    return 0


def dup_fd(state: KernelState, fds: tuple[int, ...]) -> tuple[int, ...]:
    """fs/file.c dup_fd: the child's table holds the parent's files, each one more reference
    (get_file)."""
    for f in fds:
        if f:
            state.files[f] = state.files[f]._replace(f_count=state.files[f].f_count + 1)
    return fds


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
    err = copy_process_checks(state, pid)
    if err:
        kmem_cache_free(state, task, cpu)
        return err
    p = state.procs[pid]
    child = SchedModel.fork(state.sched, cpu, target)
    state.procs[child] = Proc(p.parent, p.mm, task, p.tgid, files=p.files)
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
    # flush_signal_handlers: the program's functions are gone; what was ignored stays so.
    kept = tuple((sig, h) for sig, h in state.sighand.pop(pid, ()) if h == SIG_IGN)
    if kept:
        state.sighand[pid] = kept
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
    """kernel/exit.c do_exit: exit_mm (the mm put by its last user), exit_files (the fd table
    closed by its last user), exit_notify (children reparented to a live thread of the
    group, else to init; a thread other than the leader is reaped at once; a leader is a
    zombie, and its parent is notified once the whole group is gone: do_notify_parent),
    do_task_dead."""
    p = state.procs[pid]
    if p.mm is not None and not any(q.mm == p.mm for c, q in state.procs.items() if c != pid):
        mmput(state, p.mm, cpu)
    if p.files and not any(q.files == p.files for c, q in state.procs.items() if c != pid):
        for f in state.fdt.pop(p.files):
            if f:
                fput(state, f, cpu)
    reaper = next(
        (c for c in thread_group(state, p.tgid) if c != pid and not state.procs[c].exit_state), INIT
    )
    orphans = [c for c, q in state.procs.items() if q.parent == pid]
    for c in orphans:
        state.procs[c] = state.procs[c]._replace(parent=reaper)  # forget_original_parent
    state.procs[pid] = p._replace(mm=None, exit_state=EXIT_ZOMBIE, exit_code=exit_code, files=0)
    state.sigkill.pop(pid, None)
    state.pending.pop(pid, None)
    live = [t for t in thread_group(state, p.tgid) if not state.procs[t].exit_state]
    if not live:
        state.shared_pending.pop(p.tgid, None)  # __exit_signal of the group's last thread
    elif p.tgid in state.shared_pending and all(
        t in state.sleeps and not state.sleeps[t].woken for t in live
    ):
        signal_wake_up(state, live[0], cpu)  # exit_signals -> retarget_shared_pending
    for c in orphans:
        if c in state.procs and reapable(state, c):  # reparent_leader
            do_notify_parent(state, c, cpu)
    if pid != p.tgid:
        release_task(state, pid, cpu)  # autoreap
    if reapable(state, p.tgid):  # the leader, or a zombie leader whose last thread this was
        do_notify_parent(state, p.tgid, cpu)
    core.do_task_dead(state.sched, cpu)


def do_notify_parent(state: KernelState, tgid: int, cpu: int) -> None:
    """kernel/signal.c do_notify_parent for a group now gone: the parent's threads asleep in
    wait4 are woken (__wake_up_parent) and its group is sent SIGCHLD; a parent that ignores
    SIGCHLD has the zombie reaped at once (autoreap)."""
    parent = state.procs[tgid].parent
    if parent not in state.procs:
        return
    ptgid = state.procs[parent].tgid
    wake_up_parent(state, ptgid, cpu)
    if sighandler(state, ptgid, SIGCHLD) == SIG_IGN:
        release_task(state, tgid, cpu)
    else:
        send_signal(state, ptgid, SIGCHLD, cpu, group=True)


def wake_up_parent(state: KernelState, tgid: int, cpu: int) -> None:
    """__wake_up_parent: the threads of the parent's group asleep in wait4, on its
    signal->wait_chldexit."""
    wake_up(state, ("wait_chldexit", tgid), cpu)


def wake_up(state: KernelState, queue: tuple[str, int], cpu: int) -> None:
    """__wake_up on a wait queue: every task asleep on it is taken off (autoremove_wake_function)
    and woken on this CPU."""
    for t, sleep in sorted(state.sleeps.items()):
        if sleep.queue == queue and not sleep.woken:
            state.sleeps[t] = sleep._replace(woken=True)
            core.try_to_wake_up(state.sched, t, cpu)


def sleep_on(state: KernelState, cpu: int, pid: int, sleep: Sleep) -> None:
    """prepare_to_wait(sleep.queue, TASK_INTERRUPTIBLE) and schedule(), inside a system call."""
    state.sleeps[pid] = sleep
    core.set_task(state.sched, pid, state=TASK_INTERRUPTIBLE)
    core.schedule(state.sched, cpu)


def resumed(state: KernelState, pid: int) -> Sleep | None:
    """The sleep a system call is going on from (finish_wait), or None on a fresh call."""
    return state.sleeps.pop(pid, None)


def sys_wait4(state: KernelState, cpu: int, pid: int) -> int | None:
    """kernel/exit.c do_wait for any child: a reapable zombie child is reaped (release_task:
    its task_struct freed) and its pid returned; with children but none reapable the task
    sleeps on its group's wait_chldexit until a child's exit wakes it, and looks again;
    -EINTR when a signal is pending (no SA_RESTART); -ECHILD without children."""
    resumed(state, pid)
    kids = children(state, pid)
    if not kids:
        return -ECHILD
    zombie = next((c for c in kids if reapable(state, c)), None)
    if zombie is not None:
        release_task(state, zombie, cpu)
        return zombie
    if signal_pending(state, pid):
        return -EINTR
    sleep_on(state, cpu, pid, Sleep(NR["wait4"], (), ("wait_chldexit", state.procs[pid].tgid)))
    return None


# Signals.


def sighandler(state: KernelState, tgid: int, sig: int) -> int:
    return dict(state.sighand.get(tgid, ())).get(sig, SIG_DFL)


def sig_ignored(state: KernelState, tgid: int, sig: int) -> bool:
    """kernel/signal.c sig_task_ignored: SIG_IGN, or SIG_DFL of a signal whose default is to
    be ignored (SIGCHLD); and init (SIGNAL_UNKILLABLE) ignores every SIG_DFL signal."""
    handler = sighandler(state, tgid, sig)
    return handler == SIG_IGN or (handler == SIG_DFL and (sig == SIGCHLD or tgid == INIT))


def signal_pending(state: KernelState, pid: int) -> bool:
    return (
        pid in state.sigkill
        or bool(state.pending.get(pid))
        or bool(state.shared_pending.get(state.procs[pid].tgid))
    )


def send_signal(state: KernelState, target: int, sig: int, cpu: int, group: bool) -> None:
    """kernel/signal.c __send_signal and complete_signal: nothing if the handler ignores sig;
    a fatal signal (SIGKILL; SIGPIPE left SIG_DFL) makes the group exit; any other is added
    to the group's pending set (kill) or the task's (send_sig), and one thread that wants it
    (wants_signal: running, or nothing pending yet; the leader first) is woken to take it.
    If none wants it, each thread already has a signal to wake for."""
    tgid = state.procs[target].tgid
    if sig_ignored(state, tgid, sig) or tgid in _exiting(state):
        return
    if sig == SIGKILL or sighandler(state, tgid, sig) == SIG_DFL:
        send_group_exit(state, tgid, sig, cpu)
        return
    if group:
        running = {state.sched.rqs[c].curr for c in range(len(state.tlb))}
        live = [t for t in thread_group(state, tgid) if not state.procs[t].exit_state]
        wants = [t for t in live if t in running or not signal_pending(state, t)]
        state.shared_pending[tgid] = state.shared_pending.get(tgid, frozenset()) | {sig}
    else:
        state.pending[target] = state.pending.get(target, frozenset()) | {sig}
        wants = [target]
    if wants:
        signal_wake_up(state, tgid if tgid in wants else wants[0], cpu)


def send_sig(state: KernelState, sig: int, t: int, cpu: int) -> None:
    """kernel/signal.c send_sig: sig to task t alone."""
    send_signal(state, t, sig, cpu, group=False)


def _exiting(state: KernelState) -> set[int]:
    return {state.procs[t].tgid for t in state.sigkill}


def send_group_exit(state: KernelState, tgid: int, code: int, cpu: int) -> None:
    """complete_signal of a fatal signal (SIGNAL_GROUP_EXIT, group_exit_code) and
    zap_other_threads: SIGKILL pending on every live thread of the group, each woken."""
    for t in thread_group(state, tgid):
        if not state.procs[t].exit_state:
            state.sigkill[t] = code
            signal_wake_up(state, t, cpu)


def signal_wake_up(state: KernelState, t: int, cpu: int) -> None:
    """kernel/signal.c signal_wake_up: a task asleep interruptibly (in a system call) is
    woken on this CPU; one running elsewhere is kicked, and takes the signal on the IPI's
    return."""
    sleep = state.sleeps.get(t)
    if sleep is not None and not sleep.woken:
        state.sleeps[t] = sleep._replace(woken=True)
        core.try_to_wake_up(state.sched, t, cpu)


def sys_kill(state: KernelState, cpu: int, pid: int, target: int, sig: int) -> int:
    """kernel/signal.c kill_pid_info: sig sent to the process target (its thread group). 0;
    -EINVAL for a signal not modelled; -ESRCH for no such process. A kernel thread ignores
    every signal (kthreadd's ignore_signals), and a process whose threads have all exited
    takes none."""
    if sig not in (SIGKILL, SIGPIPE, SIGCHLD):
        return -EINVAL
    p = state.procs.get(target)
    if p is None or p.tgid != target:
        return -ESRCH
    live = [t for t in thread_group(state, target) if not state.procs[t].exit_state]
    if live and group_mm(state, target) is not None:
        send_signal(state, live[0], sig, cpu, group=True)
    return 0


def sys_rt_sigaction(state: KernelState, cpu: int, pid: int, sig: int, handler: int) -> int:
    """kernel/signal.c do_sigaction: the group's handler of sig becomes handler; one that
    ignores it discards sig wherever it is pending (POSIX 3.3.1.3). -EINVAL for SIGKILL."""
    if sig not in (SIGPIPE, SIGCHLD) or handler not in (SIG_DFL, SIG_IGN, SIG_HANDLER):
        return -EINVAL
    tgid = state.procs[pid].tgid
    handlers = {**dict(state.sighand.get(tgid, ())), sig: handler}
    state.sighand[tgid] = tuple(sorted((s, h) for s, h in handlers.items() if h != SIG_DFL))
    if not state.sighand[tgid]:
        del state.sighand[tgid]
    if handler == SIG_IGN or (handler == SIG_DFL and sig == SIGCHLD):  # sig_handler_ignored
        for t in thread_group(state, tgid):
            sigdelset(state.pending, t, sig)
        sigdelset(state.shared_pending, tgid, sig)
    return 0


def sigdelset(pending: dict[int, frozenset[int]], key: int, sig: int) -> None:
    left = pending.get(key, frozenset()) - {sig}
    if left:
        pending[key] = left
    else:
        pending.pop(key, None)


def get_signal(state: KernelState, cpu: int) -> int:
    """arch/x86/kernel/signal.c do_signal -> get_signal, on the way back to user mode: a
    group exit ends the task (do_group_exit with the group's code); else the next pending
    signal (the task's own first, the lowest first) is taken: a handled one enters its
    handler through a frame on the user stack (setup_rt_frame; the handler runs and
    returns), a fatal one makes the group exit. The signal taken."""
    pid = state.sched.rqs[cpu].curr
    if pid in state.sigkill:
        do_exit(state, cpu, pid, state.sigkill[pid])
        return SIGKILL
    tgid = state.procs[pid].tgid
    own = state.pending.get(pid, frozenset())
    shared = state.shared_pending.get(tgid, frozenset())
    sig = min(own or shared)
    if own:
        sigdelset(state.pending, pid, sig)
    else:
        sigdelset(state.shared_pending, tgid, sig)
    if sighandler(state, tgid, sig) == SIG_DFL:  # SIGPIPE's default: terminate
        if tgid == INIT:
            return sig  # SIGNAL_UNKILLABLE
        send_group_exit(state, tgid, sig, cpu)
        do_exit(state, cpu, pid, sig)
        return sig
    state.events += (("signal", pid, sig),)
    if user_access(state, cpu, STACK_TOP - PAGE_SIZE, write=True) < 0 and tgid != INIT:
        send_group_exit(state, tgid, SIGSEGV, cpu)  # force_sigsegv: no frame, no handler
        do_exit(state, cpu, pid, SIGSEGV)
    return sig


def release_task(state: KernelState, pid: int, cpu: int) -> None:
    """kernel/exit.c release_task: the task leaves its cgroup (cgroup_release: the pids
    controller uncharges it) and its task_struct is freed; with its group's last task go
    its handlers and shared pending signals."""
    pids.pids_release(state, state.css_set.pop(pid))
    tgid = state.procs[pid].tgid
    kmem_cache_free(state, state.procs.pop(pid).task_struct, cpu)
    if not thread_group(state, tgid):
        state.sighand.pop(tgid, None)
        state.shared_pending.pop(tgid, None)


# Files and pipes.


def fd_file(state: KernelState, pid: int, fd: int, f_mode: int) -> int:
    """fdget: the file open on fd for f_mode, or 0 (-EBADF)."""
    fds = state.fdt[state.procs[pid].files]
    f = fds[fd] if 0 <= fd < len(fds) else 0
    return f if f and state.files[f].f_mode & f_mode else 0


def sys_pipe(state: KernelState, cpu: int, pid: int) -> int:
    return sys_pipe2(state, cpu, pid, 0)


def sys_pipe2(state: KernelState, cpu: int, pid: int, flags: int) -> int:
    """fs/pipe.c do_pipe2: create_pipe_files (alloc_pipe_info's pipe_inode_info and a struct
    file for each end, O_NONBLOCK in their f_flags if asked), then the two lowest free fds,
    the read end first. 0 (the fds, which the kernel copies to the caller's int[2], are
    what the fd table shows); -EINVAL for another flag; -ENFILE without memory; -EMFILE
    with fewer than two fds free."""
    if flags & ~O_NONBLOCK:
        return -EINVAL
    key = state.procs[pid].files
    free = [fd for fd, f in enumerate(state.fdt[key]) if not f][:2]
    objs = [kmem_cache_alloc(state, cache, cpu) for cache in ("pipe_inode_info", "filp", "filp")]
    if not all(objs) or len(free) < 2:
        for obj in objs:
            if obj:
                kmem_cache_free(state, obj, cpu)
        return -ENFILE if not all(objs) else -EMFILE
    obj, rf, wf = objs
    state.pipes[obj] = Pipe(state.pipe_buffers, readers=1, writers=1)
    state.files[rf] = File(obj, FMODE_READ, 1, flags)
    state.files[wf] = File(obj, FMODE_WRITE, 1, flags)
    fds = list(state.fdt[key])
    fds[free[0]], fds[free[1]] = rf, wf
    state.fdt[key] = tuple(fds)
    return 0


def sys_open(state: KernelState, cpu: int, pid: int, flags: int) -> int:
    """fs/open.c do_sys_open of /data: the lowest free fd (get_unused_fd_flags) and a struct
    file (alloc_empty_file), readable, and writable with O_RDWR. The fd; -EINVAL for other
    flags (O_WRONLY included: the model's file is only mapped); -EMFILE with no fd free;
    -ENFILE without memory."""
    if flags not in (O_RDONLY, O_RDWR):
        return -EINVAL
    key = state.procs[pid].files
    fd = next((n for n, f in enumerate(state.fdt[key]) if not f), None)
    if fd is None:
        return -EMFILE
    f = kmem_cache_alloc(state, "filp", cpu)
    if not f:
        return -ENFILE
    state.files[f] = File(0, FMODE_READ | (FMODE_WRITE if flags == O_RDWR else 0), 1)
    state.fdt[key] = tuple(f if n == fd else g for n, g in enumerate(state.fdt[key]))
    return fd


def sys_sync(state: KernelState, cpu: int, pid: int) -> int:
    """fs/sync.c ksys_sync: /data's dirty pages written back (write_cache_pages)."""
    filemap.write_cache_pages(state, cpu)
    return 0


def sys_close(state: KernelState, cpu: int, pid: int, fd: int) -> int:
    """fs/open.c close -> __close_fd: the fd freed and its file put. 0, or -EBADF."""
    f = fd_file(state, pid, fd, FMODE_READ | FMODE_WRITE)
    if not f:
        return -EBADF
    key = state.procs[pid].files
    state.fdt[key] = tuple(0 if n == fd else g for n, g in enumerate(state.fdt[key]))
    fput(state, f, cpu)
    return 0


def fput(state: KernelState, f: int, cpu: int) -> None:
    """fs/file_table.c fput: the last reference gone, the file is freed and released."""
    file = state.files[f]
    if file.f_count > 1:
        state.files[f] = file._replace(f_count=file.f_count - 1)
        return
    del state.files[f]
    kmem_cache_free(state, f, cpu)
    if file.pipe:
        pipe_release(state, file, cpu)


def pipe_release(state: KernelState, file: File, cpu: int) -> None:
    """fs/pipe.c pipe_release (the file's release): one reader or writer less, and everyone
    on pipe->wait woken to see it; with no end left, free_pipe_info."""
    p = state.pipes[file.pipe]
    p = p._replace(
        readers=p.readers - (file.f_mode == FMODE_READ), writers=p.writers - (file.f_mode == FMODE_WRITE)
    )
    state.pipes[file.pipe] = p
    if p.readers or p.writers:
        wake_up(state, ("pipe", file.pipe), cpu)
        return
    for page in fs_pipe.pages(state.pipes.pop(file.pipe)):
        memory.free_page_account(state, page, cpu)
    kmem_cache_free(state, file.pipe, cpu)


def pipe_wait(state: KernelState, cpu: int, pid: int, sleep: Sleep, resumed: Sleep | None) -> None:
    """fs/pipe.c pipe_wait, the call holding its file while it sleeps (a fresh one takes
    the reference, a resumed one keeps its own)."""
    if resumed is None:
        state.files[sleep.file] = state.files[sleep.file]._replace(
            f_count=state.files[sleep.file].f_count + 1
        )
    sleep_on(state, cpu, pid, sleep)


def wake_up_pipe_readers(state: KernelState, obj: int, cpu: int) -> None:
    """pipe_write's wake_up_interruptible_sync_poll(&pipe->wait, EPOLLIN | EPOLLRDNORM): the
    readers and writers share pipe->wait, and all of it is woken."""
    wake_up(state, ("pipe", obj), cpu)


def wake_up_pipe_writers(state: KernelState, obj: int, cpu: int) -> None:
    """pipe_read's wake_up_interruptible_sync_poll(&pipe->wait, EPOLLOUT | EPOLLWRNORM)."""
    wake_up(state, ("pipe", obj), cpu)


def pipe_call(state: KernelState, pid: int, fd: int, f_mode: int) -> tuple[Sleep | None, int, int]:
    """A pipe read's or write's start: the sleep it goes on from, its file (the one that
    sleep holds, else fd's: 0 for -EBADF) and the bytes it has moved."""
    sleep = resumed(state, pid)
    if sleep is not None:
        return sleep, sleep.file, sleep.done
    return None, fd_file(state, pid, fd, f_mode), 0


def waiting_writers(state: KernelState, obj: int) -> bool:
    """pipe->waiting_writers: a writer is between its pipe_wait and its return from it."""
    return any(s.nr == NR["write"] and s.queue == ("pipe", obj) for s in state.sleeps.values())


def sys_read(state: KernelState, cpu: int, pid: int, fd: int, count: int) -> int | None:
    """fs/pipe.c pipe_read: bytes from the front of the ring until count are read or it is
    empty. With nothing read it sleeps while there is a writer; with some read it returns,
    unless a writer sleeps in pipe_write (whose bytes it waits for, even with O_NONBLOCK).
    Emptying a buffer wakes the writers. The bytes read; 0 at the end of file; -EAGAIN
    (O_NONBLOCK), -EINTR, -EBADF."""
    sleep, f, done = pipe_call(state, pid, fd, FMODE_READ)
    if not f:
        return -EBADF
    obj = state.files[f].pipe
    if not obj:
        return -EINVAL
    p = state.pipes[obj]
    do_wakeup = False
    while True:
        if p.bufs:
            nbufs = len(p.bufs)
            p, runs, freed = fs_pipe.take(p, count - done)
            for page in freed:
                memory.free_page_account(state, page, cpu)
            done += sum(n for _, n in runs)
            do_wakeup |= len(p.bufs) < nbufs
            if done == count or p.bufs:
                break
            continue
        if not p.writers:
            break
        if not waiting_writers(state, obj):
            if done:
                break
            if state.files[f].f_flags & O_NONBLOCK:
                done = -EAGAIN
                break
        if signal_pending(state, pid):
            done = done or -EINTR
            break
        state.pipes[obj] = p
        if do_wakeup:
            wake_up_pipe_writers(state, obj, cpu)
        pipe_wait(state, cpu, pid, Sleep(NR["read"], (fd, count), ("pipe", obj), file=f, done=done), sleep)
        return None
    state.pipes[obj] = p
    if do_wakeup:
        wake_up_pipe_writers(state, obj, cpu)
    if sleep:
        fput(state, f, cpu)
    return done


def sys_write(state: KernelState, cpu: int, pid: int, fd: int, count: int) -> int | None:
    """fs/pipe.c pipe_write: with no reader, SIGPIPE and -EPIPE. A fresh call first merges
    the head of its bytes (count % PAGE_SIZE) into the last buffer if it fits there; then
    fills fresh pages (the pipe's tmp_page first) while the ring has room, and sleeps when it
    has none (O_NONBLOCK: returns), having woken the readers. Any write wakes the readers.
    The bytes written; -EAGAIN, -EINTR, -ENOMEM or -EPIPE when none were; -EBADF."""
    sleep, f, done = pipe_call(state, pid, fd, FMODE_WRITE)
    if not f:
        return -EBADF
    obj = state.files[f].pipe
    if not obj:
        return -EINVAL
    p = state.pipes[obj]
    do_wakeup = False
    if sleep is None and p.readers:
        p, done = fs_pipe.merge_head(p, pid, count)
        do_wakeup = bool(done)
    ret = None
    while done < count:
        if not p.readers:
            send_sig(state, SIGPIPE, pid, cpu)
            ret = done or -EPIPE
            break
        if not p.full:
            page = p.tmp_page if p.tmp_page is not None else memory.alloc_page_account(state, cpu)
            if page is None:
                ret = done or -ENOMEM
                break
            p, n = fs_pipe.push_page(p._replace(tmp_page=None), page, pid, count - done)
            done += n
            do_wakeup = True
            continue
        if state.files[f].f_flags & O_NONBLOCK:
            ret = done or -EAGAIN
            break
        if signal_pending(state, pid):
            ret = done or -EINTR
            break
        state.pipes[obj] = p
        if do_wakeup:
            wake_up_pipe_readers(state, obj, cpu)
            do_wakeup = False
        pipe_wait(state, cpu, pid, Sleep(NR["write"], (fd, count), ("pipe", obj), file=f, done=done), sleep)
        return None
    state.pipes[obj] = p
    if do_wakeup:
        wake_up_pipe_readers(state, obj, cpu)
    if sleep:
        fput(state, f, cpu)
    return done if ret is None else ret


def do_syscall_64(state: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int | None:
    """arch/x86/entry/common.c do_syscall_64: sys_call_table[nr] for a number in the table,
    -ENOSYS for any other (sys_ni_syscall); then syscall_return_slowpath. None when the call
    sleeps (it returns from the step that finishes it)."""
    pid = state.sched.rqs[cpu].curr
    name = SYS_CALL_TABLE.get(nr) if 0 <= nr < NR_syscalls else None
    if name in MMAP_SEM_WRITERS:
        state.mmap_locked = state.procs[pid].mm
    ret = globals()[name](state, cpu, pid, *args) if name else -ENOSYS
    state.mmap_locked = None
    if ret is not None:
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


def user_access(state: KernelState, cpu: int, vaddr: int, write: bool) -> int:
    """The running task loads or stores the word of a user page: through the MMU, and on a
    page fault do_page_fault, then the access again. A store writes the task's pid. The word
    read or written, or -fault: the VM_FAULT code of a fault that could not be handled."""
    pid = state.sched.rqs[cpu].curr
    mm = state.procs[pid].mm
    assert mm is not None
    for _ in range(4):  # a fault, a copy-on-write fault, and a retry if reclaim took the page
        result = memory.translate(state, cpu, vaddr, write)
        if not isinstance(result, PageFault):
            break
        fault = memory.handle_mm_fault(state, cpu, mm, vaddr, result.error_code)
        if fault:
            return -fault
    else:
        raise AssertionError(f"{vaddr:#x}: the access still faults after its faults were handled")
    if write:
        state.data[result] = pid
        vma = mmap.find_vma(state.mms[mm].vmas, vaddr)
        if vma is not None and vma.vm_flags & mmap.VM_SHARED:
            state.file_stored[mmap.linear_page_index(vma, vaddr)] = pid
        else:
            state.stored[mm] = tuple(sorted({**dict(state.stored[mm]), vaddr: pid}.items()))
    return state.data[result]


def access(state: KernelState, cpu: int, vaddr: int, write: bool) -> int:
    """A user access (user_access), and the fault's end when it could not be handled: the
    group's exit with SIGSEGV for a bad area, SIGBUS past the end of the file, SIGKILL when
    there was no memory (pagefault_out_of_memory, the OOM killer having found no victim
    either). The word, or -1.
    init's threads are not killed (a kill would panic the kernel): their accesses that find
    no memory fail and may be retried, and they are never offered a bad address."""
    pid = state.sched.rqs[cpu].curr
    word = user_access(state, cpu, vaddr, write)
    if word < 0:
        if state.procs[pid].tgid != INIT:
            fault = -word
            code = SIGKILL  # VM_FAULT_OOM
            if fault & memory.VM_FAULT_SIGSEGV:
                code = SIGSEGV
            elif fault & memory.VM_FAULT_SIGBUS:
                code = SIGBUS
            send_group_exit(state, state.procs[pid].tgid, code, cpu)  # force_sig
            do_exit(state, cpu, pid, code)
        return -1
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


def _task_calls(m: KernelModel, s: KernelState, pid: int) -> list[tuple[int, tuple[int, ...]]]:
    """The memory and process calls offered to pid (the ``syscall`` action)."""
    mm = s.mms[s.procs[pid].mm]  # type: ignore[index]
    calls: list[tuple[int, tuple[int, ...]]] = [(NR["getpid"], ()), (NR_syscalls, ())]
    if len(mm.vmas) < m.config.max_vmas:
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        for n in m.config.mmap_pages:
            calls.append((NR["mmap"], (0, n * PAGE_SIZE, rw, ANON)))
        calls.append((NR["mmap"], (0, PAGE_SIZE, mmap.PROT_READ, ANON)))
        length = m.config.file_pages * PAGE_SIZE
        for fd, f in enumerate(s.fdt[s.procs[pid].files]):
            if f and not s.files[f].pipe:  # all of /data, shared and private
                calls += [
                    (NR["mmap"], (0, length, rw, share, fd, 0))
                    for share in (mmap.MAP_SHARED, mmap.MAP_PRIVATE)
                ]
    for v in mm.vmas:
        if v.vm_start != STACK_TOP - PAGE_SIZE:
            calls.append((NR["munmap"], (v.vm_start, PAGE_SIZE)))
            for prot in (mmap.PROT_READ, mmap.PROT_READ | mmap.PROT_WRITE):
                calls.append((NR["mprotect"], (v.vm_start, PAGE_SIZE, prot)))
    calls += [(NR["brk"], (START_BRK + n * PAGE_SIZE,)) for n in m.config.brk_pages]
    calls += [(NR["fork"], (target,)) for target in range(len(s.tlb))]
    calls += [(NR["clone"], (CLONE_THREAD_FLAGS, target)) for target in range(len(s.tlb))]
    if thread_group(s, s.procs[pid].tgid) == [pid]:  # de_thread is not modelled
        calls.append((NR["execve"], ()))
    calls.append((NR["wait4"], ()))
    if pid != INIT:  # init exiting panics the kernel
        calls.append((NR["exit"], (0,)))
    return calls


def _signal_calls(m: KernelModel, s: KernelState, pid: int) -> list[tuple[int, tuple[int, ...]]]:
    """kill (SIGKILL to any process and a pid no task has, the others to the caller's own
    process and its parent's) and rt_sigaction of a handler it does not have."""
    leaders = [c for c, q in sorted(s.procs.items()) if q.tgid == c]
    calls: list[tuple[int, tuple[int, ...]]] = [
        (NR["kill"], (t, SIGKILL)) for t in (*leaders, s.sched.next_pid)
    ]
    kin = sorted({s.procs[pid].tgid, s.procs[s.procs[pid].tgid].parent} & set(leaders))
    calls += [(NR["kill"], (target, sig)) for target in kin for sig in (SIGPIPE, SIGCHLD)]
    handlers = dict(s.sighand.get(s.procs[pid].tgid, ()))
    calls += [
        (NR["rt_sigaction"], (sig, h))
        for sig in (SIGPIPE, SIGCHLD)
        for h in (SIG_DFL, SIG_IGN, SIG_HANDLER)
        if handlers.get(sig, SIG_DFL) != h
    ]
    return calls


def _fs_calls(m: KernelModel, s: KernelState, pid: int) -> list[tuple[int, tuple[int, ...]]]:
    """pipe and pipe2(O_NONBLOCK), open of /data read-only and read-write, sync, and on each
    open fd close and on a pipe's a read or write of each size."""
    calls: list[tuple[int, tuple[int, ...]]] = [(NR["pipe"], ()), (NR["pipe2"], (O_NONBLOCK,))]
    calls += [(NR["open"], (O_RDONLY,)), (NR["open"], (O_RDWR,)), (NR["sync"], ())]
    for fd, f in enumerate(s.fdt[s.procs[pid].files]):
        if f:
            calls.append((NR["close"], (fd,)))
            if not s.files[f].pipe:
                continue
            write = s.files[f].f_mode == FMODE_WRITE
            sizes = m.config.pipe_writes if write else m.config.pipe_reads
            calls += [(NR["write" if write else "read"], (fd, n)) for n in sizes]
    return calls


def _syscall_domain(calls_of: Any) -> Any:
    def domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, int, tuple[int, ...]]]:
        return [(cpu, nr, args) for cpu, pid in _callers(s) for nr, args in calls_of(m, s, pid)]

    return domain


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


def _write_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int, str, str]]:
    """The configured limits, and for memory one page above the memcg's usage: a squeeze
    that leaves the next charge to reclaim or the OOM killer."""
    out = []
    for cg in sorted(s.cgroups):
        if cg != ROOT:
            squeeze = f"{(s.memory[cg].usage + 1) * PAGE_SIZE // 1024}K"
            out += [(cg, "memory.limit_in_bytes", v) for v in (*m.config.limits, squeeze)]
            out += [(cg, "pids.max", v) for v in m.config.pids_limits]
    return out


def _signal_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    out = []
    for cpu in range(len(s.tlb)):
        pid = s.sched.rqs[cpu].curr
        p = s.procs.get(pid)
        if p is not None and not p.exit_state and pid not in s.sleeps and signal_pending(s, pid):
            out.append((cpu,))
    return out


def _resume_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb)) if (w := s.sleeps.get(s.sched.rqs[cpu].curr)) and w.woken]


def _tick_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb))]


def _kthreadd_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [
        (cpu,)
        for cpu in range(len(s.tlb))
        if s.sched.rqs[cpu].curr == KTHREADD and s.sched.tasks[KTHREADD].state == TASK_RUNNING
    ]


def _kswapd_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [
        (cpu,)
        for cpu in range(len(s.tlb))
        if s.sched.rqs[cpu].curr == s.kswapd and s.sched.tasks[s.kswapd].state == TASK_RUNNING
    ]


def _kernel_init_domain(m: KernelModel, s: KernelState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.tlb)) if s.sched.rqs[cpu].curr == INIT and s.procs[INIT].mm is None]


# Small: two CPUs, up to five tasks (init, kthreadd, kswapd and two more), 38 page frames,
# pipes of two buffers, a file of two pages and two swap slots.
SMALL = KernelConfig()
# Large: two CPUs, up to eight tasks, 1,024 page frames, pipes of two buffers, a file of
# four pages and 16 swap slots.
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
            watermark_scale_factor=1000,
        ),
    ),
    mmap_pages=(1, 2, 3),
    brk_pages=(0, 1, 2),
    max_vmas=6,
    nr_open=6,
    pipe_buffers=2,
    pipe_writes=(1024, 3072, 4096, 8192),
    pipe_reads=(1024, 8192),
    limits=("64K", "8X"),  # and the squeeze: limits only tighten, and reclaim and the OOM killer get work
    file_pages=4,
    swap_pages=16,
)


class KernelModel(Model[KernelState, KernelConfig]):
    """The whole kernel on one machine, driven by its tasks' system calls and memory
    accesses and by the timer."""

    name = "kernel"
    Config = KernelConfig
    profiles: ClassVar[dict[str, Any]] = {"small": SMALL, "large": LARGE}
    # Random runs draw system calls (of which there are some thirty kinds) and stores (which
    # fault pages in and charge them) more often than a timer tick or a cgroup write.
    weights: ClassVar[dict[str, int]] = {"syscall": 3, "fs_syscall": 2, "store": 2}

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
            self.config.sched.max_tasks,
            self.config.nr_open,
            self.config.pipe_buffers,
            self.config.file_pages,
            self.config.swap_pages,
            cgroups={ROOT: Cgroup("", None, ROOT_TASK_GROUP)},
            memory={ROOT: PageCounter()},
            pids={ROOT: PidsCgroup()},
        )
        slab.kmem = state
        for name in self.config.boot_cgroups:  # cgroup_init, then the boot cgroups
            cg = cgroup_mkdir(state, ROOT, name, ROOT_TASK_GROUP)
            state.memory[cg], state.pids[cg] = PageCounter(), PidsCgroup()
        boot += ["cgroup_init", "rest_init"]
        # kernel_thread(kernel_init) and kernel_thread(kthreadd); then kswapd_init, an initcall
        # of kernel_init, has kthreadd make kswapd0 (made here at once).
        last = self.config.sched.nr_cpus - 1
        for pid, parent, target in ((INIT, 0, 0), (KTHREADD, 0, last), (KSWAPD, KTHREADD, last)):
            task = kmem_cache_alloc(state, "task_struct", 0)
            assert SchedModel.fork(state.sched, 0, target) == pid and task
            state.procs[pid] = Proc(parent, None, task, pid)
            state.css_set[pid] = ROOT
        state.kswapd = KSWAPD
        state.procs[INIT] = state.procs[INIT]._replace(files=INIT)  # the init program's fd table
        state.fdt[INIT] = (0,) * self.config.nr_open
        state.css_set[INIT] = min(c for c in state.cgroups if c != ROOT)
        pids.pids_charge(state, state.css_set[INIT], 1)
        for cpu in range(self.config.sched.nr_cpus):
            core.schedule(state.sched, cpu)
        while self.kernel_init_pending(state):
            for act, args in self.enabled(state):
                if act.name in ("kernel_init", "kthreadd", "kswapd"):
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
        return state.procs[INIT].mm is None or any(
            state.sched.tasks[t].state == TASK_RUNNING for t in (KTHREADD, KSWAPD)
        )

    def step(self, state: KernelState, act: Any, args: Any) -> tuple[KernelState, Any]:
        after, result = super().step(state, act, args)
        core.reschedule_ipis(after.sched)
        switch_mm(after)
        note_epochs(after.sched)
        return after, result

    def diagram(self, steps: Sequence[Step]) -> list[str]:
        """Each step with its result and who runs on each CPU, then what it changed: tasks
        (made, exited, reaped), each mm's VMAs and PTEs (swap entries too), sleeps and
        signals, pipes and fd tables, /data's pages, the swap slots, what reclaim freed, and
        each CPU's CR3 and TLB."""
        state = self.init_state()
        lines = []
        for n, step in enumerate(steps, 1):
            before = state
            state, result = self.step(state, self.action_by_name[step.action], step.args)
            running = " ".join(f"cpu{c}:{_task(state.sched.rqs[c].curr)}" for c in range(len(state.tlb)))
            slept = result is None and step.action in (*SYSCALL_ACTIONS, "resume")
            lines.append(f"{n:>3}  {_call(step)} -> {'sleeps' if slept else _num(result)}    [{running}]")
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

    @action("cpu", domain=_kswapd_domain)
    def kswapd(self, s: KernelState, cpu: int) -> None:
        """mm/vmscan.c kswapd, woken: balance_pgdat, then it sleeps on pgdat->kswapd_wait."""
        vmscan.balance_pgdat(s, cpu)
        core.set_task(s.sched, s.kswapd, state=TASK_INTERRUPTIBLE)
        core.schedule(s.sched, cpu)

    @action("cpu", "nr", "args", domain=_syscall_domain(_task_calls))
    def syscall(self, s: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int | None:
        """The running task's SYSCALL instruction: entry_SYSCALL_64 -> do_syscall_64."""
        return do_syscall_64(s, cpu, nr, args)

    @action("cpu", "nr", "args", domain=_syscall_domain(_fs_calls))
    def fs_syscall(self, s: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int | None:
        """A system call on files and pipes (read, write, close, pipe), as ``syscall``."""
        return do_syscall_64(s, cpu, nr, args)

    @action("cpu", "nr", "args", domain=_syscall_domain(_signal_calls))
    def signal_syscall(self, s: KernelState, cpu: int, nr: int, args: tuple[int, ...]) -> int | None:
        """A system call on signals (kill, rt_sigaction), as ``syscall``."""
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
                pids.pids_can_attach(s, s.css_set[t], cg)
                s.css_set[t] = cg
        return err

    @action("cg", "file", "value", domain=_write_domain)
    def write(self, s: KernelState, cg: int, file: str, value: str) -> int:
        """A write to the cgroup's memory.limit_in_bytes (0, -EINVAL for a bad value, -EBUSY
        below the usage: nothing is reclaimable, anonymous pages need swap) or pids.max (0,
        -EINVAL; it may be below the count, which blocks forks only)."""
        if file == "pids.max":
            return pids.pids_max_write(s, cg, value)
        return memcontrol.mem_cgroup_write(s, cg, file, value, 0)

    @action("cpu", domain=_signal_domain)
    def signal(self, s: KernelState, cpu: int) -> int:
        """The task on cpu, a signal pending, returns to user mode (from the system call, the
        interrupt or the kick that got it there): do_signal. The signal taken."""
        return get_signal(s, cpu)

    @action("cpu", domain=_resume_domain)
    def resume(self, s: KernelState, cpu: int) -> int | None:
        """The task on cpu, woken inside a system call, returns from schedule() and goes on
        with the call: its result, or None if it sleeps again."""
        sleep = s.sleeps[s.sched.rqs[cpu].curr]
        return do_syscall_64(s, cpu, sleep.nr, sleep.args)

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
    if step.action == "resume":
        return f"cpu{step.args[0]}: resume"
    if step.action not in SYSCALL_ACTIONS:
        return f"{step.action}({', '.join(map(_num, step.args))})"
    cpu, nr, args = step.args
    name = SYS_CALL_TABLE.get(nr, f"syscall {nr}").removeprefix("sys_")
    return f"cpu{cpu}: {name}({', '.join(map(_num, args))})"


def _file(vma: mmap.Vma) -> str:
    if not vma.vm_file:
        return ""
    return f" {'shared' if vma.vm_flags & mmap.VM_SHARED else 'private'} /data@{vma.vm_pgoff}"


def _pte(pfn: int, flags: int) -> str:
    if not flags & mmu._PAGE_PRESENT:
        return f"swap slot {pfn}"
    return f"pfn {pfn} {'rw' if flags & mmu._PAGE_RW else 'ro'}"


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
            vmas = " ".join(f"[{v.vm_start:#x},{v.vm_end:#x}){v.vm_flags & 7}{_file(v)}" for v in m1.vmas)
            out.append(f"mm {mm:#x} VMAs {vmas}")
        ptes0 = {v: (p, f) for v, p, f in mmu.leaves(before.pt, m0.pgd)} if m0 else {}
        ptes1 = {v: (p, f) for v, p, f in mmu.leaves(after.pt, m1.pgd)}
        changed = [
            f"{v:#x}->" + (_pte(*ptes1[v]) if v in ptes1 else "none")
            for v in sorted(set(ptes0) | set(ptes1))
            if ptes0.get(v) != ptes1.get(v)
        ]
        if changed:
            out.append(f"mm {mm:#x} PTEs " + ", ".join(changed))
    for pid in sorted(set(before.sleeps) | set(after.sleeps)):
        w0, w1 = before.sleeps.get(pid), after.sleeps.get(pid)
        if w1 is not None and (w0 is None or w0.woken and not w1.woken):
            out.append(f"task {pid} sleeps on {w1.queue[0]} of {_num(w1.queue[1])}")
        elif w1 is not None and w1.woken and not w0.woken:  # type: ignore[union-attr]
            out.append(f"task {pid} woken")
    for pid in sorted(set(after.sigkill) - set(before.sigkill)):
        out.append(f"task {pid} has SIGKILL pending (its group exits with {after.sigkill[pid]})")
    for d0, d1, who in (
        (before.pending, after.pending, "task"),
        (before.shared_pending, after.shared_pending, "process"),
    ):
        for k in sorted(set(d0) | set(d1)):
            if d0.get(k) != d1.get(k):
                out.append(f"{who} {k} has signals {sorted(d1.get(k, ()))} pending")
    for obj in sorted(set(before.pipes) | set(after.pipes)):
        r0, r1 = before.pipes.get(obj), after.pipes.get(obj)
        if r1 is None:
            out.append(f"pipe {obj:#x} freed")
        elif r0 != r1:
            runs = " ".join(f"{n}B of {w}" for w, n in fs_pipe.contents(r1)) or "empty"
            out.append(
                f"pipe {obj:#x}: {runs} in {len(r1.bufs)} of {r1.buffers} buffers, "
                f"{r1.readers} readers, {r1.writers} writers"
            )
    for key in sorted(set(before.fdt) | set(after.fdt)):
        if before.fdt.get(key) != after.fdt.get(key):
            fds = after.fdt.get(key)
            shown = " ".join(f"{fd}:{_num(f)}" for fd, f in enumerate(fds) if f) if fds else "closed"
            out.append(f"fd table {key}: {shown or 'empty'}")
    for index in range(after.file_pages):
        c0, c1 = before.page_cache.get(index), after.page_cache.get(index)
        dirty = c1 in after.dirty
        if (c0, c0 in before.dirty, before.disk.get(index)) != (c1, dirty, after.disk.get(index)):
            cached = f"in pfn {c1}{' dirty' if dirty else ''}" if c1 is not None else "not cached"
            out.append(f"/data page {index}: {cached}, {after.disk.get(index, 0)} on disk")
    if before.swap_map != after.swap_map:
        slots = " ".join(f"{n}:{after.swap_data[n]}x{c}" for n, c in sorted(after.swap_map.items()))
        out.append(f"swap slots (slot:word x entries) {slots or 'free'}")
    for kind, memcg, pfn in after.events:
        if kind == "reclaim":
            out.append(f"reclaim freed pfn {pfn} of {memcg}")
    for cpu, (t0, t1) in enumerate(zip(before.tlb, after.tlb, strict=True)):
        if t0 != t1:
            entries = ", ".join(f"{vpn << 12:#x}->{_pte(p, f)}" for vpn, (p, f) in sorted(t1.entries.items()))
            out.append(f"cpu{cpu} CR3 pgd {t1.pgd}, TLB {{{entries}}}")
    return out
