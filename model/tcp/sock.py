"""TCP's data (include/net/tcp_states.h, include/linux/tcp.h, include/net/tcp.h), 4.x-5.x.

Every structure is an immutable value that a change replaces. A socket keeps the kernel's
field names; its queues hold (seq, end_seq, flags, payload) records in place of sk_buffs.
Sequence numbers are u32 and compared only with before() and after() (model/tcp/seq.py).
"""

from __future__ import annotations

from typing import NamedTuple

from model.tcp.seq import u32

# include/net/tcp_states.h
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
STATE_NAMES = {
    TCP_ESTABLISHED: "ESTABLISHED",
    TCP_SYN_SENT: "SYN_SENT",
    TCP_SYN_RECV: "SYN_RECV",
    TCP_FIN_WAIT1: "FIN_WAIT1",
    TCP_FIN_WAIT2: "FIN_WAIT2",
    TCP_TIME_WAIT: "TIME_WAIT",
    TCP_CLOSE: "CLOSE",
    TCP_CLOSE_WAIT: "CLOSE_WAIT",
    TCP_LAST_ACK: "LAST_ACK",
    TCP_LISTEN: "LISTEN",
    TCP_CLOSING: "CLOSING",
}

# The transitions of RFC 9293's diagram as Linux takes them (the edges tcp_set_state() is
# called with, net/ipv4/tcp.c and tcp_input.c): the legal_transition invariant's table.
# CLOSE is reachable from everywhere (tcp_done on a reset, a timeout or an abort).
TRANSITIONS: frozenset[tuple[int, int]] = frozenset(
    {
        (TCP_CLOSE, TCP_SYN_SENT),  # connect
        (TCP_CLOSE, TCP_LISTEN),  # listen
        (TCP_LISTEN, TCP_SYN_RECV),  # a child from a SYN (tcp_create_openreq_child)
        (TCP_SYN_SENT, TCP_ESTABLISHED),  # SYN-ACK (tcp_rcv_synsent_state_process)
        (TCP_SYN_SENT, TCP_SYN_RECV),  # crossed SYNs
        (TCP_SYN_RECV, TCP_ESTABLISHED),  # the handshake's ACK
        (TCP_SYN_RECV, TCP_FIN_WAIT1),  # close before the ACK
        (TCP_SYN_RECV, TCP_CLOSE_WAIT),  # a FIN with the handshake's ACK (tcp_fin)
        (TCP_ESTABLISHED, TCP_FIN_WAIT1),  # close / shutdown(SHUT_WR)
        (TCP_ESTABLISHED, TCP_CLOSE_WAIT),  # FIN received
        (TCP_FIN_WAIT1, TCP_FIN_WAIT2),  # our FIN acknowledged
        (TCP_FIN_WAIT1, TCP_CLOSING),  # simultaneous close
        (TCP_FIN_WAIT1, TCP_TIME_WAIT),  # one segment acknowledges our FIN and carries the peer's
        (TCP_FIN_WAIT2, TCP_TIME_WAIT),  # FIN received
        (TCP_CLOSING, TCP_TIME_WAIT),  # our FIN acknowledged
        (TCP_CLOSE_WAIT, TCP_LAST_ACK),  # close
        (TCP_TIME_WAIT, TCP_CLOSE),  # the 2MSL timer
        (TCP_LAST_ACK, TCP_CLOSE),  # our FIN acknowledged
    }
    | {(s, TCP_CLOSE) for s in STATE_NAMES if s != TCP_CLOSE}
)

# TCP header flags (include/net/tcp.h TCPHDR_*)
TCPHDR_FIN = 0x01
TCPHDR_SYN = 0x02
TCPHDR_RST = 0x04
TCPHDR_PSH = 0x08
TCPHDR_ACK = 0x10
FLAG_NAMES = ((TCPHDR_SYN, "SYN"), (TCPHDR_FIN, "FIN"), (TCPHDR_RST, "RST"), (TCPHDR_ACK, "ACK"))

# sk->sk_shutdown
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2

MAX_TCP_WINDOW = 65535  # no window scaling: the model's windows are a few bytes

# icsk_ack.pending (include/net/inet_connection_sock.h, 5.x)
ICSK_ACK_SCHED = 1  # an ACK is due
ICSK_ACK_TIMER = 2  # the delayed-ACK timer is armed
ICSK_ACK_PUSHED = 4  # a segment shorter than the MSS arrived
ICSK_ACK_PUSHED2 = 8  # ... and another one
ICSK_ACK_NOW = 16  # send the ACK at once
TCP_MAX_QUICKACKS = 16


def flag_names(flags: int) -> str:
    return ",".join(name for bit, name in FLAG_NAMES if flags & bit) or "-"


class Segment(NamedTuple):
    """A TCP segment on the wire: the header fields the model reads, and the payload."""

    seq: int
    ack_seq: int
    flags: int
    window: int
    data: tuple[int, ...] = ()

    @property
    def end_seq(self) -> int:
        """tcp_v4_rcv: seq + SYN + FIN + payload length."""
        return u32(self.seq + bool(self.flags & TCPHDR_SYN) + bool(self.flags & TCPHDR_FIN) + len(self.data))

    def __str__(self) -> str:
        ack = f" ack={self.ack_seq}" if self.flags & TCPHDR_ACK else ""
        data = f" len={len(self.data)}" if self.data else ""
        return f"[{flag_names(self.flags)}] seq={self.seq}{ack} win={self.window}{data}"


class Skb(NamedTuple):
    """An sk_buff of a queue: TCP_SKB_CB's seq, end_seq and tcp_flags, and the payload."""

    seq: int
    end_seq: int
    flags: int
    data: tuple[int, ...] = ()


class TcpSock(NamedTuple):
    """struct tcp_sock, the fields the model keeps (include/linux/tcp.h)."""

    state: int = TCP_CLOSE
    shutdown: int = 0  # sk_shutdown: RCV_SHUTDOWN | SEND_SHUTDOWN
    done: bool = False  # SOCK_DONE: a FIN (or reset) was received
    err: int = 0  # sk_err
    # Send side: snd_una <= snd_nxt <= write_seq, each u32.
    iss: int | None = None  # our initial sequence number (the SYN's); None before connect()
    irs: int | None = None  # the peer's initial sequence number; None until its SYN is in
    write_seq: int = 0  # the sequence number after the last byte the user wrote (and FIN)
    snd_una: int = 0  # the first byte not yet acknowledged
    snd_nxt: int = 0  # the next sequence number to send
    snd_wnd: int = 0  # the peer's window, from snd_una
    snd_wl1: int = 0  # the seq of the segment that last updated snd_wnd
    max_window: int = 0
    write_queue: tuple[Skb, ...] = ()  # written, not yet sent (from sk_send_head)
    rtx_queue: tuple[Skb, ...] = ()  # sent, not yet acknowledged (tcp_rtx_queue)
    retransmits: int = 0  # icsk_retransmits: RTO expiries since the last forward progress
    # Receive side: copied_seq <= rcv_nxt.
    rcv_nxt: int = 0  # the next sequence number expected
    rcv_wup: int = 0  # rcv_nxt when the window was last advertised
    rcv_wnd: int = 0  # the window last advertised, from rcv_wup
    copied_seq: int = 0  # the head of yet unread data
    receive_queue: tuple[Skb, ...] = ()  # in order, ending at rcv_nxt
    ofo_queue: tuple[Skb, ...] = ()  # out_of_order_queue, by seq
    # The socket's user: how many bytes of its stream it wrote, and what it read.
    written: int = 0
    read: tuple[int, ...] = ()
    rcvbuf: int = 0  # sk_rcvbuf, in payload bytes
    # The delayed-ACK engine (struct inet_connection_sock's icsk_ack). Its timeouts (ato)
    # are abstract: ack_ato only tells whether the first data has initialised the engine.
    ack_pending: int = 0  # ICSK_ACK_*
    ack_quick: int = 0  # quick ACKs left: every segment is acknowledged at once while > 0
    ack_pingpong: bool = False  # interactive mode: ACKs wait to ride on the reply
    ack_ato: bool = False


class ReqSock(NamedTuple):
    """struct tcp_request_sock: a SYN received by the listener, answered with a SYN-ACK."""

    rcv_isn: int
    snt_isn: int
    rcv_wnd: int
    snd_wnd: int  # the window of the SYN
    retransmits: int = 0  # num_retrans of the SYN-ACK


def stream_byte(k: int) -> int:
    """The k-th byte of a user's stream: every offset its own value mod 251, so data moved
    to the wrong offset (within 251 bytes) reads back wrong."""
    return (7 * k + 1) % 251
