"""Mutants: deliberate bugs kept apart from the model (DESIGN.md, "Mutants").

A mutant replaces one or more module-level model functions for the duration of a run.
Model code calls its helpers through module globals, so replacing ``module.attr`` changes
every caller in that module; the action table captured at class creation is never touched.
Each mutant names the invariant it must break and the engine that must find it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# The subsystems with mutant catalogs (checkers/mutants/<subsystem>.py).
SUBSYSTEMS = ("buddy", "slub", "sched", "sync", "tcp", "cgroup", "kernel")


@dataclass(frozen=True)
class Mutant:
    name: str  # "buddy.skip_merge"
    model: str  # registry name of the model it mutates
    description: str  # the bug, in kernel terms
    patches: tuple[tuple[str, str, Callable[..., Any]], ...]  # (module, attribute, replacement)
    breaks: str  # the invariant (or proof) it must break
    engine: str  # "explore", "stateful" or "prove"

    @contextmanager
    def applied(self) -> Iterator[None]:
        saved = []
        try:
            for module, attr, replacement in self.patches:
                mod = importlib.import_module(module)
                saved.append((mod, attr, getattr(mod, attr)))
                setattr(mod, attr, replacement)
            yield
        finally:
            for mod, attr, original in reversed(saved):
                setattr(mod, attr, original)


REGISTRY: dict[str, Mutant] = {}


def mutant(
    name: str, *, model: str, breaks: str, engine: str, patches: tuple[tuple[str, str, Callable[..., Any]], ...]
) -> Mutant:
    if name in REGISTRY:
        raise ValueError(f"mutant {name} registered twice")
    first = patches[0][2]
    m = Mutant(name, model, (first.__doc__ or "").strip().splitlines()[0] if first.__doc__ else name, patches, breaks, engine)
    REGISTRY[name] = m
    return m


def load_all() -> dict[str, Mutant]:
    for sub in SUBSYSTEMS:
        importlib.import_module(f"checkers.mutants.{sub}")
    return REGISTRY
