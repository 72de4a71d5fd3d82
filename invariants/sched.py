"""Invariants of the CFS scheduler (model "sched").

vruntimes are u64 and compared as the kernel compares them, by (s64)(a - b). The rules that
need history compare the states before and after a step; fairness reads the checker's epoch
record the model keeps (model/sched/model.py).

With task groups (group scheduling), a cfs_rq is a CPU's root one or a group's on a CPU, and an
entity a task or a group entity: the rules then hold per cfs_rq, and rq_consistency also checks
the group hierarchy (each group entity queued exactly while its cfs_rq has entities, the
running chain, the group weights within [MIN_SHARES, tg->shares]).
"""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import cast

from invariants import goal, invariant
from model.contract import Step
from model.hw.cpu import TICK_NSEC
from model.sched import fair
from model.sched.model import Epoch, SchedState, entity_order
from model.sched.sched import (
    MAX_SHARES,
    MIN_SHARES,
    NICE_0_LOAD,
    ROOT_TASK_GROUP,
    STATE_NAMES,
    TASK_DEAD,
    TASK_NORMAL,
    TASK_ON_RQ_QUEUED,
    TASK_RUNNING,
    TASK_WAKING,
    CfsKey,
    Entity,
    SchedEntity,
    TgSe,
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


def _ename(k: Entity) -> str:
    return f"task {k}" if isinstance(k, int) else f"group {k.tg}'s entity on cpu {k.cpu}"


def _qname(q: CfsKey) -> str:
    return f"cpu {q}" if isinstance(q, int) else f"group {q.tg}'s cfs_rq on cpu {q.cpu}"


def _queues(state: SchedState) -> list[CfsKey]:
    """Every cfs_rq: each CPU's root one, then each group's."""
    return [*range(len(state.rqs)), *sorted(state.tg_cfs)]


def _pids(keys: tuple[Entity | None, ...]) -> tuple[int, ...]:
    """Entities known to be tasks (the root task group only)."""
    return cast("tuple[int, ...]", keys)


def _se(state: SchedState, k: Entity) -> SchedEntity | None:
    if isinstance(k, int):
        t = state.tasks.get(k)
        return None if t is None else t.se
    return state.tg_se.get(k)


@invariant(
    "sched.min_vruntime_monotonic",
    model=MODEL,
    statement="No cfs_rq's min_vruntime ever moves backwards (compared as (s64)(new - old)).",
    source="kernel/sched/fair.c update_min_vruntime (max_vruntime)",
    transition=True,
)
def min_vruntime_monotonic(before: SchedState, step: Step, after: SchedState) -> list[str]:
    out = [
        f"cpu {cpu}'s min_vruntime went back by {_ns(-_delta(a.cfs.min_vruntime, b.cfs.min_vruntime))}"
        for cpu, (b, a) in enumerate(zip(before.rqs, after.rqs, strict=True))
        if _delta(a.cfs.min_vruntime, b.cfs.min_vruntime) < 0
    ]
    for q in sorted(set(before.tg_cfs) & set(after.tg_cfs)):
        back = _delta(after.tg_cfs[q].min_vruntime, before.tg_cfs[q].min_vruntime)
        if back < 0:
            out.append(f"{_qname(q)}'s min_vruntime went back by {_ns(-back)}")
    return out


@invariant(
    "sched.vruntime_accounting",
    model=MODEL,
    statement="A task queued before and after a step (same CPU, same weight) gains exactly calc_delta_fair "
    "of the runtime it was charged in vruntime: the runtime scaled by NICE_0_LOAD / its weight, and "
    "nothing without runtime. So does a group entity queued across a tick (same weight).",
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
        if fair.task_group_of(before, pid) != fair.task_group_of(after, pid):
            continue  # moved to another group's cfs_rq: renormalised (migration_renormalised)
        out += _charged(_ename(pid), was.se, t.se)
    if step.action == "tick":
        # A group entity is also dequeued and enqueued (and placed) when a task moves
        # between its groups: only a tick, which queues nothing, is pure charging.
        for k in sorted(set(before.tg_se) & set(after.tg_se)):
            se0, se1 = before.tg_se[k], after.tg_se[k]
            if se0.on_rq and se1.on_rq and se0.load == se1.load:
                # A group weight is any in [MIN_SHARES, MAX_SHARES], with its inverse
                # 2^32 / w computed by __update_inv_weight: truncating that costs up to
                # w / 2^32 of the result, and __calc_delta's renormalised fact 2^-31.
                error = max(CALC_DELTA_ERROR, Fraction(se1.load.weight, 1 << 32) + Fraction(1, 1 << 31))
                out += _charged(_ename(k), se0, se1, error)
    return out


def _charged(name: str, was: SchedEntity, se: SchedEntity, error: Fraction = CALC_DELTA_ERROR) -> list[str]:
    charged = se.sum_exec_runtime - was.sum_exec_runtime
    gained = _delta(se.vruntime, was.vruntime)
    expected = Fraction(charged * NICE_0_LOAD, se.load.weight)
    # A step charges one update_curr (the clock moves only on a tick), and z3 proves that
    # calc_delta_fair lies within a part in 2^26 of the exact ratio, less at most 1 ns, for
    # every nice level (sched.calc_delta_fair_error, invariants/sched_proofs.py).
    if expected * (1 - error) - 1 <= gained <= expected * (1 + error):
        return []
    shown = (_ns(gained), _ns(expected))
    if shown[0] == shown[1]:
        shown = (f"{gained} ns", f"{float(expected):.2f} ns")
    return [f"{name} (weight {se.load.weight}) ran {_ns(charged)} but its vruntime grew by {shown[0]}, not {shown[1]}"]


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
            if not isinstance(pid, int):
                continue  # a group entity: below
            t0, t1 = before.tasks[pid], after.tasks[pid]
            if t0.se.load == t1.se.load and t0.se.vruntime != t1.se.vruntime:
                out.append(
                    f"task {pid} waited in cpu {cpu}'s timeline but its vruntime moved by "
                    f"{_ns(_delta(t1.se.vruntime, t0.se.vruntime))}"
                )
    if not after.has_groups:
        return out
    for q in _queues(after):
        if not isinstance(q, int) and q not in before.tg_cfs:
            continue
        for k in sorted(set(fair.cfs_of(before, q).timeline) & set(fair.cfs_of(after, q).timeline), key=entity_order):
            # a group entity waits through a tick; another step may dequeue it and place it
            # again (a task moving between its groups)
            if (isinstance(q, int) and isinstance(k, int)) or (not isinstance(k, int) and step.action != "tick"):
                continue
            se0, se1 = _se(before, k), _se(after, k)
            if se0 is not None and se1 is not None and se0.load == se1.load and se0.vruntime != se1.vruntime:
                out.append(
                    f"{_ename(k)} waited in {_qname(q)}'s timeline but its vruntime moved by "
                    f"{_ns(_delta(se1.vruntime, se0.vruntime))}"
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
    if state.has_groups:
        return _rq_consistency_groups(state)
    out = []
    seen: Counter[int] = Counter()
    for cpu, rq in enumerate(state.rqs):
        cfs = rq.cfs
        timeline = _pids(cfs.timeline)  # the root task group only: every entity is a task
        where = f"cpu {cpu}"
        queued = list(timeline)
        seen.update(timeline)
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
        for left, right in zip(timeline, timeline[1:], strict=False):
            if fair.entity_before(state.tasks[right].se, state.tasks[left].se):
                out.append(f"{where}'s timeline has task {left} before task {right}, which has the smaller vruntime")
        for pid in timeline:
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
            running = state.tasks.get(_pids((rq.cfs.curr,))[0]) if rq.cfs.curr is not None else None
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


def _rq_consistency_groups(state: SchedState) -> list[str]:
    """rq_consistency with task groups: the same rules per cfs_rq, with rq->nr_running counting
    the tasks queued at every level, and the group hierarchy: each task's and group's queue
    exists; a group entity is queued exactly while its own cfs_rq has entities, with a weight
    in [MIN_SHARES, tg->shares] and shares in [MIN_SHARES, MAX_SHARES]; the running task's
    entity and each ancestor is its cfs_rq's curr, and no other cfs_rq of the CPU has one."""
    out = []
    seen: Counter[Entity] = Counter()
    for tg, group in sorted(state.task_groups.items()):
        if tg == ROOT_TASK_GROUP:
            continue
        if group.parent not in state.task_groups:
            out.append(f"task group {tg}'s parent {group.parent} does not exist")
        if not MIN_SHARES <= group.shares <= MAX_SHARES:
            out.append(f"task group {tg}'s shares are {group.shares}, outside [{MIN_SHARES}, {MAX_SHARES}]")
        for cpu in range(len(state.rqs)):
            if TgSe(tg, cpu) not in state.tg_se or TgSe(tg, cpu) not in state.tg_cfs:
                out.append(f"task group {tg} has no entity or cfs_rq on cpu {cpu}")
    for pid, tg in sorted(state.sched_task_group.items()):
        if pid not in state.tasks or tg not in state.task_groups:
            out.append(f"task {pid} is recorded in task group {tg}, but one of them does not exist")
    if out:
        return out
    for q in _queues(state):
        cfs = fair.cfs_of(state, q)
        where = _qname(q)
        seen.update(cfs.timeline)
        queued = list(cfs.timeline)
        missing = [k for k in cfs.timeline if _se(state, k) is None]
        if cfs.curr is not None:
            curr_se = _se(state, cfs.curr)
            if curr_se is None:
                missing.append(cfs.curr)
            elif curr_se.on_rq:
                queued.append(cfs.curr)
                seen[cfs.curr] += 1
            if cfs.curr in cfs.timeline:
                out.append(f"{where}'s curr {_ename(cfs.curr)} is also in its timeline")
        if missing:
            out.append(f"{where} holds {', '.join(map(_ename, missing))}, which do not exist")
            continue
        if cfs.nr_running != len(queued):
            out.append(f"{where} counts {cfs.nr_running} queued entities but has {len(queued)}")
        weight = sum(fair.se_of(state, k).load.weight for k in queued)
        if cfs.load != weight:
            out.append(f"{where}'s load.weight is {cfs.load} but its queued entities weigh {weight}")
        for left, right in zip(cfs.timeline, cfs.timeline[1:], strict=False):
            if fair.entity_before(fair.se_of(state, right), fair.se_of(state, left)):
                out.append(f"{where}'s timeline has {_ename(left)} before {_ename(right)}, which has the smaller vruntime")
        for k in queued:
            if fair.cfs_rq_of(state, k) != q:
                out.append(f"{_ename(k)} is queued on {where} but belongs to {_qname(fair.cfs_rq_of(state, k))}")
            if isinstance(k, int) and state.tasks[k].on_rq != TASK_ON_RQ_QUEUED:
                out.append(f"task {k} is queued on {where} but its p->on_rq is {state.tasks[k].on_rq}")
            if not fair.se_of(state, k).on_rq:
                out.append(f"{_ename(k)} is in {where}'s timeline but its se.on_rq is clear")
        for name, buddy in (("next", cfs.next), ("last", cfs.last)):
            if buddy is not None and buddy not in queued:
                out.append(f"{where}'s cfs_rq->{name} buddy is {_ename(buddy)}, which is not queued there")
    out += [f"{_ename(k)} is queued {n} times" for k, n in sorted(seen.items(), key=lambda kn: entity_order(kn[0])) if n > 1]
    for k, se in sorted(state.tg_se.items()):
        my_q = state.tg_cfs[k]
        if se.on_rq != bool(my_q.nr_running):
            out.append(
                f"{_ename(k)} is {'queued' if se.on_rq else 'not queued'} but its cfs_rq has {my_q.nr_running} entities"
            )
        shares = state.task_groups[k.tg].shares
        if not MIN_SHARES <= se.load.weight <= shares:
            out.append(f"{_ename(k)} weighs {se.load.weight}, outside [{MIN_SHARES}, {shares}] (its group's shares)")
    for cpu, rq in enumerate(state.rqs):
        curr = state.tasks.get(rq.curr)
        if curr is None:
            out.append(f"cpu {cpu}'s rq->curr is task {rq.curr}, which does not exist")
            continue
        chain: list[Entity] = []
        if not curr.is_idle:
            if curr.cpu != cpu:
                out.append(f"cpu {cpu} runs task {curr.pid}, which belongs to cpu {curr.cpu}")
                continue
            chain = fair.for_each_sched_entity(state, curr.pid)
        for k in chain:
            q = fair.cfs_rq_of(state, k)
            if fair.cfs_of(state, q).curr != k:
                what = fair.cfs_of(state, q).curr
                out.append(
                    f"cpu {cpu} runs task {curr.pid} but {_qname(q)}'s curr is "
                    f"{'NULL' if what is None else _ename(what)}, not {_ename(k)}"
                )
        on_chain = {fair.cfs_rq_of(state, k) for k in chain}
        for q in _queues(state):
            if fair.cpu_of(q) == cpu and q not in on_chain and fair.cfs_of(state, q).curr is not None:
                curr_k = fair.cfs_of(state, q).curr
                assert curr_k is not None
                out.append(f"cpu {cpu} runs {_ename(rq.curr)} but {_qname(q)}'s curr is {_ename(curr_k)}")
        tasks = [
            t.pid for t in state.tasks.values() if not t.is_idle and t.cpu == cpu and t.on_rq == TASK_ON_RQ_QUEUED
        ]
        if rq.nr_running != len(tasks):
            out.append(f"cpu {cpu}'s rq->nr_running is {rq.nr_running} but {len(tasks)} tasks are queued there")
    for pid, t in sorted(state.tasks.items()):
        if t.is_idle or t.on_rq != TASK_ON_RQ_QUEUED or not t.se.on_rq or t.cpu >= len(state.rqs):
            continue
        q = fair.task_cfs_rq(state, pid)
        cfs = fair.cfs_of(state, q)
        if pid not in cfs.timeline and cfs.curr != pid:
            out.append(f"task {pid} is queued on {_qname(q)} but is neither in its timeline nor running")
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


@invariant(
    "sched.wake_up_result",
    model=MODEL,
    statement="try_to_wake_up returns whether it woke the task: true exactly when the task was in a "
    "TASK_NORMAL sleep, which it leaves TASK_RUNNING.",
    source="kernel/sched/core.c try_to_wake_up (success = 1 after ttwu_state_match)",
    transition=True,
)
def wake_up_result(before: SchedState, step: Step, after: SchedState) -> list[str]:
    if step.action != "wake_up":
        return []
    pid = step.args[0]
    t, woken = before.tasks.get(pid), after.tasks.get(pid)
    asleep = t is not None and bool(t.state & TASK_NORMAL)
    if step.result is not asleep:
        was = STATE_NAMES.get(t.state, t.state) if t is not None else "no task"
        return [f"try_to_wake_up of task {pid} returned {step.result!r}, but the task was {was}"]
    if asleep and (woken is None or woken.state != TASK_RUNNING):
        left = STATE_NAMES.get(woken.state, woken.state) if woken is not None else "gone"
        return [f"try_to_wake_up of task {pid} returned True, but left the task {left}"]
    return []


def _period(state: SchedState, cpu: CfsKey) -> int:
    """__sched_period of the CPU's queue (or of a group cfs_rq): sched_latency, or
    min_granularity per task beyond sched_nr_latency, scaled by 1 + ilog2(ncpus)."""
    return _period_of(state, fair.cfs_of(state, cpu).nr_running)


def _period_of(state: SchedState, nr: int) -> int:
    factor = fair.get_update_sysctl_factor(len(state.cpus))
    return nr * fair.SCHED_MIN_GRANULARITY * factor if nr > fair.sched_nr_latency else fair.SCHED_LATENCY * factor


def _ideal_runtime(state: SchedState, cpu: CfsKey, weight: int) -> Fraction:
    """sched_slice in exact arithmetic: the period times the entity's share of the queue."""
    return Fraction(_period(state, cpu) * weight, fair.cfs_of(state, cpu).load)


def _hier_ideal_runtime(state: SchedState, k: Entity) -> Fraction:
    """5.4's hierarchical sched_slice of a queued entity in exact arithmetic: the period of its
    cfs_rq times its share there and each ancestor's share of the cfs_rq above."""
    q = fair.cfs_rq_of(state, k)
    ideal = Fraction(_period(state, q))
    for e in fair.for_each_sched_entity(state, k):
        ideal *= Fraction(fair.se_of(state, e).load.weight, fair.cfs_of(state, fair.cfs_rq_of(state, e)).load)
    return ideal


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
    if after.has_groups:
        return _tick_resched_groups(before, cpu, after)
    t = after.tasks[rq.curr]
    if t.is_idle or rq.cfs.nr_running < 2 or t.need_resched:
        return []
    ran = t.se.sum_exec_runtime - t.se.prev_sum_exec_runtime
    ideal = _ideal_runtime(after, cpu, t.se.load.weight)
    if ran <= ideal:
        return []
    return [f"task {t.pid} has run {_ns(ran)} of an ideal {_ns(ideal)} on cpu {cpu}, but need_resched is clear"]


def _tick_resched_groups(before: SchedState, cpu: int, after: SchedState) -> list[str]:
    """tick_resched at every level of the running task: each entity of its chain whose cfs_rq
    has another entity and which has run past its (hierarchical) ideal slice. A level whose
    chain was reweighted in the tick (update_cfs_group) is not judged."""
    t = after.tasks[after.rqs[cpu].curr]
    if t.is_idle or t.need_resched:
        return []
    out = []
    chain = fair.for_each_sched_entity(after, t.pid)
    for i, k in enumerate(chain):
        q = fair.cfs_rq_of(after, k)
        if fair.cfs_of(after, q).nr_running < 2:
            continue
        if any(_weight(before, e) != _weight(after, e) for e in chain[i:]):
            continue
        se = fair.se_of(after, k)
        ran = se.sum_exec_runtime - se.prev_sum_exec_runtime
        ideal = _hier_ideal_runtime(after, k)
        if ran > ideal:
            out.append(
                f"{_ename(k)} has run {_ns(ran)} of an ideal {_ns(ideal)} on {_qname(q)}, but need_resched is clear"
            )
    return out


def _weight(state: SchedState, k: Entity) -> int | None:
    se = _se(state, k)
    return None if se is None else se.load.weight


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
        # the child's group cfs_rq (the root's without groups) on its CPU, and the parent's
        # on the forking CPU, which placed it
        leaf = fair.task_cfs_rq(after, pid)
        target = fair.cfs_of(after, leaf)
        ahead = _delta(child.se.vruntime, target.min_vruntime)
        origin = fair.cfs_of(before, fair.tg_cfs_rq(fair.task_group_of(before, parent.pid), cpu))
        parent_ahead = max(0, _delta(parent.se.vruntime, origin.min_vruntime))
        period = _period(after, leaf)
        if after.has_groups:
            period = max(period, _period_of(after, origin.nr_running + 1))
        limit = parent_ahead + period * NICE_0_LOAD / child.se.load.weight + 1
        if not 0 <= ahead <= limit:
            out.append(
                f"forked task {pid} starts {_ns(ahead)} after {_qname(leaf)}'s min_vruntime, outside "
                f"[0, {_ns(limit)}]"
            )
    return out


@invariant(
    "sched.migration_renormalised",
    model=MODEL,
    statement="A task moved to another CPU (by the load balancer, or woken there) or to another task group "
    "keeps its place relative to min_vruntime: its vruntime minus the new queue's min_vruntime equals what it "
    "was against the old one (a woken task, or a sleeping one moved to another group, then placed no "
    "earlier than half a latency before it).",
    source="kernel/sched/fair.c dequeue_entity, migrate_task_rq_fair, enqueue_entity (vruntime -= / += "
    "min_vruntime), place_entity; task_move_group_fair (detach_task_cfs_rq, attach_task_cfs_rq)",
    transition=True,
)
def migration_renormalised(before: SchedState, step: Step, after: SchedState) -> list[str]:
    out = _group_moves(before, after) if after.has_groups else []
    if step.action not in ("migrate", "wake_up"):
        return out
    pid, dst = step.args
    t0, t1 = before.tasks[pid], after.tasks[pid]
    if t0.cpu == dst or t1.cpu != dst:
        return out
    src_q = fair.tg_cfs_rq(fair.task_group_of(before, pid), t0.cpu)
    dst_q = fair.tg_cfs_rq(fair.task_group_of(after, pid), dst)
    was = _delta(t0.se.vruntime, fair.cfs_of(before, src_q).min_vruntime)
    now = _delta(t1.se.vruntime, fair.cfs_of(after, dst_q).min_vruntime)
    expected = was
    if step.action == "wake_up":  # then place_entity: at most half a latency before min_vruntime
        expected = max(was, -_half_latency(after))
    if now == expected:
        return out
    how = "moved" if step.action == "migrate" else "was woken"
    return out + [
        f"task {pid} {how} from cpu {t0.cpu} to cpu {dst}: it was {_ns(was)} after min_vruntime and is "
        f"now {_ns(now)} after, not {_ns(expected)}"
    ]


def _half_latency(state: SchedState) -> int:
    return fair.SCHED_LATENCY * fair.get_update_sysctl_factor(len(state.cpus)) >> 1


def _group_moves(before: SchedState, after: SchedState) -> list[str]:
    """Tasks that changed task group (sched_move_task) on one CPU: a queued one keeps its
    vruntime relative to min_vruntime; a sleeping one is first placed on its old cfs_rq (as if
    woken), then keeps that."""
    out = []
    for pid in sorted(before.sched_task_group.keys() | after.sched_task_group.keys()):
        t0, t1 = before.tasks.get(pid), after.tasks.get(pid)
        tg0, tg1 = fair.task_group_of(before, pid), fair.task_group_of(after, pid)
        if t0 is None or t1 is None or tg0 == tg1 or t0.cpu != t1.cpu or (t0.on_rq != 0) != (t1.on_rq != 0):
            continue
        if tg0 not in before.task_groups or tg1 not in after.task_groups:
            continue
        was = _delta(t0.se.vruntime, fair.cfs_of(before, fair.tg_cfs_rq(tg0, t0.cpu)).min_vruntime)
        now = _delta(t1.se.vruntime, fair.cfs_of(after, fair.tg_cfs_rq(tg1, t1.cpu)).min_vruntime)
        expected = was if t0.on_rq else max(was, -_half_latency(after))
        if now != expected:
            out.append(
                f"task {pid} moved from task group {tg0} to {tg1}: it was {_ns(was)} after min_vruntime and is "
                f"now {_ns(now)} after, not {_ns(expected)}"
            )
    return out


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
    epochs: list[tuple[CfsKey, Epoch]] = list(enumerate(state.epochs))
    epochs += sorted(state.group_epochs.items())
    for q, epoch in epochs:
        members = epoch.members
        if len(members) < 2 or not isinstance(q, int) and q not in state.tg_cfs or fair.cfs_of(state, q).load == 0:
            continue
        total_weight = sum(w for _, w, _, _ in members)
        wakeup_gran = fair.SCHED_WAKEUP_GRANULARITY * fair.get_update_sysctl_factor(len(state.cpus))
        base = members[0][3]
        spread0 = max(_delta(v, base) for *_, v in members) - min(_delta(v, base) for *_, v in members)
        # One run: its ideal slice (at least a tick) and two ticks; it may start a wakeup
        # granularity past the leftmost when it runs as a buddy.
        gain = max(
            (max(_ideal_runtime(state, q, w), Fraction(TICK_NSEC)) + 2 * TICK_NSEC) * NICE_0_LOAD / w
            for _, w, _, _ in members
        ) + max(Fraction(wakeup_gran * NICE_0_LOAD, w) for _, w, _, _ in members)
        received = {k: _runtime(state, k) - s0 for k, _, s0, _ in members}
        total = sum(received.values())
        for k, w, _, _ in members:
            lag = received[k] - Fraction(total * w, total_weight)
            # calc_delta_fair's fixed point: a part in 10^4 of the time, and a microsecond.
            bound = Fraction(w, NICE_0_LOAD) * (2 * spread0 + gain) + Fraction(total, 10_000) + 1000
            if abs(lag) > bound:
                out.append(
                    f"{_ename(k)} (weight {w}) on {_qname(q)} got {_ns(received[k])} of {_ns(total)}: "
                    f"{_ns(abs(lag))} {'over' if lag > 0 else 'under'} its share, beyond the bound {_ns(bound)}"
                )
    return out


def _runtime(state: SchedState, k: Entity) -> int:
    if isinstance(k, int):
        return state.tasks[k].se.sum_exec_runtime
    se = _se(state, k)
    assert se is not None, f"{_ename(k)} is in a fairness epoch but does not exist"
    return se.sum_exec_runtime


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.


@goal(
    "sched.wakeup_preemption",
    model=MODEL,
    statement="A woken task is more than a wakeup granularity behind the running task, so "
    "check_preempt_wakeup sets TIF_NEED_RESCHED on the running task and makes the wakee the next buddy.",
    transition=True,
)
def wakeup_preemption(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "wake_up":
        return False
    pid = step.args[0]
    cpu = after.tasks[pid].cpu if pid in after.tasks else step.args[1]
    curr = before.rqs[cpu].curr
    t0, t1 = before.tasks.get(curr), after.tasks.get(curr)
    return (
        curr >= 0
        and curr != pid
        and t0 is not None
        and t1 is not None
        and not t0.need_resched
        and t1.need_resched
        and after.rqs[cpu].cfs.next == pid
    )


@goal(
    "sched.tick_preemption",
    model=MODEL,
    statement="A tick finds the running task past its ideal slice with another task queued, and "
    "check_preempt_tick reschedules it.",
    transition=True,
)
def tick_preemption(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "tick" or after.has_groups:
        return False
    cpu = step.args[0]
    pid = before.rqs[cpu].curr
    t0, t1 = before.tasks.get(pid), after.tasks.get(pid)
    if pid < 0 or t0 is None or t1 is None or t0.need_resched:
        return False
    if after.rqs[cpu].curr == pid and not t1.need_resched:
        return False
    load = after.rqs[cpu].cfs.load
    if not load or t1.on_rq != TASK_ON_RQ_QUEUED:
        return False
    ran = t1.se.sum_exec_runtime - t1.se.prev_sum_exec_runtime
    return ran > _ideal_runtime(after, cpu, t1.se.load.weight)


@goal(
    "sched.load_balance_migration",
    model=MODEL,
    statement="The load balancer moves a queued task to another CPU (detach_task, attach_task).",
    transition=True,
    engines=("stateful",),  # the small config has one CPU
)
def load_balance_migration(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "migrate":
        return False
    pid = step.args[0]
    return pid in before.tasks and pid in after.tasks and after.tasks[pid].cpu != before.tasks[pid].cpu


@goal(
    "sched.wakeup_migration",
    model=MODEL,
    statement="try_to_wake_up places a sleeping task on another CPU than it slept on "
    "(migrate_task_rq_fair, ENQUEUE_MIGRATED).",
    transition=True,
    engines=("stateful",),  # the small config has one CPU
)
def wakeup_migration(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "wake_up":
        return False
    pid = step.args[0]
    t0, t1 = before.tasks.get(pid), after.tasks.get(pid)
    return t0 is not None and t1 is not None and t1.cpu != t0.cpu and t1.on_rq == TASK_ON_RQ_QUEUED


@goal(
    "sched.fork",
    model=MODEL,
    statement="A running task forks a child, which wake_up_new_task queues runnable.",
    transition=True,
)
def fork(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "fork_task":
        return False
    return any(
        pid not in before.tasks and t.state == TASK_RUNNING and t.on_rq == TASK_ON_RQ_QUEUED
        for pid, t in after.tasks.items()
    )


@goal(
    "sched.exit",
    model=MODEL,
    statement="A task exits: do_task_dead's last __schedule switches away from it and it is reaped.",
    transition=True,
)
def exit_task(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "exit_task":
        return False
    pid = before.rqs[step.args[0]].curr
    return pid >= 0 and pid not in after.tasks


@goal(
    "sched.min_vruntime_wraps",
    model=MODEL,
    statement="A cfs_rq's min_vruntime crosses 2^64 (it starts at -2^20) and still moves forward as "
    "(s64)(new - old).",
    transition=True,
)
def min_vruntime_wraps(before: SchedState, step: Step, after: SchedState) -> bool:
    for b, a in zip(before.rqs, after.rqs, strict=True):
        old, new = b.cfs.min_vruntime, a.cfs.min_vruntime
        if new < old and _delta(new, old) > 0:
            return True
    return False


@goal(
    "sched.nice_reweights_queued",
    model=MODEL,
    statement="set_user_nice changes the weight of a task waiting on a run queue: it leaves the timeline "
    "and comes back at its new weight, and the cfs_rq's load changes by the difference.",
    transition=True,
)
def nice_reweights_queued(before: SchedState, step: Step, after: SchedState) -> bool:
    if step.action != "set_nice" or after.has_groups:
        return False
    pid = step.args[0]
    t0, t1 = before.tasks.get(pid), after.tasks.get(pid)
    if t0 is None or t1 is None or t0.on_rq != TASK_ON_RQ_QUEUED or before.rqs[t0.cpu].curr == pid:
        return False
    w0, w1 = t0.se.load.weight, t1.se.load.weight
    cpu = t0.cpu
    return w0 != w1 and after.rqs[cpu].cfs.load - before.rqs[cpu].cfs.load == w1 - w0


@goal(
    "sched.next_buddy_picked",
    model=MODEL,
    statement="pick_next_entity runs the next buddy (the wakee that preempted) although another queued "
    "task has a smaller vruntime.",
    transition=True,
)
def next_buddy_picked(before: SchedState, step: Step, after: SchedState) -> bool:
    for cpu, (b, a) in enumerate(zip(before.rqs, after.rqs, strict=True)):
        buddy = b.cfs.next
        if buddy is None or a.curr != buddy or b.curr == buddy or not isinstance(buddy, int):
            continue
        picked = after.tasks.get(buddy)
        if picked is None or not a.cfs.timeline:
            continue
        left = after.tasks.get(a.cfs.timeline[0]) if isinstance(a.cfs.timeline[0], int) else None
        if left is not None and left.cpu == cpu and _delta(left.se.vruntime, picked.se.vruntime) < 0:
            return True
    return False
