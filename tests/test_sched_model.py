"""The CFS scheduler model against concrete kernel scenarios, with the kernel's own numbers.

Every step goes through ``run``, which takes one enabled action and checks every sched
invariant on the state it leads to and on the transition. The numbers are kernel/sched/fair.c's
defaults (4.x-5.x): sched_latency 6 ms, sched_min_granularity 0.75 ms and
sched_wakeup_granularity 1 ms, each times 1 + ilog2(ncpus), so 1x on one CPU and 2x on two;
HZ=250, so a tick is 4 ms; weights from sched_prio_to_weight (nice 0: 1024, nice 5: 335,
nice -5: 3121).

init_cfs_rq starts min_vruntime at (u64)-(1 << 20), so vruntimes are written ``at(x)``: x ns
past that start, wrapped to u64. Anything past 1.048576 ms has crossed 2^64.

__calc_delta truncates, and it divides by a queue's load through inv_weight = 0xFFFFFFFF // load
(__update_inv_weight), so slices come out a few ns short of the exact ratio: one nice-0 task's
6 ms period is a 5_999_998 ns vslice, and two tasks' 3 ms slice is 2_999_998.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter, defaultdict
from typing import Any

import pytest

import invariants
from model.contract import Step
from model.hw.cpu import TICK_NSEC
from model.sched import core, fair
from model.sched.model import INIT_MIN_VRUNTIME, LARGE, SMALL, SchedConfig, SchedModel, SchedState
from model.sched.sched import (
    TASK_INTERRUPTIBLE,
    TASK_ON_RQ_QUEUED,
    TASK_RUNNING,
    CfsRq,
    LoadWeight,
    SchedEntity,
)

INVARIANTS = invariants.for_model("sched")
U64 = (1 << 64) - 1
MS = 1_000_000
IDLE = -1  # swapper/0's pid

# One CPU, two nice-0 tasks: a 6 ms period split into two 3 ms slices, so every tick preempts.
ONE = SchedConfig(nr_cpus=1, tasks=(0, 0), max_tasks=3, nice_values=(-5, 0, 5))
# One CPU, nice 0 and nice 5 (the small profile's tasks, with nice -5 settable too).
MIXED = SchedConfig(nr_cpus=1, tasks=(0, 5), max_tasks=3, nice_values=(-5, 0, 5))
# Two CPUs: every sysctl doubles (latency 12 ms, min_granularity 1.5 ms, wakeup_gran 2 ms).
# Tasks 1 and 3 boot on CPU 0, task 2 on CPU 1.
TWO = SchedConfig(nr_cpus=2, tasks=(0, 0, 0), max_tasks=5, nice_values=(-5, 0, 5))


def at(x: int) -> int:
    """The vruntime x ns after init_cfs_rq's min_vruntime, as a u64."""
    return (INIT_MIN_VRUNTIME + x) & U64


def boot(config: SchedConfig) -> tuple[SchedModel, SchedState]:
    m = SchedModel(config)
    s = m.init_state()
    found = invariants.evaluate(INVARIANTS, s)
    assert found is None, found
    return m, s


def run(m: SchedModel, state: SchedState, name: str, *args: Any) -> tuple[SchedState, Any]:
    """One enabled step, with every sched invariant checked on it."""
    act = m.action_by_name[name]
    assert m.is_enabled(state, act, args), f"{name}{args} is not enabled"
    after, result = m.step(state, act, args)
    found = invariants.evaluate(INVARIANTS, after, state, Step(name, args, result))
    assert found is None, found
    return after, result


def runs(m: SchedModel, state: SchedState, *steps: tuple[Any, ...]) -> SchedState:
    """Several steps (name, *args), results dropped."""
    for name, *args in steps:
        state, _ = run(m, state, name, *args)
    return state


def enabled(m: SchedModel, state: SchedState, name: str, *args: Any) -> bool:
    return m.is_enabled(state, m.action_by_name[name], args)


def vr(state: SchedState, pid: int) -> int:
    return state.tasks[pid].se.vruntime


def cfs(state: SchedState, cpu: int = 0) -> CfsRq:
    return state.rqs[cpu].cfs


def curr(state: SchedState, cpu: int = 0) -> int:
    return state.rqs[cpu].curr


def lead(state: SchedState, pid: int) -> int:
    """(s64)(vruntime - min_vruntime) of a task against its own CPU's queue."""
    t = state.tasks[pid]
    return fair.vruntime_delta(t.se.vruntime, cfs(state, t.cpu).min_vruntime)


# 1. __calc_delta's fixed point.


def test_calc_delta_truncates_as_the_kernel_does() -> None:
    # sched_slice of one of two nice-0 tasks: inv_weight 0xFFFFFFFF // 2048 = 2097151,
    # fact 1024 * 2097151 fits in 32 bits, so (6 ms * fact) >> 32 = 2_999_998.6 -> 2_999_998
    assert fair.calc_delta(6 * MS, 1024, LoadWeight(2048, 0)) == (6 * MS * 1024 * 2097151) >> 32 == 2_999_998
    # a nice-5 task's 4 ms tick: fact = 1024 * 12820798 (sched_prio_to_wmult) = 13128497152 needs
    # 34 bits, so it is halved twice (3282124288) and the shift drops to 30
    nice5 = LoadWeight(335, 12820798)
    assert fair.calc_delta(4 * MS, 1024, nice5) == (4 * MS * 3282124288) >> 30 == 12_226_865
    assert 4 * MS * 1024 // 335 == 12_226_865  # the floor of 12_226_865.67: truncated, not rounded
    # nice -5: 1024 * 1376151 fits, shift 32
    assert fair.calc_delta(4 * MS, 1024, LoadWeight(3121, 1376151)) == 1_312_399
    # wakeup_gran: 1 ms in the wakee's virtual time; nice 0 is returned unscaled
    assert fair.calc_delta_fair(1 * MS, SchedEntity(nice5, False, 0, 0, 0, 0, 0)) == 3_056_716
    assert fair.get_update_sysctl_factor(1) == 1
    assert fair.get_update_sysctl_factor(2) == fair.get_update_sysctl_factor(3) == 2
    assert fair.get_update_sysctl_factor(8) == fair.get_update_sysctl_factor(64) == 4


# 2. Boot.


def test_boot_places_each_task_a_vslice_after_min_vruntime() -> None:
    m, s = boot(ONE)
    # task 1 forked alone: a whole 6 ms vslice (START_DEBIT); task 2 with one queued: 3 ms
    assert vr(s, 1) == at(5_999_998) == 4_951_422  # both past 2^64
    assert vr(s, 2) == at(2_999_998) == 1_951_422
    # the leftmost runs: the later fork, with the smaller debit
    assert curr(s) == cfs(s).curr == 2
    assert cfs(s).timeline == (1,)
    assert cfs(s).nr_running == s.rqs[0].nr_running == 2
    assert cfs(s).load == 2048
    # nothing has been charged, so update_min_vruntime has not run: still 2^64 - 2^20
    assert cfs(s).min_vruntime == INIT_MIN_VRUNTIME == (1 << 64) - (1 << 20)
    assert (s.rqs[0].nr_switches, s.rqs[0].sched_count) == (1, 1)  # swapper -> task 2
    assert not s.tasks[IDLE].need_resched and not s.tasks[2].need_resched
    for pid in (1, 2):
        t = s.tasks[pid]
        assert (t.state, t.on_rq, t.cpu, t.nice) == (TASK_RUNNING, TASK_ON_RQ_QUEUED, 0, 0)
        assert t.se.load == LoadWeight(1024, 4194304) and t.se.sum_exec_runtime == 0


def test_boot_on_two_cpus_doubles_the_latency() -> None:
    m, s = boot(TWO)
    # sched_latency 12 ms: one task's vslice 11_999_997, the second's on CPU 0 half of it
    assert (vr(s, 1), vr(s, 2), vr(s, 3)) == (at(11_999_997), at(11_999_997), at(5_999_997))
    assert (curr(s, 0), curr(s, 1)) == (3, 2)
    assert (cfs(s, 0).nr_running, cfs(s, 0).load, cfs(s, 1).nr_running, cfs(s, 1).load) == (2, 2048, 1, 1024)
    assert cfs(s, 0).min_vruntime == cfs(s, 1).min_vruntime == INIT_MIN_VRUNTIME


def test_large_profile_boot_debits_each_fork_by_the_load_it_joins() -> None:
    m, s = boot(LARGE)
    # tasks are forked at nice 0 (the idle task's) and reniced at once: task 1 is nice -5 by the
    # time task 3 forks onto CPU 0, so task 3's slice is 12 ms * 1024 / (3121 + 1024)
    assert [vr(s, pid) for pid in (1, 3, 5)] == [at(11_999_997), at(2_964_534), at(2_377_246)]
    assert [vr(s, pid) for pid in (2, 4, 6)] == [at(11_999_997), at(5_999_997), at(3_999_999)]
    assert [s.tasks[pid].nice for pid in range(1, 7)] == [-5, 0, 0, 0, 5, 10]
    assert (curr(s, 0), curr(s, 1)) == (5, 6)  # the last fork on each CPU is leftmost
    assert (cfs(s, 0).load, cfs(s, 1).load) == (3121 + 1024 + 335, 1024 + 1024 + 110)
    assert (cfs(s, 0).timeline, cfs(s, 1).timeline) == ((3, 1), (4, 2))


def test_a_vslice_under_2_20_ns_leaves_the_forked_vruntime_at_0() -> None:
    # Forked from the idle task, which is no cfs entity, a boot task keeps __sched_fork's
    # vruntime 0 and place_entity takes max_vruntime(0, min_vruntime + vslice). From the sixth
    # task on one CPU the vslice (6 ms / 6) is under 2^20 ns, so min_vruntime + vslice has not
    # crossed 2^64 and (s64)(it - 0) < 0: the task stays at 0, which is at(2^20).
    m, s = boot(SchedConfig(nr_cpus=1, tasks=(0,) * 8, max_tasks=8))
    assert [vr(s, pid) for pid in range(1, 6)] == [
        at(5_999_998),
        at(2_999_998),
        at(1_999_999),
        at(1_499_998),
        at(1_199_998),
    ]
    assert vr(s, 6) == vr(s, 7) == vr(s, 8) == 0 == at(1 << 20)
    # equal keys go right in the rb-tree, so task 6 is leftmost and runs
    assert curr(s) == 6 and cfs(s).timeline == (7, 8, 5, 4, 3, 2, 1)
    s, _ = run(m, s, "tick", 0)
    assert cfs(s).min_vruntime == 0  # the leftmost (task 7) is now the minimum: exactly 2^64
    assert curr(s) == 7


# 3. update_curr on a tick.


def test_a_tick_charges_a_nice_0_task_exactly_what_it_ran() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "tick", 0)
    assert s.cpus[0].clock == TICK_NSEC == 4 * MS
    t2 = s.tasks[2].se
    assert t2.sum_exec_runtime == 4 * MS
    assert t2.vruntime == at(2_999_998 + 4 * MS)  # NICE_0_LOAD: calc_delta_fair returns delta as is
    # min(curr, leftmost): task 1 at(5_999_998); min_vruntime has crossed 2^64 forwards
    assert cfs(s).min_vruntime == at(5_999_998) == 4_951_422
    assert fair.vruntime_delta(cfs(s).min_vruntime, INIT_MIN_VRUNTIME) == 5_999_998


def test_a_nice_5_task_ages_1024_over_335_times_as_fast() -> None:
    m, s = boot(MIXED)
    assert curr(s) == 2 and s.tasks[2].se.load == LoadWeight(335, 12820798)
    s, _ = run(m, s, "tick", 0)
    assert vr(s, 2) == at(2_999_998 + 12_226_865)  # __calc_delta(4 ms, 1024, 335), truncated
    assert s.tasks[2].se.sum_exec_runtime == 4 * MS
    assert cfs(s).min_vruntime == at(5_999_998)  # the leftmost, task 1
    # ideal slice 6 ms * 335 / 1359 = 1_479_028 ns: over, so task 1 runs
    assert fair.sched_slice(s, 0, s.tasks[2].se) == 1_479_028
    assert curr(s) == 1
    # task 1's slice is 4_520_971 ns: a 4 ms run is within it and it is behind task 2, so it
    # runs on; at 8 ms it is rescheduled but, still leftmost, picked again (no switch)
    mins = [cfs(s).min_vruntime]
    switches = s.rqs[0].nr_switches
    for expect in (at(9_999_998), at(13_999_998)):
        s, _ = run(m, s, "tick", 0)
        assert curr(s) == 1 and vr(s, 1) == expect
        mins.append(cfs(s).min_vruntime)
    assert s.rqs[0].nr_switches == switches and s.rqs[0].sched_count == 3
    assert s.tasks[1].se.prev_sum_exec_runtime == 8 * MS  # set_next_entity restarted its slice
    assert all(fair.vruntime_delta(b, a) >= 0 for a, b in zip(mins, mins[1:], strict=False))
    assert mins[-1] == at(13_999_998)


def test_a_lone_task_is_charged_but_never_checked() -> None:
    m, s = boot(SchedConfig(nr_cpus=1, tasks=(0,), max_tasks=2))
    for n in range(1, 6):
        s, _ = run(m, s, "tick", 0)
        # entity_tick checks preemption only with nr_running > 1; min_vruntime is curr's own
        assert vr(s, 1) == cfs(s).min_vruntime == at(5_999_998 + n * TICK_NSEC)
        assert not s.tasks[1].need_resched
    assert s.tasks[1].se.sum_exec_runtime == 20 * MS and s.tasks[1].se.prev_sum_exec_runtime == 0
    assert (s.rqs[0].nr_switches, s.rqs[0].sched_count) == (1, 1)


# 4. check_preempt_tick.


def test_the_first_tick_ends_a_3ms_slice_and_the_interrupt_return_preempts() -> None:
    m, s = boot(ONE)
    assert fair.sched_slice(s, 0, s.tasks[2].se) == 2_999_998
    s, _ = run(m, s, "tick", 0)
    # delta_exec 4 ms > ideal_runtime: resched_curr, and with preempt_count 0 the return from
    # the timer interrupt calls preempt_schedule_irq -> __schedule(true)
    assert curr(s) == cfs(s).curr == 1
    assert cfs(s).timeline == (2,)
    assert (s.rqs[0].nr_switches, s.rqs[0].sched_count) == (2, 2)
    assert not s.tasks[2].need_resched  # cleared on the way out
    t1 = s.tasks[1].se
    assert (t1.exec_start, t1.prev_sum_exec_runtime, t1.vruntime) == (4 * MS, 0, at(5_999_998))


def test_within_its_slice_the_tick_compares_vruntimes_instead() -> None:
    m, s = boot(TWO)
    ideal = fair.sched_slice(s, 0, s.tasks[3].se)
    assert ideal == 5_999_997  # 12 ms between two nice-0 tasks
    s, _ = run(m, s, "tick", 0)
    # delta_exec 4 ms: not past the slice and not under min_granularity (1.5 ms; no 4 ms tick
    # can be: delta_exec is a whole number of ticks, at least one). So check_preempt_tick
    # compares task 3 with the leftmost: 2 ms behind it, no resched.
    assert vr(s, 3) == at(9_999_997) and vr(s, 1) == at(11_999_997)
    assert curr(s, 0) == 3 and not s.tasks[3].need_resched
    s, _ = run(m, s, "tick", 0)  # 8 ms > ideal
    assert curr(s, 0) == 1 and vr(s, 3) == at(13_999_997)


def test_the_vdiff_test_preempts_a_task_a_slice_ahead_of_the_leftmost() -> None:
    m, s = boot(MIXED)
    s = runs(m, s, ("sleep", 0), ("schedule", 0))  # task 2 (nice 5) sleeps at at(2_999_998)
    assert curr(s) == 1 and cfs(s).min_vruntime == at(5_999_998)
    s, woke = run(m, s, "wake_up", 2, 0)
    # place_entity: max(at(2_999_998), min_vruntime - 3 ms): the same. 3 ms behind task 1, but
    # wakeup_gran is 1 ms in the wakee's virtual time, 3_056_716 ns for nice 5: no preemption.
    assert woke and vr(s, 2) == at(2_999_998)
    assert not s.tasks[1].need_resched
    ideal = fair.sched_slice(s, 0, s.tasks[1].se)
    assert ideal == 4_520_971  # 6 ms * 1024 / 1359
    s, _ = run(m, s, "tick", 0)
    # task 1 has run 4 ms, within its slice, but is now 7 ms ahead of task 2: more than the
    # slice (check_preempt_tick compares the vruntime lead with ideal_runtime)
    assert vr(s, 1) == at(9_999_998) and s.tasks[1].se.sum_exec_runtime == 4 * MS < ideal
    assert fair.vruntime_delta(vr(s, 1), vr(s, 2)) == 7 * MS > ideal
    assert curr(s) == 2  # rescheduled by the vdiff test and preempted


# 5. Preemption deferred while preempt_count > 0.


def test_a_tick_with_preemption_disabled_only_sets_need_resched() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "preempt_disable", 0)
    s, _ = run(m, s, "tick", 0)
    assert s.tasks[2].need_resched  # the slice is over ...
    assert curr(s) == 2 and s.rqs[0].nr_switches == 1  # ... but the interrupt return may not preempt
    assert (s.cpus[0].preempt_count, s.cpus[0].ticks_off) == (1, 1)
    # the model bounds a critical section to one tick; nor may the task block or exit in it
    for name in ("tick", "sleep", "schedule", "exit_task", "preempt_point"):
        assert not enabled(m, s, name, 0), name
    s, _ = run(m, s, "preempt_enable", 0)  # preempt_enable -> preempt_schedule
    assert curr(s) == 1 and s.rqs[0].nr_switches == 2
    assert (s.cpus[0].preempt_count, s.cpus[0].ticks_off) == (0, 0)
    assert not s.tasks[2].need_resched and cfs(s).timeline == (2,)


def test_interrupts_off_defer_the_tick_and_the_resched() -> None:
    m, s = boot(dataclasses.replace(ONE, irq_sections=True))
    s = runs(m, s, ("sleep", 0), ("schedule", 0), ("local_irq_disable", 0))
    assert not enabled(m, s, "tick", 0)  # the clock event waits for interrupts to come back on
    # task 1 wakes task 2 inside the section (spin_lock_irq; wake_up_process): 3 ms behind it
    s, _ = run(m, s, "wake_up", 2, 0)
    assert s.tasks[1].need_resched
    # preemptible() needs interrupts on: no preemption point, and preempt_enable does not schedule
    assert not enabled(m, s, "preempt_point", 0)
    s = runs(m, s, ("preempt_disable", 0), ("preempt_enable", 0), ("local_irq_enable", 0))
    assert curr(s) == 1 and s.cpus[0].clock == 0  # local_irq_enable does not schedule either
    s, _ = run(m, s, "preempt_point", 0)  # the reschedule IPI's return
    assert curr(s) == 2


# 6. Sleep and wake-up.


def test_sleep_dequeues_and_wake_up_places_half_a_latency_back() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "sleep", 0)
    assert s.tasks[2].state == TASK_INTERRUPTIBLE
    assert curr(s) == 2 and cfs(s).nr_running == 2  # set_current_state alone changes no queue
    s, _ = run(m, s, "schedule", 0)
    t2 = s.tasks[2]
    assert (t2.on_rq, t2.se.on_rq) == (0, False)
    assert t2.se.vruntime == at(2_999_998)  # DEQUEUE_SLEEP: absolute, not made relative
    assert curr(s) == 1 and cfs(s).timeline == () and s.rqs[0].nr_switches == 2
    assert (cfs(s).nr_running, s.rqs[0].nr_running, cfs(s).load) == (1, 1, 1024)
    # update_min_vruntime after the dequeue: curr is off the queue, so the leftmost (task 1)
    assert cfs(s).min_vruntime == at(5_999_998)
    s = runs(m, s, ("tick", 0), ("tick", 0))
    assert vr(s, 1) == cfs(s).min_vruntime == at(13_999_998)
    s, woke = run(m, s, "wake_up", 2, 0)
    assert woke
    # GENTLE_FAIR_SLEEPERS: no further back than min_vruntime - sched_latency / 2
    assert vr(s, 2) == at(10_999_998) == (cfs(s).min_vruntime - 3 * MS) & U64
    t2 = s.tasks[2]
    assert (t2.state, t2.on_rq, t2.se.on_rq) == (TASK_RUNNING, TASK_ON_RQ_QUEUED, True)
    assert (cfs(s).timeline, cfs(s).nr_running, cfs(s).load) == ((2,), 2, 2048)
    # check_preempt_wakeup: task 1 is 3 ms ahead, more than wakeup_gran (1 ms); the wakee is
    # the next buddy, and with two tasks queued task 1 is no last buddy
    assert s.tasks[1].need_resched and curr(s) == 1 and (cfs(s).next, cfs(s).last) == (2, None)
    s, _ = run(m, s, "preempt_point", 0)
    assert curr(s) == 2 and cfs(s).timeline == (1,) and s.rqs[0].nr_switches == 3
    assert cfs(s).next is None


def test_a_wakee_exactly_wakeup_gran_behind_does_not_preempt() -> None:
    m, s = boot(ONE)
    s = runs(m, s, ("tick", 0), ("tick", 0), ("tick", 0))  # 2, 1, 2 each run a 4 ms tick
    assert curr(s) == 1 and (vr(s, 1), vr(s, 2)) == (at(9_999_998), at(10_999_998))
    s = runs(m, s, ("sleep", 0), ("schedule", 0))
    assert cfs(s).min_vruntime == at(10_999_998)
    s, _ = run(m, s, "wake_up", 1, 0)
    # it slept less than 3 ms of virtual time: its own vruntime is kept
    assert vr(s, 1) == at(9_999_998)
    # wakeup_preempt_entity: vdiff 1 ms is not more than wakeup_gran (1 ms): 0, not 1
    assert fair.wakeup_preempt_entity(s, s.tasks[2].se, s.tasks[1].se) == 0
    assert curr(s) == 2 and not s.tasks[2].need_resched


# 7. The sleep window: set_current_state done, schedule() not reached.


def test_a_task_woken_before_it_schedules_stays_queued() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "sleep", 0)
    before = s
    s, woke = run(m, s, "wake_up", 2, 0)
    # p->on_rq: ttwu_remote -> ttwu_do_wakeup, which only sets TASK_RUNNING (and may preempt
    # curr, which here is p itself)
    assert woke
    t2 = s.tasks[2]
    assert (t2.state, t2.on_rq, t2.se.vruntime) == (TASK_RUNNING, TASK_ON_RQ_QUEUED, at(2_999_998))
    assert s.tasks[2] == before.tasks[2]._replace(state=TASK_RUNNING)
    assert s.rqs == before.rqs and not t2.need_resched
    # The model offers schedule only to a task that is not TASK_RUNNING; the kernel's
    # schedule() from here is __schedule(false) with prev->state == 0: no deactivate_task.
    assert not enabled(m, s, "schedule", 0)
    after = s.clone()
    core.schedule(after, 0)
    assert invariants.evaluate(INVARIANTS, after, s, Step("schedule", (0,))) is None
    assert after.tasks[2].on_rq == TASK_ON_RQ_QUEUED and curr(after) == 2  # still leftmost
    assert (after.rqs[0].nr_switches, after.rqs[0].sched_count) == (1, 2)


def test_a_task_preempted_in_its_sleep_window_stays_queued() -> None:
    m, s = boot(ONE)
    s = runs(m, s, ("sleep", 0), ("tick", 0))
    # __schedule(true) leaves a preempted task on the queue whatever its state
    t2 = s.tasks[2]
    assert curr(s) == 1
    assert (t2.state, t2.on_rq, t2.se.on_rq) == (TASK_INTERRUPTIBLE, TASK_ON_RQ_QUEUED, True)
    assert cfs(s).timeline == (2,) and cfs(s).nr_running == 2 and vr(s, 2) == at(6_999_998)

    # woken there: ttwu_remote, no place_entity, and task 2 is 1 ms ahead of task 1: no resched
    woken, _ = run(m, s, "wake_up", 2, 0)
    assert woken.tasks[2].state == TASK_RUNNING and vr(woken, 2) == at(6_999_998)
    assert cfs(woken).timeline == (2,) and not woken.tasks[1].need_resched

    # not woken: picked again after task 1's slice, it calls schedule() and only now leaves
    s, _ = run(m, s, "tick", 0)
    assert curr(s) == 2 and s.tasks[2].state == TASK_INTERRUPTIBLE
    s, _ = run(m, s, "schedule", 0)
    assert s.tasks[2].on_rq == 0 and curr(s) == 1 and cfs(s).nr_running == 1


def test_waking_a_running_task_changes_nothing() -> None:
    m, s = boot(TWO)
    # a TASK_RUNNING task is offered only its own CPU: the target would be irrelevant
    wakes = [args for act, args in m.enabled(s) if act.name == "wake_up"]
    assert wakes == [(1, 0), (2, 1), (3, 0)]
    for pid, cpu in wakes:  # queued task 1, running tasks 2 and 3
        after, woke = run(m, s, "wake_up", pid, cpu)
        assert woke is False
        assert after.fingerprint() == s.fingerprint()


# 8. fork.


def test_fork_places_the_child_past_min_vruntime_and_renormalises_it_to_the_target() -> None:
    m, s = boot(TWO)
    s = runs(m, s, ("tick", 0), ("tick", 1))
    # CPU 0: task 3 ran 4 ms (at(9_999_997), the minimum); CPU 1: task 2, alone, at(15_999_997)
    min0, min1 = cfs(s, 0).min_vruntime, cfs(s, 1).min_vruntime
    assert (min0, min1) == (at(9_999_997), at(15_999_997))
    s, child = run(m, s, "fork_task", 0, 1)
    assert child == 4
    # task_fork_fair on CPU 0: max(parent's vruntime, min_vruntime + vslice), where the vslice
    # counts the child in: 12 ms / 3 = 3_999_999; then -= CPU 0's min_vruntime, and
    # wake_up_new_task's enqueue on CPU 1 adds CPU 1's.
    assert vr(s, 4) == (min1 + 3_999_999) & U64 == at(19_999_996)
    c = s.tasks[4]
    assert (c.cpu, c.state, c.on_rq, c.nice) == (1, TASK_RUNNING, TASK_ON_RQ_QUEUED, 0)
    assert c.se.sum_exec_runtime == c.se.nr_migrations == 0  # __set_task_cpu, not set_task_cpu
    assert (cfs(s, 1).timeline, cfs(s, 1).nr_running, cfs(s, 1).load) == ((4,), 2, 2048)
    assert curr(s, 1) == 2 and not s.tasks[2].need_resched  # the child is 4 ms ahead
    # forked onto its own CPU: the same debit (CPU 0 still has two tasks) past its min_vruntime
    s, child = run(m, s, "fork_task", 0, 0)
    assert vr(s, child) == at(9_999_997 + 3_999_999)
    assert cfs(s, 0).timeline == (1, child) and not s.tasks[3].need_resched


def test_a_forked_child_preempts_only_when_more_than_wakeup_gran_behind() -> None:
    # Right after boot CPU 1's min_vruntime is still init_cfs_rq's: update_min_vruntime runs
    # from update_curr (once there is time to charge) and dequeue_entity, and task 2 has not
    # been charged yet. So task 2 runs 12 ms past min_vruntime there.
    m, s = boot(TWO)
    assert lead(s, 2) == 11_999_997
    s, child = run(m, s, "fork_task", 0, 1)
    # the parent (task 3, at(5_999_997)) is past min_vruntime + vslice (3_999_999): the child
    # starts at the parent's vruntime, relative 5_999_997, which on CPU 1 is 6 ms behind task 2
    assert vr(s, child) == at(5_999_997)
    assert fair.wakeup_preempt_entity(s, s.tasks[2].se, s.tasks[child].se) == 1  # 6 ms > 2 ms
    assert s.tasks[2].need_resched
    s, _ = run(m, s, "preempt_point", 1)
    assert curr(s, 1) == child and cfs(s, 1).timeline == (2,)


# 9. exit.


def test_exit_reaps_the_task_and_the_next_one_runs() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "exit_task", 0)
    assert 2 not in s.tasks  # do_task_dead -> __schedule -> finish_task_switch's put
    assert curr(s) == cfs(s).curr == 1 and cfs(s).timeline == ()
    assert (cfs(s).nr_running, s.rqs[0].nr_running, cfs(s).load, s.rqs[0].nr_switches) == (1, 1, 1024, 2)
    assert cfs(s).min_vruntime == at(5_999_998)
    s, _ = run(m, s, "exit_task", 0)
    assert set(s.tasks) == {IDLE}
    assert curr(s) == IDLE and cfs(s).curr is None
    assert (cfs(s).nr_running, cfs(s).load, cfs(s).min_vruntime) == (0, 0, at(5_999_998))
    assert not enabled(m, s, "exit_task", 0) and not enabled(m, s, "fork_task", 0, 0)
    s, _ = run(m, s, "tick", 0)  # an idle tick: time passes, nothing else
    assert s.cpus[0].clock == 4 * MS and cfs(s).min_vruntime == at(5_999_998)


# 10. set_user_nice.


def test_renicing_a_queued_task_keeps_its_place_and_resched_on_a_raise() -> None:
    m, s = boot(ONE)
    s, _ = run(m, s, "tick", 0)  # task 2 waits 1 ms past min_vruntime; task 1 runs
    assert (curr(s), lead(s, 2), cfs(s).min_vruntime) == (1, 1 * MS, at(5_999_998))
    s, _ = run(m, s, "set_nice", 2, 5)
    t2 = s.tasks[2]
    assert (t2.static_prio, t2.se.load) == (125, LoadWeight(335, 12820798))
    assert cfs(s).load == 1024 + 335 and cfs(s).timeline == (2,)
    # DEQUEUE_SAVE and ENQUEUE_RESTORE: vruntime - min_vruntime out and back, and DEQUEUE_SAVE
    # skips update_min_vruntime, so the task is back exactly where it was
    assert vr(s, 2) == at(6_999_998) and lead(s, 2) == 1 * MS
    assert not s.tasks[1].need_resched  # a lower priority for a task not running
    s, _ = run(m, s, "set_nice", 2, -5)
    assert s.tasks[2].se.load == LoadWeight(3121, 1376151) and cfs(s).load == 1024 + 3121
    assert lead(s, 2) == 1 * MS
    assert s.tasks[1].need_resched  # delta < 0: resched_curr
    # but task 1 is still the leftmost: __schedule picks it again, no switch
    s, _ = run(m, s, "preempt_point", 0)
    assert curr(s) == 1 and s.rqs[0].nr_switches == 2 and not s.tasks[1].need_resched


def test_renicing_the_running_task_restarts_its_slice() -> None:
    m, s = boot(TWO)
    s, _ = run(m, s, "tick", 1)  # task 2 runs alone on CPU 1
    assert vr(s, 2) == cfs(s, 1).min_vruntime == at(15_999_997)
    s, _ = run(m, s, "set_nice", 2, 5)
    t2 = s.tasks[2]
    # dequeue (SAVE) and put_prev_task, reweight, enqueue (RESTORE) and set_next_task
    assert t2.se.load == LoadWeight(335, 12820798) and cfs(s, 1).load == 335
    assert t2.se.vruntime == at(15_999_997) and lead(s, 2) == 0
    assert curr(s, 1) == cfs(s, 1).curr == 2 and cfs(s, 1).timeline == ()
    assert (t2.se.exec_start, t2.se.prev_sum_exec_runtime) == (4 * MS, 4 * MS)
    assert t2.need_resched  # lighter while running: resched_curr
    s, _ = run(m, s, "preempt_point", 1)  # alone: picked again
    assert curr(s, 1) == 2 and s.rqs[1].nr_switches == 1
    s, _ = run(m, s, "tick", 1)
    assert vr(s, 2) == at(15_999_997 + 12_226_865)  # now charged at weight 335


# 11. migrate (the load balancer's detach_task and attach_task).


def test_migration_keeps_the_place_relative_to_min_vruntime() -> None:
    m, s = boot(TWO)
    s = runs(m, s, ("tick", 1), ("tick", 1), ("tick", 0))
    assert (cfs(s, 0).min_vruntime, cfs(s, 1).min_vruntime) == (at(9_999_997), at(19_999_997))
    assert lead(s, 1) == 2 * MS  # task 1 waits 2 ms past CPU 0's min_vruntime
    s, _ = run(m, s, "migrate", 1, 1)
    t1 = s.tasks[1]
    assert (t1.cpu, t1.on_rq, t1.se.nr_migrations) == (1, TASK_ON_RQ_QUEUED, 1)
    assert vr(s, 1) == at(21_999_997) and lead(s, 1) == 2 * MS
    assert (cfs(s, 0).timeline, cfs(s, 0).nr_running, cfs(s, 0).load) == ((), 1, 1024)
    assert (cfs(s, 1).timeline, cfs(s, 1).nr_running, cfs(s, 1).load) == ((1,), 2, 2048)
    assert cfs(s, 0).min_vruntime == at(9_999_997)  # task 3 holds it
    assert not s.tasks[2].need_resched  # check_preempt_curr: task 1 is ahead of task 2

    # onto an idle CPU: check_preempt_curr reschedules the idle task at once
    s = runs(m, s, ("sleep", 0), ("schedule", 0))
    assert curr(s, 0) == IDLE and cfs(s, 0).min_vruntime == at(9_999_997)
    s, _ = run(m, s, "migrate", 1, 0)
    assert vr(s, 1) == at(9_999_997 + 2 * MS) and s.tasks[1].se.nr_migrations == 2
    assert s.tasks[IDLE].need_resched
    s, _ = run(m, s, "preempt_point", 0)
    assert curr(s, 0) == 1


# 12. Wake-up migration.


@pytest.mark.parametrize(
    "ticks_asleep, lands, preempts",
    [
        # min_vruntime - 2 ms on CPU 0 becomes min_vruntime - 2 ms on CPU 1: exactly wakeup_gran
        # (2 ms on two CPUs) behind task 2, which is not more
        (0, -2 * MS, False),
        # CPU 0's min_vruntime moves 16 ms on while it sleeps: relative -18 ms, which
        # place_entity clamps to -sched_latency / 2 = -6 ms: 6 ms behind task 2
        (4, -6 * MS, True),
    ],
)
def test_a_wake_up_on_another_cpu_renormalises_then_places(
    ticks_asleep: int, lands: int, preempts: bool
) -> None:
    m, s = boot(TWO)
    s = runs(m, s, *[("tick", 1)] * 3, ("tick", 0))
    assert (vr(s, 3), cfs(s, 1).min_vruntime) == (at(9_999_997), at(23_999_997))
    s = runs(m, s, ("sleep", 0), ("schedule", 0))  # task 3 sleeps at at(9_999_997)
    s = runs(m, s, *[("tick", 0)] * ticks_asleep)  # task 1 runs alone on CPU 0
    away = fair.vruntime_delta(vr(s, 3), cfs(s, 0).min_vruntime)
    assert away == -2 * MS - ticks_asleep * TICK_NSEC
    s, woke = run(m, s, "wake_up", 3, 1)
    # migrate_task_rq_fair: -= CPU 0's min_vruntime; ENQUEUE_MIGRATED: += CPU 1's; then
    # place_entity: max(that, min_vruntime - 6 ms)
    assert woke
    t3 = s.tasks[3]
    assert (t3.cpu, t3.se.nr_migrations, t3.state) == (1, 1, TASK_RUNNING)
    assert vr(s, 3) == (cfs(s, 1).min_vruntime + lands) & U64 and lead(s, 3) == lands
    assert cfs(s, 1).timeline == (3,) and cfs(s, 1).nr_running == 2
    assert s.tasks[2].need_resched is preempts


# 13. Fairness.


def test_nice_0_and_nice_5_share_one_cpu_1024_to_335() -> None:
    m, s = boot(MIXED)
    for _ in range(300):
        s, _ = run(m, s, "tick", 0)  # the fairness invariant is checked on every one
    got = {pid: s.tasks[pid].se.sum_exec_runtime for pid in (1, 2)}
    assert sum(got.values()) == 1200 * MS
    assert got == {1: 904 * MS, 2: 296 * MS}
    share = 1200 * MS * 1024 / (1024 + 335)  # 904.19 ms
    assert abs(got[1] - share) < TICK_NSEC  # within a tick of the exact weight share
    # and their vruntimes are within a slice of each other
    assert abs(fair.vruntime_delta(vr(s, 1), vr(s, 2))) < 6 * MS


def test_three_equal_tasks_take_4ms_turns() -> None:
    m, s = boot(SchedConfig(nr_cpus=1, tasks=(0, 0, 0), max_tasks=3))
    assert curr(s) == 3  # debits 6, 3 and 2 ms: the last fork is leftmost
    order = []
    for _ in range(30):
        s, _ = run(m, s, "tick", 0)  # each 4 ms tick is past the 2 ms slice
        order.append(curr(s))
    assert order == [2, 1, 3] * 10
    assert [s.tasks[pid].se.sum_exec_runtime for pid in (1, 2, 3)] == [40 * MS] * 3
    assert s.rqs[0].nr_switches == 31


# 14. Configs.


def test_bad_configs_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"nr_cpus 0 is not in 1\.\.8"):
        SchedConfig(nr_cpus=0)
    with pytest.raises(ValueError, match=r"nr_cpus 9 is not in 1\.\.8"):
        SchedConfig(nr_cpus=9)
    with pytest.raises(ValueError, match=r"nice levels \[20\] are not in -20\.\.19"):
        SchedConfig(tasks=(0, 20))
    with pytest.raises(ValueError, match=r"nice levels \[-21\]"):
        SchedConfig(nice_values=(-21, 0))
    with pytest.raises(ValueError, match="3 tasks at boot exceed max_tasks 2"):
        SchedConfig(tasks=(0, 0, 0), max_tasks=2)
    data = SchedModel(SMALL).config_json()
    with pytest.raises(ValueError, match=r"unknown config fields \['hz'\]"):
        SchedModel.config_from_json({**data, "hz": 1000})
    with pytest.raises(ValueError, match="nr_cpus 0"):
        SchedModel.config_from_json({**data, "nr_cpus": 0})


@pytest.mark.parametrize("profile", ["small", "large"])
def test_config_round_trips_through_json(profile: str) -> None:
    m = SchedModel.from_profile(profile)
    data = json.loads(json.dumps(m.config_json()))
    assert SchedModel.config_from_json(data) == m.config


# 15. Random walks.


# The actions each walk must have taken, beyond ticks.
WALKS = {
    "small": (
        SMALL,
        {"sleep", "schedule", "preempt_point", "wake_up", "fork_task", "exit_task", "preempt_disable"},
    ),
    "large": (
        LARGE,
        {"sleep_uninterruptible", "wake_up", "fork_task", "exit_task", "migrate", "local_irq_disable"},
    ),
}


@pytest.mark.parametrize("profile", sorted(WALKS))
def test_random_walk_keeps_every_invariant(profile: str) -> None:
    config, expect = WALKS[profile]
    m, steps = SchedModel(config), 400
    rng = random.Random(2026)
    s = m.init_state()
    taken: Counter[str] = Counter()
    for _ in range(steps):
        # an action first, then its arguments: wake_up's and set_nice's many would crowd out the
        # rest. Names are drawn with the model's weights (ticks 10x), as random runs draw them:
        # drawn uniformly, exit_task empties the small machine within a hundred steps.
        choices: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for act, args in m.enabled(s):
            choices[act.name].append(args)
        names = sorted(choices)
        name = rng.choices(names, weights=[m.weights.get(n, 1) for n in names])[0]
        s, _ = run(m, s, name, *rng.choice(choices[name]))
        taken[name] += 1
    assert expect <= set(taken), taken
    assert taken["tick"] > steps // 4  # time passes: slices end, fairness epochs grow


# 16. Buddies (cfs_rq->next and cfs_rq->last).


def test_the_wakee_that_preempts_runs_next_as_the_next_buddy() -> None:
    """check_preempt_wakeup (kernel/sched/fair.c, 4.x-5.x) calls set_next_buddy(pse) whenever
    wakeup_preempt_entity(curr, pse) == 1, NEXT_BUDDY or not, and pick_next_entity then runs
    cfs_rq->next if wakeup_preempt_entity(next, leftmost) < 1, not the leftmost."""
    m, s = boot(SchedConfig(nr_cpus=1, tasks=(5, 0, 0), max_tasks=3, preempt_sections=False))
    # tasks 3 and 2 run a tick each; then task 1 (nice 5) and task 3 sleep, and task 2 runs alone
    s = runs(m, s, ("tick", 0), ("tick", 0), ("sleep", 0), ("schedule", 0), ("sleep", 0), ("schedule", 0))
    assert curr(s) == 2 and (vr(s, 1), vr(s, 2), vr(s, 3)) == (at(5_999_998), at(8_520_971), at(6_578_262))
    # task 1 wakes at its own vruntime, 2.52 ms behind task 2: less than its wakeup_gran
    # (1 ms in nice-5 time, 3.06 ms), so no preemption
    s, _ = run(m, s, "wake_up", 1, 0)
    assert not s.tasks[2].need_resched and (cfs(s).next, cfs(s).last) == (None, None)
    # task 3 (nice 0) wakes 1.94 ms behind task 2: more than 1 ms, so it preempts and the kernel
    # makes it cfs_rq->next. The leftmost is task 1, but task 3 is only 0.58 ms right of it,
    # within wakeup_gran(task 1) = 3.06 ms: pick_next_entity takes the buddy, task 3.
    s, _ = run(m, s, "wake_up", 3, 0)
    assert s.tasks[2].need_resched and cfs(s).timeline[0] == 1
    # three tasks queued, under sched_nr_latency (8): task 2 is not made the last buddy
    assert (cfs(s).next, cfs(s).last, cfs(s).nr_running) == (3, None, 3)
    assert fair.wakeup_preempt_entity(s, s.tasks[3].se, s.tasks[1].se) == 0
    s, _ = run(m, s, "preempt_point", 0)
    assert curr(s) == 3 and cfs(s).timeline == (1, 2)
    assert (cfs(s).next, cfs(s).last) == (None, None)  # the one picked stops being a buddy


# Eight nice-0 tasks on one CPU (sched_nr_latency): task 6 sleeps, and after six ticks it is
# woken 3 ms behind min_vruntime while task 7 runs. It preempts task 7, and with eight queued
# task 7 becomes the last buddy.
EIGHT = SchedConfig(nr_cpus=1, tasks=(0,) * 8, max_tasks=8)


def _eight_with_buddies(*before_wake: tuple[Any, ...]) -> tuple[SchedModel, SchedState]:
    m, s = boot(EIGHT)
    assert curr(s) == 6
    s = runs(m, s, ("sleep", 0), ("schedule", 0), *[("tick", 0)] * 6, *before_wake)
    assert curr(s) == 7 and lead(s, 7) == lead(s, 8) == 0 and lead(s, 6) == -4 * MS
    s, _ = run(m, s, "wake_up", 6, 0)
    assert lead(s, 6) == -3 * MS and cfs(s).nr_running == 8 and s.tasks[7].need_resched
    assert (cfs(s).next, cfs(s).last) == (6, 7)
    return m, s


def test_the_preempted_task_runs_again_as_the_last_buddy() -> None:
    m, s = _eight_with_buddies()
    s, _ = run(m, s, "preempt_point", 0)
    # the wakee is the leftmost as well as the next buddy; task 7, 3 ms right of it (more than
    # wakeup_gran), is not taken, and stays the last buddy
    assert curr(s) == 6 and (cfs(s).next, cfs(s).last) == (None, 7)
    s, _ = run(m, s, "tick", 0)
    # task 6 ran its 0.75 ms slice. Tasks 8 and 7 are both at min_vruntime, task 8 leftmost
    # (equal keys go right), but the last buddy is within wakeup_gran of it: task 7 runs
    assert cfs(s).timeline[:2] == (8, 5) and vr(s, 7) == vr(s, 8)
    assert curr(s) == 7 and (cfs(s).next, cfs(s).last) == (None, None)


def test_a_task_that_ran_its_slice_is_no_buddy() -> None:
    """check_preempt_tick: past its ideal slice, curr is resched and clear_buddies'd, so a
    last buddy does not bring it back."""
    m, s = _eight_with_buddies(("preempt_disable", 0))
    s, _ = run(m, s, "tick", 0)  # preemption is off: task 7 runs 4 ms more, past its slice
    assert curr(s) == 7 and s.tasks[7].need_resched and (cfs(s).next, cfs(s).last) == (6, None)
    s, _ = run(m, s, "preempt_enable", 0)
    assert curr(s) == 6 and (cfs(s).next, cfs(s).last) == (None, None)
    assert cfs(s).timeline[0] == 8 and cfs(s).timeline[-1] == 7


def test_a_buddy_the_balancer_moves_is_cleared() -> None:
    """dequeue_entity clears the buddies it dequeues: the load balancer moving cpu 0's next
    buddy away leaves cpu 0 without one (attach_task's check_preempt_curr may make it cpu 1's)."""
    m, s = boot(TWO)
    s = runs(m, s, ("sleep", 0), ("schedule", 0), ("tick", 0), ("tick", 0))
    s, _ = run(m, s, "wake_up", 3, 0)
    assert curr(s, 0) == 1 and s.tasks[1].need_resched and (cfs(s, 0).next, cfs(s, 0).last) == (3, None)
    s, _ = run(m, s, "migrate", 3, 1)
    assert s.tasks[3].cpu == 1 and cfs(s, 0).next is None and cfs(s, 0).timeline == ()
