"""The x86-64 MMU: 4-level page tables held in page frames, and a per-CPU TLB.

Sources: arch/x86/include/asm/pgtable_types.h (the entry bits, _PAGE_TABLE),
arch/x86/include/asm/pgtable_64_types.h (PGDIR_SHIFT 39, PUD_SHIFT 30, PMD_SHIFT 21,
PTRS_PER_* 512), mm/memory.c (__pud_alloc, __pmd_alloc, __pte_alloc, free_pgd_range),
arch/x86/mm/pgtable.c (pgd_alloc, pgd_free), arch/x86/mm/tlb.c (switch_mm_irqs_off,
flush_tlb_mm_range), arch/x86/include/asm/trap_pf.h (the page-fault error code), and the
Intel SDM vol. 3 sections 4.6 (access rights) and 4.10 (TLBs).

Paging is 4-level as on x86-64 without LA57: the P4D level is folded into the PGD
(pgtable-nop4d.h), so a walk is PGD -> PUD -> PMD -> PTE. Only the canonical lower half
[0, 2^47) exists here: user address spaces, not the kernel's upper half. No huge pages
(_PAGE_PSE), no global pages, no PCID. CR0.WP=1; SMEP/SMAP are not modelled.

Representation: PageTables maps every table page's pfn to its non-empty entries as a tuple
of (index, pfn, flags) sorted by index. The tuples are immutable and the dict is copied on
write (never mutated after construction), so a state holding PageTables clones by sharing
it (O(1)); an update copies the dict once (O(number of tables)) plus the at most four tables
it touches (O(512) each), and a lookup is a bisect per level.

The hardware does not set _PAGE_ACCESSED/_PAGE_DIRTY here (a translation leaves the page
tables as they were); software sets them in the flags it installs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from typing import NamedTuple

from model.hw.memory import PAGE_SHIFT

PAGE_SIZE = 1 << PAGE_SHIFT
PTRS_PER_TABLE = 512  # PTRS_PER_PGD = PTRS_PER_PUD = PTRS_PER_PMD = PTRS_PER_PTE
LEVEL_SHIFTS = (39, 30, 21, 12)  # PGDIR_SHIFT, PUD_SHIFT, PMD_SHIFT, PAGE_SHIFT
LEVEL_NAMES = ("pgd", "pud", "pmd", "pte")
TASK_SIZE_TOP = 1 << 47  # __VIRTUAL_MASK_SHIFT 47: end of the canonical lower half

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
_PAGE_NX = 1 << 63
# pgd/pud/pmd_populate for user tables, and the kernel's own (no _PAGE_USER)
_PAGE_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
_KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
# The bits of an entry that are not the physical address: 0-11 and 52-63
_PAGE_FLAGS_MASK = 0xFFF | (0xFFF << 52)

# Page-fault error code bits (enum x86_pf_error_code)
X86_PF_PROT = 1 << 0  # 0: no present page; 1: protection violation on a present page
X86_PF_WRITE = 1 << 1
X86_PF_USER = 1 << 2

Entry = tuple[int, int, int]  # (index, pfn, flags)
Table = tuple[Entry, ...]  # non-empty entries, sorted by index


class PageTables(NamedTuple):
    """Every page-table page by pfn, with its non-empty entries. Never mutated in place."""

    tables: dict[int, Table]

    def fingerprint(self) -> Hashable:
        return tuple(sorted(self.tables.items()))


EMPTY_PAGE_TABLES = PageTables({})


class PageFault(NamedTuple):
    """The #PF a translation raised, with its error code (X86_PF_* bits)."""

    error_code: int


class Tlb(NamedTuple):
    """One CPU's TLB: translations cached from the address space whose PGD is in CR3.

    Entries map a virtual page number to (pfn, flags), the flags being the effective rights
    of the walk that filled it (what the SDM says a TLB entry holds). Nothing is evicted on
    its own: an entry lives until a flush, the longest a real TLB may keep one.
    """

    pgd: int | None  # CR3's PGD pfn (None: nothing loaded yet)
    entries: dict[int, tuple[int, int]]  # vpn -> (pfn, effective flags); copied on write

    def fingerprint(self) -> Hashable:
        return (self.pgd, tuple(sorted(self.entries.items())))


EMPTY_TLB = Tlb(None, {})


# ---- argument checks at the boundary


def _check_vaddr(vaddr: int, what: str = "vaddr") -> None:
    if not isinstance(vaddr, int) or not 0 <= vaddr < TASK_SIZE_TOP:
        raise ValueError(
            f"{what} {vaddr!r} is not in the 48-bit canonical lower half [0, {TASK_SIZE_TOP:#x})"
        )


def _check_page(vaddr: int, what: str = "vaddr") -> None:
    _check_vaddr(vaddr, what)
    if vaddr & (PAGE_SIZE - 1):
        raise ValueError(f"{what} {vaddr:#x} is not page aligned")


def _check_range(start: int, end: int) -> None:
    for what, addr in (("start", start), ("end", end)):
        if not isinstance(addr, int) or not 0 <= addr <= TASK_SIZE_TOP or addr & (PAGE_SIZE - 1):
            raise ValueError(f"{what} {addr!r} is not a page boundary in [0, {TASK_SIZE_TOP:#x}]")
    if start > end:
        raise ValueError(f"range [{start:#x}, {end:#x}) ends before it starts")


def _check_pfn(pfn: int) -> None:
    if not isinstance(pfn, int) or pfn < 0 or pfn >= 1 << 40:  # 52-bit physical addresses
        raise ValueError(f"pfn {pfn!r} is not a physical page frame number")


def _check_flags(flags: int) -> None:
    if not isinstance(flags, int) or flags < 0 or flags & ~_PAGE_FLAGS_MASK:
        raise ValueError(f"flags {flags!r} are not entry bits (0-11, 52-63)")


def _table(pt: PageTables, pfn: int) -> Table:
    try:
        return pt.tables[pfn]
    except KeyError:
        raise ValueError(f"pfn {pfn} is not a page-table page") from None


# ---- one table


def _lookup(table: Table, index: int) -> Entry | None:
    i = bisect.bisect_left(table, (index,))
    if i < len(table) and table[i][0] == index:
        return table[i]
    return None


def _table_set(table: Table, index: int, pfn: int, flags: int) -> Table:
    i = bisect.bisect_left(table, (index,))
    end = i + 1 if i < len(table) and table[i][0] == index else i
    return (*table[:i], (index, pfn, flags), *table[end:])


def _table_del(table: Table, index: int) -> Table:
    i = bisect.bisect_left(table, (index,))
    if i < len(table) and table[i][0] == index:
        return table[:i] + table[i + 1 :]
    return table


# ---- indexes and walks


def _index(vaddr: int, level: int) -> int:
    return (vaddr >> LEVEL_SHIFTS[level]) & (PTRS_PER_TABLE - 1)


def pgd_index(vaddr: int) -> int:
    _check_vaddr(vaddr)
    return _index(vaddr, 0)


def pud_index(vaddr: int) -> int:
    _check_vaddr(vaddr)
    return _index(vaddr, 1)


def pmd_index(vaddr: int) -> int:
    _check_vaddr(vaddr)
    return _index(vaddr, 2)


def pte_index(vaddr: int) -> int:
    _check_vaddr(vaddr)
    return _index(vaddr, 3)


def walk_path(pt: PageTables, pgd: int, vaddr: int) -> list[tuple[int, int]]:
    """The (pfn, flags) entries a hardware walk reads, PGD first, up to the first none or
    non-present one: four present entries mean vaddr is mapped."""
    _check_vaddr(vaddr)
    table = _table(pt, pgd)
    path = []
    for level in range(4):
        entry = _lookup(table, _index(vaddr, level))
        if entry is None:
            break
        path.append((entry[1], entry[2]))
        if not entry[2] & _PAGE_PRESENT:
            break
        if level < 3:
            table = _table(pt, entry[1])
    return path


def walk(pt: PageTables, pgd: int, vaddr: int) -> tuple[int, int] | None:
    """The leaf PTE (pfn, flags) of vaddr if every upper level is present, else None. The PTE
    itself may be non-present (pte_none is None; a non-present PTE is returned as it is)."""
    path = walk_path(pt, pgd, vaddr)
    if len(path) == 4:
        return path[3]
    return None


def effective_flags(path: list[tuple[int, int]]) -> int:
    """The leaf's flags with the rights the whole walk grants: RW and USER only if every
    level has them, NX if any level has it (SDM 4.6.1)."""
    leaf = path[-1][1]
    allowed = _PAGE_RW | _PAGE_USER
    nx = 0
    for _, flags in path:
        allowed &= flags
        nx |= flags & _PAGE_NX
    return (leaf & ~(_PAGE_RW | _PAGE_USER)) | allowed | nx


def access_error(flags: int, write: bool, user: bool) -> int | None:
    """The #PF error code of an access through these effective flags, None if it is allowed.
    CR0.WP=1: the kernel cannot write a read-only page either."""
    code = (X86_PF_WRITE if write else 0) | (X86_PF_USER if user else 0)
    if not flags & _PAGE_PRESENT:
        return code
    if (user and not flags & _PAGE_USER) or (write and not flags & _PAGE_RW):
        return code | X86_PF_PROT
    return None


# ---- updates


def pgd_alloc(pt: PageTables, alloc_table: Callable[[], int | None]) -> tuple[PageTables, int] | None:
    """pgd_alloc: an empty PGD from alloc_table(), or None (-ENOMEM) with pt unchanged."""
    pgd = alloc_table()
    if pgd is None:
        return None
    _check_new_table(pt, pgd)
    return PageTables({**pt.tables, pgd: ()}), pgd


def _check_new_table(pt: PageTables, pfn: int) -> None:
    _check_pfn(pfn)
    if pfn in pt.tables:
        raise ValueError(f"alloc_table returned pfn {pfn}, already a page-table page")


def set_pte_at(
    pt: PageTables,
    pgd: int,
    vaddr: int,
    pfn: int,
    flags: int,
    alloc_table: Callable[[], int | None],
    table_flags: int = _PAGE_TABLE,
) -> PageTables | None:
    """Install the PTE (pfn, flags) for vaddr, allocating missing PUD, PMD and PTE tables
    (__pud_alloc, __pmd_alloc, __pte_alloc) from alloc_table() with table_flags entries.
    A PTE without _PAGE_PRESENT is not walked by the MMU: the kernel keeps a swap entry
    there (pfn is then the swap slot).

    None if alloc_table() returns None (-ENOMEM): pt is left as it was, and any pfns this
    call already got from alloc_table are not in it, so the caller frees them (unlike the
    kernel, which keeps the tables it populated before the failure).
    """
    _check_pfn(pfn)
    _check_flags(flags)
    got = _alloc_levels(pt, pgd, vaddr, alloc_table, table_flags)
    if got is None:
        return None
    new, table_pfn, table = got
    new[table_pfn] = _table_set(table, _index(vaddr, 3), pfn, flags)
    return PageTables({**pt.tables, **new})


def pte_alloc(
    pt: PageTables,
    pgd: int,
    vaddr: int,
    alloc_table: Callable[[], int | None],
    table_flags: int = _PAGE_TABLE,
) -> PageTables | None:
    """The upper levels and the PTE table of vaddr made present as set_pte_at makes them,
    the PTE itself left as it is (__handle_mm_fault's pud_alloc and pmd_alloc, then
    pte_alloc). None as set_pte_at."""
    got = _alloc_levels(pt, pgd, vaddr, alloc_table, table_flags)
    if got is None:
        return None
    return PageTables({**pt.tables, **got[0]}) if got[0] else pt


def _alloc_levels(
    pt: PageTables, pgd: int, vaddr: int, alloc_table: Callable[[], int | None], table_flags: int
) -> tuple[dict[int, Table], int, Table] | None:
    """The tables to write over pt.tables (so that a failure changes nothing) and the PTE
    table of vaddr (its pfn and entries), allocating the missing levels."""
    _check_page(vaddr)
    _check_flags(table_flags)
    new: dict[int, Table] = {}
    table_pfn = pgd
    table = _table(pt, pgd)
    for level in range(3):
        index = _index(vaddr, level)
        entry = _lookup(table, index)
        if entry is None:
            child = alloc_table()
            if child is None:
                return None
            _check_new_table(pt, child)
            if child in new:
                raise ValueError(f"alloc_table returned pfn {child} twice")
            new[table_pfn] = _table_set(table, index, child, table_flags)
            table_pfn, table = child, ()
            new[child] = table
        elif not entry[2] & _PAGE_PRESENT:
            raise ValueError(f"{LEVEL_NAMES[level]} entry {index} of table {table_pfn} is not present")
        else:
            table_pfn = entry[1]
            table = _table(pt, table_pfn)
    return new, table_pfn, table


def _pte_table(pt: PageTables, pgd: int, vaddr: int) -> int | None:
    """The pfn of the PTE table that maps vaddr, None if an upper level is missing."""
    path = walk_path(pt, pgd, vaddr)
    if len(path) >= 3 and path[2][1] & _PAGE_PRESENT:
        return path[2][0]
    return None


def pte_clear(pt: PageTables, pgd: int, vaddr: int) -> PageTables:
    """pte_clear: vaddr's PTE becomes none (no-op if it is). Flushing the TLB is the caller's."""
    _check_page(vaddr)
    table_pfn = _pte_table(pt, pgd, vaddr)
    if table_pfn is None:
        return pt
    table = pt.tables[table_pfn]
    cleared = _table_del(table, _index(vaddr, 3))
    if cleared is table:
        return pt
    return PageTables({**pt.tables, table_pfn: cleared})


def change_pte_flags(
    pt: PageTables, pgd: int, vaddr: int, set_flags: int = 0, clear_flags: int = 0
) -> PageTables:
    """mprotect's change_pte_range: the PTE keeps its pfn, its flags lose clear_flags and gain
    set_flags. A none PTE is skipped, as change_pte_range does."""
    _check_page(vaddr)
    _check_flags(set_flags)
    _check_flags(clear_flags)
    table_pfn = _pte_table(pt, pgd, vaddr)
    if table_pfn is None:
        return pt
    table = pt.tables[table_pfn]
    index = _index(vaddr, 3)
    entry = _lookup(table, index)
    if entry is None:
        return pt
    flags = (entry[2] & ~clear_flags) | set_flags
    return PageTables({**pt.tables, table_pfn: _table_set(table, index, entry[1], flags)})


def free_pgd_range(
    pt: PageTables,
    pgd: int,
    start: int,
    end: int,
    floor: int | None = None,
    ceiling: int | None = None,
) -> tuple[PageTables, list[int]]:
    """free_pgd_range: free the PTE, PMD and PUD tables that meet [start, end), lie wholly in
    [floor, ceiling) (default [start, end): not shared with anything mapped outside) and hold
    no entries once their own empty children are freed. Returns the freed table pfns,
    lowest level first. The PGD stays (pgd_free frees it).

    The kernel frees every such table, trusting unmap_vmas to have zapped the leaves; here a
    table that still holds a PTE is kept, so the call never loses a mapping.
    """
    _check_range(start, end)
    floor = start if floor is None else floor
    ceiling = end if ceiling is None else ceiling
    _check_range(floor, ceiling)
    if not floor <= start <= end <= ceiling:
        raise ValueError(f"[{start:#x}, {end:#x}) is not inside floor/ceiling [{floor:#x}, {ceiling:#x})")
    _table(pt, pgd)
    tables = dict(pt.tables)
    freed: list[int] = []
    if start < end:
        _free_range(tables, pgd, 0, 0, start, end, floor, ceiling, freed)
    if not freed:
        return pt, []
    return PageTables(tables), freed


def _free_range(
    tables: dict[int, Table],
    table_pfn: int,
    level: int,
    base: int,
    start: int,
    end: int,
    floor: int,
    ceiling: int,
    freed: list[int],
) -> Table:
    """Free the empty tables below table_pfn (a level table covering from base); returns and
    stores its remaining entries."""
    size = 1 << LEVEL_SHIFTS[level]
    table = tables[table_pfn]
    kept = []
    for entry in table:
        index, child, flags = entry
        lo = base + index * size
        hi = lo + size
        if level < 3 and lo < end and start < hi and flags & _PAGE_PRESENT:
            left = _free_range(tables, child, level + 1, lo, start, end, floor, ceiling, freed)
            if not left and floor <= lo and hi <= ceiling:
                del tables[child]
                freed.append(child)
                continue
        kept.append(entry)
    if len(kept) != len(table):
        tables[table_pfn] = tuple(kept)
    return tables[table_pfn]


def pgd_free(pt: PageTables, pgd: int) -> tuple[PageTables, list[int]]:
    """free_pgtables over the whole address space, then pgd_free: every table page of the mm,
    the PGD last. Pages still mapped by leaves are the caller's (exit_mmap zaps them first)."""
    pages = table_pages(pt, pgd)
    tables = {pfn: table for pfn, table in pt.tables.items() if pfn not in pages}
    return PageTables(tables), sorted(pages - {pgd}) + [pgd]


# ---- queries


def table_pages(pt: PageTables, pgd: int) -> set[int]:
    """Every page-table page reachable from pgd, pgd included."""
    _table(pt, pgd)
    pages = {pgd}
    level_tables = [pgd]
    for _level in range(3):
        below = []
        for table_pfn in level_tables:
            for _, child, flags in pt.tables[table_pfn]:
                if flags & _PAGE_PRESENT:
                    _table(pt, child)
                    below.append(child)
        pages.update(below)
        level_tables = below
    return pages


def mapped(pt: PageTables, pgd: int) -> list[tuple[int, int, int]]:
    """(vaddr, pfn, flags) of every present leaf PTE under pgd, by vaddr; the PTE's own flags."""
    return [leaf for leaf in leaves(pt, pgd) if leaf[2] & _PAGE_PRESENT]


def leaves(pt: PageTables, pgd: int) -> list[tuple[int, int, int]]:
    """(vaddr, pfn, flags) of every leaf PTE under present upper levels, present or not, by
    vaddr."""
    out = []
    level_tables = [(pgd, 0)]
    for level in range(4):
        below = []
        for table_pfn, base in level_tables:
            for index, child, flags in _table(pt, table_pfn):
                vaddr = base + (index << LEVEL_SHIFTS[level])
                if level == 3:
                    out.append((vaddr, child, flags))
                elif flags & _PAGE_PRESENT:
                    below.append((child, vaddr))
        level_tables = below
    out.sort()
    return out


# ---- the TLB


def tlb_lookup(tlb: Tlb, vaddr: int) -> tuple[int, int] | None:
    """The cached (pfn, effective flags) for vaddr's page, None on a miss."""
    _check_vaddr(vaddr)
    return tlb.entries.get(vaddr >> PAGE_SHIFT)


def translate(
    pt: PageTables, tlb: Tlb, pgd: int, vaddr: int, write: bool, user: bool
) -> tuple[int | PageFault, Tlb]:
    """The MMU on an access: (pfn, tlb) or (PageFault, tlb).

    A TLB hit is used without a walk, stale or not. A hit that the access is not allowed
    through faults, and the fault drops the entry (SDM 4.10.4.1), so a retry walks: the
    kernel's spurious-fault path. A miss walks the tables and caches only a present,
    permitted translation; a fault caches nothing.
    """
    _check_vaddr(vaddr)
    if tlb.pgd != pgd:
        raise ValueError(f"CR3 holds pgd {tlb.pgd}, not {pgd}: load_cr3 first")
    vpn = vaddr >> PAGE_SHIFT
    hit = tlb.entries.get(vpn)
    if hit is not None:
        code = access_error(hit[1], write, user)
        if code is None:
            return hit[0], tlb
        entries = dict(tlb.entries)
        del entries[vpn]
        return PageFault(code), Tlb(tlb.pgd, entries)
    path = walk_path(pt, pgd, vaddr)
    # a none or non-present entry at any level is a not-present fault (P=0)
    flags = effective_flags(path) if len(path) == 4 else 0
    code = access_error(flags, write, user)
    if code is not None:
        return PageFault(code), tlb
    pfn = path[3][0]
    return pfn, Tlb(tlb.pgd, {**tlb.entries, vpn: (pfn, flags)})


def load_cr3(tlb: Tlb, pgd: int) -> Tlb:
    """switch_mm_irqs_off's CR3 write: pgd is now walked and every entry is flushed (no global
    pages, no PCID), even when pgd was already loaded."""
    _check_pfn(pgd)
    return Tlb(pgd, {})


def flush_tlb_one_user(tlb: Tlb, vaddr: int) -> Tlb:
    """INVLPG of vaddr's page."""
    _check_vaddr(vaddr)
    vpn = vaddr >> PAGE_SHIFT
    if vpn not in tlb.entries:
        return tlb
    entries = dict(tlb.entries)
    del entries[vpn]
    return Tlb(tlb.pgd, entries)


def flush_tlb_range(tlb: Tlb, start: int, end: int) -> Tlb:
    """flush_tlb_mm_range on this CPU: every page of [start, end)."""
    _check_range(start, end)
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    entries = {vpn: e for vpn, e in tlb.entries.items() if not first <= vpn < last}
    if len(entries) == len(tlb.entries):
        return tlb
    return Tlb(tlb.pgd, entries)


def flush_tlb_local(tlb: Tlb) -> Tlb:
    """flush_tlb_local (a CR3 reload): every entry; CR3 keeps its PGD."""
    return Tlb(tlb.pgd, {})


def stale_entries(pt: PageTables, tlb: Tlb) -> list[tuple[int, tuple[int, int], tuple[int, int] | None]]:
    """(vaddr, cached, current) for every TLB entry that disagrees with a walk of CR3's page
    tables now: the pfn or effective flags differ, or nothing present maps the page any more
    (current None). Stale entries that only grant less than the tables are reported too."""
    if tlb.pgd is None:
        return []
    out = []
    for vpn, cached in sorted(tlb.entries.items()):
        vaddr = vpn << PAGE_SHIFT
        path = walk_path(pt, tlb.pgd, vaddr) if tlb.pgd in pt.tables else []
        current = None
        if len(path) == 4 and path[3][1] & _PAGE_PRESENT:
            current = (path[3][0], effective_flags(path))
        if current != cached:
            out.append((vaddr, cached, current))
    return out
