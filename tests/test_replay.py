"""Replay of saved counterexamples: exact reproduction, state diffs, and bad files refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from toy_model import ToyConfig, install, record

from checkers.errors import UsageError
from checkers.replay import (
    ABSENT,
    Change,
    counterexample_from_json,
    diff_states,
    load_counterexample,
    print_replay,
    replay,
    replay_file,
)
from checkers.results import Counterexample
from model.contract import Step

OVERSHOOT = [("inc", (2,)), ("inc", (2,))]


@pytest.fixture(autouse=True)
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)


def save(tmp_path: Path, cex: Counterexample | dict[str, Any], name: str = "cex.json") -> Path:
    path = tmp_path / name
    data = cex.to_json() if isinstance(cex, Counterexample) else cex
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_replay_reproduces_a_saved_violation_exactly(tmp_path: Path) -> None:
    cex = record(OVERSHOOT)
    assert cex.violations == ["count 4 exceeds limit 3"]
    path = save(tmp_path, cex)

    rep = replay_file(path)

    assert rep.reproduced
    assert rep.violations == cex.violations
    assert [s.label for s in rep.steps] == ["inc(n=2)", "inc(n=2)"]
    assert [s.result for s in rep.steps] == [2, 4]
    assert rep.initial == {"count": 0, "history": [], "zones": [{"nr_free": 8}]}
    assert rep.steps[-1].state == {"count": 4, "history": [2, 2], "zones": [{"nr_free": 4}]}
    assert rep.steps[1].diff == [
        Change("count", 2, 4),
        Change("history[1]", ABSENT, 2),
        Change("zones[0].nr_free", 6, 4),
    ]


def test_loaded_steps_carry_tuples_at_every_depth(tmp_path: Path) -> None:
    data = record(OVERSHOOT).to_json()
    data["steps"][0]["args"] = [2, [1, [3]]]
    cex = counterexample_from_json(data, "x.json")
    assert cex.steps[0] == Step("inc", (2, (1, (3,))))
    assert load_counterexample(save(tmp_path, record(OVERSHOOT))).steps == [Step("inc", (2,))] * 2


def test_replay_applies_the_recorded_mutant(tmp_path: Path) -> None:
    cex = record([("inc", (2,))], invariant="toy.never_jumps", mutant="toy.take_twice")
    assert cex.violations == ["inc moved count by 4"]
    path = save(tmp_path, cex)
    rep = replay(load_counterexample(path), source=path)
    assert rep.reproduced and rep.steps[0].result == 4 and rep.source == str(path)

    cex.mutant = None  # the same trace on the unmutated model reaches other states
    with pytest.raises(UsageError, match="state after step 1 inc\\(n=2\\) differs .* different model"):
        replay(cex, source="cex.json")


def test_replay_reproduces_a_deadlock(tmp_path: Path) -> None:
    cex = record([], invariant="deadlock", kind="deadlock", config=ToyConfig(limit=0))
    rep = replay_file(save(tmp_path, cex))
    assert rep.reproduced and rep.steps == [] and rep.violations == ["no action is enabled"]

    cex.config = {"limit": 1, "sizes": [1]}  # same initial state, but inc is enabled
    assert not replay(cex).reproduced


def test_a_trace_that_no_longer_violates_is_not_reproduced() -> None:
    cex = record([("inc", (1,))])
    assert cex.violations == []
    assert not replay(cex).reproduced

    cex = record(OVERSHOOT)
    cex.violations = ["count 5 exceeds limit 3"]
    rep = replay(cex)
    assert not rep.reproduced and rep.violations == ["count 4 exceeds limit 3"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: setattr(c, "steps", [Step("dec", ()), *c.steps[1:]]),
            "step 1 dec() is not enabled in the replayed state",
        ),
        (
            lambda c: setattr(c, "steps", [Step("grow", (2,)), *c.steps[1:]]),
            "step 1 grow(2) is not enabled in the replayed state",
        ),
        (lambda c: c.digests.__setitem__(0, "0" * 16), "the initial state differs from the recorded one"),
        (lambda c: c.digests.__setitem__(2, "0" * 16), "the state after step 2 inc(n=2) differs"),
    ],
    ids=["disabled action", "unknown action", "initial digest", "step digest"],
)
def test_replay_refuses_a_trace_from_a_different_model(
    tmp_path: Path, edit: Callable[[Counterexample], None], message: str
) -> None:
    cex = record(OVERSHOOT)
    edit(cex)
    path = save(tmp_path, cex)
    with pytest.raises(UsageError) as err:
        replay_file(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "the counterexample was recorded against a different model" in str(err.value)
    assert "\n" not in str(err.value)
    assert message in str(err.value)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(key)


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any] | str, str]] = [
    ("truncated", '{"schema": "kinv.counterexample/1", "model": "to', "not valid JSON"),
    ("not json", "steps: inc, inc\n", "not valid JSON"),
    ("not an object", "[1, 2]", "expected a JSON object, found a list"),
    ("no schema", _drop("schema"), "missing schema (expected 'kinv.counterexample/1')"),
    ("wrong schema", _set("schema", "kinv.counterexample/9"), "schema 'kinv.counterexample/9' is not"),
    ("missing field", _drop("digests"), "missing field 'digests'"),
    ("unknown field", _set("digest", []), "unknown field 'digest'"),
    ("mistyped field", _set("steps", "inc,inc"), "field 'steps' must be a list, found a string"),
    ("boolean seed", _set("seed", True), "field 'seed' must be an integer or null, found a boolean"),
    ("bad kind", _set("kind", "liveness"), "field 'kind' must be one of invariant, deadlock"),
    ("bad violation", _set("violations", [3]), "field 'violations[0]' must be a string"),
    ("bad step", lambda d: d["steps"].__setitem__(1, ["inc", 2]), "field 'steps[1]' must be an object"),
    ("bad args", lambda d: d["steps"][0].__setitem__("args", 2), "field 'steps[0].args' must be a list"),
    ("bad action", lambda d: d["steps"][0].pop("action"), "field 'steps[0].action' must be a string"),
    ("short digests", lambda d: d["digests"].pop(), "field 'digests' has 2 entries, expected 3"),
    ("unknown model", _set("model", "slab"), "unknown model 'slab'"),
    ("other signature", _set("signature", "0123456789abcdef"), "recorded against a different model 'toy'"),
    ("unknown mutant", _set("mutant", "toy.skip_everything"), "unknown mutant 'toy.skip_everything'"),
    ("unknown invariant", _set("invariant", "toy.nothing"), "unknown invariant 'toy.nothing'"),
    (
        "rejected config",
        _set("config", {"limit": -1}),
        "config rejected by model 'toy': limit -1 is negative",
    ),
    (
        "unknown config",
        _set("config", {"limit": 3, "pages": 8}),
        "config rejected by model 'toy': unknown config fields",
    ),
    ("mistyped config", _set("config", [3]), "field 'config' must be an object, found a list"),
]


@pytest.mark.parametrize(("case", "edit", "problem"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_counterexamples_are_refused_in_one_line(
    tmp_path: Path, case: str, edit: Callable[[dict[str, Any]], Any] | str, problem: str
) -> None:
    path = tmp_path / "bad.json"
    if isinstance(edit, str):
        path.write_text(edit, encoding="utf-8")
    else:
        data = record(OVERSHOOT).to_json()
        edit(data)
        save(tmp_path, data, path.name)
    with pytest.raises(UsageError) as err:
        load_counterexample(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(UsageError, match=r"nowhere\.json: no such file$"):
        load_counterexample(path)


def test_diff_states_walks_nested_data_and_shows_index_paths() -> None:
    before = {
        "zones": [{"free_area": [{"nr_free": 1}, {"nr_free": 2}]}],
        "pcp": [1, 2, 3],
        "on": 1,
        "a b": {"0": 1},
    }
    after = {
        "zones": [{"free_area": [{"nr_free": 1}, {"nr_free": 0}]}],
        "pcp": [1],
        "on": True,
        "a b": {"0": 2},
        "new": None,
    }
    assert diff_states(before, after) == [
        Change("zones[0].free_area[1].nr_free", 2, 0),
        Change("pcp[1]", 2, ABSENT),
        Change("pcp[2]", 3, ABSENT),
        Change("on", 1, True),
        Change("['a b'][0]", 1, 2),
        Change("new", ABSENT, None),
    ]
    assert diff_states(before, before) == []
    assert diff_states(1, 2) == [Change("(state)", 1, 2)]
    assert Change("pcp[2]", 3, ABSENT).to_json() == {"path": "pcp[2]", "old": 3}


def test_print_replay_and_json_show_steps_diffs_and_verdict() -> None:
    rep = replay(record(OVERSHOOT, mutant=None), source="cex.json")
    console = Console(record=True, width=120, color_system=None)
    print_replay(rep, console)
    text = console.export_text()
    for expected in (
        "replay cex.json",
        "engine    explore (seed 7)",
        "1. inc(n=2) -> 2",
        "zones[0].nr_free: 6 -> 4",
        "history[1]: (absent) -> 2",
        "violation reproduced: toy.within_limit",
        "count 4 exceeds limit 3",
    ):
        assert expected in text

    data = json.loads(json.dumps(rep.to_json()))
    assert data["schema"] == "kinv.replay/1" and data["reproduced"] is True
    assert data["steps"][1]["diff"][1] == {"path": "history[1]", "new": 2}
    assert data["steps"][1]["args"] == [2] and data["steps"][1]["label"] == "inc(n=2)"


def test_print_replay_says_when_the_violation_is_not_reproduced() -> None:
    cex = record([("inc", (1,))])
    cex.violations = ["count 9 exceeds limit 3"]
    console = Console(record=True, width=120, color_system=None)
    print_replay(replay(cex), console)
    text = console.export_text()
    assert "violation NOT reproduced" in text and "recorded:" in text and "found: (none)" in text
