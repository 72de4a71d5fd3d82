"""kernel/cgroup/pids.c: the pids controller. Each cgroup but the root counts the tasks in
its subtree; a fork that would take any level beyond its pids.max fails with -EAGAIN before
the task exists (cgroup_can_fork). Moving a task in charges without a limit check, and a
limit may be written below the count: neither undoes what is there, both block new forks.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from model.cgroup.cgroup import Hierarchy, chain

PIDS_MAX = 4194304 + 1  # PID_MAX_LIMIT + 1: "max"
EAGAIN = 11
EINVAL = 22


class PidsCgroup(NamedTuple):
    counter: int = 0
    limit: int = PIDS_MAX


class PidsHost(Hierarchy, Protocol):
    """A model with the pids controller: the cgroup model's, or the whole kernel's."""

    pids: dict[int, PidsCgroup]


def _levels(state: PidsHost, cg: int) -> tuple[int, ...]:
    """cg and its ancestors, the root excepted (for (p = pids; parent_pids(p); ...))."""
    return chain(state, cg)[:-1]


def pids_charge(state: PidsHost, cg: int, num: int) -> None:
    for p in _levels(state, cg):
        state.pids[p] = state.pids[p]._replace(counter=state.pids[p].counter + num)


def pids_uncharge(state: PidsHost, cg: int, num: int) -> None:
    pids_charge(state, cg, -num)


def pids_try_charge(state: PidsHost, cg: int, num: int) -> int:
    """Charge every level, or none with -EAGAIN if one would pass its limit."""
    charged = []
    for p in _levels(state, cg):
        new = state.pids[p].counter + num
        state.pids[p] = state.pids[p]._replace(counter=new)
        charged.append(p)
        if new > state.pids[p].limit:
            for q in charged:
                state.pids[q] = state.pids[q]._replace(counter=state.pids[q].counter - num)
            return -EAGAIN
    return 0


def pids_can_fork(state: PidsHost, cg: int) -> int:
    return pids_try_charge(state, cg, 1)


def pids_release(state: PidsHost, cg: int) -> None:
    """The task has exited: its cgroups count it no more."""
    pids_uncharge(state, cg, 1)


def pids_can_attach(state: PidsHost, old: int, new: int) -> None:
    """The task's charge moves to its new cgroup, with no limit check."""
    pids_charge(state, new, 1)
    pids_uncharge(state, old, 1)


def pids_max_write(state: PidsHost, cg: int, buf: str) -> int:
    """pids.max: "max" or a count in 0..PIDS_MAX-1, else -EINVAL."""
    if buf == "max":
        limit = PIDS_MAX
    elif buf.isdigit() and int(buf) < PIDS_MAX:
        limit = int(buf)
    else:
        return -EINVAL
    state.pids[cg] = state.pids[cg]._replace(limit=limit)
    return 0
