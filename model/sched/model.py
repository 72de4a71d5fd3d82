"""The scheduler as a model: CPUs with their clocks and preempt counts, a run queue per CPU,
and tasks that run, sleep, wake, fork, exit, change nice and migrate.

Each CPU runs a task (or its idle task) from its rq. Actions are what happens next on the
machine: a clock tick on a CPU; the running task preparing to sleep (set_current_state),
calling schedule(), passing a preemption point (return to user, the idle loop, a
reschedule IPI's return), forking, exiting, or entering and leaving a preempt-disabled
section; and, from anywhere, a wake-up, a nice change or a load-balancing migration.

The state also keeps the checker's record of fairness (``epochs``): per CPU, the tasks that
have stayed runnable there since the set last changed, with their CPU time and vruntime when
it did. The model keeps it up to date after every action and never reads it.

Task groups (group scheduling) are made, changed and joined from outside the actions here:
the cgroup cpu controller calls core.sched_create_group, sched_destroy_group,
sched_move_task and fair.sched_group_set_shares. Until a group is made, the state and its
fingerprint are those of a scheduler without groups.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from model.contract import Model, action
from model.hw.cpu import Cpu
from model.sched import core, fair
from model.sched.sched import (
    INIT_MIN_VRUNTIME,
    MAX_NICE,
    MIN_NICE,
    NICE_0_LOAD,
    NICE_TO_PRIO,
    ROOT_TASK_GROUP,
    TASK_DEAD,
    TASK_INTERRUPTIBLE,
    TASK_ON_RQ_QUEUED,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    TASK_WAKING,
    CfsKey,
    CfsRq,
    Entity,
    LoadWeight,
    Rq,
    SchedEntity,
    Task,
    TaskGroup,
    TgSe,
    idle_pid,
)


@dataclass(frozen=True)
class SchedConfig:
    """The machine and the work on it."""

    nr_cpus: int = 2
    tasks: tuple[int, ...] = (0, 0, 0, 0, 0, 0)  # the nice level of each task at boot
    max_tasks: int = 8  # fork is refused beyond this many tasks
    nice_values: tuple[int, ...] = (-5, 0, 5)  # what set_nice may set
    preempt_sections: bool = True  # the running task may disable preemption across a tick
    irq_sections: bool = False  # the running task may disable interrupts (deferring ticks)
    uninterruptible: bool = False  # tasks may also sleep in TASK_UNINTERRUPTIBLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "nice_values", tuple(self.nice_values))
        if not 1 <= self.nr_cpus <= 8:
            raise ValueError(f"nr_cpus {self.nr_cpus} is not in 1..8")
        bad = [n for n in (*self.tasks, *self.nice_values) if not MIN_NICE <= n <= MAX_NICE]
        if bad:
            raise ValueError(f"nice levels {bad} are not in {MIN_NICE}..{MAX_NICE}")
        if not len(self.tasks) <= self.max_tasks:
            raise ValueError(f"{len(self.tasks)} tasks at boot exceed max_tasks {self.max_tasks}")


class Epoch(NamedTuple):
    """The tasks runnable on a CPU since the set last changed: (pid, weight, CPU time and
    vruntime when the epoch began), by pid. With task groups, the entities (tasks and group
    entities) queued on one cfs_rq."""

    members: tuple[tuple[Entity, int, int, int], ...]


def _root_groups() -> dict[int, TaskGroup]:
    return {ROOT_TASK_GROUP: TaskGroup(None, NICE_0_LOAD)}


@dataclass(slots=True, eq=False)
class SchedState:
    """The scheduler's state. The group-scheduling fields hold nothing but the root task group
    until sched_create_group makes another: task_groups, each non-root group's per-CPU entity
    (tg_se) and cfs_rq (tg_cfs), the task group of each task not in the root
    (sched_task_group; a missing pid is in the root), the next task group id, and the
    checker's fairness record of each group cfs_rq (group_epochs)."""

    cpus: tuple[Cpu, ...]
    rqs: tuple[Rq, ...]
    tasks: dict[int, Task]  # by pid; idle tasks have negative pids
    next_pid: int
    epochs: tuple[Epoch, ...]  # the checker's fairness record, per CPU (of its root cfs_rq)
    task_groups: dict[int, TaskGroup] = field(default_factory=_root_groups)
    tg_se: dict[TgSe, SchedEntity] = field(default_factory=dict)
    tg_cfs: dict[TgSe, CfsRq] = field(default_factory=dict)
    sched_task_group: dict[int, int] = field(default_factory=dict)
    next_tg: int = ROOT_TASK_GROUP + 1
    group_epochs: dict[TgSe, Epoch] = field(default_factory=dict)

    def clone(self) -> SchedState:
        if not self.has_groups:  # nothing but the root: no group dict to copy
            return SchedState(self.cpus, self.rqs, dict(self.tasks), self.next_pid, self.epochs)
        return SchedState(
            self.cpus,
            self.rqs,
            dict(self.tasks),
            self.next_pid,
            self.epochs,
            dict(self.task_groups),
            dict(self.tg_se),
            dict(self.tg_cfs),
            dict(self.sched_task_group),
            self.next_tg,
            dict(self.group_epochs),
        )

    @property
    def has_groups(self) -> bool:
        """A task group other than the root exists, or has existed."""
        return self.next_tg != ROOT_TASK_GROUP + 1

    def fingerprint(self) -> Hashable:
        base = (self.cpus, self.rqs, tuple(sorted(self.tasks.items())), self.next_pid, self.epochs)
        if not self.has_groups:
            return base  # the root task group only: the fingerprint of a model without groups
        return (
            *base,
            tuple(sorted(self.task_groups.items())),
            tuple(sorted(self.tg_se.items())),
            tuple(sorted(self.tg_cfs.items())),
            tuple(sorted(self.sched_task_group.items())),
            self.next_tg,
            tuple(sorted(self.group_epochs.items())),
        )

    def set_rq(self, cpu: int, **changes: Any) -> Rq:
        rqs = list(self.rqs)
        rqs[cpu] = rq = rqs[cpu]._replace(**changes)
        self.rqs = tuple(rqs)
        return rq

    def set_cpu(self, cpu: int, **changes: Any) -> Cpu:
        cpus = list(self.cpus)
        cpus[cpu] = c = cpus[cpu]._replace(**changes)
        self.cpus = tuple(cpus)
        return c

    def curr(self, cpu: int) -> Task:
        return self.tasks[self.rqs[cpu].curr]


def runnable(state: SchedState, cpu: int) -> tuple[tuple[int, int], ...]:
    """(pid, weight) of the tasks queued on cpu, running one included."""
    return tuple(
        sorted(
            (t.pid, t.se.load.weight)
            for t in state.tasks.values()
            if t.cpu == cpu and t.on_rq == TASK_ON_RQ_QUEUED and not t.is_idle
        )
    )


def note_epochs(state: SchedState) -> None:
    """Begin a new fairness epoch on every CPU whose set of runnable tasks (or their weights)
    changed. With task groups, an epoch is kept per cfs_rq, of the entities queued on it
    (tasks and group entities): each CPU's root cfs_rq in epochs, each group's in group_epochs."""
    if state.has_groups:
        note_group_epochs(state)
        return
    epochs = list(state.epochs)
    for cpu, epoch in enumerate(epochs):
        now = runnable(state, cpu)
        if tuple((pid, w) for pid, w, _, _ in epoch.members) != now:
            epochs[cpu] = Epoch(
                tuple(
                    (pid, w, state.tasks[pid].se.sum_exec_runtime, state.tasks[pid].se.vruntime) for pid, w in now
                )
            )
    state.epochs = tuple(epochs)


def entity_order(k: Entity) -> tuple[int, int, int]:
    """A sort key for entities: tasks by pid, then group entities by (tg, cpu)."""
    return (0, k, 0) if isinstance(k, int) else (1, k.tg, k.cpu)


def queued_entities(state: SchedState, q: CfsKey) -> tuple[tuple[Entity, int], ...]:
    """(entity, weight) of the entities queued on cfs_rq q, its running one included."""
    cfs = fair.cfs_of(state, q)
    keys = [k for k in cfs.timeline if fair.entity_exists(state, k)]
    if cfs.curr is not None and fair.entity_exists(state, cfs.curr) and fair.se_of(state, cfs.curr).on_rq:
        keys.append(cfs.curr)
    return tuple(sorted(((k, fair.se_of(state, k).load.weight) for k in set(keys)), key=lambda kw: entity_order(kw[0])))


def _next_epoch(state: SchedState, epoch: Epoch | None, now: tuple[tuple[Entity, int], ...]) -> Epoch:
    if epoch is not None and tuple((k, w) for k, w, _, _ in epoch.members) == now:
        return epoch
    return Epoch(tuple((k, w, fair.se_of(state, k).sum_exec_runtime, fair.se_of(state, k).vruntime) for k, w in now))


def note_group_epochs(state: SchedState) -> None:
    """note_epochs with task groups: an epoch per cfs_rq."""
    state.epochs = tuple(_next_epoch(state, e, queued_entities(state, cpu)) for cpu, e in enumerate(state.epochs))
    state.group_epochs = {
        q: _next_epoch(state, state.group_epochs.get(q), queued_entities(state, q)) for q in sorted(state.tg_cfs)
    }


def _fair_curr(s: SchedState) -> list[int]:
    """CPUs running a task other than their idle task."""
    return [cpu for cpu in range(len(s.cpus)) if not s.curr(cpu).is_idle]


def _tick_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    # A preempt-disabled section spans at most one tick: kernel critical sections are short.
    return [(cpu,) for cpu, c in enumerate(s.cpus) if c.irqs_enabled and (not c.preempt_count or not c.ticks_off)]


def _may_block(s: SchedState, cpu: int) -> bool:
    """The running task may call schedule(): not atomic, interrupts on."""
    return not s.cpus[cpu].preempt_count and s.cpus[cpu].irqs_enabled


def _sleep_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in _fair_curr(s) if s.curr(cpu).state == TASK_RUNNING and _may_block(s, cpu)]


def _sleep_uninterruptible_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return _sleep_domain(m, s) if m.config.uninterruptible else []


def _schedule_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in _fair_curr(s) if s.curr(cpu).state != TASK_RUNNING and _may_block(s, cpu)]


def _preempt_point_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in range(len(s.cpus)) if core.preemptible(s, cpu)]


def _wake_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int, int]]:
    out = []
    for pid, t in sorted(s.tasks.items()):
        if t.is_idle or t.state in (TASK_DEAD, TASK_WAKING):
            continue
        # Only a task off every queue may be placed on another CPU; for the others the
        # target is irrelevant (the state check or ttwu_remote decides).
        targets = range(len(s.cpus)) if not t.on_rq and t.state != TASK_RUNNING else (t.cpu,)
        out += [(pid, cpu) for cpu in targets]
    return out


def _fork_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int, int]]:
    live = sum(not t.is_idle for t in s.tasks.values())
    if live >= m.config.max_tasks:
        return []
    return [
        (cpu, target)
        for cpu in _fair_curr(s)
        if s.curr(cpu).state == TASK_RUNNING
        for target in range(len(s.cpus))
    ]


def _exit_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in _fair_curr(s) if s.curr(cpu).state == TASK_RUNNING and _may_block(s, cpu)]


def _nice_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int, int]]:
    return [
        (pid, nice)
        for pid, t in sorted(s.tasks.items())
        if not t.is_idle and t.state != TASK_DEAD
        for nice in m.config.nice_values
        if NICE_TO_PRIO(nice) != t.static_prio
    ]


def _migrate_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int, int]]:
    return [
        (pid, cpu)
        for pid, t in sorted(s.tasks.items())
        if not t.is_idle and t.on_rq == TASK_ON_RQ_QUEUED and s.rqs[t.cpu].curr != pid
        for cpu in range(len(s.cpus))
        if cpu != t.cpu
    ]


def _preempt_disable_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    if not m.config.preempt_sections:
        return []
    return [(cpu,) for cpu in _fair_curr(s) if not s.cpus[cpu].preempt_count]


def _preempt_enable_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu, c in enumerate(s.cpus) if c.preempt_count]


def _irq_disable_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    if not m.config.irq_sections:
        return []
    return [(cpu,) for cpu in _fair_curr(s) if s.cpus[cpu].irqs_enabled]


def _irq_enable_domain(m: SchedModel, s: SchedState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu, c in enumerate(s.cpus) if not c.irqs_enabled]


# Small: one CPU, two tasks at boot (nice 0 and 5), up to three: enough for ticks that end a
# slice, wake-up preemption, fork placement, nice changes and preempt-disabled ticks.
SMALL = SchedConfig(nr_cpus=1, tasks=(0, 5), max_tasks=3, nice_values=(0, 5))
# Large: two CPUs and six tasks of mixed nice levels, up to eight, with interrupt-disabled
# sections and uninterruptible sleeps.
LARGE = SchedConfig(
    nr_cpus=2,
    tasks=(-5, 0, 0, 0, 5, 10),
    max_tasks=8,
    nice_values=(-10, 0, 5, 19),
    irq_sections=True,
    uninterruptible=True,
)


class SchedModel(Model[SchedState, SchedConfig]):
    """CFS run queues on CPUs with ticks, wake-ups, preemption, fork, exit, nice and migration."""

    name = "sched"
    Config = SchedConfig
    profiles = {"small": SMALL, "large": LARGE}
    # Time passes only at ticks: random runs draw them as often as all other events together,
    # so that sets of tasks stay runnable for many slices.
    weights = {"tick": 10}

    def init_state(self) -> SchedState:
        """The CPUs after sched_init (each running its idle task, min_vruntime at -2^20), then
        the boot tasks forked from each CPU's idle task and scheduled."""
        n = self.config.nr_cpus
        cpus = tuple(Cpu(0, True, 0, 0) for _ in range(n))
        rqs = tuple(
            Rq(idle_pid(cpu), idle_pid(cpu), 0, 0, 0, CfsRq((), 0, 0, INIT_MIN_VRUNTIME, None)) for cpu in range(n)
        )
        idle_se = SchedEntity(LoadWeight(0, 0), False, 0, 0, 0, 0, 0)
        tasks = {idle_pid(cpu): Task(idle_pid(cpu), TASK_RUNNING, 0, cpu, 0, 120, False, idle_se) for cpu in range(n)}
        state = SchedState(cpus, rqs, tasks, 1, tuple(Epoch(()) for _ in range(n)))
        for i, nice in enumerate(self.config.tasks):
            cpu = i % n
            pid = self.fork(state, cpu, cpu)
            core.set_user_nice(state, pid, nice)
        for cpu in range(n):  # rest_init's schedule_preempt_disabled; the secondaries' idle loops
            core.schedule(state, cpu)
        note_epochs(state)
        return state

    def step(self, state: SchedState, act: Any, args: Any) -> tuple[SchedState, Any]:
        after, result = super().step(state, act, args)
        note_epochs(after)
        return after, result

    @staticmethod
    def fork(state: SchedState, cpu: int, target: int) -> int:
        pid = state.next_pid
        state.next_pid += 1
        core.sched_fork(state, cpu, state.rqs[cpu].curr, pid)
        core.wake_up_new_task(state, pid, target)
        return pid

    @action("cpu", domain=_tick_domain)
    def tick(self, state: SchedState, cpu: int) -> None:
        """TICK_NSEC pass on cpu and its clock event interrupts: scheduler_tick, then the
        interrupt's return preempts the task if need_resched is set and preemption is on."""
        core.scheduler_tick(state, cpu)

    @action("cpu", domain=_sleep_domain)
    def sleep(self, state: SchedState, cpu: int) -> None:
        """The task on cpu begins to wait: set_current_state(TASK_INTERRUPTIBLE)."""
        core.set_task(state, state.rqs[cpu].curr, state=TASK_INTERRUPTIBLE)

    @action("cpu", domain=_sleep_uninterruptible_domain)
    def sleep_uninterruptible(self, state: SchedState, cpu: int) -> None:
        """The task on cpu begins to wait: set_current_state(TASK_UNINTERRUPTIBLE)."""
        core.set_task(state, state.rqs[cpu].curr, state=TASK_UNINTERRUPTIBLE)

    @action("cpu", domain=_schedule_domain)
    def schedule(self, state: SchedState, cpu: int) -> None:
        """The task on cpu calls schedule(): it leaves the queue unless it was woken meanwhile."""
        core.schedule(state, cpu)

    @action("cpu", domain=_preempt_point_domain)
    def preempt_point(self, state: SchedState, cpu: int) -> None:
        """cpu passes a preemption point with TIF_NEED_RESCHED set (return to user, the idle
        loop, a reschedule IPI's return): __schedule."""
        core.preempt_schedule(state, cpu)

    @action("pid", "cpu", domain=_wake_domain)
    def wake_up(self, state: SchedState, pid: int, cpu: int) -> bool:
        """try_to_wake_up(p, TASK_NORMAL) with select_task_rq choosing cpu: whether it woke p."""
        return core.try_to_wake_up(state, pid, cpu)

    @action("cpu", "target", domain=_fork_domain)
    def fork_task(self, state: SchedState, cpu: int, target: int) -> int:
        """The task on cpu forks: sched_fork, then wake_up_new_task on target. The child's pid."""
        return self.fork(state, cpu, target)

    @action("cpu", domain=_exit_domain)
    def exit_task(self, state: SchedState, cpu: int) -> None:
        """The task on cpu exits: do_task_dead."""
        core.do_task_dead(state, cpu)

    @action("pid", "nice", domain=_nice_domain)
    def set_nice(self, state: SchedState, pid: int, nice: int) -> None:
        """set_user_nice(p, nice)."""
        core.set_user_nice(state, pid, nice)

    @action("pid", "cpu", domain=_migrate_domain)
    def migrate(self, state: SchedState, pid: int, cpu: int) -> None:
        """The load balancer moves queued, waiting task pid to cpu (detach_task, attach_task)."""
        core.move_queued_task(state, pid, cpu)

    @action("cpu", domain=_preempt_disable_domain)
    def preempt_disable(self, state: SchedState, cpu: int) -> None:
        """The task on cpu enters a preempt-disabled section (spin_lock)."""
        state.set_cpu(cpu, preempt_count=state.cpus[cpu].preempt_count + 1, ticks_off=0)

    @action("cpu", domain=_preempt_enable_domain)
    def preempt_enable(self, state: SchedState, cpu: int) -> None:
        """The section ends (spin_unlock): preempt_enable, which schedules if need_resched is set."""
        state.set_cpu(cpu, preempt_count=state.cpus[cpu].preempt_count - 1, ticks_off=0)
        if core.preemptible(state, cpu):
            core.preempt_schedule(state, cpu)

    @action("cpu", domain=_irq_disable_domain)
    def local_irq_disable(self, state: SchedState, cpu: int) -> None:
        """The task on cpu disables interrupts: no tick is taken until it enables them."""
        state.set_cpu(cpu, irqs_enabled=False)

    @action("cpu", domain=_irq_enable_domain)
    def local_irq_enable(self, state: SchedState, cpu: int) -> None:
        """Interrupts on again; a pending tick comes as the next tick action (local_irq_enable
        itself does not schedule)."""
        state.set_cpu(cpu, irqs_enabled=True)
