"""The VMA model of mm/mmap.c and mm/mprotect.c: placement, splits, merges, brk, errors."""

from __future__ import annotations

import random

import pytest

from model.mm import mmap
from model.mm.mmap import (
    EINVAL,
    ENOMEM,
    EPERM,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    ULONG_MAX,
    VM_ACCOUNT,
    VM_EXEC,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_READ,
    VM_WRITE,
    Vma,
)

P = PAGE_SIZE
MMAP_BASE = 0x100000  # 256 pages
MIN_ADDR = 0x10000  # mmap_min_addr: 16 pages
A = 0x40000  # a free area for MAP_FIXED tests
MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
RW = VM_READ | VM_WRITE | MAY | VM_ACCOUNT  # a private writable mapping, and the heap
RO = VM_READ | MAY  # PROT_READ from mmap: never writable, so never charged
RO_CHARGED = VM_READ | MAY | VM_ACCOUNT  # made read-only by mprotect: still charged
ANON = MAP_PRIVATE | MAP_ANONYMOUS
FIXED = ANON | MAP_FIXED


def mm(vmas, addr, length, prot=PROT_READ | PROT_WRITE, flags=FIXED):
    return mmap.do_mmap(vmas, addr, length, prot, flags, MMAP_BASE, MIN_ADDR)


def fixed(*ranges: tuple[int, int, int]) -> tuple[Vma, ...]:
    """Map each (start, pages, prot) with MAP_FIXED in turn."""
    vmas: tuple[Vma, ...] = ()
    for start, pages, prot in ranges:
        vmas, addr, _ = mm(vmas, start, pages * P, prot)
        assert addr == start
    return vmas


def test_calc_vm_prot_bits() -> None:
    assert mmap.calc_vm_prot_bits(PROT_NONE) == 0
    assert mmap.calc_vm_prot_bits(PROT_READ | PROT_EXEC) == VM_READ | VM_EXEC
    assert mmap.calc_vm_prot_bits(PROT_WRITE | 0x8) == VM_WRITE  # PROT_SEM has no VM_ bit


def test_find_vma_returns_the_next_vma_above_a_hole() -> None:
    vmas = (Vma(A, A + P, RW), Vma(A + 3 * P, A + 4 * P, RW))
    assert mmap.find_vma(vmas, A - P) == vmas[0]
    assert mmap.find_vma(vmas, A + P - 1) == vmas[0]
    assert mmap.find_vma(vmas, A + P) == vmas[1]  # vm_end is exclusive
    assert mmap.find_vma(vmas, A + 4 * P) is None


def test_mmap_topdown_placement_and_merge_with_next() -> None:
    vmas, addr, unmapped = mm((), 0, 2 * P, flags=ANON)
    assert (addr, unmapped) == (MMAP_BASE - 2 * P, [])
    assert vmas == (Vma(MMAP_BASE - 2 * P, MMAP_BASE, RW),)
    # the next one goes right below and merges with the first (the next VMA for it)
    vmas, addr, _ = mm(vmas, 0, 1, flags=ANON)
    assert addr == MMAP_BASE - 3 * P
    assert vmas == (Vma(MMAP_BASE - 3 * P, MMAP_BASE, RW),)
    # a read-only one below does not merge
    vmas, addr, _ = mm(vmas, 0, P, prot=PROT_READ, flags=ANON)
    assert vmas == (Vma(MMAP_BASE - 4 * P, MMAP_BASE - 3 * P, RO), Vma(MMAP_BASE - 3 * P, MMAP_BASE, RW))
    assert mmap.vma_merge_ok(vmas) == []


def test_get_unmapped_area_skips_small_gaps_and_fails_when_full() -> None:
    vmas = (Vma(MIN_ADDR, MMAP_BASE - 3 * P, RW), Vma(MMAP_BASE - 2 * P, MMAP_BASE, RO))
    assert mmap.get_unmapped_area(vmas, P, MMAP_BASE, MIN_ADDR) == MMAP_BASE - 3 * P
    # two pages fit only below the big VMA, against its start (x86 searches down to PAGE_SIZE)
    assert mmap.unmapped_area_topdown(vmas, 2 * P, P, MMAP_BASE) == MIN_ADDR - 2 * P
    # that is below mmap_min_addr: refused as security_mmap_addr does
    assert mmap.get_unmapped_area(vmas, 2 * P, MMAP_BASE, MIN_ADDR) == -EPERM
    assert mm(vmas, 0, 2 * P, flags=ANON) == (vmas, -EPERM, [])
    full = (Vma(P, MMAP_BASE, RW),)
    assert mmap.get_unmapped_area(full, P, MMAP_BASE, 0) == -ENOMEM
    assert mmap.do_mmap(full, 0, P, PROT_READ, ANON, MMAP_BASE, 0) == (full, -ENOMEM, [])
    # nothing above mmap_base is searched, and page 0 is never handed out
    assert mmap.get_unmapped_area((), MMAP_BASE, MMAP_BASE, 0) == -ENOMEM
    assert mmap.get_unmapped_area((), MMAP_BASE - P, MMAP_BASE, 0) == P


def test_mmap_hint_used_when_free_else_topdown() -> None:
    vmas, addr, _ = mm((), A + 123, P, flags=ANON)  # an unaligned hint is rounded down
    assert addr == A and vmas == (Vma(A, A + P, RW),)
    vmas, addr, _ = mm(vmas, A, P, flags=ANON)  # occupied: top-down instead
    assert addr == MMAP_BASE - P
    _, addr, _ = mm((), P, P, flags=ANON)  # below mmap_min_addr: raised to it
    assert addr == MIN_ADDR


def test_munmap_middle_splits_in_two() -> None:
    vmas = fixed((A, 4, PROT_READ | PROT_WRITE))
    vmas, err, unmapped = mmap.do_munmap(vmas, A + P, 2 * P)
    assert (err, unmapped) == (0, [(A + P, A + 3 * P)])
    assert vmas == (Vma(A, A + P, RW), Vma(A + 3 * P, A + 4 * P, RW))
    # unmapping over the hole returns only what was mapped; a pure hole is not an error
    vmas, err, unmapped = mmap.do_munmap(vmas, A, 4 * P - 1)  # the length is rounded up
    assert (vmas, err, unmapped) == ((), 0, [(A, A + P), (A + 3 * P, A + 4 * P)])
    assert mmap.do_munmap((), A, P) == ((), 0, [])


def test_munmap_across_vmas_splits_both_ends() -> None:
    vmas = fixed((A, 3, PROT_READ), (A + 3 * P, 3, PROT_READ | PROT_WRITE))
    vmas, err, unmapped = mmap.do_munmap(vmas, A + 2 * P, 2 * P)
    assert err == 0
    assert unmapped == [(A + 2 * P, A + 3 * P), (A + 3 * P, A + 4 * P)]
    assert vmas == (Vma(A, A + 2 * P, RO), Vma(A + 4 * P, A + 6 * P, RW))


def test_merge_with_previous_next_and_both() -> None:
    rw = PROT_READ | PROT_WRITE
    assert fixed((A, 1, rw), (A + P, 1, rw)) == (Vma(A, A + 2 * P, RW),)
    assert fixed((A + P, 1, rw), (A, 1, rw)) == (Vma(A, A + 2 * P, RW),)
    assert fixed((A, 1, rw), (A + 2 * P, 1, rw), (A + P, 1, rw)) == (Vma(A, A + 3 * P, RW),)
    # not across a hole
    assert fixed((A, 1, rw), (A + 2 * P, 1, rw)) == (Vma(A, A + P, RW), Vma(A + 2 * P, A + 3 * P, RW))


def test_no_merge_across_different_protections() -> None:
    vmas = fixed((A, 1, PROT_READ), (A + 2 * P, 1, PROT_READ | PROT_WRITE), (A + P, 1, PROT_READ | PROT_EXEC))
    assert vmas == (
        Vma(A, A + P, RO),
        Vma(A + P, A + 2 * P, RO | VM_EXEC),
        Vma(A + 2 * P, A + 3 * P, RW),
    )
    assert mmap.vma_merge_ok(vmas) == []


def test_map_fixed_over_existing_mapping_returns_the_unmapped_range() -> None:
    vmas = fixed((A, 4, PROT_READ | PROT_WRITE))
    vmas, addr, unmapped = mm(vmas, A + P, 2 * P, PROT_READ)
    assert (addr, unmapped) == (A + P, [(A + P, A + 3 * P)])
    assert vmas == (Vma(A, A + P, RW), Vma(A + P, A + 3 * P, RO), Vma(A + 3 * P, A + 4 * P, RW))
    # partly over a hole: only the mapped part is reported; same flags merge again
    vmas, addr, unmapped = mm(vmas, A + 3 * P, 3 * P, PROT_READ)
    assert unmapped == [(A + 3 * P, A + 4 * P)]
    assert vmas == (Vma(A, A + P, RW), Vma(A + P, A + 6 * P, RO))


def test_mprotect_middle_page_then_back() -> None:
    orig = fixed((A, 3, PROT_READ | PROT_WRITE))
    vmas, err, changed = mmap.mprotect(orig, A + P, P, PROT_READ)
    assert (err, changed) == (0, [(A + P, A + 2 * P, RO_CHARGED)])
    assert vmas == (Vma(A, A + P, RW), Vma(A + P, A + 2 * P, RO_CHARGED), Vma(A + 2 * P, A + 3 * P, RW))
    vmas, err, changed = mmap.mprotect(vmas, A + P, P, PROT_READ | PROT_WRITE)
    assert (err, changed) == (0, [(A + P, A + 2 * P, RW)])
    assert vmas == orig
    # unchanged flags: nothing to do
    assert mmap.mprotect(orig, A, 3 * P, PROT_READ | PROT_WRITE) == (orig, 0, [])


def test_mprotect_merges_into_next_and_previous() -> None:
    vmas = fixed((A, 3, PROT_READ | PROT_WRITE))
    vmas, _, _ = mmap.mprotect(vmas, A + 2 * P, P, PROT_READ)
    vmas, err, changed = mmap.mprotect(vmas, A + P, P, PROT_READ)  # tail joins next
    assert (err, changed) == (0, [(A + P, A + 2 * P, RO_CHARGED)])
    assert vmas == (Vma(A, A + P, RW), Vma(A + P, A + 3 * P, RO_CHARGED))
    vmas, err, changed = mmap.mprotect(vmas, A, P, PROT_READ)  # whole VMA joins next
    assert vmas == (Vma(A, A + 3 * P, RO_CHARGED),)
    # over two VMAs: the second one joins the first
    vmas = fixed((A, 1, PROT_READ), (A + P, 2, PROT_EXEC))
    vmas, err, changed = mmap.mprotect(vmas, A, 3 * P, PROT_READ)
    assert (err, changed) == (0, [(A + P, A + 3 * P, RO)])
    assert vmas == (Vma(A, A + 3 * P, RO),)


def test_vm_account_keeps_equal_protections_apart() -> None:
    # read-only after being writable stays charged, unlike a fresh PROT_READ mapping
    vmas = fixed((A, 1, PROT_READ | PROT_WRITE), (A + P, 1, PROT_READ))
    vmas, err, _ = mmap.mprotect(vmas, A, P, PROT_READ)
    assert err == 0 and vmas == (Vma(A, A + P, RO_CHARGED), Vma(A + P, A + 2 * P, RO))
    assert mmap.vma_merge_ok(vmas) == []
    vmas, _, changed = mmap.mprotect(vmas, A + P, P, PROT_WRITE | PROT_READ)  # now charged too
    assert changed == [(A + P, A + 2 * P, RW)]
    assert vmas[1].vm_flags & VM_ACCOUNT


def test_mprotect_over_a_hole() -> None:
    vmas = fixed((A, 1, PROT_READ | PROT_WRITE), (A + 2 * P, 1, PROT_READ | PROT_WRITE))
    # a hole at start: -ENOMEM and nothing changes
    assert mmap.mprotect(vmas, A - P, 2 * P, PROT_READ) == (vmas, -ENOMEM, [])
    assert mmap.mprotect(vmas, A + P, 2 * P, PROT_READ) == (vmas, -ENOMEM, [])
    # a hole after the first VMA: the kernel keeps what it changed before it
    after, err, changed = mmap.mprotect(vmas, A, 3 * P, PROT_READ)
    assert (err, changed) == (-ENOMEM, [(A, A + P, RO_CHARGED)])
    assert after == (Vma(A, A + P, RO_CHARGED), Vma(A + 2 * P, A + 3 * P, RW))


def test_brk_grow_shrink_and_refusals() -> None:
    start = 0x20000
    vmas, cur, unmapped = mmap.brk((), start, start, start + 100)
    assert (vmas, cur, unmapped) == ((Vma(start, start + P, RW),), start + 100, [])
    vmas, cur, unmapped = mmap.brk(vmas, start, cur, start + 3 * P)  # merged with the heap
    assert (vmas, cur, unmapped) == ((Vma(start, start + 3 * P, RW),), start + 3 * P, [])
    vmas, cur, unmapped = mmap.brk(vmas, start, cur, start + P + 5)
    assert (vmas, cur, unmapped) == (
        (Vma(start, start + 2 * P, RW),),
        start + P + 5,
        [(start + 2 * P, start + 3 * P)],
    )
    # within the same page: only mm->brk moves
    assert mmap.brk(vmas, start, cur, start + 2 * P) == (vmas, start + 2 * P, [])
    # below start_brk: refused, the old break is returned
    assert mmap.brk(vmas, start, cur, start - 1) == (vmas, cur, [])
    # a mapping above: the new break must leave one free page before it
    vmas, _, _ = mm(vmas, start + 5 * P, P)
    assert mmap.brk(vmas, start, cur, start + 4 * P + 1) == (vmas, cur, [])
    grown, new, _ = mmap.brk(vmas, start, cur, start + 4 * P)
    assert new == start + 4 * P and grown[0] == Vma(start, start + 4 * P, RW)
    # shrink to start_brk unmaps the whole heap
    gone, new, unmapped = mmap.brk(grown, start, new, start)
    assert (gone, new, unmapped) == (vmas[1:], start, [(start, start + 4 * P)])


def test_argument_errors() -> None:
    vmas = fixed((A, 2, PROT_READ))
    assert mm(vmas, A, 0) == (vmas, -EINVAL, [])
    assert mm(vmas, 0, ULONG_MAX, flags=ANON) == (vmas, -ENOMEM, [])  # PAGE_ALIGN wraps to 0
    assert mm(vmas, 0, -1, flags=ANON) == (vmas, -ENOMEM, [])  # the same as unsigned long
    assert mm(vmas, A + 1, P) == (vmas, -EINVAL, [])
    assert mm(vmas, P, P) == (vmas, -EPERM, [])  # MAP_FIXED below mmap_min_addr
    assert mm(vmas, mmap.TASK_SIZE, P) == (vmas, -ENOMEM, [])
    assert mm(vmas, A, P, flags=MAP_SHARED | MAP_ANONYMOUS) == (vmas, -EINVAL, [])
    assert mm(vmas, A, P, flags=MAP_PRIVATE) == (vmas, -EINVAL, [])  # a file mapping
    assert mmap.do_munmap(vmas, A + 1, P) == (vmas, -EINVAL, [])
    assert mmap.do_munmap(vmas, A, 0) == (vmas, -EINVAL, [])
    assert mmap.do_munmap(vmas, A, ULONG_MAX) == (vmas, -EINVAL, [])
    assert mmap.mprotect(vmas, A + 1, P, PROT_WRITE) == (vmas, -EINVAL, [])
    assert mmap.mprotect(vmas, A, 0, PROT_WRITE) == (vmas, 0, [])
    assert mmap.mprotect(vmas, A, P, 0x1000000) == (vmas, -EINVAL, [])  # PROT_GROWSDOWN
    assert mmap.mprotect(vmas, A, ULONG_MAX, PROT_READ) == (vmas, -ENOMEM, [])


def test_vma_merge_ok_reports_violations() -> None:
    assert mmap.vma_merge_ok((Vma(A, A + P, RW), Vma(A + P, A + 2 * P, RO))) == []
    assert mmap.vma_merge_ok((Vma(A, A + 2 * P, RW), Vma(A + 2 * P, A + 3 * P, RW)))
    assert mmap.vma_merge_ok((Vma(A, A + 2 * P, RW), Vma(A + P, A + 3 * P, RO)))
    assert mmap.vma_merge_ok((Vma(A + P, A + 2 * P, RW), Vma(A, A + P, RO)))
    assert mmap.vma_merge_ok((Vma(A, A + P + 1, RW),))
    assert mmap.vma_merge_ok((Vma(A, A, RW),))


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_match_a_page_map(seed: int) -> None:
    """Random MAP_FIXED mmaps, munmaps and mprotects over 12 pages agree page by page with a
    plain page -> protection map, report exactly the pages they unmap or change, and keep
    vma_merge_ok clean."""
    rng = random.Random(seed)
    prots = (PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC)
    vmas: tuple[Vma, ...] = ()
    pages: dict[int, int] = {}  # page address -> VM_READ | VM_WRITE | VM_EXEC bits
    for _ in range(150):
        first = rng.randrange(12)
        count = rng.randrange(1, 13 - first)
        start, end = A + first * P, A + (first + count) * P
        span = range(start, end, P)
        prot = rng.choice(prots)
        op = rng.randrange(3)
        if op == 0:
            vmas, addr, unmapped = mm(vmas, start, end - start, prot)
            assert addr == start
            assert [p for s, e in unmapped for p in range(s, e, P)] == [p for p in span if p in pages]
            pages.update(dict.fromkeys(span, mmap.calc_vm_prot_bits(prot)))
        elif op == 1:
            vmas, err, unmapped = mmap.do_munmap(vmas, start, end - start)
            assert err == 0
            assert [p for s, e in unmapped for p in range(s, e, P)] == [p for p in span if p in pages]
            for p in span:
                pages.pop(p, None)
        else:
            vmas, err, changed = mmap.mprotect(vmas, start, end - start, prot)
            done = []
            for p in span:
                if p not in pages:
                    break
                if pages[p] != mmap.calc_vm_prot_bits(prot):
                    done.append(p)
                pages[p] = mmap.calc_vm_prot_bits(prot)
            assert err == (0 if all(p in pages for p in span) else -ENOMEM)
            assert [p for s, e, _ in changed for p in range(s, e, P)] == done
        assert mmap.vma_merge_ok(vmas) == []
        seen = {
            p: v.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)
            for v in vmas
            for p in range(v.vm_start, v.vm_end, P)
        }
        assert seen == pages


# File mappings: vm_file and vm_pgoff.

F, G = 0x100, 0x200  # two struct files
SHARED = VM_READ | VM_WRITE | MAY | mmap.VM_SHARED | mmap.VM_MAYSHARE


def fmap(vmas, addr, pages, pgoff, file=F, flags=MAP_SHARED | MAP_FIXED, readable=True, writable=True):
    return mmap.do_mmap(
        vmas,
        addr,
        pages * P,
        PROT_READ | PROT_WRITE,
        flags,
        MMAP_BASE,
        MIN_ADDR,
        (file, readable, writable),
        pgoff,
    )


def test_a_shared_file_mapping_is_vm_shared_and_starts_at_its_page_offset() -> None:
    vmas, addr, _ = fmap((), A, 2, 3)
    assert addr == A and vmas == (Vma(A, A + 2 * P, SHARED, F, 3),)
    assert mmap.linear_page_index(vmas[0], A + P) == 4


def test_file_mappings_merge_only_with_continuous_page_offsets_of_the_same_file() -> None:
    vmas, _, _ = fmap((), A, 1, 0)
    merged, _, _ = fmap(vmas, A + P, 1, 1)
    assert merged == (Vma(A, A + 2 * P, SHARED, F, 0),)
    for pgoff, file in ((2, F), (1, G)):  # a gap in the file, another file
        apart, _, _ = fmap(vmas, A + P, 1, pgoff, file)
        assert len(apart) == 2 and mmap.vma_merge_ok(apart) == []
    # A merge with the VMA above keeps the lower one's offset.
    above, _, _ = fmap((), A + P, 1, 5)
    below, _, _ = fmap(above, A, 1, 4)
    assert below == (Vma(A, A + 2 * P, SHARED, F, 4),)


def test_splits_advance_the_upper_part_page_offset() -> None:
    vmas, _, _ = fmap((), A, 3, 7)
    vmas, err, _ = mmap.do_munmap(vmas, A + P, P)
    assert err == 0 and vmas == (Vma(A, A + P, SHARED, F, 7), Vma(A + 2 * P, A + 3 * P, SHARED, F, 9))
    vmas, _, _ = fmap((), A, 3, 7)
    vmas, err, changed = mmap.mprotect(vmas, A + P, P, PROT_READ)
    assert err == 0 and [v.vm_pgoff for v in vmas] == [7, 8, 9]
    # Made writable again, the middle merges back, its offsets continuous.
    vmas, err, _ = mmap.mprotect(vmas, A + P, P, PROT_READ | PROT_WRITE)
    assert err == 0 and vmas == (Vma(A, A + 3 * P, SHARED, F, 7),)


def test_file_mapping_errors() -> None:
    assert fmap((), A, 1, 0, writable=False)[1] == -mmap.EACCES  # shared and writable, not open for writing
    assert fmap((), A, 1, 0, readable=False, flags=MAP_PRIVATE | MAP_FIXED)[1] == -mmap.EACCES
    assert mm((), A, P, flags=MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)[1] == -EINVAL  # shmem
    assert fmap((), A, 1, ULONG_MAX >> 12)[1] == -mmap.EOVERFLOW
    assert (
        mmap.do_mmap((), A, P, PROT_READ, MAP_SHARED | MAP_FIXED, MMAP_BASE, MIN_ADDR)[1] == -EINVAL
    )  # no file
    # Shared, read-only open: it may never become writable (no VM_MAYWRITE, no VM_SHARED).
    vmas, addr, _ = mmap.do_mmap(
        (), A, P, PROT_READ, MAP_SHARED | MAP_FIXED, MMAP_BASE, MIN_ADDR, (F, True, False)
    )
    assert addr == A and vmas[0].vm_flags == VM_READ | VM_MAYREAD | VM_MAYEXEC | mmap.VM_MAYSHARE
    assert mmap.mprotect(vmas, A, P, PROT_READ | PROT_WRITE)[1] == -mmap.EACCES
