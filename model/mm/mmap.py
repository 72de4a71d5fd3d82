"""The virtual memory areas of an mm_struct: mmap, munmap, mprotect and brk.

Sources (Linux 4.x-5.x, before the maple tree): mm/mmap.c (do_mmap, round_hint_to_min,
get_unmapped_area, unmapped_area_topdown, mmap_region, accountable_mapping, vma_merge,
is_mergeable_vma, __split_vma, __do_munmap, sys_brk, do_brk_flags), mm/mprotect.c
(do_mprotect_pkey, mprotect_fixup), arch/x86/kernel/sys_x86_64.c
(arch_get_unmapped_area_topdown, mmap_address_hint_valid), include/linux/mm.h (VM_*),
include/linux/mman.h (calc_vm_prot_bits, arch_validate_prot) and
include/uapi/asm-generic/mman-common.h (PROT_*, MAP_*).

An mm's VMAs are a tuple of Vma sorted by vm_start, never overlapping, every bound
page-aligned. Every function is pure: it returns the new tuple and leaves the page tables
and TLBs to the caller, together with the ranges whose pages it must zap (munmap, MAP_FIXED,
brk shrink) or whose PTEs it must change (mprotect), then flush. Errors are -errno with the
VMAs unchanged, except mprotect, which like the kernel keeps the VMAs it changed before
reaching a hole (see mprotect).

Anonymous memory is private (MAP_PRIVATE | MAP_ANONYMOUS mappings and the brk heap); a
file, given by its struct file (vm_file, the object's address; 0 for none), may be mapped
MAP_PRIVATE or MAP_SHARED from a page offset (vm_pgoff). An anonymous VMA's vm_pgoff is vm_start >>
PAGE_SHIFT in the kernel (do_mmap and do_brk_flags set it so, and splits and merges keep it
linear); it is never compared, so Vma carries 0 there. Not modelled: anonymous MAP_SHARED
(shmem), VM_GROWSDOWN stacks, hugetlb, mremap, mlock, vm_ops beyond the page cache's,
mempolicies and userfaultfd contexts.
The kernel's anon_vma is set by the first page fault, which this module does not see: all
VMAs are treated as having compatible anon_vmas (is_mergeable_anon_vma true). Not
modelled: RLIMIT_AS/RLIMIT_DATA (may_expand_vm, check_data_rlimit), overcommit
(security_vm_enough_memory_mm), sysctl_max_map_count, pkeys, READ_IMPLIES_EXEC,
CAP_SYS_RAWIO (an address below mmap_min_addr is always -EPERM), LA57.

Merging. vma_merge joins a new or re-flagged range [addr, end) with the VMA ending at addr
and/or the VMA starting at end when they have equal vm_flags and vm_file and, for a file,
continuous vm_pgoff (can_vma_merge_after, the kernel's can_vma_merge_before and _after in
one; the kernel also compares vm_ops, userfaultfd context, mempolicy and anon_vma, all
equal here as said above). vm_flags include VM_MAY* and VM_ACCOUNT, as in the kernel, so
VMAs with equal protections can legitimately stay apart: a private mapping made writable
once keeps VM_ACCOUNT (mprotect_fixup never drops it), and a PROT_READ mmap has none. The rule this module guarantees (vma_merge_ok checks it): if no two abutting
VMAs are mergeable before an operation, none are after it. vma_merge merges both sides
of every range it installs (mmap_region, do_brk_flags, mprotect_fixup); munmap leaves holes
between the pieces it keeps; mprotect_fixup returns early when the flags do not change and
otherwise gives the range flags that differ from the remainders it splits off. The kernel
leaves equal-flag neighbours apart only where this model cannot reach: distinct anon_vmas
(two faulted VMAs brought together), files, mempolicies, VM_SPECIAL, mremap.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from model.hw.mmu import PAGE_SHIFT, PAGE_SIZE, TASK_SIZE_TOP

ULONG_MAX = (1 << 64) - 1  # syscall arguments are unsigned long
TASK_SIZE = TASK_SIZE_TOP - PAGE_SIZE  # TASK_SIZE_MAX: x86-64 keeps the last page unmapped
_PAGE_OFFSET_MASK = PAGE_SIZE - 1

# include/uapi/asm-generic/errno-base.h
EPERM = 1
ENOMEM = 12
EACCES = 13
EINVAL = 22
EOVERFLOW = 75

# include/uapi/asm-generic/mman-common.h
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8  # accepted by mprotect, no effect
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20

# include/linux/mm.h
VM_NONE = 0x0
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10  # the VM_MAY* bits are the VM_* bits shifted left by 4
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_ACCOUNT = 0x00100000  # the mapping's pages are charged to overcommit
VM_NORESERVE = 0x00200000
# arch/x86/include/asm/page_types.h, without READ_IMPLIES_EXEC
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC


class Vma(NamedTuple):
    """A vm_area_struct: [vm_start, vm_end), page-aligned, with its VM_* flags; for a file
    mapping, its struct file (vm_file) and the file page at vm_start (vm_pgoff)."""

    vm_start: int
    vm_end: int
    vm_flags: int
    vm_file: int = 0
    vm_pgoff: int = 0


Vmas = tuple[Vma, ...]


def page_align(x: int) -> int:
    """PAGE_ALIGN on an unsigned long: wraps to 0 past ULONG_MAX - PAGE_SIZE + 1."""
    return (x + _PAGE_OFFSET_MASK) & ~_PAGE_OFFSET_MASK & ULONG_MAX


def calc_vm_prot_bits(prot: int) -> int:
    """PROT_* to VM_* (equal bit values on x86-64); other bits, as PROT_SEM, are dropped."""
    return (
        (VM_READ if prot & PROT_READ else 0)
        | (VM_WRITE if prot & PROT_WRITE else 0)
        | (VM_EXEC if prot & PROT_EXEC else 0)
    )


def _find_index(vmas: Vmas, addr: int) -> int:
    return bisect.bisect_right(vmas, addr, key=lambda v: v.vm_end)


def find_vma(vmas: Vmas, addr: int) -> Vma | None:
    """The first VMA with addr < vm_end: it contains addr or is the next one above it."""
    i = _find_index(vmas, addr)
    return vmas[i] if i < len(vmas) else None


def find_vma_intersection(vmas: Vmas, start: int, end: int) -> Vma | None:
    """The first VMA overlapping [start, end), if any."""
    vma = find_vma(vmas, start)
    return vma if vma is not None and vma.vm_start < end else None


def linear_page_index(vma: Vma, addr: int) -> int:
    """The file page that addr maps in a file VMA."""
    return vma.vm_pgoff + ((addr - vma.vm_start) >> PAGE_SHIFT)


def is_mergeable_vma(vma: Vma, new: Vma) -> bool:
    """is_mergeable_vma: equal flags and the same file (see the module doc)."""
    return vma.vm_flags == new.vm_flags and vma.vm_file == new.vm_file


def can_vma_merge_after(prev: Vma, new: Vma) -> bool:
    """prev ends where new starts and may absorb it: mergeable, and for a file new's pages
    follow prev's."""
    return (
        prev.vm_end == new.vm_start
        and is_mergeable_vma(prev, new)
        and (not new.vm_file or linear_page_index(prev, prev.vm_end) == new.vm_pgoff)
    )


def vma_merge(vmas: Vmas, new: Vma) -> Vmas:
    """Install new, whose range is free in vmas, merged with the VMA ending at new.vm_start
    and/or the one starting at new.vm_end when mergeable (vma_merge's cases 1-8, with the
    vma_link of a fresh VMA when it returns NULL)."""
    i = bisect.bisect_left(vmas, new.vm_start, key=lambda v: v.vm_start)
    lo, hi, merged = i, i, new
    if i > 0 and can_vma_merge_after(vmas[i - 1], new):
        lo, merged = i - 1, vmas[i - 1]._replace(vm_end=new.vm_end)
    if i < len(vmas) and can_vma_merge_after(new, vmas[i]):
        hi, merged = i + 1, merged._replace(vm_end=vmas[i].vm_end)
    return vmas[:lo] + (merged,) + vmas[hi:]


def split_vma(vmas: Vmas, addr: int) -> Vmas:
    """__split_vma: cut the VMA containing addr into [vm_start, addr) and [addr, vm_end)."""
    i = _find_index(vmas, addr)
    vma = vmas[i] if i < len(vmas) else None
    if vma is None or not vma.vm_start < addr < vma.vm_end or addr & _PAGE_OFFSET_MASK:
        raise ValueError(f"split_vma at {addr:#x}: no VMA has it strictly inside")
    upper = vma._replace(vm_start=addr, vm_pgoff=linear_page_index(vma, addr) if vma.vm_file else 0)
    return vmas[:i] + (vma._replace(vm_end=addr), upper) + vmas[i + 1 :]


def unmapped_area_topdown(vmas: Vmas, length: int, low_limit: int, high_limit: int) -> int:
    """vm_unmapped_area top-down: the highest addr in [low_limit, high_limit - length] whose
    [addr, addr + length) is free (no alignment: anonymous memory), else -ENOMEM."""
    for i in range(len(vmas), -1, -1):
        gap_start = vmas[i - 1].vm_end if i else 0
        gap_end = vmas[i].vm_start if i < len(vmas) else ULONG_MAX + 1
        if gap_end - length < low_limit:
            break  # every lower gap ends lower still
        top = min(gap_end, high_limit)
        if top - max(gap_start, low_limit) >= length:
            return top - length
    return -ENOMEM


def get_unmapped_area(
    vmas: Vmas, length: int, mmap_base: int, mmap_min_addr: int, addr: int = 0, flags: int = 0
) -> int:
    """get_unmapped_area with arch_get_unmapped_area_topdown (x86-64 default layout): a
    MAP_FIXED addr as is; else the hint addr if [addr, addr + length) is free; else the
    highest free range below mmap_base. -ENOMEM if none; -EPERM below mmap_min_addr.

    The kernel falls back to a bottom-up search from TASK_UNMAPPED_BASE when the top-down
    one fails; that search, above mmap_base, is not modelled: -ENOMEM instead."""
    if length > TASK_SIZE:
        return -ENOMEM
    if not flags & MAP_FIXED:
        addr &= ~_PAGE_OFFSET_MASK
        hint = find_vma(vmas, addr)
        # mmap_address_hint_valid: fits below TASK_SIZE (no LA57 window to straddle)
        if not (addr and TASK_SIZE - length >= addr and (hint is None or addr + length <= hint.vm_start)):
            addr = unmapped_area_topdown(vmas, length, PAGE_SIZE, mmap_base)
            if addr < 0:
                return addr
    if addr > TASK_SIZE - length:
        return -ENOMEM
    if addr & _PAGE_OFFSET_MASK:
        return -EINVAL
    if addr < mmap_min_addr:  # security_mmap_addr -> cap_mmap_addr, without CAP_SYS_RAWIO
        return -EPERM
    return addr


def do_munmap(vmas: Vmas, start: int, length: int) -> tuple[Vmas, int, list[tuple[int, int]]]:
    """__do_munmap: split the VMAs straddling start and end, detach those inside. Returns
    (vmas, 0 or -errno, the detached ranges in address order, one per VMA, to zap)."""
    start &= ULONG_MAX
    length &= ULONG_MAX
    if start & _PAGE_OFFSET_MASK or start > TASK_SIZE or length > TASK_SIZE - start:
        return vmas, -EINVAL, []
    length = page_align(length)
    end = start + length
    if not length:
        return vmas, -EINVAL, []
    vma = find_vma(vmas, start)
    if vma is None or vma.vm_start >= end:
        return vmas, 0, []  # a hole: nothing to do, and not an error
    if start > vma.vm_start:
        vmas = split_vma(vmas, start)
    last = find_vma(vmas, end)
    if last is not None and end > last.vm_start:
        vmas = split_vma(vmas, end)
    inside = [v for v in vmas if start <= v.vm_start and v.vm_end <= end]
    kept = tuple(v for v in vmas if not (start <= v.vm_start and v.vm_end <= end))
    return kept, 0, [(v.vm_start, v.vm_end) for v in inside]


def mmap_region(
    vmas: Vmas, addr: int, length: int, vm_flags: int, vm_file: int = 0, vm_pgoff: int = 0
) -> tuple[Vmas, int, list[tuple[int, int]]]:
    """mmap_region: clear old maps in [addr, addr + length), then install the range merged
    with its neighbours. Returns (vmas, addr, the ranges unmapped first)."""
    cleared, err, unmapped = do_munmap(vmas, addr, length)
    if err:
        return vmas, -ENOMEM, []
    if vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE:  # accountable_mapping
        vm_flags |= VM_ACCOUNT
    return vma_merge(cleared, Vma(addr, addr + length, vm_flags, vm_file, vm_pgoff)), addr, unmapped


def do_mmap(
    vmas: Vmas,
    addr: int,
    length: int,
    prot: int,
    flags: int,
    mmap_base: int,
    mmap_min_addr: int,
    file: tuple[int, bool, bool] | None = None,
    pgoff: int = 0,
) -> tuple[Vmas, int, list[tuple[int, int]]]:
    """mmap(addr, length, prot, flags, fd, pgoff << PAGE_SHIFT) as do_mmap: returns (vmas,
    the address or -errno, the ranges a MAP_FIXED mapping unmapped first, which the caller
    must zap). file is the fd's (struct file, FMODE_READ, FMODE_WRITE), None for
    MAP_ANONYMOUS.

    MAP_PRIVATE and MAP_SHARED of a file, and MAP_PRIVATE | MAP_ANONYMOUS, each optionally
    with MAP_FIXED, are modelled: other flags give -EINVAL (the kernel would map shared
    anonymous memory, or ignore unknown bits). A MAP_SHARED mapping of a file not open for
    writing can never be written: it loses VM_MAYWRITE and VM_SHARED, as in the kernel."""
    addr &= ULONG_MAX
    length &= ULONG_MAX
    if not length:
        return vmas, -EINVAL, []
    if not flags & MAP_FIXED:
        addr = round_hint_to_min(addr, mmap_min_addr)
    length = page_align(length)
    if not length:
        return vmas, -ENOMEM, []
    if pgoff + (length >> PAGE_SHIFT) > ULONG_MAX >> PAGE_SHIFT:
        return vmas, -EOVERFLOW, []
    if flags & ~(MAP_TYPE | MAP_FIXED | MAP_ANONYMOUS) or flags & MAP_TYPE not in (MAP_PRIVATE, MAP_SHARED):
        return vmas, -EINVAL, []
    if (file is None) != bool(flags & MAP_ANONYMOUS) or (file is None and flags & MAP_TYPE == MAP_SHARED):
        return vmas, -EINVAL, []  # the kernel: -EBADF without a file; shmem for shared anonymous
    addr = get_unmapped_area(vmas, length, mmap_base, mmap_min_addr, addr, flags)
    if addr < 0:
        return vmas, addr, []
    vm_flags = calc_vm_prot_bits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if file is None:
        return mmap_region(vmas, addr, length, vm_flags)
    filp, readable, writable = file
    if flags & MAP_TYPE == MAP_SHARED:
        if prot & PROT_WRITE and not writable:
            return vmas, -EACCES, []
        vm_flags |= VM_SHARED | VM_MAYSHARE
        if not writable:
            vm_flags &= ~(VM_MAYWRITE | VM_SHARED)
    if not readable:
        return vmas, -EACCES, []
    return mmap_region(vmas, addr, length, vm_flags, filp, pgoff)


def round_hint_to_min(hint: int, mmap_min_addr: int) -> int:
    """A non-zero hint below mmap_min_addr is raised to it rather than refused."""
    hint &= ~_PAGE_OFFSET_MASK
    if hint and hint < mmap_min_addr:
        return page_align(mmap_min_addr)
    return hint


def mprotect_fixup(vmas: Vmas, vma: Vma, start: int, end: int, newflags: int) -> tuple[Vmas, int | None]:
    """mprotect_fixup of [start, end) inside vma: split it off, give it newflags and merge it
    with abutting neighbours. Returns (vmas, the flags set, or None if nothing changed)."""
    if newflags == vma.vm_flags:
        return vmas, None
    # Making a private mapping writable charges it; making it read-only never uncharges.
    if newflags & VM_WRITE and not vma.vm_flags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
        newflags |= VM_ACCOUNT
    if start != vma.vm_start:
        vmas = split_vma(vmas, start)
    if end != vma.vm_end:
        vmas = split_vma(vmas, end)
    i = bisect.bisect_left(vmas, start, key=lambda v: v.vm_start)
    return vma_merge(vmas[:i] + vmas[i + 1 :], vmas[i]._replace(vm_flags=newflags)), newflags


def mprotect(vmas: Vmas, start: int, length: int, prot: int) -> tuple[Vmas, int, list[tuple[int, int, int]]]:
    """do_mprotect_pkey: returns (vmas, 0 or -errno, the (start, end, new vm_flags) ranges
    whose PTEs the caller must change and flush, one per mprotect_fixup that changed flags).

    As in the kernel, the VMAs are walked in order and a hole found after the first one
    (-ENOMEM) stops the walk without undoing the VMAs already changed: their ranges are
    returned with the error. A hole at start changes nothing. PROT_GROWSDOWN/PROT_GROWSUP
    are refused with -EINVAL (no VM_GROWSDOWN VMAs here)."""
    start &= ULONG_MAX
    length &= ULONG_MAX
    if start & _PAGE_OFFSET_MASK:
        return vmas, -EINVAL, []
    if not length:
        return vmas, 0, []
    length = page_align(length)
    end = start + length
    if not length or end > ULONG_MAX:  # end <= start on unsigned long
        return vmas, -ENOMEM, []
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):  # arch_validate_prot
        return vmas, -EINVAL, []
    vma = find_vma(vmas, start)
    if vma is None or vma.vm_start > start:
        return vmas, -ENOMEM, []
    changed: list[tuple[int, int, int]] = []
    nstart = start
    while True:
        newflags = calc_vm_prot_bits(prot) | (vma.vm_flags & ~(VM_READ | VM_WRITE | VM_EXEC))
        if (newflags & ~(newflags >> 4)) & (VM_READ | VM_WRITE | VM_EXEC):  # lacks a VM_MAY* bit
            return vmas, -EACCES, changed
        tmp = min(vma.vm_end, end)
        vmas, setflags = mprotect_fixup(vmas, vma, nstart, tmp, newflags)
        if setflags is not None:
            changed.append((nstart, tmp, setflags))
        # *pprev may have absorbed the next VMA (equal flags already): skip past it
        prev = find_vma(vmas, tmp - 1)
        assert prev is not None
        nstart = max(tmp, prev.vm_end)
        if nstart >= end:
            return vmas, 0, changed
        nxt = find_vma(vmas, nstart)
        if nxt is None or nxt.vm_start != nstart:
            return vmas, -ENOMEM, changed
        vma = nxt


def do_brk_flags(vmas: Vmas, addr: int, length: int, flags: int) -> tuple[Vmas, int, list[tuple[int, int]]]:
    """do_brk_flags: map [addr, addr + length) as heap (VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT),
    merged with the previous brk VMA. Returns (vmas, 0 or -errno, ranges unmapped first:
    none when called from brk, which checked the range is free)."""
    if flags & ~VM_EXEC:
        return vmas, -EINVAL, []
    flags |= VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT
    # mmap_min_addr 0: the heap starts after the ELF image, far above it
    err = get_unmapped_area(vmas, length, 0, 0, addr, MAP_FIXED)
    if err < 0:
        return vmas, err, []
    cleared, err, unmapped = do_munmap(vmas, addr, length)
    if err:
        return vmas, -ENOMEM, []
    return vma_merge(cleared, Vma(addr, addr + length, flags)), 0, unmapped


def brk(vmas: Vmas, mm_start_brk: int, mm_brk: int, new_brk: int) -> tuple[Vmas, int, list[tuple[int, int]]]:
    """sys_brk (without CONFIG_COMPAT_BRK's end_data floor or RLIMIT_DATA): returns (vmas,
    the new mm->brk, which is new_brk unaligned, or mm_brk if refused, the ranges a shrink
    unmapped). Growing needs one free page between the new break and the next VMA; the
    stack_guard_gap of a VM_GROWSDOWN next VMA (vm_start_gap) does not arise here."""
    new_brk &= ULONG_MAX
    if new_brk < mm_start_brk:
        return vmas, mm_brk, []
    newbrk = page_align(new_brk)
    oldbrk = page_align(mm_brk)
    if oldbrk == newbrk:
        return vmas, new_brk, []
    if new_brk <= mm_brk:  # shrinking is always allowed
        shrunk, err, unmapped = do_munmap(vmas, newbrk, oldbrk - newbrk)
        if err < 0:
            return vmas, mm_brk, []
        return shrunk, new_brk, unmapped
    nxt = find_vma(vmas, oldbrk)
    if nxt is not None and newbrk + PAGE_SIZE > nxt.vm_start:
        return vmas, mm_brk, []
    grown, err, unmapped = do_brk_flags(vmas, oldbrk, (newbrk - oldbrk) & ULONG_MAX, 0)
    if err < 0:
        return vmas, mm_brk, []
    return grown, new_brk, unmapped


def vma_merge_ok(vmas: Vmas) -> list[str]:
    """Violations of this module's VMA rules: bounds not page-aligned, empty or past
    TASK_SIZE; VMAs unsorted or overlapping; abutting mergeable VMAs left apart (which this
    module always merges: see the module doc). Empty when all hold."""
    problems: list[str] = []
    for vma in vmas:
        if (vma.vm_start | vma.vm_end) & _PAGE_OFFSET_MASK:
            problems.append(f"{_fmt(vma)} is not page-aligned")
        if not 0 <= vma.vm_start < vma.vm_end <= TASK_SIZE:
            problems.append(f"{_fmt(vma)} is empty or outside [0, TASK_SIZE)")
    for a, b in zip(vmas, vmas[1:], strict=False):
        if a.vm_end > b.vm_start:
            problems.append(f"{_fmt(a)} and {_fmt(b)} overlap or are out of order")
        elif can_vma_merge_after(a, b):
            problems.append(f"{_fmt(a)} and {_fmt(b)} abut and are mergeable but were not merged")
    return problems


def _fmt(vma: Vma) -> str:
    file = f" file {vma.vm_file} page {vma.vm_pgoff}" if vma.vm_file else ""
    return f"[{vma.vm_start:#x}, {vma.vm_end:#x}) flags {vma.vm_flags:#x}{file}"
