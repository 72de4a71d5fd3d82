"""fs/pipe.c (4.x-5.4): a pipe's ring of pipe buffers, each a page frame, and what
pipe_write and pipe_read do to it under pipe->mutex. Sleeping, waking and the page
allocator are the caller's (model/kernel.py): these functions only move bytes.

Bytes are counted, not stored: a buffer holds runs of (writer's pid, nbytes), so that a
checker can see whose bytes lie where. PIPE_BUF is PAGE_SIZE (include/linux/limits.h: 4096
on x86), and pipe_write keeps a write of at most PIPE_BUF bytes in one buffer: it merges
its ``total_len % PAGE_SIZE`` head into the last buffer only when that head fits, and fills
fresh pages with the rest, so no other writer's bytes come between its own.
"""

from __future__ import annotations

from typing import NamedTuple

from model.hw.mmu import PAGE_SIZE

PIPE_BUF = PAGE_SIZE

Run = tuple[int, int]  # (writer's pid, nbytes)


class PipeBuffer(NamedTuple):
    """struct pipe_buffer: a page and the unread bytes in it (offset is where they start)."""

    page: int
    offset: int
    runs: tuple[Run, ...]

    @property
    def len(self) -> int:
        return sum(n for _, n in self.runs)


class Pipe(NamedTuple):
    """struct pipe_inode_info: the occupied buffers from curbuf on (nrbufs of them, at most
    ``buffers``), the spare page anon_pipe_buf_release kept (tmp_page), and the open ends."""

    buffers: int
    bufs: tuple[PipeBuffer, ...] = ()
    tmp_page: int | None = None
    readers: int = 0
    writers: int = 0

    @property
    def full(self) -> bool:
        return len(self.bufs) == self.buffers

    @property
    def len(self) -> int:
        return sum(b.len for b in self.bufs)


def append(runs: tuple[Run, ...], writer: int, n: int) -> tuple[Run, ...]:
    if runs and runs[-1][0] == writer:
        return (*runs[:-1], (writer, runs[-1][1] + n))
    return (*runs, (writer, n))


def merge_head(pipe: Pipe, writer: int, total_len: int) -> tuple[Pipe, int]:
    """pipe_write's "We try to merge small writes": the ``total_len % PAGE_SIZE`` head
    copied into the last buffer if it fits there. The pipe and the bytes written."""
    chars = total_len & (PAGE_SIZE - 1)
    if not pipe.bufs or not chars:
        return pipe, 0
    last = pipe.bufs[-1]
    if last.offset + last.len + chars > PAGE_SIZE:
        return pipe, 0
    last = last._replace(runs=append(last.runs, writer, chars))
    return pipe._replace(bufs=(*pipe.bufs[:-1], last)), chars


def push_page(pipe: Pipe, page: int, writer: int, left: int) -> tuple[Pipe, int]:
    """pipe_write's loop body with a free slot: a fresh page filled with up to PAGE_SIZE of
    the bytes left. The pipe and the bytes written."""
    assert not pipe.full
    chars = min(left, PAGE_SIZE)
    return pipe._replace(bufs=(*pipe.bufs, PipeBuffer(page, 0, ((writer, chars),)))), chars


def take(pipe: Pipe, total_len: int) -> tuple[Pipe, tuple[Run, ...], list[int]]:
    """pipe_read's copies from curbuf on until total_len bytes are read or the pipe is empty.
    A buffer emptied is released (anon_pipe_buf_release: its page kept as tmp_page if there
    is none, else freed). The pipe, the runs read, and the pages to free."""
    got: tuple[Run, ...] = ()
    freed: list[int] = []
    bufs = list(pipe.bufs)
    tmp_page = pipe.tmp_page
    while bufs and total_len:
        buf = bufs[0]
        runs = list(buf.runs)
        offset = buf.offset
        while runs and total_len:
            writer, n = runs[0]
            chars = min(n, total_len)
            got = append(got, writer, chars)
            total_len -= chars
            offset += chars
            if chars == n:
                runs.pop(0)
            else:
                runs[0] = (writer, n - chars)
        if runs:
            bufs[0] = PipeBuffer(buf.page, offset, tuple(runs))
            break
        bufs.pop(0)
        if tmp_page is None:
            tmp_page = buf.page
        else:
            freed.append(buf.page)
    return pipe._replace(bufs=tuple(bufs), tmp_page=tmp_page), got, freed


def pages(pipe: Pipe) -> list[int]:
    """Every page frame the pipe holds: its buffers' and its tmp_page."""
    return [b.page for b in pipe.bufs] + ([pipe.tmp_page] if pipe.tmp_page is not None else [])


def contents(pipe: Pipe) -> tuple[Run, ...]:
    """The unread bytes in order, runs of one writer joined."""
    out: tuple[Run, ...] = ()
    for buf in pipe.bufs:
        for writer, n in buf.runs:
            out = append(out, writer, n)
    return out


def ring_ok(pipe: Pipe) -> list[str]:
    """The ring's own rules: at most ``buffers`` buffers, each non-empty and inside its page,
    no page twice."""
    out = []
    if len(pipe.bufs) > pipe.buffers:
        out.append(f"{len(pipe.bufs)} buffers in a ring of {pipe.buffers}")
    for buf in pipe.bufs:
        if not buf.len > 0 or buf.offset < 0 or buf.offset + buf.len > PAGE_SIZE:
            out.append(f"buffer of page {buf.page} holds bytes [{buf.offset}, {buf.offset + buf.len})")
    if len(set(pages(pipe))) != len(pages(pipe)):
        out.append(f"pages {pages(pipe)} repeat")
    return out
