"""The mutant catalog: each mutant is killed by the invariant or proof it names, within its
engine's ``ci`` budget, and every invariant and proof of every model has a mutant.

One test per mutant, so that pytest-xdist spreads the catalog over the workers. The kills
whose search takes the longest (``kinv mutants`` reports each kill's work) run with
``-m deep``; ``kinv mutants`` runs them all."""

from __future__ import annotations

import pytest

from checkers import mutants
from checkers.mutants import Mutant
from checkers.mutants.run import orphans, run_mutants

# The kills whose search takes most of a minute or more on a two-core machine (measured with
# pytest --durations; the kernel's with the work `kinv mutants kernel` reports for them).
DEEP = {
    "kernel.pipe_write_wakes_no_reader",  # 122,307 states
    "kernel.pipe_release_wakes_nobody",  # 122,306 states
    "kernel.epipe_without_sigpipe",  # 104,888 states
    "kernel.kill_without_wakeup",  # 70,625 states
    "kernel.reclaim_without_pageout",  # 196,500 states
    "kernel.writeback_without_mkclean",  # 196,494 states
    "kernel.oom_outside_memcg",  # 1,387 runs (with Hypothesis's shrinking)
    "tcp.recvmsg_off_by_one_loses_a_byte",  # 304 s
    "tcp.acceptq_overflow",  # 164 s
    "tcp.accept_at_right_edge",  # 53 s
    "slub.free_slab_order_zero",  # 168 s
    "slub.free_slab_leaks",  # 96 s
    "cgroup.group_shares_without_floor",  # 158 s
    "cgroup.slab_charge_failure_leaks_page",  # 145 s
    "cgroup.free_slab_without_uncharge",  # 97 s
    "cgroup.release_without_cancel",  # 51 s
    "sched.pick_next_entity_rightmost",  # 96 s
}

CATALOG = mutants.load_all()


def params() -> list[object]:
    return [
        pytest.param(m, id=m.name, marks=[pytest.mark.deep] if m.name in DEEP else [])
        for m in CATALOG.values()
    ]


@pytest.mark.parametrize("m", params())
def test_the_mutant_is_killed_by_what_it_must_break(m: Mutant) -> None:
    (outcome,), _ = run_mutants([m.name], seed=0)
    assert outcome.killed, outcome.detail
    # A kill is the named invariant's own verdict (or a refutation of the named proof), not any failure.
    cex = outcome.result.counterexample
    assert (cex is not None and cex.invariant == m.breaks) or outcome.result.refutation is not None


def test_deep_names_only_catalog_mutants() -> None:
    assert set(CATALOG) >= DEEP


@pytest.mark.parametrize("model", mutants.SUBSYSTEMS)
def test_every_invariant_and_proof_has_a_mutant(model: str) -> None:
    chosen = [m for m in CATALOG.values() if m.model == model]
    assert chosen and orphans(chosen) == []
