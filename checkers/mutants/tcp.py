"""Mutants of the TCP model: each replaces one function of model/tcp with a plausible kernel
bug and names the invariant that must catch it, and the engine: the explorer for what a
shallow trace shows, Hypothesis's random runs for what needs a deeper one or an injected
segment (the ``large`` profile's attacker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checkers.mutants import mutant, tcp_prove  # noqa: F401  (registers the prove mutants)
from model.tcp import input as tcp_in
from model.tcp import output as tcp_out
from model.tcp.seq import after, before, u32
from model.tcp.sock import (
    MAX_TCP_WINDOW,
    SEND_SHUTDOWN,
    TCP_FIN_WAIT2,
    TCPHDR_FIN,
    Skb,
    TcpSock,
)

INPUT = "model.tcp.input"
OUTPUT = "model.tcp.output"

_tcp_recvmsg = tcp_in.tcp_recvmsg


def beyond_window_inclusive(seq: int, rcv_nxt: int, window: int) -> bool:
    """tcp_data_queue tests after(seq, rcv_nxt + window) for out-of-window: a segment starting at the right edge is queued."""
    return after(seq, u32(rcv_nxt + window))


def already_received_never(skb: Skb, rcv_nxt: int) -> bool:
    """tcp_data_queue and tcp_ofo_queue keep segments rcv_nxt has passed: an old retransmission is queued as new and rcv_nxt set back to its end."""
    return False


def fin_wait1_ack_any(tp: TcpSock) -> TcpSock:
    """FIN_WAIT1 becomes FIN_WAIT2 on any acceptable ACK, without checking snd_una == write_seq."""
    return tp._replace(state=TCP_FIN_WAIT2, shutdown=tp.shutdown | SEND_SHUTDOWN)


def new_data_sent_fin_uncounted(tp: TcpSock, skb: Skb) -> TcpSock:
    """A sent FIN does not advance snd_nxt: snd_nxt moves to the skb's end_seq less its FIN."""
    end = u32(skb.end_seq - 1) if skb.flags & TCPHDR_FIN else skb.end_seq
    return tp._replace(snd_nxt=end, write_queue=tp.write_queue[1:], rtx_queue=(*tp.rtx_queue, skb))


def select_window_shrinks(tp: TcpSock, mss: int) -> tuple[TcpSock, int]:
    """tcp_select_window advertises the free space as it is, even below what it already offered: the right edge moves back."""
    new_win = min(tcp_out.select_window_size(tp, mss), MAX_TCP_WINDOW)
    return tp._replace(rcv_wnd=new_win, rcv_wup=tp.rcv_nxt), new_win


def ack_beyond_sent_accepted(ack: int, snd_nxt: int) -> bool:
    """tcp_ack accepts an ACK beyond snd_nxt (no invalid_ack check): snd_una passes snd_nxt."""
    return False


def recvmsg_copied_seq_one_ahead(tp: TcpSock) -> tuple[TcpSock, tuple[int, ...]]:
    """tcp_recvmsg advances copied_seq by used + 1: the next read skips a byte, or copied_seq passes rcv_nxt."""
    after_read, got = _tcp_recvmsg(tp)
    if not got:
        return after_read, got
    return after_read._replace(copied_seq=u32(after_read.copied_seq + 1)), got


def in_sequence_when_in_window(skb: Skb, rcv_nxt: int) -> bool:
    """tcp_data_queue takes any segment at or after rcv_nxt as the next in sequence: an early one skips the hole."""
    return not before(skb.seq, rcv_nxt)


def ofo_keeps_duplicates(tp: TcpSock, skb: Skb) -> TcpSock:
    """tcp_data_queue_ofo inserts a segment whose bytes are all there already (no "all the bits are present" drop)."""
    queue = list(tp.ofo_queue)
    at = next((i for i, other in enumerate(queue) if before(skb.seq, other.seq)), len(queue))
    queue.insert(at, skb)
    return tp._replace(ofo_queue=tuple(queue))


def snd_wnd_test_always(tp: TcpSock, skb: Skb, mss: int) -> bool:
    """tcp_snd_wnd_test passes every skb: data goes out beyond the peer's window."""
    return True


def ack_never_old(ack: int, snd_una: int) -> bool:
    """tcp_ack takes old ACKs as new (no before(ack, prior_snd_una) check) ..."""
    return False


def snd_una_update_any(tp: TcpSock, ack: int) -> TcpSock:
    """... and tcp_snd_una_update assigns whatever it is given."""
    return tp._replace(snd_una=ack)


def acceptq_never_full(ack_backlog: int, max_ack_backlog: int) -> bool:
    """sk_acceptq_is_full always false (no overflow check in tcp_conn_request or tcp_v4_syn_recv_sock): a flood fills the accept queue past the backlog."""
    return False


def reqsk_queue_never_full(qlen: int, max_ack_backlog: int) -> bool:
    """inet_csk_reqsk_queue_is_full always false: request socks pile up past the backlog."""
    return False


def _mutant(name: str, breaks: str, engine: str, *patches: tuple[str, str, Callable[..., Any]]) -> None:
    mutant(f"tcp.{name}", model="tcp", breaks=f"tcp.{breaks}", engine=engine, patches=patches)


_mutant(
    "accept_at_right_edge",
    "accepted_in_window",
    "stateful",
    (INPUT, "beyond_window", beyond_window_inclusive),
)
_mutant(
    "keep_received_segments",
    "queue_shape",
    "explore",
    (INPUT, "already_received", already_received_never),
)
_mutant(
    "keep_received_fin",
    "no_data_after_rcv_shutdown",
    "explore",
    (INPUT, "already_received", already_received_never),
)
_mutant(
    "rcv_nxt_without_after",
    "rcv_nxt_monotonic",
    "explore",
    (INPUT, "already_received", already_received_never),
)
_mutant("fin_wait1_early", "legal_transition", "explore", (INPUT, "tcp_fin_wait1_ack", fin_wait1_ack_any))
_mutant(
    "fin_not_in_snd_nxt",
    "sequence_space",
    "explore",
    (OUTPUT, "tcp_event_new_data_sent", new_data_sent_fin_uncounted),
)
_mutant(
    "window_shrinks", "window_never_shrinks", "explore", (OUTPUT, "tcp_select_window", select_window_shrinks)
)
_mutant(
    "ack_beyond_snd_nxt", "send_sequence", "stateful", (INPUT, "ack_beyond_sent", ack_beyond_sent_accepted)
)
_mutant("recvmsg_off_by_one", "copied_seq", "explore", (INPUT, "tcp_recvmsg", recvmsg_copied_seq_one_ahead))
_mutant(
    "recvmsg_off_by_one_loses_a_byte",
    "stream_prefix",
    "stateful",
    (INPUT, "tcp_recvmsg", recvmsg_copied_seq_one_ahead),
)
_mutant(
    "in_sequence_past_a_hole", "sequence_space", "explore", (INPUT, "in_sequence", in_sequence_when_in_window)
)
_mutant("ofo_keeps_duplicates", "queue_shape", "explore", (INPUT, "tcp_data_queue_ofo", ofo_keeps_duplicates))
_mutant(
    "send_beyond_window", "send_within_window", "explore", (OUTPUT, "tcp_snd_wnd_test", snd_wnd_test_always)
)
_mutant(
    "snd_una_backwards",
    "snd_una_monotonic",
    "explore",
    (INPUT, "ack_is_old", ack_never_old),
    (INPUT, "tcp_snd_una_update", snd_una_update_any),
)
_mutant("acceptq_overflow", "accept_backlog", "stateful", (INPUT, "sk_acceptq_is_full", acceptq_never_full))
_mutant(
    "reqsk_queue_overflow",
    "accept_backlog",
    "stateful",
    (INPUT, "inet_csk_reqsk_queue_is_full", reqsk_queue_never_full),
)
