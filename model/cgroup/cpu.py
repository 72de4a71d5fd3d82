"""kernel/sched/core.c: the cpu controller, the cgroup side of group scheduling. Each cgroup
has a task group in the scheduler (model/sched): made with the cgroup, gone with it, its
cpu.shares the group's weight; a task moved to a cgroup moves to its task group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.sched import core, fair
from model.sched.sched import MAX_SHARES

if TYPE_CHECKING:
    from model.cgroup.model import CgroupState

EINVAL = 22
ERANGE = 34
ULLONG_MAX = (1 << 64) - 1
SCHED_FIXEDPOINT_SHIFT = 10


def cpu_cgroup_css_alloc(state: CgroupState, parent_tg: int) -> int:
    """sched_create_group: the new cgroup's task group, under its parent's."""
    return core.sched_create_group(state.sched, parent_tg)


def cpu_cgroup_css_free(state: CgroupState, tg: int) -> None:
    """The task group goes with its cgroup, once no task holds a reference to it (a task of
    a cgroup that rmdir takes offline would; rmdir refuses a populated cgroup)."""
    if tg not in state.sched.sched_task_group.values():
        core.sched_destroy_group(state.sched, tg)


def cpu_cgroup_attach(state: CgroupState, pid: int, tg: int) -> None:
    core.sched_move_task(state.sched, pid, tg)


def cpu_shares_write_u64(state: CgroupState, tg: int, buf: str) -> int:
    """A write of cpu.shares: kstrtoull's -EINVAL for anything but a decimal number and -ERANGE
    past 2^64 - 1; a value too large to scale is MAX_SHARES (5.4 stable); the root group
    refuses with -EINVAL (sched_group_set_shares), any other clamps it to [2, 2^18]."""
    if not buf.isdigit():
        return -EINVAL
    shareval = int(buf)
    if shareval > ULLONG_MAX:
        return -ERANGE
    if shareval > ULLONG_MAX >> SCHED_FIXEDPOINT_SHIFT:  # scale_load would overflow
        shareval = MAX_SHARES
    return fair.sched_group_set_shares(state.sched, tg, shareval)
