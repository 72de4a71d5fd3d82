"""The deeper suite, left out of CI: ``pytest -m deep -n auto`` (tens of minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

import invariants
from checkers.explore import explore
from checkers.plan import BUDGETS
from checkers.stateful import run_stateful
from model.calibration.two_phase_commit import TwoPhaseConfig, TwoPhaseModel
from model.mm.buddy import BuddyModel

pytestmark = pytest.mark.deep


@pytest.mark.parametrize(("rms", "states"), [(7, 296_448), (8, 1_745_408)])
def test_two_phase_commit_published_counts(rms: int, states: int) -> None:
    result = explore(TwoPhaseModel(TwoPhaseConfig(rms)), [])
    assert result.stats["states"] == states and result.stats["complete"]


def test_buddy_small_config_a_million_states() -> None:
    result = explore(BuddyModel.from_profile("small"), invariants.for_model("buddy"), max_states=1_000_000)
    assert result.held, result.counterexample
    assert result.stats["states"] == 1_000_000


@pytest.mark.parametrize("config", ["small", "large"])
def test_buddy_deep_random_runs(config: str) -> None:
    result = run_stateful(
        BuddyModel.from_profile(config), invariants.for_model("buddy"), profile=BUDGETS["deep"].sampling(), seed_value=1
    )
    assert result.held, result.counterexample


def test_slub_small_config_every_state() -> None:
    from model.mm.slab import SlubModel

    result = explore(SlubModel.from_profile("small"), invariants.for_model("slub"), max_states=500_000)
    assert result.held, result.counterexample
    assert result.stats["complete"] and result.stats["states"] == 28_353


@pytest.mark.parametrize("config", ["small", "large"])
def test_slub_deep_random_runs(config: str) -> None:
    from model.mm.slab import SlubModel

    result = run_stateful(
        SlubModel.from_profile(config), invariants.for_model("slub"), profile=BUDGETS["deep"].sampling(), seed_value=1
    )
    assert result.held, result.counterexample


def test_sched_small_config_a_million_states() -> None:
    from model.sched.model import SchedModel

    result = explore(SchedModel.from_profile("small"), invariants.for_model("sched"), max_states=1_000_000)
    assert result.held, result.counterexample
    assert result.stats["states"] == 1_000_000


@pytest.mark.parametrize("config", ["small", "large"])
def test_sched_deep_random_runs(config: str) -> None:
    from model.sched.model import SchedModel

    result = run_stateful(
        SchedModel.from_profile(config), invariants.for_model("sched"), profile=BUDGETS["deep"].sampling(), seed_value=1
    )
    assert result.held, result.counterexample


def _protocols() -> list[Path]:
    import model.sync

    return sorted(Path(model.sync.__file__).parent.joinpath("protocols").glob("*.litmus"))


@pytest.mark.parametrize("memory", ["sc", "tso"])
@pytest.mark.parametrize("path", _protocols(), ids=lambda p: p.stem)
def test_axiomatic_agrees_with_the_explorer_on_every_protocol(path: Path, memory: str) -> None:
    """The lll-mutex files take z3 up to 20 s under TSO: too slow for CI, which compares the
    two engines on every litmus test instead (tests/test_axiomatic.py)."""
    from checkers import litmus
    from checkers.axiomatic import Unsupported, axiomatic_verdict
    from model.sync.litmus import parse_file

    program = parse_file(path)
    operational = litmus.run(program, memory)
    try:
        axiomatic = axiomatic_verdict(program, memory)
    except Unsupported as e:  # only the qspinlock's byte and halfword stores are beyond it
        assert path.stem.startswith("qspinlock") and "mixed-size accesses" in str(e)
        pytest.skip(str(e))
    assert (axiomatic.verdict, axiomatic.holds) == (operational.verdict, operational.holds)


def test_kernel_deep_random_runs() -> None:
    """The whole kernel's deep run: 3,000 random runs of 200 steps on the large machine
    (about 6 minutes on one core)."""
    from model.kernel import KernelModel

    result = run_stateful(
        KernelModel.from_profile("large"),
        invariants.for_model("kernel"),
        profile=BUDGETS["deep"].sampling(),
        seed_value=1,
    )
    assert result.held, result.counterexample
