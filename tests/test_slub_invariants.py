"""Each slub invariant holds on real states and fails, naming the slab, cache or address in
hex, on a clone corrupted the way a kernel bug would corrupt it. The states come from running
the model's own actions; a checked state is never changed, and still passes after its clone
was corrupted, so every test shows the invariant telling the two apart."""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from collections.abc import Callable
from typing import NamedTuple

import pytest

import checkers.mutants
import invariants
from invariants import slub as inv
from model.contract import Step
from model.hw.memory import PAGE_SHIFT
from model.mm import buddy
from model.mm.buddy import SMALL as BUDDY_SMALL
from model.mm.buddy import BuddyConfig
from model.mm.mmzone import ZONE_NORMAL, FreeArea
from model.mm.slab import SlubConfig, SlubModel, SlubState
from model.mm.slab_common import CacheSpec, KmemCache
from model.mm.slub import KMALLOC_LARGE, NULL, CpuPartial, Pending, set_cpu_slab, set_node, set_slab

K2048, K128 = "kmalloc-2048", "kmalloc-128"

# The small profile: one CPU, kmalloc-2048 only, order-0 slabs of two objects.
SMALL = SlubModel.from_profile("small")
# Two CPUs on the small machine, three kmalloc classes, kmalloc_large and a custom cache.
TWO = SlubModel(
    SlubConfig(
        buddy=dataclasses.replace(BUDDY_SMALL, cpu_to_node=(0, 0)),
        slub_max_order=0,
        slub_min_objects=2,
        cpu_partial=2,
        min_partial=1,
        kmalloc_sizes=(100, 2000, 9000),
        caches=(CacheSpec("dentry", 192, 0, ("SLAB_HWCACHE_ALIGN",)),),
    )
)
# Two nodes, one CPU each, on a 16-page machine, for kmem_cache_alloc_node.
NUMA = SlubModel(
    SlubConfig(
        buddy=BuddyConfig(
            MAX_ORDER=3,
            pageblock_order=1,
            ram=((0, 8, 0), (8, 16, 1)),
            reserved=((0, 1),),
            max_zone_pfn=(2, 4, 16),
            cpu_to_node=(0, 1),
            min_free_kbytes=16,
            pcp_high=3,
            pcp_batch=2,
            migratetypes=("MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE"),
            split_page_max_order=0,
        ),
        slub_max_order=0,
        slub_min_objects=2,
        cpu_partial=2,
        min_partial=1,
        kmalloc_sizes=(4096,),
        caches=(CacheSpec("foo", 2048),),
        irq_window=False,
    )
)

STATE_INVARIANTS = [i for i in invariants.for_model("slub") if not i.transition]
TRANSITION_INVARIANTS = [i for i in invariants.for_model("slub") if i.transition]


class Run(NamedTuple):
    """The last step of a scenario: the state before it, the step, and the state it made."""

    before: SlubState
    step: Step
    after: SlubState


Action = tuple[object, ...]


def play(model: SlubModel, actions: list[Action], state: SlubState | None = None) -> list[Run]:
    """Run enabled actions from init_state (or state), every step kept."""
    s = model.init_state() if state is None else state
    runs = []
    for name, *args in actions:
        act = model.action_by_name[str(name)]
        assert model.is_enabled(s, act, tuple(args)), f"{name}{tuple(args)} is not enabled"
        nxt, _ = model.step(s, act, tuple(args))
        runs.append(Run(s, Step(str(name), tuple(args)), nxt))
        s = nxt
    return runs


FIRST_KMALLOC: list[Action] = [("kmalloc", 2048, 0)]
PENDING_ALLOC = FIRST_KMALLOC + [("kmalloc", 2048, 0)]
FULL_SLAB = PENDING_ALLOC + [("cmpxchg_double", 0), ("kmalloc", 2048, 0)]


def _first_two_slabs() -> tuple[int, int]:
    """The pfns of the small profile's first two kmalloc-2048 slabs, as its buddy allocator
    hands them out (of pfns 1-4)."""
    runs = play(SMALL, FULL_SLAB)
    first, second = (
        runs[0].after.caches[K2048].cpu_slab[0].page,
        runs[-1].after.caches[K2048].cpu_slab[0].page,
    )
    assert first is not None and second is not None
    return first, second


def o(pfn: int, index: int, size: int = 2048) -> int:
    """The address of object index of the slab at pfn."""
    return (pfn << PAGE_SHIFT) + index * size


# P is the first slab (its object 0 the first kmalloc), Q the second.
P, Q = _first_two_slabs()
# a page of the small machine that is no slab in the first_kmalloc state
NOT_A_SLAB = o(P + 1, 0)

CPU_PARTIAL = FULL_SLAB + [("kfree", o(P, 0), 0)]
NODE_PARTIAL = CPU_PARTIAL + [("kmem_cache_shrink", K2048)]
PENDING_FREE = FIRST_KMALLOC + [("kfree", o(P, 0), 0)]
TWO_CPUS: list[Action] = [
    ("kmalloc", 9000, 0),
    ("kmalloc", 100, 1),
    ("kmalloc", 100, 1),
    ("cmpxchg_double", 1),
    ("kmalloc", 2000, 0),
    ("kmem_cache_create", "dentry"),
    ("kmem_cache_alloc", "dentry", 1),
]


@functools.cache
def scenarios() -> dict[str, Run]:
    """The real states, by the situation they show (built once; tests corrupt clones only)."""
    return {
        # slab P frozen as c->page, o(P, 0) live, c->freelist o(P, 1)
        "first_kmalloc": play(SMALL, FIRST_KMALLOC)[-1],
        # the task's fast path stopped before its cmpxchg, about to take o(P, 1)
        "pending_alloc": play(SMALL, PENDING_ALLOC)[-1],
        # slab P full (on no list, not frozen); slab Q is c->page with c->freelist o(Q, 1)
        "full_slab": play(SMALL, FULL_SLAB)[-1],
        # o(P, 0) freed while slab P is full and not c->page: P is frozen on c->partial
        "cpu_partial": play(SMALL, CPU_PARTIAL)[-1],
        # kmem_cache_shrink flushed both slabs to the node partial list (P, Q)
        "node_partial": play(SMALL, NODE_PARTIAL)[-1],
        # the task's kfree(o(P, 0)) stopped before its cmpxchg
        "pending_free": play(SMALL, PENDING_FREE)[-1],
        # kmalloc_large 0x8000 (order 2); kmalloc-128 slab 0x6 with 0x6000, 0x6080 live and a
        # 30-object c->freelist 0x6100 -> 0x6180 -> ... on cpu 1; kmalloc-2048 slab 0x2 with
        # 0x2000 live and c->freelist 0x2800 on cpu 0; dentry slab 0x1 with 0x1000 on cpu 1
        "two_cpus": play(TWO, TWO_CPUS)[-1],
    }


@pytest.fixture(scope="module")
def states() -> dict[str, SlubState]:
    return {name: run.after for name, run in scenarios().items()}


def test_scenarios_are_the_states_they_claim(states: dict[str, SlubState]) -> None:
    assert P != Q and {P, Q, P + 1} <= {1, 2, 3, 4}  # pfn 0 is reserved
    s = states["first_kmalloc"]
    c = s.caches[K2048].cpu_slab[0]
    assert (c.page, c.freelist, s.slabs[P].frozen, s.live) == (P, o(P, 1), True, ((o(P, 0), K2048, 2048),))
    assert list(s.slabs) == [P] and NOT_A_SLAB >> PAGE_SHIFT not in s.slabs
    assert states["pending_alloc"].task[0] == Pending("alloc", K2048, 1, o(P, 1), NULL, P, None, 2048)
    s = states["full_slab"]
    assert s.slabs[P] == s.slabs[P]._replace(inuse=2, frozen=False, freelist=NULL)
    assert s.caches[K2048].cpu_slab[0][:2] == (o(Q, 1), Q)
    assert s.caches[K2048].node[0].partial == ()
    s = states["cpu_partial"]
    assert s.caches[K2048].cpu_slab[0].partial == (CpuPartial(P, 1, 1),) and s.slabs[P].frozen
    s = states["node_partial"]
    assert s.caches[K2048].node[0].partial == (P, Q) and not s.slabs[P].frozen and not s.slabs[Q].frozen
    p = states["pending_free"].task[0]
    assert p is not None and (p.op, p.object) == ("free", o(P, 0))
    s = states["two_cpus"]
    assert (0x8000, KMALLOC_LARGE, 9000) in s.live and (8, 2) in s.mm.allocated
    assert s.caches[K128].cpu_slab[1].freelist == 0x6100 and s.caches["dentry"].cpu_slab[1].page == 1


# Every invariant holds on real states.


@pytest.mark.parametrize("name", list(scenarios()))
@pytest.mark.parametrize("check", STATE_INVARIANTS, ids=lambda i: i.name)
def test_state_invariants_hold_on_real_states(check: invariants.Invariant, name: str) -> None:
    assert check.check(scenarios()[name].after) == []


@pytest.mark.parametrize("name", list(scenarios()))
@pytest.mark.parametrize("check", TRANSITION_INVARIANTS, ids=lambda i: i.name)
def test_transition_invariants_hold_on_real_steps(check: invariants.Invariant, name: str) -> None:
    before, step, after = scenarios()[name]
    assert check.check(before, step, after=after) == []


@pytest.mark.parametrize(
    ("model", "seed"),
    [
        pytest.param(m, seed, id=f"{label}-seed{seed}")
        for label, m in (("small", SMALL), ("two_cpus", TWO))
        for seed in (0, 1)
    ],
)
def test_invariants_hold_on_a_random_walk(model: SlubModel, seed: int) -> None:
    invs = invariants.for_model("slub")
    rng = random.Random(seed)
    s = model.init_state()
    assert invariants.evaluate(invs, s) is None
    for _ in range(120):
        act, args = rng.choice(list(model.enabled(s)))
        after, _ = model.step(s, act, args)
        found = invariants.evaluate(invs, after, s, Step(act.name, args))
        assert found is None, (act.label(args), found[0].name, found[1])
        s = after


# Corruptions.


def assert_sentence(message: str, state: SlubState) -> None:
    """One readable sentence in kernel terms that names a cache, or an address or pfn in hex
    (the buddy allocator's own messages, prefixed with their invariant, name zones and decimal
    pfns as the buddy.* invariants do)."""
    assert message and message == message.strip() and "\n" not in message, message
    assert not message.endswith("."), message
    assert not re.search(r"None|Slab\(|KmemCache|CpuPartial|\{|\[\d+,", message), message
    if message.startswith("buddy."):
        assert re.match(r"buddy\.\w+: .*\b(zone|pfn) ", message), message
        return
    names = set(state.caches) | {KMALLOC_LARGE}
    assert re.search(r"0x[0-9a-f]+", message) or any(n in message for n in names), message
    assert not re.search(r"\b(?:slab|pfn|block) (?!0x)\d", message), message


def snapshot(state: SlubState) -> tuple[object, ...]:
    return (
        dict(state.caches),
        dict(state.slabs),
        dict(state.freeptr),
        state.live,
        state.task,
        state.mm.fingerprint(),
    )


def corrupted(
    check: Callable[[SlubState], list[str]], state: SlubState, corrupt: Callable[[SlubState], object]
) -> list[str]:
    """What check reports on a clone of state after corrupt(clone); state itself passes before
    and after, unchanged."""
    assert check(state) == []
    was = snapshot(state)
    bad = state.clone()
    corrupt(bad)
    found = check(bad)
    assert snapshot(state) == was, "corrupting the clone changed the original"
    assert check(state) == []
    for message in found:
        assert_sentence(message, bad)
    return found


def cache(state: SlubState, name: str = K2048) -> KmemCache:
    return state.caches[name].s


def cpu(state: SlubState, n: int = 0, name: str = K2048, **changes: object) -> None:
    """Change CPU n's kmem_cache_cpu of the cache."""
    set_cpu_slab(state, cache(state, name), n, **changes)


def node(state: SlubState, name: str = K2048, **changes: object) -> None:
    """Change node 0's kmem_cache_node of the cache."""
    set_node(state, cache(state, name), 0, **changes)


def relive(state: SlubState, addr: int, owner: str | None = None, size: int | None = None) -> None:
    """Rewrite the registry entry of addr: the cache it came from, or the size asked."""
    entries = []
    for a, c, z in state.live:
        if a == addr:
            c, z = owner or c, size if size is not None else z
        entries.append((a, c, z))
    state.live = tuple(sorted(entries))


def forget(state: SlubState, addr: int) -> None:
    state.live = tuple(e for e in state.live if e[0] != addr)


def move(state: SlubState, addr: int, to: int) -> None:
    """The registry entry of addr, recorded at another address."""
    state.live = tuple(sorted((to if a == addr else a, c, z) for a, c, z in state.live))


class Case(NamedTuple):
    state: str
    corrupt: Callable[[SlubState], object]
    message: str  # a substring of one reported violation


CASES: dict[str, list[tuple[str, Case]]] = {
    "conservation": [
        (
            "inuse_off_by_one",
            Case(
                "node_partial",
                lambda s: set_slab(s, P, inuse=2),
                f"slab {P:#x} of kmalloc-2048: page->inuse is 2 but 2 objects minus 1 on page->freelist is 1",
            ),
        ),
        (
            "freelist_cut_mid_chain",
            Case(
                "two_cpus",
                lambda s: s.freeptr.__setitem__(0x6180, NULL),
                "slab 0x6 of kmalloc-128: 2 live + 2 free objects != page->objects 32",
            ),
        ),
        (
            "freed_object_never_put_on_a_freelist",
            Case(
                "cpu_partial",
                lambda s: forget(s, o(Q, 0)),
                f"slab {Q:#x} of kmalloc-2048: 0 live + 1 free objects != page->objects 2",
            ),
        ),
    ],
    "freelist": [
        (
            "cycle_back_to_head",
            Case(
                "two_cpus",
                lambda s: s.freeptr.__setitem__(0x6180, 0x6100),
                "kmalloc-128 cpu 1's c->freelist loops: the free pointer of 0x6180 leads back to 0x6100",
            ),
        ),
        (
            "interior_address",
            Case(
                "two_cpus",
                lambda s: s.freeptr.__setitem__(0x6100, 0x6108),
                "kmalloc-128 cpu 1's c->freelist holds 0x6108, not an object of slab 0x6",
            ),
        ),
        (
            "live_object_on_c_freelist",
            Case(
                "first_kmalloc",
                lambda s: s.freeptr.__setitem__(o(P, 1), o(P, 0)),
                f"kmalloc-2048 cpu 0's c->freelist holds {o(P, 0):#x}, which is allocated",
            ),
        ),
        (
            "object_on_two_freelists",
            Case(
                "cpu_partial",
                lambda s: set_slab(s, Q, freelist=o(Q, 1)),
                f"{o(Q, 1):#x} is on both page->freelist of slab {Q:#x} and kmalloc-2048 cpu 0's c->freelist",
            ),
        ),
        (
            "c_freelist_without_c_page",
            Case(
                "first_kmalloc",
                lambda s: cpu(s, page=None),
                f"kmalloc-2048 cpu 0's c->freelist holds {o(P, 1):#x} but belongs to no slab (c->page is NULL)",
            ),
        ),
    ],
    "frozen": [
        (
            "frozen_slab_nobody_owns",
            Case(
                "cpu_partial",
                lambda s: cpu(s, partial=()),
                f"slab {P:#x} of kmalloc-2048 is frozen but no CPU owns it",
            ),
        ),
        (
            "c_page_not_frozen",
            Case(
                "first_kmalloc",
                lambda s: set_slab(s, P, frozen=False),
                f"slab {P:#x} is kmalloc-2048 cpu 0's c->page but is not frozen",
            ),
        ),
        (
            "c_page_also_on_c_partial",
            Case(
                "cpu_partial",
                lambda s: cpu(s, partial=(CpuPartial(Q, 2, 2), CpuPartial(P, 1, 1))),
                f"slab {Q:#x} is held twice: by kmalloc-2048 cpu 0's c->page and by kmalloc-2048 cpu 0's c->partial",
            ),
        ),
        (
            "two_cpus_own_one_slab",
            Case(
                "two_cpus",
                lambda s: cpu(s, 1, page=2),
                "slab 0x2 is held twice: by kmalloc-2048 cpu 0's c->page and by kmalloc-2048 cpu 1's c->page",
            ),
        ),
        (
            "cpu_partial_pages_count",
            Case(
                "cpu_partial",
                lambda s: cpu(s, partial=(CpuPartial(P, 2, 1),)),
                f"kmalloc-2048 cpu 0's c->partial entry 0 (slab {P:#x}) counts 2 pages "
                "but the list holds 1 slab from there on",
            ),
        ),
        (
            "slab_of_another_cache",
            Case(
                "two_cpus",
                lambda s: cpu(s, 1, "dentry", page=6),
                "dentry cpu 1's c->page is pfn 0x6, a slab of kmalloc-128",
            ),
        ),
    ],
    "node_partial": [
        (
            "full_slab_on_the_list",
            Case(
                "full_slab",
                lambda s: node(s, partial=(P,), nr_partial=1),
                f"kmalloc-2048 node 0 partial list holds slab {P:#x}, which is full",
            ),
        ),
        (
            "frozen_slab_on_the_list",
            Case(
                "cpu_partial",
                lambda s: node(s, partial=(P,), nr_partial=1),
                f"kmalloc-2048 node 0 partial list holds slab {P:#x}, which is frozen",
            ),
        ),
        (
            "partial_slab_missing",
            Case(
                "node_partial",
                lambda s: node(s, partial=(Q,), nr_partial=1),
                f"slab {P:#x} of kmalloc-2048 node 0 has free objects and is not frozen but is on no partial list",
            ),
        ),
        (
            "slab_listed_twice",
            Case(
                "node_partial",
                lambda s: node(s, partial=(P, Q, P), nr_partial=3),
                f"kmalloc-2048 node 0 partial list holds slab {P:#x} 2 times",
            ),
        ),
        (
            "nr_partial_off",
            Case(
                "node_partial",
                lambda s: node(s, nr_partial=3),
                "kmalloc-2048 node 0 nr_partial is 3 but its partial list holds 2 slabs",
            ),
        ),
        (
            "nr_slabs_off",
            Case(
                "node_partial",
                lambda s: node(s, nr_slabs=3),
                "kmalloc-2048 node 0 counts 3 slabs of 4 objects but has 2 of 4",
            ),
        ),
        (
            "total_objects_off",
            Case(
                "full_slab",
                lambda s: node(s, total_objects=3),
                "kmalloc-2048 node 0 counts 2 slabs of 3 objects but has 2 of 4",
            ),
        ),
    ],
    "no_double_alloc": [
        (
            "address_live_twice",
            Case(
                "node_partial",
                lambda s: setattr(s, "live", tuple(sorted(s.live + ((o(P, 1), K2048, 2048),)))),
                f"{o(P, 1):#x} was handed out 2 times and is live in each",
            ),
        ),
        (
            "recorded_against_the_wrong_cache",
            Case(
                "two_cpus",
                lambda s: relive(s, 0x1000, "kmalloc-192"),
                "0x1000 was allocated from kmalloc-192 but lies in a slab of dentry",
            ),
        ),
        (
            "misaligned_object",
            Case(
                "first_kmalloc",
                lambda s: setattr(s, "live", ((o(P, 0) + 8, K2048, 2048),)),
                f"{o(P, 0) + 8:#x} was allocated from kmalloc-2048 but is not an object boundary of slab {P:#x}",
            ),
        ),
        (
            "object_in_no_slab",
            Case(
                "first_kmalloc",
                lambda s: setattr(s, "live", ((NOT_A_SLAB, K2048, 2048),)),
                f"{NOT_A_SLAB:#x} was allocated from kmalloc-2048 but lies in no slab",
            ),
        ),
        (
            "kmalloc_large_not_page_aligned",
            Case(
                "two_cpus",
                lambda s: move(s, 0x8000, 0x8010),
                "kmalloc_large block 0x8010 (9000 bytes) is not a page block of its own",
            ),
        ),
    ],
    "kmalloc_class": [
        (
            "kmalloc_2000_from_kmalloc_1024",
            Case(
                "two_cpus",
                lambda s: relive(s, 0x2000, "kmalloc-1024"),
                "kmalloc(2000) at 0x2000 came from kmalloc-1024, but the smallest class that fits is kmalloc-2048",
            ),
        ),
        (
            "kmalloc_100_from_kmalloc_192",
            Case(
                "two_cpus",
                lambda s: relive(s, 0x6000, "kmalloc-192"),
                "kmalloc(100) at 0x6000 came from kmalloc-192, but the smallest class that fits is kmalloc-128",
            ),
        ),
        (
            "small_kmalloc_large",
            Case(
                "two_cpus",
                lambda s: relive(s, 0x8000, size=100),
                "kmalloc(100) at 0x8000 came from the page allocator, not a kmalloc cache",
            ),
        ),
        (
            "custom_cache_size",
            Case(
                "two_cpus",
                lambda s: relive(s, 0x1000, size=100),
                "0x1000 of dentry records 100 bytes, not its object_size 192",
            ),
        ),
        (
            "object_of_a_destroyed_cache",
            Case(
                "two_cpus",
                lambda s: s.caches.pop("dentry"),
                "0x1000 was allocated from dentry, which does not exist",
            ),
        ),
    ],
    "slab_pages": [
        (
            "leaked_kmalloc_large_block",
            Case(
                "two_cpus",
                lambda s: forget(s, 0x8000),
                "buddy block pfn 0x8 order 2 is allocated but no slab or kmalloc_large block holds it",
            ),
        ),
        (
            "slab_freed_to_the_buddy_allocator",
            Case(
                "first_kmalloc",
                lambda s: buddy.free_block(s.mm, P, 0, 0),
                f"pfn {P:#x} order 0 is a slab or kmalloc_large block the buddy allocator never handed out",
            ),
        ),
        (
            "slab_order",
            Case(
                "first_kmalloc",
                lambda s: set_slab(s, P, order=1),
                f"slab {P:#x} of kmalloc-2048 has order 1 with 2 objects, neither oo (0, 2) nor min (0, 2)",
            ),
        ),
        (
            "slab_of_no_cache",
            Case(
                "first_kmalloc",
                lambda s: set_slab(s, P, cache="kmalloc-4k"),
                f"slab {P:#x} belongs to kmalloc-4k, which does not exist",
            ),
        ),
    ],
}


def _bump_nr_free(s: SlubState) -> None:
    zone = s.mm.zones[ZONE_NORMAL]
    order = next(o for o, area in enumerate(zone.free_area) if area.nr_free)
    area = zone.free_area[order]
    zone.free_area[order] = FreeArea(area.free_list, area.nr_free + 1)


def _bump_nr_free_pages(s: SlubState) -> None:
    s.mm.zones[ZONE_NORMAL].nr_free_pages += 1


CASES["buddy"] = [
    ("nr_free_off", Case("node_partial", _bump_nr_free, "buddy.nr_free: zone Normal free_area[")),
    (
        "nr_free_pages_off",
        Case("two_cpus", _bump_nr_free_pages, "buddy.nr_free_pages: zone Normal NR_FREE_PAGES is"),
    ),
]

STATE_CASES = [
    pytest.param(name, case, id=f"{name}-{label}") for name, cases in CASES.items() for label, case in cases
]


def test_every_state_invariant_has_two_corruptions() -> None:
    assert {f"slub.{name}" for name in CASES} == {i.name for i in STATE_INVARIANTS}
    assert all(len(cases) >= 2 for cases in CASES.values())


@pytest.mark.parametrize(("name", "case"), STATE_CASES)
def test_state_invariant_reports_corruption(states: dict[str, SlubState], name: str, case: Case) -> None:
    check = invariants.REGISTRY[f"slub.{name}"].check
    found = corrupted(check, states[case.state], case.corrupt)
    assert any(case.message in message for message in found), found


def test_buddy_corruption_message_is_the_buddy_invariants_own(states: dict[str, SlubState]) -> None:
    s = states["two_cpus"]
    free_pages = s.mm.zones[ZONE_NORMAL].nr_free_pages
    assert corrupted(inv.buddy, s, _bump_nr_free_pages) == [
        f"buddy.nr_free_pages: zone Normal NR_FREE_PAGES is {free_pages + 1} but its free lists hold "
        f"{free_pages} page{'' if free_pages == 1 else 's'}"
    ]


def test_a_slab_freed_under_slub_is_slub_s_violation_alone(states: dict[str, SlubState]) -> None:
    """A slab returned to the page allocator while still a slab leaves the buddy allocator
    consistent: only slub.slab_pages can see it."""
    bad = states["first_kmalloc"].clone()
    buddy.free_block(bad.mm, P, 0, 0)
    assert inv.buddy(bad) == []
    assert inv.slab_pages(bad) == [
        f"pfn {P:#x} order 0 is a slab or kmalloc_large block the buddy allocator never handed out"
    ]


def test_a_state_changed_in_place_is_walked_afresh(states: dict[str, SlubState]) -> None:
    s = states["two_cpus"].clone()
    assert inv.freelist(s) == [] and inv.conservation(s) == []
    s.freeptr[0x6180] = 0x6100
    assert inv.freelist(s) == [
        "kmalloc-128 cpu 1's c->freelist loops: the free pointer of 0x6180 leads back to 0x6100"
    ]


# Transition invariants: a real step, then its after-state corrupted.


def transition(
    run: Run, check: Callable[..., list[str]], corrupt: Callable[[SlubState], object]
) -> list[str]:
    before, step, after = run
    assert check(before, step, after=after) == []
    was = snapshot(after)
    bad = after.clone()
    corrupt(bad)
    found = check(before, step, after=bad)
    assert snapshot(after) == was and check(before, step, after=after) == []
    for message in found:
        assert_sentence(message, bad)
    return found


def commit_run() -> Run:
    """The task's pending kmalloc commits: c->freelist o(P, 1) -> NULL, tid 1 -> 2."""
    return play(SMALL, [("cmpxchg_double", 0)], scenarios()["pending_alloc"].after)[0]


def test_tid_going_back() -> None:
    assert transition(commit_run(), inv.tid, lambda s: cpu(s, tid=0)) == [
        "kmalloc-2048 cpu 0's tid went back from 1 to 0"
    ]


def test_tid_not_advanced_by_a_freelist_change() -> None:
    assert transition(commit_run(), inv.tid, lambda s: cpu(s, tid=1)) == [
        f"kmalloc-2048 cpu 0's c->freelist changed from {o(P, 1):#x} to NULL but its tid stayed 1"
    ]


def test_tid_not_advanced_by_a_flush() -> None:
    shrink = scenarios()["node_partial"]
    assert shrink.step == Step("kmem_cache_shrink", (K2048,))
    was = shrink.before.caches[K2048].cpu_slab[0]
    assert (was.freelist, was.page) == (o(Q, 1), Q)
    assert shrink.after.caches[K2048].cpu_slab[0].tid == was.tid + 1  # deactivate_slab's next_tid
    # c->freelist and c->page both changed: the freelist is reported
    assert transition(shrink, inv.tid, lambda s: cpu(s, tid=was.tid)) == [
        f"kmalloc-2048 cpu 0's c->freelist changed from {o(Q, 1):#x} to NULL but its tid stayed {was.tid}"
    ]


def test_tid_not_advanced_by_a_c_page_change() -> None:
    """A flush of a c->page whose lockless freelist is empty changes c->page alone; since
    eeaa345e1285 deactivate_slab moves the tid for that too."""
    before = commit_run().after
    assert before.caches[K2048].cpu_slab[0][:2] == (NULL, P)
    (shrink,) = play(SMALL, [("kmem_cache_shrink", K2048)], before)
    c = shrink.after.caches[K2048].cpu_slab[0]
    assert (c.freelist, c.page, c.tid) == (NULL, None, 3)
    assert transition(shrink, inv.tid, lambda s: cpu(s, tid=2)) == [
        f"kmalloc-2048 cpu 0's c->page changed from slab {P:#x} to NULL but its tid stayed 2"
    ]


def test_tid_not_naming_its_cpu() -> None:
    alloc = scenarios()["two_cpus"]
    assert alloc.step == Step("kmem_cache_alloc", ("dentry", 1))
    assert transition(alloc, inv.tid, lambda s: cpu(s, 1, "dentry", tid=4)) == [
        "dentry cpu 1's tid 4 does not name cpu 1 (TID_STEP 2)"
    ]


def double_free_run() -> Run:
    """kfree(o(P, 0)) again: it is on slab P's page->freelist, and the free is refused."""
    s = scenarios()["cpu_partial"].after
    before, step, after = run = play(SMALL, [("kfree", o(P, 0), 0)], s)[0]
    assert (
        SMALL.step(before, SMALL.action_by_name["kfree"], step.args)[1] == "kmalloc-2048: Object already free"
    )
    assert inv._unchanged(before, after)
    return run


def test_bad_free_accepted_as_a_double_free() -> None:
    def refree(s: SlubState) -> None:
        s.freeptr[o(P, 0)] = o(P, 0)
        set_slab(s, P, inuse=0)

    assert transition(double_free_run(), inv.bad_free_refused, refree) == [
        f"kfree({o(P, 0):#x}) of a pointer that is not live changed the allocator's state"
    ]


def test_bad_free_of_an_interior_pointer_freeing_its_object() -> None:
    s = scenarios()["node_partial"].after
    run = play(SMALL, [("kfree", o(Q, 0) + 1, 0)], s)[0]
    assert inv._unchanged(run.before, run.after)
    assert transition(run, inv.bad_free_refused, lambda s: forget(s, o(Q, 0))) == [
        f"kfree({o(Q, 0) + 1:#x}) of a pointer that is not live changed the allocator's state"
    ]


def test_bad_free_refused_ignores_good_frees_and_other_actions() -> None:
    s = scenarios()["node_partial"].after
    run = play(SMALL, [("kfree", o(P, 1), 0)], s)[0]
    assert not inv._unchanged(run.before, run.after)
    assert inv.bad_free_refused(*run[:2], after=run.after) == []
    alloc = scenarios()["first_kmalloc"]
    assert inv.bad_free_refused(alloc.before, alloc.step, after=alloc.after) == []


# Interrupts in the fast path's window, and the tid.


def checked(model: SlubModel, actions: list[Action], state: SlubState) -> list[Run]:
    """play, with every slub invariant checked on every step."""
    runs = play(model, actions, state)
    invs = invariants.for_model("slub")
    for run in runs:
        found = invariants.evaluate(invs, run.after, run.before, run.step)
        assert found is None, (run.step, found[0].name, found[1])
    return runs


@pytest.mark.parametrize("irq", [("irq_alloc", 0), ("irq_kfree", o(P, 0), 0)], ids=["irq_alloc", "irq_kfree"])
def test_an_interrupt_in_the_window_keeps_the_task_pending(irq: Action) -> None:
    before = scenarios()["pending_alloc"].after
    pending = before.task[0]
    assert pending is not None and pending.object == o(P, 1)
    (run,) = checked(SMALL, [irq], before)
    assert run.after.task[0] == pending
    # the interrupt moved c->tid: the task's cmpxchg fails and redoes its kmalloc, which
    # completes (maybe after a second window); each address is handed out once
    s, got = run.after, None
    for _ in range(3):
        (resume,) = checked(SMALL, [("cmpxchg_double", 0)], s)
        s = resume.after
        got = SMALL.step(resume.before, SMALL.action_by_name["cmpxchg_double"], (0,))[1]
        if s.task[0] is None:
            break
    assert s.task[0] is None and got
    addrs = [addr for addr, _, _ in s.live]
    assert got in addrs and len(addrs) == len(set(addrs))


def filled() -> SlubState:
    """The small machine with every kmalloc-2048 object it can have live: the next kmalloc
    would find c->page exhausted and no page to make a slab of."""
    s = SMALL.init_state()
    while True:
        (run,) = play(SMALL, [("kmalloc", 2048, 0)], s)
        t = run.after
        if t.task[0] is not None:
            t = play(SMALL, [("cmpxchg_double", 0)], t)[0].after
        if t.live == s.live:
            return s
        s = t


def bypass_race() -> tuple[SlubState, list[Action], int, int]:
    """Jann Horn's race, fixed by eeaa345e1285 (mm/slub: add missing TID updates on slab
    deactivation): memory full, the task's kfree of an object of c->page stops in its window
    (having read c->freelist NULL and c->tid); an interrupt's kmalloc finds c->page exhausted,
    drops it at DEACTIVATE_BYPASS and fails; another interrupt frees the slab's other object
    through __slab_free; then the task's cmpxchg_double."""
    s = filled()
    c = s.caches[K2048].cpu_slab[0]
    assert c.freelist == NULL and c.page is not None
    a, b = (addr for addr, _, _ in s.live if addr >> PAGE_SHIFT == c.page)
    return s, [("kfree", a, 0), ("irq_alloc", 0), ("irq_kfree", b, 0), ("cmpxchg_double", 0)], c.page, a


def test_the_deactivate_bypass_race_is_harmless_with_the_tid_advanced() -> None:
    s, actions, page, a = bypass_race()
    free, oom, _, resume = checked(SMALL, actions, s)
    assert free.after.task[0] == Pending(
        "free", K2048, free.before.caches[K2048].cpu_slab[0].tid, a, NULL, page, None, 0
    )
    c = oom.after.caches[K2048].cpu_slab[0]
    assert (c.freelist, c.page) == (NULL, None)
    assert c.tid == oom.before.caches[K2048].cpu_slab[0].tid + 1  # deactivate_bypass's next_tid
    assert SMALL.step(oom.before, SMALL.action_by_name["irq_alloc"], (0,))[1] == NULL
    # the cmpxchg fails on the tid and the free redoes: c->page is NULL now, so __slab_free
    # puts a on the slab's page->freelist
    after = resume.after
    assert after.task == (None,) and after.caches[K2048].cpu_slab[0].freelist == NULL
    assert after.slabs[page].freelist == a and after.slabs[page].inuse == 0
    assert a not in [addr for addr, _, _ in after.live]


def test_without_the_tid_advance_the_deactivate_bypass_race_leaves_a_freelist_without_a_page() -> None:
    s, actions, page, a = bypass_race()
    with checkers.mutants.load_all()["slub.deactivate_bypass_keeps_tid"].applied():
        free, oom, _, resume = play(SMALL, actions, s)
    before_tid = free.before.caches[K2048].cpu_slab[0].tid
    c = oom.after.caches[K2048].cpu_slab[0]
    assert (c.freelist, c.page, c.tid) == (NULL, None, before_tid)
    assert inv.tid(oom.before, oom.step, after=oom.after) == [
        f"kmalloc-2048 cpu 0's c->page changed from slab {page:#x} to NULL but its tid stayed {before_tid}"
    ]
    # the task's cmpxchg matches (c->freelist NULL, the same tid) and commits a to a
    # lockless freelist that no slab is behind
    c = resume.after.caches[K2048].cpu_slab[0]
    assert (c.freelist, c.page) == (a, None)
    assert (
        f"kmalloc-2048 cpu 0's c->freelist holds {a:#x} but belongs to no slab (c->page is NULL)"
        in inv.freelist(resume.after)
    )


def test_tid_holds_when_a_node_mismatch_allocation_fails() -> None:
    s = play(NUMA, [("kmem_cache_create", "foo"), ("kmem_cache_alloc", "foo", 0)])[-1].after
    while True:  # exhaust memory
        (run,) = play(NUMA, [("kmalloc", 4096, 1)], s)
        if run.after.live == s.live:
            break
        s = run.after
    c = s.caches["foo"].cpu_slab[0]
    assert (
        c.freelist and c.page is not None and s.mm.layout.zones[s.mm.layout.zone_of_pfn[c.page]].node_id == 0
    )
    (run,) = play(NUMA, [("kmem_cache_alloc_node", "foo", 1, 0)], s)
    assert run.after.live == s.live  # NULL
    # deactivate_slab gave c->page back to node 0 and moved the tid
    after = run.after.caches["foo"].cpu_slab[0]
    assert (after.freelist, after.page, after.tid) == (NULL, None, c.tid + 2)  # TID_STEP 2
    assert inv.tid(run.before, run.step, after=run.after) == []


def test_freelist_running_into_another_slab_is_not_called_a_loop(states: dict[str, SlubState]) -> None:
    # kmalloc-2048 slab 0x2 has 2 objects: its c->freelist 0x2800 led into kmalloc-128's
    # 0x6100 -> 0x6180 is cut after 2 objects, at 0x6180
    found = corrupted(inv.freelist, states["two_cpus"], lambda s: s.freeptr.__setitem__(0x2800, 0x6100))
    assert "kmalloc-2048 cpu 0's c->freelist holds 0x6100, not an object of slab 0x2" in found
    assert (
        "kmalloc-2048 cpu 0's c->freelist runs on past 2 objects, the most its slab has, to 0x6180" in found
    )
    assert not [message for message in found if "loops" in message], found
