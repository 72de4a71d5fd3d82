"""The mutant runner: it leaves the model as it was, fails on survivors and on invariants that
no mutant breaks; each mutant says its bug in one line (the catalog itself: test_catalog.py)."""

from __future__ import annotations

import pytest
from toy_model import TAKE_TWICE, install, take

import invariants
from checkers import mutants, plan
from checkers.mutants import Mutant
from checkers.mutants.run import orphans, run_mutants


def test_mutants_leave_the_model_as_it_was() -> None:
    from model.mm import page_alloc

    original = page_alloc.find_buddy_pfn
    run_mutants(["buddy.buddy_pfn_add"], seed=0)
    assert page_alloc.find_buddy_pfn is original


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    monkeypatch.setattr(plan, "MODELS", {"toy": "toy_model:ToyModel"})


def test_a_surviving_mutant_and_an_orphan_invariant_are_reported(toy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # An equivalent mutant (take replaced by itself) cannot be killed.
    (module, attr, _), = TAKE_TWICE.patches
    aimed_wrong = Mutant("toy.equivalent", "toy", "", ((module, attr, take),), "toy.never_jumps", "explore")
    monkeypatch.setattr(mutants, "REGISTRY", {aimed_wrong.name: aimed_wrong})
    small = plan.Budget(states=1_000, runs=10, steps=10, samples=10, rlimit=1_000)
    monkeypatch.setattr(plan, "BUDGETS", {"ci": small})
    outcomes, missing = run_mutants([], seed=0)
    assert [o.killed for o in outcomes] == [False]
    assert outcomes[0].detail.startswith("survived:")
    assert missing == ["toy.within_limit"]
    assert orphans([aimed_wrong]) == ["toy.within_limit"]
    assert set(invariants.REGISTRY) == {"toy.within_limit", "toy.never_jumps"}


def test_each_mutant_says_its_bug_in_one_line() -> None:
    for m in mutants.load_all().values():
        for _, _, replacement in m.patches:
            assert replacement.__doc__ and "\n" not in replacement.__doc__.strip(), m.name


def test_unmutated_buddy_model_breaks_nothing_to_depth_8() -> None:
    from checkers.explore import explore
    from model.mm.buddy import BuddyModel

    r = explore(BuddyModel.from_profile("small"), invariants.for_model("buddy"), max_depth=8)
    assert r.held
    assert r.stats["states"] == 57_500  # distinct states within 8 steps of boot, small config


def test_only_an_interrupt_in_the_fast_path_window_shows_that_the_tid_is_needed() -> None:
    """With next_tid broken, runs whose fast paths are atomic keep every freelist sound; the
    explorer with the interrupt window finds the interleaving that corrupts one."""
    import dataclasses

    from checkers.explore import explore
    from checkers.stateful import Profile, run_stateful
    from model.mm.slab import SlubModel

    freelist = [invariants.load_all()["slub.freelist"]]
    small = SlubModel.from_profile("small")
    atomic = SlubModel(dataclasses.replace(small.config, irq_window=False))
    with mutants.load_all()["slub.tid_not_advanced"].applied():
        assert explore(atomic, freelist, max_depth=12).held
        assert run_stateful(atomic, freelist, profile=Profile(200, 40), seed_value=0).held
        caught = explore(small, freelist)
    assert caught.status == "fail" and caught.counterexample is not None
    steps = [s.action for s in caught.counterexample.steps]
    assert "irq_alloc" in steps or "irq_kfree" in steps


