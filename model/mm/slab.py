"""SLUB and kmalloc on the buddy allocator as a model: state, config, profiles and actions.

The state is the buddy allocator's (``mm``: one world of page frames) plus SLUB's caches,
slab pages, free pointer words, and the registry of what kmalloc and kmem_cache_alloc
handed out. Each CPU runs one task; its kmalloc, kmem_cache_alloc and kfree may stop inside
the fast path's interrupt window (``irq_window``), where ``irq_alloc`` and ``irq_kfree`` are
an interrupt handler on that CPU allocating from and freeing to the same cache, and
``cmpxchg_double`` resumes the task at its this_cpu_cmpxchg_double. Interrupts on other
caches are left out: they touch none of the state the pending cmpxchg reads or writes.

kmem_cache_create, kmem_cache_shrink and kmem_cache_destroy run in CPU 0's task; the
flush_all they start runs on every CPU as an IPI, even inside another CPU's window.
Allocations are GFP_KERNEL; kmalloc_large blocks and slabs come from the page allocator on
the allocating CPU.

Bad frees are part of the action domain (``bad_frees``): a double free of an object on a
freelist and a pointer into the middle of an object, for every slab. They are refused
with slub_debug's message and change nothing (invariant slub.bad_free_refused).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from model.contract import Model, action
from model.mm import slub
from model.mm.buddy import LARGE as BUDDY_LARGE
from model.mm.buddy import BuddyConfig, BuddyModel, BuddyState
from model.mm.slab_common import (
    CacheSpec,
    KmemCache,
    SlubParams,
    create_kmalloc_caches,
    kmem_cache_open,
)
from model.mm.slub import CacheState, MemcgKmem, Pending, Slab


@dataclass(frozen=True)
class SlubConfig:
    """The machine (a buddy allocator config), SLUB's boot parameters and tunables, and what
    the tasks ask for."""

    buddy: BuddyConfig = BuddyConfig()
    slub_min_order: int = 0
    slub_max_order: int = 3
    slub_min_objects: int = 0  # 0: 4 * (fls(nr_cpu_ids) + 1)
    # /sys/kernel/slab/<cache>/cpu_partial and min_partial, written for every cache (None: the default)
    cpu_partial: int | None = None
    min_partial: int | None = None
    caches: tuple[CacheSpec, ...] = ()  # what kmem_cache_create may create
    kmalloc_sizes: tuple[int, ...] = (8, 64, 2048)  # what kmalloc may ask for
    irq_window: bool = True  # task fast paths stop before their cmpxchg_double
    bad_frees: bool = True  # kfree of freed objects and of interior pointers

    def __post_init__(self) -> None:
        object.__setattr__(self, "caches", tuple(self.caches))
        object.__setattr__(self, "kmalloc_sizes", tuple(self.kmalloc_sizes))
        names = [spec.name for spec in self.caches]
        if len(set(names)) != len(names):
            raise ValueError(f"cache names {names} are not distinct")
        bad = [size for size in self.kmalloc_sizes if not isinstance(size, int) or size < 0]
        if bad:
            raise ValueError(f"kmalloc_sizes {bad} are not sizes in bytes")
        if not 0 <= self.slub_min_order <= self.slub_max_order < self.buddy.MAX_ORDER:
            raise ValueError(
                f"need 0 <= slub_min_order ({self.slub_min_order}) <= slub_max_order ({self.slub_max_order}) "
                f"< MAX_ORDER ({self.buddy.MAX_ORDER})"
            )
        # Objects are named by physical address, and address 0 is NULL (16 is ZERO_SIZE_PTR):
        # pfn 0 must stay out of the allocator, as x86 keeps it (reserved for the BIOS).
        if not any(start == 0 < end for start, end in self.buddy.reserved) and any(
            start == 0 for start, _, _ in self.buddy.ram
        ):
            raise ValueError("buddy.reserved must hold pfn 0: an object at address 0 would be NULL")
        for name in ("cpu_partial", "min_partial"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} {value} is negative")

    def params(self) -> SlubParams:
        return SlubParams(
            self.slub_min_order,
            self.slub_max_order,
            self.slub_min_objects,
            len(self.buddy.cpu_to_node),
            self.buddy.MAX_ORDER,
        )

    def tuned(self, s: KmemCache) -> KmemCache:
        changes = {
            name: getattr(self, name)
            for name in ("cpu_partial", "min_partial")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(s, **changes) if changes else s


@dataclass(slots=True, eq=False)
class SlubState:
    mm: BuddyState  # the page frames, shared with the buddy allocator
    caches: dict[str, CacheState]  # slab_caches, by name
    slabs: dict[int, Slab]  # the PageSlab head pages, by pfn
    freeptr: dict[int, int]  # the free pointer word of every free object, by its address
    live: tuple[tuple[int, str, int], ...]  # (address, cache, size asked) handed out and not freed, sorted
    task: tuple[Pending | None, ...]  # per CPU: the task's fast path waiting for its cmpxchg
    # The memory controller that charges per-memcg caches' slabs (slub.memcg_charge_slab), if
    # any. It is part of the state that holds this one: a clone has none until that state's
    # clone binds its own, and the fingerprint and the state's JSON leave it to that state.
    kmem: MemcgKmem | None = field(default=None, repr=False)

    def clone(self) -> SlubState:
        return SlubState(
            self.mm.clone(), dict(self.caches), dict(self.slabs), dict(self.freeptr), self.live, self.task
        )

    def fingerprint(self) -> Hashable:
        # A tid matters only through a pending fast path's comparison with it: states that
        # differ in tids alone behave the same, so the fingerprint keeps just that outcome.
        pending = {(p.cache, cpu): p.tid for cpu, p in enumerate(self.task) if p is not None}
        caches = []
        for name in sorted(self.caches):
            cs = self.caches[name]
            cpus: tuple[Any, ...] = tuple(c[:3] for c in cs.cpu_slab)  # freelist, page, partial
            if pending:
                cpus += tuple(pending.get((name, cpu)) == c.tid for cpu, c in enumerate(cs.cpu_slab))
            caches.append((name, cpus, cs.node))
        task = tuple(p._replace(tid=0) if p is not None else None for p in self.task)
        return (
            self.mm.fingerprint(),
            tuple(caches),
            tuple(sorted(self.slabs.items())),
            tuple(sorted(self.freeptr.items())),
            self.live,
            task,
        )


def _idle(s: SlubState) -> list[int]:
    return [cpu for cpu, p in enumerate(s.task) if p is None]


def _pending(s: SlubState) -> list[int]:
    return [cpu for cpu, p in enumerate(s.task) if p is not None]


def _freed_by_task(s: SlubState) -> set[int]:
    return {p.object for p in s.task if p is not None and p.op == "free"}


def _kmalloc_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[int, int]]:
    return [(size, cpu) for cpu in _idle(s) for size in m.config.kmalloc_sizes]


def _custom_caches(m: SlubModel, s: SlubState) -> list[str]:
    return [name for name in m.specs if name in s.caches]


def _cache_alloc_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[str, int]]:
    return [(name, cpu) for cpu in _idle(s) for name in _custom_caches(m, s)]


def _cache_alloc_node_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[str, int, int]]:
    nodes = range(len(s.mm.layout.nodes)) if len(s.mm.layout.nodes) > 1 else ()
    return [(name, nid, cpu) for cpu in _idle(s) for name in _custom_caches(m, s) for nid in nodes]


def _bad_pointers(m: SlubModel, s: SlubState) -> list[int]:
    """A freed object and an interior pointer of every slab: the double free and the bad
    pointer that slub_debug reports."""
    out: list[int] = []
    for pfn, slab in sorted(s.slabs.items()):
        cache = s.caches[slab.cache]
        heads = [slab.freelist] + [c.freelist for c in cache.cpu_slab if c.page == pfn]
        out.extend(head for head in heads if head)
        out.append(cache.s.object_address(pfn, 0) + 1)
    return out


def _kfree_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[int, int]]:
    freed = _freed_by_task(s)
    addrs = sorted({addr for addr, _, _ in s.live} - freed)
    if m.config.bad_frees:
        addrs += [addr for addr in _bad_pointers(m, s) if addr not in addrs]
    return [(addr, cpu) for cpu in _idle(s) for addr in addrs]


def _cmpxchg_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[int]]:
    return [(cpu,) for cpu in _pending(s)]


def _irq_kfree_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[int, int]]:
    freed = _freed_by_task(s)
    out: list[tuple[int, int]] = []
    for cpu in _pending(s):
        cache = s.task[cpu].cache  # type: ignore[union-attr]
        out += [(addr, cpu) for addr, name, _ in s.live if name == cache and addr not in freed]
    return out


def _create_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[str]]:
    return [(name,) for name in m.specs if name not in s.caches] if s.task[0] is None else []


def _destroy_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[str]]:
    if s.task[0] is not None:
        return []
    busy = {p.cache for p in s.task if p is not None}
    return [(name,) for name in _custom_caches(m, s) if name not in busy]


def _has_slabs(cs: CacheState) -> bool:
    return any(n.nr_slabs for n in cs.node)


def _shrink_domain(m: SlubModel, s: SlubState) -> Iterable[tuple[str]]:
    if s.task[0] is not None:
        return []
    return [(name,) for name, cs in s.caches.items() if _has_slabs(cs)]


# Small: a machine of five page frames (pfn 0 reserved, as x86 keeps it; the four others in
# ZONE_NORMAL, min watermark one page) and one CPU, with slabs of two objects
# (slub_min_objects=2, slub_max_order=0: kmalloc-2048 gets order-0 slabs), kmalloc-2048 the
# only size asked for, and tunables scaled down with it (cpu_partial 2, min_partial 1). Within
# a few steps slabs go full, partial, frozen on the CPU partial list, unfrozen and discarded,
# memory runs out, and an interrupt can hit the fast path's window; and the explorer visits
# every reachable state (28,353) in seconds.
TINY = BuddyConfig(
    MAX_ORDER=2,
    pageblock_order=1,
    ram=((0, 5, 0),),
    reserved=((0, 1),),
    max_zone_pfn=(0, 0, 5),
    cpu_to_node=(0,),
    min_free_kbytes=4,
    migratetypes=("MIGRATE_UNMOVABLE",),
    split_page_max_order=0,
)
SMALL = SlubConfig(
    buddy=TINY,
    slub_max_order=0,
    slub_min_objects=2,
    cpu_partial=2,
    min_partial=1,
    kmalloc_sizes=(2048,),
)

# Large: the buddy model's large machine (four CPUs, two nodes, MAX_ORDER 11) with the
# kernel's default SLUB parameters and tunables, kmalloc sizes around every class boundary
# plus kmalloc_large and a size beyond KMALLOC_MAX_SIZE, and caches shaped like real ones.
LARGE = SlubConfig(
    buddy=BUDDY_LARGE,
    caches=(
        CacheSpec("task_struct", 3840, 64, ("SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT")),
        CacheSpec("dentry", 192, 0, ("SLAB_HWCACHE_ALIGN", "SLAB_RECLAIM_ACCOUNT")),
        CacheSpec("anon_vma", 88, 0, ("SLAB_TYPESAFE_BY_RCU", "SLAB_ACCOUNT"), ctor=True),
        CacheSpec("names_cache", 4096, 0, ("SLAB_HWCACHE_ALIGN",)),
    ),
    kmalloc_sizes=(0, 8, 13, 96, 100, 192, 193, 256, 1000, 2048, 4097, 8192, 8193, 20000, 1 << 23),
)


class SlubModel(Model[SlubState, SlubConfig]):
    """SLUB caches and kmalloc over the buddy allocator, with per-CPU fast paths and interrupts."""

    name = "slub"
    Config = SlubConfig
    profiles = {"small": SMALL, "large": LARGE}

    def __init__(self, config: SlubConfig | None = None) -> None:
        super().__init__(config)
        params = self.config.params()
        self.buddy = BuddyModel(self.config.buddy)
        self.kmalloc_caches = tuple(map(self.config.tuned, create_kmalloc_caches(params)))
        self.specs = {
            spec.name: self.config.tuned(kmem_cache_open(params, spec)) for spec in self.config.caches
        }

    @classmethod
    def config_from_json(cls, data: dict[str, Any]) -> Any:
        data = dict(data)
        if isinstance(data.get("buddy"), dict):
            data["buddy"] = BuddyModel.config_from_json(data["buddy"])
        if isinstance(data.get("caches"), list):
            data["caches"] = tuple(CacheSpec(**spec) for spec in data["caches"])
        unknown = set(data) - {f.name for f in dataclasses.fields(SlubConfig)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        return SlubConfig(**data)

    def init_state(self) -> SlubState:
        """The buddy allocator after mem_init, and kmem_cache_init's kmalloc caches, empty."""
        mm = self.buddy.init_state()
        state = SlubState(mm, {}, {}, {}, (), (None,) * len(self.buddy.cpus))
        for s in self.kmalloc_caches:
            slub.kmem_cache_create(state, s)
        return state

    @property
    def window(self) -> bool:
        return self.config.irq_window

    @action("size", "cpu", domain=_kmalloc_domain)
    def kmalloc(self, state: SlubState, size: int, cpu: int) -> int | None:
        """kmalloc(size, GFP_KERNEL) in cpu's task: the address, 0 for NULL, None while in the window."""
        return slub.kmalloc(state, size, cpu, self.window)

    @action("cache", "cpu", domain=_cache_alloc_domain)
    def kmem_cache_alloc(self, state: SlubState, cache: str, cpu: int) -> int | None:
        """kmem_cache_alloc(cache, GFP_KERNEL) in cpu's task."""
        s = state.caches[cache].s
        return slub.slab_alloc_node(state, s, cpu, slub.NUMA_NO_NODE, s.object_size, self.window)

    @action("cache", "node", "cpu", domain=_cache_alloc_node_domain)
    def kmem_cache_alloc_node(self, state: SlubState, cache: str, node: int, cpu: int) -> int | None:
        """kmem_cache_alloc_node(cache, GFP_KERNEL, node) in cpu's task."""
        s = state.caches[cache].s
        return slub.slab_alloc_node(state, s, cpu, node, s.object_size, self.window)

    @action("addr", "cpu", domain=_kfree_domain)
    def kfree(self, state: SlubState, addr: int, cpu: int) -> str | None:
        """kfree(addr) (or kmem_cache_free) in cpu's task: None, or the error that refused it."""
        return slub.kfree(state, addr, cpu, self.window)

    @action("cpu", domain=_cmpxchg_domain)
    def cmpxchg_double(self, state: SlubState, cpu: int) -> int | None:
        """cpu's task resumes at this_cpu_cmpxchg_double: it commits, or redoes the fast path."""
        return slub.resume_fast_path(state, cpu, self.window)

    @action("cpu", domain=_cmpxchg_domain)
    def irq_alloc(self, state: SlubState, cpu: int) -> int | None:
        """An interrupt on cpu allocates from the cache its task's fast path is using."""
        p = state.task[cpu]
        assert p is not None
        s = state.caches[p.cache].s
        return slub.slab_alloc_node(state, s, cpu, slub.NUMA_NO_NODE, s.object_size, window=False)

    @action("addr", "cpu", domain=_irq_kfree_domain)
    def irq_kfree(self, state: SlubState, addr: int, cpu: int) -> str | None:
        """An interrupt on cpu frees an object of the cache its task's fast path is using."""
        return slub.kfree(state, addr, cpu, window=False)

    @action("cache", domain=_create_domain)
    def kmem_cache_create(self, state: SlubState, cache: str) -> None:
        """kmem_cache_create of a configured cache."""
        slub.kmem_cache_create(state, self.specs[cache])

    @action("cache", domain=_shrink_domain)
    def kmem_cache_shrink(self, state: SlubState, cache: str) -> None:
        """kmem_cache_shrink(cache): flush every CPU's slabs, free the empty ones."""
        slub.kmem_cache_shrink(state, state.caches[cache].s)

    @action("cache", domain=_destroy_domain)
    def kmem_cache_destroy(self, state: SlubState, cache: str) -> str | None:
        """kmem_cache_destroy(cache): None, or the error when objects are still live."""
        return slub.kmem_cache_destroy(state, state.caches[cache].s)
