"""Mutants of the CFS scheduler: each replaces one small helper of model.sched.fair or
model.sched.core with a plausible kernel bug and names the invariant that must catch it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkers.mutants import mutant, sched_prove  # noqa: F401  (registers the prove mutants)
from model.sched import core, fair
from model.sched.sched import NICE_0_LOAD, TASK_NORMAL, TASK_WAKING, Entity, SchedEntity, Task

if TYPE_CHECKING:
    from model.sched.model import SchedState

FAIR = "model.sched.fair"
CORE = "model.sched.core"

_update_curr = fair.update_curr


def calc_delta_fair_inverted(delta: int, se: SchedEntity) -> int:
    """update_curr weighs runtime by weight / NICE_0_LOAD, not NICE_0_LOAD / weight: heavy tasks age faster."""
    return delta * se.load.weight // NICE_0_LOAD


def update_min_vruntime_no_max(state: SchedState, cpu: int) -> None:
    """update_min_vruntime drops its max_vruntime(): min_vruntime follows a placed sleeper backwards."""
    cfs = fair.cfs_of(state, cpu)
    candidates = [fair.se_of(state, pid).vruntime for pid in cfs.timeline[:1]]
    if cfs.curr is not None and fair.se_of(state, cfs.curr).on_rq:
        candidates.append(fair.se_of(state, cfs.curr).vruntime)
    if candidates:
        low = candidates[0]
        for v in candidates[1:]:
            low = fair.min_vruntime(low, v)
        fair.set_cfs(state, cpu, min_vruntime=low)


def fork_renormalise_forgotten(state: SchedState, cpu: int, child: int) -> None:
    """task_fork_fair forgets se->vruntime -= cfs_rq->min_vruntime: the child lands min_vruntime too far right."""


def renormalise_dequeued_forgotten(state: SchedState, cpu: int, pid: int) -> None:
    """dequeue_entity forgets se->vruntime -= min_vruntime: a migrated task keeps its old queue's clock."""


def resched_curr_inverted(state: SchedState, cpu: int) -> None:
    """resched_curr's early return is inverted: it sets TIF_NEED_RESCHED only if it is already set."""
    curr = state.tasks[state.rqs[cpu].curr]
    if not curr.need_resched:
        return
    core.set_task(state, curr.pid, need_resched=True)


def try_to_wake_up_as_excerpted(state: SchedState, pid: int, target: int, wake_state: int = TASK_NORMAL) -> bool:
    """try_to_wake_up as the seed excerpt has it: no state check, no on_rq path, so a running task is enqueued again."""
    core.set_task(state, pid, state=TASK_WAKING)
    core.activate_task(state, target, pid, fair.ENQUEUE_WAKEUP)
    core.ttwu_do_wakeup(state, target, pid)
    return True


def ttwu_state_match_or(p: Task, wake_state: int) -> bool:
    """try_to_wake_up tests p->state | state for p->state & state: it wakes a task that is already running."""
    return bool(p.state | wake_state)


def update_curr_charges_leftmost(state: SchedState, cpu: int) -> None:
    """update_curr charges the leftmost waiting entity too: a task ages while it waits."""
    leftmost = fair.pick_first_entity(state, cpu)
    curr = fair.cfs_of(state, cpu).curr
    if leftmost is not None and curr is not None:
        delta = fair.now(state, cpu) - fair.se_of(state, curr).exec_start
        if delta > 0:
            se = fair.se_of(state, leftmost)
            fair.set_se(state, leftmost, vruntime=fair.u64(se.vruntime + fair.calc_delta_fair(delta, se)))
    _update_curr(state, cpu)


def deactivate_task_keeps_on_rq(state: SchedState, cpu: int, pid: int, flags: int, on_rq: int = 0) -> None:
    """deactivate_task dequeues the task but leaves p->on_rq = TASK_ON_RQ_QUEUED."""
    core.dequeue_task(state, cpu, pid, flags)


def pick_next_entity_rightmost(state: SchedState, cpu: int) -> Entity | None:
    """pick_next_entity takes the rightmost entity (rb_last for rb_first): the task furthest ahead runs on."""
    timeline = fair.cfs_of(state, cpu).timeline
    return timeline[-1] if timeline else None


def check_preempt_curr_fair_only(state: SchedState, cpu: int, p: Task) -> None:
    """check_preempt_curr forgets that any fair task preempts the idle class: a wake-up onto an idle CPU waits."""
    curr = state.tasks[state.rqs[cpu].curr]
    if not curr.is_idle:
        fair.check_preempt_wakeup(state, cpu, p)


_try_to_wake_up = core.try_to_wake_up


def try_to_wake_up_reports_failure(state: SchedState, pid: int, target: int, wake_state: int = TASK_NORMAL) -> bool:
    """try_to_wake_up wakes the task but returns 0: an exclusive __wake_up_common, counting its wake-ups, wakes one more."""
    _try_to_wake_up(state, pid, target, wake_state)
    return False


def _mutant(name: str, breaks: str, engine: str, module: str, helper: str, fn: Callable[..., Any]) -> None:
    mutant(f"sched.{name}", model="sched", breaks=f"sched.{breaks}", engine=engine, patches=((module, helper, fn),))


_mutant("update_curr_weight_inverted", "vruntime_accounting", "explore", FAIR, "calc_delta_fair", calc_delta_fair_inverted)
_mutant("min_vruntime_no_max", "min_vruntime_monotonic", "explore", FAIR, "update_min_vruntime", update_min_vruntime_no_max)
_mutant("fork_no_renormalise", "fork_placement", "explore", FAIR, "fork_renormalise", fork_renormalise_forgotten)
_mutant("migration_no_renormalise", "migration_renormalised", "stateful", FAIR, "renormalise_dequeued",
        renormalise_dequeued_forgotten)
_mutant("resched_curr_inverted", "tick_resched", "explore", CORE, "resched_curr", resched_curr_inverted)
_mutant("ttwu_reports_no_wakeup", "wake_up_result", "explore", CORE, "try_to_wake_up", try_to_wake_up_reports_failure)
_mutant("ttwu_no_state_check", "rq_consistency", "explore", CORE, "try_to_wake_up", try_to_wake_up_as_excerpted)
_mutant("ttwu_state_match_or", "wake_running_noop", "explore", CORE, "ttwu_state_match", ttwu_state_match_or)
_mutant("update_curr_charges_leftmost", "queued_vruntime_stable", "explore", FAIR, "update_curr",
        update_curr_charges_leftmost)
_mutant("deactivate_keeps_on_rq", "state_coherence", "explore", CORE, "deactivate_task", deactivate_task_keeps_on_rq)
_mutant("pick_next_entity_rightmost", "fairness", "stateful", FAIR, "pick_next_entity", pick_next_entity_rightmost)
_mutant("check_preempt_idle_forgotten", "idle_only_when_empty", "explore", CORE, "check_preempt_curr",
        check_preempt_curr_fair_only)
