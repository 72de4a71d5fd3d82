"""mm/memcontrol.c: the memory controller's charge paths (5.4, cgroup v1 with use_hierarchy).

A page is charged to a memcg in two steps, as the kernel's callers do it: try_charge
reserves the pages in the memcg's page counters (and its ancestors'), then the caller either
commits the charge (page->mem_cgroup is set; the page is the memcg's until it is freed) or
cancels it. Freeing the page uncharges the memcg it was committed to, wherever its task has
gone since. A charge the counters refuse first reclaims the refusing memcg's own page cache,
then kills the task with the most memory in it (the memcg OOM killer), then fails.

Slab pages are charged as 4.19 charges them: a task outside the root memcg allocates from
its memcg's own copy of a SLAB_ACCOUNT cache, and each slab page of that copy is charged to
the memcg, 1 << order pages, and uncharged from page->mem_cgroup when the slab is freed
(5.3 reparents the copies of a removed memcg instead, and 5.9 charges objects, not pages).

Not modelled: the per-CPU charge stock (MEMCG_CHARGE_BATCH; charges are exact), swap and
memsw (anonymous pages are never reclaimed), the v1 kmem counter (memory.kmem.*, which has
no limit unless written), and the force charge that lets a dying task go above the limit
(its charge fails instead), so usage <= max always holds here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple, Protocol

from model.cgroup import memory, page_counter
from model.cgroup.cgroup import ROOT, Cgroup, chain, in_subtree
from model.cgroup.page_counter import PageCounter
from model.mm import buddy, slub
from model.mm.slab_common import SLAB_ACCOUNT, KmemCache

if TYPE_CHECKING:
    from model.cgroup.model import CgroupState
    from model.mm.buddy import BuddyState
    from model.mm.slab import SlubState

ENOMEM = 12
EINVAL = 22
SWAP_CLUSTER_MAX = 32
PAGE_ALLOC_COSTLY_ORDER = 3


class MemcgHost(Protocol):
    """What the charge paths read and write of the model they run in: the cgroup model's
    state, or the whole kernel's, each with its own reclaim and memcg OOM killer."""

    cgroups: dict[int, Cgroup]
    css_set: dict[int, int]
    memory: dict[int, PageCounter]
    page_memcg: dict[int, int]
    events: tuple[tuple[str, int, int], ...]
    slub: SlubState

    @property
    def mm(self) -> BuddyState: ...

    def mem_cgroup_out_of_memory(self, memcg: int, cpu: int) -> bool: ...

    def try_to_free_mem_cgroup_pages(self, memcg: int, nr_pages: int, cpu: int) -> int: ...


class Charge(NamedTuple):
    """A try_charge not yet committed or cancelled: the memcg and the page it is for."""

    memcg: int
    pfn: int


def mem_cgroup_from_task(state: CgroupState, pid: int) -> int:
    return state.css_set[pid]


def get_mem_cgroup_from_mm(state: CgroupState, mm: int) -> int:
    """The memcg an mm's pages are charged to: its owner task's."""
    return mem_cgroup_from_task(state, state.mms[mm].owner)


def try_charge(
    state: MemcgHost, memcg: int, nr_pages: int, cpu: int, reclaim: bool = True, noretry: bool = False
) -> int:
    """Charge nr_pages to memcg and its ancestors; on refusal reclaim from the memcg that
    refused, retry, and when reclaim can free nothing, OOM-kill in it and retry; -ENOMEM when
    no task is left to kill. A caller that may not reclaim (no __GFP_DIRECT_RECLAIM) fails
    at once, one that may not retry (__GFP_NORETRY) fails instead of the OOM kill, and so
    does a charge above PAGE_ALLOC_COSTLY_ORDER (mem_cgroup_oom skips those). The root memcg
    is never charged itself. (The kernel retries a fruitless reclaim
    MEM_CGROUP_RECLAIM_RETRIES times; here reclaim is deterministic, so a retry would find
    nothing either.)"""
    if memcg == ROOT:
        return 0
    while True:
        over = page_counter.page_counter_try_charge(state.memory, chain(state, memcg), nr_pages)
        if over is None:
            return 0
        if not reclaim:
            return -ENOMEM
        if state.try_to_free_mem_cgroup_pages(over, nr_pages, cpu):  # the model's reclaim
            continue
        if noretry or nr_pages > 1 << PAGE_ALLOC_COSTLY_ORDER:
            return -ENOMEM
        if state.mem_cgroup_out_of_memory(over, cpu):  # the OOM killer of the model at hand
            continue
        return -ENOMEM


def commit_charge(state: MemcgHost, pfn: int, memcg: int) -> None:
    """page->mem_cgroup = memcg: the page is the memcg's until it is freed."""
    state.page_memcg[pfn] = memcg
    state.events += (("commit", memcg, pfn),)


def cancel_charge(state: MemcgHost, memcg: int, nr_pages: int) -> None:
    if memcg != ROOT:
        page_counter.page_counter_uncharge(state.memory, chain(state, memcg), nr_pages)


def mem_cgroup_try_charge(state: CgroupState, mm: int, pfn: int, cpu: int) -> tuple[int, Charge | None]:
    """try_charge for a page of mm: 0 and the pending charge, or -ENOMEM."""
    memcg = get_mem_cgroup_from_mm(state, mm)
    err = try_charge(state, memcg, 1, cpu)
    if err:
        return err, None
    state.events += (("try", memcg, pfn),)
    return 0, Charge(memcg, pfn)


def mem_cgroup_commit_charge(state: CgroupState, charge: Charge) -> None:
    commit_charge(state, charge.pfn, charge.memcg)


def mem_cgroup_cancel_charge(state: CgroupState, charge: Charge) -> None:
    cancel_charge(state, charge.memcg, 1)
    state.events += (("cancel", charge.memcg, charge.pfn),)


def mem_cgroup_uncharge(state: MemcgHost, pfn: int, nr_pages: int = 1) -> None:
    """A page is freed: the memcg it was committed to is uncharged."""
    memcg = state.page_memcg.pop(pfn)
    cancel_charge(state, memcg, nr_pages)
    css_free(state, memcg)


# Slab pages (SLAB_ACCOUNT).


def memcg_kmem_get_cache(state: MemcgHost, s: KmemCache, memcg: int) -> KmemCache:
    """mm/memcontrol.c memcg_kmem_get_cache (slab_pre_alloc_hook): a task outside the root
    memcg allocates from a SLAB_ACCOUNT cache's copy for its memcg, "name(id:cgroup)". The
    copy is made on first use here; the kernel makes it from a workqueue
    (memcg_schedule_kmem_cache_create) and serves the allocations in between, uncharged,
    from the cache itself."""
    if SLAB_ACCOUNT not in s.flags or memcg == ROOT:
        return s
    name = f"{s.name}({memcg}:{state.cgroups[memcg].name})"
    if name not in state.slub.caches:
        slub.kmem_cache_create(state.slub, replace(s, name=name, memcg=memcg))  # memcg_create_kmem_cache
    return state.slub.caches[name].s


def memcg_kmem_charge_memcg(
    state: MemcgHost, pfn: int, order: int, memcg: int, cpu: int, reclaim: bool, noretry: bool
) -> int:
    """mm/memcontrol.c memcg_kmem_charge_memcg (4.19): try_charge the slab's 1 << order pages
    with the slab allocation's gfp, then page->mem_cgroup = memcg at once (a kmem page has no
    separate commit). 0, or -ENOMEM."""
    err = try_charge(state, memcg, 1 << order, cpu, reclaim, noretry)
    if err:
        return err
    state.events += (("try", memcg, pfn),)
    commit_charge(state, pfn, memcg)
    return 0


def memcg_kmem_uncharge(state: MemcgHost, pfn: int, order: int) -> None:
    """mm/memcontrol.c memcg_kmem_uncharge: the memcg in page->mem_cgroup, if any (a root
    cache's slab has none), is uncharged the slab's pages."""
    if pfn in state.page_memcg:
        mem_cgroup_uncharge(state, pfn, 1 << order)


class MemcgKmemHooks:
    """SLUB's memory-controller hooks (slub.MemcgKmem) on a state that is a MemcgHost: this
    module's charge and uncharge of slab pages. Both the cgroup model's state and the whole
    kernel's mix it in."""

    __slots__ = ()

    def memcg_kmem_charge_memcg(
        self: MemcgHost, pfn: int, order: int, memcg: int, cpu: int, reclaim: bool, noretry: bool
    ) -> int:
        return memcg_kmem_charge_memcg(self, pfn, order, memcg, cpu, reclaim, noretry)

    def memcg_kmem_uncharge(self: MemcgHost, pfn: int, order: int) -> None:
        memcg_kmem_uncharge(self, pfn, order)


def mem_cgroup_css_offline(state: CgroupState, memcg: int, cpu: int) -> None:
    """rmdir: memcg_offline_kmem deactivates the memcg's caches (4.19
    __kmemcg_cache_deactivate: cpu_partial and min_partial 0, so that a slab that empties goes
    back to the page allocator and stops pinning the memcg, then a shrink), and the memcg
    goes once nothing is charged to it."""
    for name, cs in list(state.slub.caches.items()):
        if cs.s.memcg == memcg:
            s = replace(cs.s, cpu_partial=0, min_partial=0)
            state.slub.caches[name] = cs._replace(s=s)
            slub.kmem_cache_shrink(state.slub, s)
    if memcg in state.memory:  # the shrink may have freed it already
        css_free(state, memcg)


def memcg_destroy_kmem_caches(state: CgroupState) -> None:
    """css_free's memcg_free_kmem, done after the step that freed the memcg (the kernel defers
    it to a work item too): the memcg's caches, empty by then, are destroyed."""
    for cs in list(state.slub.caches.values()):
        if cs.s.memcg is not None and cs.s.memcg not in state.memory:
            slub.kmem_cache_destroy(state.slub, cs.s)


def compound_nr(state: MemcgHost, pfn: int) -> int:
    """The pages of the block at pfn: a slab's 1 << order, else one."""
    slab = state.slub.slabs.get(pfn)
    return 1 << slab.order if slab is not None else 1


def css_free(state: MemcgHost, memcg: int) -> None:
    """An offline memcg goes once nothing is charged to it and nothing refers to it (a child
    cgroup, a task); then its parent may go too."""
    c = state.cgroups[memcg]
    if c.online or state.memory[memcg].usage or any(o.parent == memcg for o in state.cgroups.values()):
        return
    if memcg in state.css_set.values():
        return
    del state.memory[memcg]
    del state.cgroups[memcg]
    if c.parent is not None:
        css_free(state, c.parent)


def free_page(state: MemcgHost, pfn: int, cpu: int) -> None:
    """put_page of the last reference: uncharge, then back to the buddy allocator."""
    mem_cgroup_uncharge(state, pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)


def try_to_free_mem_cgroup_pages(state: CgroupState, memcg: int, nr_pages: int, cpu: int) -> int:
    """The cgroup model's reclaim in memcg's subtree: its page cache, oldest first, up to
    SWAP_CLUSTER_MAX pages (that model has no swap). The number of pages freed."""
    target = max(nr_pages, SWAP_CLUSTER_MAX)
    victims = [e for e in state.page_cache if in_subtree(state, state.page_memcg[e[1]], memcg)][:target]
    for entry in victims:
        state.page_cache = tuple(e for e in state.page_cache if e != entry)
        free_page(state, entry[1], cpu)
    return len(victims)


def oom_badness(state: CgroupState, pid: int) -> int:
    """The pages the task's mm maps, at least 1 for any task that may be killed."""
    return max(len(state.mms[state.mm_of[pid]].ptes), 1)


def mem_cgroup_out_of_memory(state: CgroupState, memcg: int, cpu: int) -> bool:
    """The memcg OOM killer: the task in memcg's subtree with the highest badness (the lowest
    pid of equals) is killed with every task sharing its mm, and the mm's pages reaped at
    once (the oom_reaper). False if there is none to kill."""
    candidates = [
        pid
        for pid, cg in sorted(state.css_set.items())
        if in_subtree(state, cg, memcg) and pid not in state.killed
    ]
    if not candidates:
        return False
    victim = max(candidates, key=lambda pid: (oom_badness(state, pid), -pid))
    mm = state.mm_of[victim]
    state.killed |= {pid for pid, m in state.mm_of.items() if m == mm}
    state.events += (("oom", memcg, victim),)
    memory.zap_page_range(state, mm, cpu)  # __oom_reap_task_mm
    return True


def mem_cgroup_can_attach(state: CgroupState, pid: int, memcg: int) -> None:
    """A task moves to memcg: with memory.move_charge_at_immigrate 0 (the default, and the
    model's), its pages stay charged to the memcg they were committed to."""


def mem_cgroup_write(state: MemcgHost, memcg: int, file: str, buf: str, cpu: int) -> int:
    """A write to one of memcg's memory.* files.

    memory.limit_in_bytes: a byte count (or -1), refused with -EINVAL for anything else or at
    the root; above the usage it is set at once, below it reclaims page cache until it fits,
    -EBUSY when reclaim frees nothing (mem_cgroup_resize_max).
    memory.max_usage_in_bytes and memory.failcnt: any write resets them."""
    if file == "memory.max_usage_in_bytes":
        page_counter.page_counter_reset_watermark(state.memory, memcg)
        return 0
    if file == "memory.failcnt":
        state.memory[memcg] = state.memory[memcg]._replace(failcnt=0)
        return 0
    nr_pages = page_counter.page_counter_memparse(buf, "-1")
    if nr_pages is None or memcg == ROOT:
        return -EINVAL
    return mem_cgroup_resize_max(state, memcg, nr_pages, cpu)


def mem_cgroup_resize_max(state: MemcgHost, memcg: int, nr_pages: int, cpu: int) -> int:
    while page_counter.page_counter_set_max(state.memory, memcg, nr_pages):
        if not state.try_to_free_mem_cgroup_pages(memcg, 1, cpu):
            return -page_counter.EBUSY
    return 0
