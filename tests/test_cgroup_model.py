"""The cgroup model against the kernel's behaviour: hierarchical charges, reclaim before the
OOM killer, the fault's release path, charges that stay behind on migration, pids.max at
fork, and the errnos of bad writes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import z3

import invariants
from checkers.explore import explore
from checkers.prove import prove
from invariants.claims import paths
from model.cgroup import cgroup, page_counter
from model.cgroup.model import LARGE, CgroupConfig, CgroupModel, CgroupState
from model.cgroup.page_counter import PAGE_COUNTER_MAX
from model.contract import Step
from model.hw.cpu import TICK_NSEC
from model.mm import buddy
from model.sched.model import SchedConfig

A = 1  # the first cgroup mkdir makes


def run(
    model: CgroupModel, state: CgroupState, *steps: tuple[str, tuple[Any, ...]]
) -> tuple[CgroupState, list[Any]]:
    results = []
    for name, args in steps:
        enabled = {(act.name, a) for act, a in model.enabled(state)}
        assert (name, args) in enabled, (name, args)
        state, result = model.step(state, model.action_by_name[name], args)
        results.append(result)
    return state, results


def in_a(model: CgroupModel) -> tuple[CgroupState, int]:
    """/A made, and the task running on CPU 0 moved into it."""
    state = model.init_state()
    pid = state.sched.rqs[0].curr
    state, _ = run(model, state, ("mkdir", (0, "A")), ("attach", (pid, A)))
    return state, pid


def test_memparse_and_the_limit_file() -> None:
    assert page_counter.page_counter_memparse("8K", "-1") == 2
    assert page_counter.page_counter_memparse("4097", "-1") == 1  # rounded down to pages
    assert page_counter.page_counter_memparse("-1", "-1") == PAGE_COUNTER_MAX
    assert page_counter.page_counter_memparse("8X", "-1") is None
    model = CgroupModel()
    state, _ = in_a(model)
    state, results = run(
        model,
        state,
        ("write", (A, "memory.limit_in_bytes", "8X")),
        ("write", (0, "memory.limit_in_bytes", "4K")),
    )
    assert results == [-22, -22]  # EINVAL for a bad value, and at the root


def test_a_charge_is_a_charge_of_every_ancestor_and_the_page_stays_when_its_task_moves() -> None:
    model = CgroupModel()
    state, pid = in_a(model)
    state, _ = run(model, state, ("fault", (0, 0)))
    assert state.memory[A].usage == state.memory[0].usage == 1 and pid in state.pending
    state, (mapped,) = run(model, state, ("fault_map", (0,)))
    assert mapped and list(state.page_memcg.values()) == [A]
    state, _ = run(model, state, ("attach", (pid, 0)), ("fault", (0, 1)), ("fault_map", (0,)))
    assert sorted(state.page_memcg.values()) == [0, A]  # the new page is the root's; the old stays A's
    assert state.memory[A].usage == 1
    state, _ = run(model, state, ("munmap", (0, 0)))
    assert state.memory[A].usage == 0 and state.memory[0].usage == 0


def test_reclaim_comes_before_the_oom_killer() -> None:
    model = CgroupModel()
    state, pid = in_a(model)
    state, results = run(model, state, ("write", (A, "memory.limit_in_bytes", "4K")), ("read", (0, 0)))
    assert results == [0, 0] and len(state.page_cache) == 1
    # The fault's charge finds A full: reclaim drops the cached page, and the fault goes on.
    state, _ = run(model, state, ("fault", (0, 0)))
    assert state.page_cache == () and state.memory[A].usage == 1 and not state.killed
    state, _ = run(model, state, ("fault_map", (0,)))
    # Nothing left to reclaim: the next charge kills the task with the most memory in A.
    state, (result,) = run(model, state, ("fault", (0, 1)))
    assert state.killed == {pid} and ("oom", A, pid) in state.events
    assert state.memory[A].usage == 1 and state.mms[state.mm_of[pid]].ptes == ()  # reaped, recharged
    assert result == 0
    steps = [Step("mkdir", (0, "A")), Step("attach", (pid, A)), Step("fault", (0, 0))]
    assert model.diagram(steps)[-2:] == ["       memcg / 1/max, /A 1/max", "       try pfn 4 to /A"]


def test_the_release_path_cancels_the_charge() -> None:
    sched = SchedConfig(nr_cpus=2, tasks=(0,), max_tasks=3, nice_values=(), preempt_sections=False)
    model = CgroupModel(CgroupConfig(sched=sched))
    state, pid = in_a(model)
    state, (thread,) = run(model, state, ("fork", (0, 1, True)))  # a thread, woken on the idle CPU 1
    state, _ = run(model, state, ("tick", (1,)))
    assert state.sched.rqs[1].curr == thread and state.mm_of[thread] == state.mm_of[pid]
    state, _ = run(model, state, ("fault", (0, 0)), ("fault", (1, 0)))  # both fault the same page
    assert state.memory[A].usage == 2
    state, _ = run(model, state, ("fault_map", (1,)), ("fault_map", (0,)))
    # The second finds the pte set under the lock: mem_cgroup_cancel_charge, put_page.
    assert [e[0] for e in state.events] == ["cancel"] and state.memory[A].usage == 1


def test_pids_max_refuses_a_fork_but_not_a_move() -> None:
    model = CgroupModel()
    state, pid = in_a(model)
    state, (child,) = run(model, state, ("fork", (0, 0, False)))
    state, results = run(
        model, state, ("attach", (child, 0)), ("write", (A, "pids.max", "1")), ("fork", (0, 0, False))
    )
    assert results == [0, 0, -11] and state.pids[A].counter == 1  # EAGAIN, before the task exists
    state, _ = run(model, state, ("attach", (child, A)))
    assert state.pids[A].counter == 2  # above pids.max: pids_can_attach does not check
    state, results = run(model, state, ("write", (A, "pids.max", "-1")), ("write", (0, "pids.max", "1")))
    assert results == [-22, -2]  # EINVAL; ENOENT: the root has no pids.max


def test_a_limit_below_usage_reclaims_then_refuses() -> None:
    model = CgroupModel()
    state, pid = in_a(model)
    faults = [("fault", (0, v)) if i % 2 == 0 else ("fault_map", (0,)) for v in (0, 1) for i in (0, 1)]
    state, _ = run(model, state, ("read", (0, 0)), *faults)
    assert state.memory[A].usage == 3
    state, (result,) = run(model, state, ("write", (A, "memory.limit_in_bytes", "4K")))
    assert result == -16 and state.page_cache == ()  # the cache went, the anonymous pages cannot
    assert state.memory[A].max == PAGE_COUNTER_MAX and state.memory[A].usage == 2
    state, (result,) = run(model, state, ("write", (A, "memory.limit_in_bytes", "-1")))
    assert result == 0


def test_rmdir_and_the_memcg_that_outlives_its_cgroup() -> None:
    model = CgroupModel()
    state, pid = in_a(model)
    state, _ = run(model, state, ("read", (0, 0)))
    state, results = run(model, state, ("rmdir", (A,)), ("attach", (pid, 0)), ("rmdir", (A,)))
    assert results == [-16, 0, 0]  # EBUSY while populated
    assert not state.cgroups[A].online and state.memory[A].usage == 1  # a zombie: its page is charged
    state, (result,) = run(model, state, ("attach", (pid, A)))
    assert result == -19  # ENODEV
    state, _ = run(model, state, ("write", (0, "memory.limit_in_bytes", "-1")))
    assert A in state.memory


def test_slab_pages_of_an_accounted_cache_are_charged_to_the_tasks_memcg_until_freed() -> None:
    model = CgroupModel()
    state = model.init_state()
    pid = state.sched.rqs[0].curr
    state, (obj,) = run(model, state, ("kmem_cache_alloc", (0, "signal_cache")))
    assert obj and state.page_memcg == {} and state.memory[0].usage == 0  # the root charges nothing
    state, _ = run(model, state, ("kmem_cache_free", (0, obj)), ("mkdir", (0, "A")), ("attach", (pid, A)))
    state, (first, second) = run(
        model, state, ("kmem_cache_alloc", (0, "signal_cache")), ("kmem_cache_alloc", (0, "signal_cache"))
    )
    # Both from A's copy of the cache, in one order-0 slab charged to A once.
    assert {cache for addr, cache, _ in state.slub.live} == {"signal_cache(1:A)"}
    slab = first >> 12
    assert second >> 12 == slab and state.page_memcg == {slab: A} and state.memory[A].usage == 1
    # The task leaves and frees both objects; the slab stays A's (it is the CPU's slab).
    state, _ = run(
        model, state, ("attach", (pid, 0)), ("kmem_cache_free", (0, first)), ("kmem_cache_free", (0, second))
    )
    assert state.page_memcg == {slab: A} and state.memory[A].usage == 1
    # rmdir deactivates A's cache: its empty slab goes back, A is uncharged and freed, and
    # so is the cache.
    state, (result,) = run(model, state, ("rmdir", (A,)))
    assert result == 0 and state.page_memcg == {} and A not in state.memory
    assert "signal_cache(1:A)" not in state.slub.caches and state.memory[0].usage == 0


def test_a_slab_charge_counts_every_page_and_a_refused_one_fails_the_slab() -> None:
    model = CgroupModel(LARGE)
    boot = model.init_state()
    pid = boot.sched.rqs[1].curr
    cg = boot.css_set[pid]
    state, (obj, other) = run(
        model, boot, ("kmem_cache_alloc", (1, "signal_cache")), ("kmem_cache_alloc", (1, "names_cache"))
    )
    head = obj >> 12
    assert state.slub.slabs[head].order == 1 and state.page_memcg == {
        head: cg
    }  # names_cache: no SLAB_ACCOUNT
    assert state.memory[cg].usage == state.memory[0].usage == 2
    # Reclaim cannot free a slab: a limit below its two pages is refused.
    state, (result,) = run(model, state, ("write", (cg, "memory.limit_in_bytes", "4K")))
    assert result == -16 and state.memory[cg].max == PAGE_COUNTER_MAX
    # With room for one page, the order-1 try fails without reclaim or OOM kill (allocate_slab's
    # alloc_gfp), and the order-0 fallback is charged.
    state, (_, first) = run(
        model, boot, ("write", (cg, "memory.limit_in_bytes", "4K")), ("kmem_cache_alloc", (1, "signal_cache"))
    )
    assert state.slub.slabs[first >> 12].order == 0 and not state.killed
    # Its two objects taken, the next slab finds no room even after the OOM killer has killed
    # every task in the cgroup's subtree (a slab is no task's memory): NULL, and the page
    # that was not charged went back.
    state, (_, third) = run(
        model, state, ("kmem_cache_alloc", (1, "signal_cache")), ("kmem_cache_alloc", (1, "signal_cache"))
    )
    assert third == 0 and pid in state.killed and state.memory[cg].usage == 1
    assert [pfn for pfn, _ in state.mm.allocated] == list(state.slub.slabs)


@pytest.mark.parametrize(
    "bad",
    [
        dict(sched=SchedConfig(nr_cpus=1, tasks=(0,), nice_values=())),  # the buddy config has two CPUs
        dict(boot_cgroups=("A/B",)),  # no /A before it
        dict(boot_cgroups=("A", "B", "C")),  # more than max_cgroups
    ],
)
def test_bad_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CgroupConfig(**bad)


def test_the_large_profile_boots_into_a_nested_hierarchy() -> None:
    state = CgroupModel(LARGE).init_state()
    assert sorted(cgroup.path(state, cg) for cg in state.cgroups) == ["/", "/A", "/A/B", "/A/B/C"]
    assert [state.pids[cg].counter for cg in (1, 2, 3)] == [4, 2, 1] and len(state.css_set) == 6


def test_a_small_exploration_holds() -> None:
    model = CgroupModel()
    result = explore(model, invariants.for_model("cgroup"), max_states=20_000)
    assert result.held


def test_the_charge_proof_runs_the_model_both_ways_at_every_branch() -> None:
    x = z3.Int("x")
    found = paths(lambda: "over" if x > 3 else max(x, 1))
    assert len(found) == 3 and {str(r) for _, r in found} == {"over", "1", "x"}
    assert paths(lambda: 5 > 3) == [(True, True)]  # plain ints: one path
    invariants.load_all()
    result = prove(invariants.PROOFS["cgroup.try_charge_inductive"], samples=500, seed=0)
    assert result.status == "pass", result


def test_cpu_shares_divide_a_cpu_between_sibling_groups() -> None:
    """/A (1024) and /B (2048), a task in each, one CPU: B's task gets twice A's CPU time,
    within the scheduler's lag, and every invariant holds on the way (cgroup.scheduler runs
    the scheduler's own, fairness per cfs_rq included)."""
    sched = SchedConfig(nr_cpus=1, tasks=(0, 0), max_tasks=3, nice_values=(), preempt_sections=False)
    model = CgroupModel(
        CgroupConfig(
            sched=sched,
            slub=replace(CgroupConfig().slub, buddy=buddy.SMALL),
            names=("A", "B"),
            shares=("2048", "0", "x"),
        )
    )
    state = model.init_state()
    state, results = run(
        model, state, ("mkdir", (0, "A")), ("mkdir", (0, "B")), ("attach", (1, 1)), ("attach", (2, 2)),
        ("write", (2, "cpu.shares", "2048")), ("write", (1, "cpu.shares", "x")), ("write", (0, "cpu.shares", "2048")),
    )  # fmt: skip
    assert results == [1, 2, 0, 0, 0, -22, -22]  # a bad number; the root group
    checks = invariants.for_model("cgroup")
    for _ in range(600):
        before = state
        state, _ = model.step(state, model.action_by_name["tick"], (0,))
        for inv in checks:
            found = inv.check(before, Step("tick", (0,)), state) if inv.transition else inv.check(state)
            assert not found, (inv.name, found)
    a, b = (state.sched.tasks[pid].se.sum_exec_runtime for pid in (1, 2))
    assert a > 0 and abs(b - 2 * a) <= 6 * TICK_NSEC, (a, b)  # 2:1, within a few ticks of slices
    state, (result,) = run(model, state, ("write", (1, "cpu.shares", "0")))
    assert result == 0 and state.sched.task_groups[state.cgroups[1].tg].shares == 2  # clamped, no error


def test_a_slab_mutant_counterexample_replays_with_its_diagram() -> None:
    from checkers import plan
    from checkers.mutants import load_all
    from checkers.replay import replay

    m = load_all()["cgroup.slab_account_ignored"]
    with m.applied():
        result = plan.run_job(plan.Job("cgroup", "explore", (m.breaks,)), profile="ci", seed=0, mutant=m.name)
    assert result.counterexample is not None
    again = replay(result.counterexample)  # the state, SLUB's caches inside, goes to JSON
    assert again.reproduced and again.violations == result.counterexample.violations
    assert [s.action for s in result.counterexample.steps] == ["mkdir", "attach", "kmem_cache_alloc"]
