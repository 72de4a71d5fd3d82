"""mm/memcontrol.c: the memory controller's charge paths (5.4, cgroup v1 with use_hierarchy).

A page is charged to a memcg in two steps, as the kernel's callers do it: try_charge
reserves the pages in the memcg's page counters (and its ancestors'), then the caller either
commits the charge (page->mem_cgroup is set; the page is the memcg's until it is freed) or
cancels it. Freeing the page uncharges the memcg it was committed to, wherever its task has
gone since. A charge the counters refuse first reclaims the refusing memcg's own page cache,
then kills the task with the most memory in it (the memcg OOM killer), then fails.

Not modelled: the per-CPU charge stock (MEMCG_CHARGE_BATCH; charges are exact), swap and
memsw (anonymous pages are never reclaimed), and the force charge that lets a dying task
go above the limit (its charge fails instead), so usage <= max always holds here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from model.cgroup import memory, page_counter
from model.cgroup.cgroup import ROOT, chain, in_subtree
from model.mm import buddy

if TYPE_CHECKING:
    from model.cgroup.model import CgroupState

ENOMEM = 12
EINVAL = 22
SWAP_CLUSTER_MAX = 32


class Charge(NamedTuple):
    """A try_charge not yet committed or cancelled: the memcg and the page it is for."""

    memcg: int
    pfn: int


def mem_cgroup_from_task(state: CgroupState, pid: int) -> int:
    return state.css_set[pid]


def get_mem_cgroup_from_mm(state: CgroupState, mm: int) -> int:
    """The memcg an mm's pages are charged to: its owner task's."""
    return mem_cgroup_from_task(state, state.mms[mm].owner)


def try_charge(state: CgroupState, memcg: int, nr_pages: int, cpu: int) -> int:
    """Charge nr_pages to memcg and its ancestors; on refusal reclaim from the memcg that
    refused, retry, and when reclaim can free nothing, OOM-kill in it and retry; -ENOMEM when
    no task is left to kill. The root memcg is never charged itself. (The kernel retries a
    fruitless reclaim MEM_CGROUP_RECLAIM_RETRIES times; here reclaim is deterministic, so a
    retry would find nothing either.)"""
    if memcg == ROOT:
        return 0
    while True:
        over = page_counter.page_counter_try_charge(state.memory, chain(state, memcg), nr_pages)
        if over is None:
            return 0
        if try_to_free_mem_cgroup_pages(state, over, nr_pages, cpu):
            continue
        if mem_cgroup_out_of_memory(state, over, cpu):
            continue
        return -ENOMEM


def commit_charge(state: CgroupState, pfn: int, memcg: int) -> None:
    """page->mem_cgroup = memcg: the page is the memcg's until it is freed."""
    state.page_memcg[pfn] = memcg
    state.events += (("commit", memcg, pfn),)


def cancel_charge(state: CgroupState, memcg: int, nr_pages: int) -> None:
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


def mem_cgroup_uncharge(state: CgroupState, pfn: int) -> None:
    """A page is freed: the memcg it was committed to is uncharged."""
    memcg = state.page_memcg.pop(pfn)
    cancel_charge(state, memcg, 1)
    css_free(state, memcg)


def css_free(state: CgroupState, memcg: int) -> None:
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


def free_page(state: CgroupState, pfn: int, cpu: int) -> None:
    """put_page of the last reference: uncharge, then back to the buddy allocator."""
    mem_cgroup_uncharge(state, pfn)
    buddy.free_block(state.mm, pfn, 0, cpu)


def try_to_free_mem_cgroup_pages(state: CgroupState, memcg: int, nr_pages: int, cpu: int) -> int:
    """Reclaim in memcg's subtree: its page cache, oldest first, up to SWAP_CLUSTER_MAX pages
    (anonymous pages need swap, which is not modelled). The number of pages freed."""
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


def mem_cgroup_write(state: CgroupState, memcg: int, file: str, buf: str, cpu: int) -> int:
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


def mem_cgroup_resize_max(state: CgroupState, memcg: int, nr_pages: int, cpu: int) -> int:
    while page_counter.page_counter_set_max(state.memory, memcg, nr_pages):
        if not try_to_free_mem_cgroup_pages(state, memcg, 1, cpu):
            return -page_counter.EBUSY
    return 0
