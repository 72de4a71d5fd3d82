"""The Completely Fair Scheduler class (kernel/sched/fair.c, Linux 4.x-5.x), with group
scheduling (CONFIG_FAIR_GROUP_SCHED, as in 5.4) but without bandwidth control, PELT load
tracking or NUMA balancing.

vruntimes are u64 and wrap: init_cfs_rq starts min_vruntime at (u64)(-(1LL << 20)), so the
first millisecond of virtual time crosses 2^64, and every comparison is the kernel's
(s64)(a - b). The arithmetic helpers (u64, s64, entity_before, max_vruntime, __calc_delta)
are module functions, so that a mutant can replace one.

Decisions where the model is coarser than the kernel:
- The next and last buddies are modelled (check_preempt_wakeup sets the wakee as next buddy
  whenever it preempts); the NEXT_BUDDY feature (off by default) and the skip buddy
  (yield_task_fair) are not.
- The sysctls are the defaults scaled by SCHED_TUNABLESCALING_LOG (1 + ilog2(min(ncpus, 8))).
- Group scheduling: every helper takes a cfs_rq (a CPU for its root cfs_rq, or a TgSe for a
  group's) and an entity (a pid, or a TgSe for a group entity). A task group's weight on a
  CPU is computed from instantaneous queue loads, not PELT averages (calc_group_shares).
  pick_next_task_fair always takes the simple path (put_prev_task, then set_next_entity at
  every level), as the kernel does after a class change and the model did before groups;
  the CONFIG_FAIR_GROUP_SCHED fast path, which keeps prev's slice when prev is picked again,
  is not modelled.

Every helper a mutant may replace is a module-level function called through this module's
globals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model.sched.sched import (
    DEQUEUE_MOVE,
    DEQUEUE_SAVE,
    DEQUEUE_SLEEP,
    EINVAL,
    ENQUEUE_MIGRATED,
    ENQUEUE_WAKEUP,
    MAX_SHARES,
    MIN_SHARES,
    NICE_0_LOAD,
    ROOT_TASK_GROUP,
    TASK_WAKING,
    WMULT_CONST,
    WMULT_SHIFT,
    CfsKey,
    CfsRq,
    Entity,
    LoadWeight,
    SchedEntity,
    Task,
    TgSe,
)

if TYPE_CHECKING:
    from model.sched.model import SchedState

U64 = (1 << 64) - 1

# kernel/sched/fair.c defaults, before scaling (ns)
SCHED_LATENCY = 6_000_000
SCHED_MIN_GRANULARITY = 750_000
SCHED_WAKEUP_GRANULARITY = 1_000_000
sched_nr_latency = 8  # SCHED_LATENCY / SCHED_MIN_GRANULARITY


def get_update_sysctl_factor(ncpus: int) -> int:
    """kernel/sched/fair.c get_update_sysctl_factor, SCHED_TUNABLESCALING_LOG."""
    return 1 + (min(ncpus, 8).bit_length() - 1)


# u64 arithmetic
#
# vruntimes, clocks and runtimes are u64; Python ints stand for them, truncated by u64(). The
# helpers below also take z3 integers (invariants/sched_proofs.py proves __calc_delta and the
# vruntime order with them): the same unbounded integers, the C widths made explicit by
# truncate(). Where z3 spells an operator differently (&, >>, //, fls, if), the helper has a
# z3 path beside the int one; the proofs' cross-checks compare the two, and z3 is imported
# only when a proof passes its terms.


def truncate(x: Any, bits: int) -> Any:
    """x converted to an unsigned C type of that width: x mod 2^bits. A z3 x must not be
    negative (C's unsigned arithmetic never is; s64 lifts its difference above 0 first): the
    z3 term is then x itself below 2^bits, and meets the modulus, which z3 finds harder, only
    beyond."""
    m = 1 << bits
    if isinstance(x, int):
        return x & (m - 1)
    import z3

    return z3.If(x < m, x, x % m)


def u64(x: Any) -> Any:
    return x & U64 if isinstance(x, int) else truncate(x, 64)  # ints first: a hot path


def s64(x: Any) -> Any:
    """(s64)x of a u64 difference x (above -2^64): the two's complement reading, branch-free
    for z3's sake. Adding 2^64 changes no bit of the u64 and keeps a z3 x + 2^63 positive."""
    return u64(x + (1 << 63) + (1 << 64)) - (1 << 63)


def vruntime_delta(a: Any, b: Any) -> Any:
    """(s64)(a - b): how far vruntime a lies after b, right across a u64 wrap."""
    return s64(a - b)


def entity_before(a: SchedEntity, b: SchedEntity) -> bool:
    """kernel/sched/fair.c entity_before."""
    return vruntime_delta(a.vruntime, b.vruntime) < 0


def max_vruntime(max_v: int, vruntime: int) -> int:
    """kernel/sched/fair.c max_vruntime."""
    return vruntime if vruntime_delta(vruntime, max_v) > 0 else max_v


def min_vruntime(min_v: int, vruntime: int) -> int:
    """kernel/sched/fair.c min_vruntime."""
    return vruntime if vruntime_delta(vruntime, min_v) < 0 else min_v


def shr(x: Any, shift: Any) -> Any:
    """x >> shift of a non-negative x. C leaves a shift outside 0..63 undefined; here it gives
    0, on ints and z3 terms alike, so that the proofs' cross-checks can compare them there."""
    if isinstance(shift, int):
        if not 0 <= shift < 64:
            return 0
        return x >> shift if isinstance(x, int) else x / (1 << shift)  # z3's / floors for a divisor > 0
    import z3

    out: Any = 0
    for n in reversed(range(64)):
        out = z3.If(shift == n, shr(x, n), out)
    return out


def mul_u64_u32_shr(a: Any, mul: Any, shift: Any) -> Any:
    """include/linux/math64.h mul_u64_u32_shr(u64 a, u32 mul, unsigned int shift): the
    96-bit product, shifted, truncated to u64."""
    if isinstance(a, int) and isinstance(mul, int) and isinstance(shift, int) and 0 <= shift < 64:
        return ((a * (mul & 0xFFFFFFFF)) >> shift) & U64  # the model's own runs: a hot path
    return u64(shr(a * truncate(mul, 32), shift))


def update_inv_weight(lw: LoadWeight) -> Any:
    """kernel/sched/fair.c __update_inv_weight: lw->inv_weight, computed if not set."""
    if lw.inv_weight:
        return lw.inv_weight
    w = lw.weight
    if isinstance(w, int):
        return 1 if w >= WMULT_CONST else WMULT_CONST // w if w else WMULT_CONST
    import z3

    return z3.If(w >= WMULT_CONST, 1, z3.If(w == 0, WMULT_CONST, WMULT_CONST / w))


def renormalise(fact: Any, shift: Any) -> tuple[Any, Any]:
    """__calc_delta's `fact_hi = upper_32_bits(fact); if (fact_hi) { fs = fls(fact_hi);
    shift -= fs; fact >>= fs; }` on a u64 fact: the fewest halvings that bring it below 2^32
    (the `while (fact >> 32)` loop of earlier kernels computes the same)."""
    if isinstance(fact, int):
        fs = (fact >> 32).bit_length()
        return fact >> fs, shift - fs
    import z3

    out_fact, out_shift = fact, shift
    for fs in range(1, 33):  # the largest fs with fact >= 2^(31 + fs) wins
        above = fact >= 1 << (31 + fs)
        out_fact, out_shift = z3.If(above, fact / (1 << fs), out_fact), z3.If(above, shift - fs, out_shift)
    return out_fact, out_shift


def calc_delta(delta_exec: Any, weight: Any, lw: LoadWeight) -> Any:
    """kernel/sched/fair.c __calc_delta: delta_exec * weight / lw->weight in fixed point,
    through the precomputed inverse 2^32 / lw->weight, keeping every product within 64 bits."""
    fact, shift = renormalise(weight, WMULT_SHIFT)
    fact = truncate(fact, 32) * update_inv_weight(lw)  # mul_u32_u32
    fact, shift = renormalise(fact, shift)
    return mul_u64_u32_shr(delta_exec, fact, shift)


def calc_delta_fair(delta: int, se: SchedEntity) -> int:
    """kernel/sched/fair.c calc_delta_fair: delta scaled to nice 0 for this entity's weight."""
    if se.load.weight != NICE_0_LOAD:
        delta = calc_delta(delta, NICE_0_LOAD, se.load)
    return delta


# Access
#
# A cfs_rq is named by a CPU (its root cfs_rq, rq->cfs) or by a TgSe (a group's cfs_rq on that
# CPU); an entity by a pid (&p->se) or by a TgSe (tg->se[cpu]).


def cpu_of(q: CfsKey) -> int:
    """cpu_of(rq_of(cfs_rq))."""
    return q if isinstance(q, int) else q.cpu


def cfs_of(state: SchedState, q: CfsKey) -> CfsRq:
    return state.rqs[q].cfs if isinstance(q, int) else state.tg_cfs[q]


def set_cfs(state: SchedState, q: CfsKey, **changes: Any) -> CfsRq:
    if not isinstance(q, int):
        cfs = state.tg_cfs[q] = state.tg_cfs[q]._replace(**changes)
        return cfs
    rq = state.rqs[q]
    cfs = rq.cfs._replace(**changes)
    state.set_rq(q, cfs=cfs)
    return cfs


def se_of(state: SchedState, k: Entity) -> SchedEntity:
    return state.tasks[k].se if isinstance(k, int) else state.tg_se[k]


def set_se(state: SchedState, k: Entity, **changes: Any) -> SchedEntity:
    if not isinstance(k, int):
        se = state.tg_se[k] = state.tg_se[k]._replace(**changes)
        return se
    task = state.tasks[k]
    se = task.se._replace(**changes)
    state.tasks[k] = task._replace(se=se)
    return se


def entity_exists(state: SchedState, k: Entity) -> bool:
    return k in state.tasks if isinstance(k, int) else k in state.tg_se


def entity_is_task(k: Entity) -> bool:
    return isinstance(k, int)


def task_group_of(state: SchedState, pid: int) -> int:
    """p->sched_task_group."""
    return state.sched_task_group.get(pid, ROOT_TASK_GROUP)


def tg_cfs_rq(tg: int, cpu: int) -> CfsKey:
    """tg->cfs_rq[cpu]: the CPU's root cfs_rq for the root task group."""
    return cpu if tg == ROOT_TASK_GROUP else TgSe(tg, cpu)


def task_cfs_rq(state: SchedState, pid: int) -> CfsKey:
    """task_cfs_rq(p): the cfs_rq of the task's group on its CPU (p->se.cfs_rq)."""
    return tg_cfs_rq(task_group_of(state, pid), state.tasks[pid].cpu)


def parent_entity(state: SchedState, k: Entity) -> TgSe | None:
    """se->parent: the group entity whose cfs_rq the entity is queued on, None at the root."""
    if isinstance(k, int):
        tg, cpu = task_group_of(state, k), state.tasks[k].cpu
    else:
        parent = state.task_groups[k.tg].parent
        assert parent is not None
        tg, cpu = parent, k.cpu
    return None if tg == ROOT_TASK_GROUP else TgSe(tg, cpu)


def cfs_rq_of(state: SchedState, k: Entity) -> CfsKey:
    """cfs_rq_of(se): the cfs_rq the entity is (or would be) queued on."""
    parent = parent_entity(state, k)
    return cpu_of_entity(state, k) if parent is None else parent


def cpu_of_entity(state: SchedState, k: Entity) -> int:
    return state.tasks[k].cpu if isinstance(k, int) else k.cpu


def group_cfs_rq(k: Entity) -> TgSe | None:
    """group_cfs_rq(se): a group entity's own cfs_rq (se->my_q), None for a task."""
    return None if isinstance(k, int) else k


def for_each_sched_entity(state: SchedState, k: Entity | None) -> list[Entity]:
    """The entity and its ancestors, bottom up (for_each_sched_entity)."""
    chain: list[Entity] = []
    while k is not None:
        chain.append(k)
        k = parent_entity(state, k)
    return chain


def entity_depth(state: SchedState, k: Entity) -> int:
    """se->depth: 0 for an entity on a root cfs_rq."""
    return len(for_each_sched_entity(state, k)) - 1


def now(state: SchedState, q: CfsKey) -> int:
    """rq_clock_task: the CPU's clock (no IRQ time accounting)."""
    return state.cpus[cpu_of(q)].clock


def sysctl(state: SchedState, base: int) -> int:
    return base * get_update_sysctl_factor(len(state.cpus))


# The timeline


def enqueue_timeline(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c __enqueue_entity: into the rb-tree by vruntime, right of equal keys."""
    cfs = cfs_of(state, q)
    se = se_of(state, k)
    timeline = list(cfs.timeline)
    at = len(timeline)
    for i, other in enumerate(timeline):
        if entity_before(se, se_of(state, other)):
            at = i
            break
    timeline.insert(at, k)
    set_cfs(state, q, timeline=tuple(timeline))


def dequeue_timeline(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c __dequeue_entity."""
    set_cfs(state, q, timeline=tuple(e for e in cfs_of(state, q).timeline if e != k))


def pick_first_entity(state: SchedState, q: CfsKey) -> Entity | None:
    """kernel/sched/fair.c __pick_first_entity: the leftmost entity."""
    timeline = cfs_of(state, q).timeline
    return timeline[0] if timeline else None


# Accounting


def update_min_vruntime(state: SchedState, q: CfsKey) -> None:
    """kernel/sched/fair.c update_min_vruntime: the smaller of curr's and the leftmost's
    vruntime, but never backwards."""
    cfs = cfs_of(state, q)
    vruntime = cfs.min_vruntime
    curr = se_of(state, cfs.curr) if cfs.curr is not None else None
    if curr is not None:
        if curr.on_rq:
            vruntime = curr.vruntime
        else:
            curr = None
    leftmost = pick_first_entity(state, q)
    if leftmost is not None:
        se = se_of(state, leftmost)
        vruntime = se.vruntime if curr is None else min_vruntime(vruntime, se.vruntime)
    set_cfs(state, q, min_vruntime=max_vruntime(cfs.min_vruntime, vruntime))


def update_curr(state: SchedState, q: CfsKey) -> None:
    """kernel/sched/fair.c update_curr: charge the running entity the time since exec_start,
    in CPU time and, weighted, in vruntime."""
    cfs = cfs_of(state, q)
    if cfs.curr is None:
        return
    curr = se_of(state, cfs.curr)
    delta_exec = now(state, q) - curr.exec_start
    if delta_exec <= 0:
        return
    set_se(
        state,
        cfs.curr,
        exec_start=now(state, q),
        sum_exec_runtime=curr.sum_exec_runtime + delta_exec,
        vruntime=u64(curr.vruntime + calc_delta_fair(delta_exec, curr)),
    )
    update_min_vruntime(state, q)


def sched_period(state: SchedState, nr_running: int) -> int:
    """kernel/sched/fair.c __sched_period: sched_latency, stretched to min_granularity per task
    beyond sched_nr_latency tasks."""
    if nr_running > sched_nr_latency:
        return nr_running * sysctl(state, SCHED_MIN_GRANULARITY)
    return sysctl(state, SCHED_LATENCY)


def sched_slice(state: SchedState, q: CfsKey, se: SchedEntity, k: Entity | None = None) -> int:
    """kernel/sched/fair.c sched_slice: the entity's weight share of the period of its cfs_rq q
    (counting it in the queue's load if it is not queued yet), and, for entity k in a group
    (5.4's for_each_sched_entity loop), each ancestor's share of the cfs_rq above it."""
    cfs = cfs_of(state, q)
    slice_ = sched_period(state, cfs.nr_running + (not se.on_rq))
    load = LoadWeight(cfs.load if se.on_rq else cfs.load + se.load.weight, 0)
    slice_ = calc_delta(slice_, se.load.weight, load)
    parent = parent_entity(state, k) if k is not None else None
    while parent is not None:
        pse = se_of(state, parent)
        pcfs = cfs_of(state, cfs_rq_of(state, parent))
        load = LoadWeight(pcfs.load if pse.on_rq else pcfs.load + pse.load.weight, 0)
        slice_ = calc_delta(slice_, pse.load.weight, load)
        parent = parent_entity(state, parent)
    return slice_


def sched_vslice(state: SchedState, q: CfsKey, se: SchedEntity, k: Entity | None = None) -> int:
    """kernel/sched/fair.c sched_vslice: the slice in virtual time."""
    return calc_delta_fair(sched_slice(state, q, se, k), se)


def place_entity(state: SchedState, q: CfsKey, k: Entity, initial: bool) -> None:
    """kernel/sched/fair.c place_entity: a new task starts a vslice after min_vruntime
    (START_DEBIT); a waking one at most half a latency before it (GENTLE_FAIR_SLEEPERS), and
    never earlier than its own vruntime."""
    se = se_of(state, k)
    vruntime = cfs_of(state, q).min_vruntime
    if initial:
        vruntime = u64(vruntime + sched_vslice(state, q, se, k))
    else:
        vruntime = u64(vruntime - (sysctl(state, SCHED_LATENCY) >> 1))
    set_se(state, k, vruntime=max_vruntime(se.vruntime, vruntime))


def account_entity_enqueue(state: SchedState, q: CfsKey, se: SchedEntity) -> None:
    cfs = cfs_of(state, q)
    set_cfs(state, q, load=cfs.load + se.load.weight, nr_running=cfs.nr_running + 1)


def account_entity_dequeue(state: SchedState, q: CfsKey, se: SchedEntity) -> None:
    cfs = cfs_of(state, q)
    set_cfs(state, q, load=cfs.load - se.load.weight, nr_running=cfs.nr_running - 1)


def enqueue_entity(state: SchedState, q: CfsKey, k: Entity, flags: int) -> None:
    """kernel/sched/fair.c enqueue_entity (4.8+): a task that was not sleeping carries a vruntime
    relative to its old queue (renormalised on dequeue): add this queue's min_vruntime. A group
    entity is reweighted (update_cfs_group) before it is accounted."""
    renorm = not (flags & ENQUEUE_WAKEUP) or bool(flags & ENQUEUE_MIGRATED)
    is_curr = cfs_of(state, q).curr == k
    if renorm and is_curr:
        set_se(state, k, vruntime=u64(se_of(state, k).vruntime + cfs_of(state, q).min_vruntime))
    update_curr(state, q)
    if renorm and not is_curr:
        set_se(state, k, vruntime=u64(se_of(state, k).vruntime + cfs_of(state, q).min_vruntime))
    update_cfs_group(state, k)
    account_entity_enqueue(state, q, se_of(state, k))
    if flags & ENQUEUE_WAKEUP:
        place_entity(state, q, k, initial=False)
    if not is_curr:
        enqueue_timeline(state, q, k)
    set_se(state, k, on_rq=True)


def dequeue_entity(state: SchedState, q: CfsKey, k: Entity, flags: int) -> None:
    """kernel/sched/fair.c dequeue_entity: unless the task goes to sleep, its vruntime becomes
    relative to this queue's min_vruntime, to be renormalised where it is enqueued next."""
    update_curr(state, q)
    clear_buddies(state, q, k)
    if cfs_of(state, q).curr != k:
        dequeue_timeline(state, q, k)
    se = set_se(state, k, on_rq=False)
    account_entity_dequeue(state, q, se)
    if not flags & DEQUEUE_SLEEP:
        renormalise_dequeued(state, q, k)
    update_cfs_group(state, k)
    if flags & (DEQUEUE_SAVE | DEQUEUE_MOVE) != DEQUEUE_SAVE:  # not a nice change's save/restore
        update_min_vruntime(state, q)


def renormalise_dequeued(state: SchedState, q: CfsKey, k: Entity) -> None:
    """se->vruntime -= cfs_rq->min_vruntime, as dequeue_entity does for a task that leaves the
    queue without sleeping (migration, a nice change)."""
    set_se(state, k, vruntime=u64(se_of(state, k).vruntime - cfs_of(state, q).min_vruntime))


def set_next_entity(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c set_next_entity: out of the tree, curr, with a fresh slice."""
    se = se_of(state, k)
    if se.on_rq:
        dequeue_timeline(state, q, k)
    set_se(state, k, exec_start=now(state, q), prev_sum_exec_runtime=se.sum_exec_runtime)
    set_cfs(state, q, curr=k)


def put_prev_entity(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c put_prev_entity: charge the outgoing entity and, if it is still
    runnable, put it back in the tree."""
    if se_of(state, k).on_rq:
        update_curr(state, q)
        enqueue_timeline(state, q, k)
    set_cfs(state, q, curr=None)


def pick_next_entity(state: SchedState, q: CfsKey) -> Entity | None:
    """kernel/sched/fair.c pick_next_entity with curr already put back: the leftmost, unless
    the last buddy (the task a wake-up preempted) or the next buddy (the wakee) is within a
    wakeup granularity of it; the one picked stops being a buddy."""
    left = pick_first_entity(state, q)
    if left is None:
        return None
    se = left
    cfs = cfs_of(state, q)
    left_se = se_of(state, left)
    if cfs.last is not None and wakeup_preempt_entity(state, se_of(state, cfs.last), left_se) < 1:
        se = cfs.last
    if cfs.next is not None and wakeup_preempt_entity(state, se_of(state, cfs.next), left_se) < 1:
        se = cfs.next
    clear_buddies(state, q, se)
    return se


def clear_buddies(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c clear_buddies: k stops being its queue's next or last buddy, and so
    do its ancestors while they are their queues' (__clear_buddies_last, __clear_buddies_next)."""
    for name in ("last", "next"):
        if getattr(cfs_of(state, q), name) != k:
            continue
        set_cfs(state, q, **{name: None})
        e = parent_entity(state, k)
        while e is not None:
            eq = cfs_rq_of(state, e)
            if getattr(cfs_of(state, eq), name) != e:
                break
            set_cfs(state, eq, **{name: None})
            e = parent_entity(state, e)


def set_next_buddy(state: SchedState, k: Entity) -> None:
    """kernel/sched/fair.c set_next_buddy: the entity and each ancestor become their queue's
    next buddy (stopping at one not queued, the kernel's SCHED_WARN_ON)."""
    for e in for_each_sched_entity(state, k):
        if not se_of(state, e).on_rq:
            return
        set_cfs(state, cfs_rq_of(state, e), next=e)


def set_last_buddy(state: SchedState, k: Entity) -> None:
    """kernel/sched/fair.c set_last_buddy."""
    for e in for_each_sched_entity(state, k):
        if not se_of(state, e).on_rq:
            return
        set_cfs(state, cfs_rq_of(state, e), last=e)


def wakeup_preempt_entity(state: SchedState, curr: SchedEntity, se: SchedEntity) -> int:
    """kernel/sched/fair.c wakeup_preempt_entity: 1 when curr is ahead of se by more than the
    wakeup granularity (in se's virtual time), -1 when it is not ahead at all, else 0."""
    vdiff = vruntime_delta(curr.vruntime, se.vruntime)
    if vdiff <= 0:
        return -1
    gran = calc_delta_fair(sysctl(state, SCHED_WAKEUP_GRANULARITY), se)  # wakeup_gran
    return 1 if vdiff > gran else 0


def check_preempt_tick(state: SchedState, q: CfsKey, curr_k: Entity) -> None:
    """kernel/sched/fair.c check_preempt_tick: reschedule once curr has run its slice, or when
    it has run at least min_granularity and is a slice ahead of the leftmost."""
    from model.sched import core

    curr = se_of(state, curr_k)
    ideal_runtime = sched_slice(state, q, curr, curr_k)
    delta_exec = curr.sum_exec_runtime - curr.prev_sum_exec_runtime
    if delta_exec > ideal_runtime:
        core.resched_curr(state, cpu_of(q))
        clear_buddies(state, q, curr_k)  # the entity ran its slice: no buddy favours it
        return
    if delta_exec < sysctl(state, SCHED_MIN_GRANULARITY):
        return
    first = pick_first_entity(state, q)
    assert first is not None
    delta = vruntime_delta(curr.vruntime, se_of(state, first).vruntime)
    if delta < 0:
        return
    if delta > ideal_runtime:
        core.resched_curr(state, cpu_of(q))


def entity_tick(state: SchedState, q: CfsKey, k: Entity) -> None:
    """kernel/sched/fair.c entity_tick: charge curr, reweight it if it is a group entity
    (update_cfs_group), and check its slice."""
    update_curr(state, q)
    update_cfs_group(state, k)
    if cfs_of(state, q).nr_running > 1:
        check_preempt_tick(state, q, k)


def task_tick_fair(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c task_tick_fair: entity_tick at every level of the running task."""
    for k in for_each_sched_entity(state, pid):
        entity_tick(state, cfs_rq_of(state, k), k)


def find_matching_se(state: SchedState, se: Entity, pse: Entity) -> tuple[Entity, Entity]:
    """kernel/sched/fair.c find_matching_se: the ancestors of two entities of one CPU that are
    queued on the same cfs_rq."""
    se_depth, pse_depth = entity_depth(state, se), entity_depth(state, pse)
    while se_depth > pse_depth:
        se_depth -= 1
        se = _parent(state, se)
    while pse_depth > se_depth:
        pse_depth -= 1
        pse = _parent(state, pse)
    while cfs_rq_of(state, se) != cfs_rq_of(state, pse):
        se, pse = _parent(state, se), _parent(state, pse)
    return se, pse


def _parent(state: SchedState, k: Entity) -> Entity:
    parent = parent_entity(state, k)
    assert parent is not None
    return parent


def check_preempt_wakeup(state: SchedState, cpu: int, p: Task) -> None:
    """kernel/sched/fair.c check_preempt_wakeup: a woken task preempts curr if curr is more
    than a wakeup granularity ahead of it, compared at the level where their ancestors share
    a cfs_rq (find_matching_se); it becomes the next buddy, and curr, with sched_nr_latency or
    more tasks on curr's cfs_rq, the last buddy (if that level's entity is curr itself)."""
    from model.sched import core

    curr = state.tasks[state.rqs[cpu].curr]
    if curr.pid == p.pid or curr.need_resched:
        return
    scale = cfs_of(state, task_cfs_rq(state, curr.pid)).nr_running >= sched_nr_latency
    se, pse = find_matching_se(state, curr.pid, p.pid)
    update_curr(state, cfs_rq_of(state, se))
    if wakeup_preempt_entity(state, se_of(state, se), se_of(state, pse)) != 1:
        return
    set_next_buddy(state, pse)  # bias pick_next to the preempting wakee
    core.resched_curr(state, cpu)
    if se_of(state, se).on_rq and scale and entity_is_task(se):
        set_last_buddy(state, se)  # LAST_BUDDY


def task_fork_fair(state: SchedState, cpu: int, child: int) -> None:
    """kernel/sched/fair.c task_fork_fair: the child starts at the running entity's vruntime,
    placed a vslice after min_vruntime (START_DEBIT), and leaves relative to min_vruntime
    (sysctl_sched_child_runs_first is 0). The cfs_rq is the parent's (task_cfs_rq(current)),
    the child's too: the child inherits its group and is on cpu."""
    q = tg_cfs_rq(task_group_of(state, child), cpu)
    curr = cfs_of(state, q).curr
    if curr is not None:
        update_curr(state, q)
        set_se(state, child, vruntime=se_of(state, curr).vruntime)
    place_entity(state, q, child, initial=True)
    fork_renormalise(state, q, child)


def fork_renormalise(state: SchedState, q: CfsKey, child: int) -> None:
    """se->vruntime -= cfs_rq->min_vruntime at the end of task_fork_fair: wake_up_new_task
    enqueues the child on the CPU it picks, relative to that CPU's min_vruntime."""
    set_se(state, child, vruntime=u64(se_of(state, child).vruntime - cfs_of(state, q).min_vruntime))


def migrate_task_rq_fair(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c migrate_task_rq_fair for a waking task: its vruntime, still absolute
    on the old queue (its group's cfs_rq on cpu), becomes relative to it (ENQUEUE_MIGRATED
    renormalises on the new one)."""
    renormalise_dequeued(state, tg_cfs_rq(task_group_of(state, pid), cpu), pid)


def reweight_entity(state: SchedState, k: Entity, weight: LoadWeight) -> None:
    """kernel/sched/fair.c reweight_entity: a queued entity's weight leaves its cfs_rq's load
    (curr first charged at the old weight) and comes back at the new one; 5.4 leaves the
    vruntime as it is. set_user_nice dequeues a task first."""
    se = se_of(state, k)
    q = cfs_rq_of(state, k)
    if se.on_rq:
        if cfs_of(state, q).curr == k:
            update_curr(state, q)
        account_entity_dequeue(state, q, se_of(state, k))
    se = set_se(state, k, load=weight)
    if se.on_rq:
        account_entity_enqueue(state, q, se)


# Group scheduling


def enqueue_task_fair(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/fair.c enqueue_task_fair: enqueue the task and each ancestor not queued yet
    (those above enqueue as wake-ups), then reweight the ancestors already queued, whose
    groups just grew; the rq counts one more task."""
    chain = for_each_sched_entity(state, pid)
    i = 0
    while i < len(chain):
        k = chain[i]
        if se_of(state, k).on_rq:
            break
        enqueue_entity(state, cfs_rq_of(state, k), k, flags)
        flags = ENQUEUE_WAKEUP
        i += 1
    for k in chain[i:]:
        update_cfs_group(state, k)
    state.set_rq(cpu, nr_running=state.rqs[cpu].nr_running + 1)


def dequeue_task_fair(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/fair.c dequeue_task_fair: dequeue the task, and each ancestor whose cfs_rq
    it leaves empty (as a sleep: a group entity keeps its vruntime). An ancestor that keeps
    other entities is reweighted instead, and becomes the next buddy if the task went to
    sleep; the rq counts one task less."""
    task_sleep = flags & DEQUEUE_SLEEP
    chain = for_each_sched_entity(state, pid)
    i = 0
    while i < len(chain):
        k = chain[i]
        q = cfs_rq_of(state, k)
        dequeue_entity(state, q, k, flags)
        i += 1
        if cfs_of(state, q).load:
            if task_sleep and i < len(chain):
                set_next_buddy(state, chain[i])
            break
        flags |= DEQUEUE_SLEEP
    for k in chain[i:]:
        update_cfs_group(state, k)
    state.set_rq(cpu, nr_running=state.rqs[cpu].nr_running - 1)


def put_prev_task_fair(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c put_prev_task_fair: put_prev_entity at every level."""
    for k in for_each_sched_entity(state, pid):
        put_prev_entity(state, cfs_rq_of(state, k), k)


def set_next_task_fair(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c set_next_task_fair (set_curr_task_fair before 5.3): set_next_entity
    at every level."""
    for k in for_each_sched_entity(state, pid):
        set_next_entity(state, cfs_rq_of(state, k), k)


def pick_next_task_fair(state: SchedState, cpu: int) -> int | None:
    """kernel/sched/fair.c pick_next_task_fair, the simple path with prev already put back:
    pick and set the next entity from the root cfs_rq down through each group cfs_rq to a
    task; None with nothing queued."""
    if not cfs_of(state, cpu).nr_running:
        return None
    q: CfsKey = cpu
    while True:
        k = pick_next_entity(state, q)
        assert k is not None, f"cfs_rq {q} is counted runnable but has nothing to pick"
        set_next_entity(state, q, k)
        my_q = group_cfs_rq(k)
        if my_q is None:
            assert isinstance(k, int)
            return k
        q = my_q


def calc_group_shares(state: SchedState, q: TgSe) -> int:
    """kernel/sched/fair.c calc_group_shares (SMP): the group entity's weight on q's CPU, the
    group's shares in proportion to this CPU's part of the group's load,

        shares = tg->shares * load / tg_weight, clamped to [MIN_SHARES, tg->shares].

    The model has no PELT: load is this group cfs_rq's instantaneous load.weight (the kernel
    takes max(load.weight, avg.load_avg)), and tg_weight the sum of the group's cfs_rq
    load.weights over every CPU (the kernel's tg->load_avg, with this CPU's contribution
    replaced by load). Weights are in the model's unscaled units (scale_load_down, NICE_0_LOAD
    1024), so the floor MIN_SHARES is 2 units; a 64-bit kernel applies it to scaled weights,
    where it is 2/1024 of a unit."""
    tg_shares = state.task_groups[q.tg].shares
    load = cfs_of(state, q).load
    tg_weight = sum(state.tg_cfs[TgSe(q.tg, cpu)].load for cpu in range(len(state.cpus)))
    shares = tg_shares * load
    if tg_weight:
        shares //= tg_weight
    return max(MIN_SHARES, min(shares, tg_shares))  # clamp_t(long, shares, MIN_SHARES, tg_shares)


def update_cfs_group(state: SchedState, k: Entity) -> None:
    """kernel/sched/fair.c update_cfs_group: a group entity takes the weight calc_group_shares
    gives its cfs_rq (reweight_entity, whose update_load_set leaves inv_weight 0); a task's
    weight is its own."""
    my_q = group_cfs_rq(k)
    if my_q is None:
        return
    reweight_entity(state, k, LoadWeight(calc_group_shares(state, my_q), 0))


def clamp_shares(shares: int) -> int:
    """clamp(shares, scale_load(MIN_SHARES), scale_load(MAX_SHARES))."""
    return max(MIN_SHARES, min(shares, MAX_SHARES))


def sched_group_set_shares(state: SchedState, tg: int, shares: int) -> int:
    """kernel/sched/fair.c sched_group_set_shares, for a write of cpu.shares: -EINVAL for the
    root group (which has no entities); else shares is clamped to [MIN_SHARES, MAX_SHARES]
    (0 and 1 become 2: no error) and, if it changed, every CPU's group entity and its
    ancestors are reweighted. 0 on success. The model's weights are unscaled, so
    cpu_shares_write_u64's scale_load (shareval << 10 on 64-bit) is the identity here, and a
    value too large to scale ends at MAX_SHARES, as 5.4 stable's cap before scale_load does."""
    if tg == ROOT_TASK_GROUP:
        return -EINVAL
    shares = clamp_shares(shares)
    group = state.task_groups[tg]
    if group.shares == shares:
        return 0
    state.task_groups[tg] = group._replace(shares=shares)
    for cpu in range(len(state.cpus)):
        for k in for_each_sched_entity(state, TgSe(tg, cpu)):
            update_cfs_group(state, k)
    return 0


def vruntime_normalized(state: SchedState, pid: int) -> bool:
    """kernel/sched/fair.c vruntime_normalized: the task's vruntime is already relative (it is
    queued, or TASK_WAKING: a forked child before wake_up_new_task, or a task mid-wake-up).
    The kernel also takes a task that has never run (!se->sum_exec_runtime) for a new child;
    the model does not, since its clock moves only at ticks, so a task that has run may still
    have a sum_exec_runtime of 0."""
    p = state.tasks[pid]
    return bool(p.on_rq) or p.state == TASK_WAKING


def detach_task_cfs_rq(state: SchedState, pid: int) -> None:
    """kernel/sched/fair.c detach_task_cfs_rq: a sleeping task is placed on its cfs_rq as if it
    woke (no unlimited sleep credit), then made relative to that cfs_rq's min_vruntime."""
    if not vruntime_normalized(state, pid):
        q = task_cfs_rq(state, pid)
        place_entity(state, q, pid, initial=False)
        renormalise_dequeued(state, q, pid)


def attach_task_cfs_rq(state: SchedState, pid: int) -> None:
    """kernel/sched/fair.c attach_task_cfs_rq: a sleeping task's relative vruntime is made
    absolute on its new cfs_rq."""
    if not vruntime_normalized(state, pid):
        q = task_cfs_rq(state, pid)
        set_se(state, pid, vruntime=u64(se_of(state, pid).vruntime + cfs_of(state, q).min_vruntime))


def task_move_group_fair(state: SchedState, pid: int, tg: int) -> None:
    """kernel/sched/fair.c task_move_group_fair (task_change_group_fair, TASK_MOVE_GROUP):
    detach from the old group's cfs_rq, set_task_rq to the new group's, attach there."""
    detach_task_cfs_rq(state, pid)
    set_task_group(state, pid, tg)
    attach_task_cfs_rq(state, pid)


def set_task_group(state: SchedState, pid: int, tg: int) -> None:
    """p->sched_task_group = tg (sched_change_group), which set_task_rq follows."""
    if tg == ROOT_TASK_GROUP:
        state.sched_task_group.pop(pid, None)
    else:
        state.sched_task_group[pid] = tg
