"""Selectors resolve to jobs; bad ones are one-line usage errors."""

from __future__ import annotations

import pytest
from toy_model import install

from checkers import plan
from checkers.errors import UsageError


@pytest.fixture(autouse=True)
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    monkeypatch.setattr(plan, "MODELS", {"toy": "toy_model:ToyModel"})


def test_model_selector_takes_every_invariant_per_engine() -> None:
    jobs = plan.resolve(["toy"], ("explore", "stateful"))
    assert [j.id for j in jobs] == ["toy::explore", "toy::stateful"]
    assert jobs[0].names == ("toy.never_jumps", "toy.within_limit")


def test_invariant_and_pattern_selectors_narrow_the_job() -> None:
    assert plan.resolve(["toy.within_limit"], ("explore",))[0].names == ("toy.within_limit",)
    assert plan.resolve(["toy.never_*"], ("stateful",))[0].names == ("toy.never_jumps",)
    assert plan.resolve([], ("explore",))[0].names == ("toy.never_jumps", "toy.within_limit")


@pytest.mark.parametrize(
    ("selectors", "engines", "message"),
    [
        (["tcp"], "explore", "selector 'tcp': no model, invariant or proof of that name"),
        (["toy"], "explore,fuzz", "--engine 'explore,fuzz': unknown engine 'fuzz'"),
        (["toy"], "prove", "nothing to check"),
    ],
)
def test_bad_selectors_and_engines(selectors: list[str], engines: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        plan.resolve(selectors, plan.parse_engines(engines))
    assert message in str(e.value) and "\n" not in str(e.value)
