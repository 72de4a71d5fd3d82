"""mm/memory.c and mm/filemap.c: the pages tasks fault in, read and unmap, charged to their
memcg where the kernel charges them.

An anonymous fault (do_anonymous_page) is two steps, as the kernel's is around the page
table lock: the page is allocated and charged first, then under the lock it is mapped and
the charge committed, unless another thread of the same mm mapped the address meanwhile:
then the charge is cancelled and the page freed (the release path). A page-cache read
(add_to_page_cache_lru) charges the reader's memcg; reclaim takes those pages back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from model.cgroup import memcontrol
from model.mm import buddy
from model.mm.mmzone import MIGRATETYPE

if TYPE_CHECKING:
    from model.cgroup.model import CgroupState

VM_FAULT_OOM = 0x0001
MIGRATE_MOVABLE = MIGRATETYPE["MIGRATE_MOVABLE"]


class Mm(NamedTuple):
    """struct mm_struct: its owner (whose memcg it charges) and its page table, as (virtual
    page, pfn) pairs."""

    owner: int
    ptes: tuple[tuple[int, int], ...] = ()


def pte_none(state: CgroupState, mm: int, vaddr: int) -> bool:
    return all(v != vaddr for v, _ in state.mms[mm].ptes)


def do_anonymous_page(state: CgroupState, cpu: int, pid: int, vaddr: int) -> int:
    """The first half: a zeroed movable page, charged (mem_cgroup_try_charge_delay); 0, or
    VM_FAULT_OOM when there is no page or no charge."""
    pfn = buddy.alloc_block(state.mm, 0, MIGRATE_MOVABLE, cpu)
    if pfn is None:
        return VM_FAULT_OOM
    err, charge = memcontrol.mem_cgroup_try_charge(state, state.mm_of[pid], pfn, cpu)
    if charge is None:
        buddy.free_block(state.mm, pfn, 0, cpu)  # oom_free_page
        return VM_FAULT_OOM
    state.pending[pid] = (vaddr, charge)
    return 0


def do_anonymous_page_map(state: CgroupState, cpu: int, pid: int) -> bool:
    """The second half, under the page table lock: map the page and commit the charge, or,
    if the address was mapped meanwhile, release: cancel the charge and free the page.
    Whether the page was mapped."""
    vaddr, charge = state.pending.pop(pid)
    mm = state.mm_of[pid]
    if not pte_none(state, mm, vaddr):
        release(state, charge, cpu)
        return False
    state.mms[mm] = state.mms[mm]._replace(ptes=tuple(sorted((*state.mms[mm].ptes, (vaddr, charge.pfn)))))
    memcontrol.mem_cgroup_commit_charge(state, charge)
    return True


def release(state: CgroupState, charge: memcontrol.Charge, cpu: int) -> None:
    """do_anonymous_page's release path: mem_cgroup_cancel_charge, put_page."""
    memcontrol.mem_cgroup_cancel_charge(state, charge)
    buddy.free_block(state.mm, charge.pfn, 0, cpu)


def add_to_page_cache_lru(state: CgroupState, cpu: int, pid: int, index: int) -> int:
    """A read of a file page not in the page cache: a page, charged like a fault to the
    reader's mm (__add_to_page_cache_locked) and committed, at the LRU's tail. 0, or -ENOMEM."""
    pfn = buddy.alloc_block(state.mm, 0, MIGRATE_MOVABLE, cpu)
    if pfn is None:
        return -memcontrol.ENOMEM
    err, charge = memcontrol.mem_cgroup_try_charge(state, state.mm_of[pid], pfn, cpu)
    if charge is None:
        buddy.free_block(state.mm, pfn, 0, cpu)
        return err
    memcontrol.mem_cgroup_commit_charge(state, charge)
    state.page_cache += ((index, pfn),)
    return 0


def zap_pte(state: CgroupState, mm: int, vaddr: int, cpu: int) -> None:
    """munmap of one page: the pte cleared, the page freed and uncharged."""
    pfn = next(p for v, p in state.mms[mm].ptes if v == vaddr)
    state.mms[mm] = state.mms[mm]._replace(ptes=tuple(e for e in state.mms[mm].ptes if e[0] != vaddr))
    memcontrol.free_page(state, pfn, cpu)


def zap_page_range(state: CgroupState, mm: int, cpu: int) -> None:
    """Every page of mm unmapped and freed (exit_mmap, and the OOM reaper)."""
    for vaddr, _ in state.mms[mm].ptes:
        zap_pte(state, mm, vaddr, cpu)
