"""Mutants of SLUB and kmalloc: each replaces one small helper of model.mm.slub (or of
model.mm.slab_common) with a plausible kernel bug and names the invariant that must catch it.

Replacements that change part of a helper's effect call the original, taken here at import
time, so that the bug stays one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from checkers.mutants import mutant, slub_prove  # noqa: F401  (registers the prove mutants)
from model.mm import page_alloc, slab_common, slub

if TYPE_CHECKING:
    from model.mm.slab import SlubState
    from model.mm.slab_common import KmemCache

SLUB = "model.mm.slub"
SLAB_COMMON = "model.mm.slab_common"

_acquire_slab = slub.acquire_slab
_put_cpu_partial = slub.put_cpu_partial
_get_freelist = slub.get_freelist


def get_freepointer_safe_object(state: SlubState, s: KmemCache, obj: int) -> int:
    """The fast path commits object instead of next_object: c->freelist keeps the object it hands out."""
    return obj


def acquire_slab_keeps_partial(state: SlubState, s: KmemCache, pfn: int, mode: bool) -> tuple[int, int]:
    """acquire_slab forgets remove_partial: the frozen slab stays on the node partial list."""
    nid = slub.page_to_nid(state, pfn)
    n = slub.get_node(state, s, nid)
    taken = _acquire_slab(state, s, pfn, mode)
    slub.set_node(state, s, nid, partial=n.partial, nr_partial=n.nr_partial)
    return taken


def kmalloc_slab_off_by_one(size: int) -> int | None:
    """kmalloc_slab uses fls(size - 1) - 1 above 192: a size gets the class below the one that fits."""
    if size <= 192:
        return slab_common.size_index[(size - 1) // 8] if size else None
    return (size - 1).bit_length() - 1


def next_tid_unchanged(state: SlubState, tid: int) -> int:
    """next_tid returns tid: an interrupt between the fast path's reads and its cmpxchg goes unnoticed."""
    return tid


def load_freelist_keeps_tid(state: SlubState, s: KmemCache, cpu: int, freelist: int) -> int:
    """load_freelist drops c->tid = next_tid(c->tid): the slow path refills c->freelist under an old tid."""
    slub.set_cpu_slab(state, s, cpu, freelist=slub.get_freepointer(state, s, freelist))
    return freelist


def deactivate_bypass_keeps_tid(state: SlubState, s: KmemCache, cpu: int) -> None:
    """DEACTIVATE_BYPASS drops c->page without next_tid, as before commit eeaa345e1285 (the race Jann Horn found)."""
    slub.set_cpu_slab(state, s, cpu, page=None)


def put_cpu_partial_not_on_free(state: SlubState, s: KmemCache, pfn: int, cpu: int, drain: bool) -> None:
    """__slab_free freezes a previously full slab but never calls put_cpu_partial: it is on no list."""
    if not drain:
        _put_cpu_partial(state, s, pfn, cpu, drain)


def on_freelist_never(state: SlubState, s: KmemCache, pfn: int, obj: int) -> bool:
    """free_consistency_checks misses a double free: on_freelist never finds the object."""
    return False


def check_valid_pointer_always(state: SlubState, s: KmemCache, pfn: int, obj: int) -> bool:
    """check_valid_pointer accepts any pointer into the slab, not only object boundaries."""
    return True


def get_freelist_keeps_inuse(state: SlubState, s: KmemCache, pfn: int) -> int:
    """get_freelist takes page->freelist but leaves page->inuse as it was, not page->objects."""
    inuse = state.slabs[pfn].inuse
    freelist = _get_freelist(state, s, pfn)
    slub.set_slab(state, pfn, inuse=inuse)
    return freelist


def free_slab_leaks(state: SlubState, s: KmemCache, pfn: int, cpu: int) -> None:
    """__free_slab clears PageSlab but never calls __free_pages: the slab's pages leak."""
    del state.slabs[pfn]


def free_slab_order_zero(state: SlubState, s: KmemCache, pfn: int, cpu: int) -> None:
    """__free_slab calls __free_pages(page, 0) on a compound slab: its tail pages are lost."""
    slab = state.slabs.pop(pfn)
    state.mm.allocated = tuple(b for b in state.mm.allocated if b != (pfn, slab.order))
    page_alloc.free_pages(state.mm, pfn, 0, cpu)


def _mutant(
    name: str, breaks: str, engine: str, helper: str, fn: Callable[..., Any], module: str = SLUB
) -> None:
    mutant(
        f"slub.{name}", model="slub", breaks=f"slub.{breaks}", engine=engine, patches=((module, helper, fn),)
    )


# The explorer's small machine has two-object slabs, where slabs fill and empty within a few
# steps; the stateful engine's large one has the kernel's slab sizes and many caches.
_mutant(
    "fastpath_commits_object",
    "no_double_alloc",
    "explore",
    "get_freepointer_safe",
    get_freepointer_safe_object,
)
_mutant("acquire_slab_keeps_partial", "node_partial", "explore", "acquire_slab", acquire_slab_keeps_partial)
_mutant(
    "kmalloc_index_off_by_one",
    "kmalloc_class",
    "stateful",
    "kmalloc_slab",
    kmalloc_slab_off_by_one,
    SLAB_COMMON,
)
_mutant("tid_not_advanced", "freelist", "explore", "next_tid", next_tid_unchanged)
_mutant("deactivate_bypass_keeps_tid", "freelist", "explore", "deactivate_bypass", deactivate_bypass_keeps_tid)
_mutant("load_freelist_keeps_tid", "tid", "stateful", "load_freelist", load_freelist_keeps_tid)
_mutant("slab_free_no_cpu_partial", "frozen", "explore", "put_cpu_partial", put_cpu_partial_not_on_free)
_mutant("double_free_undetected", "freelist", "stateful", "on_freelist", on_freelist_never)
_mutant(
    "interior_pointer_freed",
    "bad_free_refused",
    "stateful",
    "check_valid_pointer",
    check_valid_pointer_always,
)
_mutant("get_freelist_keeps_inuse", "conservation", "explore", "get_freelist", get_freelist_keeps_inuse)
_mutant("free_slab_leaks", "slab_pages", "stateful", "free_slab", free_slab_leaks)
_mutant("free_slab_order_zero", "buddy", "stateful", "free_slab", free_slab_order_zero)
