"""Invariants of control groups (model "cgroup"): the memory controller's page counters
against the pages really charged, the charge transactions, the pids controller, and the
hierarchy itself.

The cgroup model charges exactly (no per-CPU stock) and never force-charges a dying task
above its limit, so usage <= max holds at every level after every step. pids.current <=
pids.max does not: the kernel lets a task moved in (pids_can_attach) or a lower limit
written take a cgroup above it; what it forbids is a fork that does.
"""

from __future__ import annotations

from collections import Counter

from invariants import REGISTRY, goal, invariant
from model.cgroup.cgroup import ROOT, chain, in_subtree, path
from model.cgroup.memcontrol import compound_nr
from model.cgroup.model import CgroupState
from model.contract import Step
from model.hw.memory import PAGE_SHIFT
from model.mm import slub
from model.mm.slab_common import SLAB_ACCOUNT
from model.sched import fair
from model.sched.sched import MAX_SHARES, MIN_SHARES, TASK_DEAD

MODEL = "cgroup"
EBUSY = 16


def _name(state: CgroupState, cg: int) -> str:
    return path(state, cg) if cg in state.cgroups else f"cgroup {cg}"


@invariant(
    "cgroup.usage_within_max",
    model=MODEL,
    statement="Every memcg's usage is at most its max, at every level of the hierarchy.",
    source="mm/page_counter.c page_counter_try_charge, page_counter_set_max",
)
def usage_within_max(state: CgroupState) -> list[str]:
    return [
        f"{_name(state, cg)}: usage {c.usage} pages is above max {c.max}"
        for cg, c in sorted(state.memory.items())
        if c.usage > c.max
    ]


@invariant(
    "cgroup.hierarchy_sum",
    model=MODEL,
    statement="A memcg's usage is at least the sum of its children's: a charge is a charge of "
    "every ancestor too.",
    source="mm/page_counter.c page_counter_try_charge (for (c = counter; c; c = c->parent))",
)
def hierarchy_sum(state: CgroupState) -> list[str]:
    out = []
    for cg, c in sorted(state.memory.items()):
        children = [k for k, o in state.cgroups.items() if o.parent == cg and k in state.memory]
        total = sum(state.memory[k].usage for k in children)
        if c.usage < total:
            out.append(f"{_name(state, cg)}: usage {c.usage} is below its children's {total}")
    return out


@invariant(
    "cgroup.pages_match_usage",
    model=MODEL,
    statement="Each memcg's usage is exactly the pages committed to a memcg in its subtree (a "
    "slab's 1 << order) plus the charges still pending there (the root memcg charges nothing "
    "of its own).",
    source="mm/memcontrol.c try_charge, commit_charge, cancel_charge, uncharge_page, memcg_kmem_charge_memcg",
)
def pages_match_usage(state: CgroupState) -> list[str]:
    charged: Counter[int] = Counter()
    for pfn, cg in state.page_memcg.items():
        if cg != ROOT:
            charged[cg] += compound_nr(state, pfn)
    charged.update(charge.memcg for _, charge in state.pending.values() if charge.memcg != ROOT)
    out = []
    for cg, c in sorted(state.memory.items()):
        want = sum(n for memcg, n in charged.items() if in_subtree(state, memcg, cg))
        if c.usage != want:
            out.append(f"{_name(state, cg)}: usage {c.usage}, but {want} pages are charged in its subtree")
    return out


@invariant(
    "cgroup.page_owner",
    model=MODEL,
    statement="Every allocated block has exactly one owner: a page table, the page cache, a fault "
    "between its halves, or a slab. A mapped or cached page is committed to a memcg, a slab of a "
    "memcg's cache to that memcg, a root cache's slab to none; nothing else is committed, and a "
    "committed page's memcg exists.",
    source="mm/memory.c do_anonymous_page, zap_pte_range; mm/filemap.c add_to_page_cache_lru; "
    "mm/slub.c alloc_slab_page, __free_slab",
)
def page_owner(state: CgroupState) -> list[str]:
    owners = Counter((pfn, 0) for mm in state.mms.values() for _, pfn in mm.ptes)
    owners.update((pfn, 0) for _, pfn in state.page_cache)
    user = set(owners)
    owners.update((charge.pfn, 0) for _, charge in state.pending.values())
    owners.update((pfn, slab.order) for pfn, slab in state.slub.slabs.items())
    allocated = set(state.mm.allocated)
    out = [f"pfn {pfn} is used {n} times" for (pfn, _), n in sorted(owners.items()) if n > 1]
    out += [f"pfn {pfn} (order {order}) is owned but free" for pfn, order in sorted(set(owners) - allocated)]
    out += [
        f"pfn {pfn} (order {order}) is allocated but has no owner"
        for pfn, order in sorted(allocated - set(owners))
    ]
    want: dict[int, int | None] = {pfn: None for pfn, _ in user}
    for pfn, slab in state.slub.slabs.items():
        want[pfn] = state.slub.caches[slab.cache].s.memcg if slab.cache in state.slub.caches else None
    for pfn, memcg in sorted(want.items()):
        got = state.page_memcg.get(pfn)
        if pfn in state.slub.slabs and got != memcg:
            out.append(f"slab pfn {pfn} of {state.slub.slabs[pfn].cache} is charged to {got}, not {memcg}")
        elif pfn not in state.slub.slabs and got is None:
            out.append(f"pfn {pfn} is mapped or cached but not committed")
    for pfn, memcg in sorted(state.page_memcg.items()):
        if pfn not in want:
            out.append(
                f"pfn {pfn} is committed to {_name(state, memcg)} but neither mapped, cached nor a slab"
            )
        if memcg not in state.memory:
            out.append(f"pfn {pfn} is committed to memcg {memcg}, which is gone")
    return out


@invariant(
    "cgroup.kmem_charged_to_task",
    model=MODEL,
    statement="An object a task allocates from a SLAB_ACCOUNT cache lies in a slab charged to the "
    "task's memcg (none at the root); an object of any other cache lies in a slab charged to none.",
    source="mm/slab.h slab_pre_alloc_hook, memcg_charge_slab; mm/memcontrol.c memcg_kmem_get_cache",
    transition=True,
)
def kmem_charged_to_task(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    if step.action != "kmem_cache_alloc":
        return []
    cpu, cache = step.args
    new = {addr for addr, _, _ in after.slub.live} - {addr for addr, _, _ in before.slub.live}
    memcg = before.css_set[before.sched.rqs[cpu].curr]
    accounted = SLAB_ACCOUNT in before.slub.caches[cache].s.flags and memcg != ROOT
    out = []
    for addr in sorted(new):
        head = slub.compound_head(after.slub, addr >> PAGE_SHIFT)
        got = after.page_memcg.get(head[0]) if head else None
        if got != (memcg if accounted else None):
            want = _name(after, memcg) if accounted else "no memcg"
            out.append(
                f"{cache} object {addr:#x} from a task in {_name(before, memcg)}: its slab is charged to {got}, not {want}"
            )
    return out


@invariant(
    "cgroup.page_stays_with_memcg",
    model=MODEL,
    statement="A page stays with the memcg it was committed to until it is freed, wherever its "
    "task moves (cgroup v1 moves no charges by default).",
    source="mm/memcontrol.c commit_charge (page->mem_cgroup), mem_cgroup_can_attach",
    transition=True,
)
def page_stays_with_memcg(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    return [
        f"pfn {pfn} moved from memcg {memcg} to {after.page_memcg[pfn]}"
        for pfn, memcg in sorted(before.page_memcg.items())
        if after.page_memcg.get(pfn, memcg) != memcg
    ]


@invariant(
    "cgroup.charge_transaction",
    model=MODEL,
    statement="Every try-charge ends in exactly one commit or one cancel: a charge is pending only "
    "between a fault's two halves, and one that leaves the pending set is committed or cancelled "
    "then, once.",
    source="mm/memcontrol.c mem_cgroup_try_charge, mem_cgroup_commit_charge, mem_cgroup_cancel_charge",
    transition=True,
)
def charge_transaction(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    ends = Counter((kind, memcg, pfn) for kind, memcg, pfn in after.events if kind in ("commit", "cancel"))
    open_ = {(c.memcg, c.pfn) for _, c in before.pending.values()}
    open_ |= {(memcg, pfn) for kind, memcg, pfn in after.events if kind == "try"}
    still = {(c.memcg, c.pfn) for _, c in after.pending.values()}
    out = []
    for memcg, pfn in sorted(open_):
        n = ends[("commit", memcg, pfn)] + ends[("cancel", memcg, pfn)]
        if (memcg, pfn) in still and n:
            out.append(f"the charge of pfn {pfn} to memcg {memcg} ended but is still pending")
        elif (memcg, pfn) not in still and n != 1:
            out.append(f"the charge of pfn {pfn} to memcg {memcg} ended {n} times")
    out += [
        f"{kind} of pfn {pfn} to memcg {memcg} without a try"
        for kind, memcg, pfn in ends
        if (memcg, pfn) not in open_
    ]
    return out


@invariant(
    "cgroup.oom_after_reclaim",
    model=MODEL,
    statement="The memcg OOM killer runs only when reclaim can free nothing: no page cache charged "
    "in the memcg's subtree before the step is left after it.",
    source="mm/memcontrol.c try_charge (try_to_free_mem_cgroup_pages before mem_cgroup_oom)",
    transition=True,
)
def oom_after_reclaim(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    out = []
    for kind, memcg, victim in after.events:
        if kind != "oom":
            continue
        kept = [
            pfn
            for entry in set(before.page_cache) & set(after.page_cache)
            if in_subtree(after, after.page_memcg[pfn := entry[1]], memcg)
        ]
        if kept:
            out.append(
                f"{_name(after, memcg)} killed task {victim} with page cache {sorted(kept)} still to reclaim"
            )
    return out


@invariant(
    "cgroup.watermark",
    model=MODEL,
    statement="A memcg's watermark (memory.max_usage_in_bytes) is at least its usage and never "
    "goes down but by a write that resets it.",
    source="mm/page_counter.c page_counter_try_charge, page_counter_reset_watermark",
    transition=True,
)
def watermark(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    out = []
    reset = step.action == "write" and step.args[1] == "memory.max_usage_in_bytes"
    for cg, c in sorted(after.memory.items()):
        if c.watermark < c.usage:
            out.append(f"{_name(after, cg)}: watermark {c.watermark} is below usage {c.usage}")
        old = before.memory.get(cg)
        if old is not None and c.watermark < old.watermark and not (reset and step.args[0] == cg):
            out.append(f"{_name(after, cg)}: watermark went down from {old.watermark} to {c.watermark}")
    return out


@invariant(
    "cgroup.pids_counted",
    model=MODEL,
    statement="pids.current of every cgroup but the root is the number of live tasks in its subtree.",
    source="kernel/cgroup/pids.c pids_can_fork, pids_release, pids_can_attach",
)
def pids_counted(state: CgroupState) -> list[str]:
    out = []
    for cg, p in sorted(state.pids.items()):
        if cg == ROOT:
            continue
        n = sum(in_subtree(state, c, cg) for c in state.css_set.values())
        if p.counter != n:
            out.append(f"{_name(state, cg)}: pids.current {p.counter}, but {n} tasks are in it")
    return out


@invariant(
    "cgroup.pids_fork_within_max",
    model=MODEL,
    statement="A fork never takes a cgroup's pids.current above its pids.max, at any level.",
    source="kernel/cgroup/pids.c pids_try_charge (called by pids_can_fork before the task exists)",
    transition=True,
)
def pids_fork_within_max(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    if step.action != "fork" or len(after.css_set) <= len(before.css_set):
        return []
    child = max(after.css_set)
    return [
        f"fork took {_name(after, cg)} to pids.current {after.pids[cg].counter} above pids.max {after.pids[cg].limit}"
        for cg in chain(after, after.css_set[child])[:-1]
        if after.pids[cg].counter > after.pids[cg].limit
    ]


@invariant(
    "cgroup.hierarchy",
    model=MODEL,
    statement="The cgroups form a tree under the root; no online cgroup has an offline parent; each "
    "live task is in exactly one online cgroup, and every task in a cgroup is alive; each online "
    "cgroup has its memcg and pids counters.",
    source="kernel/cgroup/cgroup.c cgroup_mkdir, cgroup_destroy_locked, cgroup_migrate",
)
def hierarchy(state: CgroupState) -> list[str]:
    out = []
    for cg, c in sorted(state.cgroups.items()):
        seen: set[int] = set()
        at: int | None = cg
        while at is not None and at not in seen and at in state.cgroups:
            seen.add(at)
            at = state.cgroups[at].parent
        if at is not None:
            out.append(f"cgroup {cg}'s parents do not lead to the root")
        if (
            c.online
            and c.parent is not None
            and not state.cgroups.get(c.parent, c._replace(online=False)).online
        ):
            out.append(f"{_name(state, cg)} is online under an offline parent")
        if c.online and (cg not in state.memory or cg not in state.pids):
            out.append(f"{_name(state, cg)} is online without its counters")
    live = {pid for pid, t in state.sched.tasks.items() if not t.is_idle and t.state != TASK_DEAD}
    if set(state.css_set) != live:
        out.append(f"tasks in cgroups {sorted(state.css_set)}, live tasks {sorted(live)}")
    out += [
        f"task {pid} is in {_name(state, cg)}, which is offline"
        for pid, cg in sorted(state.css_set.items())
        if cg not in state.cgroups or not state.cgroups[cg].online
    ]
    for cg, c in sorted(state.cgroups.items()):
        group = state.sched.task_groups.get(c.tg)
        if c.online and (
            group is None or (c.parent is not None and group.parent != state.cgroups[c.parent].tg)
        ):
            out.append(f"{_name(state, cg)}'s task group {c.tg} is not a child of its parent's")
    out += [
        f"task {pid} is in {_name(state, cg)} but in task group {fair.task_group_of(state.sched, pid)}"
        for pid, cg in sorted(state.css_set.items())
        if cg in state.cgroups and fair.task_group_of(state.sched, pid) != state.cgroups[cg].tg
    ]
    return out


@invariant(
    "cgroup.shares_clamped",
    model=MODEL,
    statement="Every task group's cpu.shares lies in [MIN_SHARES, MAX_SHARES], and every group entity "
    "queued on a CPU weighs between MIN_SHARES and its group's shares.",
    source="kernel/sched/fair.c sched_group_set_shares, calc_group_shares",
)
def shares_clamped(state: CgroupState) -> list[str]:
    sched = state.sched
    out = [
        f"task group {tg}'s shares {g.shares} are outside [{MIN_SHARES}, {MAX_SHARES}]"
        for tg, g in sorted(sched.task_groups.items())
        if tg != 0 and not MIN_SHARES <= g.shares <= MAX_SHARES
    ]
    for k, se in sorted(sched.tg_se.items()):
        shares = sched.task_groups[k.tg].shares
        if se.on_rq and not MIN_SHARES <= se.load.weight <= shares:
            out.append(
                f"task group {k.tg}'s entity on cpu {k.cpu} weighs {se.load.weight}, outside [{MIN_SHARES}, {shares}]"
            )
    return out


# The scheduler's own invariants, on the scheduler inside: the cgroup model's steps as the
# scheduler model names them.
_SCHED_STEPS = {"fork": "fork_task", "exit": "exit_task"}


@invariant(
    "cgroup.scheduler",
    model=MODEL,
    statement="Every invariant of the CFS model (sched.*) holds of the scheduler the cgroups drive: "
    "run queue accounting per cfs_rq, vruntime charging, placement, and fairness between sibling "
    "groups in their shares' ratio within the bounded lag.",
    source="kernel/sched/fair.c; invariants/sched.py",
    transition=True,
)
def scheduler(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    name = _SCHED_STEPS.get(step.action, step.action)
    sched_step = Step(name, step.args[:2] if name == "fork_task" else step.args)
    out = []
    for inv in sorted((i for i in REGISTRY.values() if i.model == "sched"), key=lambda i: i.name):
        found = inv.check(before.sched, sched_step, after.sched) if inv.transition else inv.check(after.sched)
        out += [f"{inv.name}: {msg}" for msg in found]
    return out


@invariant(
    "cgroup.bad_write_refused",
    model=MODEL,
    statement="A refused mkdir, rmdir, cgroup.procs or file write (the kernel's -errno) changes "
    "nothing; a limit refused with -EBUSY may have reclaimed first, but keeps the old limit.",
    source="kernel/cgroup/cgroup.c; mm/memcontrol.c mem_cgroup_write, mem_cgroup_resize_max; "
    "kernel/cgroup/pids.c pids_max_write",
    transition=True,
)
def bad_write_refused(before: CgroupState, step: Step, after: CgroupState) -> list[str]:
    errnos = [err for kind, err, _ in after.events if kind == "refused"]
    if not errnos:
        return []
    if step.action == "write" and step.args[1] == "memory.limit_in_bytes" and errnos == [EBUSY]:
        cg = step.args[0]
        if after.memory[cg].max != before.memory[cg].max:
            return [
                f"{_name(after, cg)}: the refused limit moved max from {before.memory[cg].max} to {after.memory[cg].max}"
            ]
        return []
    if before.fingerprint() != after.fingerprint():
        return [f"{step.action}{step.args} failed with -{errnos[0]} but changed the state"]
    return []


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.

_CHARGING = ("fault", "read", "kmem_cache_alloc")  # the steps that charge a page


def _refused(before: CgroupState, after: CgroupState) -> bool:
    """Some memcg's page counter refused a charge in this step (its failcnt went up)."""
    return any(c.failcnt > before.memory[cg].failcnt for cg, c in after.memory.items() if cg in before.memory)


@goal(
    "cgroup.charge_reclaims",
    model=MODEL,
    statement="A charge refused at a memcg's memory.limit_in_bytes reclaims page cache from its "
    "subtree (try_to_free_mem_cgroup_pages) and tries again.",
    transition=True,
)
def charge_reclaims(before: CgroupState, step: Step, after: CgroupState) -> bool:
    return (
        step.action in _CHARGING
        and _refused(before, after)
        and bool(set(before.page_cache) - set(after.page_cache))
    )


@goal(
    "cgroup.memcg_oom",
    model=MODEL,
    statement="A charge that reclaim cannot make room for runs the memcg OOM killer, which kills the "
    "task with the most pages in the memcg's subtree.",
    transition=True,
)
def memcg_oom(before: CgroupState, step: Step, after: CgroupState) -> bool:
    return any(kind == "oom" for kind, _, _ in after.events)


@goal(
    "cgroup.attach_moves_task",
    model=MODEL,
    statement="A runnable task written to another cgroup's cgroup.procs moves to that cgroup's task "
    "group (sched_move_task).",
    transition=True,
)
def attach_moves_task(before: CgroupState, step: Step, after: CgroupState) -> bool:
    if step.action != "attach":
        return False
    pid, cg = step.args
    task = after.sched.tasks.get(pid)
    return (
        pid in before.css_set
        and after.css_set.get(pid) == cg != before.css_set[pid]
        and task is not None
        and bool(task.on_rq)
        and fair.task_group_of(after.sched, pid) != fair.task_group_of(before.sched, pid)
    )


@goal(
    "cgroup.shares_changed",
    model=MODEL,
    statement="A write of cpu.shares changes a task group's weight (sched_group_set_shares).",
    transition=True,
)
def shares_changed(before: CgroupState, step: Step, after: CgroupState) -> bool:
    if step.action != "write" or step.args[1] != "cpu.shares" or step.args[0] not in before.cgroups:
        return False
    tg = before.cgroups[step.args[0]].tg
    old, new = before.sched.task_groups.get(tg), after.sched.task_groups.get(tg)
    return old is not None and new is not None and old.shares != new.shares


@goal(
    "cgroup.pids_fork_refused",
    model=MODEL,
    statement="A fork in a cgroup whose subtree is at its pids.max fails with -EAGAIN before the task "
    "exists (pids_can_fork).",
    transition=True,
)
def pids_fork_refused(before: CgroupState, step: Step, after: CgroupState) -> bool:
    return step.action == "fork" and set(after.css_set) == set(before.css_set)


def _slab_charges(state: CgroupState) -> set[int]:
    """The slab pages charged to a memcg."""
    return {pfn for pfn in state.page_memcg if pfn in state.slub.slabs}


@goal(
    "cgroup.kmem_charged",
    model=MODEL,
    statement="An allocation from a SLAB_ACCOUNT cache by a task outside the root memcg makes a slab "
    "of its memcg's copy of the cache, charged to the memcg (memcg_charge_slab).",
    transition=True,
)
def kmem_charged(before: CgroupState, step: Step, after: CgroupState) -> bool:
    return step.action == "kmem_cache_alloc" and bool(_slab_charges(after) - _slab_charges(before))


@goal(
    "cgroup.kmem_uncharged",
    model=MODEL,
    statement="A charged slab freed back to the page allocator is uncharged from page->mem_cgroup "
    "(memcg_uncharge_slab).",
    transition=True,
)
def kmem_uncharged(before: CgroupState, step: Step, after: CgroupState) -> bool:
    return bool(_slab_charges(before) - set(after.page_memcg))


@goal(
    "cgroup.rmdir",
    model=MODEL,
    statement="rmdir takes an empty cgroup offline.",
    transition=True,
)
def rmdir(before: CgroupState, step: Step, after: CgroupState) -> bool:
    if step.action != "rmdir":
        return False
    cg = step.args[0]
    gone = after.cgroups.get(cg)
    return cg in before.cgroups and before.cgroups[cg].online and (gone is None or not gone.online)
