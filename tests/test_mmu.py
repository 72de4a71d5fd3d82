"""The x86-64 MMU model: index arithmetic, page-table updates, permission faults, stale TLB entries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from model.hw import mmu
from model.hw.mmu import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_PRESENT,
    _PAGE_RW,
    _PAGE_TABLE,
    _PAGE_USER,
    EMPTY_PAGE_TABLES,
    EMPTY_TLB,
    X86_PF_PROT,
    X86_PF_USER,
    X86_PF_WRITE,
    PageFault,
    PageTables,
    Tlb,
)

URW = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
URO = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
KRW = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
MB2 = 1 << 21
GB1 = 1 << 30
GB512 = 1 << 39


def allocator(first: int = 100, limit: int | None = None) -> Callable[[], int | None]:
    """alloc_table handing out consecutive pfns, then None after limit of them."""
    handed: list[int] = []

    def alloc() -> int | None:
        if limit is not None and len(handed) >= limit:
            return None
        handed.append(first + len(handed))
        return handed[-1]

    return alloc


def new_mm(pgd: int = 1) -> tuple[PageTables, int]:
    result = mmu.pgd_alloc(EMPTY_PAGE_TABLES, lambda: pgd)
    assert result is not None
    return result


def mapped_pt(
    *leaves: tuple[int, int, int], alloc: Callable[[], int | None] | None = None
) -> tuple[PageTables, int]:
    pt, pgd = new_mm()
    alloc = alloc or allocator()
    for vaddr, pfn, flags in leaves:
        new = mmu.set_pte_at(pt, pgd, vaddr, pfn, flags, alloc)
        assert new is not None
        pt = new
    return pt, pgd


def test_constants_are_the_kernels() -> None:
    assert mmu.PAGE_SHIFT == 12
    assert mmu.LEVEL_SHIFTS == (39, 30, 21, 12)
    assert mmu.PTRS_PER_TABLE == 512
    assert (_PAGE_PRESENT, _PAGE_RW, _PAGE_USER, _PAGE_ACCESSED, _PAGE_DIRTY) == (1, 2, 4, 32, 64)
    assert mmu._PAGE_NX == 0x8000_0000_0000_0000
    assert _PAGE_TABLE == 0x67  # pgtable_types.h _PAGE_TABLE_NOENC: P|RW|USER|A|D


@pytest.mark.parametrize(
    "vaddr, indexes",
    [
        (0x7FFF_FFFF_F000, (255, 511, 511, 511)),
        (0, (0, 0, 0, 0)),
        (0x1000, (0, 0, 0, 1)),
        (0x20_0000, (0, 0, 1, 0)),
        (0x4000_0000, (0, 1, 0, 0)),
        (0x80_0000_0000, (1, 0, 0, 0)),
        (0x7FFF_FFFF_FFFF, (255, 511, 511, 511)),  # the offset in the page is not an index
        ((3 << 39) | (7 << 30) | (11 << 21) | (13 << 12) | 0x123, (3, 7, 11, 13)),
    ],
)
def test_indexes(vaddr: int, indexes: tuple[int, int, int, int]) -> None:
    got = (mmu.pgd_index(vaddr), mmu.pud_index(vaddr), mmu.pmd_index(vaddr), mmu.pte_index(vaddr))
    assert got == indexes


@pytest.mark.parametrize("vaddr", [-1, 1 << 47, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_F000])
def test_non_canonical_or_kernel_half_addresses_are_refused(vaddr: int) -> None:
    pt, pgd = new_mm()
    with pytest.raises(ValueError, match="canonical lower half"):
        mmu.pgd_index(vaddr)
    with pytest.raises(ValueError, match="canonical lower half"):
        mmu.walk(pt, pgd, vaddr)
    with pytest.raises(ValueError, match="canonical lower half"):
        mmu.set_pte_at(pt, pgd, vaddr, 5, URW, allocator())


def test_other_bad_arguments_are_refused() -> None:
    pt, pgd = new_mm()
    with pytest.raises(ValueError, match="not page aligned"):
        mmu.set_pte_at(pt, pgd, 0x1001, 5, URW, allocator())
    with pytest.raises(ValueError, match="not a page-table page"):
        mmu.walk(pt, 99, 0x1000)
    with pytest.raises(ValueError, match="entry bits"):
        mmu.set_pte_at(pt, pgd, 0x1000, 5, 1 << 20, allocator())
    with pytest.raises(ValueError, match="already a page-table page"):
        mmu.set_pte_at(pt, pgd, 0x1000, 5, URW, lambda: pgd)
    with pytest.raises(ValueError, match="ends before"):
        mmu.free_pgd_range(pt, pgd, 0x2000, 0x1000)


def test_set_walk_clear_round_trip() -> None:
    pt0, pgd = new_mm()
    assert mmu.walk(pt0, pgd, 0x7FFF_FFFF_F000) is None
    pt = mmu.set_pte_at(pt0, pgd, 0x7FFF_FFFF_F000, 42, URW, allocator())
    assert pt is not None
    assert mmu.walk(pt, pgd, 0x7FFF_FFFF_F000) == (42, URW)
    assert mmu.walk(pt, pgd, 0x7FFF_FFFF_FABC) == (42, URW)  # any byte of the page
    assert mmu.walk(pt, pgd, 0x7FFF_FFFF_E000) is None
    assert mmu.walk(pt0, pgd, 0x7FFF_FFFF_F000) is None  # the old value is untouched
    assert mmu.mapped(pt, pgd) == [(0x7FFF_FFFF_F000, 42, URW)]
    # the tables hang where the indexes say, each upper entry as _PAGE_TABLE
    assert pt.tables[pgd] == ((255, 100, _PAGE_TABLE),)
    assert pt.tables[100] == ((511, 101, _PAGE_TABLE),)
    assert pt.tables[101] == ((511, 102, _PAGE_TABLE),)
    assert pt.tables[102] == ((511, 42, URW),)
    assert mmu.table_pages(pt, pgd) == {pgd, 100, 101, 102}

    cleared = mmu.pte_clear(pt, pgd, 0x7FFF_FFFF_F000)
    assert mmu.walk(cleared, pgd, 0x7FFF_FFFF_F000) is None
    assert mmu.mapped(cleared, pgd) == []
    assert mmu.table_pages(cleared, pgd) == {pgd, 100, 101, 102}  # tables stay until freed
    assert mmu.pte_clear(cleared, pgd, 0x7FFF_FFFF_F000) is cleared
    assert mmu.pte_clear(pt0, pgd, 0x1000) is pt0


def test_second_mapping_reuses_the_tables_and_overwrite_replaces() -> None:
    alloc = allocator()
    pt, pgd = mapped_pt((0x1000, 7, URW), (0x2000, 8, URO), (0x20_0000, 9, URW), alloc=alloc)
    assert alloc() == 104  # one PUD, one PMD, two PTE tables were taken
    assert mmu.mapped(pt, pgd) == [(0x1000, 7, URW), (0x2000, 8, URO), (0x20_0000, 9, URW)]
    new = mmu.set_pte_at(pt, pgd, 0x2000, 10, URW, alloc)
    assert new is not None
    assert mmu.walk(new, pgd, 0x2000) == (10, URW)
    assert len(mmu.mapped(new, pgd)) == 3


def test_change_pte_flags_keeps_the_pfn() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    ro = mmu.change_pte_flags(pt, pgd, 0x1000, clear_flags=_PAGE_RW)
    assert mmu.walk(ro, pgd, 0x1000) == (7, URW & ~_PAGE_RW)
    assert mmu.walk(mmu.change_pte_flags(ro, pgd, 0x1000, set_flags=_PAGE_RW), pgd, 0x1000) == (7, URW)
    assert mmu.change_pte_flags(pt, pgd, 0x5000, set_flags=_PAGE_RW) is pt  # none PTE skipped


@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_table_allocation_failure_leaves_the_tables_unchanged(fail_at: int) -> None:
    pt, pgd = new_mm()
    assert mmu.set_pte_at(pt, pgd, 0x1000, 7, URW, allocator(limit=fail_at)) is None
    assert pt == PageTables({pgd: ()})
    # with a PUD and PMD in place only the PTE table is needed
    full = mmu.set_pte_at(pt, pgd, 0x1000, 7, URW, allocator())
    assert full is not None
    calls = []

    def counting() -> int | None:
        calls.append(1)
        return None

    assert mmu.set_pte_at(full, pgd, 0x40_0000, 8, URW, counting) is None
    assert len(calls) == 1
    assert mmu.mapped(full, pgd) == [(0x1000, 7, URW)]
    assert mmu.set_pte_at(full, pgd, 0x2000, 8, URW, counting) is not None  # no table needed
    assert len(calls) == 1


def test_pgd_alloc_failure() -> None:
    assert mmu.pgd_alloc(EMPTY_PAGE_TABLES, lambda: None) is None


def test_free_pgd_range_frees_exactly_the_empty_tables_in_range() -> None:
    # PTE tables A: [0, 2M), B: [2M, 4M), C: [4M, 6M) under one PMD/PUD; D under a second PUD
    pt, pgd = mapped_pt((0x1000, 7, URW), (MB2 + 0x1000, 8, URW), (2 * MB2, 9, URW), (GB1, 10, URW))
    # tables: PUD 100, PMD 101, A 102, B 103, C 104, PMD' 105, D 106
    assert mmu.table_pages(pt, pgd) == {pgd, *range(100, 107)}
    for vaddr in (MB2 + 0x1000, 2 * MB2):
        pt = mmu.pte_clear(pt, pgd, vaddr)
    pt_d = mmu.pte_clear(pt, pgd, GB1)

    # [2M, 6M): B and C are empty and wholly inside; A still maps 0x1000, so the PMD stays
    after, freed = mmu.free_pgd_range(pt, pgd, MB2, 3 * MB2)
    assert sorted(freed) == [103, 104]
    assert mmu.table_pages(after, pgd) == {pgd, 100, 101, 102, 105, 106}
    assert set(after.tables) == {pgd, 100, 101, 102, 105, 106}
    assert mmu.mapped(after, pgd) == [(0x1000, 7, URW), (GB1, 10, URW)]

    # [2M, 5M): C covers [4M, 6M), only partly inside: kept
    after, freed = mmu.free_pgd_range(pt, pgd, MB2, 2 * MB2 + 0x10_0000)
    assert freed == [103]
    # ... unless the caller's ceiling says nothing is mapped up to 6M
    after, freed = mmu.free_pgd_range(pt, pgd, MB2, 2 * MB2 + 0x10_0000, ceiling=3 * MB2)
    assert sorted(freed) == [103, 104]

    # the empty D, its PMD' and nothing above: PUD 100 is shared with A's mapping
    after, freed = mmu.free_pgd_range(pt_d, pgd, GB1, 2 * GB1)
    assert freed == [106, 105]
    assert after.tables[100] == ((0, 101, _PAGE_TABLE),)

    # a table holding a leaf is never freed, even inside the range
    after, freed = mmu.free_pgd_range(pt, pgd, 0, GB1)
    assert sorted(freed) == [103, 104]
    assert 102 in after.tables

    # the whole address space once empty: everything but the PGD
    empty = mmu.pte_clear(mmu.pte_clear(pt, pgd, 0x1000), pgd, GB1)
    after, freed = mmu.free_pgd_range(empty, pgd, 0, mmu.TASK_SIZE_TOP)
    assert sorted(freed) == list(range(100, 107))
    assert after == PageTables({pgd: ()})
    assert mmu.free_pgd_range(after, pgd, 0, mmu.TASK_SIZE_TOP) == (after, [])


def test_free_pgd_range_keeps_a_pud_shared_across_pgd_entries() -> None:
    pt, pgd = mapped_pt((0, 7, URW), (GB512, 8, URW))
    pt = mmu.pte_clear(pt, pgd, GB512)
    after, freed = mmu.free_pgd_range(pt, pgd, GB512, 2 * GB512)
    assert freed == [105, 104, 103]  # PTE, PMD, PUD of the second PGD slot, bottom up
    assert after.tables[pgd] == ((0, 100, _PAGE_TABLE),)


def test_pgd_free_frees_every_table_of_the_mm_only() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW), (GB512, 8, URW))
    other = mmu.set_pte_at(pt, pgd, 0x2000, 9, URW, allocator())  # no new table
    assert other is not None
    both = mmu.pgd_alloc(other, lambda: 50)
    assert both is not None
    pt2, pgd2 = both
    pt2_full = mmu.set_pte_at(pt2, pgd2, 0x1000, 7, URO, allocator(200))
    assert pt2_full is not None
    after, freed = mmu.pgd_free(pt2_full, pgd)
    assert freed[-1] == pgd
    assert sorted(freed) == sorted({pgd, *range(100, 106)})
    assert set(after.tables) == {pgd2, 200, 201, 202}
    assert mmu.mapped(after, pgd2) == [(0x1000, 7, URO)]


def test_mapped_lists_only_present_leaves() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW), (0x2000, 8, _PAGE_USER))  # a non-present PTE (PROT_NONE-like)
    assert mmu.mapped(pt, pgd) == [(0x1000, 7, URW)]
    assert mmu.walk(pt, pgd, 0x2000) == (8, _PAGE_USER)


# ---- translation and faults


def translate(
    pt: PageTables, tlb: Tlb, pgd: int, vaddr: int, *, write: bool = False, user: bool = True
) -> tuple[int | PageFault, Tlb]:
    return mmu.translate(pt, tlb, pgd, vaddr, write, user)


@pytest.mark.parametrize(
    "flags, write, user, expected",
    [
        (URW, True, True, 7),
        (URW, False, False, 7),
        (URO, False, True, 7),
        (URO, True, True, PageFault(X86_PF_PROT | X86_PF_WRITE | X86_PF_USER)),
        (URO, True, False, PageFault(X86_PF_PROT | X86_PF_WRITE)),  # CR0.WP: the kernel faults too
        (KRW, False, True, PageFault(X86_PF_PROT | X86_PF_USER)),
        (KRW, True, False, 7),
        (_PAGE_USER | _PAGE_RW, False, True, PageFault(X86_PF_USER)),  # not present: P=0
        (_PAGE_USER | _PAGE_RW, True, False, PageFault(X86_PF_WRITE)),
    ],
)
def test_leaf_permissions(flags: int, write: bool, user: bool, expected: int | PageFault) -> None:
    pt, pgd = mapped_pt((0x1000, 7, flags))
    tlb = mmu.load_cr3(EMPTY_TLB, pgd)
    result, tlb = mmu.translate(pt, tlb, pgd, 0x1234, write, user)
    assert result == expected
    # only a permitted translation is cached
    assert mmu.tlb_lookup(tlb, 0x1000) == (None if isinstance(expected, PageFault) else (7, flags))


def test_unmapped_addresses_fault_not_present() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    tlb = mmu.load_cr3(EMPTY_TLB, pgd)
    for vaddr in (0x2000, 0x40_0000, GB1, GB512):  # missing PTE, PTE table, PMD, PUD
        assert mmu.translate(pt, tlb, pgd, vaddr, False, True) == (PageFault(X86_PF_USER), tlb)
        assert mmu.translate(pt, tlb, pgd, vaddr, True, False) == (PageFault(X86_PF_WRITE), tlb)


@pytest.mark.parametrize(
    "table_flags, write, user, expected",
    [
        (mmu._KERNPG_TABLE, False, True, PageFault(X86_PF_PROT | X86_PF_USER)),  # no USER above the PTE
        (mmu._KERNPG_TABLE, True, False, 7),
        (_PAGE_TABLE & ~_PAGE_RW, True, True, PageFault(X86_PF_PROT | X86_PF_WRITE | X86_PF_USER)),
        (_PAGE_TABLE & ~_PAGE_RW, True, False, PageFault(X86_PF_PROT | X86_PF_WRITE)),
        (_PAGE_TABLE & ~_PAGE_RW, False, True, 7),
    ],
)
def test_upper_levels_restrict_rights(
    table_flags: int, write: bool, user: bool, expected: int | PageFault
) -> None:
    pt, pgd = new_mm()
    new = mmu.set_pte_at(pt, pgd, 0x1000, 7, URW, allocator(), table_flags=table_flags)
    assert new is not None
    result, tlb = mmu.translate(new, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000, write, user)
    assert result == expected
    if not isinstance(expected, PageFault):
        # the TLB caches the walk's effective rights, not the leaf's
        assert tlb.entries == {1: (7, URW & ~(_PAGE_TABLE & ~table_flags))}


def test_a_single_upper_level_without_user_faults() -> None:
    # USER cleared at the PUD entry only (PGD and PMD grant it): still a protection fault
    pt, pgd = mapped_pt((0x1000, 7, URW))
    pud = pt.tables[pgd][0][1]
    pmd = pt.tables[pud][0][1]
    pt = PageTables({**pt.tables, pud: ((0, pmd, mmu._KERNPG_TABLE),)})
    result, _ = translate(pt, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000)
    assert result == PageFault(X86_PF_PROT | X86_PF_USER)


def test_translate_needs_the_pgd_in_cr3() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    with pytest.raises(ValueError, match="load_cr3"):
        translate(pt, EMPTY_TLB, pgd, 0x1000)


# ---- the TLB keeps what it cached


def test_stale_entry_survives_pte_clear_until_invlpg() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW), (0x2000, 8, URW))
    tlb = mmu.load_cr3(EMPTY_TLB, pgd)
    assert translate(pt, tlb, pgd, 0x1000)[0] == 7
    result, tlb = translate(pt, tlb, pgd, 0x1000)
    _, tlb = translate(pt, tlb, pgd, 0x2000)
    assert set(tlb.entries) == {1, 2}
    assert mmu.stale_entries(pt, tlb) == []

    cleared = mmu.pte_clear(pt, pgd, 0x1000)
    # the hardware still uses the cached translation: the page is reachable after unmap
    assert translate(cleared, tlb, pgd, 0x1000, write=True) == (7, tlb)
    assert mmu.stale_entries(cleared, tlb) == [(0x1000, (7, URW), None)]
    # the table pages can be freed and reused while the TLB still points through them
    freed_pt, freed = mmu.free_pgd_range(mmu.pte_clear(cleared, pgd, 0x2000), pgd, 0, MB2)
    assert freed == [102]
    assert translate(freed_pt, tlb, pgd, 0x2000) == (8, tlb)

    tlb = mmu.flush_tlb_one_user(tlb, 0x1000)
    assert mmu.stale_entries(cleared, tlb) == []
    assert translate(cleared, tlb, pgd, 0x1000)[0] == PageFault(X86_PF_USER)
    assert mmu.tlb_lookup(tlb, 0x2000) == (8, URW)  # invlpg touches one page


def test_remap_to_another_pfn_is_stale_until_flush() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    _, tlb = translate(pt, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000)
    moved = mmu.set_pte_at(mmu.pte_clear(pt, pgd, 0x1000), pgd, 0x1000, 9, URW, allocator(300))
    assert moved is not None
    assert translate(moved, tlb, pgd, 0x1000)[0] == 7
    assert mmu.stale_entries(moved, tlb) == [(0x1000, (7, URW), (9, URW))]
    tlb = mmu.load_cr3(tlb, pgd)  # a CR3 reload of the same mm flushes too
    assert tlb.entries == {}
    result, tlb = translate(moved, tlb, pgd, 0x1000)
    assert result == 9
    assert mmu.stale_entries(moved, tlb) == []


def test_mprotect_downgrade_is_stale_and_a_stale_write_still_succeeds() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    _, tlb = translate(pt, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000, write=True)
    ro = mmu.change_pte_flags(pt, pgd, 0x1000, clear_flags=_PAGE_RW)
    assert translate(ro, tlb, pgd, 0x1000, write=True)[0] == 7
    assert mmu.stale_entries(ro, tlb) == [(0x1000, (7, URW), (7, URW & ~_PAGE_RW))]
    tlb = mmu.flush_tlb_range(tlb, 0, MB2)
    assert translate(ro, tlb, pgd, 0x1000, write=True)[0] == PageFault(
        X86_PF_PROT | X86_PF_WRITE | X86_PF_USER
    )


def test_a_fault_on_a_stale_hit_drops_the_entry() -> None:
    # mprotect upgrade without a flush: the stale read-only entry faults (a spurious fault),
    # and the fault invalidates it, so the retry walks and sees the new rights
    pt, pgd = mapped_pt((0x1000, 7, URO))
    _, tlb = translate(pt, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000)
    rw = mmu.change_pte_flags(pt, pgd, 0x1000, set_flags=_PAGE_RW)
    result, tlb = translate(rw, tlb, pgd, 0x1000, write=True)
    assert result == PageFault(X86_PF_PROT | X86_PF_WRITE | X86_PF_USER)
    assert mmu.tlb_lookup(tlb, 0x1000) is None
    assert translate(rw, tlb, pgd, 0x1000, write=True)[0] == 7


def test_flush_tlb_range_and_local() -> None:
    leaves = [(v, 10 + i, URW) for i, v in enumerate((0x1000, 0x2000, 0x3000, MB2))]
    pt, pgd = mapped_pt(*leaves)
    tlb = mmu.load_cr3(EMPTY_TLB, pgd)
    for vaddr, _, _ in leaves:
        _, tlb = translate(pt, tlb, pgd, vaddr)
    assert set(mmu.flush_tlb_range(tlb, 0x2000, 0x4000).entries) == {1, MB2 >> 12}
    assert mmu.flush_tlb_range(tlb, 0x5000, 0x6000) is tlb
    local = mmu.flush_tlb_local(tlb)
    assert local == Tlb(pgd, {})


def test_switching_mm_flushes_and_walks_the_new_pgd() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    both = mmu.pgd_alloc(pt, lambda: 60)
    assert both is not None
    pt, pgd2 = both
    new = mmu.set_pte_at(pt, pgd2, 0x1000, 70, URO, allocator(400))
    assert new is not None
    _, tlb = translate(new, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000)
    assert tlb.entries == {1: (7, URW)}
    tlb = mmu.load_cr3(tlb, pgd2)
    assert tlb.entries == {}
    result, tlb = translate(new, tlb, pgd2, 0x1000)
    assert (result, tlb) == (70, Tlb(pgd2, {1: (70, URO)}))
    assert mmu.stale_entries(new, tlb) == []


def test_stale_entries_sees_an_upper_level_change() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    _, tlb = translate(pt, mmu.load_cr3(EMPTY_TLB, pgd), pgd, 0x1000)
    pud = pt.tables[pgd][0][1]
    pmd = pt.tables[pud][0][1]
    kernel_only = PageTables({**pt.tables, pud: ((0, pmd, mmu._KERNPG_TABLE),)})
    assert mmu.stale_entries(kernel_only, tlb) == [(0x1000, (7, URW), (7, URW & ~_PAGE_USER))]


def test_values_are_immutable_under_updates() -> None:
    pt, pgd = mapped_pt((0x1000, 7, URW))
    snapshot = dict(pt.tables)
    tlb = mmu.load_cr3(EMPTY_TLB, pgd)
    _, tlb2 = translate(pt, tlb, pgd, 0x1000)
    mmu.pte_clear(pt, pgd, 0x1000)
    mmu.change_pte_flags(pt, pgd, 0x1000, clear_flags=_PAGE_RW)
    mmu.free_pgd_range(pt, pgd, 0, MB2)
    mmu.pgd_free(pt, pgd)
    mmu.flush_tlb_one_user(tlb2, 0x1000)
    assert pt.tables == snapshot
    assert tlb.entries == {}
    assert tlb2.entries == {1: (7, URW)}
    assert hash(pt.fingerprint()) == hash(PageTables(snapshot).fingerprint())


def test_pte_alloc_makes_the_tables_and_a_swap_entry_is_a_leaf_the_mmu_does_not_walk() -> None:
    pt, pgd = new_mm()
    vaddr = 0x7F0000001000
    assert mmu.pte_alloc(pt, pgd, vaddr, allocator(limit=2)) is None  # three levels to make
    made = mmu.pte_alloc(pt, pgd, vaddr, allocator())
    assert made is not None and mmu.table_pages(made, pgd) == {pgd, 100, 101, 102}
    assert mmu.walk(made, pgd, vaddr) is None and mmu.leaves(made, pgd) == []
    assert mmu.pte_alloc(made, pgd, vaddr, allocator(limit=0)) is made  # nothing to make
    swapped = mmu.set_pte_at(made, pgd, vaddr, 3, 0, allocator(limit=0))  # slot 3
    assert swapped is not None and mmu.walk(swapped, pgd, vaddr) == (3, 0)
    assert mmu.leaves(swapped, pgd) == [(vaddr, 3, 0)] and mmu.mapped(swapped, pgd) == []
    result, _ = mmu.translate(swapped, Tlb(pgd, {}), pgd, vaddr, write=False, user=True)
    assert isinstance(result, PageFault) and result.error_code == X86_PF_USER  # not present
