"""TCP sequence-space arithmetic (include/net/tcp.h, net/ipv4/tcp_input.c, Linux 4.x-5.x).

Sequence numbers, acks and windows are u32 and wrap: before() and after() order two of them
by the sign of their u32 difference, (s32)(seq1 - seq2), which is the true order whenever
they lie within 2^31 of each other (invariants/tcp_proofs.py proves it).

Every helper takes Python ints (u32 values 0..2^32-1, results truncated as C does) or z3
bit-vectors of width 32, so that z3 proves things about the very code the TCP model runs.
The int path comes first and is plain arithmetic: the model calls before()/after() on every
segment. z3 is imported only when a proof passes its terms. A z3 bit-vector needs no
truncation (its arithmetic is modulo 2^32 already), and z3's <, <=, >, >= on bit-vectors
are signed, which is what (s32) means; the unsigned comparisons go through _ult/_ule.

Every helper is a module-level function that calls the others through this module's
globals, so that a mutant replacing one (before, say) changes every caller.
"""

from __future__ import annotations

from typing import Any

U32 = 0xFFFF_FFFF
S32_MIN = 1 << 31  # |INT_MIN|: a u32 at or above it reads negative as an s32


# The operators whose Python and z3 spellings differ.


def _concrete(*xs: Any) -> bool:
    return all(isinstance(x, int) for x in xs)  # bool is an int too


def _ult(a: Any, b: Any) -> Any:
    """a < b on u32 operands."""
    if _concrete(a, b):
        return a < b
    import z3

    return z3.ULT(a, b)


def _ule(a: Any, b: Any) -> Any:
    if _concrete(a, b):
        return a <= b
    import z3

    return z3.ULE(a, b)


def _not(a: Any) -> Any:
    if _concrete(a):
        return not a
    import z3

    return z3.Not(a)


def _and(*cs: Any) -> Any:
    if _concrete(*cs):
        return all(cs)
    import z3

    return z3.And(*cs)


def _or(*cs: Any) -> Any:
    if _concrete(*cs):
        return any(cs)
    import z3

    return z3.Or(*cs)


def _ite(cond: Any, then: Any, otherwise: Any) -> Any:
    """cond ? then : otherwise; with a z3 cond, int arms are read as u32 and bool arms as z3
    Booleans."""
    if _concrete(cond):
        return then if cond else otherwise
    import z3

    def term(x: Any) -> Any:
        if isinstance(x, bool):
            return z3.BoolVal(x)
        return z3.BitVecVal(x, 32) if isinstance(x, int) else x

    return z3.If(cond, term(then), term(otherwise))


# C conversions


def u32(x: Any) -> Any:
    """(u32)x: x modulo 2^32. A z3 bit-vector of width 32 is one already; a wider one is cut."""
    if isinstance(x, int):
        return x & U32
    if x.size() == 32:
        return x
    import z3

    return z3.Extract(31, 0, x)


def s32(x: Any) -> Any:
    """(s32)x: the two's complement reading of a u32, -2^31..2^31-1. On a z3 bit-vector it is
    the same term: z3 compares bit-vectors as signed, so compare the result, don't add to it."""
    if isinstance(x, int):
        return ((x + S32_MIN) & U32) - S32_MIN
    return u32(x)


# include/net/tcp.h


def before(seq1: Any, seq2: Any) -> Any:
    """include/net/tcp.h before(): (__s32)(seq1 - seq2) < 0."""
    if isinstance(seq1, int) and isinstance(seq2, int):
        return (seq1 - seq2) & U32 >= S32_MIN  # the hot path: the sign bit of the u32 difference
    return s32(seq1 - seq2) < 0


def after(seq2: Any, seq1: Any) -> Any:
    """include/net/tcp.h: #define after(seq2, seq1) before(seq1, seq2)."""
    return before(seq1, seq2)


def between(seq1: Any, seq2: Any, seq3: Any) -> Any:
    """include/net/tcp.h between(): is seq2 <= seq1 <= seq3? (seq3 - seq2 >= seq1 - seq2, u32)."""
    return _ule(u32(seq1 - seq2), u32(seq3 - seq2))


def tcp_receive_window(rcv_wup: Any, rcv_wnd: Any, rcv_nxt: Any) -> Any:
    """include/net/tcp.h tcp_receive_window(): the window we are currently advertising,
    s32 win = rcv_wup + rcv_wnd - rcv_nxt, 0 if negative (rcv_nxt can be after the window if
    the peer pushed more than it was offered)."""
    win = s32(rcv_wup + rcv_wnd - rcv_nxt)
    return u32(_ite(win < 0, 0, win))


# net/ipv4/tcp_input.c


def tcp_sequence(rcv_wup: Any, rcv_nxt: Any, rcv_wnd: Any, seq: Any, end_seq: Any) -> Any:
    """net/ipv4/tcp_input.c tcp_sequence() (4.x-5.x; 5.19 split it into drop reasons with the
    same two tests): the segment [seq, end_seq) is acceptable unless it ends before rcv_wup
    (the left edge when the window was last advertised) or starts after the right edge
    rcv_nxt + tcp_receive_window():
        return !before(end_seq, tp->rcv_wup) &&
               !after(seq, tp->rcv_nxt + tcp_receive_window(tp));"""
    right_edge = u32(rcv_nxt + tcp_receive_window(rcv_wup, rcv_wnd, rcv_nxt))
    return _and(_not(before(end_seq, rcv_wup)), _not(after(seq, right_edge)))


def tcp_may_update_window(snd_una: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any) -> Any:
    """net/ipv4/tcp_input.c tcp_may_update_window() (4.x-5.x; 6.x also takes a zero nwin at
    ack_seq == snd_wl1): the ack's window is taken if it acks new data, or comes with a later
    sequence number than the last update (snd_wl1), or with the same one and a larger window.
    Linux's snd_wl2 is snd_una.
        return after(ack, tp->snd_una) ||
               after(ack_seq, tp->snd_wl1) ||
               (ack_seq == tp->snd_wl1 && nwin > tp->snd_wnd);"""
    return _or(after(ack, snd_una), after(ack_seq, snd_wl1), _and(ack_seq == snd_wl1, _ult(snd_wnd, nwin)))


# RFC 9293


def rfc9293_acceptable(rcv_nxt: Any, rcv_wnd: Any, seg_seq: Any, seg_len: Any) -> Any:
    """RFC 9293 section 3.10.7.4, "There are four cases for the acceptability test for an
    incoming segment", the comparisons modulo 2^32: RCV.NXT =< x < RCV.NXT+RCV.WND is
    (x - RCV.NXT) mod 2^32 < RCV.WND.

        len 0, wnd 0:   SEG.SEQ = RCV.NXT
        len 0, wnd > 0: RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
        len > 0, wnd 0: not acceptable
        len > 0, wnd > 0: the first byte (SEG.SEQ) or the last (SEG.SEQ+SEG.LEN-1) in the window
    """
    first = _ult(u32(seg_seq - rcv_nxt), rcv_wnd)
    last = _ult(u32(seg_seq + seg_len - 1 - rcv_nxt), rcv_wnd)
    zero_wnd = rcv_wnd == 0
    return _ite(
        seg_len == 0, _ite(zero_wnd, seg_seq == rcv_nxt, first), _and(_not(zero_wnd), _or(first, last))
    )
