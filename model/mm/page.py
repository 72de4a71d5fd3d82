"""struct page, as much of it as the page allocator reads and writes.

The struct page array (the x86-64 vmemmap, indexed by pfn) is kept sparsely: each field
maps the pfns where it is nonzero, so a clone copies a few small containers however large
memory is, and an invariant compares whole fields against the free lists at C speed.

- ``buddy``: the pfns with PG_buddy set (mapped to True), i.e. the heads of free blocks on
  a free_area list (a page_type since 4.18, a _mapcount value before);
- ``private``: page_private(), which holds a free block's order on its head page;
- ``refcount``: page->_refcount of the pages the allocator manages: 1 on the head of an
  allocated block, 0 (absent) on free pages. PageReserved pages keep the reference
  init_page_count gave them at boot and are left out.

The pageblock migratetype (the pageblock_flags bitmap) is kept per pageblock beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class PageFrames:
    """The struct page array: PageBuddy, page_private and _refcount, nonzero entries only."""

    buddy: dict[int, bool] = field(default_factory=dict)
    private: dict[int, int] = field(default_factory=dict)
    refcount: dict[int, int] = field(default_factory=dict)

    def clone(self) -> PageFrames:
        return PageFrames(dict(self.buddy), dict(self.private), dict(self.refcount))


def PageBuddy(mem_map: PageFrames, pfn: int) -> bool:
    """include/linux/page-flags.h PageBuddy."""
    return pfn in mem_map.buddy


def page_order(mem_map: PageFrames, pfn: int) -> int:
    """mm/internal.h page_order (buddy_order since 5.10): the order of a PageBuddy page."""
    return mem_map.private.get(pfn, 0)


def set_page_private(mem_map: PageFrames, pfn: int, value: int) -> None:
    """include/linux/mm_types.h set_page_private."""
    if value:
        mem_map.private[pfn] = value
    else:
        mem_map.private.pop(pfn, None)


def set_buddy_order(mem_map: PageFrames, pfn: int, order: int) -> None:
    """mm/page_alloc.c set_page_order (set_buddy_order since 5.10): private = order, PG_buddy set."""
    set_page_private(mem_map, pfn, order)
    mem_map.buddy[pfn] = True


def rmv_page_order(mem_map: PageFrames, pfn: int) -> None:
    """mm/page_alloc.c rmv_page_order: PG_buddy cleared, private = 0."""
    mem_map.buddy.pop(pfn, None)
    set_page_private(mem_map, pfn, 0)


def page_ref_count(mem_map: PageFrames, pfn: int) -> int:
    """include/linux/page_ref.h page_ref_count."""
    return mem_map.refcount.get(pfn, 0)


def set_page_refcounted(mem_map: PageFrames, pfn: int) -> None:
    """mm/internal.h set_page_refcounted: the page handed out holds one reference."""
    mem_map.refcount[pfn] = 1


def put_page_testzero(mem_map: PageFrames, pfn: int) -> bool:
    """include/linux/mm.h put_page_testzero: drop a reference, true when it was the last."""
    count = mem_map.refcount.get(pfn, 0) - 1
    if count:
        mem_map.refcount[pfn] = count
    else:
        mem_map.refcount.pop(pfn, None)
    return count == 0


def get_pfnblock_migratetype(pageblock_migratetype: list[int], pfn: int, pageblock_order: int) -> int:
    """mm/page_alloc.c get_pfnblock_migratetype: the migratetype of pfn's pageblock."""
    return pageblock_migratetype[pfn >> pageblock_order]


def set_pageblock_migratetype(
    pageblock_migratetype: list[int], pfn: int, pageblock_order: int, migratetype: int
) -> None:
    """mm/page_alloc.c set_pageblock_migratetype."""
    pageblock_migratetype[pfn >> pageblock_order] = migratetype
