"""z3 proofs of the memory controller's page counters (mm/page_counter.c).

The claim runs the model's page_counter_try_charge itself on z3 integers: its branches (a
level over its max, a new watermark) are taken both ways, path by path (claims.paths), so
that the proof covers the code as written, for every value, at each depth of hierarchy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from invariants.claims import Case, Claim, all_of, claim_proof, implies, paths
from model.cgroup import page_counter
from model.cgroup.page_counter import PageCounter

DEPTHS = (1, 2, 3, 4)  # a memcg and up to three ancestors
LEVELS = max(DEPTHS)


def _sample(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    (depth,) = rng.choice(cases)
    usage = sorted(rng.randrange(0, 50) for _ in range(LEVELS))  # a parent holds at least its child
    maxes = [u + rng.randrange(-2, 6) for u in usage]  # some levels full, some over (outside the bounds)
    marks = [u + rng.randrange(0, 3) for u in usage]
    return (depth, rng.randrange(0, 4), *usage, *maxes, *marks)


@claim_proof(
    "cgroup.try_charge_inductive",
    statement=(
        "usage <= max at every level, watermark >= usage, and a parent's usage at least its "
        "child's are inductive under page_counter_try_charge: from any counters that satisfy "
        "them, a charge of nr_pages either raises every level by nr_pages or, refused at some "
        "level, leaves every usage as it was, and they still hold."
    ),
    bounds="chains of 1 to 4 counters (a memcg and its ancestors); every integer usage, max, "
    "watermark and nr_pages >= 1",
    source="mm/page_counter.c page_counter_try_charge, page_counter_cancel",
    bits=None,
    cases=lambda: [(d,) for d in DEPTHS],
    sample=_sample,
)
def try_charge_inductive(
    depth: int, nr_pages: Any, u0: Any, u1: Any, u2: Any, u3: Any, m0: Any, m1: Any, m2: Any, m3: Any,
    w0: Any, w1: Any, w2: Any, w3: Any,
) -> Claim:  # fmt: skip
    usage, maxes, marks = (u0, u1, u2, u3)[:depth], (m0, m1, m2, m3)[:depth], (w0, w1, w2, w3)[:depth]
    chain = tuple(range(depth))

    def charge() -> tuple[int | None, dict[int, PageCounter]]:
        counters = {i: PageCounter(usage[i], maxes[i], marks[i], 0) for i in chain}
        failed = page_counter.page_counter_try_charge(counters, chain, nr_pages)
        return failed, counters

    def invariant(us: Sequence[Any], ms: Sequence[Any], ws: Sequence[Any]) -> Any:
        return all_of(
            *(all_of(u >= 0, u <= m, u <= w) for u, m, w in zip(us, ms, ws, strict=True)),
            *(us[i] <= us[i + 1] for i in range(len(us) - 1)),
        )

    assume = all_of(nr_pages >= 1, invariant(usage, maxes, marks))
    holds = []
    for cond, (failed, counters) in paths(charge):
        after = [counters[i] for i in chain]
        moved = [c.usage - u for c, u in zip(after, usage, strict=True)]
        whole = all_of(*(d == (0 if failed is not None else nr_pages) for d in moved))
        same_max = all_of(*(c.max == m for c, m in zip(after, maxes, strict=True)))
        kept = invariant([c.usage for c in after], [c.max for c in after], [c.watermark for c in after])
        holds.append(implies(cond, all_of(whole, same_max, kept)))
    return assume, all_of(*holds), {}
