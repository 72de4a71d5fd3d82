"""Invariants of the CFS scheduler (model "sched").

vruntimes are u64 and compared as the kernel compares them, by (s64)(a - b). The rules that
need history compare the states before and after a step; fairness reads the checker's epoch
record the model keeps (model/sched/model.py).
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from invariants import invariant
from model.contract import Step
from model.hw.cpu import TICK_NSEC
from model.sched import fair
from model.sched.model import SchedState
from model.sched.sched import (
    NICE_0_LOAD,
    STATE_NAMES,
    TASK_DEAD,
    TASK_ON_RQ_QUEUED,
    TASK_RUNNING,
    TASK_WAKING,
)

MODEL = "sched"
# __calc_delta's relative error, for every nice level (proved: sched.calc_delta_fair_error)
CALC_DELTA_ERROR_SHIFT = 26
CALC_DELTA_ERROR = Fraction(1, 1 << CALC_DELTA_ERROR_SHIFT)
U64 = (1 << 64) - 1


def _delta(a: int, b: int) -> int:
    """(s64)(a - b)."""
    d = (a - b) & U64
    return d - (1 << 64) if d >> 63 else d


def _ns(x: float | Fraction) -> str:
    """A time as the messages give it: in ms to the microsecond, or in ns below a microsecond."""
    x = float(x)
    return f"{x / 1e6:.3f} ms" if abs(x) >= 1000 else f"{x:.0f} ns"


def _state(s: int) -> str:
    return STATE_NAMES.get(s, hex(s))


@invariant(
    "sched.min_vruntime_monotonic",
    model=MODEL,
    statement="No cfs_rq's min_vruntime ever moves backwards (compared as (s64)(new - old)).",
    source="kernel/sched/fair.c update_min_vruntime (max_vruntime)",
    transition=True,
)
def min_vruntime_monotonic(before: SchedState, step: Step, after: SchedState) -> list[str]:
    return [
        f"cpu {cpu}'s min_vruntime went back by {_ns(-_delta(a.cfs.min_vruntime, b.cfs.min_vruntime))}"
        for cpu, (b, a) in enumerate(zip(before.rqs, after.rqs, strict=True))
        if _delta(a.cfs.min_vruntime, b.cfs.min_vruntime) < 0
    ]


@invariant(
    "sched.vruntime_accounting",
    model=MODEL,
    statement="A task queued before and after a step (same CPU, same weight) gains exactly calc_delta_fair "
    "of the runtime it was charged in vruntime: the runtime scaled by NICE_0_LOAD / its weight, and "
    "nothing without runtime.",
    source="kernel/sched/fair.c update_curr, calc_delta_fair, __calc_delta",
    transition=True,
)
def vruntime_accounting(before: SchedState, step: Step, after: SchedState) -> list[str]:
    out = []
    for pid, t in after.tasks.items():
        was = before.tasks.get(pid)
        if was is None or t.is_idle or was.cpu != t.cpu or was.se.load != t.se.load:
            continue
        if not (was.on_rq == t.on_rq == TASK_ON_RQ_QUEUED):
            continue  # placed on a wake-up or a fork, not charged
        charged = t.se.sum_exec_runtime - was.se.sum_exec_runtime
        gained = _delta(t.se.vruntime, was.se.vruntime)
        expected = Fraction(charged * NICE_0_LOAD, t.se.load.weight)
        # A step charges one update_curr (the clock moves only on a tick), and z3 proves that
        # calc_delta_fair lies within a part in 2^26 of the exact ratio, less at most 1 ns
        # (sched.calc_delta_fair_error, invariants/sched_proofs.py).
        if not expected * (1 - CALC_DELTA_ERROR) - 1 <= gained <= expected * (1 + CALC_DELTA_ERROR):
            shown = (_ns(gained), _ns(expected))
            if shown[0] == shown[1]:
                shown = (f"{gained} ns", f"{float(expected):.2f} ns")
            out.append(
                f"task {pid} (weight {t.se.load.weight}) ran {_ns(charged)} but its vruntime grew by "
                f"{shown[0]}, not {shown[1]}"
            )
    return out


@invariant(
    "sched.queued_vruntime_stable",
    model=MODEL,
    statement="A task that waits in a run queue's timeline keeps its vruntime: only the running "
    "entity is charged.",
    source="kernel/sched/fair.c update_curr (charges cfs_rq->curr only)",
    transition=True,
)
def queued_vruntime_stable(before: SchedState, step: Step, after: SchedState) -> list[str]:
    out = []
    for cpu, (b, a) in enumerate(zip(before.rqs, after.rqs, strict=True)):
        for pid in set(b.cfs.timeline) & set(a.cfs.timeline):
            t0, t1 = before.tasks[pid], after.tasks[pid]
            if t0.se.load == t1.se.load and t0.se.vruntime != t1.se.vruntime:
                out.append(
                    f"task {pid} waited in cpu {cpu}'s timeline but its vruntime moved by "
                    f"{_ns(_delta(t1.se.vruntime, t0.se.vruntime))}"
                )
    return out


@invariant(
    "sched.rq_consistency",
    model=MODEL,
    statement="Each cfs_rq's nr_running and load.weight count exactly its queued entities (the "
    "timeline and a runnable curr), the timeline is in vruntime order without curr, its buddies are "
    "queued there, and a task is queued at most once on at most one CPU, the one it belongs to.",
    source="kernel/sched/fair.c account_entity_enqueue/dequeue, __enqueue_entity, set_next_entity",
)
def rq_consistency(state: SchedState) -> list[str]:
    out = []
    seen: Counter[int] = Counter()
    for cpu, rq in enumerate(state.rqs):
        cfs = rq.cfs
        where = f"cpu {cpu}"
        queued = list(cfs.timeline)
        seen.update(cfs.timeline)
        curr = state.tasks.get(rq.curr)
        if curr is None:
            out.append(f"{where}'s rq->curr is task {rq.curr}, which does not exist")
            continue
        if curr.is_idle:
            if cfs.curr is not None:
                out.append(f"{where} runs its idle task but cfs_rq->curr is task {cfs.curr}, not NULL")
        else:
            if cfs.curr != curr.pid:
                what = "NULL" if cfs.curr is None else f"task {cfs.curr}"
                out.append(f"{where} runs task {curr.pid} but cfs_rq->curr is {what}")
            if curr.pid in cfs.timeline:
                out.append(f"{where}'s running task {curr.pid} is also in its timeline")
            if curr.se.on_rq:
                queued.append(curr.pid)
                seen[curr.pid] += 1
            if curr.cpu != cpu:
                out.append(f"{where} runs task {curr.pid}, which belongs to cpu {curr.cpu}")
        missing = [pid for pid in queued if pid not in state.tasks]
        if missing:
            out.append(f"{where}'s timeline holds tasks {missing} that do not exist")
            continue
        if cfs.nr_running != len(queued) or rq.nr_running != len(queued):
            out.append(
                f"{where} counts {cfs.nr_running} queued (rq: {rq.nr_running}) but has {len(queued)} "
                f"(timeline {list(cfs.timeline)}, curr {cfs.curr})"
            )
        weight = sum(state.tasks[pid].se.load.weight for pid in queued)
        if cfs.load != weight:
            out.append(f"{where}'s load.weight is {cfs.load} but its queued entities weigh {weight}")
        for left, right in zip(cfs.timeline, cfs.timeline[1:], strict=False):
            if fair.entity_before(state.tasks[right].se, state.tasks[left].se):
                out.append(f"{where}'s timeline has task {left} before task {right}, which has the smaller vruntime")
        for pid in cfs.timeline:
            t = state.tasks[pid]
            if t.cpu != cpu:
                out.append(f"task {pid} is in cpu {cpu}'s timeline but belongs to cpu {t.cpu}")
            if t.on_rq != TASK_ON_RQ_QUEUED:
                out.append(f"task {pid} is in cpu {cpu}'s timeline but its p->on_rq is {t.on_rq}")
            if not t.se.on_rq:
                out.append(f"task {pid} is in cpu {cpu}'s timeline but its se.on_rq is clear")
    out += [f"task {pid} is queued {n} times" for pid, n in sorted(seen.items()) if n > 1]
    for cpu, rq in enumerate(state.rqs):
        for name, buddy in (("next", rq.cfs.next), ("last", rq.cfs.last)):
            running = state.tasks.get(rq.cfs.curr) if rq.cfs.curr is not None else None
            queued_curr = running is not None and running.se.on_rq
            if buddy is not None and buddy not in rq.cfs.timeline and not (buddy == rq.cfs.curr and queued_curr):
                out.append(f"cpu {cpu}'s cfs_rq->{name} buddy is task {buddy}, which is not queued there")
    for pid, t in sorted(state.tasks.items()):
        if t.is_idle or t.on_rq != TASK_ON_RQ_QUEUED or not t.se.on_rq or t.cpu >= len(state.rqs):
            continue
        cfs = state.rqs[t.cpu].cfs
        if pid not in cfs.timeline and cfs.curr != pid:
            out.append(f"task {pid} is queued on cpu {t.cpu} but is neither in its timeline nor running")
    return out


@invariant(
    "sched.state_coherence",
    model=MODEL,
    statement="p->on_rq and the entity's on_rq agree; a task off every queue is not TASK_RUNNING, and a "
    "blocked task is neither queued nor running; no task is left TASK_WAKING, TASK_DEAD or "
    "TASK_ON_RQ_MIGRATING between steps.",
    source="kernel/sched/core.c __schedule (deactivate_task), try_to_wake_up, do_task_dead",
)
def state_coherence(state: SchedState) -> list[str]:
    out = []
    running = {rq.curr: cpu for cpu, rq in enumerate(state.rqs)}
    for pid, t in sorted(state.tasks.items()):
        if t.is_idle:
            continue
        if t.on_rq not in (0, TASK_ON_RQ_QUEUED):
            out.append(f"task {pid} is left with p->on_rq {t.on_rq} (TASK_ON_RQ_MIGRATING)")
        elif (t.on_rq == TASK_ON_RQ_QUEUED) != t.se.on_rq:
            out.append(
                f"task {pid} has p->on_rq {t.on_rq} but se.on_rq {'set' if t.se.on_rq else 'clear'}"
            )
        if t.state in (TASK_WAKING, TASK_DEAD):
            out.append(f"task {pid} is left {_state(t.state)}")
        elif not t.on_rq:
            if t.state == TASK_RUNNING:
                out.append(f"task {pid} is TASK_RUNNING but on no run queue")
            if pid in running:
                out.append(f"task {pid} is {_state(t.state)} and off its queue but runs on cpu {running[pid]}")
    return out


@invariant(
    "sched.idle_only_when_empty",
    model=MODEL,
    statement="A CPU runs its idle task only while its run queue is empty, or with TIF_NEED_RESCHED set "
    "so that the idle loop schedules at its next pass.",
    source="kernel/sched/core.c check_preempt_curr (a fair task preempts the idle class), resched_curr; "
    "kernel/sched/idle.c do_idle",
)
def idle_only_when_empty(state: SchedState) -> list[str]:
    return [
        f"cpu {cpu} runs its idle task with {rq.cfs.nr_running} runnable and need_resched clear"
        for cpu, rq in enumerate(state.rqs)
        if rq.curr == rq.idle and rq.cfs.nr_running and not state.tasks[rq.curr].need_resched
    ]


@invariant(
    "sched.wake_running_noop",
    model=MODEL,
    statement="try_to_wake_up of a task that is TASK_RUNNING changes nothing.",
    source="kernel/sched/core.c try_to_wake_up (if (!(p->state & state)) goto out)",
    transition=True,
)
def wake_running_noop(before: SchedState, step: Step, after: SchedState) -> list[str]:
    if step.action != "wake_up":
        return []
    pid = step.args[0]
    t = before.tasks.get(pid)
    if t is None or t.state != TASK_RUNNING or after.fingerprint() == before.fingerprint():
        return []
    return [f"waking task {pid}, which was already TASK_RUNNING, changed the scheduler's state"]


def _period(state: SchedState, cpu: int) -> int:
    """__sched_period of the CPU's queue: sched_latency, or min_granularity per task beyond
    sched_nr_latency, scaled by 1 + ilog2(ncpus)."""
    nr = state.rqs[cpu].cfs.nr_running
    factor = fair.get_update_sysctl_factor(len(state.cpus))
    return nr * fair.SCHED_MIN_GRANULARITY * factor if nr > fair.sched_nr_latency else fair.SCHED_LATENCY * factor


def _ideal_runtime(state: SchedState, cpu: int, weight: int) -> Fraction:
    """sched_slice in exact arithmetic: the period times the entity's share of the queue."""
    return Fraction(_period(state, cpu) * weight, state.rqs[cpu].cfs.load)


@invariant(
    "sched.tick_resched",
    model=MODEL,
    statement="After a tick in which the running task's runtime since it was picked exceeded its ideal "
    "slice (with another task queued), TIF_NEED_RESCHED is set or the CPU has already rescheduled.",
    source="kernel/sched/fair.c entity_tick, check_preempt_tick; kernel/sched/core.c resched_curr",
    transition=True,
)
def tick_resched(before: SchedState, step: Step, after: SchedState) -> list[str]:
    if step.action != "tick":
        return []
    cpu = step.args[0]
    rq = after.rqs[cpu]
    if rq.sched_count != before.rqs[cpu].sched_count or rq.curr != before.rqs[cpu].curr:
        return []
    t = after.tasks[rq.curr]
    if t.is_idle or rq.cfs.nr_running < 2 or t.need_resched:
        return []
    ran = t.se.sum_exec_runtime - t.se.prev_sum_exec_runtime
    ideal = _ideal_runtime(after, cpu, t.se.load.weight)
    if ran <= ideal:
        return []
    return [f"task {t.pid} has run {_ns(ran)} of an ideal {_ns(ideal)} on cpu {cpu}, but need_resched is clear"]


@invariant(
    "sched.fork_placement",
    model=MODEL,
    statement="A forked task starts no earlier than its queue's min_vruntime, and no later than the "
    "parent's vruntime or min_vruntime, whichever is later, plus one scheduling period of its virtual time.",
    source="kernel/sched/fair.c task_fork_fair, place_entity (START_DEBIT); kernel/sched/core.c wake_up_new_task",
    transition=True,
)
def fork_placement(before: SchedState, step: Step, after: SchedState) -> list[str]:
    if step.action != "fork_task":
        return []
    cpu = step.args[0]
    children = [pid for pid in after.tasks if pid not in before.tasks]
    parent = before.tasks[before.rqs[cpu].curr]
    out = []
    for pid in children:
        child = after.tasks[pid]
        target = after.rqs[child.cpu].cfs
        ahead = _delta(child.se.vruntime, target.min_vruntime)
        parent_ahead = max(0, _delta(parent.se.vruntime, before.rqs[cpu].cfs.min_vruntime))
        limit = parent_ahead + _period(after, child.cpu) * NICE_0_LOAD / child.se.load.weight + 1
        if not 0 <= ahead <= limit:
            out.append(
                f"forked task {pid} starts {_ns(ahead)} after cpu {child.cpu}'s min_vruntime, outside "
                f"[0, {_ns(limit)}]"
            )
    return out


@invariant(
    "sched.migration_renormalised",
    model=MODEL,
    statement="A task moved to another CPU (by the load balancer, or woken there) keeps its place relative "
    "to min_vruntime: its vruntime minus the new queue's min_vruntime equals what it was against the old "
    "one (a woken task then placed no earlier than half a latency before it).",
    source="kernel/sched/fair.c dequeue_entity, migrate_task_rq_fair, enqueue_entity (vruntime -= / += "
    "min_vruntime), place_entity",
    transition=True,
)
def migration_renormalised(before: SchedState, step: Step, after: SchedState) -> list[str]:
    if step.action not in ("migrate", "wake_up"):
        return []
    pid, dst = step.args
    t0, t1 = before.tasks[pid], after.tasks[pid]
    if t0.cpu == dst or t1.cpu != dst:
        return []
    was = _delta(t0.se.vruntime, before.rqs[t0.cpu].cfs.min_vruntime)
    now = _delta(t1.se.vruntime, after.rqs[dst].cfs.min_vruntime)
    expected = was
    if step.action == "wake_up":  # then place_entity: at most half a latency before min_vruntime
        thresh = fair.SCHED_LATENCY * fair.get_update_sysctl_factor(len(after.cpus)) >> 1
        expected = max(was, -thresh)
    if now == expected:
        return []
    how = "moved" if step.action == "migrate" else "was woken"
    return [
        f"task {pid} {how} from cpu {t0.cpu} to cpu {dst}: it was {_ns(was)} after min_vruntime and is "
        f"now {_ns(now)} after, not {_ns(expected)}"
    ]


@invariant(
    "sched.fairness",
    model=MODEL,
    statement="While a set of tasks stays runnable on one CPU, each task's CPU time stays within "
    "(w/NICE_0_LOAD) * (2 * S0 + G) of its weight share of their total, S0 being their vruntime spread "
    "when the set formed and G the most virtual time one run can add (its ideal slice, at least a "
    "tick, plus two ticks: the one that notices and the one a preempt-disabled section may span; plus "
    "the wakeup granularity a buddy may start past the leftmost), plus "
    "an allowance for calc_delta_fair's fixed point of a part in 10^4 of their total and a microsecond.",
    source="kernel/sched/fair.c pick_next_entity, check_preempt_tick, __sched_period; sched_latency, "
    "sched_min_granularity, TICK_NSEC",
)
def fairness(state: SchedState) -> list[str]:
    out = []
    for cpu, epoch in enumerate(state.epochs):
        members = epoch.members
        if len(members) < 2 or state.rqs[cpu].cfs.load == 0:
            continue
        total_weight = sum(w for _, w, _, _ in members)
        wakeup_gran = fair.SCHED_WAKEUP_GRANULARITY * fair.get_update_sysctl_factor(len(state.cpus))
        base = members[0][3]
        spread0 = max(_delta(v, base) for *_, v in members) - min(_delta(v, base) for *_, v in members)
        # One run: its ideal slice (at least a tick) and two ticks; it may start a wakeup
        # granularity past the leftmost when it runs as a buddy.
        gain = max(
            (max(_ideal_runtime(state, cpu, w), Fraction(TICK_NSEC)) + 2 * TICK_NSEC) * NICE_0_LOAD / w
            for _, w, _, _ in members
        ) + max(Fraction(wakeup_gran * NICE_0_LOAD, w) for _, w, _, _ in members)
        received = {pid: state.tasks[pid].se.sum_exec_runtime - s0 for pid, _, s0, _ in members}
        total = sum(received.values())
        for pid, w, _, _ in members:
            lag = received[pid] - Fraction(total * w, total_weight)
            # calc_delta_fair's fixed point: a part in 10^4 of the time, and a microsecond.
            bound = Fraction(w, NICE_0_LOAD) * (2 * spread0 + gain) + Fraction(total, 10_000) + 1000
            if abs(lag) > bound:
                out.append(
                    f"task {pid} (weight {w}) on cpu {cpu} got {_ns(received[pid])} of {_ns(total)}: "
                    f"{_ns(abs(lag))} {'over' if lag > 0 else 'under'} its share, beyond the bound {_ns(bound)}"
                )
    return out
