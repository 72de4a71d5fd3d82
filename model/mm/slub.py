"""The SLUB allocator (mm/slub.c, Linux 4.x-5.x) over the buddy allocator's page frames.

A slab is a buddy block of order oo_order(s->oo) (or s->min's when that fails), allocated
through model.mm.buddy.alloc_block and returned with free_block: one world of page frames.
Free objects are threaded through a word at s->offset of each object (``state.freeptr``).

The per-CPU fast paths (slab_alloc_node, do_slab_free) read c->tid, then c->freelist and
c->page, and commit with this_cpu_cmpxchg_double on (freelist, tid). Every change of
c->freelist or c->page advances the tid, deactivate_slab and the DEACTIVATE_BYPASS branch
included: the model follows mm/slub.c with commit eeaa345e1285 ("mm/slub: add missing TID
updates on slab deactivation", Linux 5.19, backported to the stable trees), whose absence
the explorer finds as a race (mutant slub.deactivate_bypass_keeps_tid). With the model's
interrupt window, a task-context fast path stops between its reads and its cmpxchg (as
``state.task[cpu]``) and interrupt handlers on that CPU may allocate and free in between;
the tid is what makes the cmpxchg fail after such an interrupt even when the freelist head
looks unchanged (ABA). Everything else runs to completion in one step, as the kernel runs it
with interrupts off (__slab_alloc) or under the page's cmpxchg_double_slab (__slab_free).

Decisions where the model is coarser than the kernel:
- Pages and objects are named by physical address (pfn << PAGE_SHIFT plus the offset).
- A free pointer word is kept only while its object is free: an allocated object's owner
  overwrites it (offset 0) or it is stale; a read of a missing word returns NULL.
- get_any_partial is not modelled (remote_node_defrag_ratio 0): a slab comes from the local
  node's partial list or from the page allocator.
- No debug caches (kmem_cache_debug is false); kfree and kmem_cache_free validate every
  pointer as slub_debug's free_consistency_checks does, before the free path runs, and
  refuse a bad one with slub_debug's message, leaving the state as it was. on_freelist
  looks at the CPU freelist of the slab too, since a non-debug cache keeps one.
- Memcg charging is that of 4.19 (mm/slab.h memcg_charge_slab, memcg_uncharge_slab): a
  per-memcg copy of a SLAB_ACCOUNT cache charges each slab page, 1 << order pages, to its
  memcg through ``state.kmem`` (the memory controller, when the model has one) and the page
  is uncharged from page->mem_cgroup when the slab is freed. A failed charge fails the slab
  allocation. Which copy a task allocates from is the caller's choice (memcg_kmem_get_cache).
- No kasan/kfence hooks, no CONFIG_SLAB_FREELIST_RANDOM/HARDENED.
- The first try of a slab is __GFP_NORETRY, and without direct reclaim when oo > min (as
  allocate_slab sets alloc_gfp); the min-order try is the caller's GFP_KERNEL. __GFP_NORETRY
  matters to the memcg charge only: it may reclaim but not OOM-kill.

Every helper a mutant may replace is a module-level function called through this module's
globals.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from model.hw.memory import PAGE_SHIFT
from model.mm import buddy, slab_common
from model.mm.mmzone import MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from model.mm.slab_common import SLAB_RECLAIM_ACCOUNT, ZERO_SIZE_PTR, KmemCache

if TYPE_CHECKING:
    from model.mm.slab import SlubState

NULL = 0
NUMA_NO_NODE = None
KMALLOC_LARGE = "kmalloc_large"  # the registry's cache name for a kmalloc_large block

# Errors for bad frees, named as slub_debug names them (mm/slub.c free_consistency_checks).
INVALID_POINTER = "Invalid object pointer"
ALREADY_FREE = "Object already free"
NOT_SLAB = "kfree of a page that is neither a slab nor a kmalloc_large block"  # BUG_ON(!PageCompound)
STILL_HAS_OBJECTS = "Slab cache still has objects"  # kmem_cache_destroy


class Slab(NamedTuple):
    """The slab fields of a slab's head struct page."""

    cache: str  # page->slab_cache
    order: int  # compound_order(page)
    objects: int  # page->objects
    inuse: int  # page->inuse: objects not on page->freelist
    frozen: bool  # page->frozen: a CPU owns the slab (c->page or c->partial)
    freelist: int  # page->freelist: the first free object, or NULL


class CpuPartial(NamedTuple):
    """A slab on a CPU's partial list, with the counts put_cpu_partial left in its page."""

    pfn: int
    pages: int  # page->pages: slabs on the list from here to its end
    pobjects: int  # page->pobjects: free objects they had when this one was added


class KmemCacheCpu(NamedTuple):
    """struct kmem_cache_cpu."""

    freelist: int  # the lockless freelist of c->page, or NULL
    page: int | None  # pfn of the slab this CPU allocates from
    partial: tuple[CpuPartial, ...]  # the per-CPU partial list, head first
    tid: int  # transaction id: bumped by every operation on freelist


class KmemCacheNode(NamedTuple):
    """struct kmem_cache_node (with the CONFIG_SLUB_DEBUG counters __kmem_cache_shutdown reads)."""

    partial: tuple[int, ...]  # pfns, list head first
    nr_partial: int
    nr_slabs: int
    total_objects: int


class CacheState(NamedTuple):
    """A kmem_cache: its fixed geometry and its per-CPU and per-node parts."""

    s: KmemCache
    cpu_slab: tuple[KmemCacheCpu, ...]
    node: tuple[KmemCacheNode, ...]


class Pending(NamedTuple):
    """A task-context fast path between its reads and its this_cpu_cmpxchg_double."""

    op: str  # "alloc" or "free"
    cache: str
    tid: int  # the c->tid it read
    object: int  # alloc: the c->freelist it read; free: the object being freed
    next: int  # alloc: get_freepointer_safe(object); free: the c->freelist it read
    page: int  # the c->page it read (alloc) or the slab of the object (free)
    node: int | None  # alloc: the node asked for (NUMA_NO_NODE: None)
    size: int  # alloc: the size asked for, for the registry


DEACTIVATE_TO_HEAD, DEACTIVATE_TO_TAIL = False, True


# Access to the per-CPU and per-node parts: each is an immutable value, replaced on change.


def get_cpu_slab(state: SlubState, s: KmemCache, cpu: int) -> KmemCacheCpu:
    return state.caches[s.name].cpu_slab[cpu]


def set_cpu_slab(state: SlubState, s: KmemCache, cpu: int, **changes: Any) -> KmemCacheCpu:
    cs = state.caches[s.name]
    cpu_slab = list(cs.cpu_slab)
    cpu_slab[cpu] = c = cpu_slab[cpu]._replace(**changes)
    state.caches[s.name] = cs._replace(cpu_slab=tuple(cpu_slab))
    return c


def get_node(state: SlubState, s: KmemCache, nid: int) -> KmemCacheNode:
    return state.caches[s.name].node[nid]


def set_node(state: SlubState, s: KmemCache, nid: int, **changes: Any) -> None:
    cs = state.caches[s.name]
    node = list(cs.node)
    node[nid] = node[nid]._replace(**changes)
    state.caches[s.name] = cs._replace(node=tuple(node))


def set_slab(state: SlubState, pfn: int, **changes: Any) -> Slab:
    state.slabs[pfn] = slab = state.slabs[pfn]._replace(**changes)
    return slab


def page_to_nid(state: SlubState, pfn: int) -> int:
    layout = state.mm.layout
    return layout.zones[layout.zone_of_pfn[pfn]].node_id


def numa_mem_id(state: SlubState, cpu: int) -> int:
    return state.mm.layout.memory.cpu_to_node[cpu]


def page_address(pfn: int) -> int:
    return pfn << PAGE_SHIFT


# Free pointers and transaction ids.


def get_freepointer(state: SlubState, s: KmemCache, obj: int) -> int:
    """mm/slub.c get_freepointer: the word at object + s->offset."""
    return state.freeptr.get(obj + s.offset, NULL)


def get_freepointer_safe(state: SlubState, s: KmemCache, obj: int) -> int:
    """mm/slub.c get_freepointer_safe: the fast path's read of the next free object, which
    may race with the object being allocated (the cmpxchg then fails)."""
    return get_freepointer(state, s, obj)


def set_freepointer(state: SlubState, s: KmemCache, obj: int, fp: int) -> None:
    """mm/slub.c set_freepointer."""
    state.freeptr[obj + s.offset] = fp


def tid_step(state: SlubState) -> int:
    """TID_STEP: roundup_pow_of_two(CONFIG_NR_CPUS) with CONFIG_PREEMPT, so a tid names its CPU."""
    return 1 << (len(state.task) - 1).bit_length()


def init_tid(cpu: int) -> int:
    return cpu


def next_tid(state: SlubState, tid: int) -> int:
    """mm/slub.c next_tid."""
    return tid + tid_step(state)


# The checker's registry of what the allocators handed out.


def hand_out(state: SlubState, addr: int, cache: str, size: int) -> None:
    """Record an object (or kmalloc_large block) given to a caller; its free pointer word
    now belongs to the caller."""
    if cache != KMALLOC_LARGE:
        state.freeptr.pop(addr + state.caches[cache].s.offset, None)
    live = list(state.live)
    bisect.insort(live, (addr, cache, size))
    state.live = tuple(live)


def take_back(state: SlubState, addr: int) -> None:
    """Forget the registry entry of a freed object, if it has one."""
    state.live = tuple(entry for entry in state.live if entry[0] != addr)


# Node partial lists.


def add_partial(state: SlubState, s: KmemCache, pfn: int, tail: bool) -> None:
    """mm/slub.c add_partial (__add_partial): DEACTIVATE_TO_TAIL or to the head."""
    nid = page_to_nid(state, pfn)
    n = get_node(state, s, nid)
    partial = n.partial + (pfn,) if tail else (pfn,) + n.partial
    set_node(state, s, nid, partial=partial, nr_partial=n.nr_partial + 1)


def remove_partial(state: SlubState, s: KmemCache, pfn: int) -> None:
    """mm/slub.c remove_partial."""
    nid = page_to_nid(state, pfn)
    n = get_node(state, s, nid)
    set_node(state, s, nid, partial=tuple(p for p in n.partial if p != pfn), nr_partial=n.nr_partial - 1)


# Slab pages from and back to the buddy allocator.


class MemcgKmem(Protocol):
    """The memory controller's side of kmem accounting (mm/memcontrol.c), in a model that has
    one: it charges and uncharges the pages of slabs."""

    def memcg_kmem_charge_memcg(
        self, pfn: int, order: int, memcg: int, cpu: int, reclaim: bool, noretry: bool
    ) -> int: ...

    def memcg_kmem_uncharge(self, pfn: int, order: int) -> None: ...


def alloc_slab_page(
    state: SlubState, s: KmemCache, order: int, cpu: int, node: int | None, reclaim: bool, noretry: bool
) -> int | None:
    """mm/slub.c alloc_slab_page: alloc_pages, or __alloc_pages_node for a given node; a page
    its memcg refuses to be charged for goes back at once. reclaim and noretry stand for
    __GFP_DIRECT_RECLAIM and __GFP_NORETRY."""
    migratetype = MIGRATE_RECLAIMABLE if SLAB_RECLAIM_ACCOUNT in s.flags else MIGRATE_UNMOVABLE
    pfn = buddy.alloc_block(state.mm, order, migratetype, cpu, node, can_direct_reclaim=reclaim)
    if pfn is not None and memcg_charge_slab(state, s, pfn, order, cpu, reclaim, noretry):
        buddy.free_block(state.mm, pfn, order, cpu)
        return None
    return pfn


def memcg_charge_slab(
    state: SlubState, s: KmemCache, pfn: int, order: int, cpu: int, reclaim: bool, noretry: bool
) -> int:
    """mm/slab.h memcg_charge_slab (4.19): a root cache's page is not charged; a per-memcg
    cache's is charged to its memcg (memcg_kmem_charge_memcg). 0, or -ENOMEM."""
    if s.memcg is None or state.kmem is None:
        return 0
    return state.kmem.memcg_kmem_charge_memcg(pfn, order, s.memcg, cpu, reclaim, noretry)


def memcg_uncharge_slab(state: SlubState, pfn: int, order: int) -> None:
    """mm/slab.h memcg_uncharge_slab (4.19): memcg_kmem_uncharge, which uncharges the memcg
    in page->mem_cgroup, if any."""
    if state.kmem is not None:
        state.kmem.memcg_kmem_uncharge(pfn, order)


def allocate_slab(state: SlubState, s: KmemCache, cpu: int, node: int | None) -> int | None:
    """mm/slub.c allocate_slab: an s->oo block without reclaim, else an s->min block; its objects
    threaded in address order (no CONFIG_SLAB_FREELIST_RANDOM), all on page->freelist, and the
    slab frozen with inuse = objects for the CPU that will take that freelist."""
    order, objects = s.oo
    pfn = alloc_slab_page(state, s, order, cpu, node, reclaim=order <= s.min[0], noretry=True)
    if pfn is None:
        order, objects = s.min
        pfn = alloc_slab_page(state, s, order, cpu, node, reclaim=True, noretry=False)
        if pfn is None:
            return None
    base = page_address(pfn)
    for index in range(objects):
        nxt = s.object_address(pfn, index + 1) if index + 1 < objects else NULL
        set_freepointer(state, s, s.object_address(pfn, index), nxt)
    state.slabs[pfn] = Slab(s.name, order, objects, objects, True, base)
    inc_slabs_node(state, s, page_to_nid(state, pfn), objects)
    return pfn


def new_slab(state: SlubState, s: KmemCache, cpu: int, node: int | None) -> int | None:
    """mm/slub.c new_slab."""
    return allocate_slab(state, s, cpu, node)


def inc_slabs_node(state: SlubState, s: KmemCache, nid: int, objects: int) -> None:
    n = get_node(state, s, nid)
    set_node(state, s, nid, nr_slabs=n.nr_slabs + 1, total_objects=n.total_objects + objects)


def discard_slab(state: SlubState, s: KmemCache, pfn: int, cpu: int) -> None:
    """mm/slub.c discard_slab: dec_slabs_node, then free_slab."""
    nid = page_to_nid(state, pfn)
    n = get_node(state, s, nid)
    objects = state.slabs[pfn].objects
    set_node(state, s, nid, nr_slabs=n.nr_slabs - 1, total_objects=n.total_objects - objects)
    free_slab(state, s, pfn, cpu)


def free_slab(state: SlubState, s: KmemCache, pfn: int, cpu: int) -> None:
    """mm/slub.c __free_slab: __ClearPageSlab, the page uncharged, and the block back to the
    page allocator (__free_pages of compound_order); its free pointer words go with it."""
    slab = state.slabs.pop(pfn)
    for index in range(slab.objects):
        state.freeptr.pop(s.object_address(pfn, index) + s.offset, None)
    memcg_uncharge_slab(state, pfn, slab.order)
    buddy.free_block(state.mm, pfn, slab.order, cpu)


# Freezing and unfreezing.


def acquire_slab(state: SlubState, s: KmemCache, pfn: int, mode: bool) -> tuple[int, int]:
    """mm/slub.c acquire_slab: freeze a node partial slab for this CPU and take it off the
    list. The first slab (mode) gives up its whole freelist; later ones keep theirs for the
    CPU partial list. Returns (the old freelist, the free objects it had)."""
    slab = state.slabs[pfn]
    freelist = slab.freelist
    objects = slab.objects - slab.inuse
    if mode:
        set_slab(state, pfn, inuse=slab.objects, freelist=NULL, frozen=True)
    else:
        set_slab(state, pfn, frozen=True)
    remove_partial(state, s, pfn)
    return freelist, objects


def put_cpu_partial(state: SlubState, s: KmemCache, pfn: int, cpu: int, drain: bool) -> None:
    """mm/slub.c put_cpu_partial: push a frozen slab on the CPU partial list; if drain and the
    list already holds more than s->cpu_partial free objects, unfreeze it to the node first."""
    c = get_cpu_slab(state, s, cpu)
    pages = pobjects = 0
    oldpage = c.partial[0] if c.partial else None
    if oldpage is not None:
        pobjects, pages = oldpage.pobjects, oldpage.pages
        if drain and pobjects > s.cpu_partial:
            unfreeze_partials(state, s, cpu)
            oldpage, pobjects, pages = None, 0, 0
    slab = state.slabs[pfn]
    pages += 1
    pobjects += slab.objects - slab.inuse
    rest = get_cpu_slab(state, s, cpu).partial if oldpage is not None else ()
    set_cpu_slab(state, s, cpu, partial=(CpuPartial(pfn, pages, pobjects), *rest))
    if not s.cpu_partial:
        unfreeze_partials(state, s, cpu)


def unfreeze_partials(state: SlubState, s: KmemCache, cpu: int) -> None:
    """mm/slub.c unfreeze_partials: every slab of the CPU partial list goes to its node's
    partial list, or is discarded when empty and the node already has min_partial slabs."""
    discard: list[int] = []
    while partial := get_cpu_slab(state, s, cpu).partial:
        pfn = partial[0].pfn
        set_cpu_slab(state, s, cpu, partial=partial[1:])
        slab = set_slab(state, pfn, frozen=False)
        if not slab.inuse and get_node(state, s, page_to_nid(state, pfn)).nr_partial >= s.min_partial:
            discard.insert(0, pfn)  # page->next = discard_page: discarded last first
        else:
            add_partial(state, s, pfn, DEACTIVATE_TO_TAIL)
    for pfn in discard:
        discard_slab(state, s, pfn, cpu)


def deactivate_slab(state: SlubState, s: KmemCache, pfn: int, freelist: int, cpu: int) -> None:
    """mm/slub.c deactivate_slab: give the CPU freelist back to the slab, unfreeze it, and put
    it on its node's partial list (to the tail if others freed into it meanwhile), on no
    list when full, or back to the page allocator when empty and the node has min_partial.
    The tid moves on, so that a fast path that read c->page before cannot commit after."""
    slab = state.slabs[pfn]
    tail = DEACTIVATE_TO_TAIL if slab.freelist else DEACTIVATE_TO_HEAD
    # Stage one: all but the last CPU-freelist object back onto page->freelist.
    while freelist and (nextfree := get_freepointer(state, s, freelist)):
        set_freepointer(state, s, freelist, slab.freelist)
        slab = set_slab(state, pfn, freelist=freelist, inuse=slab.inuse - 1)
        freelist = nextfree
    # Stage two: the last one, and unfreeze.
    if freelist:
        set_freepointer(state, s, freelist, slab.freelist)
        slab = set_slab(state, pfn, freelist=freelist, inuse=slab.inuse - 1)
    slab = set_slab(state, pfn, frozen=False)
    if not slab.inuse and get_node(state, s, page_to_nid(state, pfn)).nr_partial >= s.min_partial:
        discard_slab(state, s, pfn, cpu)
    elif slab.freelist:
        add_partial(state, s, pfn, tail)
    c = get_cpu_slab(state, s, cpu)
    set_cpu_slab(state, s, cpu, page=None, freelist=NULL, tid=next_tid(state, c.tid))


def flush_slab(state: SlubState, s: KmemCache, cpu: int) -> None:
    """mm/slub.c flush_slab (deactivate_slab advances the tid)."""
    c = get_cpu_slab(state, s, cpu)
    assert c.page is not None
    deactivate_slab(state, s, c.page, c.freelist, cpu)


def flush_cpu_slab(state: SlubState, s: KmemCache, cpu: int) -> None:
    """mm/slub.c __flush_cpu_slab, run on cpu by flush_all's IPI."""
    if get_cpu_slab(state, s, cpu).page is not None:
        flush_slab(state, s, cpu)
    unfreeze_partials(state, s, cpu)


def flush_all(state: SlubState, s: KmemCache) -> None:
    """mm/slub.c flush_all: on_each_cpu_cond(has_cpu_slab, flush_cpu_slab)."""
    for cpu in range(len(state.task)):
        c = get_cpu_slab(state, s, cpu)
        if c.page is not None or c.partial:
            flush_cpu_slab(state, s, cpu)


# Allocation.


def node_match(state: SlubState, pfn: int, node: int | None) -> bool:
    """mm/slub.c node_match."""
    return node is NUMA_NO_NODE or page_to_nid(state, pfn) == node


def get_freelist(state: SlubState, s: KmemCache, pfn: int) -> int:
    """mm/slub.c get_freelist: take page->freelist for the CPU; with none left the slab
    is unfrozen (full, on no list)."""
    slab = state.slabs[pfn]
    set_slab(state, pfn, freelist=NULL, inuse=slab.objects, frozen=slab.freelist != NULL)
    return slab.freelist


def get_partial_node(state: SlubState, s: KmemCache, nid: int, cpu: int) -> int:
    """mm/slub.c get_partial_node: the first partial slab becomes c->page; more go to the CPU
    partial list until they hold more than cpu_partial / 2 free objects."""
    obj, available = NULL, 0
    for pfn in get_node(state, s, nid).partial:
        t, objects = acquire_slab(state, s, pfn, obj == NULL)
        if not t:
            break
        available += objects
        if not obj:
            set_cpu_slab(state, s, cpu, page=pfn)
            obj = t
        else:
            put_cpu_partial(state, s, pfn, cpu, drain=False)
        if available > s.cpu_partial // 2:  # kmem_cache_has_cpu_partial: no debug caches
            break
    return obj


def get_partial(state: SlubState, s: KmemCache, cpu: int, node: int | None) -> int:
    """mm/slub.c get_partial, without get_any_partial."""
    return get_partial_node(state, s, numa_mem_id(state, cpu) if node is None else node, cpu)


def new_slab_objects(state: SlubState, s: KmemCache, cpu: int, node: int | None) -> int:
    """mm/slub.c new_slab_objects: a node partial slab, else a new one as c->page."""
    freelist = get_partial(state, s, cpu, node)
    if freelist:
        return freelist
    pfn = new_slab(state, s, cpu, node)
    if pfn is None:
        return NULL
    if get_cpu_slab(state, s, cpu).page is not None:
        flush_slab(state, s, cpu)
    freelist = state.slabs[pfn].freelist
    set_slab(state, pfn, freelist=NULL)
    set_cpu_slab(state, s, cpu, page=pfn)
    return freelist


def load_freelist(state: SlubState, s: KmemCache, cpu: int, freelist: int) -> int:
    """The load_freelist label of ___slab_alloc: the rest of the freelist becomes the CPU's
    lockless freelist, and the tid moves on so that an interrupted fast path retries."""
    c = get_cpu_slab(state, s, cpu)
    set_cpu_slab(state, s, cpu, freelist=get_freepointer(state, s, freelist), tid=next_tid(state, c.tid))
    return freelist


def deactivate_bypass(state: SlubState, s: KmemCache, cpu: int) -> None:
    """The DEACTIVATE_BYPASS branch of ___slab_alloc: get_freelist left the full slab unfrozen,
    so the CPU drops it, and the tid moves on: a free that read c->page before must not
    commit onto a lockless freelist with no page behind it."""
    c = get_cpu_slab(state, s, cpu)
    set_cpu_slab(state, s, cpu, page=None, tid=next_tid(state, c.tid))


def slab_alloc_slowpath(state: SlubState, s: KmemCache, cpu: int, node: int | None) -> int:
    """mm/slub.c ___slab_alloc (under __slab_alloc's local_irq_save). Every route to an object
    passes load_freelist, the new-slab one included, so the rest of a new slab's freelist
    becomes c->freelist."""
    page = get_cpu_slab(state, s, cpu).page
    while True:
        if page is not None:  # redo:
            c = get_cpu_slab(state, s, cpu)
            if not node_match(state, page, node):
                deactivate_slab(state, s, page, c.freelist, cpu)
            elif c.freelist:
                return load_freelist(state, s, cpu, c.freelist)
            else:
                freelist = get_freelist(state, s, page)
                if freelist:
                    return load_freelist(state, s, cpu, freelist)
                deactivate_bypass(state, s, cpu)
        # new_slab:
        partial = get_cpu_slab(state, s, cpu).partial
        if partial:
            page = partial[0].pfn
            set_cpu_slab(state, s, cpu, page=page, partial=partial[1:])  # CPU_PARTIAL_ALLOC
            continue
        freelist = new_slab_objects(state, s, cpu, node)
        if not freelist:
            return NULL  # slab_out_of_memory
        return load_freelist(state, s, cpu, freelist)


def slab_alloc_node(
    state: SlubState, s: KmemCache, cpu: int, node: int | None, size: int, window: bool
) -> int | None:
    """mm/slub.c slab_alloc_node: the object, NULL, or None while a task-context fast path
    waits in its interrupt window (window) for this_cpu_cmpxchg_double."""
    c = get_cpu_slab(state, s, cpu)
    tid = c.tid
    obj, page = c.freelist, c.page
    if not obj or page is None or not node_match(state, page, node):
        obj = slab_alloc_slowpath(state, s, cpu, node)
        if obj:
            hand_out(state, obj, s.name, size)
        return obj
    pending = Pending("alloc", s.name, tid, obj, get_freepointer_safe(state, s, obj), page, node, size)
    if window:
        state.task = tuple_set(state.task, cpu, pending)
        return None
    return this_cpu_cmpxchg_double(state, cpu, pending, window)


T = TypeVar("T")


def tuple_set(t: tuple[T, ...], i: int, value: T) -> tuple[T, ...]:
    return (*t[:i], value, *t[i + 1 :])


def resume_fast_path(state: SlubState, cpu: int, window: bool) -> int | None:
    """cpu's task, stopped in its fast path's window, goes on to this_cpu_cmpxchg_double."""
    p = state.task[cpu]
    assert p is not None
    state.task = tuple_set(state.task, cpu, None)
    return this_cpu_cmpxchg_double(state, cpu, p, window)


def this_cpu_cmpxchg_double(state: SlubState, cpu: int, p: Pending, window: bool) -> int | None:
    """The fast paths' this_cpu_cmpxchg_double(freelist, tid): commit if neither changed since
    p read them, else redo the fast path from its first read."""
    s = state.caches[p.cache].s
    c = get_cpu_slab(state, s, cpu)
    if p.op == "alloc":
        if (c.freelist, c.tid) == (p.object, p.tid):
            set_cpu_slab(state, s, cpu, freelist=p.next, tid=next_tid(state, p.tid))
            hand_out(state, p.object, s.name, p.size)
            return p.object
        return slab_alloc_node(state, s, cpu, p.node, p.size, window)
    if (c.freelist, c.tid) == (p.next, p.tid):
        set_cpu_slab(state, s, cpu, freelist=p.object, tid=next_tid(state, p.tid))
        take_back(state, p.object)
        return None
    do_slab_free(state, s, p.page, p.object, cpu, window)
    return None


# Freeing.


def slab_free_slowpath(state: SlubState, s: KmemCache, pfn: int, obj: int, cpu: int) -> None:
    """mm/slub.c __slab_free: onto page->freelist of a slab that is not this CPU's. A full
    slab that gets a free object is frozen onto this CPU's partial list; a slab that empties
    is discarded once its node has min_partial partial slabs."""
    slab = state.slabs[pfn]
    prior = slab.freelist
    set_freepointer(state, s, obj, prior)
    was_frozen = slab.frozen
    inuse = slab.inuse - 1
    frozen = was_frozen
    list_locked = False
    if (not inuse or not prior) and not was_frozen:
        if not prior:  # kmem_cache_has_cpu_partial: defer the list move, freeze instead
            frozen = True
        else:
            list_locked = True
    set_slab(state, pfn, freelist=obj, inuse=inuse, frozen=frozen)
    if not list_locked:
        if not was_frozen and frozen:
            put_cpu_partial(state, s, pfn, cpu, drain=True)
        return
    if not inuse and get_node(state, s, page_to_nid(state, pfn)).nr_partial >= s.min_partial:
        remove_partial(state, s, pfn)  # prior was set: the slab is on the partial list
        discard_slab(state, s, pfn, cpu)


def do_slab_free(state: SlubState, s: KmemCache, pfn: int, obj: int, cpu: int, window: bool) -> None:
    """mm/slub.c do_slab_free: onto the lockless freelist when the slab is this CPU's (a fast
    path with its interrupt window), else __slab_free."""
    c = get_cpu_slab(state, s, cpu)
    tid = c.tid
    if pfn == c.page:
        freelist = c.freelist
        set_freepointer(state, s, obj, freelist)
        pending = Pending("free", s.name, tid, obj, freelist, pfn, None, 0)
        if window:
            state.task = tuple_set(state.task, cpu, pending)
        else:
            this_cpu_cmpxchg_double(state, cpu, pending, window)
        return
    slab_free_slowpath(state, s, pfn, obj, cpu)
    take_back(state, obj)


def compound_head(state: SlubState, pfn: int) -> tuple[int, int, str] | None:
    """virt_to_head_page: (head pfn, order, owner) of the slab or kmalloc_large block holding
    pfn, the owner being the slab's cache or KMALLOC_LARGE; None for any other page."""
    for order in range(state.mm.layout.MAX_ORDER):
        head = pfn & ~((1 << order) - 1)
        slab = state.slabs.get(head)
        if slab is not None and pfn < head + (1 << slab.order):
            return head, slab.order, slab.cache
    for addr, cache, size in state.live:
        if cache == KMALLOC_LARGE:
            head, order = addr >> PAGE_SHIFT, slab_common.get_order(size)
            if head <= pfn < head + (1 << order):
                return head, order, cache
    return None


def check_valid_pointer(state: SlubState, s: KmemCache, pfn: int, obj: int) -> bool:
    """mm/slub.c check_valid_pointer: obj is an object boundary of the slab at pfn."""
    base = page_address(pfn)
    slab = state.slabs[pfn]
    return base <= obj < base + slab.objects * s.size and not (obj - base) % s.size


def on_freelist(state: SlubState, s: KmemCache, pfn: int, obj: int) -> bool:
    """mm/slub.c on_freelist: obj is on the slab's freelist, or on the lockless freelist of a
    CPU whose c->page it is; a walk stops after page->objects steps, as the kernel's does."""
    heads = [state.slabs[pfn].freelist]
    heads += [c.freelist for c in state.caches[s.name].cpu_slab if c.page == pfn]
    for fp in heads:
        for _ in range(state.slabs[pfn].objects):
            if not fp:
                break
            if fp == obj:
                return True
            fp = get_freepointer(state, s, fp)
    return False


def free_consistency_checks(state: SlubState, s: KmemCache, pfn: int, obj: int) -> str | None:
    """mm/slub.c free_consistency_checks (slub_debug=F): the error to report, or None."""
    if not check_valid_pointer(state, s, pfn, obj):
        return f"{INVALID_POINTER} {obj:#x}"
    pending = any(p is not None and p.op == "free" and p.object == obj for p in state.task)
    if pending or on_freelist(state, s, pfn, obj):
        return ALREADY_FREE
    return None


def kfree(state: SlubState, addr: int, cpu: int, window: bool) -> str | None:
    """mm/slub.c kfree: NULL and ZERO_SIZE_PTR are ignored; a kmalloc_large block goes back to
    the page allocator; a slab object is checked, then freed through slab_free. Returns the
    error for a bad pointer, which is refused."""
    if addr in (NULL, ZERO_SIZE_PTR):  # ZERO_OR_NULL_PTR
        return None
    head = compound_head(state, addr >> PAGE_SHIFT)
    if head is None or (head[2] == KMALLOC_LARGE and addr != page_address(head[0])):
        return f"{NOT_SLAB}: {addr:#x}"
    pfn, order, cache = head
    if cache == KMALLOC_LARGE:
        take_back(state, addr)
        buddy.free_block(state.mm, pfn, order, cpu)
        return None
    s = state.caches[cache].s
    error = free_consistency_checks(state, s, pfn, addr)
    if error:
        return f"{s.name}: {error}"
    do_slab_free(state, s, pfn, addr, cpu, window)
    return None


# kmalloc.


def kmalloc_large(state: SlubState, size: int, cpu: int) -> int:
    """mm/slab_common.c kmalloc_order: a compound block straight from the page allocator."""
    order = slab_common.get_order(size)
    if order >= state.mm.layout.MAX_ORDER:
        return NULL  # the page allocator WARNs and fails orders >= MAX_ORDER
    pfn = buddy.alloc_block(state.mm, order, MIGRATE_UNMOVABLE, cpu)
    if pfn is None:
        return NULL
    hand_out(state, page_address(pfn), KMALLOC_LARGE, size)
    return page_address(pfn)


def kmalloc(state: SlubState, size: int, cpu: int, window: bool) -> int | None:
    """mm/slub.c __kmalloc: kmalloc_large above KMALLOC_MAX_CACHE_SIZE, ZERO_SIZE_PTR for 0,
    else slab_alloc from the cache kmalloc_slab picks."""
    if size > slab_common.KMALLOC_MAX_CACHE_SIZE:
        return kmalloc_large(state, size, cpu)
    index = slab_common.kmalloc_slab(size)
    if index is None:
        return ZERO_SIZE_PTR
    s = state.caches[slab_common.kmalloc_name(index)].s
    return slab_alloc_node(state, s, cpu, NUMA_NO_NODE, size, window)


# Cache creation, shrinking and destruction.


def kmem_cache_create(state: SlubState, s: KmemCache) -> None:
    """mm/slab_common.c create_cache with mm/slub.c init_kmem_cache_nodes and
    init_kmem_cache_cpus (tid = init_tid(cpu))."""
    nr_nodes = len(state.mm.layout.nodes)
    state.caches[s.name] = CacheState(
        s,
        tuple(KmemCacheCpu(NULL, None, (), init_tid(cpu)) for cpu in range(len(state.task))),
        (KmemCacheNode((), 0, 0, 0),) * nr_nodes,
    )


SHRINK_PROMOTE_MAX = 32


def kmem_cache_shrink(state: SlubState, s: KmemCache) -> None:
    """mm/slub.c __kmem_cache_shrink (4.x-5.x): flush every CPU, discard the empty partial slabs
    and sort the rest, fullest first."""
    flush_all(state, s)
    for nid in range(len(state.caches[s.name].node)):
        n = get_node(state, s, nid)
        discard: list[int] = []
        promote: list[list[int]] = [[] for _ in range(SHRINK_PROMOTE_MAX)]
        rest = []
        for pfn in n.partial:
            slab = state.slabs[pfn]
            free = slab.objects - slab.inuse
            if free == slab.objects:
                discard.insert(0, pfn)  # list_move: to the head
            elif free <= SHRINK_PROMOTE_MAX:
                promote[free - 1].insert(0, pfn)
            else:
                rest.append(pfn)
        partial = [pfn for bucket in promote for pfn in bucket] + rest
        set_node(state, s, nid, partial=tuple(partial), nr_partial=len(partial))
        for pfn in discard:
            discard_slab(state, s, pfn, 0)


def free_partial(state: SlubState, s: KmemCache, nid: int) -> None:
    """mm/slub.c free_partial (4.8+): discard the node's empty partial slabs, the last listed
    first (the others are reported as "Objects remaining on __kmem_cache_shutdown()")."""
    discard: list[int] = []
    for pfn in get_node(state, s, nid).partial:
        if not state.slabs[pfn].inuse:
            remove_partial(state, s, pfn)
            discard.insert(0, pfn)  # list_add onto the discard list
    for pfn in discard:
        discard_slab(state, s, pfn, 0)


def kmem_cache_destroy(state: SlubState, s: KmemCache) -> str | None:
    """mm/slab_common.c kmem_cache_destroy -> shutdown_cache -> __kmem_cache_shutdown: flush
    every CPU, then node by node free the empty slabs; the first node with slabs left stops
    it, and the cache stays."""
    flush_all(state, s)
    for nid in range(len(state.caches[s.name].node)):
        free_partial(state, s, nid)
        n = get_node(state, s, nid)
        if n.nr_partial or n.nr_slabs:
            return f"kmem_cache_destroy {s.name}: {STILL_HAS_OBJECTS}"
    del state.caches[s.name]
    return None
