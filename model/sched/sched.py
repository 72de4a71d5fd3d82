"""The scheduler's data (kernel/sched/sched.h, include/linux/sched.h, Linux 4.x-5.x).

Every structure is an immutable value that a change replaces, so that a state's copy shares
all it does not change. Tasks are named by pid; CPU c's idle task (swapper/c) is pid -1 - c.
Load weights are kept scale_load_down()ed (NICE_0_LOAD 1024), as __calc_delta uses them.

Group scheduling (CONFIG_FAIR_GROUP_SCHED, the cgroup cpu controller's side): a task_group has
a parent and cpu.shares, and on each CPU a group sched_entity, queued on its parent's cfs_rq,
whose my_q is the group's own cfs_rq there. Both are named by TgSe(tg, cpu). The root task
group (ROOT_TASK_GROUP) has neither: its cfs_rq on a CPU is that CPU's rq->cfs. A scheduling
entity is therefore named by a pid (a task) or a TgSe (a group), and a cfs_rq by a CPU (the
root's) or a TgSe (a group's).
"""

from __future__ import annotations

from typing import NamedTuple

# include/linux/sched.h task states
TASK_RUNNING = 0x0000
TASK_INTERRUPTIBLE = 0x0001
TASK_UNINTERRUPTIBLE = 0x0002
TASK_DEAD = 0x0080
TASK_WAKING = 0x0200
TASK_NORMAL = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE
STATE_NAMES = {
    TASK_RUNNING: "TASK_RUNNING",
    TASK_INTERRUPTIBLE: "TASK_INTERRUPTIBLE",
    TASK_UNINTERRUPTIBLE: "TASK_UNINTERRUPTIBLE",
    TASK_DEAD: "TASK_DEAD",
    TASK_WAKING: "TASK_WAKING",
}

# kernel/sched/sched.h p->on_rq
TASK_ON_RQ_QUEUED = 1
TASK_ON_RQ_MIGRATING = 2

# include/uapi/linux/sched.h policies
SCHED_NORMAL = 0
SCHED_IDLE = 5

# include/linux/sched/prio.h
MAX_NICE = 19
MIN_NICE = -20
MAX_RT_PRIO = 100
DEFAULT_PRIO = MAX_RT_PRIO + 20


def NICE_TO_PRIO(nice: int) -> int:
    return nice + DEFAULT_PRIO


def PRIO_TO_NICE(prio: int) -> int:
    return prio - DEFAULT_PRIO


NICE_0_LOAD = 1024  # scale_load_down(NICE_0_LOAD) on 64-bit

# kernel/sched/sched.h: the bounds of cpu.shares (tg->shares), in the same unscaled units
MIN_SHARES = 1 << 1
MAX_SHARES = 1 << 18
ROOT_TASK_GROUP = 0  # root_task_group, whose shares are ROOT_TASK_GROUP_LOAD (NICE_0_LOAD)
INIT_MIN_VRUNTIME = (1 << 64) - (1 << 20)  # init_cfs_rq: (u64)(-(1LL << 20))
WMULT_CONST = 0xFFFFFFFF  # ~0U
WMULT_SHIFT = 32

# kernel/sched/core.c sched_prio_to_weight[40] and sched_prio_to_wmult[40], nice -20..19:
# each nice level is ~1.25x the weight of the next, and wmult = 2^32 / weight.
sched_prio_to_weight = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)  # fmt: skip
sched_prio_to_wmult = (
    48388, 59856, 76040, 92818, 118348,
    147320, 184698, 229616, 287308, 360437,
    449829, 563644, 704093, 875809, 1099582,
    1376151, 1717300, 2157191, 2708050, 3363326,
    4194304, 5237765, 6557202, 8165337, 10153587,
    12820798, 15790321, 19976592, 24970740, 31350126,
    39045157, 49367440, 61356676, 76695844, 95443717,
    119304647, 148102320, 186737708, 238609294, 286331153,
)  # fmt: skip

# Enqueue and dequeue flags (kernel/sched/sched.h)
DEQUEUE_SLEEP = 0x01
DEQUEUE_SAVE = 0x02
DEQUEUE_MOVE = 0x04
ENQUEUE_WAKEUP = 0x01
ENQUEUE_RESTORE = 0x02
ENQUEUE_MOVE = 0x04
ENQUEUE_MIGRATED = 0x40

EINVAL = 22  # include/uapi/asm-generic/errno-base.h

# Wake flags
WF_FORK = 0x02
WF_MIGRATED = 0x04


class LoadWeight(NamedTuple):
    weight: int
    inv_weight: int  # 2^32 / weight, 0 until __update_inv_weight computes it


class SchedEntity(NamedTuple):
    """struct sched_entity of a task or of a task group on one CPU. A group entity's weight is
    set by update_cfs_group (reweight_entity) and its inverse left 0 (update_load_set), and
    nr_migrations stays 0."""

    load: LoadWeight
    on_rq: bool
    exec_start: int
    sum_exec_runtime: int
    prev_sum_exec_runtime: int
    vruntime: int
    nr_migrations: int


class Task(NamedTuple):
    """The scheduling part of struct task_struct."""

    pid: int
    state: int
    on_rq: int  # 0, TASK_ON_RQ_QUEUED or TASK_ON_RQ_MIGRATING
    cpu: int  # task_cpu(p)
    policy: int
    static_prio: int
    need_resched: bool  # TIF_NEED_RESCHED in thread_info
    se: SchedEntity

    @property
    def is_idle(self) -> bool:
        return self.pid < 0

    @property
    def nice(self) -> int:
        return PRIO_TO_NICE(self.static_prio)


class TgSe(NamedTuple):
    """tg->se[cpu] and tg->cfs_rq[cpu] (that entity's my_q) of a non-root task group."""

    tg: int
    cpu: int


# A scheduling entity (a pid, or a group's TgSe) and a cfs_rq (a CPU's root one, or a group's)
Entity = int | TgSe
CfsKey = int | TgSe


class TaskGroup(NamedTuple):
    """struct task_group: its parent (None for the root) and cpu.shares (tg->shares)."""

    parent: int | None
    shares: int


class CfsRq(NamedTuple):
    """struct cfs_rq: the timeline (the rb-tree, in order: by vruntime, equal keys in the order
    they were inserted, as __enqueue_entity goes right on a tie), its load and min_vruntime.
    Entities are named by pid (a task) or TgSe (a group entity)."""

    timeline: tuple[int | TgSe, ...]  # entities, leftmost first
    load: int  # load.weight: the weights of the queued entities, curr included
    nr_running: int  # the entities queued on this cfs_rq (not h_nr_running)
    min_vruntime: int
    curr: int | TgSe | None  # cfs_rq->curr
    next: int | TgSe | None = None  # cfs_rq->next: the wakee that preempted, to run next if not unfair
    last: int | TgSe | None = None  # cfs_rq->last: the task it preempted (LAST_BUDDY)


class Rq(NamedTuple):
    """struct rq of one CPU."""

    curr: int  # pid of rq->curr (the idle task's when nothing else runs)
    idle: int  # pid of rq->idle
    nr_running: int  # the tasks queued on the CPU, at every level (rq->cfs.h_nr_running)
    nr_switches: int
    sched_count: int  # schedstats: __schedule calls
    cfs: CfsRq


def idle_pid(cpu: int) -> int:
    return -1 - cpu
