"""The model contract (DESIGN.md, "The model contract").

A model is a state, the actions that change it, and a config; nothing else. It is shaped
like Stateright's ``Model`` and TLA+'s Init/Next so that every engine (random, exhaustive,
replay) drives any model through the same three calls: ``init_state``, ``enabled`` and
``step``.

Decisions the design leaves open, settled here:

- Actions *mutate* the state they are given, as kernel code does; ``step`` hands them a
  private ``clone()`` so that engines never see a state change under their feet.
- An action's arguments are plain values (ints, strings, tuples of them), never object
  references, so that a trace is a JSON list of ``(action, args)`` and replays exactly.
- ``fingerprint()`` is the state's identity for the explorer: canonical (equal for states
  that behave the same) and hashable. It is stored whole, never hashed down, so that an
  exhaustive verdict is exact.
- A state with no enabled action is a deadlock unless ``is_final`` says it is an
  intended end state.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

Args = tuple[Any, ...]


class State(Protocol):
    def fingerprint(self) -> Hashable: ...

    def clone(self) -> Self: ...


S = TypeVar("S", bound=State)


@dataclass(frozen=True)
class Action:
    """One kernel operation, declared once: its name, parameters, argument domain and effect.

    ``domain(model, state)`` yields the argument tuples for which the action is enabled in
    ``state``; an empty domain means disabled. ``effect(model, state, *args)`` mutates
    ``state`` and may return a value (the allocated pfn, say) that traces show.
    """

    name: str
    params: tuple[str, ...]
    domain: Callable[[Any, Any], Iterable[Args]]
    effect: Callable[..., Any]
    doc: str = ""

    def label(self, args: Args) -> str:
        return f"{self.name}({', '.join(f'{p}={a!r}' for p, a in zip(self.params, args, strict=True))})"


def action(*params: str, domain: Callable[[Any, Any], Iterable[Args]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a model method as an action: ``@action("order", "cpu", domain=...)``."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__kinv_action__ = (params, domain)  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True)
class Step:
    """One transition of a trace: the action taken and its arguments, and what the action
    returned (a system call's result), for transition invariants to check. The result is not
    part of a trace: a replay computes it again."""

    action: str
    args: Args
    result: Any = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": to_jsonable(self.args)}


def to_jsonable(value: Any) -> Any:
    """Plain-data view of a state or argument: dataclasses, enums and containers unfolded."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple: its fields by name
        return {f: to_jsonable(v) for f, v in zip(value._fields, value, strict=True)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=repr)
    if isinstance(value, enum.Enum):
        return value.name
    return value


def digest(fingerprint: Hashable) -> str:
    """Short stable digest of a fingerprint, recorded in traces to detect model drift."""
    return hashlib.blake2b(repr(fingerprint).encode(), digest_size=8).hexdigest()


C = TypeVar("C")


class Model(Generic[S, C]):
    """Base of every model. Subclasses set ``name``, ``Config``, ``profiles`` and
    ``init_state``, and declare their actions with ``@action``.

    ``profiles`` holds at least ``small`` (for exhaustive search) and ``large`` (for random
    runs).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    profiles: ClassVar[dict[str, Any]]
    actions: ClassVar[tuple[Action, ...]] = ()
    # How many times more often random runs draw an action than one of weight 1 (the default).
    weights: ClassVar[dict[str, int]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        declared: dict[str, Action] = {a.name: a for a in cls.actions}
        for attr, fn in vars(cls).items():
            mark = getattr(fn, "__kinv_action__", None)
            if mark is not None:
                params, domain = mark
                doc = (fn.__doc__ or "").strip().splitlines()
                declared[attr] = Action(attr, params, domain, fn, doc[0] if doc else "")
        cls.actions = tuple(declared.values())

    def __init__(self, config: C | None = None) -> None:
        self.config: C = config if config is not None else self.profiles["small"]
        self.action_by_name = {a.name: a for a in self.actions}

    @classmethod
    def from_profile(cls, profile: str) -> Self:
        return cls(cls.profiles[profile])

    @classmethod
    def config_from_json(cls, data: dict[str, Any]) -> Any:
        """Rebuild a Config from its JSON form; raises TypeError/ValueError on a bad one."""
        fields = {f.name: f for f in dataclasses.fields(cls.Config)}
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        return cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def config_json(self) -> dict[str, Any]:
        return dict(to_jsonable(self.config))

    @classmethod
    def signature(cls) -> str:
        """Digest of the action declarations, recorded in traces to detect a different model."""
        text = json.dumps([[a.name, list(a.params)] for a in cls.actions])
        return hashlib.blake2b(f"{cls.name}:{text}".encode(), digest_size=8).hexdigest()

    # The three calls every engine makes.

    def init_state(self) -> S:
        raise NotImplementedError

    def enabled(self, state: S) -> Iterator[tuple[Action, Args]]:
        for act in self.actions:
            for args in act.domain(self, state):
                yield act, args

    def step(self, state: S, act: Action, args: Args) -> tuple[S, Any]:
        """The successor of ``state`` under ``act(*args)`` and the action's return value."""
        nxt = state.clone()
        return nxt, act.effect(self, nxt, *args)

    def is_final(self, state: S) -> bool:
        """True for intended end states, which are not deadlocks."""
        return False

    def is_enabled(self, state: S, act: Action, args: Args) -> bool:
        return any(a == args for a in act.domain(self, state))

    def diagram(self, steps: Sequence[Step]) -> list[str] | None:
        """A drawing of a trace from the initial state, as lines of text, or None. The step
        list with state diffs is the same for every model; a model with a better picture of
        its traces (the sync model: each CPU's steps in its own column, with the store
        buffers) returns it here, and reports and ``kinv replay`` show it with the steps."""
        return None
