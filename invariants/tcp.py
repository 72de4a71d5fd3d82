"""Invariants of TCP (model "tcp"): the sequence and window rules of RFC 9293 as Linux keeps
them, the shape of the receive queues, and the end-to-end promise that what a user reads is
what its peer wrote, in order, whatever the network did.

Sequence numbers are u32 and compared with seq.before()/seq.after() (model/tcp/seq.py). The rules
that need history compare the states before and after a step. A socket counts from its SYN:
the client's from connect(), the server's from the handshake's ACK.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from invariants import goal, invariant
from model.contract import Step
from model.tcp import input as tcp_in
from model.tcp import output, seq
from model.tcp.model import CLIENT_PORT, SERVER, SIDES, TcpState, stream
from model.tcp.seq import tcp_receive_window, u32
from model.tcp.sock import (
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    STATE_NAMES,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_RST,
    TCPHDR_SYN,
    TRANSITIONS,
    Segment,
    TcpSock,
)

MODEL = "tcp"


def _open(tp: TcpSock) -> bool:
    """The socket has sent or accepted a SYN: its send-side sequence fields mean something."""
    return tp.iss is not None


def _synced(tp: TcpSock) -> bool:
    """The socket knows the peer's sequence numbers (its SYN is in)."""
    return tp.irs is not None


def _name(state: int) -> str:
    return STATE_NAMES.get(state, str(state))


@invariant(
    "tcp.send_sequence",
    model=MODEL,
    statement="!seq.after(snd_una, snd_nxt) and !seq.after(snd_nxt, write_seq): nothing is acknowledged "
    "before it is sent, nor sent before it is written (write_seq counts a queued FIN).",
    source="net/ipv4/tcp_input.c tcp_ack; net/ipv4/tcp_output.c tcp_event_new_data_sent",
)
def send_sequence(state: TcpState) -> list[str]:
    out = []
    for side, tp in enumerate(state.socks):
        if not _open(tp):
            continue
        if seq.after(tp.snd_una, tp.snd_nxt):
            out.append(f"{SIDES[side]}: snd_una {tp.snd_una} is after snd_nxt {tp.snd_nxt}")
        if seq.after(tp.snd_nxt, tp.write_seq):
            out.append(f"{SIDES[side]}: snd_nxt {tp.snd_nxt} is after write_seq {tp.write_seq}")
    return out


@invariant(
    "tcp.sequence_space",
    model=MODEL,
    statement="The SYN and the FIN each take exactly one sequence number: write_seq is iss + 1 + "
    "the bytes written + 1 once a FIN is queued; snd_nxt is the seq of the first unsent skb (or "
    "write_seq); rcv_nxt is irs + 1 + the bytes received in order + 1 once the peer's FIN is in.",
    source="net/ipv4/tcp_output.c tcp_connect, tcp_send_fin, tcp_event_new_data_sent; tcp_input.c tcp_fin",
)
def sequence_space(state: TcpState) -> list[str]:
    out = []
    for side, tp in enumerate(state.socks):
        if not _open(tp):
            continue
        assert tp.iss is not None
        fin = int(bool(tp.shutdown & SEND_SHUTDOWN))  # tcp_close_state, then tcp_send_fin
        want = u32(tp.iss + 1 + tp.written + fin)
        if tp.write_seq != want and not tp.err:
            out.append(
                f"{SIDES[side]}: write_seq {tp.write_seq}, but iss + 1 + {tp.written} written + {fin} FIN is {want}"
            )
        if tp.state not in (TCP_CLOSE, TCP_TIME_WAIT):
            head = tp.write_queue[0].seq if tp.write_queue else tp.write_seq
            if tp.snd_nxt != head:
                out.append(f"{SIDES[side]}: snd_nxt {tp.snd_nxt}, but the next byte to send is {head}")
        if tp.irs is not None:
            received = len(tp.read) + output.unread(tp)
            extra = u32(tp.rcv_nxt - tp.irs - 1 - received)
            fin_states = (TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING, TCP_TIME_WAIT, TCP_CLOSE)
            if extra not in (0, 1) or (extra == 1 and tp.state not in fin_states):
                out.append(
                    f"{SIDES[side]}: rcv_nxt {tp.rcv_nxt} is irs {tp.irs} + 1 + {received} bytes + {extra} "
                    f"in {_name(tp.state)}"
                )
    return out


@invariant(
    "tcp.snd_una_monotonic",
    model=MODEL,
    statement="snd_una never moves backwards.",
    source="net/ipv4/tcp_input.c tcp_ack (old ACKs are ignored), tcp_snd_una_update",
    transition=True,
)
def snd_una_monotonic(before: TcpState, step: Step, after: TcpState) -> list[str]:
    return _moved_back(before, after, "snd_una", "iss")


@invariant(
    "tcp.rcv_nxt_monotonic",
    model=MODEL,
    statement="rcv_nxt never moves backwards: a segment rcv_nxt has passed is never taken again.",
    source="net/ipv4/tcp_input.c tcp_data_queue and tcp_ofo_queue (the !after(end_seq, rcv_nxt) drops)",
    transition=True,
)
def rcv_nxt_monotonic(before: TcpState, step: Step, after: TcpState) -> list[str]:
    return _moved_back(before, after, "rcv_nxt", "irs")


def _moved_back(before: TcpState, after: TcpState, field: str, isn: str) -> list[str]:
    """Each socket whose field went back within one connection (the same initial sequence
    number isn, set before the step)."""
    out = []
    for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True)):
        old, new = getattr(b, field), getattr(a, field)
        if getattr(b, isn) is not None and getattr(a, isn) == getattr(b, isn) and seq.before(new, old):
            out.append(f"{SIDES[side]}'s {field} went back from {old} to {new}")
    return out


@invariant(
    "tcp.copied_seq",
    model=MODEL,
    statement="!seq.after(copied_seq, rcv_nxt): the user reads only what has arrived in order.",
    source="net/ipv4/tcp.c tcp_recvmsg",
)
def copied_seq(state: TcpState) -> list[str]:
    return [
        f"{SIDES[side]}: copied_seq {tp.copied_seq} is after rcv_nxt {tp.rcv_nxt}"
        for side, tp in enumerate(state.socks)
        if _synced(tp) and seq.after(tp.copied_seq, tp.rcv_nxt)
    ]


@invariant(
    "tcp.stream_prefix",
    model=MODEL,
    statement="The bytes a user has read are exactly the first bytes its peer wrote, in order, "
    "and at end-of-file all of them.",
    source="RFC 9293 3.8 (reliable, in-order delivery)",
)
def stream_prefix(state: TcpState) -> list[str]:
    out = []
    for side, tp in enumerate(state.socks):
        peer = state.socks[1 - side]
        if tp.read != stream(len(tp.read)):
            out.append(
                f"{SIDES[side]} read {list(tp.read)}, not the first {len(tp.read)} bytes its peer wrote"
            )
        elif len(tp.read) > peer.written:
            out.append(f"{SIDES[side]} read {len(tp.read)} bytes; its peer wrote {peer.written}")
        elif tp.done and not tp.err and tp.copied_seq == tp.rcv_nxt and len(tp.read) != peer.written:
            out.append(
                f"{SIDES[side]} read end-of-file after {len(tp.read)} bytes; its peer wrote {peer.written}"
            )
    return out


@invariant(
    "tcp.queue_shape",
    model=MODEL,
    statement="The receive queue is contiguous and ends at rcv_nxt; the out-of-order queue is in "
    "strictly increasing seq, no skb in it lies inside another, and every one starts after "
    "rcv_nxt. (Partial overlaps stay: tcp_data_queue_ofo keeps them.)",
    source="net/ipv4/tcp_input.c tcp_data_queue, tcp_data_queue_ofo, tcp_ofo_queue",
)
def queue_shape(state: TcpState) -> list[str]:
    out = []
    for side, tp in enumerate(state.socks):
        who = SIDES[side]
        rq = tp.receive_queue
        for prev, nxt in pairwise(rq):
            if seq.after(nxt.seq, prev.end_seq) or not seq.after(nxt.end_seq, prev.end_seq):
                out.append(
                    f"{who}: receive queue skb [{nxt.seq}, {nxt.end_seq}) does not follow [{prev.seq}, {prev.end_seq})"
                )
        if rq and rq[-1].end_seq != tp.rcv_nxt:
            out.append(f"{who}: the receive queue ends at {rq[-1].end_seq}, rcv_nxt is {tp.rcv_nxt}")
        oq = tp.ofo_queue
        for prev, nxt in pairwise(oq):
            if not seq.after(nxt.seq, prev.seq) or not seq.after(nxt.end_seq, prev.end_seq):
                out.append(
                    f"{who}: out-of-order skbs [{prev.seq}, {prev.end_seq}) and [{nxt.seq}, {nxt.end_seq}) out of order or nested"
                )
        out += [
            f"{who}: out-of-order skb at {skb.seq} is not after rcv_nxt {tp.rcv_nxt}"
            for skb in oq
            if not seq.after(skb.seq, tp.rcv_nxt)
        ]
    return out


def _new_skbs(b: TcpSock, a: TcpSock) -> list[tuple[int, int]]:
    """(seq, end_seq) of the skbs a step added to the receive and out-of-order queues."""
    old = Counter((s.seq, s.end_seq) for s in (*b.receive_queue, *b.ofo_queue))
    new = Counter((s.seq, s.end_seq) for s in (*a.receive_queue, *a.ofo_queue))
    return list((new - old).elements())


@invariant(
    "tcp.accepted_in_window",
    model=MODEL,
    statement="Every segment queued began inside the receive window when it arrived: "
    "seq.before(seq, rcv_nxt + tcp_receive_window()).",
    source="net/ipv4/tcp_input.c tcp_data_queue (out of window), tcp_sequence",
    transition=True,
)
def accepted_in_window(before: TcpState, step: Step, after: TcpState) -> list[str]:
    out = []
    for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True)):
        if not _synced(b) or a.irs != b.irs:
            continue
        window = tcp_receive_window(b.rcv_wup, b.rcv_wnd, b.rcv_nxt)
        edge = u32(b.rcv_nxt + window)
        out += [
            f"{SIDES[side]} queued [{start}, {end}) beyond its window's right edge {edge}"
            for start, end in _new_skbs(b, a)
            if not seq.before(start, edge)
        ]
    return out


@invariant(
    "tcp.window_never_shrinks",
    model=MODEL,
    statement="The right edge of the advertised window, rcv_wup + rcv_wnd, never moves back.",
    source='net/ipv4/tcp_output.c tcp_select_window ("Never shrink the offered window")',
    transition=True,
)
def window_never_shrinks(before: TcpState, step: Step, after: TcpState) -> list[str]:
    out = []
    for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True)):
        if _synced(b) and a.irs == b.irs:
            old, new = u32(b.rcv_wup + b.rcv_wnd), u32(a.rcv_wup + a.rcv_wnd)
            if seq.before(new, old):
                out.append(f"{SIDES[side]}'s advertised right edge moved back from {old} to {new}")
    return out


@invariant(
    "tcp.send_within_window",
    model=MODEL,
    statement="No new data (or FIN) is sent beyond the peer's window: !seq.after(end_seq, snd_una + snd_wnd).",
    source="net/ipv4/tcp_output.c tcp_snd_wnd_test, tcp_write_wakeup",
    transition=True,
)
def send_within_window(before: TcpState, step: Step, after: TcpState) -> list[str]:
    if step.action == "duplicate":
        return []
    out = []
    for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True)):
        toward = 1 - side
        sent = Counter(after.net[toward]) - Counter(before.net[toward])
        edge = u32(a.snd_una + a.snd_wnd)
        for seg in sent.elements():
            if seg.flags & TCPHDR_SYN or seg.end_seq == seg.seq or not seq.after(seg.end_seq, b.snd_nxt):
                continue
            if seq.after(seg.end_seq, edge):
                out.append(
                    f"{SIDES[side]} sent {seg} ending at {seg.end_seq}, beyond snd_una + snd_wnd = {edge}"
                )
    return out


_GUARDED = {  # transitions taken only once our FIN is acknowledged, unless by a reset
    (TCP_FIN_WAIT1, TCP_FIN_WAIT2),
    (TCP_FIN_WAIT1, TCP_TIME_WAIT),
    (TCP_CLOSING, TCP_TIME_WAIT),
    (TCP_LAST_ACK, TCP_CLOSE),
}


@invariant(
    "tcp.legal_transition",
    model=MODEL,
    statement="Each state change is an edge of RFC 9293's diagram as Linux takes it; FIN_WAIT1 to "
    "FIN_WAIT2, CLOSING to TIME_WAIT and LAST_ACK to CLOSE only once snd_una == write_seq.",
    source="net/ipv4/tcp_input.c tcp_rcv_state_process, tcp_fin; net/ipv4/tcp.c new_state[]",
    transition=True,
)
def legal_transition(before: TcpState, step: Step, after: TcpState) -> list[str]:
    out = []
    for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True)):
        if a.state == b.state:
            continue
        # A connection the listener created in this step was born in SYN_RECV.
        start = (
            TCP_SYN_RECV if b.iss != a.iss and b.state == TCP_CLOSE and a.state != TCP_SYN_SENT else b.state
        )
        if a.state == start:
            continue
        edge = (start, a.state)
        if edge not in TRANSITIONS:
            out.append(f"{SIDES[side]} went from {_name(start)} to {_name(a.state)}")
        elif edge in _GUARDED and not a.err and a.snd_una != a.write_seq:
            out.append(
                f"{SIDES[side]} went from {_name(b.state)} to {_name(a.state)} with snd_una {a.snd_una} "
                f"short of write_seq {a.write_seq}: its FIN is not acknowledged"
            )
    return out


@invariant(
    "tcp.no_data_after_rcv_shutdown",
    model=MODEL,
    statement="Once the peer's FIN is in (RCV_SHUTDOWN), no more data is queued.",
    source="net/ipv4/tcp_input.c tcp_rcv_state_process step 7, tcp_fin",
    transition=True,
)
def no_data_after_rcv_shutdown(before: TcpState, step: Step, after: TcpState) -> list[str]:
    return [
        f"{SIDES[side]} queued [{start}, {end}) after the peer's FIN"
        for side, (b, a) in enumerate(zip(before.socks, after.socks, strict=True))
        if b.shutdown & RCV_SHUTDOWN and b.done and a.irs == b.irs
        for start, end in _new_skbs(b, a)
    ]


@invariant(
    "tcp.accept_backlog",
    model=MODEL,
    statement="The listener's queues stay bounded by listen()'s backlog: at most backlog request socks, "
    "and at most backlog + 1 connections waiting for accept() (sk_acceptq_is_full tests >, not >=).",
    source="net/ipv4/tcp_input.c tcp_conn_request; tcp_ipv4.c tcp_v4_syn_recv_sock; include/net/sock.h "
    "sk_acceptq_is_full; include/net/inet_connection_sock.h inet_csk_reqsk_queue_is_full",
)
def accept_backlog(state: TcpState) -> list[str]:
    out = []
    if len(state.syn_queue) > state.max_ack_backlog:
        out.append(
            f"the listener holds {len(state.syn_queue)} request socks, backlog {state.max_ack_backlog}"
        )
    if len(state.accept_queue) > state.max_ack_backlog + 1:
        out.append(
            f"{len(state.accept_queue)} connections wait for accept(), backlog {state.max_ack_backlog} "
            f"allows {state.max_ack_backlog + 1}"
        )
    return out


# Reachability goals: what the configs are meant to reach, so that a pass is not vacuous.


def _delivered(before: TcpState, step: Step) -> tuple[int, Segment] | None:
    """(the side it arrives at, the segment) of a deliver step; None for any other step."""
    if step.action != "deliver":
        return None
    direction, index = step.args
    flying = before.net[direction]
    return (direction, flying[index]) if 0 <= index < len(flying) else None


def _answered(before: TcpState, after: TcpState, side: int) -> bool:
    """side put a segment on the wire in this step."""
    return len(after.net[1 - side]) > len(before.net[1 - side])


@goal(
    "tcp.handshake",
    model=MODEL,
    statement="The three-way handshake completes: the client's socket and the server's connection "
    "are both ESTABLISHED.",
)
def handshake(state: TcpState) -> bool:
    return all(tp.state == TCP_ESTABLISHED for tp in state.socks)


@goal(
    "tcp.rto_retransmit",
    model=MODEL,
    statement="With a segment or its ACK lost and nothing left in flight, the retransmission timer "
    "resends the head of the retransmission queue (tcp_retransmit_skb).",
    transition=True,
)
def rto_retransmit(before: TcpState, step: Step, after: TcpState) -> bool:
    if step.action != "rto":
        return False
    side = step.args[0]
    return after.socks[side].retransmits > before.socks[side].retransmits and _answered(before, after, side)


@goal(
    "tcp.hole_filled",
    model=MODEL,
    statement="A segment that arrived beyond rcv_nxt waits in the out-of-order queue until the one "
    "that fills the hole takes rcv_nxt past its own end (tcp_data_queue_ofo, tcp_ofo_queue).",
    transition=True,
)
def hole_filled(before: TcpState, step: Step, after: TcpState) -> bool:
    got = _delivered(before, step)
    if got is None or not before.socks[got[0]].ofo_queue:
        return False
    side, seg = got
    now = after.socks[side]
    return now.irs == before.socks[side].irs and seq.after(now.rcv_nxt, seg.end_seq)


@goal(
    "tcp.duplicate_data",
    model=MODEL,
    statement="A data segment all of whose bytes were received already (a retransmission, or the "
    "network's duplicate) is dropped and answered with an immediate ACK.",
    transition=True,
)
def duplicate_data(before: TcpState, step: Step, after: TcpState) -> bool:
    got = _delivered(before, step)
    if got is None:
        return False
    side, seg = got
    tp = before.socks[side]
    return (
        _synced(tp)
        and bool(seg.data)
        and not seq.after(seg.end_seq, tp.rcv_nxt)
        and _answered(before, after, side)
    )


@goal(
    "tcp.delayed_ack",
    model=MODEL,
    statement="The delayed-ACK timer fires and sends the ACK that waited for it.",
    transition=True,
)
def delayed_ack(before: TcpState, step: Step, after: TcpState) -> bool:
    return step.action == "delack" and _answered(before, after, step.args[0])


@goal(
    "tcp.zero_window_probe",
    model=MODEL,
    statement="With data waiting behind a zero window and nothing in flight, the probe timer sends "
    "a probe (tcp_write_wakeup).",
    transition=True,
)
def zero_window_probe(before: TcpState, step: Step, after: TcpState) -> bool:
    return step.action == "probe" and _answered(before, after, step.args[0])


@goal(
    "tcp.simultaneous_close",
    model=MODEL,
    statement="Both sides close at once: a socket whose FIN is unacknowledged receives the peer's "
    "FIN and enters CLOSING.",
)
def simultaneous_close(state: TcpState) -> bool:
    return any(tp.state == TCP_CLOSING for tp in state.socks)


@goal(
    "tcp.orderly_close",
    model=MODEL,
    statement="The connection is closed on both sides without an error: each socket has received "
    "the other's FIN and is in TIME_WAIT or CLOSE.",
    # The small config's client writes three bytes into a two-byte window before its FIN: a
    # full close takes more steps than the explorer's depth (13) reaches.
    engines=("stateful",),
)
def orderly_close(state: TcpState) -> bool:
    return all(
        _open(tp) and tp.done and not tp.err and tp.state in (TCP_TIME_WAIT, TCP_CLOSE) for tp in state.socks
    )


@goal(
    "tcp.reset",
    model=MODEL,
    statement="A RST the socket accepts resets the connection (tcp_reset): CLOSE with ECONNRESET, "
    "ECONNREFUSED or EPIPE.",
    transition=True,
    # The small config forges no segments; without a forger a RST that resets a connection
    # comes only after a full close (a FIN retransmitted to a port whose TIME_WAIT is over),
    # beyond the explorer's depth.
    engines=("stateful",),
)
def reset(before: TcpState, step: Step, after: TcpState) -> bool:
    return any(
        not b.err and a.err in (tcp_in.ECONNRESET, tcp_in.ECONNREFUSED, tcp_in.EPIPE) and a.state == TCP_CLOSE
        for b, a in zip(before.socks, after.socks, strict=True)
    )


@goal(
    "tcp.challenge_ack",
    model=MODEL,
    statement="A forged RST inside the window but not at rcv_nxt leaves the connection open and gets "
    "a challenge ACK (RFC 5961 3.2).",
    transition=True,
    engines=("stateful",),  # the small config injects no segments
)
def challenge_ack(before: TcpState, step: Step, after: TcpState) -> bool:
    if step.action != "inject" or step.args[1] != "rst_in_window":
        return False
    side = step.args[0]
    return after.socks[side].state == before.socks[side].state != TCP_CLOSE and _answered(before, after, side)


@goal(
    "tcp.syn_dropped_backlog",
    model=MODEL,
    statement="A SYN arriving at a listener whose request or accept queue is full against listen()'s "
    "backlog is dropped (no SYN cookies).",
    transition=True,
    engines=("stateful",),  # the small config has no flooding peers to fill the backlog
)
def syn_dropped_backlog(before: TcpState, step: Step, after: TcpState) -> bool:
    full = tcp_in.inet_csk_reqsk_queue_is_full(len(before.syn_queue), before.max_ack_backlog) or (
        tcp_in.sk_acceptq_is_full(len(before.accept_queue), before.max_ack_backlog)
    )
    if not full or not before.listening:
        return False
    if step.action == "flood_syn":
        return after.syn_queue == before.syn_queue
    got = _delivered(before, step)
    return (
        got is not None
        and got[0] == SERVER
        and got[1].flags & (TCPHDR_SYN | TCPHDR_ACK | TCPHDR_RST) == TCPHDR_SYN
        and before.socks[SERVER].state == TCP_CLOSE
        and before.req(CLIENT_PORT) is None
        and after.req(CLIENT_PORT) is None
        and not before.connected()
    )
