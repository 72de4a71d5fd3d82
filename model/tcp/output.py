"""TCP's output path (net/ipv4/tcp_output.c, tcp_timer.c, tcp.c; 4.x-5.x).

Each function takes a socket and returns the socket after it with the segments it put on
the wire. Left out, as the model's network and windows are a few bytes: congestion control
(cwnd never limits), Nagle and TSO autosizing (TCP_NODELAY: a segment goes as soon as the
window takes it), window scaling, timestamps, SACK and urgent data.
"""

from __future__ import annotations

from model.tcp.seq import after, before, tcp_receive_window, u32
from model.tcp.sock import (
    ICSK_ACK_SCHED,
    ICSK_ACK_TIMER,
    MAX_TCP_WINDOW,
    SEND_SHUTDOWN,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_LAST_ACK,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    Segment,
    Skb,
    TcpSock,
    stream_byte,
)

Sent = tuple[TcpSock, list[Segment]]


def unread(tp: TcpSock) -> int:
    """Payload bytes received in order and not yet read (from copied_seq on)."""
    return sum(
        not before(u32(skb.seq + i), tp.copied_seq) for skb in tp.receive_queue for i in range(len(skb.data))
    )


def held(tp: TcpSock) -> int:
    """Payload bytes the receive side holds: unread in order, and out of order."""
    return unread(tp) + sum(len(s.data) for s in tp.ofo_queue)


def select_window_size(tp: TcpSock, mss: int) -> int:
    """__tcp_select_window, reduced to its rule for small buffers: the free receive space
    rounded down to the MSS, and no window at all below one MSS (silly window avoidance)."""
    free = max(tp.rcvbuf - held(tp), 0)
    return 0 if free < mss else free - free % mss


def tcp_select_window(tp: TcpSock, mss: int) -> tuple[TcpSock, int]:
    """tcp_select_window: the window to advertise, never one that moves the right edge
    (rcv_wup + rcv_wnd) back; it records what it advertised in rcv_wnd and rcv_wup."""
    cur_win = tcp_receive_window(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt)
    new_win = select_window_size(tp, mss)
    if new_win < cur_win:  # "Never shrink the offered window"
        new_win = cur_win
    new_win = min(new_win, MAX_TCP_WINDOW)
    return tp._replace(rcv_wnd=new_win, rcv_wup=tp.rcv_nxt), new_win


def tcp_transmit_skb(tp: TcpSock, skb: Skb, mss: int) -> Sent:
    """The segment of skb with ack_seq = rcv_nxt and the window: a SYN's is rcv_wnd, never
    scaled; every other segment's comes from tcp_select_window."""
    if skb.flags & TCPHDR_SYN:
        window = min(tp.rcv_wnd, MAX_TCP_WINDOW)
    else:
        tp, window = tcp_select_window(tp, mss)
    ack = tp.rcv_nxt if skb.flags & TCPHDR_ACK else 0
    if skb.flags & TCPHDR_ACK:
        tp = tcp_event_ack_sent(tp)
    return tp, [Segment(skb.seq, ack, skb.flags, window, skb.data)]


def tcp_event_ack_sent(tp: TcpSock) -> TcpSock:
    """Any segment carrying an ACK acknowledges all received: a quick ACK is used up
    (tcp_dec_quickack_mode), and the pending ACK and its timer are cleared."""
    return tp._replace(ack_quick=max(tp.ack_quick - 1, 0), ack_pending=0)


def tcp_send_delayed_ack(tp: TcpSock) -> TcpSock:
    """The ACK waits for the delayed-ACK timer (or for a segment to ride on)."""
    return tp._replace(ack_pending=tp.ack_pending | ICSK_ACK_SCHED | ICSK_ACK_TIMER)


def tcp_delack_timer(tp: TcpSock, mss: int) -> Sent:
    """tcp_delack_timer_handler: the delayed ACK goes out; a missed one in pingpong mode
    means the user is not replying, so the mode ends."""
    tp = tp._replace(ack_pending=tp.ack_pending & ~ICSK_ACK_TIMER)
    if not tp.ack_pending & ICSK_ACK_SCHED:
        return tp, []
    return tcp_send_ack(tp._replace(ack_pingpong=False), mss)


def tcp_acceptable_seq(tp: TcpSock) -> int:
    """The seq of a bare ACK: snd_nxt, unless the peer's window shrank below it."""
    wnd_end = u32(tp.snd_una + tp.snd_wnd)
    return tp.snd_nxt if not before(wnd_end, tp.snd_nxt) else wnd_end


def tcp_send_ack(tp: TcpSock, mss: int) -> Sent:
    if tp.state == TCP_CLOSE:
        return tp, []
    seq = tcp_acceptable_seq(tp)
    return tcp_transmit_skb(tp, Skb(seq, seq, TCPHDR_ACK), mss)


def tcp_send_reset_for(seg: Segment) -> Segment | None:
    """tcp_v4_send_reset: the RST a segment gets from a port with no socket for it (none
    for a RST). An ACK is answered at its ack_seq; anything else with an ACK of all it
    carried."""
    if seg.flags & TCPHDR_RST:
        return None
    if seg.flags & TCPHDR_ACK:
        return Segment(seg.ack_seq, 0, TCPHDR_RST, 0)
    return Segment(0, seg.end_seq, TCPHDR_RST | TCPHDR_ACK, 0)


def tcp_connect(tp: TcpSock, isn: int, rcvbuf: int, mss: int) -> Sent:
    """tcp_v4_connect and tcp_connect: SYN_SENT, the SYN queued for retransmission and sent."""
    rcv_wnd = rcvbuf - rcvbuf % mss  # tcp_select_initial_window
    syn = Skb(isn, u32(isn + 1), TCPHDR_SYN)
    tp = tp._replace(
        state=TCP_SYN_SENT,
        iss=isn,
        write_seq=u32(isn + 1),
        snd_una=isn,
        snd_nxt=u32(isn + 1),
        snd_wnd=0,
        snd_wl1=0,
        rcv_nxt=0,
        rcv_wup=0,
        copied_seq=0,
        rcv_wnd=rcv_wnd,
        rcvbuf=rcvbuf,
        rtx_queue=(syn,),
    )
    return tcp_transmit_skb(tp, syn, mss)


def tcp_sendmsg(tp: TcpSock, size: int, mss: int) -> Sent:
    """tcp_sendmsg: the user's next size bytes appended to the write queue (the tail skb
    grows up to the MSS, then new ones), write_seq advanced, then pushed."""
    queue = list(tp.write_queue)
    offset, write_seq = tp.written, tp.write_seq
    for k in range(size):
        byte = stream_byte(offset + k)
        tail = queue[-1] if queue else None
        if tail is not None and len(tail.data) < mss and not tail.flags & TCPHDR_FIN:
            queue[-1] = tail._replace(end_seq=u32(tail.end_seq + 1), data=(*tail.data, byte))
        else:
            queue.append(Skb(write_seq, u32(write_seq + 1), TCPHDR_ACK, (byte,)))
        write_seq = u32(write_seq + 1)
    tp = tp._replace(write_queue=tuple(queue), write_seq=write_seq, written=offset + size)
    return tcp_write_xmit(tp, mss)


def tcp_send_fin(tp: TcpSock, mss: int) -> Sent:
    """tcp_send_fin: the FIN rides on the tail skb if it is still unsent, else a new FIN|ACK
    skb at write_seq; either way it takes one sequence number."""
    queue = list(tp.write_queue)
    if queue:
        tail = queue[-1]
        queue[-1] = tail._replace(end_seq=u32(tail.end_seq + 1), flags=tail.flags | TCPHDR_FIN)
    else:
        queue.append(Skb(tp.write_seq, u32(tp.write_seq + 1), TCPHDR_FIN | TCPHDR_ACK))
    tp = tp._replace(write_queue=tuple(queue), write_seq=u32(tp.write_seq + 1))
    return tcp_write_xmit(tp, mss)


def tcp_wnd_end(tp: TcpSock) -> int:
    return u32(tp.snd_una + tp.snd_wnd)


def tcp_snd_wnd_test(tp: TcpSock, skb: Skb, mss: int) -> bool:
    """The skb (its first MSS) ends within the peer's window."""
    end_seq = skb.end_seq if len(skb.data) <= mss else u32(skb.seq + mss)
    return not after(end_seq, tcp_wnd_end(tp))


def tcp_event_new_data_sent(tp: TcpSock, skb: Skb) -> TcpSock:
    """snd_nxt moves to the skb's end_seq, and the skb to the retransmission queue."""
    return tp._replace(snd_nxt=skb.end_seq, write_queue=tp.write_queue[1:], rtx_queue=(*tp.rtx_queue, skb))


def can_send_data(tp: TcpSock) -> bool:
    """A connection's queued data (and FIN) may go out in any synchronized state up to the
    FIN's acknowledgement: CLOSING, for one, is reached before our FIN is sent when the
    peer's FIN arrives while data waits for the window."""
    return tp.state not in (TCP_CLOSE, TCP_LISTEN, TCP_SYN_SENT, TCP_SYN_RECV, TCP_TIME_WAIT)


def tcp_write_xmit(tp: TcpSock, mss: int) -> Sent:
    """Send the write queue from its head while each skb fits the peer's window."""
    out: list[Segment] = []
    while tp.write_queue and can_send_data(tp):
        skb = tp.write_queue[0]
        if not tcp_snd_wnd_test(tp, skb, mss):
            break
        tp, segs = tcp_transmit_skb(tp, skb, mss)
        out += segs
        tp = tcp_event_new_data_sent(tp, skb)
    return tp, out


def tcp_write_wakeup(tp: TcpSock, mss: int) -> Sent:
    """The zero-window probe timer (tcp_probe_timer -> tcp_write_wakeup): with data waiting
    and nothing in flight, send what of the head skb the window takes (split off), or if it
    takes nothing, a bare ACK one below snd_una (tcp_xmit_probe_skb) that the peer answers
    with its window."""
    skb = tp.write_queue[0]
    if before(skb.seq, tcp_wnd_end(tp)):
        room = u32(tcp_wnd_end(tp) - skb.seq)
        if room < u32(skb.end_seq - skb.seq) or len(skb.data) > mss:
            # tcp_fragment: the head goes (its FIN stays with the rest), the rest stays queued
            size = min(room, mss)
            head = Skb(skb.seq, u32(skb.seq + size), skb.flags & ~TCPHDR_FIN, skb.data[:size])
            rest = Skb(head.end_seq, skb.end_seq, skb.flags, skb.data[size:])
            tp = tp._replace(write_queue=(head, rest, *tp.write_queue[1:]))
            skb = head
        tp, segs = tcp_transmit_skb(tp, skb, mss)
        return tcp_event_new_data_sent(tp, skb), segs
    return tcp_transmit_skb(tp, Skb(u32(tp.snd_una - 1), u32(tp.snd_una - 1), TCPHDR_ACK), mss)


def tcp_retransmit_skb(tp: TcpSock, mss: int) -> Sent:
    """The retransmission timer: the head of the retransmission queue again, less any part
    already acknowledged (tcp_trim_head), and with the skbs after it folded in while they fit
    in one MSS (tcp_retrans_try_collapse; tcp_retrans_collapse is on by default), so that a
    retransmission may cover several segments the receiver holds out of order."""
    skb, rest = tp.rtx_queue[0], tp.rtx_queue[1:]
    if before(skb.seq, tp.snd_una):
        cut = u32(tp.snd_una - skb.seq)
        skb = Skb(tp.snd_una, skb.end_seq, skb.flags, skb.data[cut:])
    while rest and not (skb.flags | rest[0].flags) & TCPHDR_SYN and not skb.flags & TCPHDR_FIN:
        nxt = rest[0]
        if len(skb.data) + len(nxt.data) > mss:
            break
        skb = Skb(skb.seq, nxt.end_seq, skb.flags | nxt.flags, skb.data + nxt.data)
        rest = rest[1:]
    tp = tp._replace(rtx_queue=(skb, *rest))
    tp = tp._replace(retransmits=tp.retransmits + 1)
    return tcp_transmit_skb(tp, skb, mss)


def tcp_close_state(tp: TcpSock) -> tuple[TcpSock, bool]:
    """tcp_close_state and new_state[]: the state after the user closes its sending side,
    and whether a FIN goes out."""
    nxt = {TCP_ESTABLISHED: TCP_FIN_WAIT1, TCP_SYN_RECV: TCP_FIN_WAIT1, TCP_CLOSE_WAIT: TCP_LAST_ACK}
    if tp.state in nxt:
        return tp._replace(state=nxt[tp.state], shutdown=tp.shutdown | SEND_SHUTDOWN), True
    if tp.state == TCP_SYN_SENT:
        return tp._replace(state=TCP_CLOSE, shutdown=tp.shutdown | SEND_SHUTDOWN), False
    return tp._replace(shutdown=tp.shutdown | SEND_SHUTDOWN), False


def tcp_shutdown(tp: TcpSock, mss: int) -> Sent:
    """shutdown(SHUT_WR): FIN_WAIT1 or LAST_ACK, with a FIN."""
    tp, fin = tcp_close_state(tp)
    return tcp_send_fin(tp, mss) if fin else (tp, [])
