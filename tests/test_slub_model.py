"""The SLUB model against concrete kernel scenarios, with the kernel's own numbers.

Every step goes through ``run``, which takes one enabled action and checks every slub
invariant (the buddy allocator's included) on the state it leads to and on the transition.
Objects are named by physical address: object i of the slab at pfn p is p << PAGE_SHIFT
plus i * s->size.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest

import invariants
from model.contract import Step
from model.hw.memory import PAGE_SHIFT
from model.mm import slub
from model.mm.buddy import BuddyConfig
from model.mm.slab import LARGE, SMALL, SlubConfig, SlubModel, SlubState
from model.mm.slab_common import (
    KMALLOC_MAX_CACHE_SIZE,
    SLAB_HWCACHE_ALIGN,
    SLAB_TYPESAFE_BY_RCU,
    ZERO_SIZE_PTR,
    CacheSpec,
    SlubParams,
    create_kmalloc_caches,
    kmalloc_name,
    kmalloc_slab,
    kmem_cache_open,
    set_cpu_partial,
    set_min_partial,
)
from model.mm.slub import NULL, CpuPartial, KmemCacheCpu, KmemCacheNode, Pending, Slab

INVARIANTS = invariants.for_model("slub")
K1024, K2048 = "kmalloc-1024", "kmalloc-2048"

# One 16-page ZONE_NORMAL with pfn 0 reserved, as x86 keeps the BIOS page: boot frees pfn 1
# (order 0), 2 (order 1), 4 (order 2) and 8 (order 3), all MIGRATE_MOVABLE. min_free_kbytes 1
# puts WMARK_MIN at 0 pages, so every page can be had; the tiny zone gets pcp high 0 and
# batch 1, so pages go straight between the free lists and the slabs. The first slab
# (MIGRATE_UNMOVABLE) steals the order-3 block at 8 and is its first page; the next come
# from the rest of that block: 9, 10, 11, 12...
FLAT = BuddyConfig(
    MAX_ORDER=4,
    pageblock_order=2,
    ram=((0, 16, 0),),
    reserved=((0, 1),),
    max_zone_pfn=(0, 0, 16),
    cpu_to_node=(0,),
    min_free_kbytes=1,
)

# Two nodes of 16 pages (node 1 is pfns 16-31) with one CPU each.
NUMA = dataclasses.replace(FLAT, ram=((0, 16, 0), (16, 32, 1)), max_zone_pfn=(0, 0, 32), cpu_to_node=(0, 1))

# kmalloc-2048 in order-0 slabs of 2 objects and kmalloc-1024 in order-0 slabs of 4
# (slub_min_objects 2, slub_max_order 0); cpu_partial 2 and min_partial 1 so that the CPU
# partial list drains and empty slabs are discarded within a few frees. One CPU, TID_STEP 1.
ONE = SlubConfig(
    buddy=FLAT,
    slub_max_order=0,
    slub_min_objects=2,
    cpu_partial=2,
    min_partial=1,
    kmalloc_sizes=(1024, 2048),
    irq_window=False,
)
IRQ = dataclasses.replace(ONE, irq_window=True)


def obj(pfn: int, index: int, size: int = 2048) -> int:
    """The address of object index of the slab at pfn."""
    return (pfn << PAGE_SHIFT) + index * size


def attempt(m: SlubModel, state: SlubState, name: str, *args: Any) -> tuple[SlubState, Any, Any]:
    """One step, enabled or not, and the first invariant it breaks (None if none)."""
    after, result = m.step(state, m.action_by_name[name], args)
    return after, result, invariants.evaluate(INVARIANTS, after, state, Step(name, args))


def run(m: SlubModel, state: SlubState, name: str, *args: Any, enabled: bool = True) -> tuple[SlubState, Any]:
    """One step (enabled unless told otherwise), with every slub invariant checked on it."""
    if enabled:
        assert m.is_enabled(state, m.action_by_name[name], args), f"{name}{args} is not enabled"
    after, result, found = attempt(m, state, name, *args)
    assert found is None, found
    return after, result


def cpu_slab(state: SlubState, cache: str, cpu: int = 0) -> KmemCacheCpu:
    return state.caches[cache].cpu_slab[cpu]


def node(state: SlubState, cache: str, nid: int = 0) -> KmemCacheNode:
    return state.caches[cache].node[nid]


def violations(name: str, state: SlubState) -> list[str]:
    return invariants.REGISTRY[name].check(state)


def kmallocs(m: SlubModel, state: SlubState, size: int, n: int, cpu: int = 0) -> tuple[SlubState, list[int]]:
    out = []
    for _ in range(n):
        state, addr = run(m, state, "kmalloc", size, cpu)
        out.append(addr)
    return state, out


# 1. Geometry.


def test_kmalloc_caches_match_slabinfo_on_1_and_4_cpus() -> None:
    # (order, objects) of s->oo as /proc/slabinfo shows them (pagesperslab = 2^order).
    # slub_min_objects defaults to 4 * (fls(nr_cpu_ids) + 1): 8 on one CPU, 16 on four.
    four = {s.name: s for s in create_kmalloc_caches(SlubParams(nr_cpu_ids=4))}
    assert list(four) == [
        "kmalloc-8", "kmalloc-16", "kmalloc-32", "kmalloc-64", "kmalloc-96", "kmalloc-128",
        "kmalloc-192", "kmalloc-256", "kmalloc-512", "kmalloc-1024", "kmalloc-2048",
        "kmalloc-4096", "kmalloc-8192",
    ]  # fmt: skip
    assert {name: s.oo for name, s in four.items()} == {
        "kmalloc-8": (0, 512), "kmalloc-16": (0, 256), "kmalloc-32": (0, 128),
        "kmalloc-64": (0, 64), "kmalloc-96": (0, 42), "kmalloc-128": (0, 32),
        "kmalloc-192": (0, 21), "kmalloc-256": (0, 16), "kmalloc-512": (1, 16),
        "kmalloc-1024": (2, 16), "kmalloc-2048": (3, 16), "kmalloc-4096": (3, 8),
        "kmalloc-8192": (3, 4),
    }  # fmt: skip
    # s->min is the smallest order that holds one object
    assert four["kmalloc-2048"].min == (0, 2)
    assert four["kmalloc-8192"].min == (1, 1)
    assert four["kmalloc-96"].size == 96 and four["kmalloc-96"].kmalloc_index == 1
    one = {s.name: s.oo for s in create_kmalloc_caches(SlubParams(nr_cpu_ids=1))}
    assert one["kmalloc-512"] == (0, 8)
    assert one["kmalloc-1024"] == (1, 8)
    assert one["kmalloc-2048"] == (2, 8)
    assert one["kmalloc-4096"] == (3, 8)
    assert one["kmalloc-8192"] == (3, 4)  # order 3 is slub_max_order: 4 objects, not 8


def test_tunables_follow_set_min_partial_and_set_cpu_partial() -> None:
    # min_partial = ilog2(size) / 2 clamped to [MIN_PARTIAL 5, MAX_PARTIAL 10]
    assert [set_min_partial(size) for size in (8, 2048, 4096, 8192, 1 << 22)] == [5, 5, 6, 6, 10]
    # cpu_partial by object size: < 256: 30, < 1024: 13, < PAGE_SIZE: 6, else 2
    sizes = (8, 255, 256, 1023, 1024, 4095, 4096, 8192)
    assert [set_cpu_partial(size) for size in sizes] == [30, 30, 13, 13, 6, 6, 2, 2]
    caches = {s.name: s for s in create_kmalloc_caches(SlubParams(nr_cpu_ids=4))}
    assert (caches["kmalloc-8"].min_partial, caches["kmalloc-8"].cpu_partial) == (5, 30)
    assert (caches["kmalloc-4096"].min_partial, caches["kmalloc-4096"].cpu_partial) == (6, 2)
    # the config's overrides act as writes to /sys/kernel/slab/<cache>/{cpu,min}_partial
    small = {s.name: s for s in SlubModel(SMALL).kmalloc_caches}
    assert (small[K2048].cpu_partial, small[K2048].min_partial) == (2, 1)
    assert small[K2048].oo == small[K2048].min == (0, 2)


def test_ctor_and_rcu_caches_keep_the_free_pointer_past_the_object() -> None:
    p = SlubParams(nr_cpu_ids=4)
    # a constructor's work must survive the object being free: offset = ALIGN(size, 8),
    # and the slot grows by the pointer
    ctor = kmem_cache_open(p, CacheSpec("ctor", 100, ctor=True))
    assert (ctor.offset, ctor.size, ctor.oo) == (104, 112, (0, 36))
    anon_vma = kmem_cache_open(p, CacheSpec("anon_vma", 88, flags=(SLAB_TYPESAFE_BY_RCU,)))
    assert (anon_vma.offset, anon_vma.size, anon_vma.oo) == (88, 96, (0, 42))
    plain = kmem_cache_open(p, CacheSpec("plain", 100))
    assert (plain.offset, plain.size) == (0, 104)


def test_hwcache_align_halves_the_line_for_small_objects() -> None:
    p = SlubParams(nr_cpu_ids=4)
    dentry = kmem_cache_open(p, CacheSpec("dentry", 192, flags=(SLAB_HWCACHE_ALIGN,)))
    assert (dentry.align, dentry.size, dentry.oo) == (64, 192, (0, 21))
    # 20 bytes fit in half a cache line: aligned to 32, not 64
    small = kmem_cache_open(p, CacheSpec("small", 20, flags=(SLAB_HWCACHE_ALIGN,)))
    assert (small.align, small.size, small.oo) == (32, 32, (0, 128))
    task = kmem_cache_open(p, CacheSpec("task_struct", 3840, 64, (SLAB_HWCACHE_ALIGN,)))
    assert (task.align, task.size, task.oo, task.min) == (64, 3840, (3, 8), (0, 1))


# 2-3. Allocation: the slow path's new slab, then the fast path.


def test_first_kmalloc_takes_a_new_slab_from_the_buddy_allocator() -> None:
    m = SlubModel(ONE)
    boot = m.init_state()
    assert boot.mm.allocated == () and cpu_slab(boot, K2048) == KmemCacheCpu(NULL, None, (), 0)
    s, a = run(m, boot, "kmalloc", 2048, 0)
    assert s.mm.allocated == ((8, 0),)  # allocate_slab: an order-0 block from the buddy allocator
    assert a == obj(8, 0)
    # load_freelist: the rest of the new slab's freelist is the lockless freelist, the tid moves on
    assert cpu_slab(s, K2048) == KmemCacheCpu(freelist=obj(8, 1), page=8, partial=(), tid=1)
    # frozen for this CPU, every object counted in use, page->freelist handed over
    assert s.slabs == {8: Slab(K2048, order=0, objects=2, inuse=2, frozen=True, freelist=NULL)}
    assert node(s, K2048) == KmemCacheNode(partial=(), nr_partial=0, nr_slabs=1, total_objects=2)
    assert s.live == ((a, K2048, 2048),)
    # the object's free pointer word is the caller's now; the second object ends the list
    assert s.freeptr == {obj(8, 1): NULL}


def test_fast_path_alloc_and_free_touch_only_the_cpu_freelist() -> None:
    m = SlubModel(ONE)
    s, a = run(m, m.init_state(), "kmalloc", 2048, 0)
    s, b = run(m, s, "kmalloc", 2048, 0)
    assert b == obj(8, 1)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 8, (), 2)
    s, _ = run(m, s, "kfree", a, 0)
    s, _ = run(m, s, "kfree", b, 0)
    # do_slab_free's fast path: pushed on c->freelist, last freed first, one tid step each
    assert cpu_slab(s, K2048) == KmemCacheCpu(b, 8, (), 4)
    assert s.freeptr == {b: a, a: NULL}
    # the page's counters do not see lockless frees: inuse stays 2 until the slab is deactivated
    assert s.slabs[8] == Slab(K2048, 0, 2, 2, True, NULL)
    assert s.live == ()


def test_irq_window_alloc_and_free_wait_for_cmpxchg_double() -> None:
    m = SlubModel(IRQ)
    # the slow path runs with interrupts off: it returns at once
    s, a = run(m, m.init_state(), "kmalloc", 2048, 0)
    assert a == obj(8, 0) and s.task == (None,)
    s, result = run(m, s, "kmalloc", 2048, 0)
    assert result is None  # between the reads and this_cpu_cmpxchg_double
    assert s.task[0] == Pending(
        "alloc", K2048, tid=1, object=obj(8, 1), next=NULL, page=8, node=None, size=2048
    )
    assert cpu_slab(s, K2048) == KmemCacheCpu(obj(8, 1), 8, (), 1) and len(s.live) == 1
    assert [act.name for act, _ in m.enabled(s)] == ["cmpxchg_double", "irq_alloc", "irq_kfree"]
    s, b = run(m, s, "cmpxchg_double", 0)
    assert b == obj(8, 1) and s.task == (None,)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 8, (), 2)
    assert s.live == ((a, K2048, 2048), (b, K2048, 2048))
    s, _ = run(m, s, "kfree", a, 0)
    assert s.task[0] == Pending("free", K2048, tid=2, object=a, next=NULL, page=8, node=None, size=0)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 8, (), 2) and len(s.live) == 2
    s, _ = run(m, s, "cmpxchg_double", 0)
    assert cpu_slab(s, K2048) == KmemCacheCpu(a, 8, (), 3)
    assert s.live == ((b, K2048, 2048),) and s.task == (None,)


# 4-6. Slabs between full, the CPU partial list, the node partial list and the buddy allocator.


def test_full_slab_freed_into_goes_to_the_cpu_partial_list_then_drains_to_the_node() -> None:
    m = SlubModel(ONE)
    s, objs = kmallocs(m, m.init_state(), 2048, 10)
    assert objs == [obj(pfn, i) for pfn in (8, 9, 10, 11, 12) for i in (0, 1)]
    # each exhausted slab left by get_freelist's DEACTIVATE_BYPASS: full, unfrozen, on no list
    assert all(s.slabs[pfn] == Slab(K2048, 0, 2, 2, False, NULL) for pfn in (8, 9, 10, 11))
    # two tid steps for the first slab (load_freelist, the fast path), three for each after it
    # (DEACTIVATE_BYPASS dropping the exhausted c->page moves the tid too, as since eeaa345e1285)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 12, (), 14)
    assert node(s, K2048) == KmemCacheNode((), 0, 5, 10)

    # __slab_free into a full slab that is not c->page: frozen and put_cpu_partial'ed
    s, _ = run(m, s, "kfree", obj(8, 0), 0)
    assert s.slabs[8] == Slab(K2048, 0, 2, 1, True, obj(8, 0))
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 12, (CpuPartial(8, 1, 1),), 14)  # tid untouched
    s, _ = run(m, s, "kfree", obj(9, 0), 0)
    s, _ = run(m, s, "kfree", obj(10, 0), 0)
    assert cpu_slab(s, K2048).partial == (CpuPartial(10, 3, 3), CpuPartial(9, 2, 2), CpuPartial(8, 1, 1))
    # a free into a frozen slab only threads page->freelist: slab 8 is empty but stays put
    s, _ = run(m, s, "kfree", obj(8, 1), 0)
    assert s.slabs[8] == Slab(K2048, 0, 2, 0, True, obj(8, 1))
    assert s.freeptr[obj(8, 1)] == obj(8, 0)
    assert cpu_slab(s, K2048).partial[0] == CpuPartial(10, 3, 3)  # pobjects is not updated

    # one more: pobjects 3 > cpu_partial 2, so unfreeze_partials first. From the head: 10 and 9
    # go to the node list's tail (DEACTIVATE_TO_TAIL); 8 is empty and nr_partial (2) >=
    # min_partial (1): discarded, back to the buddy allocator
    s, _ = run(m, s, "kfree", obj(11, 0), 0)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 12, (CpuPartial(11, 1, 1),), 14)
    assert node(s, K2048) == KmemCacheNode(partial=(10, 9), nr_partial=2, nr_slabs=4, total_objects=8)
    assert s.slabs[9] == Slab(K2048, 0, 2, 1, False, obj(9, 0))
    assert s.slabs[10] == Slab(K2048, 0, 2, 1, False, obj(10, 0))
    assert 8 not in s.slabs and (8, 0) not in s.mm.allocated
    assert s.mm.allocated == ((9, 0), (10, 0), (11, 0), (12, 0))
    assert obj(8, 0) not in s.freeptr and obj(8, 1) not in s.freeptr  # the words went with the page

    # the next allocations: c->page is exhausted, so the CPU partial slab 11 is next (CPU_PARTIAL_ALLOC)
    s, a = run(m, s, "kmalloc", 2048, 0)
    assert a == obj(11, 0)
    # DEACTIVATE_BYPASS of 12 and load_freelist of 11: two tid steps
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 11, (), 16)
    assert s.slabs[12] == Slab(K2048, 0, 2, 2, False, NULL)  # bypassed: full, on no list
    assert s.slabs[11] == Slab(K2048, 0, 2, 2, True, NULL)


def test_unfreeze_partials_keeps_an_empty_slab_below_min_partial() -> None:
    m = SlubModel(dataclasses.replace(ONE, min_partial=5))
    s, _ = kmallocs(m, m.init_state(), 2048, 10)
    for addr in (obj(8, 0), obj(9, 0), obj(10, 0), obj(8, 1), obj(11, 0)):
        s, _ = run(m, s, "kfree", addr, 0)
    # nr_partial was below min_partial when slab 8 (empty) was unfrozen: it is kept, at the tail
    assert node(s, K2048) == KmemCacheNode((10, 9, 8), 3, 5, 10)
    assert s.slabs[8] == Slab(K2048, 0, 2, 0, False, obj(8, 1))


def test_get_partial_node_fills_c_page_then_the_cpu_partial_list() -> None:
    m = SlubModel(ONE)
    s, _ = kmallocs(m, m.init_state(), 2048, 8)  # slabs 8, 9, 10, 11; 11 is c->page
    for pfn in (8, 9, 10):
        s, _ = run(m, s, "kfree", obj(pfn, 0), 0)
    assert [p.pfn for p in cpu_slab(s, K2048).partial] == [10, 9, 8]
    # flush_all: the full c->page is unfrozen onto no list, the CPU partial slabs go to the
    # node's tail in list order; __kmem_cache_shrink then moves each (1 free object) to the
    # head of promote[0], which reverses them, and splices that back as the partial list
    s, _ = run(m, s, "kmem_cache_shrink", K2048)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, None, (), 12)  # deactivate_slab's next_tid
    assert node(s, K2048) == KmemCacheNode((8, 9, 10), 3, 4, 8)
    assert s.slabs[11] == Slab(K2048, 0, 2, 2, False, NULL)

    s, a = run(m, s, "kmalloc", 2048, 0)
    # acquire_slab(8, mode=1) takes the whole freelist for c->page (available 1, not > 2 / 2);
    # acquire_slab(9, mode=0) freezes 9 onto the CPU partial list (available 2 > 1): stop
    assert a == obj(8, 0)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, 8, (CpuPartial(9, 1, 1),), 13)
    assert s.slabs[8] == Slab(K2048, 0, 2, 2, True, NULL)
    assert s.slabs[9] == Slab(K2048, 0, 2, 1, True, obj(9, 0))
    assert node(s, K2048) == KmemCacheNode((10,), 1, 4, 8)


def test_shrink_deactivates_c_page_returning_its_cpu_freelist() -> None:
    m = SlubModel(ONE)
    s, (a, b) = kmallocs(m, m.init_state(), 1024, 2)
    o = [obj(8, i, 1024) for i in range(4)]
    assert (a, b) == (o[0], o[1])
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[2], 8, (), 2)
    s, _ = run(m, s, "kmem_cache_shrink", K1024)
    # deactivate_slab moves the CPU freelist o2 -> o3 onto page->freelist one object at a
    # time, so the page's list comes out reversed; unfrozen with two in use, the slab goes to
    # the head of the partial list (no remote frees), and the CPU lets go of it
    assert s.slabs[8] == Slab(K1024, 0, 4, 2, False, o[3])
    assert s.freeptr == {o[3]: o[2], o[2]: NULL}
    assert cpu_slab(s, K1024) == KmemCacheCpu(NULL, None, (), 3)
    assert node(s, K1024) == KmemCacheNode((8,), 1, 1, 4)
    # __slab_free of the last objects: the slab empties on the partial list, nr_partial
    # (1) >= min_partial (1), so it is removed and discarded
    s, _ = run(m, s, "kfree", a, 0)
    assert s.slabs[8] == Slab(K1024, 0, 4, 1, False, a)
    s, _ = run(m, s, "kfree", b, 0)
    assert s.slabs == {} and s.mm.allocated == ()
    assert node(s, K1024) == KmemCacheNode((), 0, 0, 0)


def test_shrink_of_an_empty_c_page_discards_it() -> None:
    m = SlubModel(ONE)
    s, a = run(m, m.init_state(), "kmalloc", 1024, 0)
    s, _ = run(m, s, "kfree", a, 0)  # fast path: all four objects are on c->freelist
    assert s.slabs[8].inuse == 4
    s, _ = run(m, s, "kmem_cache_shrink", K1024)
    # deactivate_slab keeps the empty slab (nr_partial 0 < min_partial 1), but the shrink
    # that follows discards every partial slab with all objects free
    assert s.slabs == {} and s.mm.allocated == ()
    assert cpu_slab(s, K1024) == KmemCacheCpu(NULL, None, (), 3)
    assert node(s, K1024) == KmemCacheNode((), 0, 0, 0)


# 7. The fallback from s->oo to s->min.


def test_allocate_slab_falls_back_to_min_order_when_oo_cannot_be_had() -> None:
    # one CPU, slub_min_objects 4, slub_max_order 1: kmalloc-2048 has oo (1, 4), min (0, 2)
    m = SlubModel(
        dataclasses.replace(ONE, slub_max_order=1, slub_min_objects=4, kmalloc_sizes=(2048, 16384, 32768))
    )
    s = m.init_state()
    assert (s.caches[K2048].s.oo, s.caches[K2048].s.min) == ((1, 4), (0, 2))
    # kmalloc_large takes the order-3 block at 8 and the order-2 block at 4
    s, big = run(m, s, "kmalloc", 32768, 0)
    s, medium = run(m, s, "kmalloc", 16384, 0)
    assert (big, medium) == (obj(8, 0), obj(4, 0)) and s.mm.allocated == ((4, 2), (8, 3))
    # the first slab is the last order-1 block: 4 objects
    s, objs = kmallocs(m, s, 2048, 4)
    assert objs == [obj(2, i) for i in range(4)] and s.slabs[2] == Slab(K2048, 1, 4, 4, True, NULL)
    # only pfn 1 is left: the oo try fails, the s->min try gets an order-0 slab of 2 objects
    s, a = run(m, s, "kmalloc", 2048, 0)
    assert a == obj(1, 0)
    assert s.slabs[1] == Slab(K2048, 0, 2, 2, True, NULL)
    assert s.mm.allocated == ((1, 0), (2, 1), (4, 2), (8, 3))
    assert node(s, K2048) == KmemCacheNode((), 0, 2, 6)
    # and once memory is gone, slab_out_of_memory: NULL, c->page bypassed
    s, b = run(m, s, "kmalloc", 2048, 0)
    s, c = run(m, s, "kmalloc", 2048, 0)
    assert (b, c) == (obj(1, 1), NULL)
    # tids: load_freelist 1, fast paths 2-4, DEACTIVATE_BYPASS of 2 at 5, load_freelist 6,
    # fast path 7, DEACTIVATE_BYPASS of 1 at 8 (the failed allocation leaves it there)
    assert cpu_slab(s, K2048) == KmemCacheCpu(NULL, None, (), 8)
    assert s.slabs[1] == Slab(K2048, 0, 2, 2, False, NULL)


# 8. kmalloc size classes and kmalloc_large.


def test_kmalloc_slab_picks_the_smallest_class_that_fits() -> None:
    def expected(size: int) -> str:
        if 64 < size <= 96:
            return "kmalloc-96"
        if 128 < size <= 192:
            return "kmalloc-192"
        return f"kmalloc-{max(8, 1 << (size - 1).bit_length())}"

    for size in range(1, KMALLOC_MAX_CACHE_SIZE + 1):
        index = kmalloc_slab(size)
        assert index is not None and kmalloc_name(index) == expected(size), size
    assert kmalloc_slab(0) is None
    # size_index for 1..192, by (size - 1) / 8; fls(size - 1) above
    assert [kmalloc_name(kmalloc_slab(n) or 0) for n in (64, 65, 96, 97, 128, 129, 192, 193)] == [
        "kmalloc-64", "kmalloc-96", "kmalloc-96", "kmalloc-128",
        "kmalloc-128", "kmalloc-192", "kmalloc-192", "kmalloc-256",
    ]  # fmt: skip


def test_kmalloc_sizes_through_the_model() -> None:
    too_big = (8 << PAGE_SHIFT) + 1  # get_order 4 = MAX_ORDER
    sizes = (0, 65, 96, 97, 129, 193, KMALLOC_MAX_CACHE_SIZE + 1, too_big)
    m = SlubModel(dataclasses.replace(ONE, kmalloc_sizes=sizes))
    boot = m.init_state()
    s, zero = run(m, boot, "kmalloc", 0, 0)
    assert zero == ZERO_SIZE_PTR and s.fingerprint() == boot.fingerprint()
    classes = {}
    for size in (65, 96, 97, 129, 193):
        s, addr = run(m, s, "kmalloc", size, 0)
        classes[size] = s.slabs[addr >> PAGE_SHIFT].cache
    assert classes == {
        65: "kmalloc-96",
        96: "kmalloc-96",
        97: "kmalloc-128",
        129: "kmalloc-192",
        193: "kmalloc-256",
    }
    # above KMALLOC_MAX_CACHE_SIZE: kmalloc_large, a compound block of get_order(8193) = 2
    allocated = s.mm.allocated
    s, large = run(m, s, "kmalloc", KMALLOC_MAX_CACHE_SIZE + 1, 0)
    pfn = large >> PAGE_SHIFT
    assert s.mm.allocated == tuple(sorted(allocated + ((pfn, 2),)))
    assert (large, "kmalloc_large", KMALLOC_MAX_CACHE_SIZE + 1) in s.live and pfn not in s.slabs
    before = s
    s, null = run(m, s, "kmalloc", too_big, 0)  # order >= MAX_ORDER: the page allocator fails it
    assert null == NULL and s.fingerprint() == before.fingerprint()
    s, error = run(m, s, "kfree", large, 0)
    assert error is None and s.mm.allocated == allocated
    assert all(entry[1] != "kmalloc_large" for entry in s.live)


# 9. Bad input.


def test_bad_frees_are_refused_and_change_nothing() -> None:
    m = SlubModel(dataclasses.replace(ONE, kmalloc_sizes=(2048, 3 * 4096)))
    s, a = run(m, m.init_state(), "kmalloc", 2048, 0)
    b = obj(8, 1)  # free, on c->freelist

    def refused(state: SlubState, addr: int, enabled: bool = True) -> str:
        after, error = run(m, state, "kfree", addr, 0, enabled=enabled)
        assert after.fingerprint() == state.fingerprint()
        return str(error)

    assert refused(s, b) == "kmalloc-2048: Object already free"
    assert refused(s, a + 1) == f"kmalloc-2048: Invalid object pointer {a + 1:#x}"
    # pfn 1 is a free buddy page: neither PageSlab nor a compound kmalloc_large head
    assert refused(s, obj(1, 0), enabled=False) == f"{slub.NOT_SLAB}: {obj(1, 0):#x}"
    s, _ = run(m, s, "kfree", a, 0)
    assert refused(s, a) == "kmalloc-2048: Object already free"
    # an object freed into a slab that is not c->page sits on page->freelist: found there too
    s, (c, d, e) = kmallocs(m, s, 2048, 3)
    assert (c, d, e) == (a, b, obj(9, 0))
    s, _ = run(m, s, "kfree", c, 0)
    assert s.slabs[8].freelist == c
    assert refused(s, c) == "kmalloc-2048: Object already free"
    # a pointer into a kmalloc_large block other than its head page
    s, large = run(m, s, "kmalloc", 3 * 4096, 0)
    assert refused(s, large + 4096, enabled=False) == f"{slub.NOT_SLAB}: {large + 4096:#x}"
    # NULL and ZERO_SIZE_PTR are ignored
    for addr in (NULL, ZERO_SIZE_PTR):
        after, error = run(m, s, "kfree", addr, 0, enabled=False)
        assert error is None and after.fingerprint() == s.fingerprint()


def test_destroy_with_live_objects_fails_and_the_cache_still_works() -> None:
    m = SlubModel(dataclasses.replace(ONE, caches=(CacheSpec("obj", 2048),)))
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    assert s.caches["obj"].s.oo == (0, 2)
    s, x = run(m, s, "kmem_cache_alloc", "obj", 0)
    assert x == obj(8, 0) and s.live == ((x, "obj", 2048),)
    s, error = run(m, s, "kmem_cache_destroy", "obj")
    assert error == "kmem_cache_destroy obj: Slab cache still has objects"
    # the flush_all of __kmem_cache_shutdown did happen: the slab is on the partial list
    assert "obj" in s.caches and cpu_slab(s, "obj") == KmemCacheCpu(NULL, None, (), 2)
    assert node(s, "obj") == KmemCacheNode((8,), 1, 1, 2)
    s, y = run(m, s, "kmem_cache_alloc", "obj", 0)
    assert y == obj(8, 1)  # from the node partial list
    s, _ = run(m, s, "kfree", x, 0)
    s, _ = run(m, s, "kfree", y, 0)
    assert s.live == () and s.mm.allocated == ((8, 0),)  # the empty c->page is still held
    s, error = run(m, s, "kmem_cache_destroy", "obj")
    assert error is None and "obj" not in s.caches
    assert s.slabs == {} and s.mm.allocated == () and s.freeptr == {}
    # and it can be created again, empty
    s, _ = run(m, s, "kmem_cache_create", "obj")
    assert node(s, "obj") == KmemCacheNode((), 0, 0, 0)


def test_failed_destroy_stops_at_the_first_busy_node() -> None:
    # __kmem_cache_shutdown: for_each_kmem_cache_node, free_partial, then
    # if (n->nr_partial || slabs_node(s, node)) return 1: the nodes after a busy one are not visited.
    # cpu 0 holds a live object in slab 8 (node 0); cpu 1's c->page 24 (node 1) is empty.
    m = SlubModel(dataclasses.replace(ONE, buddy=NUMA, min_partial=None, caches=(CacheSpec("obj", 2048),)))
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    s, _ = run(m, s, "kmem_cache_alloc", "obj", 0)
    s, y = run(m, s, "kmem_cache_alloc", "obj", 1)
    assert y == obj(24, 0)
    s, _ = run(m, s, "kfree", y, 1)
    # flush_all leaves 8 (one free object) on node 0's list and the empty 24 on node 1's
    # (nr_partial 0 < min_partial 5); node 0 still has slabs, so node 1's is never freed
    s, error = run(m, s, "kmem_cache_destroy", "obj")
    assert error == "kmem_cache_destroy obj: Slab cache still has objects"
    assert node(s, "obj", 0) == KmemCacheNode((8,), 1, 1, 2)
    assert node(s, "obj", 1) == KmemCacheNode((24,), 1, 1, 2)
    assert s.mm.allocated == ((8, 0), (24, 0))


def test_free_partial_discards_in_reverse_list_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # since 4.8 (6039892396d8, "mm/slub.c: run free_partial() outside of the
    # kmem_cache_node->list_lock") free_partial list_add()s each empty slab onto a local discard
    # list and discard_slab()s that list afterwards: the last listed goes first
    m = SlubModel(dataclasses.replace(ONE, min_partial=None, caches=(CacheSpec("obj", 2048),)))
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    objs = []
    for _ in range(3):
        s, x = run(m, s, "kmem_cache_alloc", "obj", 0)
        objs.append(x)
    for x in objs:
        s, _ = run(m, s, "kfree", x, 0)
    assert [p.pfn for p in cpu_slab(s, "obj").partial] == [8] and cpu_slab(s, "obj").page == 9
    discarded: list[int] = []
    discard_slab = slub.discard_slab

    def record(state: SlubState, s_: Any, pfn: int, cpu: int) -> None:
        discarded.append(pfn)
        discard_slab(state, s_, pfn, cpu)

    monkeypatch.setattr(slub, "discard_slab", record)
    # flush_all puts the empty c->page 9 at the head of the partial list (kept: nr_partial
    # 0 < min_partial 5) and unfreeze_partials the empty 8 behind it: (9, 8)
    after_flush = s.clone()
    slub.flush_all(after_flush, after_flush.caches["obj"].s)
    assert node(after_flush, "obj").partial == (9, 8) and discarded == []
    s, error = run(m, s, "kmem_cache_destroy", "obj")
    assert error is None and s.mm.allocated == () and "obj" not in s.caches
    assert discarded == [8, 9]


# 10. The interrupt window and the tid.
#
# A task's fast path stopped in its window keeps what it read (tid, object, next) as its own
# stack locals, state.task[cpu] here; interrupt handlers on that CPU run their fast paths to
# completion and leave it alone. At this_cpu_cmpxchg_double the task commits if c->freelist
# and c->tid are still what it read, else it redoes its fast path from the first read.


def test_an_interrupt_alloc_leaves_the_task_pending_alloc_alone() -> None:
    m = SlubModel(IRQ)
    o = [obj(8, i, 1024) for i in range(4)]
    s, _ = run(m, m.init_state(), "kmalloc", 1024, 0)
    s, _ = run(m, s, "kmalloc", 1024, 0)
    task = Pending("alloc", K1024, 1, o[1], o[2], 8, None, 1024)
    assert s.task[0] == task
    s, a = run(m, s, "irq_alloc", 0)
    assert a == o[1] and cpu_slab(s, K1024) == KmemCacheCpu(o[2], 8, (), 2)
    assert s.task[0] == task  # the task is still in its window
    # its cmpxchg fails (c->freelist and c->tid moved): a fresh read, a fresh window
    s, result = run(m, s, "cmpxchg_double", 0)
    assert result is None and s.task[0] == Pending("alloc", K1024, 2, o[2], o[3], 8, None, 1024)
    s, b = run(m, s, "cmpxchg_double", 0)
    assert b == o[2] and s.task == (None,)
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[3], 8, (), 3)
    assert [addr for addr, _, _ in s.live] == o[:3]  # each handed out once


def test_an_interrupt_free_leaves_the_task_pending_free_alone() -> None:
    m = SlubModel(IRQ)
    o = [obj(8, i, 1024) for i in range(4)]
    s, _ = run(m, m.init_state(), "kmalloc", 1024, 0)
    s, _ = run(m, s, "kmalloc", 1024, 0)
    s, _ = run(m, s, "cmpxchg_double", 0)
    s, _ = run(m, s, "kfree", o[0], 0)
    task = Pending("free", K1024, 2, o[0], o[2], 8, None, 0)
    assert s.task[0] == task and s.freeptr[o[0]] == o[2]
    # the object the task is freeing is no interrupt's to free
    assert [args for act, args in m.enabled(s) if act.name == "irq_kfree"] == [(o[1], 0)]
    s, _ = run(m, s, "irq_kfree", o[1], 0)
    assert s.task[0] == task
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[1], 8, (), 3)
    # the task's cmpxchg fails (c->freelist is o1 now, not o2): it redoes, reading o1
    s, _ = run(m, s, "cmpxchg_double", 0)
    assert s.task[0] == Pending("free", K1024, 3, o[0], o[1], 8, None, 0)
    s, _ = run(m, s, "cmpxchg_double", 0)
    assert s.task == (None,) and s.live == ()
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[0], 8, (), 4)
    assert s.freeptr == {o[0]: o[1], o[1]: o[2], o[2]: o[3], o[3]: NULL}


def interrupt_aba(m: SlubModel, step: Callable[..., tuple[SlubState, Any]]) -> tuple[SlubState, list[Any]]:
    """The textbook ABA on one CPU: the task stops in kmalloc(1024) with A = o1 read and
    B = o2 its next; an interrupt allocates A and B and frees A, so c->freelist is A again,
    but A's next is o3 now and B is live."""
    s, first = step(m, m.init_state(), "kmalloc", 1024, 0)
    s, pending = step(m, s, "kmalloc", 1024, 0)
    s, a = step(m, s, "irq_alloc", 0)
    s, b = step(m, s, "irq_alloc", 0)
    s, error = step(m, s, "irq_kfree", a, 0)
    return s, [first, pending, a, b, error]


def test_tid_makes_the_cmpxchg_fail_after_an_interrupt_aba() -> None:
    m = SlubModel(IRQ)
    o = [obj(8, i, 1024) for i in range(4)]
    s, results = interrupt_aba(m, run)
    assert results == [o[0], None, o[1], o[2], None]
    assert s.task[0] == Pending("alloc", K1024, 1, o[1], o[2], 8, None, 1024)
    # the head the task read is back, but each interrupt fast path moved the tid: 1 -> 4
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[1], 8, (), 4) and s.freeptr[o[1]] == o[3]
    s, result = run(m, s, "cmpxchg_double", 0)
    assert result is None
    assert s.task[0] == Pending("alloc", K1024, 4, o[1], o[3], 8, None, 1024)
    s, got = run(m, s, "cmpxchg_double", 0)
    assert got == o[1]
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[3], 8, (), 5)
    assert [addr for addr, _, _ in s.live] == o[:3]  # each handed out once


def test_without_the_tid_the_interrupt_aba_hands_out_an_object_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slub, "next_tid", lambda state, tid: tid)
    m = SlubModel(IRQ)
    o = [obj(8, i, 1024) for i in range(4)]
    found: list[Any] = []

    def step(m: SlubModel, state: SlubState, name: str, *args: Any) -> tuple[SlubState, Any]:
        after, result, broken = attempt(m, state, name, *args)
        found.append(broken)
        return after, result

    s, results = interrupt_aba(m, step)
    assert results == [o[0], None, o[1], o[2], None]
    # slub.tid reports every step that changed c->freelist with the tid kept: the slow
    # path's load_freelist and each interrupt fast path; the state invariants all hold
    assert [f and f[0].name for f in found] == ["slub.tid", None, "slub.tid", "slub.tid", "slub.tid"]
    assert s.task[0] == Pending("alloc", K1024, 0, o[1], o[2], 8, None, 1024)
    assert cpu_slab(s, K1024) == KmemCacheCpu(o[1], 8, (), 0)
    # the task's cmpxchg succeeds: it hands out A and installs its stale next, B, which is live
    s, got = step(m, s, "cmpxchg_double", 0)
    assert got == o[1] and cpu_slab(s, K1024).freelist == o[2]
    assert found[-1] is not None and found[-1][0].name == "slub.freelist"
    assert f"{K1024} cpu 0's c->freelist holds {o[2]:#x}, which is allocated" in violations(
        "slub.freelist", s
    )
    # and the next allocation hands out B a second time
    s, _ = step(m, s, "kmalloc", 1024, 0)
    s, again = step(m, s, "cmpxchg_double", 0)
    assert again == o[2]
    assert violations("slub.no_double_alloc", s) == [f"{o[2]:#x} was handed out 2 times and is live in each"]


# The same ABA through the slow path and an IPI, on two CPUs: flush_all's IPI from CPU 0
# gives CPU 1's freelist back to the page (reversed), and an interrupt on CPU 1 takes the
# slab back through the slow path, whose load_freelist makes A the head again.

# Two CPUs on one node (TID_STEP 2), the interrupt window open.
IRQ2 = dataclasses.replace(IRQ, buddy=dataclasses.replace(FLAT, cpu_to_node=(0, 0)))


def aba(m: SlubModel, step: Callable[..., tuple[SlubState, Any]]) -> tuple[SlubState, list[Any]]:
    """CPU 1's task stops in kmalloc(1024) with A = o2 read and B = o3 next; CPU 0's
    kmem_cache_shrink flushes CPU 1 (page->freelist o3 -> o2); an interrupt on CPU 1 takes the
    slab back as c->page through get_partial_node, getting B and leaving c->freelist == A."""
    s, first = step(m, m.init_state(), "kmalloc", 1024, 1)
    s, _ = step(m, s, "kmalloc", 1024, 1)
    s, second = step(m, s, "cmpxchg_double", 1)
    s, pending = step(m, s, "kmalloc", 1024, 1)
    s, _ = step(m, s, "kmem_cache_shrink", K1024)
    s, irq = step(m, s, "irq_alloc", 1)
    return s, [first, second, pending, irq]


def test_tid_makes_the_cmpxchg_fail_after_a_flush_aba() -> None:
    m = SlubModel(IRQ2)
    o = [obj(8, i, 1024) for i in range(4)]
    s, (first, second, pending, irq) = aba(m, run)
    assert (first, second, pending, irq) == (o[0], o[1], None, o[3])
    # the head is A again, and A's next is NULL now, but deactivate_slab and load_freelist
    # each moved the tid: 5 -> 7 -> 9
    assert s.task[1] == Pending("alloc", K1024, 5, o[2], o[3], 8, None, 1024)
    assert cpu_slab(s, K1024, 1) == KmemCacheCpu(o[2], 8, (), 9)
    assert s.slabs[8] == Slab(K1024, 0, 4, 4, True, NULL)
    # this_cpu_cmpxchg_double fails on the tid and redoes: a fresh read, a fresh window
    s, result = run(m, s, "cmpxchg_double", 1)
    assert result is None
    assert s.task[1] == Pending("alloc", K1024, 9, o[2], NULL, 8, None, 1024)
    s, got = run(m, s, "cmpxchg_double", 1)
    assert got == o[2]
    assert cpu_slab(s, K1024, 1) == KmemCacheCpu(NULL, 8, (), 11)
    assert [addr for addr, _, _ in s.live] == o  # each handed out once


def test_without_the_tid_the_flush_aba_hands_out_an_object_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slub, "next_tid", lambda state, tid: tid)
    m = SlubModel(IRQ2)
    o = [obj(8, i, 1024) for i in range(4)]
    found: list[Any] = []

    def step(m: SlubModel, state: SlubState, name: str, *args: Any) -> tuple[SlubState, Any]:
        after, result, broken = attempt(m, state, name, *args)
        found.append(broken)
        return after, result

    s, (_, _, _, irq) = aba(m, step)
    assert irq == o[3]
    # slub.tid reports every step that changed c->freelist with the tid kept: the slow
    # path's load_freelist, the fast path's cmpxchg, deactivate_slab, load_freelist again
    assert [f and f[0].name for f in found] == ["slub.tid", None, "slub.tid", None, "slub.tid", "slub.tid"]
    assert s.task[1] == Pending("alloc", K1024, 1, o[2], o[3], 8, None, 1024)
    assert cpu_slab(s, K1024, 1) == KmemCacheCpu(o[2], 8, (), 1)
    # the task's cmpxchg now succeeds: it hands out A and installs its stale next, B, live
    s, got = step(m, s, "cmpxchg_double", 1)
    assert got == o[2] and cpu_slab(s, K1024, 1).freelist == o[3]
    assert f"{K1024} cpu 1's c->freelist holds {o[3]:#x}, which is allocated" in violations(
        "slub.freelist", s
    )
    # and the next allocation hands out B a second time
    s, _ = step(m, s, "kmalloc", 1024, 1)
    s, again = step(m, s, "cmpxchg_double", 1)
    assert again == o[3]
    assert violations("slub.no_double_alloc", s) == [f"{o[3]:#x} was handed out 2 times and is live in each"]


# 11-12. NUMA nodes and two CPUs.


def test_kmem_cache_alloc_node_takes_a_slab_of_the_node_asked_for() -> None:
    m = SlubModel(dataclasses.replace(ONE, buddy=NUMA, caches=(CacheSpec("obj", 2048),)))
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    s, x = run(m, s, "kmem_cache_alloc", "obj", 0)
    assert x == obj(8, 0)  # cpu 0 is on node 0: pfns 1-15
    assert cpu_slab(s, "obj") == KmemCacheCpu(obj(8, 1), 8, (), 2)  # TID_STEP 2 with two CPUs
    # node 1 asked for: node_match fails, c->page 8 is deactivated (its free object back on
    # page->freelist, to node 0's partial list) and a slab comes from node 1's memory
    s, y = run(m, s, "kmem_cache_alloc_node", "obj", 1, 0)
    assert y == obj(24, 0) and s.mm.allocated == ((8, 0), (24, 0))
    # two tid steps: deactivate_slab's and load_freelist's
    assert cpu_slab(s, "obj") == KmemCacheCpu(obj(24, 1), 24, (), 6)
    assert s.slabs[8] == Slab("obj", 0, 2, 1, False, obj(8, 1))
    assert node(s, "obj", 0) == KmemCacheNode((8,), 1, 1, 2)
    assert node(s, "obj", 1) == KmemCacheNode((), 0, 1, 2)
    # back to node 0: 24 is deactivated to node 1's list, 8 is taken from node 0's
    s, z = run(m, s, "kmem_cache_alloc_node", "obj", 0, 0)
    assert z == obj(8, 1)
    assert cpu_slab(s, "obj") == KmemCacheCpu(NULL, 8, (), 10)
    assert node(s, "obj", 0) == KmemCacheNode((), 0, 1, 2)
    assert node(s, "obj", 1) == KmemCacheNode((24,), 1, 1, 2)
    # cpu 1 (node 1) finds node 1's partial slab
    s, w = run(m, s, "kmem_cache_alloc", "obj", 1)
    assert w == obj(24, 1)
    assert cpu_slab(s, "obj", 1) == KmemCacheCpu(NULL, 24, (), 3)
    assert node(s, "obj", 1) == KmemCacheNode((), 0, 1, 2)


def test_node_mismatch_deactivates_an_empty_slab_straight_back_to_the_buddy_allocator() -> None:
    m = SlubModel(dataclasses.replace(ONE, buddy=NUMA, caches=(CacheSpec("obj", 2048),)))
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    s, y = run(m, s, "kmem_cache_alloc_node", "obj", 1, 0)
    s, _ = run(m, s, "kfree", y, 0)  # cpu 0's c->page 24 (node 1) is empty now
    # cpu 1 leaves a partial slab on node 1's list: 25, deactivated by its own node mismatch
    s, z = run(m, s, "kmem_cache_alloc", "obj", 1)
    s, w = run(m, s, "kmem_cache_alloc_node", "obj", 0, 1)
    assert (y, z, w) == (obj(24, 0), obj(25, 0), obj(8, 0))
    assert node(s, "obj", 1) == KmemCacheNode((25,), 1, 2, 4)
    # cpu 0 asks for node 0: deactivate_slab(24) finds it empty with nr_partial (1) >=
    # min_partial (1): M_FREE, discarded there and then; a new slab comes from node 0
    s, v = run(m, s, "kmem_cache_alloc_node", "obj", 0, 0)
    assert v == obj(9, 0) and 24 not in s.slabs
    assert s.mm.allocated == ((8, 0), (9, 0), (25, 0))
    assert node(s, "obj", 1) == KmemCacheNode((25,), 1, 1, 2)
    assert cpu_slab(s, "obj", 0) == KmemCacheCpu(obj(9, 1), 9, (), 8)


def test_node_mismatch_then_out_of_memory_advances_the_tid() -> None:
    m = SlubModel(
        dataclasses.replace(ONE, buddy=NUMA, caches=(CacheSpec("obj", 2048),), kmalloc_sizes=(4096,))
    )
    s, _ = run(m, m.init_state(), "kmem_cache_create", "obj")
    s, _ = run(m, s, "kmem_cache_alloc", "obj", 0)
    # one-object kmalloc-4096 slabs on cpu 1 take the other 30 pages of both nodes
    s, filler = kmallocs(m, s, 4096, 30, cpu=1)
    assert NULL not in filler and len(s.mm.allocated) == 31
    assert cpu_slab(s, "obj") == KmemCacheCpu(obj(8, 1), 8, (), 2)
    # node 1 asked for: deactivate_slab gives c->page 8 back to node 0's partial list and
    # moves the tid (eeaa345e1285), then no slab of node 1 can be had: NULL
    s, result = run(m, s, "kmem_cache_alloc_node", "obj", 1, 0)
    assert result == NULL and cpu_slab(s, "obj") == KmemCacheCpu(NULL, None, (), 4)
    assert s.slabs[8] == Slab("obj", 0, 2, 1, False, obj(8, 1))
    assert node(s, "obj", 0) == KmemCacheNode((8,), 1, 1, 2)


def test_remote_free_into_another_cpus_slab_goes_to_page_freelist() -> None:
    m = SlubModel(dataclasses.replace(ONE, buddy=dataclasses.replace(FLAT, cpu_to_node=(0, 0))))
    s, a = run(m, m.init_state(), "kmalloc", 2048, 0)
    assert cpu_slab(s, K2048, 0) == KmemCacheCpu(obj(8, 1), 8, (), 2)
    s, _ = run(m, s, "kfree", a, 1)
    # 8 is not cpu 1's c->page: __slab_free on a frozen slab threads page->freelist only
    assert s.slabs[8] == Slab(K2048, 0, 2, 1, True, a)
    assert cpu_slab(s, K2048, 1) == KmemCacheCpu(NULL, None, (), 1)
    assert cpu_slab(s, K2048, 0) == KmemCacheCpu(obj(8, 1), 8, (), 2)
    assert node(s, K2048) == KmemCacheNode((), 0, 1, 2)
    s, b = run(m, s, "kmalloc", 2048, 0)
    assert b == obj(8, 1) and cpu_slab(s, K2048, 0) == KmemCacheCpu(NULL, 8, (), 4)
    # c->freelist empty: get_freelist takes the remotely freed object (ALLOC_REFILL); the
    # slab stays frozen since page->freelist was not empty
    s, c = run(m, s, "kmalloc", 2048, 0)
    assert c == a
    assert s.slabs[8] == Slab(K2048, 0, 2, 2, True, NULL)
    assert cpu_slab(s, K2048, 0) == KmemCacheCpu(NULL, 8, (), 6)
    assert s.mm.allocated == ((8, 0),)


# 13. Configs.


@pytest.mark.parametrize("profile", ["small", "large"])
def test_config_round_trips_through_json(profile: str) -> None:
    m = SlubModel.from_profile(profile)
    data = json.loads(json.dumps(m.config_json()))
    assert SlubModel.config_from_json(data) == m.config


def test_bad_configs_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="cache names"):
        SlubConfig(caches=(CacheSpec("a", 8), CacheSpec("a", 16)))
    with pytest.raises(ValueError, match=r"kmalloc_sizes \[-1\]"):
        SlubConfig(kmalloc_sizes=(8, -1))
    with pytest.raises(ValueError, match=r"slub_max_order \(4\) < MAX_ORDER \(4\)"):
        SlubConfig(buddy=FLAT, slub_max_order=4)
    with pytest.raises(ValueError, match="cpu_partial -1"):
        SlubConfig(buddy=FLAT, cpu_partial=-1)
    with pytest.raises(ValueError, match=r"unknown flags \['SLAB_POISON'\]"):
        CacheSpec("a", 8, flags=("SLAB_POISON",))
    with pytest.raises(ValueError, match="size 0"):
        CacheSpec("a", 0)
    data = SlubModel(SMALL).config_json()
    with pytest.raises(ValueError, match="unknown flags"):
        SlubModel.config_from_json({**data, "caches": [{"name": "a", "size": 8, "flags": ["SLAB_X"]}]})
    with pytest.raises(ValueError, match=r"unknown config fields \['slub_debug'\]"):
        SlubModel.config_from_json({**data, "slub_debug": True})


def test_default_config_builds() -> None:
    config = SlubConfig()
    assert config.buddy == BuddyConfig() and config.buddy.MAX_ORDER == 11 and config.slub_max_order == 3
    assert SlubModel.config_from_json({"kmalloc_sizes": [8]}) == SlubConfig(kmalloc_sizes=(8,))


def test_a_buddy_config_must_keep_pfn_0_out_of_the_allocator() -> None:
    # objects are named by physical address: the first object of a slab at pfn 0 would be
    # NULL (and one at 16 ZERO_SIZE_PTR), so pfn 0 must be reserved, as x86 keeps it
    with pytest.raises(ValueError, match=r"buddy\.reserved must hold pfn 0"):
        SlubConfig(buddy=dataclasses.replace(FLAT, reserved=()))
    with pytest.raises(ValueError, match=r"buddy\.reserved must hold pfn 0"):
        SlubConfig(buddy=dataclasses.replace(FLAT, reserved=((1, 2),)))
    data = SlubModel(ONE).config_json()
    with pytest.raises(ValueError, match=r"buddy\.reserved must hold pfn 0"):
        SlubModel.config_from_json({**data, "buddy": {**data["buddy"], "reserved": []}})
    # a wider reservation, or RAM that starts above pfn 0, is fine
    assert SlubConfig(buddy=dataclasses.replace(FLAT, reserved=((0, 4),))).buddy.reserved == ((0, 4),)
    m = SlubModel(SlubConfig(buddy=dataclasses.replace(FLAT, ram=((1, 16, 0),), reserved=())))
    s, a = run(m, m.init_state(), "kmalloc", 2048, 0)
    assert a == obj(8, 0)
    # every profile and every config here reserves it
    for config in (SMALL, LARGE, ONE, IRQ, SlubConfig(buddy=NUMA)):
        assert any(start == 0 < end for start, end in config.buddy.reserved)


# 14. Random walks.


@pytest.mark.parametrize(
    "config, steps, expect",
    [
        (SMALL, 400, {"kmalloc", "kfree", "cmpxchg_double", "irq_alloc", "irq_kfree", "kmem_cache_shrink"}),
        (LARGE, 300, {"kmalloc", "kfree", "cmpxchg_double", "kmem_cache_create", "kmem_cache_alloc_node"}),
    ],
    ids=["small", "large"],
)
def test_random_walk_keeps_every_invariant(config: SlubConfig, steps: int, expect: set[str]) -> None:
    m = SlubModel(config)
    rng = random.Random(2024)
    s = m.init_state()
    taken: Counter[str] = Counter()
    for _ in range(steps):
        # an action first, then its arguments: kfree's many arguments would crowd out the rest
        enabled: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for act, args in m.enabled(s):
            enabled[act.name].append(args)
        name = rng.choice(sorted(enabled))
        s, _ = run(m, s, name, *rng.choice(enabled[name]))
        taken[name] += 1
    assert expect <= set(taken), taken
