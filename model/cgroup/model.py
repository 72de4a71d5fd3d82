"""Control groups as a model: the cpu, memory and pids controllers of one cgroup hierarchy,
acting on the scheduler's tasks and task groups, the buddy allocator's pages and SLUB's caches.

The tasks are the CFS model's (model/sched): the task running on a CPU makes the system
calls (it faults in anonymous pages, reads file pages, unmaps, forks a process or a thread,
exits, allocates and frees slab objects), a tick may switch tasks. Every page is the buddy
model's (model/mm), charged to a memcg where the kernel charges it: anonymous and page-cache
pages (model/cgroup/memory.py), and the slab pages of SLAB_ACCOUNT caches (SLUB's
memcg_charge_slab, through model/cgroup/memcontrol.py). Anyone may make and remove cgroups,
move tasks between them and write their files, bad values included.

SLUB here has the configured caches only: kmem_cache_init's kmalloc caches are left out,
since no task here calls kmalloc.

Fork is fork and exec: a new process starts with an empty mm (copy-on-write is not
modelled); a thread (CLONE_VM) shares its parent's. The checker's record of the charge
transactions of the last step (``events``) is kept beside the state, out of its
fingerprint.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from model.cgroup import cgroup, memcontrol, memory, pids
from model.cgroup import cpu as cpu_cgroup
from model.cgroup.cgroup import ROOT, Cgroup
from model.cgroup.memcontrol import Charge
from model.cgroup.memory import Mm
from model.cgroup.page_counter import PAGE_COUNTER_MAX, PageCounter
from model.cgroup.pids import PidsCgroup
from model.contract import Model, Step, action
from model.mm import buddy, slub
from model.mm.buddy import BuddyState
from model.mm.slab import SlubConfig, SlubModel, SlubState
from model.mm.slab_common import CacheSpec
from model.sched import core
from model.sched.model import SchedConfig, SchedModel, SchedState, note_epochs
from model.sched.sched import ROOT_TASK_GROUP, TASK_RUNNING

ENOENT = 2
FILES = ("memory.limit_in_bytes", "memory.max_usage_in_bytes", "pids.max", "cpu.shares")


def one_machine(config: Any) -> None:
    """A frozen config's ``sched`` and ``slub`` (dicts when read from JSON) made configs, and
    checked to describe one machine: the scheduler's CPUs are the buddy allocator's, and
    SLUB's interrupt window is off (allocations here run to completion)."""
    if isinstance(config.sched, dict):
        object.__setattr__(config, "sched", SchedConfig(**config.sched))
    if isinstance(config.slub, dict):
        object.__setattr__(config, "slub", SlubModel.config_from_json(config.slub))
    if len(config.slub.buddy.cpu_to_node) != config.sched.nr_cpus:
        raise ValueError(
            f"the buddy config has {len(config.slub.buddy.cpu_to_node)} CPUs, the scheduler's {config.sched.nr_cpus}"
        )
    if config.slub.irq_window:
        raise ValueError("slub.irq_window must be off: allocations here run to completion")


@dataclass(frozen=True)
class CgroupConfig:
    """The machine (a scheduler and a SLUB config, with its buddy allocator, of the same
    CPUs), the bounds of the hierarchy, and the values the files may be written."""

    # Two CPUs and one task at boot, so that a thread forked onto the other CPU runs beside its
    # parent at once (two faults of one mm at the same time).
    sched: SchedConfig = SchedConfig(
        nr_cpus=2, tasks=(0,), max_tasks=3, nice_values=(), preempt_sections=False
    )
    # One SLAB_ACCOUNT cache, sized so that two objects fill an order-0 slab, with SLUB's
    # tunables scaled down as the slub model's small profile has them.
    slub: SlubConfig = SlubConfig(
        buddy=replace(buddy.SMALL, cpu_to_node=(0, 0)),
        slub_max_order=0,
        slub_min_objects=2,
        cpu_partial=2,
        min_partial=1,
        caches=(CacheSpec("signal_cache", 2048, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),),
        kmalloc_sizes=(),
        irq_window=False,
        bad_frees=False,
    )
    kmem_objects: int = 2  # the slab objects live at once
    names: tuple[str, ...] = ("A",)  # what mkdir may name a cgroup
    max_cgroups: int = 3  # mkdir refuses beyond this many, offline ones that linger included
    boot_cgroups: tuple[str, ...] = ()  # made at boot, each path under the one before it or the root
    vaddrs: int = 2  # the anonymous pages of an mm
    file_pages: int = 2  # the pages of the one file tasks read
    limits: tuple[str, ...] = ("4K", "-1", "8X")  # values written to memory.limit_in_bytes
    pids_limits: tuple[str, ...] = ("1", "max", "-1")  # values written to pids.max
    shares: tuple[str, ...] = ("1", "2048", "x")  # values written to cpu.shares

    def __post_init__(self) -> None:
        for name in ("names", "limits", "pids_limits", "shares", "boot_cgroups"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        one_machine(self)
        for i, p in enumerate(self.boot_cgroups):
            parent, _, name = p.rpartition("/")
            if not name or parent not in ("", *self.boot_cgroups[:i]):
                raise ValueError(f"boot cgroup {p!r}: its parent must be the root or an earlier boot cgroup")
        if len(self.boot_cgroups) >= self.max_cgroups:
            raise ValueError(
                f"{len(self.boot_cgroups)} boot cgroups and the root exceed max_cgroups {self.max_cgroups}"
            )
        if self.max_cgroups < 1 or self.vaddrs < 1 or self.file_pages < 0 or self.kmem_objects < 0:
            raise ValueError(
                "max_cgroups and vaddrs must be at least 1, file_pages and kmem_objects at least 0"
            )


@dataclass(slots=True, eq=False)
class CgroupState(memcontrol.MemcgKmemHooks):
    sched: SchedState
    slub: SlubState  # the caches, and in slub.mm the pages
    cgroups: dict[int, Cgroup]
    css_set: dict[int, int]  # each live task's cgroup
    memory: dict[int, PageCounter]  # each memcg's page counter (offline ones until uncharged)
    pids: dict[int, PidsCgroup]  # each online cgroup's pids counter
    page_memcg: dict[int, int]  # page->mem_cgroup of every committed page
    mms: dict[int, Mm]
    mm_of: dict[int, int]  # each live task's mm
    pending: dict[int, tuple[int, Charge]]  # a fault's charge between its two halves: (vaddr, charge)
    page_cache: tuple[tuple[int, int], ...]  # (file index, pfn), oldest first
    killed: frozenset[int]  # OOM victims that have not exited yet
    # The checker's record of the last step: ("try" | "commit" | "cancel", memcg, pfn),
    # ("oom", memcg, victim) and ("refused", errno, 0).
    events: tuple[tuple[str, int, int], ...] = field(default=())

    @property
    def mm(self) -> BuddyState:
        return self.slub.mm

    def mem_cgroup_out_of_memory(self, memcg: int, cpu: int) -> bool:
        """The memcg OOM killer try_charge calls: this model's (memcontrol.py)."""
        return memcontrol.mem_cgroup_out_of_memory(self, memcg, cpu)

    def try_to_free_mem_cgroup_pages(self, memcg: int, nr_pages: int, cpu: int) -> int:
        """The reclaim try_charge calls: this model's (memcontrol.py)."""
        return memcontrol.try_to_free_mem_cgroup_pages(self, memcg, nr_pages, cpu)

    def clone(self) -> CgroupState:
        new = CgroupState(
            self.sched.clone(),
            self.slub.clone(),
            dict(self.cgroups),
            dict(self.css_set),
            dict(self.memory),
            dict(self.pids),
            dict(self.page_memcg),
            dict(self.mms),
            dict(self.mm_of),
            dict(self.pending),
            self.page_cache,
            self.killed,
        )
        new.slub.kmem = new
        return new

    def fingerprint(self) -> Hashable:
        return (
            self.sched.fingerprint(),
            self.slub.fingerprint(),
            *(
                tuple(sorted(d.items()))
                for d in (
                    self.cgroups,
                    self.css_set,
                    self.memory,
                    self.pids,
                    self.page_memcg,
                    self.mms,
                    self.mm_of,
                    self.pending,
                )
            ),
            self.page_cache,
            self.killed,
        )

    def current(self, cpu: int) -> int | None:
        """The task running on cpu, if it may make a system call: not idle, not about to sleep."""
        t = self.sched.curr(cpu)
        return None if t.is_idle or t.state != TASK_RUNNING else t.pid


def _callers(s: CgroupState) -> list[tuple[int, int]]:
    """(cpu, pid) of each running task that may start a system call: not killed (a fatal
    signal sends it to exit), not in the middle of a fault."""
    out = []
    for cpu in range(len(s.sched.cpus)):
        pid = s.current(cpu)
        if pid is not None and pid not in s.killed and pid not in s.pending:
            out.append((cpu, pid))
    return out


def _mkdir_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, str]]:
    if len(s.cgroups) >= m.config.max_cgroups:
        return []
    return [(cg, name) for cg, c in sorted(s.cgroups.items()) if c.online for name in m.config.names]


def _rmdir_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int]]:
    return [(cg,) for cg, c in sorted(s.cgroups.items()) if c.online and cg != ROOT]


def _attach_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int]]:
    bogus = s.sched.next_pid  # a pid no task has: -ESRCH
    return [
        (pid, cg)
        for pid in (*sorted(s.css_set), bogus)
        for cg in sorted(s.cgroups)
        if s.css_set.get(pid) != cg
    ]


def _write_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, str, str]]:
    values = {"memory.limit_in_bytes": m.config.limits, "memory.max_usage_in_bytes": ("0",)}
    values["pids.max"] = m.config.pids_limits
    values["cpu.shares"] = m.config.shares
    return [
        (cg, file, value)
        for cg, c in sorted(s.cgroups.items())
        if c.online
        for file in FILES
        for value in values[file]
    ]


def _fault_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int]]:
    return [
        (cpu, vaddr)
        for cpu, pid in _callers(s)
        for vaddr in range(m.config.vaddrs)
        if memory.pte_none(s, s.mm_of[pid], vaddr)
    ]


def _fault_map_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.sched.cpus)) if s.sched.rqs[cpu].curr in s.pending]


def _read_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int]]:
    cached = {index for index, _ in s.page_cache}
    return [
        (cpu, index) for cpu, _ in _callers(s) for index in range(m.config.file_pages) if index not in cached
    ]


def _munmap_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int]]:
    return [(cpu, vaddr) for cpu, pid in _callers(s) for vaddr, _ in s.mms[s.mm_of[pid]].ptes]


def _kmem_alloc_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, str]]:
    if len(s.slub.live) >= m.config.kmem_objects:
        return []
    return [(cpu, cache) for cpu, _ in _callers(s) for cache in m.slub.specs]


def _kmem_free_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int]]:
    return [(cpu, addr) for cpu, _ in _callers(s) for addr, _, _ in s.slub.live]


def _fork_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int, int, bool]]:
    if len(s.css_set) >= m.config.sched.max_tasks:
        return []
    cpus = range(len(s.sched.cpus))
    return [
        (cpu, target, clone_vm) for cpu, _ in _callers(s) for target in cpus for clone_vm in (False, True)
    ]


def _exit_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int]]:
    return [
        (cpu,)
        for cpu in range(len(s.sched.cpus))
        if (pid := s.current(cpu)) is not None and pid not in s.pending
    ]


def _tick_domain(m: CgroupModel, s: CgroupState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.sched.cpus))]


SMALL = CgroupConfig()
# Large: two CPUs and six tasks at boot, up to eight, spread over the root and /A/B/C nested
# below it; two more cgroups for mkdir to make, 22 pages and more of them to touch; a
# SLAB_ACCOUNT cache of order-1 slabs (a charge of two pages each) and a cache without it.
LARGE = CgroupConfig(
    sched=SchedConfig(
        nr_cpus=2, tasks=(0, 0, 0, 0, 0, 0), max_tasks=8, nice_values=(), preempt_sections=False
    ),
    slub=replace(
        SMALL.slub,
        buddy=replace(buddy.SMALL, ram=((0, 5, 0), (6, 24, 0)), max_zone_pfn=(2, 4, 24), cpu_to_node=(0, 0)),
        slub_max_order=1,
        slub_min_objects=4,
        caches=(
            CacheSpec("signal_cache", 2048, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
            CacheSpec("names_cache", 4096, 0, ("SLAB_HWCACHE_ALIGN",)),
        ),
    ),
    kmem_objects=4,
    names=("A", "B"),
    max_cgroups=6,
    boot_cgroups=("A", "A/B", "A/B/C"),
    vaddrs=3,
    file_pages=3,
    limits=("4K", "8K", "12K", "-1", "8X"),
    pids_limits=("1", "2", "max", "-1"),
    shares=("0", "512", "2048", "262145", "x"),
)


def refused(s: CgroupState, result: int) -> int:
    """A file system call's result, with a refusal noted for the checker."""
    if result < 0:
        s.events += (("refused", -result, 0),)
    return result


class CgroupModel(Model[CgroupState, CgroupConfig]):
    """The cpu, memory and pids controllers over the scheduler's tasks and the buddy allocator."""

    name = "cgroup"
    Config = CgroupConfig
    profiles: ClassVar[dict[str, Any]] = {"small": SMALL, "large": LARGE}

    def __init__(self, config: CgroupConfig | None = None) -> None:
        super().__init__(config)
        self.slub = SlubModel(self.config.slub)

    def init_state(self) -> CgroupState:
        """cgroup_init: the root cgroup with every boot task in it, each task a process of its
        own (an mm of its own); then the boot cgroups are made and the tasks spread over the
        root and them, round robin."""
        sched = SchedModel(self.config.sched).init_state()
        live = [pid for pid, t in sorted(sched.tasks.items()) if not t.is_idle]
        slab = SlubState(self.slub.buddy.init_state(), {}, {}, {}, (), (None,) * self.config.sched.nr_cpus)
        for c in self.slub.specs.values():
            slub.kmem_cache_create(slab, c)
        state = CgroupState(
            sched=sched,
            slub=slab,
            cgroups={ROOT: Cgroup("", None, ROOT_TASK_GROUP)},
            css_set=dict.fromkeys(live, ROOT),
            memory={ROOT: PageCounter()},
            pids={ROOT: PidsCgroup(counter=0)},
            page_memcg={},
            mms={pid: Mm(pid) for pid in live},
            mm_of={pid: pid for pid in live},
            pending={},
            page_cache=(),
            killed=frozenset(),
        )
        slab.kmem = state
        by_path = {"": ROOT}
        for p in self.config.boot_cgroups:
            parent, _, name = p.rpartition("/")
            by_path[p] = self.mkdir(state, by_path[parent], name)
        made = list(by_path.values())
        for i, pid in enumerate(live):
            self.attach(state, pid, made[i % len(made)])
        state.events = ()
        note_epochs(state.sched)
        return state

    def step(self, state: CgroupState, act: Any, args: Any) -> tuple[CgroupState, Any]:
        after, result = super().step(state, act, args)
        core.reschedule_ipis(after.sched)
        memcontrol.memcg_destroy_kmem_caches(after)  # css_free's work, once the step is over
        note_epochs(after.sched)  # the scheduler's fairness record, as SchedModel.step keeps it
        return after, result

    def diagram(self, steps: Sequence[Step]) -> list[str]:
        """Each step with its result, who ran on each CPU, the memcgs whose counters it
        changed (usage/max pages) and its charge events, in place of the buddy allocator's
        internals."""
        state = self.init_state()
        lines = []
        for n, step in enumerate(steps, 1):
            before = state
            state, result = self.step(state, self.action_by_name[step.action], step.args)
            args = ", ".join(repr(a) for a in step.args)
            running = " ".join(
                f"cpu{cpu}:{_task(state.sched.rqs[cpu].curr)}" for cpu in range(len(state.sched.cpus))
            )
            lines.append(f"{n:>3}  {step.action}({args}) -> {result}    [{running}]")
            counters = [
                f"{cgroup.path(state, cg)} {c.usage}/{'max' if c.max == PAGE_COUNTER_MAX else c.max}"
                for cg, c in sorted(state.memory.items())
                if before.memory.get(cg) != c
            ]
            if counters:
                lines.append("       memcg " + ", ".join(counters))
            if state.events:
                lines.append("       " + "; ".join(_event(state, *e) for e in state.events))
        return lines

    # The cgroup file system.

    @action("parent", "name", domain=_mkdir_domain)
    def mkdir(self, s: CgroupState, parent: int, name: str) -> int:
        """mkdir: a cgroup under parent, with its task group, memcg and pids counters
        (css_alloc): its id, or -EEXIST."""
        if cgroup.kernfs_name_taken(s, parent, name):
            return refused(s, -cgroup.EEXIST)
        cg = cgroup.cgroup_mkdir(s, parent, name, cpu_cgroup.cpu_cgroup_css_alloc(s, s.cgroups[parent].tg))
        s.memory[cg] = PageCounter()
        s.pids[cg] = PidsCgroup()
        return cg

    @action("cg", domain=_rmdir_domain)
    def rmdir(self, s: CgroupState, cg: int) -> int:
        """rmdir: 0, or -EBUSY while tasks or online children are in it."""
        err = cgroup.cgroup_destroy_locked(s, cg)
        if not err:
            cpu_cgroup.cpu_cgroup_css_free(s, s.cgroups[cg].tg)
            del s.pids[cg]
            memcontrol.mem_cgroup_css_offline(s, cg, 0)
        return refused(s, err)

    @action("pid", "cg", domain=_attach_domain)
    def attach(self, s: CgroupState, pid: int, cg: int) -> int:
        """echo pid > cgroup.procs: the task moves, its pids charge with it; its pages stay
        charged where they are."""
        err = cgroup.cgroup_procs_write(s, pid, cg)
        if not err:
            pids.pids_can_attach(s, s.css_set[pid], cg)
            memcontrol.mem_cgroup_can_attach(s, pid, cg)
            s.css_set[pid] = cg
            cpu_cgroup.cpu_cgroup_attach(s, pid, s.cgroups[cg].tg)
        return refused(s, err)

    @action("cg", "file", "value", domain=_write_domain)
    def write(self, s: CgroupState, cg: int, file: str, value: str) -> int:
        """A write to one of the cgroup's files: 0 or the kernel's -errno."""
        if file == "pids.max":
            return refused(s, -ENOENT if cg == ROOT else pids.pids_max_write(s, cg, value))
        if file == "cpu.shares":
            return refused(s, cpu_cgroup.cpu_shares_write_u64(s, s.cgroups[cg].tg, value))
        return refused(s, memcontrol.mem_cgroup_write(s, cg, file, value, 0))

    # The running tasks' system calls.

    @action("cpu", "vaddr", domain=_fault_domain)
    def fault(self, s: CgroupState, cpu: int, vaddr: int) -> int:
        """A write to an unmapped anonymous page: do_anonymous_page's allocation and charge."""
        return memory.do_anonymous_page(s, cpu, s.sched.rqs[cpu].curr, vaddr)

    @action("cpu", domain=_fault_map_domain)
    def fault_map(self, s: CgroupState, cpu: int) -> bool:
        """The fault goes on under the page table lock: map and commit, or release."""
        return memory.do_anonymous_page_map(s, cpu, s.sched.rqs[cpu].curr)

    @action("cpu", "index", domain=_read_domain)
    def read(self, s: CgroupState, cpu: int, index: int) -> int:
        """read() of a file page that is not cached."""
        return memory.add_to_page_cache_lru(s, cpu, s.sched.rqs[cpu].curr, index)

    @action("cpu", "vaddr", domain=_munmap_domain)
    def munmap(self, s: CgroupState, cpu: int, vaddr: int) -> None:
        """munmap of one mapped page."""
        pid = s.sched.rqs[cpu].curr
        memory.zap_pte(s, s.mm_of[pid], vaddr, cpu)

    @action("cpu", "cache", domain=_kmem_alloc_domain)
    def kmem_cache_alloc(self, s: CgroupState, cpu: int, cache: str) -> int:
        """kmem_cache_alloc(cache, GFP_KERNEL): from the copy of a SLAB_ACCOUNT cache for the
        task's memcg (memcg_kmem_get_cache), else from the cache itself. The object's
        address, or 0 (NULL) when no slab page or no charge is to be had."""
        pid = s.sched.rqs[cpu].curr
        c = memcontrol.memcg_kmem_get_cache(s, s.slub.caches[cache].s, s.css_set[pid])
        return (
            slub.slab_alloc_node(s.slub, c, cpu, slub.NUMA_NO_NODE, c.object_size, window=False) or slub.NULL
        )

    @action("cpu", "addr", domain=_kmem_free_domain)
    def kmem_cache_free(self, s: CgroupState, cpu: int, addr: int) -> str | None:
        """kmem_cache_free of any live object (a kernel object outlives the task that asked
        for it): a slab page freed with it is uncharged from page->mem_cgroup."""
        return slub.kfree(s.slub, addr, cpu, window=False)

    @action("cpu", "target", "clone_vm", domain=_fork_domain)
    def fork(self, s: CgroupState, cpu: int, target: int, clone_vm: bool) -> int:
        """fork() (a process with an empty mm) or clone(CLONE_VM) (a thread), the child
        woken on target: -EAGAIN if a pids.max refuses (cgroup_can_fork, before the task
        exists), else the child's pid, in its parent's cgroup."""
        parent = s.sched.rqs[cpu].curr
        cg = s.css_set[parent]
        err = pids.pids_can_fork(s, cg)
        if err:
            return err
        child = SchedModel.fork(s.sched, cpu, target)
        s.css_set[child] = cg
        if clone_vm:
            s.mm_of[child] = s.mm_of[parent]
        else:
            s.mms[child] = Mm(child)
            s.mm_of[child] = child
        return child

    @action("cpu", domain=_exit_domain)
    def exit(self, s: CgroupState, cpu: int) -> None:
        """do_exit: exit_mm (the last user unmaps everything; the owner hands the mm on),
        cgroup_exit (pids uncharged, the task leaves its cgroup), do_task_dead."""
        pid = s.sched.rqs[cpu].curr
        mm = s.mm_of.pop(pid)
        users = sorted(p for p, m in s.mm_of.items() if m == mm)
        if not users:
            memory.zap_page_range(s, mm, cpu)
            del s.mms[mm]
        elif s.mms[mm].owner == pid:
            s.mms[mm] = s.mms[mm]._replace(owner=users[0])  # mm_update_next_owner
        pids.pids_release(s, s.css_set.pop(pid))
        s.killed -= {pid}
        core.do_task_dead(s.sched, cpu)

    @action("cpu", domain=_tick_domain)
    def tick(self, s: CgroupState, cpu: int) -> None:
        """A clock tick on cpu: the running task may be preempted."""
        core.scheduler_tick(s.sched, cpu)


def _event(state: CgroupState, kind: str, a: int, b: int) -> str:
    if kind == "refused":
        return f"refused: -{a}"
    where = cgroup.path(state, a) if a in state.cgroups else f"memcg {a}"
    return f"OOM in {where}: task {b} killed" if kind == "oom" else f"{kind} pfn {b} to {where}"


def _task(pid: int) -> str:
    return str(pid) if pid >= 0 else "idle"
