"""mm/swapfile.c and mm/page_io.c for the whole-kernel model: one swap area of a fixed number
of slots, each holding the word of the page swapped out to it.

A swap entry is a non-present PTE whose pfn field is the slot. swap_map counts the PTEs that
hold each slot (swap_duplicate on fork, swap_free on unmap and swap-in); a slot is free when
its count is gone. There is no swap cache: a page is unmapped from every PTE and freed in
one step of reclaim (add_to_swap, try_to_unmap, __remove_mapping), and each PTE that faults
on the entry reads the slot into a page of its own, so two processes that shared a page
before it was swapped out get copies of it back (the same word, but two frames).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.kernel import KernelState


def get_swap_page(state: KernelState) -> int | None:
    """The lowest free slot (scan_swap_map_slots), None when the area is full."""
    return next((slot for slot in range(state.nr_swap) if slot not in state.swap_map), None)


def swap_writepage(state: KernelState, slot: int, word: int) -> None:
    """The page's word written to the slot, which no PTE holds yet."""
    state.swap_map[slot] = 0
    state.swap_data[slot] = word


def swap_duplicate(state: KernelState, slot: int) -> None:
    """One more PTE holds the slot (copy_one_pte of a swap entry, try_to_unmap_one)."""
    state.swap_map[slot] += 1


def swap_free(state: KernelState, slot: int) -> None:
    """A PTE no longer holds the slot; the last one frees it."""
    n = state.swap_map[slot] - 1
    if n:
        state.swap_map[slot] = n
    else:
        del state.swap_map[slot], state.swap_data[slot]
