"""Invariants of SLUB and kmalloc on the buddy allocator (model "slub").

The truth they check the allocator's own bookkeeping against is the checker's registry of
what was handed out (``state.live``) and the free pointer words themselves: every freelist
is walked from its head, never trusted from a counter.
"""

from __future__ import annotations

import functools
from collections import Counter
from itertools import chain

import invariants
from invariants import goal, invariant
from model.contract import Step
from model.hw.memory import PAGE_SHIFT
from model.mm.slab import SlubState
from model.mm.slab_common import KMALLOC_MAX_CACHE_SIZE, PAGE_SIZE, get_order
from model.mm.slub import KMALLOC_LARGE, NULL, ZERO_SIZE_PTR, Slab

MODEL = "slub"


def _walk(freeptr: dict[int, int], offset: int, head: int, limit: int) -> tuple[list[int], int]:
    """The objects on the freelist from head, cut at the first repeat or after limit objects,
    and the free pointer it was cut at (NULL when it ended)."""
    seen: dict[int, None] = {}
    get = freeptr.get
    fp = head
    while fp and fp not in seen and len(seen) < limit:
        seen[fp] = None
        fp = get(fp + offset, NULL)
    return list(seen), fp


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _addr(addr: int) -> str:
    return f"{addr:#x}" if addr else "NULL"


def _page(pfn: int | None) -> str:
    return "NULL" if pfn is None else f"slab {pfn:#x}"


Freelist = tuple[str, int | None, list[int], int]  # (name, the slab it belongs to, its objects, where it was cut)
_WALKED: list[tuple[SlubState, dict[int, int], dict[int, Slab], dict[str, object], list[Freelist]]] = []


def _freelists(state: SlubState) -> list[Freelist]:
    """Every page and CPU freelist, walked once for all the predicates that read them."""
    if _WALKED:
        was, freeptr, slabs, caches, walked = _WALKED[0]
        if was is state and state.freeptr == freeptr and state.slabs == slabs and state.caches == caches:
            return walked
    out: list[Freelist] = []
    for pfn, slab in sorted(state.slabs.items()):
        s = state.caches[slab.cache].s if slab.cache in state.caches else None
        offset = s.offset if s else 0
        objects, cut = _walk(state.freeptr, offset, slab.freelist, slab.objects)
        out.append((f"page->freelist of slab {pfn:#x}", pfn, objects, cut))
    for name, cs in sorted(state.caches.items()):
        for cpu, c in enumerate(cs.cpu_slab):
            if c.freelist:
                limit = state.slabs[c.page].objects if c.page in state.slabs else 1 << 20
                objects, cut = _walk(state.freeptr, cs.s.offset, c.freelist, limit)
                out.append((f"{name} cpu {cpu}'s c->freelist", c.page, objects, cut))
    _WALKED[:] = [(state, dict(state.freeptr), dict(state.slabs), dict(state.caches), out)]
    return out


@functools.lru_cache(maxsize=4096)
def _boundaries(base: int, size: int, objects: int) -> frozenset[int]:
    return frozenset(range(base, base + objects * size, size))


def _slab_of(state: SlubState, addr: int) -> tuple[int, Slab] | None:
    """The slab whose pages hold addr."""
    pfn = addr >> PAGE_SHIFT
    for order in range(state.mm.layout.MAX_ORDER):
        head = pfn & ~((1 << order) - 1)
        slab = state.slabs.get(head)
        if slab is not None and pfn < head + (1 << slab.order):
            return head, slab
    return None


def _object_index(state: SlubState, pfn: int, slab: Slab, addr: int) -> int | None:
    """addr's object index in the slab, when addr is an object boundary of it."""
    if slab.cache not in state.caches:
        return None
    size = state.caches[slab.cache].s.size
    index, rest = divmod(addr - (pfn << PAGE_SHIFT), size)
    return index if not rest and 0 <= index < slab.objects else None


def _live_by_slab(state: SlubState) -> Counter[int]:
    counts: Counter[int] = Counter()
    for addr, cache, _ in state.live:
        if cache != KMALLOC_LARGE:
            found = _slab_of(state, addr)
            if found is not None:
                counts[found[0]] += 1
    return counts


@invariant(
    "slub.conservation",
    model=MODEL,
    statement="In every slab, live objects plus the objects on its page freelist and on the lockless "
    "freelist of the CPU that owns it equal page->objects, and page->inuse is page->objects minus "
    "the page freelist.",
    source="mm/slub.c get_freelist, __slab_free, deactivate_slab (page->counters)",
)
def conservation(state: SlubState) -> list[str]:
    live = _live_by_slab(state)
    free: Counter[int] = Counter()
    on_page: Counter[int] = Counter()
    for name, pfn, objects, _ in _freelists(state):
        if pfn is not None:
            free[pfn] += len(objects)
            if name.startswith("page->"):
                on_page[pfn] = len(objects)
    out = []
    for pfn, slab in sorted(state.slabs.items()):
        if live[pfn] + free[pfn] != slab.objects:
            out.append(
                f"slab {pfn:#x} of {slab.cache}: {live[pfn]} live + {free[pfn]} free objects "
                f"!= page->objects {slab.objects}"
            )
        if slab.inuse != slab.objects - on_page[pfn]:
            out.append(
                f"slab {pfn:#x} of {slab.cache}: page->inuse is {slab.inuse} but {slab.objects} objects "
                f"minus {on_page[pfn]} on page->freelist is {slab.objects - on_page[pfn]}"
            )
    return out


@invariant(
    "slub.freelist",
    model=MODEL,
    statement="Every freelist is acyclic and holds object boundaries of its own slab; freelists are "
    "pairwise disjoint and disjoint from the live objects.",
    source="mm/slub.c set_freepointer, check_valid_pointer, on_freelist",
)
def freelist(state: SlubState) -> list[str]:
    live = {addr for addr, _, _ in state.live}
    holder: dict[int, str] = {}
    out = []
    for name, pfn, objects, cut in _freelists(state):
        if cut in objects:
            out.append(f"{name} loops: the free pointer of {objects[-1]:#x} leads back to {cut:#x}")
        elif cut:
            out.append(f"{name} runs on past {len(objects)} objects, the most its slab has, to {cut:#x}")
        if pfn is None or pfn not in state.slabs:
            out.append(f"{name} holds {objects[0]:#x} but belongs to no slab (c->page is NULL)")
            continue
        slab = state.slabs[pfn]
        size = state.caches[slab.cache].s.size if slab.cache in state.caches else 0
        valid = _boundaries(pfn << PAGE_SHIFT, size, slab.objects) if size else frozenset()
        if valid.issuperset(objects) and live.isdisjoint(objects) and holder.keys().isdisjoint(objects):
            holder.update(dict.fromkeys(objects, name))
            continue
        for addr in objects:
            if addr not in valid:
                out.append(f"{name} holds {addr:#x}, not an object of slab {pfn:#x}")
            if addr in live:
                out.append(f"{name} holds {addr:#x}, which is allocated")
            if addr in holder:
                out.append(f"{addr:#x} is on both {holder[addr]} and {name}")
            holder.setdefault(addr, name)
    return out


@invariant(
    "slub.frozen",
    model=MODEL,
    statement="A slab is frozen exactly when one CPU owns it, as its c->page or on its partial list; "
    "CPUs own only slabs of their cache, and each partial list's page counts run down to 1.",
    source="mm/slub.c acquire_slab, get_freelist, put_cpu_partial, unfreeze_partials, deactivate_slab",
)
def frozen(state: SlubState) -> list[str]:
    owners: dict[int, list[str]] = {}
    out = []
    for name, cs in sorted(state.caches.items()):
        for cpu, c in enumerate(cs.cpu_slab):
            held = ([(c.page, "c->page")] if c.page is not None else []) + [
                (p.pfn, "c->partial") for p in c.partial
            ]
            for pfn, how in held:
                owners.setdefault(pfn, []).append(f"{name} cpu {cpu}'s {how}")
                slab = state.slabs.get(pfn)
                if slab is None or slab.cache != name:
                    what = f"a slab of {slab.cache}" if slab else "not a slab"
                    out.append(f"{name} cpu {cpu}'s {how} is pfn {pfn:#x}, {what}")
            for i, p in enumerate(c.partial):
                if p.pages != len(c.partial) - i:
                    out.append(
                        f"{name} cpu {cpu}'s c->partial entry {i} (slab {p.pfn:#x}) counts {p.pages} pages "
                        f"but the list holds {_count(len(c.partial) - i, 'slab')} from there on"
                    )
    for pfn, slab in sorted(state.slabs.items()):
        held_by = owners.get(pfn, [])
        if len(held_by) > 1:
            out.append(f"slab {pfn:#x} is held twice: by {' and by '.join(held_by)}")
        if slab.frozen and not held_by:
            out.append(f"slab {pfn:#x} of {slab.cache} is frozen but no CPU owns it")
        if held_by and not slab.frozen:
            out.append(f"slab {pfn:#x} is {held_by[0]} but is not frozen")
    return out


@invariant(
    "slub.node_partial",
    model=MODEL,
    statement="Each node's partial list holds exactly its non-frozen slabs with a free object, once "
    "each; nr_partial counts them, and nr_slabs and total_objects count the node's slabs.",
    source="mm/slub.c add_partial, remove_partial, __slab_free, deactivate_slab, inc_slabs_node",
)
def node_partial(state: SlubState) -> list[str]:
    by_node: dict[tuple[str, int], dict[int, Slab]] = {}
    for pfn, slab in state.slabs.items():
        by_node.setdefault((slab.cache, _nid(state, pfn)), {})[pfn] = slab
    out = []
    for name, cs in sorted(state.caches.items()):
        for nid, n in enumerate(cs.node):
            mine = by_node.get((name, nid), {})
            if not mine and not n.partial and not n.nr_partial and not n.nr_slabs and not n.total_objects:
                continue
            expected = {pfn for pfn, slab in mine.items() if not slab.frozen and slab.freelist}
            listed = Counter(n.partial)
            where = f"{name} node {nid}"
            for pfn, times in sorted(listed.items()):
                if times > 1:
                    out.append(f"{where} partial list holds slab {pfn:#x} {times} times")
                if pfn not in expected:
                    why = (
                        "not a slab of this node"
                        if pfn not in mine
                        else "frozen"
                        if mine[pfn].frozen
                        else "full"
                    )
                    out.append(f"{where} partial list holds slab {pfn:#x}, which is {why}")
            for pfn in sorted(expected - listed.keys()):
                out.append(
                    f"slab {pfn:#x} of {where} has free objects and is not frozen but is on no partial list"
                )
            if n.nr_partial != len(n.partial):
                out.append(
                    f"{where} nr_partial is {n.nr_partial} but its partial list holds {len(n.partial)} slabs"
                )
            objects = sum(slab.objects for slab in mine.values())
            if (n.nr_slabs, n.total_objects) != (len(mine), objects):
                out.append(
                    f"{where} counts {n.nr_slabs} slabs of {n.total_objects} objects but has "
                    f"{len(mine)} of {objects}"
                )
    return out


def _nid(state: SlubState, pfn: int) -> int:
    layout = state.mm.layout
    return layout.zones[layout.zone_of_pfn[pfn]].node_id


@invariant(
    "slub.no_double_alloc",
    model=MODEL,
    statement="No address is handed out twice while live: every live object is an object boundary of "
    "a slab of the cache it was allocated from, every kmalloc_large block a page block of its own.",
    source="mm/slub.c slab_alloc_node, ___slab_alloc (an object leaves every freelist when allocated)",
)
def no_double_alloc(state: SlubState) -> list[str]:
    out = []
    counts = Counter(addr for addr, _, _ in state.live)
    for addr, times in sorted(counts.items()):
        if times > 1:
            out.append(f"{addr:#x} was handed out {times} times and is live in each")
    for addr, cache, size in state.live:
        found = _slab_of(state, addr)
        if cache == KMALLOC_LARGE:
            if found is not None or addr & (PAGE_SIZE - 1):
                out.append(f"kmalloc_large block {addr:#x} ({size} bytes) is not a page block of its own")
            continue
        if found is None or found[1].cache != cache:
            what = f"in a slab of {found[1].cache}" if found else "in no slab"
            out.append(f"{addr:#x} was allocated from {cache} but lies {what}")
        elif _object_index(state, found[0], found[1], addr) is None:
            out.append(
                f"{addr:#x} was allocated from {cache} but is not an object boundary of slab {found[0]:#x}"
            )
    return out


@invariant(
    "slub.tid",
    model=MODEL,
    statement="A CPU's tid never decreases and stays congruent to the CPU, and every step that changes "
    "a CPU's lockless freelist or its c->page advances its tid.",
    source="mm/slub.c next_tid, init_tid, slab_alloc_node, do_slab_free, ___slab_alloc, deactivate_slab "
    "(with eeaa345e1285, mm/slub: add missing TID updates on slab deactivation)",
    transition=True,
)
def tid(before: SlubState, step: Step, after: SlubState) -> list[str]:
    out = []
    tid_step = 1 << (len(after.task) - 1).bit_length()
    for name, cs in sorted(after.caches.items()):
        was = before.caches.get(name)
        if was is None or was.s is not cs.s or was.cpu_slab is cs.cpu_slab:
            continue
        for cpu, (c0, c1) in enumerate(zip(was.cpu_slab, cs.cpu_slab, strict=True)):
            if c1.tid < c0.tid:
                out.append(f"{name} cpu {cpu}'s tid went back from {c0.tid} to {c1.tid}")
            elif c1.freelist != c0.freelist and c1.tid == c0.tid:
                out.append(
                    f"{name} cpu {cpu}'s c->freelist changed from {_addr(c0.freelist)} to {_addr(c1.freelist)} "
                    f"but its tid stayed {c1.tid}"
                )
            elif c1.page != c0.page and c1.tid == c0.tid:
                out.append(
                    f"{name} cpu {cpu}'s c->page changed from {_page(c0.page)} to {_page(c1.page)} "
                    f"but its tid stayed {c1.tid}"
                )
            if c1.tid % tid_step != cpu:
                out.append(f"{name} cpu {cpu}'s tid {c1.tid} does not name cpu {cpu} (TID_STEP {tid_step})")
    return out


@invariant(
    "slub.kmalloc_class",
    model=MODEL,
    statement="kmalloc(size) gives an object of the smallest kmalloc cache that fits size, and a "
    "page block of get_order(size) above KMALLOC_MAX_CACHE_SIZE; a cache's objects fit its object_size.",
    source="mm/slab_common.c kmalloc_slab, size_index; mm/slub.c __kmalloc, kmalloc_large",
)
def kmalloc_class(state: SlubState) -> list[str]:
    kmalloc = sorted((cs.s.object_size, name) for name, cs in state.caches.items() if cs.s.kmalloc_index)
    out = []
    for addr, cache, size in state.live:
        if cache == KMALLOC_LARGE:
            if size <= KMALLOC_MAX_CACHE_SIZE:
                out.append(f"kmalloc({size}) at {addr:#x} came from the page allocator, not a kmalloc cache")
            continue
        cs = state.caches.get(cache)
        if cs is None:
            out.append(f"{addr:#x} was allocated from {cache}, which does not exist")
            continue
        s = cs.s
        if not s.kmalloc_index:
            if size != s.object_size:
                out.append(f"{addr:#x} of {cache} records {size} bytes, not its object_size {s.object_size}")
            continue
        fits = next((name for object_size, name in kmalloc if object_size >= size), None)
        if fits != cache:
            out.append(
                f"kmalloc({size}) at {addr:#x} came from {cache}, but the smallest class that fits is {fits}"
            )
    return out


@invariant(
    "slub.slab_pages",
    model=MODEL,
    statement="The page blocks the buddy allocator has handed out are exactly the slabs and the "
    "kmalloc_large blocks; each slab has its cache's oo or min order and objects.",
    source="mm/slub.c allocate_slab, discard_slab; mm/slab_common.c kmalloc_order",
)
def slab_pages(state: SlubState) -> list[str]:
    held = {(pfn, slab.order) for pfn, slab in state.slabs.items()}
    held |= {
        (addr >> PAGE_SHIFT, get_order(size)) for addr, cache, size in state.live if cache == KMALLOC_LARGE
    }
    allocated = set(state.mm.allocated)
    out = [
        f"buddy block pfn {pfn:#x} order {order} is allocated but no slab or kmalloc_large block holds it"
        for pfn, order in sorted(allocated - held)
    ]
    out += [
        f"pfn {pfn:#x} order {order} is a slab or kmalloc_large block the buddy allocator never handed out"
        for pfn, order in sorted(held - allocated)
    ]
    for pfn, slab in sorted(state.slabs.items()):
        cs = state.caches.get(slab.cache)
        if cs is None:
            out.append(f"slab {pfn:#x} belongs to {slab.cache}, which does not exist")
        elif (slab.order, slab.objects) not in (cs.s.oo, cs.s.min):
            out.append(
                f"slab {pfn:#x} of {slab.cache} has order {slab.order} with {slab.objects} objects, "
                f"neither oo {cs.s.oo} nor min {cs.s.min}"
            )
    return out


@invariant(
    "slub.buddy",
    model=MODEL,
    statement="Every state invariant of the buddy allocator holds for the page frames SLUB shares with it.",
    source="mm/page_alloc.c (see the buddy.* invariants)",
)
def buddy(state: SlubState) -> list[str]:
    return list(
        chain.from_iterable((f"{inv.name}: {v}" for v in inv.check(state.mm)) for inv in _buddy_invariants())
    )


@functools.cache
def _buddy_invariants() -> tuple[invariants.Invariant, ...]:
    return tuple(inv for inv in invariants.for_model("buddy") if not inv.transition)


@invariant(
    "slub.bad_free_refused",
    model=MODEL,
    statement="kfree of a pointer that is not live (a double free, a pointer into an object, a page "
    "kmalloc never gave) is refused and changes nothing.",
    source="mm/slub.c free_consistency_checks (slub_debug=F), kfree",
    transition=True,
)
def bad_free_refused(before: SlubState, step: Step, after: SlubState) -> list[str]:
    if step.action not in ("kfree", "irq_kfree"):
        return []
    addr = step.args[0]
    freeing = {p.object for p in before.task if p is not None and p.op == "free"}
    live = {a for a, _, _ in before.live} - freeing
    if addr in live or addr in (NULL, ZERO_SIZE_PTR) or _unchanged(before, after):
        return []
    return [f"kfree({addr:#x}) of a pointer that is not live changed the allocator's state"]


def _unchanged(before: SlubState, after: SlubState) -> bool:
    # Components compare at once when shared, as they are after a refused free.
    return (
        after.caches == before.caches
        and after.slabs == before.slabs
        and after.freeptr == before.freeptr
        and after.live == before.live
        and after.task == before.task
        and after.mm.fingerprint() == before.mm.fingerprint()
    )


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.

_FREES = ("kfree", "irq_kfree")


@goal(
    "slub.discard_slab",
    model=MODEL,
    statement="A free empties a slab and discard_slab gives its pages back to the page allocator, "
    "its node already holding min_partial partial slabs.",
    transition=True,
    engines=("explore",),  # the large caches' min_partial (5 to 10) is more partial slabs than a run makes
)
def discard_slab(before: SlubState, step: Step, after: SlubState) -> bool:
    # A free, not kmem_cache_shrink or kmem_cache_destroy: those discard whatever is empty.
    return step.action in _FREES and not after.slabs.keys() >= before.slabs.keys()


def _cpu_partials(state: SlubState) -> set[int]:
    return {p.pfn for cs in state.caches.values() for c in cs.cpu_slab for p in c.partial}


@goal(
    "slub.unfreeze_partials",
    model=MODEL,
    statement="unfreeze_partials unfreezes a CPU's partial slabs onto their node's partial list (or "
    "discards them): put_cpu_partial past s->cpu_partial free objects, or a flush.",
    transition=True,
)
def unfreeze_partials(before: SlubState, step: Step, after: SlubState) -> bool:
    # Taken off the CPU partial list, but not to become the CPU slab (get_freelist's path):
    # unfrozen, or gone back to the page allocator.
    return any(
        pfn not in after.slabs or not after.slabs[pfn].frozen for pfn in _cpu_partials(before) - _cpu_partials(after)
    )


@goal(
    "slub.shrink_discards",
    model=MODEL,
    statement="kmem_cache_shrink (or kmem_cache_destroy) flushes the CPU slabs and discards a slab "
    "left empty.",
    transition=True,
)
def shrink_discards(before: SlubState, step: Step, after: SlubState) -> bool:
    return (
        step.action in ("kmem_cache_shrink", "kmem_cache_destroy")
        and not after.slabs.keys() >= before.slabs.keys()
    )


@goal(
    "slub.irq_in_window",
    model=MODEL,
    statement="An interrupt allocates or frees on a CPU whose task is stopped between its fast path's "
    "reads and its this_cpu_cmpxchg_double, and moves that CPU's tid on.",
    transition=True,
)
def irq_in_window(before: SlubState, step: Step, after: SlubState) -> bool:
    if step.action not in ("irq_alloc", "irq_kfree"):
        return False
    cpu = step.args[-1]
    p = before.task[cpu]
    if p is None or p.cache not in after.caches:
        return False
    return after.caches[p.cache].cpu_slab[cpu].tid != before.caches[p.cache].cpu_slab[cpu].tid


@goal(
    "slub.tid_aba",
    model=MODEL,
    statement="A task's this_cpu_cmpxchg_double finds c->freelist as it read it but the tid moved on by "
    "an interrupt, so the fast path redoes its reads instead of committing a stale free pointer (ABA).",
    transition=True,
)
def tid_aba(before: SlubState, step: Step, after: SlubState) -> bool:
    if step.action != "cmpxchg_double":
        return False
    cpu = step.args[0]
    p = before.task[cpu]
    if p is None or p.cache not in before.caches:
        return False
    c = before.caches[p.cache].cpu_slab[cpu]
    head = p.object if p.op == "alloc" else p.next
    return c.freelist == head and c.tid != p.tid


@goal(
    "slub.get_partial_node",
    model=MODEL,
    statement="An allocation with no CPU slab left refills from its node's partial list: acquire_slab "
    "freezes a node partial slab as the CPU's c->page.",
    transition=True,
)
def get_partial_node(before: SlubState, step: Step, after: SlubState) -> bool:
    for name, cs in after.caches.items():
        was = before.caches.get(name)
        if was is None or was is cs:
            continue
        listed = {pfn for n in was.node for pfn in n.partial}
        if not listed:
            continue
        for c0, c1 in zip(was.cpu_slab, cs.cpu_slab, strict=True):
            if c1.page != c0.page and c1.page in listed:
                return True
    return False


@goal(
    "slub.kmalloc_large",
    model=MODEL,
    statement="kmalloc above KMALLOC_MAX_CACHE_SIZE gets a compound block straight from the page "
    "allocator (kmalloc_large).",
    transition=True,
    engines=("stateful",),  # the small config asks kmalloc for 2048 bytes only
)
def kmalloc_large(before: SlubState, step: Step, after: SlubState) -> bool:
    if step.action != "kmalloc" or step.args[0] <= KMALLOC_MAX_CACHE_SIZE:
        return False
    return any(entry[1] == KMALLOC_LARGE and entry not in before.live for entry in after.live)


@goal(
    "slub.bad_free_reported",
    model=MODEL,
    statement="kfree of an object already on a freelist, or of a pointer into an object, is refused with "
    "slub_debug's message.",
    transition=True,
)
def bad_free_reported(before: SlubState, step: Step, after: SlubState) -> bool:
    if step.action not in _FREES:
        return False
    addr = step.args[0]
    if addr in (NULL, ZERO_SIZE_PTR) or _slab_of(before, addr) is None:
        return False
    freeing = {p.object for p in before.task if p is not None and p.op == "free"}
    return addr in freeing or addr not in {a for a, _, _ in before.live}
