"""Mutants of TCP's sequence arithmetic for the z3 proofs (invariants/tcp_proofs.py): each
replaces one helper of model.tcp.seq with a plausible kernel bug and names the proof that
must refute it. The replacements take z3 bit-vectors as the originals do (through seq's own
helpers), so that z3 refutes them rather than failing to encode them.

Registered on import. ``kinv mutants`` runs them once checkers/mutants/tcp.py imports this
module (as sched.py imports sched_prove) and "tcp" joins checkers.mutants.SUBSYSTEMS.
"""

from __future__ import annotations

from typing import Any

from checkers.mutants import mutant
from model.tcp import seq

SEQ = "model.tcp.seq"


def before_unsigned(seq1: Any, seq2: Any) -> Any:
    """before() compares the u32 values, not (s32)(seq1 - seq2): after the wrap, sequence number 0 is before 0xffffffff."""
    return seq._ult(seq.u32(seq1), seq.u32(seq2))


def after_or_equal(seq2: Any, seq1: Any) -> Any:
    """after(seq2, seq1) is !before(seq2, seq1): a sequence number counts as after itself."""
    return seq._not(seq.before(seq2, seq1))


def between_exclusive(seq1: Any, seq2: Any, seq3: Any) -> Any:
    """between() tests seq3 - seq2 > seq1 - seq2: seq3 itself is no longer between seq2 and seq3."""
    return seq._ult(seq.u32(seq1 - seq2), seq.u32(seq3 - seq2))


def tcp_sequence_right_edge_exclusive(
    rcv_wup: Any, rcv_nxt: Any, rcv_wnd: Any, seq_: Any, end_seq: Any
) -> Any:
    """tcp_sequence requires before(seq, rcv_nxt + window) as the RFC's right edge: a pure ACK at rcv_nxt is dropped while the window is 0."""
    right_edge = seq.u32(rcv_nxt + seq.tcp_receive_window(rcv_wup, rcv_wnd, rcv_nxt))
    return seq._and(seq._not(seq.before(end_seq, rcv_wup)), seq.before(seq_, right_edge))


def tcp_sequence_left_edge_rcv_nxt(rcv_wup: Any, rcv_nxt: Any, rcv_wnd: Any, seq_: Any, end_seq: Any) -> Any:
    """tcp_sequence tests end_seq against rcv_nxt, not rcv_wup: a retransmission of data received since the last window update is dropped unacknowledged."""
    right_edge = seq.u32(rcv_nxt + seq.tcp_receive_window(rcv_wup, rcv_wnd, rcv_nxt))
    return seq._and(seq._not(seq.before(end_seq, rcv_nxt)), seq._not(seq.after(seq_, right_edge)))


def tcp_receive_window_unclamped(rcv_wup: Any, rcv_wnd: Any, rcv_nxt: Any) -> Any:
    """tcp_receive_window returns (u32)(rcv_wup + rcv_wnd - rcv_nxt) unclamped: once the peer overruns the window, it reads near 2^32."""
    return seq.u32(rcv_wup + rcv_wnd - rcv_nxt)


def rfc9293_right_edge_inclusive(rcv_nxt: Any, rcv_wnd: Any, seg_seq: Any, seg_len: Any) -> Any:
    """The RFC 9293 test reads RCV.NXT =< SEG.SEQ =< RCV.NXT+RCV.WND: a segment starting at the right edge counts as in the window."""
    first = seq._ule(seq.u32(seg_seq - rcv_nxt), rcv_wnd)
    last = seq._ule(seq.u32(seg_seq + seg_len - 1 - rcv_nxt), rcv_wnd)
    zero_wnd = rcv_wnd == 0
    return seq._ite(
        seg_len == 0,
        seq._ite(zero_wnd, seg_seq == rcv_nxt, first),
        seq._and(seq._not(zero_wnd), seq._or(first, last)),
    )


def may_update_window_any_equal_seq(
    snd_una: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any
) -> Any:
    """tcp_may_update_window takes any window at ack_seq == snd_wl1 (RFC 793's SND.WL2 =< SEG.ACK): a reordered older ack shrinks the window back."""
    return seq._or(seq.after(ack, snd_una), seq.after(ack_seq, snd_wl1), ack_seq == snd_wl1)


def may_update_window_seq_unsigned(
    snd_una: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any
) -> Any:
    """tcp_may_update_window compares ack_seq > snd_wl1 as u32s: across the wrap, a newer window update is ignored."""
    return seq._or(
        seq.after(ack, snd_una),
        seq._ult(snd_wl1, ack_seq),
        seq._and(ack_seq == snd_wl1, seq._ult(snd_wnd, nwin)),
    )


def may_update_window_needs_wl1(
    snd_una: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any
) -> Any:
    """tcp_may_update_window takes a new ack's window only if ack_seq is not before snd_wl1: a retransmission carrying a newer ack and window is ignored."""
    return seq._or(
        seq._and(seq.after(ack, snd_una), seq._not(seq.before(ack_seq, snd_wl1))),
        seq.after(ack_seq, snd_wl1),
        seq._and(ack_seq == snd_wl1, seq._ult(snd_wnd, nwin)),
    )


def may_update_window_ack_not_before(
    snd_una: Any, snd_wl1: Any, snd_wnd: Any, ack: Any, ack_seq: Any, nwin: Any
) -> Any:
    """tcp_may_update_window tests !before(ack, snd_una) for after(ack, snd_una): every ack tcp_ack lets through, however old its window, is taken."""
    return seq._or(
        seq._not(seq.before(ack, snd_una)),
        seq.after(ack_seq, snd_wl1),
        seq._and(ack_seq == snd_wl1, seq._ult(snd_wnd, nwin)),
    )


PROOF_MUTANTS = tuple(
    mutant(name, model="tcp", breaks=breaks, engine="prove", patches=((SEQ, helper, fn),))
    for name, breaks, helper, fn in (
        ("tcp.prove_before_unsigned", "tcp.seq_order", "before", before_unsigned),
        ("tcp.prove_after_or_equal", "tcp.seq_order", "after", after_or_equal),
        ("tcp.prove_between_exclusive", "tcp.seq_order", "between", between_exclusive),
        (
            "tcp.prove_sequence_right_edge_exclusive",
            "tcp.sequence_matches_rfc9293",
            "tcp_sequence",
            tcp_sequence_right_edge_exclusive,
        ),
        (
            "tcp.prove_sequence_left_edge_rcv_nxt",
            "tcp.sequence_matches_rfc9293",
            "tcp_sequence",
            tcp_sequence_left_edge_rcv_nxt,
        ),
        (
            "tcp.prove_receive_window_unclamped",
            "tcp.sequence_matches_rfc9293",
            "tcp_receive_window",
            tcp_receive_window_unclamped,
        ),
        (
            "tcp.prove_rfc9293_right_edge_inclusive",
            "tcp.sequence_matches_rfc9293",
            "rfc9293_acceptable",
            rfc9293_right_edge_inclusive,
        ),
        (
            "tcp.prove_window_update_ack_not_before",
            "tcp.window_update_never_older",
            "tcp_may_update_window",
            may_update_window_ack_not_before,
        ),
        (
            "tcp.prove_window_update_any_equal_seq",
            "tcp.window_update_never_older",
            "tcp_may_update_window",
            may_update_window_any_equal_seq,
        ),
        (
            "tcp.prove_window_update_seq_unsigned",
            "tcp.window_update_never_older",
            "tcp_may_update_window",
            may_update_window_seq_unsigned,
        ),
        (
            "tcp.prove_window_update_needs_wl1",
            "tcp.window_update_never_older",
            "tcp_may_update_window",
            may_update_window_needs_wl1,
        ),
    )
)
