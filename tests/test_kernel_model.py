"""The whole-kernel model against the kernel's behaviour: boot, the system call table,
copy-on-write, TLB flushes, exit and wait4, brk, and that its mutants are caught."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

import invariants
from checkers.explore import explore
from model.cgroup.cgroup import ROOT
from model.contract import Step
from model.hw import mmu
from model.hw.mmu import PAGE_SIZE
from model.kernel import (
    CLONE_THREAD_FLAGS,
    EACCES,
    EAGAIN,
    ECHILD,
    EINTR,
    EINVAL,
    ENODEV,
    ENOSYS,
    EPIPE,
    ESRCH,
    INIT,
    KSWAPD,
    KTHREADD,
    NR,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    SIG_HANDLER,
    SIG_IGN,
    SIGBUS,
    SIGCHLD,
    SIGKILL,
    SIGPIPE,
    SMALL,
    STACK_TOP,
    START_BRK,
    SYSCALL_ACTIONS,
    KernelConfig,
    KernelModel,
    KernelState,
    NR_syscalls,
    syscall_action,
)
from model.mm import mmap, vmscan
from model.mm.mmzone import WMARK_HIGH, WMARK_LOW
from model.sched.sched import TASK_INTERRUPTIBLE, idle_pid

STACK = STACK_TOP - PAGE_SIZE
# The small machine with the watermarks of an ordinary one (min_free_kbytes 16: min, low and
# high 3, 6 and 9 pages), for the tests that reclaim and kswapd would only get in the way of.
ROOMY = replace(SMALL, slub=replace(SMALL.slub, buddy=replace(SMALL.slub.buddy, min_free_kbytes=16)))
RW = mmap.PROT_READ | mmap.PROT_WRITE
ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def run(
    model: KernelModel, state: KernelState, *steps: tuple[str, tuple[Any, ...]]
) -> tuple[KernelState, list[Any]]:
    """Each step must be enabled, and every invariant must hold after it."""
    results = []
    invs = invariants.for_model("kernel")
    for name, args in steps:
        enabled = {(act.name, a) for act, a in model.enabled(state)}
        assert (name, args) in enabled, (name, args)
        after, result = model.step(state, model.action_by_name[name], args)
        for inv in invs:
            found = inv.check(state, Step(name, args), after) if inv.transition else inv.check(after)
            assert found == [], (inv.name, found)
        state = after
        results.append(result)
    return state, results


def syscall(cpu: int, name: str, *args: int) -> tuple[str, tuple[Any, ...]]:
    return (syscall_action(NR[name]), (cpu, NR[name], tuple(args)))


def test_boot_runs_start_kernel_in_order_and_leaves_init_kthreadd_and_kswapd() -> None:
    state = KernelModel(ROOMY).init_state()
    assert state.boot == (
        "trap_init",
        "mm_init",
        "sched_init",
        "init_IRQ",
        "time_init",
        "fork_init",
        "cgroup_init",
        "rest_init",
    )
    assert sorted(state.procs) == [INIT, KTHREADD, KSWAPD] and state.kswapd == KSWAPD
    assert state.procs[KSWAPD].parent == KTHREADD and state.procs[KSWAPD].mm is None
    assert state.sched.tasks[KSWAPD].state == TASK_INTERRUPTIBLE  # memory is plentiful: it sleeps
    assert state.procs[INIT].mm is not None and state.procs[KTHREADD].mm is None  # init ran its program
    assert state.sched.tasks[KTHREADD].state == TASK_INTERRUPTIBLE and not state.sched.tasks[KTHREADD].on_rq
    assert state.sched.rqs[0].idle == idle_pid(0)  # init_task, pid 0, is CPU 0's idle task
    # init's mm: a PGD and its stack VMA; its task_struct and mm_struct are slab objects.
    m = state.mms[state.procs[INIT].mm]
    assert m.vmas == (mmap.Vma(STACK, STACK_TOP, m.vmas[0].vm_flags),)
    # init's mm came from /A's copies of the caches (SLAB_ACCOUNT); the boot threads' task_structs
    # from the root caches.
    assert {cache for _, cache, _ in state.slub.live} == {
        "task_struct",
        "mm_struct(1:A)",
        "vm_area_struct(1:A)",
    }
    assert state.tlb[0].pgd == m.pgd  # CPU 0 runs init


def test_a_number_outside_the_table_is_enosys_and_changes_nothing() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    after, (result,) = run(model, state, ("syscall", (0, NR_syscalls, ())))
    assert result == -ENOSYS and after.fingerprint() == state.fingerprint()
    # A number inside the range but not in the modelled table is sys_ni_syscall's too.
    assert KernelModel(ROOMY).step(state, model.action_by_name["syscall"], (0, 4, ()))[1] == -ENOSYS  # stat


def test_a_write_after_fork_breaks_copy_on_write() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (_, child) = run(model, state, ("store", (0, STACK)), syscall(0, "fork", 1))
    parent_pfn = mmu.walk(state.pt, state.mms[state.procs[INIT].mm].pgd, STACK)
    child_pfn = mmu.walk(state.pt, state.mms[state.procs[child].mm].pgd, STACK)
    assert parent_pfn is not None and child_pfn is not None
    assert parent_pfn[0] == child_pfn[0] and state.mapcount[parent_pfn[0]] == 2
    assert not parent_pfn[1] & mmu._PAGE_RW and not child_pfn[1] & mmu._PAGE_RW  # both write-protected
    assert state.tlb[0].entries == {}  # dup_mmap flushed the parent's TLB
    # The child (on CPU 1) writes: it gets its own copy; the parent still reads its own word.
    state, (written, read) = run(model, state, ("store", (1, STACK)), ("load", (0, STACK)))
    assert written == child and read == INIT
    child_pfn = mmu.walk(state.pt, state.mms[state.procs[child].mm].pgd, STACK)
    assert child_pfn is not None and child_pfn[0] != parent_pfn[0] and state.mapcount[parent_pfn[0]] == 1


def test_munmap_and_mprotect_flush_the_tlb() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (addr,) = run(model, state, syscall(0, "mmap", 0, PAGE_SIZE, RW, ANON))
    state, _ = run(model, state, ("store", (0, addr)))
    pfn = state.tlb[0].entries[addr >> 12][0]
    state, (result,) = run(model, state, syscall(0, "mprotect", addr, PAGE_SIZE, mmap.PROT_READ))
    assert result == 0 and addr >> 12 not in state.tlb[0].entries
    state, (word,) = run(model, state, ("load", (0, addr)))
    assert word == INIT and not state.tlb[0].entries[addr >> 12][1] & mmu._PAGE_RW
    state, (result,) = run(model, state, syscall(0, "munmap", addr, PAGE_SIZE))
    assert result == 0 and addr >> 12 not in state.tlb[0].entries
    assert pfn not in state.mapcount and all(p != pfn for p, _ in state.mm.allocated)


def test_exit_leaves_a_zombie_for_wait4_and_gives_every_page_back() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    assert run(model, state, syscall(0, "wait4"))[1] == [-ECHILD]
    allocated = set(state.mm.allocated)

    def non_slab(s: KernelState) -> set[int]:
        return {pfn for pfn, _ in s.mm.allocated} - set(s.slub.slabs)

    state, (child,) = run(model, state, syscall(0, "fork", 1))
    state, _ = run(model, state, ("store", (1, STACK)))  # the child's own copy of the stack page
    # init waits: it sleeps on its wait_chldexit, and CPU 0 goes idle.
    state, (result,) = run(model, state, syscall(0, "wait4"))
    assert result is None and state.sleeps[INIT].queue == ("wait_chldexit", INIT)
    assert state.sched.rqs[0].curr == idle_pid(0)
    # The child exits: a zombie with no mm; init is woken, goes on with its wait4 and reaps it.
    state, _ = run(model, state, syscall(1, "exit", 0))
    assert state.procs[child].exit_state and state.procs[child].mm is None
    # Woken on the CPU its child exited on (the waker's: the model's select_task_rq).
    assert state.sleeps[INIT].woken and state.sched.rqs[1].curr == INIT
    state, (reaped,) = run(model, state, ("resume", (1,)))
    assert reaped == child and child not in state.procs and not state.sleeps
    # Its page tables and pages went back; its task_struct's slab may stay with SLUB.
    assert non_slab(state) == {pfn for pfn, _ in allocated} - set(state.slub.slabs)


def test_brk_grows_and_shrinks_the_heap_unmapping_what_it_gives_up() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (brk,) = run(model, state, syscall(0, "brk", START_BRK + PAGE_SIZE))
    assert brk == START_BRK + PAGE_SIZE
    state, (word,) = run(model, state, ("store", (0, START_BRK)))
    assert word == INIT and len(state.mapcount) == 1  # the heap's page, faulted in
    state, (brk,) = run(model, state, syscall(0, "brk", START_BRK))
    mm = state.mms[state.procs[INIT].mm]
    assert brk == START_BRK and all(not v.vm_start <= START_BRK < v.vm_end for v in mm.vmas)
    assert state.mapcount == {} and mmu.mapped(state.pt, mm.pgd) == []


def test_a_fault_outside_every_vma_kills_the_task_with_sigsegv() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (child,) = run(model, state, syscall(0, "fork", 1))
    state, (result,) = run(model, state, ("load", (1, 0x10000)))
    assert result == -1 and state.procs[child].exit_state and state.procs[child].exit_code == 11


def test_a_small_exploration_holds() -> None:
    result = explore(KernelModel(ROOMY), invariants.for_model("kernel"), max_states=5_000)
    assert result.held, result.counterexample


@pytest.mark.parametrize(
    "bad",
    [
        {"sched": {"nr_cpus": 1, "tasks": [], "max_tasks": 4}},  # the buddy config has two CPUs
        {"sched": {"nr_cpus": 2, "tasks": [0], "max_tasks": 4}},  # boot tasks are the kernel's own
        {"mmap_pages": (0,)},
        {"max_vmas": 0},
    ],
)
def test_bad_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        KernelModel.config_from_json(bad)


def test_the_small_config_is_the_default() -> None:
    assert KernelConfig() == SMALL


def test_a_counterexample_is_drawn_with_the_ptes_and_tlbs_it_changed() -> None:
    model = KernelModel(ROOMY)
    steps = [
        Step("syscall", (0, NR["mmap"], (0, PAGE_SIZE, RW, ANON))),
        Step("load", (0, 0x7EFFFFFFF000)),
        Step("syscall", (0, NR["munmap"], (0x7EFFFFFFF000, PAGE_SIZE))),
    ]
    lines = model.diagram(steps)
    assert lines[0].startswith("  1  cpu0: mmap(0, 4096, 3, 34) -> 0x7efffffff000    [cpu0:1 cpu1:idle]")
    assert "       cpu0 CR3 pgd 38, TLB {0x7efffffff000->pfn 4 rw}" in lines
    assert lines[-2:] == [
        "       mm 0x25000 PTEs 0x7efffffff000->none",
        "       cpu0 CR3 pgd 38, TLB {}",  # munmap's flush
    ]


def test_threads_share_the_mm_and_a_flush_reaches_every_cpu_running_it() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (addr,) = run(model, state, syscall(0, "mmap", 0, PAGE_SIZE, RW, ANON))
    state, (thread,) = run(model, state, syscall(0, "clone", CLONE_THREAD_FLAGS, 1))
    assert state.procs[thread].mm == state.procs[INIT].mm and state.procs[thread].tgid == INIT
    assert state.tlb[1].pgd == state.tlb[0].pgd  # both CPUs run the one mm
    state, (pid, word) = run(model, state, syscall(1, "getpid"), ("store", (1, addr)))
    assert pid == INIT and word == thread
    assert addr >> 12 in state.tlb[1].entries
    # munmap on CPU 0 shoots down CPU 1's entry (flush_tlb_mm_range's IPI).
    state, _ = run(model, state, syscall(0, "munmap", addr, PAGE_SIZE))
    assert addr >> 12 not in state.tlb[1].entries and state.mapcount == {}
    # A thread other than the leader is reaped as it exits; the mm stays with the leader.
    state, _ = run(model, state, syscall(1, "exit", 0))
    assert thread not in state.procs and state.procs[INIT].mm in state.mms
    assert state.tlb[1].pgd == state.tlb[0].pgd  # CPU 1 idles on the mm it had (lazy TLB)


def test_a_leader_that_exits_before_its_threads_is_reaped_after_them() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (child, _) = run(model, state, syscall(0, "fork", 1), syscall(0, "wait4"))  # init sleeps
    state, (thread,) = run(model, state, syscall(1, "clone", CLONE_THREAD_FLAGS, 0))
    assert state.sched.rqs[0].curr == thread  # the idle CPU 0 took it at once
    state, _ = run(model, state, syscall(1, "exit", 0))  # the leader: a zombie, its thread lives on
    assert state.procs[child].exit_state and state.procs[thread].mm is not None
    assert not state.sleeps[INIT].woken  # not reapable yet: delay_group_leader
    state, _ = run(model, state, syscall(0, "exit", 0))
    assert thread not in state.procs and state.sleeps[INIT].woken  # the last thread woke init
    init_cpu = next(c for c in range(2) if state.sched.rqs[c].curr == INIT)
    state, (reaped,) = run(model, state, ("resume", (init_cpu,)))
    assert reaped == child and child not in state.procs and len(state.mms) == 1


def test_sigkill_wakes_a_sleeper_and_every_thread_dies_on_its_way_back_to_user_mode() -> None:
    model = KernelModel(replace(ROOMY, sched=replace(SMALL.sched, max_tasks=6)))
    state = model.init_state()
    state, (child,) = run(model, state, syscall(0, "fork", 1))
    state, (grandchild, _) = run(model, state, syscall(1, "fork", 1), syscall(1, "wait4"))
    assert child in state.sleeps
    # init kills the sleeping child: woken, its wait4 ends with -EINTR, and it dies on its
    # way back to user mode; its own child goes to init.
    state, (result,) = run(model, state, syscall(0, "kill", child, SIGKILL))
    assert result == 0 and child in state.sigkill and state.sleeps[child].woken
    cpu = next(c for c in range(2) if state.sched.rqs[c].curr == child)
    on_cpu = {a.name for a, args in model.enabled(state) if args[:1] == (cpu,)}
    assert on_cpu == {"resume", "tick"}
    state, (result,) = run(model, state, ("resume", (cpu,)))
    assert result == -EINTR
    on_cpu = {a.name for a, args in model.enabled(state) if args[:1] == (cpu,)}
    assert "signal" in on_cpu and not on_cpu & {*SYSCALL_ACTIONS, "load", "store"}  # it can only die
    state, _ = run(model, state, ("signal", (cpu,)))
    assert state.procs[child].exit_state and state.procs[child].exit_code == SIGKILL
    assert state.procs[grandchild].parent == INIT
    # init and kernel threads ignore it; a pid no task has is -ESRCH.
    assert run(model, state, syscall(0, "kill", INIT, SIGKILL))[1] == [0]
    assert run(model, state, syscall(0, "kill", state.sched.next_pid, SIGKILL))[1] == [-ESRCH]


def test_pages_page_tables_and_slabs_are_charged_to_the_tasks_memcg() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    a = state.css_set[INIT]
    assert state.cgroups[a].name == "A"
    # After boot, /A holds init's PGD and the slabs of its mm_struct and vm_area_struct copies.
    assert state.memory[a].usage == 3 and sorted(state.page_memcg.values()) == [a, a, a]
    assert {"mm_struct(1:A)", "vm_area_struct(1:A)"} <= set(state.slub.caches)
    state, _ = run(model, state, ("store", (0, STACK)))  # the page and its PUD, PMD and PTE tables
    assert state.memory[a].usage == 7 and state.memory[ROOT].usage == 7
    # A process moved to /B takes no charges with it; what it faults in next is /B's.
    state, (child,) = run(model, state, syscall(0, "fork", 1))
    b = next(c for c in state.cgroups if state.cgroups[c].name == "B")
    state, (moved, word) = run(model, state, ("attach", (child, b)), ("store", (1, STACK)))
    assert moved == 0 and word == child and state.memory[b].usage == 1  # the child's copy of the page
    state, _ = run(model, state, syscall(1, "exit", 0))
    assert state.memory[b].usage == 0


def test_the_memcg_oom_killer_kills_inside_the_memcg_and_reaps_at_once() -> None:
    model = KernelModel(replace(ROOMY, limits=("36K",)))
    state = model.init_state()
    a = state.css_set[INIT]
    state, (child, _) = run(model, state, syscall(0, "fork", 1), ("store", (1, STACK)))
    state, (result,) = run(model, state, ("write", (a, "memory.limit_in_bytes", "36K")))
    assert result == 0 and state.memory[a].usage == state.memory[a].max == 9
    # init's fault finds /A full: the child, the only other process there, is killed and its
    # page reaped; the page tables init needs next find nothing more to kill.
    state, (word,) = run(model, state, ("load", (0, STACK)))
    assert word == -1 and ("oom", a, child) in state.events
    assert child in state.sigkill and mmu.mapped(state.pt, state.mms[state.procs[child].mm].pgd) == []
    assert INIT not in state.sigkill


def test_a_copy_on_write_fault_whose_charge_reaps_its_own_mm_is_retried() -> None:
    """wp_page_copy charges the new page, and the charge may OOM-kill and reap the faulting
    process itself: the PTE then no longer maps the old page (pte_same fails), so the new
    page goes back and the fault is retried instead of dropping the old page's mapping twice."""
    model = KernelModel(replace(ROOMY, limits=("20K",), swap_pages=0))
    state = model.init_state()
    state, (_, child) = run(model, state, ("load", (0, STACK)), syscall(0, "fork", 1))
    b = next(c for c in state.cgroups if state.cgroups[c].name == "B")
    state, (_, addr) = run(model, state, ("attach", (child, b)), syscall(1, "mmap", 0, PAGE_SIZE, RW, ANON))
    state, (_, result) = run(
        model, state, ("store", (1, addr)), ("write", (b, "memory.limit_in_bytes", "20K"))
    )
    # /B holds the child's vm_area_struct slab, its mapping's three page tables and its page.
    assert result == 0 and state.memory[b].usage == state.memory[b].max == 5
    shared = mmu.walk(state.pt, state.mms[state.procs[INIT].mm].pgd, STACK)
    assert shared is not None and state.mapcount[shared[0]] == 2
    state, (word,) = run(model, state, ("store", (1, STACK)))
    # Its own memcg's OOM killer killed and reaped it; the retried fault found a fresh page.
    assert ("oom", b, child) in state.events and child in state.sigkill and word == child
    assert state.mapcount[shared[0]] == 1  # init keeps the page it shared


def test_a_pipe_read_sleeps_until_a_write_wakes_it() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (ret, child) = run(model, state, syscall(0, "pipe"), syscall(0, "fork", 1))
    assert ret == 0 and state.fdt[INIT][:2] == state.fdt[child][:2]  # fork shares the files
    rf, wf = state.fdt[INIT][:2]
    assert state.files[rf].f_count == 2 and state.files[wf].f_count == 2
    # The child reads the empty pipe: it sleeps on pipe->wait, holding its file.
    state, (ret,) = run(model, state, syscall(1, "read", 0, 4096))
    assert ret is None and state.sleeps[child].queue == ("pipe", state.files[rf].pipe)
    assert state.files[rf].f_count == 3
    # init writes 3072 bytes: one page-frame buffer, charged to /A; the reader is woken.
    state, (ret,) = run(model, state, syscall(0, "write", 1, 3072))
    pipe = state.pipes[state.files[rf].pipe]
    assert ret == 3072 and len(pipe.bufs) == 1 and state.page_memcg[pipe.bufs[0].page] == state.css_set[INIT]
    assert state.sleeps[child].woken and state.sched.rqs[1].curr != child  # woken onto the waker's CPU
    state = tick_until(model, state, child)
    child_cpu = next(c for c in range(2) if state.sched.rqs[c].curr == child)
    state, (ret,) = run(model, state, ("resume", (child_cpu,)))
    pipe = state.pipes[state.files[rf].pipe]
    assert ret == 3072 and not pipe.bufs and pipe.tmp_page is not None  # the page kept for the next write
    assert state.files[rf].f_count == 2 and not state.sleeps


def test_a_write_of_at_most_pipe_buf_bytes_is_never_split() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (_, child) = run(model, state, syscall(0, "pipe"), syscall(0, "fork", 1))
    # Two 3072-byte writes take both buffers of the ring: the second's head does not fit
    # in the first buffer's 1024 free bytes, so it takes a page of its own.
    state, _ = run(model, state, syscall(0, "write", 1, 3072), syscall(0, "write", 1, 3072))
    pipe = state.pipes[state.files[state.fdt[INIT][0]].pipe]
    assert pipe.full and [b.len for b in pipe.bufs] == [3072, 3072]
    # A third sleeps having written nothing, rather than 1024 bytes now and 2048 later.
    state, (ret,) = run(model, state, syscall(0, "write", 1, 3072))
    assert ret is None and state.sleeps[INIT].done == 0 and pipe == state.pipes[pipe_of(state)]
    # The child's read empties a buffer and wakes the writer, which writes all 3072.
    state, (ret,) = run(model, state, syscall(1, "read", 0, 4096))
    assert ret == 4096 and state.sleeps[INIT].woken
    state = tick_until(model, state, INIT)
    init_cpu = next(c for c in range(2) if state.sched.rqs[c].curr == INIT)
    state, (ret,) = run(model, state, ("resume", (init_cpu,)))
    assert ret == 3072 and [n for _, n in state.pipes[pipe_of(state)].bufs[-1].runs] == [3072]
    assert child in state.procs


def tick_until(model: KernelModel, state: KernelState, pid: int) -> KernelState:
    """Timer ticks on every CPU until task pid runs."""
    for _ in range(100):
        if any(state.sched.rqs[c].curr == pid for c in range(2)):
            return state
        state, _ = run(model, state, ("tick", (0,)), ("tick", (1,)))
    raise AssertionError(f"task {pid} never ran")


def pipe_of(state: KernelState) -> int:
    return state.files[state.fdt[INIT][0]].pipe


def test_a_write_with_no_reader_gets_epipe_and_sigpipe() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (_, child, _) = run(
        model, state, syscall(0, "pipe"), syscall(0, "fork", 1), syscall(0, "close", 0)
    )
    state, _ = run(model, state, syscall(1, "close", 0))  # the last reader
    # With SIGPIPE's default action the child's group exits with it.
    state, (ret,) = run(model, state, syscall(1, "write", 1, 3072))
    assert ret == -EPIPE and state.sigkill == {child: SIGPIPE}
    state, (sig,) = run(model, state, ("signal", (1,)))
    assert sig == SIGKILL and state.procs[child].exit_code == SIGPIPE
    # init installs a handler: SIGPIPE is pending, and taking it enters the handler through
    # a frame stored on the stack.
    state, (ret, ret2) = run(
        model, state, syscall(0, "rt_sigaction", SIGPIPE, SIG_HANDLER), syscall(0, "write", 1, 3072)
    )
    assert ret == 0 and ret2 == -EPIPE and state.pending == {INIT: frozenset({SIGPIPE})}
    state, (sig,) = run(model, state, ("signal", (0,)))
    assert sig == SIGPIPE and not state.pending and dict(state.stored[state.procs[INIT].mm])[STACK] == INIT


def test_a_parent_ignoring_sigchld_has_its_children_reaped_as_they_die() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (ret, child, _) = run(
        model, state, syscall(0, "rt_sigaction", SIGCHLD, SIG_IGN), syscall(0, "fork", 1), syscall(0, "wait4")
    )
    assert ret == 0 and state.sleeps[INIT].queue == ("wait_chldexit", INIT)
    state, _ = run(model, state, syscall(1, "exit", 0))
    assert child not in state.procs and state.sleeps[INIT].woken  # woken, and the zombie gone
    state, (ret,) = run(model, state, ("resume", (1,)))
    assert ret == -ECHILD


def test_a_handled_signal_interrupts_wait4_and_runs_its_handler() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (_, child, _) = run(
        model,
        state,
        syscall(0, "rt_sigaction", SIGCHLD, SIG_HANDLER),
        syscall(0, "fork", 1),
        syscall(0, "wait4"),
    )
    assert dict(state.sighand[child]) == {SIGCHLD: SIG_HANDLER}  # copy_sighand
    # The child sends init SIGCHLD: pending on init's group, it wakes init from wait4.
    state, (ret,) = run(model, state, syscall(1, "kill", INIT, SIGCHLD))
    assert ret == 0 and state.shared_pending == {INIT: frozenset({SIGCHLD})} and state.sleeps[INIT].woken
    state = tick_until(model, state, INIT)
    init_cpu = next(c for c in range(2) if state.sched.rqs[c].curr == INIT)
    state, (ret,) = run(model, state, ("resume", (init_cpu,)))
    assert ret == -EINTR  # no child to reap yet, and a signal to take first
    assert not set(SYSCALL_ACTIONS) & {a.name for a, args in model.enabled(state) if args[:1] == (init_cpu,)}
    state, (sig,) = run(model, state, ("signal", (init_cpu,)))
    assert sig == SIGCHLD and not state.shared_pending
    # execve keeps what is ignored and resets what is handled.
    state, _ = run(
        model, state, syscall(init_cpu, "rt_sigaction", SIGPIPE, SIG_IGN), syscall(init_cpu, "execve")
    )
    assert state.sighand[INIT] == ((SIGPIPE, SIG_IGN),)


def test_a_diagram_shows_sleeps_wakeups_and_pipes() -> None:
    steps = [
        Step("fs_syscall", (0, NR["pipe"], ())),
        Step("syscall", (0, NR["fork"], (1,))),
        Step("fs_syscall", (1, NR["read"], (0, 4096))),
        Step("fs_syscall", (0, NR["write"], (1, 3072))),
    ]
    lines = KernelModel(ROOMY).diagram(steps)
    assert lines[lines.index("       task 4 sleeps on pipe of 0x20000") - 1].startswith(
        "  3  cpu1: read(0, 4096) -> sleeps"
    )
    assert lines[-2:] == [
        "       task 4 woken",
        "       pipe 0x20000: 3072B of 1 in 1 of 2 buffers, 1 readers, 1 writers",
    ]


def test_pids_max_refuses_a_fork_until_a_zombie_is_reaped() -> None:
    model = KernelModel(replace(ROOMY, sched=replace(SMALL.sched, max_tasks=6)))
    state = model.init_state()
    a = state.css_set[INIT]
    assert state.pids[a].counter == 1  # init
    state, (ret, child, refused) = run(
        model, state, ("write", (a, "pids.max", "2")), syscall(0, "fork", 1), syscall(0, "fork", 1)
    )
    assert ret == 0 and state.pids[a].counter == 2 and refused == -EAGAIN
    # The child's zombie still holds its pid; wait4 reaps it and gives the pid back.
    state, _ = run(model, state, syscall(1, "exit", 0))
    assert run(model, state, syscall(0, "fork", 1))[1] == [-EAGAIN]
    state, (reaped,) = run(model, state, syscall(0, "wait4"))
    assert reaped == child and state.pids[a].counter == 1
    state, (ret, bad) = run(model, state, ("write", (a, "pids.max", "max")), ("write", (a, "pids.max", "-1")))
    assert ret == 0 and bad == -EINVAL and state.pids[a].limit > 2


def test_an_o_nonblock_pipe_returns_eagain_instead_of_sleeping() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (ret, empty, full, partial, again) = run(
        model,
        state,
        syscall(0, "pipe2", O_NONBLOCK),
        syscall(0, "read", 0, 4096),
        syscall(0, "write", 1, 6144),  # both buffers
        syscall(0, "write", 1, 3072),
        syscall(0, "read", 0, 4096),
    )
    assert (ret, empty, full, partial, again) == (0, -EAGAIN, 6144, -EAGAIN, 4096)
    assert not state.sleeps and state.files[state.fdt[INIT][0]].f_flags == O_NONBLOCK


# Files, the page cache, reclaim and swap.


def test_a_shared_file_mapping_shows_every_store_and_a_private_one_copies_on_its_first_write() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    length = SMALL.file_pages * PAGE_SIZE
    state, (fd,) = run(model, state, syscall(0, "open", O_RDWR))
    state, (shared, private) = run(
        model,
        state,
        syscall(0, "mmap", 0, length, RW, mmap.MAP_SHARED, fd, 0),
        syscall(0, "mmap", 0, length, RW, mmap.MAP_PRIVATE, fd, 0),
    )
    assert state.files[state.fdt[INIT][fd]].f_count == 3  # the fd and the two VMAs
    state, (zero, child, stored) = run(
        model, state, ("load", (0, private)), syscall(0, "fork", 1), ("store", (1, shared))
    )
    assert zero == 0 and stored == child
    page = state.page_cache[0]
    assert page in state.dirty and state.file_stored == {0: child}
    # The parent's private mapping, not yet written, reads the page cache: the child's word.
    state, (via_shared, via_private) = run(model, state, ("load", (0, shared)), ("load", (0, private)))
    assert via_shared == via_private == child
    # Its first write copies the page; the file keeps the child's word.
    state, (written, child_private, still) = run(
        model, state, ("store", (0, private)), ("load", (1, private)), ("load", (0, shared))
    )
    assert written == INIT and child_private == child and still == child
    pte = mmu.walk(state.pt, state.mms[state.procs[INIT].mm].pgd, private)
    assert pte is not None and pte[0] != page and state.data[page] == child


def test_sync_writes_dirty_pages_back_and_write_protects_them() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (fd,) = run(model, state, syscall(0, "open", O_RDWR))
    state, (addr,) = run(
        model, state, syscall(0, "mmap", 0, SMALL.file_pages * PAGE_SIZE, RW, mmap.MAP_SHARED, fd, 0)
    )
    state, _ = run(model, state, ("store", (0, addr)))
    pgd = state.mms[state.procs[INIT].mm].pgd
    assert state.disk == {} and mmu.walk(state.pt, pgd, addr)[1] & mmu._PAGE_RW  # type: ignore[index]
    state, (ret,) = run(model, state, syscall(0, "sync"))
    page = state.page_cache[0]
    assert ret == 0 and state.disk == {0: INIT} and page not in state.dirty
    assert not mmu.walk(state.pt, pgd, addr)[1] & mmu._PAGE_RW  # type: ignore[index]  # page_mkclean
    state, _ = run(model, state, ("store", (0, addr)))  # faults again: wp_page_shared dirties it
    assert page in state.dirty


def call(model: KernelModel, state: KernelState, cpu: int, name: str, *args: int) -> tuple[KernelState, Any]:
    """A system call with arguments the random runs do not offer."""
    return model.step(state, model.action_by_name[syscall_action(NR[name])], (cpu, NR[name], args))


def test_file_errors_and_the_references_vmas_hold() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    length = SMALL.file_pages * PAGE_SIZE
    state, bad = call(model, state, 0, "open", 1)  # O_WRONLY: /data is only mapped
    assert bad == -EINVAL
    state, (fd, _) = run(model, state, syscall(0, "open", O_RDONLY), syscall(0, "pipe"))
    assert fd == 0 and state.fdt[INIT][:3] != (0, 0, 0)
    state, (denied, addr) = run(
        model,
        state,
        syscall(0, "mmap", 0, length, RW, mmap.MAP_SHARED, fd, 0),  # not open for writing
        syscall(0, "mmap", 0, length, RW, mmap.MAP_PRIVATE, fd, 0),
    )
    assert denied == -EACCES and addr > 0
    state, nodev = call(model, state, 0, "mmap", 0, length, RW, mmap.MAP_SHARED, 1, 0)  # a pipe
    state, misaligned = call(model, state, 0, "mmap", 0, length, RW, mmap.MAP_PRIVATE, fd, 1)
    state, read = call(model, state, 0, "read", fd, 4096)
    assert (nodev, misaligned, read) == (-ENODEV, -EINVAL, -EINVAL)
    # Closed, the file lives on in its VMA; unmapped, it is freed.
    f = state.fdt[INIT][fd]
    state, _ = run(model, state, syscall(0, "close", fd))
    assert state.files[f].f_count == 1
    state, _ = run(model, state, syscall(0, "munmap", addr, PAGE_SIZE))
    assert state.files[f].f_count == 1  # the VMA's other page still maps it
    state, _ = run(model, state, syscall(0, "munmap", addr + PAGE_SIZE, PAGE_SIZE))
    assert f not in state.files


def test_a_store_past_the_end_of_the_file_is_sigbus() -> None:
    model = KernelModel(ROOMY)
    state = model.init_state()
    state, (child,) = run(model, state, syscall(0, "fork", 1))
    state, (fd,) = run(model, state, syscall(1, "open", O_RDWR))
    state, addr = call(
        model, state, 1, "mmap", 0, (SMALL.file_pages + 1) * PAGE_SIZE, RW, mmap.MAP_SHARED, fd, 0
    )
    state, (word,) = run(model, state, ("store", (1, addr + SMALL.file_pages * PAGE_SIZE)))
    assert word == -1 and state.procs[child].exit_code == SIGBUS


def squeeze(state: KernelState, pid: int) -> tuple[str, tuple[Any, ...]]:
    """The write that limits pid's memcg to one page above its usage."""
    cg = state.css_set[pid]
    return ("write", (cg, "memory.limit_in_bytes", f"{(state.memory[cg].usage + 1) * PAGE_SIZE // 1024}K"))


def test_reclaim_swaps_a_page_out_of_every_mm_and_each_reads_it_back() -> None:
    model = KernelModel(replace(ROOMY, swap_pages=4))
    state = model.init_state()
    state, (_, child, addr) = run(
        model,
        state,
        ("store", (0, STACK)),
        syscall(0, "fork", 1),
        syscall(0, "mmap", 0, 2 * PAGE_SIZE, RW, ANON),
    )
    state, (_, below) = run(model, state, ("store", (0, addr)), syscall(0, "mmap", 0, PAGE_SIZE, RW, ANON))
    shared = mmu.walk(state.pt, state.mms[state.procs[INIT].mm].pgd, STACK)
    assert shared is not None and state.lru[0] == shared[0]  # the oldest user page
    state, _ = run(
        model, state, squeeze(state, INIT), ("store", (0, addr + PAGE_SIZE)), ("store", (0, below))
    )
    # The last store's charge reclaimed the stack page: both PTEs are its swap entry.
    ptes = [mmu.walk(state.pt, state.mms[state.procs[p].mm].pgd, STACK) for p in (INIT, child)]
    slot = ptes[0][0]  # type: ignore[index]
    assert ptes == [(slot, 0), (slot, 0)] and state.swap_map[slot] == 2 and state.swap_data[slot] == INIT
    assert shared[0] not in state.lru and ("reclaim", state.css_set[INIT], shared[0]) in state.events
    # Each reads it back into a page of its own (no swap cache), and the slot goes with the last.
    state, (mine,) = run(model, state, ("load", (0, STACK)))
    assert mine == INIT and state.swap_map.get(slot) == 1
    state, (theirs,) = run(model, state, ("load", (1, STACK)))
    assert theirs == INIT and slot not in state.swap_map


def test_reclaim_writes_a_dirty_page_cache_page_back_before_dropping_it() -> None:
    model = KernelModel(replace(ROOMY, swap_pages=0))
    state = model.init_state()
    state, (fd,) = run(model, state, syscall(0, "open", O_RDWR))
    state, (shared, anon) = run(
        model,
        state,
        syscall(0, "mmap", 0, SMALL.file_pages * PAGE_SIZE, RW, mmap.MAP_SHARED, fd, 0),
        syscall(0, "mmap", 0, 2 * PAGE_SIZE, RW, ANON),
    )
    state, _ = run(model, state, ("store", (0, shared)))
    page = state.page_cache[0]
    assert page in state.dirty and state.disk == {}
    state, _ = run(model, state, squeeze(state, INIT), ("store", (0, anon)), ("store", (0, anon + PAGE_SIZE)))
    # No swap: the anonymous pages stay, and the page-cache page was written back and dropped.
    assert state.page_cache == {} and state.disk == {0: INIT} and not state.dirty
    assert mmu.walk(state.pt, state.mms[state.procs[INIT].mm].pgd, shared) is None
    unlimit = ("write", (state.css_set[INIT], "memory.limit_in_bytes", "-1"))
    state, (_, word) = run(model, state, unlimit, ("load", (0, shared)))  # read back from the disk
    assert word == INIT


def test_kswapd_is_woken_below_the_low_watermark_and_reclaims_to_the_high_one() -> None:
    model = KernelModel(replace(SMALL, swap_pages=8))
    state = model.init_state()
    state, (addr,) = run(model, state, syscall(0, "mmap", 0, 2 * PAGE_SIZE, RW, ANON))
    pages = [STACK, addr, addr + PAGE_SIZE]
    while state.sched.tasks[KSWAPD].state == TASK_INTERRUPTIBLE:
        assert pages, "memory never reached the low watermark"
        state, _ = run(model, state, ("store", (0, pages.pop(0))))
    assert not vmscan.zone_watermarks_ok(state, 0, WMARK_LOW)
    # Woken on the allocating CPU, it preempts init there.
    assert state.sched.rqs[0].curr == KSWAPD
    state, _ = run(model, state, ("kswapd", (0,)))
    assert any(kind == "reclaim" for kind, _, _ in state.events) and state.swap_map
    assert vmscan.zone_watermarks_ok(state, 0, WMARK_HIGH) or not state.lru
    assert state.sched.tasks[KSWAPD].state == TASK_INTERRUPTIBLE  # asleep again


def test_an_allocation_neither_reclaim_nor_a_memcg_can_serve_calls_the_global_oom_killer() -> None:
    model = KernelModel(replace(SMALL, swap_pages=0))
    state = model.init_state()
    state, (child,) = run(model, state, syscall(0, "fork", 1))
    state, (addr,) = run(model, state, syscall(1, "mmap", 0, 2 * PAGE_SIZE, RW, ANON))
    state, _ = run(model, state, ("store", (1, addr)), ("store", (1, addr + PAGE_SIZE)))
    oom = []
    for _ in range(8):  # init's stores take what is left above the min watermark
        state, (a,) = run(model, state, syscall(0, "mmap", 0, PAGE_SIZE, RW, ANON))
        state, _ = run(model, state, ("store", (0, a)))
        oom = [e for e in state.events if e[0] == "oom"]
        if oom:
            break
    assert oom == [("oom", ROOT, child)] and child in state.sigkill  # the biggest process but init
