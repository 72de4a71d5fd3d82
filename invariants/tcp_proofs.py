"""z3 proofs of TCP's u32 sequence arithmetic (include/net/tcp.h, net/ipv4/tcp_input.c,
Linux 4.x-5.x, as model/tcp/seq.py has it): the before() order across the wrap, the
kernel's segment acceptance test against RFC 9293's, and the window-update rule.

The claims follow invariants/claims.py: z3 terms are 32-bit bit-vectors, the claims call the
model through its module at each call (``tcp_seq.before``), so that a mutant replacing a
helper changes what is proved, and every property is stated in terms the model's helpers do
not compute: offsets compared as unsigned values, or positions as wide signed integers.

What tcp_sequence accepts, exactly. The kernel's test is not RFC 9293's. Write s for the
position of seq after rcv_nxt (the s32 of seq - rcv_nxt), len for end_seq - seq, u for
rcv_nxt - rcv_wup (data received since the window was last advertised) and w for
tcp_receive_window() = max(0, rcv_wup + rcv_wnd - rcv_nxt), the RFC's RCV.WND. Within the
bounds, tcp_sequence accepts exactly the segments with -u <= s + len and s <= w: the closed
interval [seq, end_seq] meets [rcv_wup, rcv_nxt + w]. That is every segment the RFC accepts
(RCV.NXT = rcv_nxt, RCV.WND = w), and besides exactly three kinds, none of which the RFC
accepts:

- right edge: a segment starting exactly at rcv_nxt + w, unless it is empty and w is 0 (the
  RFC's own case then). An empty segment there is a zero-window probe or a pure ACK while
  the window is closed, so the kernel processes its ACK;
- left edge: a segment ending between rcv_wup and rcv_nxt (-u <= s + len <= 0, s < 0):
  a retransmission of data received already, which the kernel takes in to answer with a
  (D-SACK) duplicate ACK; with u = 0 only a segment ending exactly at rcv_nxt;
- spanning: a segment starting before rcv_nxt and ending past the window (s < 0 and
  s + len > w), whose first and last bytes both lie outside it: the RFC checks only those.

So the two agree exactly on segments that none of the three describes: for example every
empty segment when u = 0 and w = 0, and every segment that lies within [rcv_nxt, rcv_nxt + w)
or entirely beyond its right edge.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import z3

from invariants.claims import Case, Claim, all_of, any_of, claim_proof, implies, ule, ult
from model.tcp import seq as tcp_seq

SEQ_BITS = 32
HALF = 1 << 31  # the order's window: before() is the true order below 2^31 apart
# The kernel's largest window is 65535 << TCP_MAX_WSCALE (14), below 2^30.
WINDOW_BOUND = 1 << 30


def _not(b: Any) -> Any:
    return z3.Not(b) if isinstance(b, z3.ExprRef) else not b


def _signed(x: Any) -> Any:
    """A u32 read as s32, as a value that sums do not wrap: a Python int, or a 64-bit z3
    bit-vector (z3 compares those signed, as Python compares ints)."""
    if isinstance(x, int):
        x &= tcp_seq.U32
        return x - (1 << 32) if x >= HALF else x
    return z3.SignExt(32, x)


def _wide(x: Any) -> Any:
    """A u32 as a value that sums do not wrap (64 bits for z3)."""
    return x & tcp_seq.U32 if isinstance(x, int) else z3.ZeroExt(32, x)


def _u32_near(rng: random.Random, around: int) -> int:
    """A u32 near ``around``, near the wrap, or anywhere."""
    kind = rng.randrange(3)
    if kind == 0:
        return (around + rng.randrange(-(1 << 12), 1 << 12)) & tcp_seq.U32
    if kind == 1:
        return (rng.choice((0, HALF)) + rng.randrange(-(1 << 12), 1 << 12)) & tcp_seq.U32
    return rng.getrandbits(SEQ_BITS)


def _offset(rng: random.Random, bound: int) -> int:
    """An offset below ``bound`` mostly, at its edges sometimes, beyond it now and then."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randrange(4)
    if kind == 1:
        return rng.randrange(1 << 16)
    if kind == 2:
        return bound + rng.randrange(-2, 2)
    if kind == 3:
        return rng.getrandbits(SEQ_BITS)
    return rng.randrange(bound)


# 1. The order.


def _sample_order(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    a = _u32_near(rng, (1 << 32) - 1)
    x = _offset(rng, HALF) & tcp_seq.U32
    y = (
        x
        if rng.randrange(8) == 0
        else (x + rng.choice((-1, 1, rng.randrange(-(1 << 20), 1 << 20)))) & tcp_seq.U32
    )
    return a, x, y if rng.randrange(2) else _offset(rng, HALF) & tcp_seq.U32


@claim_proof(
    "tcp.seq_order",
    statement=(
        "For every sequence number a and offsets x, y below 2^31, with b = a + x and c = a + y"
        " (mod 2^32): before(b, c) holds iff x < y, after(b, c) iff y < x (so after(b, c) =="
        " before(c, b)), and between(b, a, c) iff x <= y. So before() orders any 2^31"
        " consecutive sequence numbers as their offsets, right across the wrap: it is"
        " irreflexive, asymmetric, transitive and total on them."
    ),
    bounds="all 32-bit a, all offsets x, y below 2^31",
    source="include/net/tcp.h before, after, between",
    bits=SEQ_BITS,
    sample=_sample_order,
)
def seq_order(a: Any, x: Any, y: Any) -> Claim:
    b, c = tcp_seq.u32(a + x), tcp_seq.u32(a + y)
    before, after, between = tcp_seq.before(b, c), tcp_seq.after(b, c), tcp_seq.between(b, a, c)
    holds = all_of(before == ult(x, y), after == ult(y, x), between == ule(x, y))
    return (
        all_of(ult(x, HALF), ult(y, HALF)),
        holds,
        {"b": b, "c": c, "before(b, c)": before, "after(b, c)": after, "between(b, a, c)": between},
    )


# 2. tcp_sequence against RFC 9293.


def _sample_segment(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    rcv_wup = _u32_near(rng, (1 << 32) - 1)
    received = _offset(rng, WINDOW_BOUND)  # rcv_nxt - rcv_wup
    rcv_wnd = rng.choice((0, _offset(rng, WINDOW_BOUND), received + rng.randrange(-3, 4)))
    window = max(0, rcv_wnd - received)
    seg_len = rng.choice((0, 0, 1, rng.randrange(1500), _offset(rng, WINDOW_BOUND)))
    # seq at and around each edge of the window, or anywhere
    edges = (-received, 0, window, -received - seg_len, -seg_len, window - seg_len)
    seq_off = rng.choice(edges) + rng.randrange(-2, 3) if rng.randrange(2) else _u32_near(rng, 0)
    return (
        rcv_wup,
        received & tcp_seq.U32,
        rcv_wnd & tcp_seq.U32,
        seq_off & tcp_seq.U32,
        seg_len & tcp_seq.U32,
    )


@claim_proof(
    "tcp.sequence_matches_rfc9293",
    statement=(
        "With rcv_nxt = rcv_wup + u, seq = rcv_nxt + seq_off, s = (s32)seq_off, end_seq = seq +"
        " seg_len and w = tcp_receive_window() = max(0, rcv_wnd - u): tcp_sequence(seq, end_seq)"
        " accepts a segment iff RFC 9293's acceptability test (RCV.NXT = rcv_nxt, RCV.WND = w)"
        " does, or the segment is one of three kinds the RFC rejects and the kernel accepts: it"
        " starts at the right edge (s == w, unless seg_len == 0 and w == 0), it ends between"
        " rcv_wup and rcv_nxt (-u <= s + seg_len <= 0, s < 0), or it spans the window (s < 0"
        " and s + seg_len > w); the RFC accepts none of the three, and tcp_receive_window() is"
        " that w. So the kernel accepts exactly -u <= s + seg_len and s <= w, every segment the"
        " RFC accepts among them."
    ),
    bounds=(
        "all 32-bit rcv_wup and seq_off (so every rcv_nxt and seq), u = rcv_nxt - rcv_wup,"
        " rcv_wnd and seg_len below 2^30 (the kernel's largest window is 65535 << 14)"
    ),
    source="net/ipv4/tcp_input.c tcp_sequence; include/net/tcp.h tcp_receive_window; "
    "RFC 9293 section 3.10.7.4",
    bits=SEQ_BITS,
    sample=_sample_segment,
)
def sequence_matches_rfc9293(rcv_wup: Any, u: Any, rcv_wnd: Any, seq_off: Any, seg_len: Any) -> Claim:
    # The parameters are offsets from rcv_wup (a base every value is relative to), which z3
    # cancels: over rcv_nxt and seq themselves the same query takes it a minute.
    rcv_nxt = tcp_seq.u32(rcv_wup + u)
    seq = tcp_seq.u32(rcv_nxt + seq_off)
    end_seq = tcp_seq.u32(seq + seg_len)
    accepted = tcp_seq.tcp_sequence(rcv_wup, rcv_nxt, rcv_wnd, seq, end_seq)
    window = tcp_seq.tcp_receive_window(rcv_wup, rcv_wnd, rcv_nxt)
    rfc = tcp_seq.rfc9293_acceptable(rcv_nxt, window, seq, seg_len)
    # The same picture in integers that do not wrap: positions relative to rcv_nxt.
    s, length, received, wnd = _signed(seq_off), _wide(seg_len), _wide(u), _wide(rcv_wnd)
    if isinstance(wnd, int):
        w = max(wnd - received, 0)
    else:
        w = z3.If(wnd > received, wnd - received, z3.BitVecVal(0, 64))
    end = s + length
    right = all_of(any_of(w > 0, length > 0), s == w)
    left = all_of(-received <= end, end <= 0, s < 0)
    spanning = all_of(s < 0, end > w)
    extra = any_of(right, left, spanning)
    holds = all_of(_wide(window) == w, accepted == any_of(rfc, extra), _not(all_of(rfc, extra)))
    assume = all_of(ult(u, WINDOW_BOUND), ult(rcv_wnd, WINDOW_BOUND), ult(seg_len, WINDOW_BOUND))
    terms = {
        "rcv_nxt": rcv_nxt,
        "seq": seq,
        "end_seq": end_seq,
        "tcp_receive_window": window,
        "tcp_sequence": accepted,
        "rfc9293_acceptable": rfc,
        "right edge": right,
        "left edge": left,
        "spanning": spanning,
    }
    return assume, holds, terms


# 3. The window-update rule.


def _sample_update(rng: random.Random, cases: Sequence[Case]) -> tuple[int, ...]:
    snd_una = _u32_near(rng, (1 << 32) - 1)
    in_flight = _offset(rng, HALF)
    snd_nxt = (snd_una + in_flight) & tcp_seq.U32
    ack = (
        snd_una + rng.choice((0, 0, 1, in_flight, rng.randrange(in_flight + 1), -1, in_flight + 1))
    ) & tcp_seq.U32
    snd_wl1 = _u32_near(rng, (1 << 32) - 1)
    ack_seq = (
        snd_wl1 + rng.choice((0, 0, 1, -1, HALF, _offset(rng, HALF), -_offset(rng, HALF)))
    ) & tcp_seq.U32
    snd_wnd = _offset(rng, WINDOW_BOUND) & tcp_seq.U32
    nwin = (snd_wnd + rng.choice((0, 1, -1, rng.randrange(-(1 << 16), 1 << 16)))) & tcp_seq.U32
    return snd_una, snd_nxt, snd_wl1, snd_wnd, ack, ack_seq, nwin


@claim_proof(
    "tcp.window_update_never_older",
    statement=(
        "For an ack that tcp_ack lets through to tcp_ack_update_window (snd_una <= ack <="
        " snd_nxt in sequence order), tcp_may_update_window takes its window (ack_seq, ack,"
        " nwin) exactly as follows: always if ack is after snd_una or ack_seq after snd_wl1;"
        " never if ack == snd_una and ack_seq is before snd_wl1 (an update older than the last"
        " one taken); and, at ack == snd_una and ack_seq == snd_wl1, iff nwin > snd_wnd. So an"
        " update the peer sent no later than the last one taken (its seq and ack never go"
        " backwards) is taken only if it repeats that one's seq and ack with a larger window."
        " A retransmission (older ack_seq) carrying a newer ack is taken: it was sent later."
    ),
    bounds=(
        "all 32-bit snd_una, snd_wl1, snd_wnd, ack_seq, nwin, with snd_nxt - snd_una below 2^31,"
        " ack - snd_una at most snd_nxt - snd_una, and ack_seq - snd_wl1 not 2^31"
    ),
    source="net/ipv4/tcp_input.c tcp_may_update_window, tcp_ack_update_window, tcp_update_wl, "
    "tcp_ack (old_ack before snd_una, invalid_ack after snd_nxt)",
    bits=SEQ_BITS,
    sample=_sample_update,
)
def window_update_never_older(
    snd_una: Any, snd_nxt: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any
) -> Claim:
    taken = tcp_seq.tcp_may_update_window(snd_una, snd_wl1, snd_wnd, ack, ack_seq, nwin)
    in_flight, acked = tcp_seq.u32(snd_nxt - snd_una), tcp_seq.u32(ack - snd_una)
    moved = tcp_seq.u32(ack_seq - snd_wl1)  # ack_seq's offset after snd_wl1, mod 2^32
    newer_seq, older_seq = all_of(ult(0, moved), ult(moved, HALF)), ult(HALF, moved)
    holds = all_of(
        implies(any_of(ult(0, acked), newer_seq), taken),
        implies(all_of(acked == 0, older_seq), _not(taken)),
        implies(all_of(acked == 0, moved == 0), taken == ult(snd_wnd, nwin)),
    )
    assume = all_of(ult(in_flight, HALF), ule(acked, in_flight), moved != HALF)
    return assume, holds, {"tcp_may_update_window": taken, "ack - snd_una": acked, "ack_seq - snd_wl1": moved}
