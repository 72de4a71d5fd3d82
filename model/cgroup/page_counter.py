"""mm/page_counter.c: the hierarchical page counters of the memory controller (4.x-5.x).

A counter is charged together with every ancestor's. A charge that would take any level
beyond its max is undone at the levels below it and fails, naming the level that refused
(for reclaim to work on). The watermark is the highest usage seen since it was last reset.
"""

from __future__ import annotations

from typing import NamedTuple

PAGE_COUNTER_MAX = (1 << 63) // 4096  # LONG_MAX / PAGE_SIZE: "max" means no limit
EBUSY = 16


class PageCounter(NamedTuple):
    usage: int = 0
    max: int = PAGE_COUNTER_MAX
    watermark: int = 0
    failcnt: int = 0


Counters = dict[int, PageCounter]  # by cgroup id


def page_counter_try_charge(counters: Counters, chain: tuple[int, ...], nr_pages: int) -> int | None:
    """Charge nr_pages at every level of chain (the counter, then its ancestors); None on
    success, else the level whose max refused it, with failcnt counted there and the levels
    below it uncharged again (their raised watermarks stay, as the kernel's do)."""
    for i, cg in enumerate(chain):
        c = counters[cg]
        new = c.usage + nr_pages
        if new > c.max:
            counters[cg] = c._replace(failcnt=c.failcnt + 1)
            for below in chain[:i]:
                page_counter_cancel(counters, below, nr_pages)
            return cg
        counters[cg] = c._replace(usage=new, watermark=max(c.watermark, new))
    return None


def page_counter_cancel(counters: Counters, cg: int, nr_pages: int) -> None:
    c = counters[cg]
    counters[cg] = c._replace(usage=c.usage - nr_pages)


def page_counter_uncharge(counters: Counters, chain: tuple[int, ...], nr_pages: int) -> None:
    for cg in chain:
        page_counter_cancel(counters, cg, nr_pages)


def page_counter_set_max(counters: Counters, cg: int, nr_pages: int) -> int:
    """A new max, refused with -EBUSY while usage is above it."""
    c = counters[cg]
    if c.usage > nr_pages:
        return -EBUSY
    counters[cg] = c._replace(max=nr_pages)
    return 0


def page_counter_reset_watermark(counters: Counters, cg: int) -> None:
    counters[cg] = counters[cg]._replace(watermark=counters[cg].usage)


def page_counter_memparse(buf: str, max_string: str) -> int | None:
    """The pages a limit file's value asks for: max_string ("-1") for no limit, else bytes
    (memparse: a K, M or G suffix allowed) rounded down to pages; None for anything else."""
    if buf == max_string:
        return PAGE_COUNTER_MAX
    shift = {"K": 10, "M": 20, "G": 30}.get(buf[-1:].upper(), 0)
    digits = buf[:-1] if shift else buf
    if not digits.isdigit():
        return None
    return min((int(digits) << shift) // 4096, PAGE_COUNTER_MAX)
