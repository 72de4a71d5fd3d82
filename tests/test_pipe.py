"""fs/pipe.c's ring on its own: merging a write's head, filling pages, reading across
buffers and keeping one freed page as tmp_page."""

from __future__ import annotations

from model.fs import pipe
from model.fs.pipe import PIPE_BUF, Pipe, PipeBuffer


def test_a_head_merges_only_when_it_fits_whole() -> None:
    p = Pipe(2, (PipeBuffer(7, 0, ((1, 3072),)),))
    assert pipe.merge_head(p, 2, 1024) == (Pipe(2, (PipeBuffer(7, 0, ((1, 3072), (2, 1024))),)), 1024)
    assert pipe.merge_head(p, 2, 2048) == (p, 0)  # 2048 would not fit: none of it goes in
    assert pipe.merge_head(p, 2, PIPE_BUF) == (p, 0)  # a whole page has no head
    assert pipe.merge_head(Pipe(2), 2, 1024) == (Pipe(2), 0)  # nothing to merge into


def test_pages_fill_up_to_a_page_each() -> None:
    p, n = pipe.push_page(Pipe(2), 7, 1, 6144)
    assert n == PIPE_BUF and p.bufs == (PipeBuffer(7, 0, ((1, PIPE_BUF),)),)
    p, n = pipe.push_page(p, 8, 1, 6144 - n)
    assert n == 2048 and p.full and pipe.contents(p) == ((1, 6144),)


def test_a_read_crosses_buffers_and_keeps_the_first_freed_page() -> None:
    p = Pipe(
        4,
        (
            PipeBuffer(7, 0, ((1, 1024), (2, 3072))),
            PipeBuffer(8, 0, ((2, 2048),)),
            PipeBuffer(9, 0, ((3, 512),)),
        ),
    )
    p2, got, freed = pipe.take(p, 5000)
    assert got == ((1, 1024), (2, 3976)) and freed == [] and p2.tmp_page == 7
    assert p2.bufs == (PipeBuffer(8, 904, ((2, 1144),)), PipeBuffer(9, 0, ((3, 512),)))
    p3, got, freed = pipe.take(p2, 10_000)
    assert got == ((2, 1144), (3, 512)) and freed == [8, 9] and not p3.bufs and p3.tmp_page == 7
    assert pipe.ring_ok(p3) == [] and pipe.pages(p3) == [7]


def test_ring_ok_names_what_is_wrong() -> None:
    bad = Pipe(1, (PipeBuffer(7, 3072, ((1, 2048),)), PipeBuffer(7, 0, ((1, 1),))))
    assert pipe.ring_ok(bad) == [
        "2 buffers in a ring of 1",
        "buffer of page 7 holds bytes [3072, 5120)",
        "pages [7, 7] repeat",
    ]
