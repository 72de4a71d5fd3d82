"""The core scheduler (kernel/sched/core.c, Linux 4.x-5.x) for the fair and idle classes.

schedule and __schedule with pick_next_task and context_switch; try_to_wake_up with its
state check and the on_rq (ttwu_remote) path; wake_up_new_task; scheduler_tick; resched_curr;
set_user_nice; and moving a queued task between CPUs as the load balancer's detach_task and
attach_task do. Everything runs under the rq lock with interrupts off, so each function is
one atomic step.

Decisions where the model is coarser than the kernel:
- select_task_rq is the caller's choice: wake_up and fork name the CPU it returns (any CPU
  the task may run on), which covers wake_affine, select_idle_sibling and find_idlest_group.
- A remote resched_curr sets TIF_NEED_RESCHED; the IPI's effect is the target CPU's next
  preemption point (its next tick, preempt_enable, or the preempt_point action).
- CONFIG_PREEMPT: an interrupt returning to a task with preempt_count 0 preempts it.
- Signals are not modelled: a task in TASK_INTERRUPTIBLE sleeps until woken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model.hw.cpu import TICK_NSEC
from model.sched import fair
from model.sched.sched import (
    DEQUEUE_MOVE,
    DEQUEUE_SAVE,
    DEQUEUE_SLEEP,
    ENQUEUE_MIGRATED,
    ENQUEUE_MOVE,
    ENQUEUE_RESTORE,
    ENQUEUE_WAKEUP,
    INIT_MIN_VRUNTIME,
    NICE_0_LOAD,
    NICE_TO_PRIO,
    ROOT_TASK_GROUP,
    SCHED_NORMAL,
    TASK_DEAD,
    TASK_NORMAL,
    TASK_ON_RQ_MIGRATING,
    TASK_ON_RQ_QUEUED,
    TASK_RUNNING,
    TASK_WAKING,
    CfsRq,
    LoadWeight,
    SchedEntity,
    Task,
    TaskGroup,
    TgSe,
    sched_prio_to_weight,
    sched_prio_to_wmult,
)

if TYPE_CHECKING:
    from model.sched.model import SchedState


def set_load_weight(static_prio: int) -> LoadWeight:
    """kernel/sched/core.c set_load_weight: the weight and inverse of a nice level."""
    prio = static_prio - 100  # static_prio - MAX_RT_PRIO
    return LoadWeight(sched_prio_to_weight[prio], sched_prio_to_wmult[prio])


def set_task(state: SchedState, pid: int, /, **changes: Any) -> Task:
    task = state.tasks[pid]._replace(**changes)
    state.tasks[pid] = task
    return task


def resched_curr(state: SchedState, cpu: int) -> None:
    """kernel/sched/core.c resched_curr: set TIF_NEED_RESCHED on the CPU's running task, once."""
    curr = state.tasks[state.rqs[cpu].curr]
    if curr.need_resched:
        return
    set_task(state, curr.pid, need_resched=True)


def check_preempt_curr(state: SchedState, cpu: int, p: Task) -> None:
    """kernel/sched/core.c check_preempt_curr: a fair task preempts the idle task at once, and
    another fair task through check_preempt_wakeup."""
    curr = state.tasks[state.rqs[cpu].curr]
    if curr.is_idle:
        resched_curr(state, cpu)
    else:
        fair.check_preempt_wakeup(state, cpu, p)


def enqueue_task(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/core.c enqueue_task -> enqueue_task_fair (which counts rq->nr_running)."""
    fair.enqueue_task_fair(state, cpu, pid, flags)


def dequeue_task(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/core.c dequeue_task -> dequeue_task_fair."""
    fair.dequeue_task_fair(state, cpu, pid, flags)


def activate_task(state: SchedState, cpu: int, pid: int, flags: int) -> None:
    """kernel/sched/core.c activate_task: enqueue_task, and p->on_rq = TASK_ON_RQ_QUEUED."""
    enqueue_task(state, cpu, pid, flags)
    set_task(state, pid, on_rq=TASK_ON_RQ_QUEUED)


def deactivate_task(state: SchedState, cpu: int, pid: int, flags: int, on_rq: int = 0) -> None:
    """kernel/sched/core.c deactivate_task: dequeue_task, and p->on_rq = on_rq (0, or
    TASK_ON_RQ_MIGRATING for a task on its way to another CPU)."""
    dequeue_task(state, cpu, pid, flags)
    set_task(state, pid, on_rq=on_rq)


def pick_next_task(state: SchedState, cpu: int, prev: Task) -> int:
    """kernel/sched/core.c pick_next_task: the fair class's pick, or the idle task."""
    if not prev.is_idle:
        fair.put_prev_task_fair(state, cpu, prev.pid)
    nxt = fair.pick_next_task_fair(state, cpu)
    return state.rqs[cpu].idle if nxt is None else nxt


def schedule_core(state: SchedState, cpu: int, preempt: bool) -> None:
    """kernel/sched/core.c __schedule: a task that is not TASK_RUNNING and was not preempted
    leaves the queue; then pick the next task and switch to it."""
    rq = state.rqs[cpu]
    prev = state.tasks[rq.curr]
    state.set_rq(cpu, sched_count=rq.sched_count + 1)
    if not preempt and prev.state != TASK_RUNNING:
        deactivate_task(state, cpu, prev.pid, DEQUEUE_SLEEP)
        prev = state.tasks[prev.pid]
    nxt = pick_next_task(state, cpu, prev)
    set_task(state, prev.pid, need_resched=False)  # clear_tsk_need_resched(prev)
    if nxt != prev.pid:
        rq = state.rqs[cpu]
        state.set_rq(cpu, curr=nxt, nr_switches=rq.nr_switches + 1)
        context_switch(state, cpu, prev.pid)


def context_switch(state: SchedState, cpu: int, prev: int) -> None:
    """kernel/sched/core.c context_switch and finish_task_switch: a dead prev is reaped."""
    if state.tasks[prev].state == TASK_DEAD:
        del state.tasks[prev]  # put_task_struct_rcu_user
        state.sched_task_group.pop(prev, None)


def schedule(state: SchedState, cpu: int) -> None:
    """kernel/sched/core.c schedule: __schedule(false) until need_resched is clear."""
    schedule_core(state, cpu, preempt=False)
    while state.tasks[state.rqs[cpu].curr].need_resched:
        schedule_core(state, cpu, preempt=False)


def preempt_schedule(state: SchedState, cpu: int) -> None:
    """kernel/sched/core.c preempt_schedule_common and preempt_schedule_irq: __schedule(true),
    which leaves a task that was preparing to sleep on the queue."""
    schedule_core(state, cpu, preempt=True)
    while state.tasks[state.rqs[cpu].curr].need_resched:
        schedule_core(state, cpu, preempt=True)


def preemptible(state: SchedState, cpu: int) -> bool:
    """need_resched() with preempt_count 0 and interrupts on (preemptible()): a preemption point
    would schedule."""
    c = state.cpus[cpu]
    return c.preempt_count == 0 and c.irqs_enabled and state.tasks[state.rqs[cpu].curr].need_resched


def reschedule_ipis(state: SchedState) -> None:
    """A wake-up that set TIF_NEED_RESCHED on another CPU sent it a reschedule IPI
    (smp_send_reschedule), or woke its idle loop: that CPU schedules on the IPI's return,
    before anything else happens. Models whose steps are whole system calls call this after
    each step; the scheduler's own model leaves it to its preempt_point action."""
    for cpu in range(len(state.cpus)):
        if preemptible(state, cpu):
            preempt_schedule(state, cpu)


def scheduler_tick(state: SchedState, cpu: int) -> None:
    """The periodic clock event on cpu: TICK_NSEC pass, update_process_times -> scheduler_tick
    -> task_tick_fair, then the interrupt returns, preempting the task if it may."""
    c = state.cpus[cpu]
    state.set_cpu(cpu, clock=c.clock + TICK_NSEC, ticks_off=c.ticks_off + (c.preempt_count > 0))
    curr = state.tasks[state.rqs[cpu].curr]
    if not curr.is_idle:
        fair.task_tick_fair(state, cpu, curr.pid)
    if preemptible(state, cpu):
        preempt_schedule(state, cpu)


def ttwu_do_wakeup(state: SchedState, cpu: int, pid: int) -> None:
    """kernel/sched/core.c ttwu_do_wakeup."""
    check_preempt_curr(state, cpu, state.tasks[pid])
    set_task(state, pid, state=TASK_RUNNING)


def ttwu_state_match(p: Task, wake_state: int) -> bool:
    """kernel/sched/core.c ttwu_state_match (5.14; inline in try_to_wake_up before): the task
    is in a state this wake-up wakes."""
    return bool(p.state & wake_state)


def try_to_wake_up(state: SchedState, pid: int, target: int, wake_state: int = TASK_NORMAL) -> bool:
    """kernel/sched/core.c try_to_wake_up: nothing for a task not in wake_state; a task still
    queued (it had not reached schedule) is just set running (ttwu_remote); a sleeping one is
    set TASK_WAKING, moved to the CPU select_task_rq chose (target), and enqueued there."""
    p = state.tasks[pid]
    if not ttwu_state_match(p, wake_state):
        return False
    if p.on_rq:  # ttwu_remote
        ttwu_do_wakeup(state, p.cpu, pid)
        return True
    set_task(state, pid, state=TASK_WAKING)
    flags = ENQUEUE_WAKEUP
    if target != p.cpu:
        set_task_cpu(state, pid, target)
        flags |= ENQUEUE_MIGRATED
    activate_task(state, target, pid, flags)  # ttwu_do_activate
    ttwu_do_wakeup(state, target, pid)
    return True


def set_task_cpu(state: SchedState, pid: int, new_cpu: int) -> None:
    """kernel/sched/core.c set_task_cpu: a waking task's vruntime leaves its old queue
    (migrate_task_rq_fair); the task counts a migration."""
    p = state.tasks[pid]
    if p.state == TASK_WAKING:
        fair.migrate_task_rq_fair(state, p.cpu, pid)
    se = state.tasks[pid].se
    set_task(state, pid, cpu=new_cpu, se=se._replace(nr_migrations=se.nr_migrations + 1))


def sched_fork(state: SchedState, cpu: int, parent: int, child: int) -> None:
    """kernel/sched/core.c sched_fork: a new task of the parent's nice level and task group
    (dup_task_struct copies sched_task_group) with a fresh sched_entity (__sched_fork),
    TASK_NEW (here TASK_WAKING: neither runnable nor wakeable), placed by task_fork_fair."""
    p = state.tasks[parent]
    se = SchedEntity(set_load_weight(p.static_prio), False, 0, 0, 0, 0, 0)
    state.tasks[child] = Task(child, TASK_WAKING, 0, cpu, SCHED_NORMAL, p.static_prio, False, se)
    fair.set_task_group(state, child, fair.task_group_of(state, parent))
    fair.task_fork_fair(state, cpu, child)


def wake_up_new_task(state: SchedState, pid: int, target: int) -> None:
    """kernel/sched/core.c wake_up_new_task: running, on the CPU select_task_rq chose (target),
    enqueued there (ENQUEUE_NOCLOCK: renormalised onto its min_vruntime), and it may preempt."""
    set_task(state, pid, state=TASK_RUNNING, cpu=target)
    activate_task(state, target, pid, 0)
    check_preempt_curr(state, target, state.tasks[pid])


def do_task_dead(state: SchedState, cpu: int) -> None:
    """kernel/exit.c do_exit -> kernel/sched/core.c do_task_dead: TASK_DEAD, and a last
    __schedule from which the task never returns."""
    set_task(state, state.rqs[cpu].curr, state=TASK_DEAD)
    schedule_core(state, cpu, preempt=False)


def set_user_nice(state: SchedState, pid: int, nice: int) -> None:
    """kernel/sched/core.c set_user_nice: dequeue (DEQUEUE_SAVE), reweight, enqueue
    (ENQUEUE_RESTORE); reschedule if the task got heavier, or lighter while running."""
    p = state.tasks[pid]
    cpu = p.cpu
    queued = p.on_rq == TASK_ON_RQ_QUEUED
    running = state.rqs[cpu].curr == pid
    if queued:
        dequeue_task(state, cpu, pid, DEQUEUE_SAVE)
    if running:
        fair.put_prev_task_fair(state, cpu, pid)
    old_prio = p.static_prio
    set_task(state, pid, static_prio=NICE_TO_PRIO(nice))
    fair.reweight_entity(state, pid, set_load_weight(NICE_TO_PRIO(nice)))
    if queued:
        enqueue_task(state, cpu, pid, ENQUEUE_RESTORE)
        delta = NICE_TO_PRIO(nice) - old_prio
        if delta < 0 or (delta > 0 and running):
            resched_curr(state, cpu)
    if running:
        fair.set_next_task_fair(state, cpu, pid)


def move_queued_task(state: SchedState, pid: int, dst: int) -> None:
    """kernel/sched/fair.c detach_task and attach_task (load balancing): off the source queue
    with a vruntime relative to it, onto dst's, and it may preempt there."""
    src = state.tasks[pid].cpu
    deactivate_task(state, src, pid, DEQUEUE_MOVE, on_rq=TASK_ON_RQ_MIGRATING)
    set_task_cpu(state, pid, dst)
    activate_task(state, dst, pid, ENQUEUE_MOVE)
    check_preempt_curr(state, dst, state.tasks[pid])


# Task groups (kernel/sched/core.c, the cpu controller's callbacks)


def sched_create_group(state: SchedState, parent: int) -> int:
    """kernel/sched/core.c sched_create_group and sched_online_group: a task group under parent
    with shares NICE_0_LOAD and, on each CPU, a cfs_rq (init_cfs_rq: min_vruntime at -2^20)
    and a group entity of weight NICE_0_LOAD queued nowhere yet (init_tg_cfs_entry). Its id."""
    if parent not in state.task_groups:
        raise ValueError(f"task group {parent} does not exist")
    tg = state.next_tg
    state.next_tg += 1
    state.task_groups[tg] = TaskGroup(parent, NICE_0_LOAD)
    for cpu in range(len(state.cpus)):
        state.tg_cfs[TgSe(tg, cpu)] = CfsRq((), 0, 0, INIT_MIN_VRUNTIME, None)
        state.tg_se[TgSe(tg, cpu)] = SchedEntity(LoadWeight(NICE_0_LOAD, 0), False, 0, 0, 0, 0, 0)
    return tg


def sched_destroy_group(state: SchedState, tg: int) -> None:
    """kernel/sched/core.c sched_offline_group and sched_destroy_group (unregister and free the
    group's entities and cfs_rqs). The cgroup core calls it only for an empty group without
    children (rmdir refuses a populated cgroup or one with online children); anything else
    is refused here with ValueError."""
    if tg == ROOT_TASK_GROUP or tg not in state.task_groups:
        raise ValueError(f"task group {tg} cannot be destroyed")
    children = sorted(g for g, group in state.task_groups.items() if group.parent == tg)
    tasks = sorted(pid for pid, g in state.sched_task_group.items() if g == tg)
    if children or tasks:
        raise ValueError(f"task group {tg} still has child groups {children} and tasks {tasks}")
    for cpu in range(len(state.cpus)):
        assert not state.tg_se[TgSe(tg, cpu)].on_rq and not state.tg_cfs[TgSe(tg, cpu)].nr_running
        del state.tg_se[TgSe(tg, cpu)]
        del state.tg_cfs[TgSe(tg, cpu)]
        state.group_epochs.pop(TgSe(tg, cpu), None)
    del state.task_groups[tg]


def sched_move_task(state: SchedState, pid: int, tg: int) -> None:
    """kernel/sched/core.c sched_move_task (a task attached to another cpu cgroup): dequeue it
    (DEQUEUE_SAVE | DEQUEUE_MOVE) and put it back if it runs, change its group
    (sched_change_group -> task_move_group_fair, which renormalises a sleeping task's
    vruntime), then enqueue it (ENQUEUE_RESTORE | ENQUEUE_MOVE) and set it running again,
    with TIF_NEED_RESCHED set (as 5.4 stable does, for a move into a throttled group). A task already in tg is left alone: the cgroup core attaches a task only to another css
    (and later kernels return early here too); 5.4 would still dequeue and enqueue it."""
    if tg not in state.task_groups:
        raise ValueError(f"task group {tg} does not exist")
    p = state.tasks[pid]
    if p.is_idle:
        raise ValueError(f"task {pid} is an idle task, which stays in the root task group")
    if fair.task_group_of(state, pid) == tg:
        return
    cpu = p.cpu
    queued = p.on_rq == TASK_ON_RQ_QUEUED
    running = state.rqs[cpu].curr == pid
    if queued:
        dequeue_task(state, cpu, pid, DEQUEUE_SAVE | DEQUEUE_MOVE)
    if running:
        fair.put_prev_task_fair(state, cpu, pid)
    fair.task_move_group_fair(state, pid, tg)
    if queued:
        enqueue_task(state, cpu, pid, ENQUEUE_RESTORE | ENQUEUE_MOVE)
    if running:
        fair.set_next_task_fair(state, cpu, pid)
