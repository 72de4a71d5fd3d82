"""Group scheduling (the cgroup cpu controller's side of CFS, kernel/sched/fair.c and core.c
in Linux 5.4): task groups with cpu.shares, a group entity and cfs_rq per CPU, hierarchical
enqueue, pick and tick, sched_move_task and sched_group_set_shares. Every state a test makes
is checked against every registered sched invariant."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from typing import Any
from unittest import mock

import pytest

import invariants
from model.contract import Step
from model.hw.cpu import TICK_NSEC
from model.sched import core, fair
from model.sched.model import LARGE, SchedConfig, SchedModel, SchedState, note_epochs
from model.sched.sched import (
    EINVAL,
    MAX_SHARES,
    MIN_SHARES,
    NICE_0_LOAD,
    ROOT_TASK_GROUP,
    TASK_INTERRUPTIBLE,
    TASK_ON_RQ_QUEUED,
    TgSe,
)

MS = 1_000_000
INVARIANTS = invariants.for_model("sched")


def violations(before: SchedState, step: Step, after: SchedState) -> list[str]:
    out = []
    for inv in INVARIANTS:
        found = inv.check(before, step, after) if inv.transition else inv.check(after)
        out += [f"{inv.name}: {v}" for v in found]
    return out


def act(m: SchedModel, s: SchedState, name: str, *args: Any) -> SchedState:
    """One model action, checked."""
    after, result = m.step(s, m.action_by_name[name], args)
    found = violations(s, Step(name, args, result), after)
    assert not found, found
    return after


def op(s: SchedState, fn: Callable[..., Any], *args: Any) -> tuple[SchedState, Any]:
    """One group operation (as the cgroup cpu controller would call it) on a copy, with the
    checker's fairness record brought up to date as after a model step, and checked."""
    after = s.clone()
    result = fn(after, *args)
    note_epochs(after)
    found = violations(s, Step(fn.__name__, args), after)
    assert not found, found
    return after, result


def two_groups(shares: tuple[int, int]) -> tuple[SchedModel, SchedState, int, int]:
    """One CPU, tasks 1 and 2 (nice 0), each moved into its own group under the root."""
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(0, 0), max_tasks=3, preempt_sections=False))
    s = m.init_state()
    s, a = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, b = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, rc = op(s, fair.sched_group_set_shares, a, shares[0])
    assert rc == 0
    s, rc = op(s, fair.sched_group_set_shares, b, shares[1])
    assert rc == 0
    s, _ = op(s, core.sched_move_task, 1, a)
    s, _ = op(s, core.sched_move_task, 2, b)
    return m, s, a, b


# 1. Sibling groups share a CPU in the ratio of their cpu.shares.


def test_sibling_groups_share_one_cpu_in_the_ratio_of_their_shares() -> None:
    m, s, a, b = two_groups((1024, 2048))
    # one CPU: each group's load is all on it, so its entity weighs its full shares
    assert (s.tg_se[TgSe(a, 0)].load.weight, s.tg_se[TgSe(b, 0)].load.weight) == (1024, 2048)
    assert s.rqs[0].cfs.load == 3072 and s.rqs[0].nr_running == 2 and s.rqs[0].cfs.nr_running == 2
    start = {pid: s.tasks[pid].se.sum_exec_runtime for pid in (1, 2)}
    ticks = 1500
    for _ in range(ticks):
        s = act(m, s, "tick", 0)
    got = {pid: s.tasks[pid].se.sum_exec_runtime - start[pid] for pid in (1, 2)}
    assert sum(got.values()) == ticks * TICK_NSEC
    # The share of group b is 2/3 of the time. Each pick runs a whole tick (the slices, 2 and
    # 4 ms of a 6 ms period, are at most a tick), and vruntime order keeps the two groups within
    # one run of virtual time of each other (a tick, in the lighter group's virtual time, plus
    # the 3 ms by which they may start apart): at most 2 ticks of real time off the exact share.
    share_b = Fraction(ticks * TICK_NSEC * 2, 3)
    assert abs(got[2] - share_b) <= 2 * TICK_NSEC, got
    assert abs(Fraction(got[2], got[1]) - 2) < Fraction(1, 100)
    # the group entities were charged the same as their tasks
    assert s.tg_se[TgSe(b, 0)].sum_exec_runtime == s.tasks[2].se.sum_exec_runtime


def test_equal_shares_split_the_cpu_evenly_whatever_the_tasks_inside() -> None:
    """A group's share does not grow with its tasks: one group of one task and one of two
    tasks, equal shares, get half the CPU each; within the second, its two tasks split it."""
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(0, 0, 0), max_tasks=3, preempt_sections=False))
    s = m.init_state()
    s, a = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, b = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    for pid, tg in ((1, a), (2, b), (3, b)):
        s, _ = op(s, core.sched_move_task, pid, tg)
    start = {pid: s.tasks[pid].se.sum_exec_runtime for pid in (1, 2, 3)}
    for _ in range(1200):
        s = act(m, s, "tick", 0)
    got = {pid: s.tasks[pid].se.sum_exec_runtime - start[pid] for pid in (1, 2, 3)}
    total = 1200 * TICK_NSEC
    assert abs(got[1] - total // 2) <= 2 * TICK_NSEC, got
    assert abs(got[2] - got[3]) <= 2 * TICK_NSEC, got


# 2. cpu.shares writes.


def test_shares_are_clamped_and_the_root_group_refuses_them() -> None:
    m = SchedModel(SchedConfig(nr_cpus=2, tasks=(0, 0)))
    s = m.init_state()
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    assert s.task_groups[tg].shares == NICE_0_LOAD
    for written, kept in ((0, MIN_SHARES), (1, MIN_SHARES), (2, 2), (512, 512), (1 << 18, MAX_SHARES),
                          (1 << 19, MAX_SHARES)):  # fmt: skip
        s, rc = op(s, fair.sched_group_set_shares, tg, written)
        assert (rc, s.task_groups[tg].shares) == (0, kept), written
    before = s.fingerprint()
    s, rc = op(s, fair.sched_group_set_shares, ROOT_TASK_GROUP, 512)
    assert rc == -EINVAL and s.fingerprint() == before
    assert s.task_groups[ROOT_TASK_GROUP].shares == NICE_0_LOAD


def test_group_weight_follows_the_load_on_each_cpu() -> None:
    """calc_group_shares: the group's shares split over the CPUs in proportion to its load on
    each, floored at MIN_SHARES: a nice 0 task (1024) on cpu 0 and a nice 19 task (15) on cpu 1."""
    m = SchedModel(SchedConfig(nr_cpus=2, tasks=(0, 19)))
    s = m.init_state()
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, _ = op(s, core.sched_move_task, 1, tg)
    s, _ = op(s, core.sched_move_task, 2, tg)
    assert s.tasks[1].cpu == 0 and s.tasks[2].cpu == 1
    # cpu 1's entity was reweighted as task 2 joined; cpu 0's keeps the weight of its last
    # update (task 1 alone: all the shares) until something on cpu 0 updates it, a tick
    assert [s.tg_se[TgSe(tg, cpu)].load.weight for cpu in (0, 1)] == [1024, 1024 * 15 // 1039]
    s = act(m, s, "tick", 0)  # entity_tick -> update_cfs_group
    assert [s.tg_se[TgSe(tg, cpu)].load.weight for cpu in (0, 1)] == [1024 * 1024 // 1039, 14]  # 1009
    s, _ = op(s, fair.sched_group_set_shares, tg, 100)
    assert [s.tg_se[TgSe(tg, cpu)].load.weight for cpu in (0, 1)] == [100 * 1024 // 1039, MIN_SHARES]
    assert s.rqs[1].cfs.load == MIN_SHARES  # reweight_entity of a queued entity: the root load follows


# 3. sched_move_task.


def test_moving_a_queued_task_keeps_its_lag_and_the_queues_consistent() -> None:
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(0, 0, 5), max_tasks=3, preempt_sections=False))
    s = m.init_state()
    for _ in range(5):
        s = act(m, s, "tick", 0)
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    waiting = next(pid for pid in s.rqs[0].cfs.timeline if isinstance(pid, int))
    lag = fair.vruntime_delta(s.tasks[waiting].se.vruntime, s.rqs[0].cfs.min_vruntime)
    s, _ = op(s, core.sched_move_task, waiting, tg)  # rq_consistency, migration_renormalised...
    group_q = s.tg_cfs[TgSe(tg, 0)]
    assert (
        group_q.timeline == (waiting,)
        and group_q.nr_running == 1
        and group_q.load == s.tasks[waiting].se.load.weight
    )
    assert fair.vruntime_delta(s.tasks[waiting].se.vruntime, group_q.min_vruntime) == lag
    assert TgSe(tg, 0) in s.rqs[0].cfs.timeline and waiting not in s.rqs[0].cfs.timeline
    assert s.rqs[0].nr_running == 3 and s.rqs[0].cfs.nr_running == 3
    # the running task moves too: it keeps running, now under its group's entity
    running = s.rqs[0].curr
    s, _ = op(s, core.sched_move_task, running, tg)
    assert (
        s.rqs[0].curr == running
        and s.rqs[0].cfs.curr == TgSe(tg, 0)
        and s.tg_cfs[TgSe(tg, 0)].curr == running
    )
    assert s.tg_cfs[TgSe(tg, 0)].nr_running == 2 and s.rqs[0].cfs.nr_running == 2 and s.rqs[0].nr_running == 3
    # and back to the root: the group empties and its entity leaves the root cfs_rq
    for pid in (waiting, running):
        s, _ = op(s, core.sched_move_task, pid, ROOT_TASK_GROUP)
    assert not s.tg_se[TgSe(tg, 0)].on_rq and s.tg_cfs[TgSe(tg, 0)].nr_running == 0
    s, _ = op(s, core.sched_destroy_group, tg)
    assert tg not in s.task_groups and not s.tg_se and not s.tg_cfs


def test_moving_a_sleeping_task_places_it_on_its_old_queue_first() -> None:
    """detach_task_cfs_rq: place_entity(cfs_rq, se, 0), then se->vruntime -= min_vruntime;
    attach_task_cfs_rq: += the new cfs_rq's min_vruntime. A sleeper keeps at most half a
    latency of credit."""
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(0, 0), max_tasks=2, preempt_sections=False))
    s = m.init_state()
    sleeper = s.rqs[0].curr
    s = act(m, s, "sleep", 0)
    s = act(m, s, "schedule", 0)
    for _ in range(10):  # the other runs 40 ms: min_vruntime passes the sleeper's vruntime
        s = act(m, s, "tick", 0)
    lag = fair.vruntime_delta(s.tasks[sleeper].se.vruntime, s.rqs[0].cfs.min_vruntime)
    assert lag < -3 * MS
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, _ = op(s, core.sched_move_task, sleeper, tg)
    assert s.tasks[sleeper].state == TASK_INTERRUPTIBLE and not s.tasks[sleeper].on_rq
    new_min = s.tg_cfs[TgSe(tg, 0)].min_vruntime
    assert fair.vruntime_delta(s.tasks[sleeper].se.vruntime, new_min) == -3 * MS  # -sysctl_sched_latency / 2
    s = act(m, s, "wake_up", sleeper, 0)
    assert s.tasks[sleeper].on_rq == TASK_ON_RQ_QUEUED and s.tg_cfs[TgSe(tg, 0)].nr_running == 1


def test_a_forked_child_inherits_its_parents_group() -> None:
    m = SchedModel(SchedConfig(nr_cpus=2, tasks=(0, 0), max_tasks=4, preempt_sections=False))
    s = m.init_state()
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, sub = op(s, core.sched_create_group, tg)
    parent = s.rqs[0].curr
    s, _ = op(s, core.sched_move_task, parent, sub)
    s = act(m, s, "fork_task", 0, 1)
    child = s.next_pid - 1
    assert fair.task_group_of(s, child) == sub and s.tasks[child].cpu == 1
    assert fair.for_each_sched_entity(s, child) == [child, TgSe(sub, 1), TgSe(tg, 1)]
    assert s.tg_se[TgSe(tg, 1)].on_rq and s.rqs[1].nr_running == 2
    with pytest.raises(ValueError, match="child groups"):
        core.sched_destroy_group(s.clone(), tg)
    with pytest.raises(ValueError, match="tasks"):
        core.sched_destroy_group(s.clone(), sub)


# 4. Random runs: groups made, destroyed and reweighted, tasks moved, with everything else.


SHARES = (0, 1, 2, 100, 512, 1024, 3000, 1 << 19)


def random_run(seed: int, steps: int, config: SchedConfig) -> dict[str, int]:
    m = SchedModel(config)
    rng = random.Random(seed)
    s = m.init_state()
    taken: dict[str, int] = defaultdict(int)
    for _ in range(steps):
        if rng.random() < 0.2:
            groups = sorted(s.task_groups)
            live = sorted(pid for pid, t in s.tasks.items() if not t.is_idle)
            empty = [
                tg
                for tg in groups[1:]
                if tg not in s.sched_task_group.values()
                and all(g.parent != tg for g in s.task_groups.values())
            ]
            choices: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
                (fair.sched_group_set_shares, (rng.choice(groups), rng.choice(SHARES)))
            ]
            if len(groups) < 5:
                choices.append((core.sched_create_group, (rng.choice(groups),)))
            if empty:
                choices.append((core.sched_destroy_group, (rng.choice(empty),)))
            if live:
                choices += [(core.sched_move_task, (rng.choice(live), rng.choice(groups)))] * 3
            fn, args = rng.choice(choices)
            s, _ = op(s, fn, *args)
            taken[fn.__name__] += 1
            continue
        enabled: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for a, args in m.enabled(s):
            enabled[a.name].append(args)
        names = sorted(enabled)
        name = rng.choices(names, weights=[m.weights.get(n, 1) for n in names])[0]
        s = act(m, s, name, *rng.choice(enabled[name]))
        taken[name] += 1
    return taken


@pytest.mark.parametrize("seed", range(6))
def test_random_runs_with_groups_keep_every_invariant(seed: int) -> None:
    config = LARGE if seed % 2 else SchedConfig(nr_cpus=1, tasks=(0, 5, 0), max_tasks=4, nice_values=(0, 5))
    taken = random_run(seed, 500, config)
    assert {"sched_move_task", "sched_create_group", "sched_group_set_shares", "tick", "wake_up"} <= set(
        taken
    ), taken


def test_random_runs_with_groups_take_every_action() -> None:
    taken: set[str] = set()
    for seed in range(6):
        config = (
            LARGE if seed % 2 else SchedConfig(nr_cpus=1, tasks=(0, 5, 0), max_tasks=4, nice_values=(0, 5))
        )
        taken |= set(random_run(seed, 300, config))
    assert {a.name for a in SchedModel.actions} | {"sched_destroy_group"} <= taken, taken


# 5. A broken group weight is caught.


def calc_group_shares_no_floor(state: SchedState, q: TgSe) -> int:
    """calc_group_shares without the MIN_SHARES floor: a CPU with a sliver of the group's load
    gives its entity a weight of 0."""
    tg_shares = state.task_groups[q.tg].shares
    load = state.tg_cfs[q].load
    tg_weight = sum(state.tg_cfs[TgSe(q.tg, cpu)].load for cpu in range(len(state.cpus)))
    return min(tg_shares * load // tg_weight if tg_weight else tg_shares * load, tg_shares)


def set_shares_no_clamp(state: SchedState, tg: int, shares: int) -> int:
    """sched_group_set_shares that stores the written value as it is."""
    state.task_groups[tg] = state.task_groups[tg]._replace(shares=shares)
    for cpu in range(len(state.cpus)):
        for k in fair.for_each_sched_entity(state, TgSe(tg, cpu)):
            fair.update_cfs_group(state, k)
    return 0


def test_a_group_weight_without_the_min_shares_floor_is_caught() -> None:
    m = SchedModel(SchedConfig(nr_cpus=2, tasks=(0, 19)))
    s = m.init_state()
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, _ = op(s, core.sched_move_task, 1, tg)
    with mock.patch.object(fair, "calc_group_shares", calc_group_shares_no_floor):
        broken = s.clone()
        core.sched_move_task(broken, 2, tg)
        fair.sched_group_set_shares(broken, tg, 2)  # 2 * 15 // 1039 == 0 on cpu 1
    assert broken.tg_se[TgSe(tg, 1)].load.weight == 0
    found = violations(s, Step("sched_move_task", (2, tg)), broken)
    assert any("sched.rq_consistency" in v and "weighs 0, outside [2, 2]" in v for v in found), found
    # the model itself keeps the floor on the same operations
    s, _ = op(s, core.sched_move_task, 2, tg)
    s, _ = op(s, fair.sched_group_set_shares, tg, 2)
    assert s.tg_se[TgSe(tg, 1)].load.weight == MIN_SHARES


@pytest.mark.parametrize("written", [0, 1, 1 << 19])
def test_shares_stored_without_the_clamp_are_caught(written: int) -> None:
    m = SchedModel(SchedConfig(nr_cpus=1, tasks=(0,), max_tasks=1))
    s = m.init_state()
    s, tg = op(s, core.sched_create_group, ROOT_TASK_GROUP)
    s, _ = op(s, core.sched_move_task, 1, tg)
    with mock.patch.object(fair, "sched_group_set_shares", set_shares_no_clamp):
        broken = s.clone()
        fair.sched_group_set_shares(broken, tg, written)
    assert broken.task_groups[tg].shares == written
    found = violations(s, Step("sched_group_set_shares", (tg, written)), broken)
    assert any(
        "sched.rq_consistency" in v and f"task group {tg}'s shares are {written}" in v for v in found
    ), found
