"""Slab cache geometry and the kmalloc size classes (mm/slab_common.c, mm/slub.c, 4.x-5.6).

Everything here is fixed when a cache is created: the object layout (calculate_sizes), the
slab order (calculate_order), the list tunables (kmem_cache_open), and which kmalloc cache
serves a size (kmalloc_slab). The integer helpers use operators only, so that z3
bit-vectors pass through the same code (invariants/slub_proofs.py).

Decisions where kernels differ or the model leaves things out:
- The free pointer sits at offset 0 of the object, or just past it for caches with a
  constructor or SLAB_TYPESAFE_BY_RCU (4.x-5.6; 5.7 moved it to the middle of the object).
- No slub_debug layout (red zones, poisoning, tracking): objects are ALIGN(object_size, 8)
  rounded up to the cache's alignment.
- No cache merging (__kmem_cache_alias): every kmem_cache_create makes a cache, as with
  slab_nomerge.
- Only the normal kmalloc caches; no kmalloc-dma-* or kmalloc-rcl-* (GFP_DMA,
  __GFP_RECLAIMABLE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.hw.memory import PAGE_SHIFT

PAGE_SIZE = 1 << PAGE_SHIFT
SIZEOF_VOID_P = 8
ARCH_KMALLOC_MINALIGN = 8  # __alignof__(unsigned long long) on x86-64
ARCH_SLAB_MINALIGN = 8
CACHE_LINE_SIZE = 64  # cache_line_size() on x86-64
MAX_OBJS_PER_PAGE = 32767  # page->objects is 15 bits

# include/linux/slab.h for SLUB: kmalloc caches from 2^3 up to two pages; larger requests
# go to the page allocator (kmalloc_large).
KMALLOC_SHIFT_LOW = 3
KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1
KMALLOC_MAX_CACHE_SIZE = 1 << KMALLOC_SHIFT_HIGH
KMALLOC_MIN_SIZE = 1 << KMALLOC_SHIFT_LOW
ZERO_SIZE_PTR = 16  # ((void *)16): what kmalloc(0) returns; kfree ignores it

# Cache flags the model knows (include/linux/slab.h).
SLAB_HWCACHE_ALIGN = "SLAB_HWCACHE_ALIGN"
SLAB_TYPESAFE_BY_RCU = "SLAB_TYPESAFE_BY_RCU"
SLAB_RECLAIM_ACCOUNT = "SLAB_RECLAIM_ACCOUNT"
SLAB_ACCOUNT = "SLAB_ACCOUNT"
SLAB_FLAGS = (SLAB_HWCACHE_ALIGN, SLAB_TYPESAFE_BY_RCU, SLAB_RECLAIM_ACCOUNT, SLAB_ACCOUNT)

# mm/slab_common.c size_index[]: the kmalloc index for sizes 1..192, by (size - 1) / 8.
# Index 1 is kmalloc-96 and index 2 kmalloc-192; index n >= 3 is kmalloc-2^n.
size_index = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2)


def kmalloc_size(index: int) -> int:
    """include/linux/slab.h kmalloc_size: the object size of kmalloc_caches[index]."""
    return 96 if index == 1 else 192 if index == 2 else 1 << index


def kmalloc_name(index: int) -> str:
    return f"kmalloc-{kmalloc_size(index)}"


def kmalloc_indexes() -> tuple[int, ...]:
    """The kmalloc caches create_kmalloc_caches makes, in the order it makes them."""
    out: list[int] = []
    for i in range(KMALLOC_SHIFT_LOW, KMALLOC_SHIFT_HIGH + 1):
        out.append(i)
        if i == 6:  # KMALLOC_MIN_SIZE <= 32: kmalloc-96 after kmalloc-64
            out.append(1)
        if i == 7:  # KMALLOC_MIN_SIZE <= 64: kmalloc-192 after kmalloc-128
            out.append(2)
    return tuple(out)


# C operators whose Python spelling does not take z3 bit-vectors, so that kmalloc_slab, fls
# and size_index_elem run on z3 terms as well as on ints (invariants/slub_proofs.py). On ints
# they are the plain Python operators; z3 is imported only when a proof passes its terms.

INT_BITS = 32  # C's int and unsigned int: the width an int takes next to a z3 condition


def _symbolic(*xs: Any) -> bool:
    return not all(isinstance(x, int) for x in xs)


def if_then_else(cond: Any, then: Any, otherwise: Any) -> Any:
    """C's cond ? then : otherwise, with both arms evaluated (they have no side effects)."""
    if isinstance(cond, bool):
        return then if cond else otherwise
    import z3

    if not _symbolic(then, otherwise):
        then, otherwise = z3.BitVecVal(then, INT_BITS), z3.BitVecVal(otherwise, INT_BITS)
    return z3.If(cond, then, otherwise)


def ule(a: Any, b: Any) -> Any:
    """C's a <= b on unsigned operands (z3's <= is signed)."""
    if not _symbolic(a, b):
        return a <= b
    import z3

    return z3.ULE(a, b)


def udiv(a: Any, b: Any) -> Any:
    """C's a / b on unsigned operands (z3 bit-vectors have no //)."""
    if not _symbolic(a, b):
        return a // b
    import z3

    return z3.UDiv(a, b)


def array_index(table: tuple[int, ...], i: Any) -> Any:
    """table[i], and 0 for an i past either end (kmalloc_caches[0] is NULL): kmalloc_slab reads
    size_index[] in both arms of its if_then_else, and only the taken arm stays in range."""
    if not _symbolic(i):
        return table[i] if 0 <= i < len(table) else 0
    import z3

    out = z3.BitVecVal(0, INT_BITS)
    for n in reversed(range(len(table))):
        out = z3.If(i == n, z3.BitVecVal(table[n], INT_BITS), out)
    return out


def size_index_elem(size: Any) -> Any:
    """mm/slab_common.c size_index_elem: (bytes - 1) / 8."""
    return udiv(size - 1, 8)


def fls(x: int) -> int:
    """include/asm-generic/bitops/fls.h: the 1-based position of the most significant set bit
    of the unsigned int x, 0 for 0. Each step halves the window the bit lies in."""
    x = word = x & 0xFFFFFFFF  # an unsigned int
    r = 32
    for mask, shift in ((0xFFFF0000, 16), (0xFF000000, 8), (0xF0000000, 4), (0xC0000000, 2), (0x80000000, 1)):
        clear = (x & mask) == 0
        x = if_then_else(clear, x << shift, x)
        r = if_then_else(clear, r - shift, r)
    return if_then_else(word == 0, 0, r)


def kmalloc_slab(size: int) -> int | None:
    """mm/slab_common.c kmalloc_slab for 1 <= size <= KMALLOC_MAX_CACHE_SIZE: the index of the
    kmalloc cache that serves it (None for size 0, which gets ZERO_SIZE_PTR). The kernel's
    if (size <= 192) index = size_index[size_index_elem(size)]; else index = fls(size - 1);
    is an if_then_else, so that a z3 size (standing for sizes from 1 up) passes through."""
    if isinstance(size, int) and not size:
        return None
    return if_then_else(ule(size, 192), array_index(size_index, size_index_elem(size)), fls(size - 1))


def get_order(size: int) -> int:
    """include/asm-generic/getorder.h get_order: the smallest order whose block holds size bytes."""
    return max(0, ((size - 1) >> PAGE_SHIFT).bit_length())


def ALIGN(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def order_objects(order: int, size: int) -> int:
    """mm/slub.c order_objects: objects of size bytes in a slab of 2^order pages."""
    return (PAGE_SIZE << order) // size


# Reciprocal division (lib/reciprocal_div.c), as obj_to_index uses it since 5.1.


@dataclass(frozen=True)
class Reciprocal:
    m: int
    sh1: int
    sh2: int


def reciprocal_value(d: int) -> Reciprocal:
    """lib/reciprocal_div.c reciprocal_value: multiplier and shifts for dividing a u32 by d."""
    shift = fls(d - 1)
    m = ((1 << 32) * ((1 << shift) - d)) // d + 1
    return Reciprocal(m & 0xFFFFFFFF, min(shift, 1), max(shift - 1, 0))


def reciprocal_divide(a: Any, m: Any, sh1: Any, sh2: Any) -> Any:
    """include/linux/reciprocal_div.h reciprocal_divide: a / d for a u32 a, from reciprocal_value(d)."""
    t = (a * m) >> 32
    return (t + ((a - t) >> sh1)) >> sh2


def obj_to_index(offset: Any, m: Any, sh1: Any, sh2: Any) -> Any:
    """mm/slub.c __obj_to_index: the index of the object at offset bytes into its slab."""
    return reciprocal_divide(offset, m, sh1, sh2)


def index_to_obj(base: Any, index: Any, size: Any) -> Any:
    """The address of object index of a slab starting at base (fixup_red_left + index * size)."""
    return base + index * size


@dataclass(frozen=True)
class CacheSpec:
    """A kmem_cache_create call: kmem_cache_create(name, size, align, flags, ctor)."""

    name: str
    size: int
    align: int = 0
    flags: tuple[str, ...] = ()
    ctor: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", tuple(self.flags))
        if not self.name or self.name.startswith("kmalloc-"):
            raise ValueError(f"cache name {self.name!r} is empty or names a kmalloc cache")
        if not 1 <= self.size <= KMALLOC_MAX_CACHE_SIZE:
            raise ValueError(f"cache {self.name}: size {self.size} is not in 1..{KMALLOC_MAX_CACHE_SIZE}")
        if self.align & (self.align - 1):
            raise ValueError(f"cache {self.name}: align {self.align} is not a power of two")
        unknown = [f for f in self.flags if f not in SLAB_FLAGS]
        if unknown:
            raise ValueError(f"cache {self.name}: unknown flags {unknown}; known: {', '.join(SLAB_FLAGS)}")


@dataclass(frozen=True)
class SlubParams:
    """The boot parameters that shape every cache: slub_min_order=, slub_max_order=,
    slub_min_objects= (0: 4 * (fls(nr_cpu_ids) + 1)), and nr_cpu_ids."""

    slub_min_order: int = 0
    slub_max_order: int = 3  # PAGE_ALLOC_COSTLY_ORDER
    slub_min_objects: int = 0
    nr_cpu_ids: int = 1
    MAX_ORDER: int = 11


@dataclass(frozen=True)
class KmemCache:
    """The fields of struct kmem_cache fixed at creation."""

    name: str
    object_size: int  # the size the creator asked for
    size: int  # the object's slot, free pointer and alignment included
    align: int
    offset: int  # where the free pointer sits in a free object
    oo: tuple[int, int]  # (order, objects) of a slab: oo_order(s->oo), oo_objects(s->oo)
    min: tuple[int, int]  # the fallback when an oo-order block is not to be had
    min_partial: int  # empty slabs kept on a node's partial list
    cpu_partial: int  # free objects kept in slabs on a CPU's partial list
    flags: tuple[str, ...]
    ctor: bool
    reciprocal_size: Reciprocal  # for obj_to_index
    kmalloc_index: int = 0  # its index in kmalloc_caches[], 0 for other caches
    # s->memcg_params.memcg: the memcg a per-memcg copy of a SLAB_ACCOUNT cache charges its
    # slab pages to (memcg_create_kmem_cache); None for a root cache, whose are not charged.
    memcg: int | None = None

    def object_address(self, pfn: int, index: int) -> int:
        return index_to_obj(pfn << PAGE_SHIFT, index, self.size)

    def object_index(self, pfn: int, address: int) -> int:
        r = self.reciprocal_size
        return obj_to_index(address - (pfn << PAGE_SHIFT), r.m, r.sh1, r.sh2)


def calculate_alignment(flags: tuple[str, ...], align: int, size: int) -> int:
    """mm/slab_common.c calculate_alignment."""
    if SLAB_HWCACHE_ALIGN in flags:
        ralign = CACHE_LINE_SIZE
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, ARCH_SLAB_MINALIGN)
    return ALIGN(align, SIZEOF_VOID_P)


def slab_order(p: SlubParams, size: int, min_objects: int, max_order: int, fract_leftover: int) -> int:
    """mm/slub.c slab_order: the lowest order from slub_min_order holding min_objects objects
    that wastes at most 1/fract_leftover of the slab."""
    if order_objects(p.slub_min_order, size) > MAX_OBJS_PER_PAGE:
        return get_order(size * MAX_OBJS_PER_PAGE) - 1
    order = max(p.slub_min_order, get_order(min_objects * size))
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(p: SlubParams, size: int) -> int:
    """mm/slub.c calculate_order: relax the waste allowed, then the objects required."""
    min_objects = p.slub_min_objects or 4 * (fls(p.nr_cpu_ids) + 1)
    min_objects = min(min_objects, order_objects(p.slub_max_order, size))
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = slab_order(p, size, min_objects, p.slub_max_order, fraction)
            if order <= p.slub_max_order:
                return order
            fraction //= 2
        min_objects -= 1
    order = slab_order(p, size, 1, p.slub_max_order, 1)
    if order <= p.slub_max_order:
        return order
    order = slab_order(p, size, 1, p.MAX_ORDER, 1)
    if order < p.MAX_ORDER:
        return order
    raise ValueError(f"no slab order below MAX_ORDER {p.MAX_ORDER} holds a {size}-byte object")


def set_min_partial(size: int) -> int:
    """mm/slub.c set_min_partial(s, ilog2(s->size) / 2), clamped to [MIN_PARTIAL, MAX_PARTIAL]."""
    return min(max((size.bit_length() - 1) // 2, 5), 10)


def set_cpu_partial(size: int) -> int:
    """mm/slub.c set_cpu_partial with CONFIG_SLUB_CPU_PARTIAL and no debug flags."""
    if size >= PAGE_SIZE:
        return 2
    if size >= 1024:
        return 6
    if size >= 256:
        return 13
    return 30


def kmem_cache_open(
    p: SlubParams, spec: CacheSpec, *, kmalloc_index: int = 0, cpu_partial: int | None = None
) -> KmemCache:
    """mm/slub.c kmem_cache_open with calculate_sizes, for a cache without debug flags.
    cpu_partial overrides set_cpu_partial, as writing /sys/kernel/slab/<cache>/cpu_partial does."""
    align = calculate_alignment(spec.flags, spec.align, spec.size)
    size = ALIGN(spec.size, SIZEOF_VOID_P)
    offset = 0
    if SLAB_TYPESAFE_BY_RCU in spec.flags or spec.ctor:
        offset, size = size, size + SIZEOF_VOID_P  # the object must survive being free
    size = ALIGN(size, align)
    order = calculate_order(p, size)
    return KmemCache(
        name=kmalloc_name(kmalloc_index) if kmalloc_index else spec.name,
        object_size=spec.size,
        size=size,
        align=align,
        offset=offset,
        oo=(order, order_objects(order, size)),
        min=(get_order(size), order_objects(get_order(size), size)),
        min_partial=set_min_partial(size),
        cpu_partial=set_cpu_partial(size) if cpu_partial is None else cpu_partial,
        flags=spec.flags,
        ctor=spec.ctor,
        reciprocal_size=reciprocal_value(size),
        kmalloc_index=kmalloc_index,
    )


def create_kmalloc_caches(p: SlubParams, cpu_partial: int | None = None) -> tuple[KmemCache, ...]:
    """mm/slab_common.c create_kmalloc_caches: kmalloc-8 ... kmalloc-8192, with 96 and 192,
    aligned to ARCH_KMALLOC_MINALIGN."""
    return tuple(
        kmem_cache_open(
            p,
            CacheSpec("kmalloc", kmalloc_size(i), ARCH_KMALLOC_MINALIGN),
            kmalloc_index=i,
            cpu_partial=cpu_partial,
        )
        for i in kmalloc_indexes()
    )
