"""The Completely Fair Scheduler class (kernel/sched/fair.c, Linux 4.x-5.x), without group
scheduling, bandwidth control, PELT load tracking or NUMA balancing.

vruntimes are u64 and wrap: init_cfs_rq starts min_vruntime at (u64)(-(1LL << 20)), so the
first millisecond of virtual time crosses 2^64, and every comparison is the kernel's
(s64)(a - b). The arithmetic helpers (u64, s64, entity_before, max_vruntime, __calc_delta)
are module functions, so that a mutant can replace one.

Decisions where the model is coarser than the kernel:
- The next and last buddies are modelled (check_preempt_wakeup sets the wakee as next buddy
  whenever it preempts); the NEXT_BUDDY feature (off by default) and the skip buddy
  (yield_task_fair) are not.
- The sysctls are the defaults scaled by SCHED_TUNABLESCALING_LOG (1 + ilog2(min(ncpus, 8))).

Every helper a mutant may replace is a module-level function called through this module's
globals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model.sched.sched import (
    DEQUEUE_MOVE,
    DEQUEUE_SAVE,
    DEQUEUE_SLEEP,
    ENQUEUE_MIGRATED,
    ENQUEUE_WAKEUP,
    NICE_0_LOAD,
    WMULT_CONST,
    WMULT_SHIFT,
    CfsRq,
    LoadWeight,
    SchedEntity,
    Task,
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


def cfs_of(state: SchedState, cpu: int) -> CfsRq:
    return state.rqs[cpu].cfs


def set_cfs(state: SchedState, cpu: int, **changes: Any) -> CfsRq:
    rq = state.rqs[cpu]
    cfs = rq.cfs._replace(**changes)
    state.set_rq(cpu, cfs=cfs)
    return cfs


def se_of(state: SchedState, pid: int) -> SchedEntity:
    return state.tasks[pid].se


def set_se(state: SchedState, pid: int, **changes: Any) -> SchedEntity:
    task = state.tasks[pid]
    se = task.se._replace(**changes)
    state.tasks[pid] = task._replace(se=se)
    return se


def now(state: SchedState, cpu: int) -> int:
    """rq_clock_task: the CPU's clock (no IRQ time accounting)."""
    return state.cpus[cpu].clock


def sysctl(state: SchedState, base: int) -> int:
    return base * get_update_sysctl_factor(len(state.cpus))


# The timeline


def enqueue_timeline(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c __enqueue_entity: into the rb-tree by vruntime, right of equal keys."""
    cfs = cfs_of(state, cpu)
    se = se_of(state, pid)
    timeline = list(cfs.timeline)
    at = len(timeline)
    for i, other in enumerate(timeline):
        if entity_before(se, se_of(state, other)):
            at = i
            break
    timeline.insert(at, pid)
    set_cfs(state, cpu, timeline=tuple(timeline))


def dequeue_timeline(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c __dequeue_entity."""
    set_cfs(state, cpu, timeline=tuple(p for p in cfs_of(state, cpu).timeline if p != pid))


def pick_first_entity(state: SchedState, cpu: int) -> int | None:
    """kernel/sched/fair.c __pick_first_entity: the leftmost entity."""
    timeline = cfs_of(state, cpu).timeline
    return timeline[0] if timeline else None


# Accounting


def update_min_vruntime(state: SchedState, cpu: int) -> None:
    """kernel/sched/fair.c update_min_vruntime: the smaller of curr's and the leftmost's
    vruntime, but never backwards."""
    cfs = cfs_of(state, cpu)
    vruntime = cfs.min_vruntime
    curr = se_of(state, cfs.curr) if cfs.curr is not None else None
    if curr is not None:
        if curr.on_rq:
            vruntime = curr.vruntime
        else:
            curr = None
    leftmost = pick_first_entity(state, cpu)
    if leftmost is not None:
        se = se_of(state, leftmost)
        vruntime = se.vruntime if curr is None else min_vruntime(vruntime, se.vruntime)
    set_cfs(state, cpu, min_vruntime=max_vruntime(cfs.min_vruntime, vruntime))


def update_curr(state: SchedState, cpu: int) -> None:
    """kernel/sched/fair.c update_curr: charge the running entity the time since exec_start,
    in CPU time and, weighted, in vruntime."""
    cfs = cfs_of(state, cpu)
    if cfs.curr is None:
        return
    curr = se_of(state, cfs.curr)
    delta_exec = now(state, cpu) - curr.exec_start
    if delta_exec <= 0:
        return
    set_se(
        state,
        cfs.curr,
        exec_start=now(state, cpu),
        sum_exec_runtime=curr.sum_exec_runtime + delta_exec,
        vruntime=u64(curr.vruntime + calc_delta_fair(delta_exec, curr)),
    )
    update_min_vruntime(state, cpu)


def sched_period(state: SchedState, nr_running: int) -> int:
    """kernel/sched/fair.c __sched_period: sched_latency, stretched to min_granularity per task
    beyond sched_nr_latency tasks."""
    if nr_running > sched_nr_latency:
        return nr_running * sysctl(state, SCHED_MIN_GRANULARITY)
    return sysctl(state, SCHED_LATENCY)


def sched_slice(state: SchedState, cpu: int, se: SchedEntity) -> int:
    """kernel/sched/fair.c sched_slice: the entity's weight share of the period (counting it
    in the queue's load if it is not queued yet)."""
    cfs = cfs_of(state, cpu)
    slice_ = sched_period(state, cfs.nr_running + (not se.on_rq))
    load = LoadWeight(cfs.load if se.on_rq else cfs.load + se.load.weight, 0)
    return calc_delta(slice_, se.load.weight, load)


def sched_vslice(state: SchedState, cpu: int, se: SchedEntity) -> int:
    """kernel/sched/fair.c sched_vslice: the slice in virtual time."""
    return calc_delta_fair(sched_slice(state, cpu, se), se)


def place_entity(state: SchedState, cpu: int, pid: int, initial: bool) -> None:
    """kernel/sched/fair.c place_entity: a new task starts a vslice after min_vruntime
    (START_DEBIT); a waking one at most half a latency before it (GENTLE_FAIR_SLEEPERS), and
    never earlier than its own vruntime."""
    se = se_of(state, pid)
    vruntime = cfs_of(state, cpu).min_vruntime
    if initial:
        vruntime = u64(vruntime + sched_vslice(state, cpu, se))
    else:
        vruntime = u64(vruntime - (sysctl(state, SCHED_LATENCY) >> 1))
    set_se(state, pid, vruntime=max_vruntime(se.vruntime, vruntime))


def account_entity_enqueue(state: SchedState, cpu: int, se: SchedEntity) -> None:
    cfs = cfs_of(state, cpu)
    set_cfs(state, cpu, load=cfs.load + se.load.weight, nr_running=cfs.nr_running + 1)


def account_entity_dequeue(state: SchedState, cpu: int, se: SchedEntity) -> None:
    cfs = cfs_of(state, cpu)
    set_cfs(state, cpu, load=cfs.load - se.load.weight, nr_running=cfs.nr_running - 1)


def enqueue_entity(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/fair.c enqueue_entity (4.8+): a task that was not sleeping carries a vruntime
    relative to its old queue (renormalised on dequeue): add this queue's min_vruntime."""
    renorm = not (flags & ENQUEUE_WAKEUP) or bool(flags & ENQUEUE_MIGRATED)
    is_curr = cfs_of(state, cpu).curr == pid
    if renorm and is_curr:
        set_se(state, pid, vruntime=u64(se_of(state, pid).vruntime + cfs_of(state, cpu).min_vruntime))
    update_curr(state, cpu)
    if renorm and not is_curr:
        set_se(state, pid, vruntime=u64(se_of(state, pid).vruntime + cfs_of(state, cpu).min_vruntime))
    account_entity_enqueue(state, cpu, se_of(state, pid))
    if flags & ENQUEUE_WAKEUP:
        place_entity(state, cpu, pid, initial=False)
    if not is_curr:
        enqueue_timeline(state, cpu, pid)
    set_se(state, pid, on_rq=True)


def dequeue_entity(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/fair.c dequeue_entity: unless the task goes to sleep, its vruntime becomes
    relative to this queue's min_vruntime, to be renormalised where it is enqueued next."""
    update_curr(state, cpu)
    clear_buddies(state, cpu, pid)
    if cfs_of(state, cpu).curr != pid:
        dequeue_timeline(state, cpu, pid)
    se = set_se(state, pid, on_rq=False)
    account_entity_dequeue(state, cpu, se)
    if not flags & DEQUEUE_SLEEP:
        renormalise_dequeued(state, cpu, pid)
    if flags & (DEQUEUE_SAVE | DEQUEUE_MOVE) != DEQUEUE_SAVE:  # not a nice change's save/restore
        update_min_vruntime(state, cpu)


def renormalise_dequeued(state: SchedState, cpu: int, pid: int) -> None:
    """se->vruntime -= cfs_rq->min_vruntime, as dequeue_entity does for a task that leaves the
    queue without sleeping (migration, a nice change)."""
    set_se(state, pid, vruntime=u64(se_of(state, pid).vruntime - cfs_of(state, cpu).min_vruntime))


def set_next_entity(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c set_next_entity: out of the tree, curr, with a fresh slice."""
    se = se_of(state, pid)
    if se.on_rq:
        dequeue_timeline(state, cpu, pid)
    set_se(state, pid, exec_start=now(state, cpu), prev_sum_exec_runtime=se.sum_exec_runtime)
    set_cfs(state, cpu, curr=pid)


def put_prev_entity(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c put_prev_entity: charge the outgoing entity and, if it is still
    runnable, put it back in the tree."""
    if se_of(state, pid).on_rq:
        update_curr(state, cpu)
        enqueue_timeline(state, cpu, pid)
    set_cfs(state, cpu, curr=None)


def pick_next_entity(state: SchedState, cpu: int) -> int | None:
    """kernel/sched/fair.c pick_next_entity with curr already put back: the leftmost, unless
    the last buddy (the task a wake-up preempted) or the next buddy (the wakee) is within a
    wakeup granularity of it; the one picked stops being a buddy."""
    left = pick_first_entity(state, cpu)
    if left is None:
        return None
    se = left
    cfs = cfs_of(state, cpu)
    left_se = se_of(state, left)
    if cfs.last is not None and wakeup_preempt_entity(state, se_of(state, cfs.last), left_se) < 1:
        se = cfs.last
    if cfs.next is not None and wakeup_preempt_entity(state, se_of(state, cfs.next), left_se) < 1:
        se = cfs.next
    clear_buddies(state, cpu, se)
    return se


def clear_buddies(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c clear_buddies: pid stops being the queue's next or last buddy."""
    cfs = cfs_of(state, cpu)
    if cfs.next == pid:
        set_cfs(state, cpu, next=None)
    if cfs.last == pid:
        set_cfs(state, cpu, last=None)


def wakeup_preempt_entity(state: SchedState, curr: SchedEntity, se: SchedEntity) -> int:
    """kernel/sched/fair.c wakeup_preempt_entity: 1 when curr is ahead of se by more than the
    wakeup granularity (in se's virtual time), -1 when it is not ahead at all, else 0."""
    vdiff = vruntime_delta(curr.vruntime, se.vruntime)
    if vdiff <= 0:
        return -1
    gran = calc_delta_fair(sysctl(state, SCHED_WAKEUP_GRANULARITY), se)  # wakeup_gran
    return 1 if vdiff > gran else 0


def check_preempt_tick(state: SchedState, cpu: int, curr_pid: int) -> None:
    """kernel/sched/fair.c check_preempt_tick: reschedule once curr has run its slice, or when
    it has run at least min_granularity and is a slice ahead of the leftmost."""
    from model.sched import core

    curr = se_of(state, curr_pid)
    ideal_runtime = sched_slice(state, cpu, curr)
    delta_exec = curr.sum_exec_runtime - curr.prev_sum_exec_runtime
    if delta_exec > ideal_runtime:
        core.resched_curr(state, cpu)
        clear_buddies(state, cpu, curr_pid)  # the task ran its slice: no buddy favours it
        return
    if delta_exec < sysctl(state, SCHED_MIN_GRANULARITY):
        return
    first = pick_first_entity(state, cpu)
    assert first is not None
    delta = vruntime_delta(curr.vruntime, se_of(state, first).vruntime)
    if delta < 0:
        return
    if delta > ideal_runtime:
        core.resched_curr(state, cpu)


def entity_tick(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c entity_tick."""
    update_curr(state, cpu)
    if cfs_of(state, cpu).nr_running > 1:
        check_preempt_tick(state, cpu, pid)


def check_preempt_wakeup(state: SchedState, cpu: int, p: Task) -> None:
    """kernel/sched/fair.c check_preempt_wakeup: a woken task preempts curr if curr is more
    than a wakeup granularity ahead of it; it becomes the next buddy, and curr, with
    sched_nr_latency or more tasks queued, the last buddy."""
    from model.sched import core

    curr = state.tasks[state.rqs[cpu].curr]
    if curr.pid == p.pid or curr.need_resched:
        return
    update_curr(state, cpu)
    if wakeup_preempt_entity(state, se_of(state, curr.pid), se_of(state, p.pid)) != 1:
        return
    set_cfs(state, cpu, next=p.pid)  # set_next_buddy: bias pick_next to the preempting wakee
    core.resched_curr(state, cpu)
    scale = cfs_of(state, cpu).nr_running >= sched_nr_latency
    if se_of(state, curr.pid).on_rq and scale:
        set_cfs(state, cpu, last=curr.pid)  # set_last_buddy (LAST_BUDDY)


def task_fork_fair(state: SchedState, cpu: int, child: int) -> None:
    """kernel/sched/fair.c task_fork_fair: the child starts at the running entity's vruntime,
    placed a vslice after min_vruntime (START_DEBIT), and leaves relative to min_vruntime
    (sysctl_sched_child_runs_first is 0)."""
    curr = cfs_of(state, cpu).curr
    if curr is not None:
        update_curr(state, cpu)
        set_se(state, child, vruntime=se_of(state, curr).vruntime)
    place_entity(state, cpu, child, initial=True)
    fork_renormalise(state, cpu, child)


def fork_renormalise(state: SchedState, cpu: int, child: int) -> None:
    """se->vruntime -= cfs_rq->min_vruntime at the end of task_fork_fair: wake_up_new_task
    enqueues the child on the CPU it picks, relative to that CPU's min_vruntime."""
    set_se(state, child, vruntime=u64(se_of(state, child).vruntime - cfs_of(state, cpu).min_vruntime))


def migrate_task_rq_fair(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/fair.c migrate_task_rq_fair for a waking task: its vruntime, still absolute
    on the old queue, becomes relative to it (ENQUEUE_MIGRATED renormalises on the new one)."""
    renormalise_dequeued(state, cpu, pid)


def reweight_entity(state: SchedState, pid: int, weight: LoadWeight) -> None:
    """kernel/sched/fair.c reweight_entity for a dequeued entity (set_user_nice dequeues first)."""
    set_se(state, pid, load=weight)
