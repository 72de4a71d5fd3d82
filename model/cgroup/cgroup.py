"""kernel/cgroup/cgroup.c: one hierarchy of control groups with the memory and pids
controllers mounted on it (4.x-5.x, cgroup v1 semantics for the memory controller).

A cgroup is a directory: mkdir makes one under an online parent, rmdir takes an empty one
offline. Each task is in exactly one cgroup of the hierarchy (its css_set); writing its pid
to another cgroup's cgroup.procs migrates it. A memory cgroup taken offline with pages still
charged to it lives on, offline, until they are freed (a "zombie" memcg).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from model.cgroup.model import CgroupState

ROOT = 0  # the root cgroup's id
EBUSY = 16
EEXIST = 17
ENODEV = 19
ESRCH = 3


class Cgroup(NamedTuple):
    name: str
    parent: int | None  # None for the root
    tg: int  # its task group in the scheduler (the cpu controller's css)
    online: bool = True


class Hierarchy(Protocol):
    """A model's cgroups and each task's: the cgroup model's, or the whole kernel's."""

    cgroups: dict[int, Cgroup]
    css_set: dict[int, int]


def chain(state: Hierarchy, cg: int) -> tuple[int, ...]:
    """cg and its ancestors up to the root, as page counters and pids counters walk them."""
    out = [cg]
    while (parent := state.cgroups[out[-1]].parent) is not None:
        out.append(parent)
    return tuple(out)


def in_subtree(state: Hierarchy, cg: int, top: int) -> bool:
    return top in chain(state, cg)


def path(state: Hierarchy, cg: int) -> str:
    names = [state.cgroups[c].name for c in reversed(chain(state, cg)[:-1])]
    return "/" + "/".join(names)


def kernfs_name_taken(state: CgroupState, parent: int, name: str) -> bool:
    """An online cgroup of that name is under parent: mkdir fails with -EEXIST."""
    return any(c.online and c.parent == parent and c.name == name for c in state.cgroups.values())


def cgroup_mkdir(state: Hierarchy, parent: int, name: str, tg: int) -> int:
    """A new cgroup under parent with the task group tg (the caller has checked the name and
    runs the other controllers' css_alloc): its id."""
    cg = max(state.cgroups) + 1
    state.cgroups[cg] = Cgroup(name, parent, tg)
    return cg


def cgroup_is_populated(state: CgroupState, cg: int) -> bool:
    return any(in_subtree(state, c, cg) for c in state.css_set.values())


def cgroup_destroy_locked(state: CgroupState, cg: int) -> int:
    """rmdir: -EBUSY while a task is in it or an online child is under it; else offline."""
    if cgroup_is_populated(state, cg) or any(c.online and c.parent == cg for c in state.cgroups.values()):
        return -EBUSY
    state.cgroups[cg] = state.cgroups[cg]._replace(online=False)
    return 0


def cgroup_procs_write(state: Hierarchy, pid: int, cg: int) -> int:
    """The checks of a write of pid to cg's cgroup.procs: -ESRCH for no such task, -ENODEV
    for a cgroup gone offline."""
    if pid not in state.css_set:
        return -ESRCH
    if not state.cgroups[cg].online:
        return -ENODEV
    return 0
