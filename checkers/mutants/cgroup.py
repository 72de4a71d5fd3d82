"""Mutants of the cgroup model: each replaces one function of model/cgroup with a plausible
kernel bug and names the invariant that must catch it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkers.mutants import mutant
from checkers.mutants.cgroup_prove import group_shares_without_floor, shares_unclamped
from model.cgroup import memcontrol, page_counter, pids
from model.mm import buddy, slub
from model.mm.mmzone import MIGRATE_UNMOVABLE
from model.sched import fair

if TYPE_CHECKING:
    from model.cgroup.memcontrol import Charge
    from model.cgroup.model import CgroupState
    from model.mm.slab import SlubState
    from model.mm.slab_common import KmemCache
    from model.sched.model import SchedState

PAGE_COUNTER = "model.cgroup.page_counter"
MEMCONTROL = "model.cgroup.memcontrol"
MEMORY = "model.cgroup.memory"
PIDS = "model.cgroup.pids"
CGROUP = "model.cgroup.cgroup"

_try_charge = page_counter.page_counter_try_charge


def try_charge_leaf_only(
    counters: page_counter.Counters, chain: tuple[int, ...], nr_pages: int
) -> int | None:
    """page_counter_try_charge charges the memcg's own counter only, not its ancestors'."""
    return _try_charge(counters, chain[:1], nr_pages)


def try_charge_no_watermark(
    counters: page_counter.Counters, chain: tuple[int, ...], nr_pages: int
) -> int | None:
    """page_counter_try_charge never raises the watermark (memory.max_usage_in_bytes)."""
    marks = {cg: counters[cg].watermark for cg in chain}
    failed = _try_charge(counters, chain, nr_pages)
    for cg, mark in marks.items():
        counters[cg] = counters[cg]._replace(watermark=mark)
    return failed


def set_max_ignores_usage(counters: page_counter.Counters, cg: int, nr_pages: int) -> int:
    """page_counter_set_max sets a max below the usage instead of answering -EBUSY."""
    counters[cg] = counters[cg]._replace(max=nr_pages)
    return 0


def release_without_cancel(state: CgroupState, charge: Charge, cpu: int) -> None:
    """do_anonymous_page's release path frees the page without mem_cgroup_cancel_charge."""
    buddy.free_block(state.mm, charge.pfn, 0, cpu)


def free_page_uncharges_current(state: CgroupState, pfn: int, cpu: int) -> None:
    """Freeing a page uncharges the memcg of the task freeing it (mem_cgroup_from_task(current)), not page->mem_cgroup."""
    del state.page_memcg[pfn]
    memcontrol.cancel_charge(state, state.css_set[state.sched.rqs[cpu].curr], 1)
    buddy.free_block(state.mm, pfn, 0, cpu)


def pids_charge_unchecked(state: CgroupState, cg: int) -> int:
    """pids_can_fork charges without the limit check: pids.max is only looked at after the fork."""
    pids.pids_charge(state, cg, 1)
    return 0


def pids_release_forgotten(state: CgroupState, cg: int) -> None:
    """An exiting task is never uncharged from its cgroup's pids counter."""


def never_populated(state: CgroupState, cg: int) -> bool:
    """rmdir does not check cgroup_is_populated: a cgroup with tasks goes offline."""
    return False


def set_max_keeps_refused(counters: page_counter.Counters, cg: int, nr_pages: int) -> int:
    """page_counter_set_max swaps the new max in and answers -EBUSY without putting the old one back."""
    usage = counters[cg].usage
    counters[cg] = counters[cg]._replace(max=nr_pages)
    return -page_counter.EBUSY if usage > nr_pages else 0


def move_pages_on_attach(state: CgroupState, pid: int, memcg: int) -> None:
    """mem_cgroup_can_attach points the task's mapped pages at the new memcg though no charge moves."""
    for _, pfn in state.mms[state.mm_of[pid]].ptes:
        state.page_memcg[pfn] = memcg


def zap_pte_keeps_pte(state: CgroupState, mm: int, vaddr: int, cpu: int) -> None:
    """munmap frees and uncharges the page but leaves its pte in the page table."""
    pfn = next(p for v, p in state.mms[mm].ptes if v == vaddr)
    memcontrol.free_page(state, pfn, cpu)


def no_reclaim(state: CgroupState, memcg: int, nr_pages: int, cpu: int) -> int:
    """try_charge goes straight to the OOM killer: try_to_free_mem_cgroup_pages reclaims nothing."""
    return 0


def move_task_in_place(state: SchedState, pid: int, tg: int) -> None:
    """sched_move_task changes the task's group (sched_change_group) without dequeuing and enqueuing it around the change: it stays queued on its old group's cfs_rq."""
    fair.set_task_group(state, pid, tg)


def attach_keeps_task_group(state: CgroupState, pid: int, tg: int) -> None:
    """cpu_cgroup_attach does not call sched_move_task: the task runs on in its old task group."""


def get_cache_ignores_account(state: CgroupState, s: KmemCache, memcg: int) -> KmemCache:
    """memcg_kmem_get_cache ignores SLAB_ACCOUNT: every task allocates from the root cache, uncharged."""
    return s


def kmem_uncharge_forgotten(state: CgroupState, pfn: int, order: int) -> None:
    """__free_slab frees the page without memcg_uncharge_slab: page->mem_cgroup and the charge stay."""


def kmem_charge_one_page(
    state: CgroupState, pfn: int, order: int, memcg: int, cpu: int, reclaim: bool, noretry: bool
) -> int:
    """memcg_kmem_charge_memcg charges one page for a slab of any order (nr_pages instead of 1 << order)."""
    err = memcontrol.try_charge(state, memcg, 1, cpu, reclaim, noretry)
    if not err:
        state.events += (("try", memcg, pfn),)
        memcontrol.commit_charge(state, pfn, memcg)
    return err


def alloc_slab_page_keeps_refused(
    state: SlubState, s: KmemCache, order: int, cpu: int, node: int | None, reclaim: bool, noretry: bool
) -> int | None:
    """alloc_slab_page fails when the memcg refuses the charge but does not __free_pages the page: it leaks."""
    pfn = buddy.alloc_block(state.mm, order, MIGRATE_UNMOVABLE, cpu, node, can_direct_reclaim=reclaim)
    if pfn is not None and slub.memcg_charge_slab(state, s, pfn, order, cpu, reclaim, noretry):
        return None
    return pfn


def _mutant(name: str, breaks: str, engine: str, *patches: tuple[str, str, Callable[..., Any]]) -> None:
    mutant(f"cgroup.{name}", model="cgroup", breaks=f"cgroup.{breaks}", engine=engine, patches=patches)


_mutant(
    "charge_leaf_only",
    "hierarchy_sum",
    "explore",
    (PAGE_COUNTER, "page_counter_try_charge", try_charge_leaf_only),
)
_mutant(
    "watermark_not_raised",
    "watermark",
    "explore",
    (PAGE_COUNTER, "page_counter_try_charge", try_charge_no_watermark),
)
_mutant(
    "limit_below_usage",
    "usage_within_max",
    "explore",
    (PAGE_COUNTER, "page_counter_set_max", set_max_ignores_usage),
)
_mutant(
    "release_without_cancel", "charge_transaction", "explore", (MEMORY, "release", release_without_cancel)
)
_mutant(
    "uncharge_after_migration",
    "pages_match_usage",
    "explore",
    (MEMCONTROL, "free_page", free_page_uncharges_current),
)
_mutant(
    "pids_max_after_fork", "pids_fork_within_max", "explore", (PIDS, "pids_can_fork", pids_charge_unchecked)
)
_mutant("pids_not_released", "pids_counted", "explore", (PIDS, "pids_release", pids_release_forgotten))
_mutant("rmdir_populated", "hierarchy", "explore", (CGROUP, "cgroup_is_populated", never_populated))
_mutant(
    "refused_limit_kept",
    "bad_write_refused",
    "explore",
    (PAGE_COUNTER, "page_counter_set_max", set_max_keeps_refused),
)
_mutant(
    "charges_follow_the_task",
    "page_stays_with_memcg",
    "explore",
    (MEMCONTROL, "mem_cgroup_can_attach", move_pages_on_attach),
)
_mutant("munmap_keeps_pte", "page_owner", "explore", (MEMORY, "zap_pte", zap_pte_keeps_pte))
_mutant(
    "oom_without_reclaim",
    "oom_after_reclaim",
    "explore",
    (MEMCONTROL, "try_to_free_mem_cgroup_pages", no_reclaim),
)
_mutant(
    "shares_unclamped",
    "shares_clamped",
    "explore",
    ("model.sched.fair", "clamp_shares", shares_unclamped),
)
_mutant(
    "group_shares_without_floor",
    "shares_clamped",
    "stateful",
    ("model.sched.fair", "calc_group_shares", group_shares_without_floor),
)
_mutant(
    "attach_keeps_task_group",
    "hierarchy",
    "explore",
    ("model.cgroup.cpu", "cpu_cgroup_attach", attach_keeps_task_group),
)
_mutant(
    "move_task_in_place", "scheduler", "explore", ("model.sched.core", "sched_move_task", move_task_in_place)
)
_mutant(
    "slab_account_ignored",
    "kmem_charged_to_task",
    "explore",
    (MEMCONTROL, "memcg_kmem_get_cache", get_cache_ignores_account),
)
_mutant(
    "free_slab_without_uncharge",
    "page_owner",
    "explore",
    (MEMCONTROL, "memcg_kmem_uncharge", kmem_uncharge_forgotten),
)
_mutant(
    "slab_charged_one_page",
    "pages_match_usage",
    "stateful",
    (MEMCONTROL, "memcg_kmem_charge_memcg", kmem_charge_one_page),
)
_mutant(
    "slab_charge_failure_leaks_page",
    "page_owner",
    "stateful",
    ("model.mm.slub", "alloc_slab_page", alloc_slab_page_keeps_refused),
)
