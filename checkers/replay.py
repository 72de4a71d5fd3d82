"""Replay a saved counterexample step by step (``kinv replay``; DESIGN.md, "Reports").

A counterexample file records the model, its config and signature, the mutant (if any),
the steps from the initial state and the state digest after each one. Replay rebuilds the
model, runs the steps again and insists on the same states and the same violation; any
drift (an action that is no longer enabled, a different digest) means the file was recorded
against a different model, which is reported as bad input rather than as a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import invariants
import model as model_registry
from checkers import mutants
from checkers.errors import UsageError
from checkers.results import COUNTEREXAMPLE_SCHEMA, Counterexample
from model.contract import Args, Model, Step, digest, to_jsonable

REPLAY_SCHEMA = "kinv.replay/1"
KINDS = ("invariant", "deadlock")
DIFFERENT_MODEL = "the counterexample was recorded against a different model"


class _Absent:
    """Marks the side of a change where a key or list index does not exist."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


class Change(NamedTuple):
    path: str  # "zones[2].free_area[3].nr_free"
    old: Any  # ABSENT when the path appears
    new: Any  # ABSENT when the path disappears

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.old is not ABSENT:
            out["old"] = self.old
        if self.new is not ABSENT:
            out["new"] = self.new
        return out


@dataclass
class ReplayedStep:
    index: int  # 1-based, as printed
    step: Step
    label: str  # "alloc_pages(order=2)"
    result: Any  # the action's return value, as plain data
    state: Any  # the state after the step, as plain data
    diff: list[Change]


@dataclass
class Replay:
    cex: Counterexample
    source: str  # the file (or label) named in messages
    initial: Any  # the initial state, as plain data
    steps: list[ReplayedStep]
    violations: list[str]  # found again on the final state
    reproduced: bool  # the recorded violation, exactly
    diagram: list[str] | None = None  # the model's drawing of the steps (Model.diagram), if it has one

    def to_json(self) -> dict[str, Any]:
        cex = self.cex
        return {
            "schema": REPLAY_SCHEMA,
            "file": self.source,
            "model": cex.model,
            "config": cex.config,
            "mutant": cex.mutant,
            "engine": cex.engine,
            "seed": cex.seed,
            "kind": cex.kind,
            "invariant": cex.invariant,
            "initial": self.initial,
            "steps": [
                {
                    "index": s.index,
                    "label": s.label,
                    **s.step.to_json(),
                    "result": s.result,
                    "diff": [c.to_json() for c in s.diff],
                    "state": s.state,
                }
                for s in self.steps
            ],
            "reproduced": self.reproduced,
            "violations": self.violations,
            "recorded_violations": cex.violations,
        } | ({"diagram": self.diagram} if self.diagram is not None else {})


# Loading and validation.


def load_counterexample(path: str | Path) -> Counterexample:
    """Read and fully validate a counterexample file; any problem is one UsageError line."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    except OSError as e:
        raise UsageError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{where}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    cex = counterexample_from_json(data, where)
    resolve(cex, where)
    return cex


_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "schema": (str, "a string"),
    "model": (str, "a string"),
    "signature": (str, "a string"),
    "config": (dict, "an object"),
    "mutant": ((str, type(None)), "a string or null"),
    "engine": (str, "a string"),
    "seed": ((int, type(None)), "an integer or null"),
    "kind": (str, "a string"),
    "invariant": (str, "a string"),
    "violations": (list, "a list"),
    "steps": (list, "a list"),
    "digests": (list, "a list"),
}


def counterexample_from_json(data: Any, where: str) -> Counterexample:
    """The Counterexample a parsed file describes, after checking its shape (not its model)."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: not a counterexample (expected a JSON object, found {_json_type(data)})")
    if "schema" not in data:
        raise UsageError(f"{where}: missing schema (expected {COUNTEREXAMPLE_SCHEMA!r})")
    if data["schema"] != COUNTEREXAMPLE_SCHEMA:
        raise UsageError(f"{where}: schema {data['schema']!r} is not {COUNTEREXAMPLE_SCHEMA!r}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r}")
    for name, (types, what) in _FIELDS.items():
        if name not in data:
            raise UsageError(f"{where}: missing field {name!r}")
        # bool is an int in Python but never a seed.
        if not isinstance(data[name], types) or isinstance(data[name], bool):
            raise UsageError(f"{where}: field {name!r} must be {what}, found {_json_type(data[name])}")
    if data["kind"] not in KINDS:
        raise UsageError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, found {data['kind']!r}")
    for i, v in enumerate(data["violations"]):
        if not isinstance(v, str):
            raise UsageError(f"{where}: field 'violations[{i}]' must be a string, found {_json_type(v)}")
    for i, step in enumerate(data["steps"]):
        _check_step(step, i, where)
    for i, d in enumerate(data["digests"]):
        if not isinstance(d, str):
            raise UsageError(f"{where}: field 'digests[{i}]' must be a string, found {_json_type(d)}")
    if len(data["digests"]) != len(data["steps"]) + 1:
        raise UsageError(
            f"{where}: field 'digests' has {len(data['digests'])} entries, expected {len(data['steps']) + 1} "
            "(the initial state, then one per step)"
        )
    return Counterexample.from_json(data)


def _check_step(data: Any, i: int, where: str) -> None:
    if not isinstance(data, dict):
        raise UsageError(f"{where}: field 'steps[{i}]' must be an object, found {_json_type(data)}")
    extra = sorted(set(data) - {"action", "args"})
    if extra:
        raise UsageError(f"{where}: unknown field 'steps[{i}].{extra[0]}'")
    if not isinstance(data.get("action"), str):
        raise UsageError(f"{where}: field 'steps[{i}].action' must be a string")
    if not isinstance(data.get("args"), list):
        raise UsageError(f"{where}: field 'steps[{i}].args' must be a list")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass
class Resolved:
    """What a counterexample names, looked up in this build."""

    model: Model[Any, Any]
    mutant: mutants.Mutant | None
    invariant: invariants.Invariant | None  # None for a deadlock

    def mutated(self) -> AbstractContextManager[None]:
        return self.mutant.applied() if self.mutant else nullcontext()


def resolve(cex: Counterexample, where: str) -> Resolved:
    """Look up the model, config, mutant and invariant a counterexample names; UsageError if
    any is unknown or differs from the one it was recorded against."""
    if cex.model not in model_registry.MODELS:
        known = ", ".join(sorted(model_registry.MODELS))
        raise UsageError(f"{where}: unknown model {cex.model!r} (known: {known})")
    try:
        cls = model_registry.model_class(cex.model)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"{where}: model {cex.model!r} cannot be loaded: {_one_line(e)}") from None
    if cls.signature() != cex.signature:
        raise UsageError(
            f"{where}: recorded against a different model {cex.model!r} "
            f"(signature {cex.signature}, this build has {cls.signature()})"
        )
    try:
        config = cls.config_from_json(cex.config)
        model = cls(config)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{where}: config rejected by model {cex.model!r}: {_one_line(e)}") from None
    mutant = None
    if cex.mutant is not None:
        mutant = mutants.load_all().get(cex.mutant)
        if mutant is None:
            raise UsageError(f"{where}: unknown mutant {cex.mutant!r}")
        if mutant.model != cex.model:
            raise UsageError(
                f"{where}: mutant {cex.mutant!r} mutates model {mutant.model!r}, not {cex.model!r}"
            )
    inv = None
    if cex.kind == "invariant":
        inv = invariants.load_all().get(cex.invariant)
        if inv is None:
            raise UsageError(f"{where}: unknown invariant {cex.invariant!r}")
        if inv.model != cex.model:
            raise UsageError(
                f"{where}: invariant {cex.invariant!r} reads model {inv.model!r}, not {cex.model!r}"
            )
    return Resolved(model, mutant, inv)


# Replay.


def replay_file(path: str | Path) -> Replay:
    return replay(load_counterexample(path), source=path)


def replay(cex: Counterexample, *, source: str | Path = "counterexample") -> Replay:
    """Run ``cex`` again from the initial state, under its mutant, and re-evaluate its
    invariant on the final state. ``source`` names the file in messages. Raises UsageError
    when the model has drifted."""
    where = str(source)
    found = resolve(cex, where)
    with found.mutated():
        return _run(found, cex, where)


def _run(found: Resolved, cex: Counterexample, where: str) -> Replay:
    model = found.model
    try:
        state = model.init_state()
    except (TypeError, ValueError) as e:
        raise UsageError(f"{where}: config rejected by model {cex.model!r}: {_one_line(e)}") from None
    _check_digest(cex, 0, state, "the initial state", where)
    initial = plain(state)
    before, previous, result = state, initial, None
    steps: list[ReplayedStep] = []
    for i, step in enumerate(cex.steps, 1):
        act = model.action_by_name.get(step.action)
        label = act.label(step.args) if act else _label(step.action, step.args)
        if act is None or not model.is_enabled(state, act, step.args):
            raise UsageError(
                f"{where}: step {i} {label} is not enabled in the replayed state: {DIFFERENT_MODEL}"
            )
        before = state
        state, result = model.step(state, act, step.args)
        _check_digest(cex, i, state, f"the state after step {i} {label}", where)
        after = plain(state)
        steps.append(ReplayedStep(i, step, label, plain(result), after, diff_states(previous, after)))
        previous = after
    violations = _verdict(found, cex, before, state, result)
    reproduced = bool(violations) and violations == cex.violations
    return Replay(cex, where, initial, steps, violations, reproduced, model.diagram(cex.steps))


def _verdict(found: Resolved, cex: Counterexample, before: Any, state: Any, result: Any) -> list[str]:
    inv = found.invariant
    if inv is None:
        # A deadlock's sentence describes the stuck state in the engine's words; replay
        # checks the condition itself and repeats those words when it holds.
        stuck = next(iter(found.model.enabled(state)), None) is None and not found.model.is_final(state)
        return list(cex.violations) if stuck else []
    if not inv.transition:
        return list(inv.check(state))
    if not cex.steps:
        return []  # a transition invariant needs a transition
    last = cex.steps[-1]
    return list(inv.check(before, Step(last.action, last.args, result), after=state))


def _check_digest(cex: Counterexample, i: int, state: Any, what: str, where: str) -> None:
    if digest(state.fingerprint()) != cex.digests[i]:
        raise UsageError(f"{where}: {what} differs from the recorded one: {DIFFERENT_MODEL}")


def _label(name: str, args: Args) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


# State diffs.


def diff_states(before: Any, after: Any) -> list[Change]:
    """The leaves that differ between two plain-data states (``to_jsonable`` output), with
    paths such as ``zones[2].free_area[3].nr_free``. Lists are compared index by index, so a
    list that grows or shrinks shows its new or vanished indices."""
    return list(_diff(before, after, ""))


def _diff(old: Any, new: Any, path: str) -> Iterator[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = _join(path, key)
            if key not in new:
                yield Change(sub, old[key], ABSENT)
            elif key not in old:
                yield Change(sub, ABSENT, new[key])
            else:
                yield from _diff(old[key], new[key], sub)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                yield Change(sub, old[i], ABSENT)
            elif i >= len(old):
                yield Change(sub, ABSENT, new[i])
            else:
                yield from _diff(old[i], new[i], sub)
    elif type(old) is not type(new) or old != new:  # 1 -> True is a change
        yield Change(path or "(state)", old, new)


def _join(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]" if key.isdigit() else f"{path}[{key!r}]"


# Output.


def plain(value: Any) -> Any:
    """JSON-able data for a state or return value (``to_jsonable``); a value that is still
    not JSON-able is kept as its repr, so that ``--json`` output never fails."""
    value = to_jsonable(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def show(value: Any) -> str:
    """Compact one-line rendering of a plain-data value for diffs and return values."""
    if value is ABSENT:
        return "(absent)"
    try:
        return json.dumps(value, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def print_replay(rep: Replay, console: Any) -> None:
    """Print a replay with rich: header, numbered steps with diffs, the model's diagram of
    them if it draws one, then the verdict."""
    from rich.markup import escape

    cex = rep.cex
    console.print(f"[bold]replay[/] {escape(rep.source)}")
    for key, value in (
        ("model", cex.model),
        ("config", show(cex.config)),
        ("mutant", cex.mutant or "none"),
        ("engine", cex.engine + (f" (seed {cex.seed})" if cex.seed is not None else "")),
        ("invariant", cex.invariant if cex.kind == "invariant" else f"{cex.invariant} ({cex.kind})"),
    ):
        console.print(f"  [dim]{key:<9}[/] {escape(str(value))}")
    console.print()
    if not rep.steps:
        console.print("  [dim](no steps: the initial state)[/]")
    for s in rep.steps:
        ret = "" if s.result is None else f" [dim]->[/] {escape(show(s.result))}"
        console.print(f"[bold]{s.index:>3}.[/] [cyan]{escape(s.label)}[/]{ret}")
        for c in s.diff:
            console.print(
                f"       {escape(c.path)}: [red]{escape(show(c.old))}[/] -> [green]{escape(show(c.new))}[/]"
            )
        if not s.diff:
            console.print("       [dim](state unchanged)[/]")
    if rep.diagram is not None:
        console.print()
        for line in rep.diagram:
            console.print(line, highlight=False, markup=False, soft_wrap=True)  # columns, not wrapped
    console.print()
    if rep.reproduced:
        console.print(f"[bold red]violation reproduced:[/] {escape(cex.invariant)}")
        for v in rep.violations:
            console.print(f"  {escape(v)}")
        return
    console.print(f"[bold yellow]violation NOT reproduced:[/] {escape(cex.invariant)}")
    for heading, sentences in (("recorded", cex.violations), ("found", rep.violations)):
        console.print(f"  {heading}: {'' if sentences else '(none)'}")
        for v in sentences:
            console.print(f"    {escape(v)}")
