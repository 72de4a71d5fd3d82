"""TCP's input path (net/ipv4/tcp_input.c, tcp_minisocks.c, tcp_ipv4.c; 4.x-5.x).

``tcp_rcv_state_process`` is the kernel's full one (not the abridged listing of the seed's
"connect" section), and handles ESTABLISHED too: the kernel's tcp_rcv_established fast path
(header prediction) computes what this slow path does. Each function returns the socket
after the segment with the segments it answered with; a segment the socket refuses is
simply not queued.
"""

from __future__ import annotations

from typing import NamedTuple

from model.tcp import output
from model.tcp.output import Sent, tcp_send_ack, tcp_send_delayed_ack, tcp_write_xmit
from model.tcp.seq import after, before, tcp_may_update_window, tcp_receive_window, tcp_sequence, u32
from model.tcp.sock import (
    ICSK_ACK_NOW,
    ICSK_ACK_PUSHED,
    ICSK_ACK_PUSHED2,
    ICSK_ACK_SCHED,
    MAX_TCP_WINDOW,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_MAX_QUICKACKS,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    ReqSock,
    Segment,
    Skb,
    TcpSock,
)

EPIPE = 32
ECONNRESET = 104
ECONNREFUSED = 111
ETIMEDOUT = 110


def tcp_reset(tp: TcpSock) -> TcpSock:
    """tcp_reset: the peer reset the connection; tcp_done closes the socket."""
    err = {TCP_SYN_SENT: ECONNREFUSED, TCP_CLOSE_WAIT: EPIPE}.get(tp.state, ECONNRESET)
    return tcp_done(tp._replace(err=err, done=True))


def tcp_done(tp: TcpSock) -> TcpSock:
    """tcp_done: CLOSE, both directions shut down, the queues of unsent and unacked data dropped."""
    return tp._replace(
        state=TCP_CLOSE, shutdown=RCV_SHUTDOWN | SEND_SHUTDOWN, write_queue=(), rtx_queue=(), ofo_queue=(),
        ack_pending=0,
    )  # fmt: skip


def tcp_time_wait(tp: TcpSock) -> TcpSock:
    """tcp_time_wait(sk, TCP_TIME_WAIT): the connection lingers for 2MSL; nothing more to send."""
    return tp._replace(state=TCP_TIME_WAIT, write_queue=(), rtx_queue=(), ofo_queue=(), ack_pending=0)


def tcp_validate_incoming(tp: TcpSock, seg: Segment, mss: int) -> tuple[bool, TcpSock, list[Segment]]:
    """RFC 793's steps 1-4 as Linux takes them, with RFC 5961's challenge ACKs: a segment out
    of the window gets a duplicate ACK (a RST is dropped); a RST counts only at exactly
    rcv_nxt, elsewhere in the window it gets a challenge ACK; a SYN gets a challenge ACK."""
    if not tcp_sequence(tp.rcv_wup, tp.rcv_nxt, tp.rcv_wnd, seg.seq, seg.end_seq):
        if seg.flags & TCPHDR_RST:
            return False, tcp_reset(tp) if tcp_reset_check(tp, seg) else tp, []
        if seg.end_seq != seg.seq and before(seg.seq, tp.rcv_nxt) and not seg.flags & TCPHDR_SYN:
            tp = tcp_enter_quickack_mode(tp, mss)  # tcp_send_dupack: our ACK was lost
        tp, out = tcp_send_ack(tp, mss)  # tcp_send_dupack, or for a SYN the challenge ACK
        return False, tp, out
    if seg.flags & TCPHDR_RST:
        if seg.seq == tp.rcv_nxt or tcp_reset_check(tp, seg):
            return False, tcp_reset(tp), []
        tp, out = tcp_send_ack(tp, mss)  # tcp_send_challenge_ack
        return False, tp, out
    if seg.flags & TCPHDR_SYN:
        tp, out = tcp_send_ack(tp, mss)  # tcp_send_challenge_ack
        return False, tp, out
    return True, tp, []


def tcp_reset_check(tp: TcpSock, seg: Segment) -> bool:
    """A RST one below rcv_nxt after the peer's FIN (RFC 5961 3.2 as Linux extends it)."""
    return seg.seq == u32(tp.rcv_nxt - 1) and tp.state in (TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_CLOSING)


def tcp_ack(tp: TcpSock, seg: Segment, no_challenge: bool, mss: int) -> tuple[int, TcpSock, list[Segment]]:
    """tcp_ack: 1 for an ACK that is acceptable (new, or a duplicate), 0 for one older than
    snd_una (ignored), -1 for one beyond snd_nxt or far older. An acceptable ACK may update
    the send window (the snd_wl1 rule), moves snd_una on and cleans the retransmission
    queue."""
    ack = seg.ack_seq
    prior_snd_una = tp.snd_una
    if ack_is_old(ack, prior_snd_una):
        if before(ack, u32(prior_snd_una - tp.max_window)) and not no_challenge:
            tp, out = tcp_send_ack(tp, mss)  # RFC 5961 5.2: blind data injection
            return -1, tp, out
        return 0, tp, []  # old_ack
    if ack_beyond_sent(ack, tp.snd_nxt):
        return -1, tp, []  # invalid_ack
    nwin = seg.window
    if tcp_may_update_window(tp.snd_una, tp.snd_wl1, tp.snd_wnd, ack, seg.seq, nwin):
        tp = tp._replace(snd_wl1=seg.seq, snd_wnd=nwin, max_window=max(tp.max_window, nwin))
    return 1, tcp_clean_rtx_queue(tcp_snd_una_update(tp, ack)), []


def ack_is_old(ack: int, snd_una: int) -> bool:
    """An ACK older than snd_una: ignored."""
    return before(ack, snd_una)


def tcp_snd_una_update(tp: TcpSock, ack: int) -> TcpSock:
    """snd_una moves on to a newer ACK, and the RTO backoff restarts."""
    return tp._replace(snd_una=ack, retransmits=0) if after(ack, tp.snd_una) else tp


def ack_beyond_sent(ack: int, snd_nxt: int) -> bool:
    """An ACK of data not yet sent (RFC 793 3.9): discarded."""
    return after(ack, snd_nxt)


def tcp_clean_rtx_queue(tp: TcpSock) -> TcpSock:
    """Drop the skbs snd_una has passed whole; a partly acknowledged one stays (one MSS)."""
    queue = tp.rtx_queue
    while queue and not after(queue[0].end_seq, tp.snd_una):
        queue = queue[1:]
    return tp._replace(rtx_queue=queue)


def tcp_fin(tp: TcpSock, mss: int) -> Sent:
    """tcp_fin: the peer has no more to send. Its ACK is due; in CLOSE_WAIT it waits, in
    pingpong mode, to ride on our own FIN."""
    tp = inet_csk_schedule_ack(tp)._replace(shutdown=tp.shutdown | RCV_SHUTDOWN, done=True)
    out: list[Segment] = []
    if tp.state in (TCP_SYN_RECV, TCP_ESTABLISHED):
        tp = tp._replace(state=TCP_CLOSE_WAIT, ack_pingpong=True)  # inet_csk_enter_pingpong_mode
    elif tp.state == TCP_FIN_WAIT1:
        tp, out = tcp_send_ack(tp, mss)
        tp = tp._replace(state=TCP_CLOSING)
    elif tp.state == TCP_FIN_WAIT2:
        tp, out = tcp_send_ack(tp, mss)
        tp = tcp_time_wait(tp)
    return tp._replace(ofo_queue=()), out


def tcp_queue_rcv(tp: TcpSock, skb: Skb) -> TcpSock:
    """tcp_queue_rcv: the skb to the tail of the receive queue, and rcv_nxt to its end
    (tcp_rcv_nxt_update, which assigns: its callers have checked that end_seq is new)."""
    return tp._replace(receive_queue=(*tp.receive_queue, skb), rcv_nxt=skb.end_seq)


def tcp_data_queue(tp: TcpSock, seg: Segment, mss: int) -> Sent:
    """tcp_data_queue: in-order data (or FIN) to the receive queue, the rest to the
    out-of-order queue; a retransmission or a segment beyond the window is dropped. Each
    schedules an ACK, which tcp_ack_snd_check sends or delays once any data went out: at
    once for a drop (quickack mode), a hole, or a hole just filled."""
    skb = Skb(seg.seq, seg.end_seq, seg.flags & (TCPHDR_FIN | TCPHDR_ACK), seg.data)
    if skb.seq == skb.end_seq:
        return tp, []
    window = tcp_receive_window(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt)
    if in_sequence(skb, tp.rcv_nxt):
        if window == 0:
            return out_of_window(tp, mss), []
        return _queue_and_out(tp, skb, mss)
    if already_received(skb, tp.rcv_nxt):
        return out_of_window(tp, mss), []  # a retransmission: D-SACK, immediate ACK
    if beyond_window(skb.seq, tp.rcv_nxt, window):
        return out_of_window(tp, mss), []  # e.g. a zero-window probe
    if before(skb.seq, tp.rcv_nxt):
        if window == 0:
            return out_of_window(tp, mss), []
        return _queue_and_out(tp, skb, mss)  # partial: seq < rcv_nxt < end_seq
    return inet_csk_schedule_ack(tcp_data_queue_ofo(tp, skb)), []  # a hole


def out_of_window(tp: TcpSock, mss: int) -> TcpSock:
    """A segment dropped for its sequence number: the sender missed our ACK, so ACK at once."""
    return inet_csk_schedule_ack(tcp_enter_quickack_mode(tp, mss))


def in_sequence(skb: Skb, rcv_nxt: int) -> bool:
    """The segment is the next in sequence: it goes to the receive queue."""
    return skb.seq == rcv_nxt


def beyond_window(seq: int, rcv_nxt: int, window: int) -> bool:
    """A segment starting at or past the right edge of the receive window."""
    return not before(seq, u32(rcv_nxt + window))


def _queue_and_out(tp: TcpSock, skb: Skb, mss: int) -> Sent:
    if tp.receive_queue and output.held(tp) + len(skb.data) > tp.rcvbuf:  # tcp_try_rmem_schedule
        return tp, []
    tp = tcp_queue_rcv(tp, skb)
    if skb.data:
        tp = tcp_event_data_recv(tp, skb, mss)
    out: list[Segment] = []
    if skb.flags & TCPHDR_FIN:
        tp, out = tcp_fin(tp, mss)
    if tp.ofo_queue:
        tp, fin_out = tcp_ofo_queue(tp, mss)
        out += fin_out
        if not tp.ofo_queue:  # RFC 5681 4.2: ACK at once when a hole is filled
            tp = tp._replace(ack_pending=tp.ack_pending | ICSK_ACK_NOW)
    return tp, out


def inet_csk_schedule_ack(tp: TcpSock) -> TcpSock:
    return tp._replace(ack_pending=tp.ack_pending | ICSK_ACK_SCHED)


def tcp_incr_quickack(tp: TcpSock, mss: int) -> TcpSock:
    """Quick ACKs for half the window in full segments, at least two."""
    quickacks = min(tp.rcv_wnd // (2 * mss) or 2, TCP_MAX_QUICKACKS)
    return tp._replace(ack_quick=max(tp.ack_quick, quickacks))


def tcp_enter_quickack_mode(tp: TcpSock, mss: int) -> TcpSock:
    return tcp_incr_quickack(tp, mss)._replace(ack_pingpong=False, ack_ato=True)


def tcp_event_data_recv(tp: TcpSock, skb: Skb, mss: int) -> TcpSock:
    """In-order data: an ACK is due. The first data starts with quick ACKs (a new
    connection's sender is in slow start). A segment below the MSS marks the ACK as pushed
    (tcp_measure_rcv_mss: the model's MSS stands for icsk_ack.rcv_mss)."""
    tp = inet_csk_schedule_ack(tp)
    if len(skb.data) < mss:
        pushed = ICSK_ACK_PUSHED2 if tp.ack_pending & ICSK_ACK_PUSHED else 0
        tp = tp._replace(ack_pending=tp.ack_pending | ICSK_ACK_PUSHED | pushed)
    if not tp.ack_ato:
        tp = tcp_incr_quickack(tp, mss)._replace(ack_ato=True)
    return tp


def tcp_ack_snd_check(tp: TcpSock, mss: int) -> Sent:
    """tcp_ack_snd_check and __tcp_ack_snd_check (5.x, without SACK): a due ACK that no data
    segment has carried goes now if more than one full segment arrived since the window was
    last advertised and it would not shrink, in quickack mode, when ICSK_ACK_NOW asks, or with
    data out of order; otherwise it is delayed."""
    if not tp.ack_pending & ICSK_ACK_SCHED:
        return tp, []
    if (
        (u32(tp.rcv_nxt - tp.rcv_wup) > mss and output.select_window_size(tp, mss) >= tp.rcv_wnd)
        or tcp_in_quickack_mode(tp)
        or tp.ack_pending & ICSK_ACK_NOW
        or tp.ofo_queue
    ):
        return tcp_send_ack(tp, mss)
    return tcp_send_delayed_ack(tp), []


def tcp_in_quickack_mode(tp: TcpSock) -> bool:
    return tp.ack_quick > 0 and not tp.ack_pingpong


def tcp_data_queue_ofo(tp: TcpSock, skb: Skb) -> TcpSock:
    """tcp_data_queue_ofo: into the tree by seq. A segment all of whose bytes are there is
    dropped; one at the seq of another that covers it replaces it; one that overlaps another
    in part goes in beside it (the kernel keeps both); then the segments it covers to the
    right are removed (merge_right)."""
    queue = list(tp.ofo_queue)
    at = 0
    while at < len(queue):
        other = queue[at]
        if before(skb.seq, other.seq):
            break
        if before(skb.seq, other.end_seq):
            if not after(skb.end_seq, other.end_seq):
                return tp  # all the bits are present
            if not after(skb.seq, other.seq):
                del queue[at]  # same seq, and it covers other: replace
                break
        at += 1
    queue.insert(at, skb)
    while at + 1 < len(queue) and after(skb.end_seq, queue[at + 1].seq):
        if before(skb.end_seq, queue[at + 1].end_seq):
            break
        del queue[at + 1]
    return tp._replace(ofo_queue=tuple(queue))


def already_received(skb: Skb, rcv_nxt: int) -> bool:
    """Every byte of skb lies before rcv_nxt: it brings nothing new."""
    return not after(skb.end_seq, rcv_nxt)


def tcp_ofo_queue(tp: TcpSock, mss: int) -> Sent:
    """tcp_ofo_queue: move what rcv_nxt has reached from the out-of-order queue to the
    receive queue, dropping what it has passed."""
    out: list[Segment] = []
    while tp.ofo_queue and not after(tp.ofo_queue[0].seq, tp.rcv_nxt):
        skb, rest = tp.ofo_queue[0], tp.ofo_queue[1:]
        tp = tp._replace(ofo_queue=rest)
        if already_received(skb, tp.rcv_nxt):
            continue
        tp = tcp_queue_rcv(tp, skb)
        if skb.flags & TCPHDR_FIN:
            tp, out = tcp_fin(tp, mss)
            break
    return tp, out


def tcp_rcv_state_process(tp: TcpSock, seg: Segment, mss: int) -> Sent:
    """tcp_rcv_state_process for a socket past LISTEN (the listener is tcp_conn_request's)."""
    if tp.state == TCP_CLOSE:
        return tp, []
    if tp.state == TCP_SYN_SENT:
        return tcp_rcv_synsent_state_process(tp, seg, mss)
    if not seg.flags & (TCPHDR_ACK | TCPHDR_RST | TCPHDR_SYN):
        return tp, []
    ok, tp, out = tcp_validate_incoming(tp, seg, mss)
    if not ok:
        return tp, out
    if tp.state == TCP_ESTABLISHED:
        # tcp_rcv_established's slow path: only an ACK tcp_ack rejects (-1) stops the data;
        # an old one (0) lets it through.
        acceptable, tp, out = tcp_ack(tp, seg, False, mss)
        if acceptable < 0:
            return tp, out
    else:
        acceptable, tp, out = tcp_ack(tp, seg, True, mss)
        if acceptable <= 0:
            if tp.state == TCP_SYN_RECV:
                reset = output.tcp_send_reset_for(seg)
                return tp, [reset] if reset else []
            return tcp_send_ack(tp, mss)  # tcp_send_challenge_ack
    if tp.state == TCP_SYN_RECV:
        tp = tp._replace(
            state=TCP_ESTABLISHED, snd_una=seg.ack_seq, snd_wnd=seg.window, snd_wl1=seg.seq,
            max_window=max(tp.max_window, seg.window),
        )  # fmt: skip
    elif tp.state == TCP_FIN_WAIT1:
        tp = tcp_fin_wait1_ack(tp)
    elif tp.state == TCP_CLOSING and tp.snd_una == tp.write_seq:
        return tcp_time_wait(tp), []
    elif tp.state == TCP_LAST_ACK and tp.snd_una == tp.write_seq:
        return tcp_done(tp), []
    # Step 7, the segment text. Every state that gets here (ESTABLISHED, FIN_WAIT1/2,
    # CLOSE_WAIT, CLOSING, LAST_ACK) takes it, but for what follows the peer's FIN.
    text = seg.end_seq != seg.seq
    if after_peer_fin(tp, seg):
        text = False
    elif text and data_after_shutdown(tp, seg):
        return tcp_reset(tp), []  # RFC 1122: new data after we closed: reset
    if text:
        tp, acks = tcp_data_queue(tp, seg, mss)
        out += acks
    if tp.state not in (TCP_CLOSE, TCP_TIME_WAIT):
        tp, sent = tcp_write_xmit(tp, mss)  # tcp_data_snd_check: data carries the ACK ...
        tp, acks = tcp_ack_snd_check(tp, mss)  # ... else it goes alone, now or delayed
        out += sent + acks
    return tp, out


def data_after_shutdown(tp: TcpSock, seg: Segment) -> bool:
    """New data for a socket closing with RCV_SHUTDOWN set: RFC 1122 says reset."""
    closing = (TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK, TCP_FIN_WAIT1, TCP_FIN_WAIT2)
    data_end = u32(seg.end_seq - bool(seg.flags & TCPHDR_FIN))
    return tp.state in closing and bool(tp.shutdown & RCV_SHUTDOWN) and after(data_end, tp.rcv_nxt)


def after_peer_fin(tp: TcpSock, seg: Segment) -> bool:
    """Step 7 in CLOSE_WAIT, CLOSING and LAST_ACK: a segment at or past rcv_nxt lies after the
    peer's FIN, so its text is ignored."""
    return tp.state in (TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK) and not before(seg.seq, tp.rcv_nxt)


def tcp_fin_wait1_ack(tp: TcpSock) -> TcpSock:
    """FIN_WAIT1 becomes FIN_WAIT2 once our FIN is acknowledged (snd_una == write_seq)."""
    if tp.snd_una != tp.write_seq:
        return tp
    return tp._replace(state=TCP_FIN_WAIT2, shutdown=tp.shutdown | SEND_SHUTDOWN)


def tcp_rcv_synsent_state_process(tp: TcpSock, seg: Segment, mss: int) -> Sent:
    """SYN_SENT: a SYN-ACK acknowledging our SYN establishes the connection; an ACK of
    anything else is answered with a RST; a bare SYN is a simultaneous open."""
    if seg.flags & TCPHDR_ACK:
        if not after(seg.ack_seq, tp.snd_una) or after(seg.ack_seq, tp.snd_nxt):
            reset = output.tcp_send_reset_for(seg)  # reset_and_undo
            return tp, [reset] if reset and not seg.flags & TCPHDR_RST else []
        if seg.flags & TCPHDR_RST:
            return tcp_reset(tp), []
        if not seg.flags & TCPHDR_SYN:
            return tp, []
        tp = tp._replace(snd_wl1=seg.seq)  # tcp_init_wl
        _, tp, _ = tcp_ack(tp, seg, False, mss)
        rcv_nxt = u32(seg.seq + 1)
        tp = tp._replace(
            irs=seg.seq, rcv_nxt=rcv_nxt, rcv_wup=rcv_nxt, copied_seq=rcv_nxt, snd_wnd=seg.window,
            max_window=max(tp.max_window, seg.window), state=TCP_ESTABLISHED,
        )  # fmt: skip
        tp, out = tcp_send_ack(tp, mss)
        tp, sent = tcp_write_xmit(tp, mss)
        return tp, out + sent
    if seg.flags & TCPHDR_RST:
        return tp, []
    if seg.flags & TCPHDR_SYN:  # crossed SYNs
        rcv_nxt = u32(seg.seq + 1)
        tp = tp._replace(
            state=TCP_SYN_RECV, irs=seg.seq, rcv_nxt=rcv_nxt, rcv_wup=rcv_nxt, copied_seq=rcv_nxt, snd_wnd=seg.window,
            snd_wl1=seg.seq, max_window=max(tp.max_window, seg.window),
        )  # fmt: skip
        synack = Segment(tp.snd_una, rcv_nxt, TCPHDR_SYN | TCPHDR_ACK, min(tp.rcv_wnd, MAX_TCP_WINDOW))
        return tp, [synack]
    return tp, []


# The listener: tcp_conn_request for a SYN, tcp_check_req for the request sock's segments.


def tcp_conn_request(seg: Segment, isn: int, rcv_wnd: int) -> tuple[ReqSock, Segment]:
    """A SYN to the listener: a request sock, answered with a SYN-ACK."""
    req = ReqSock(rcv_isn=seg.seq, snt_isn=isn, rcv_wnd=rcv_wnd, snd_wnd=seg.window)
    return req, synack(req)


def synack(req: ReqSock) -> Segment:
    return Segment(
        req.snt_isn, u32(req.rcv_isn + 1), TCPHDR_SYN | TCPHDR_ACK, min(req.rcv_wnd, MAX_TCP_WINDOW)
    )


def tcp_in_window(seq: int, end_seq: int, s_win: int, e_win: int) -> bool:
    if seq == s_win:
        return True
    if after(end_seq, s_win) and before(seq, e_win):
        return True
    return seq == e_win and seq == end_seq


class CheckReq(NamedTuple):
    req: ReqSock | None  # the request sock after the segment (None: dropped)
    child: TcpSock | None  # the new socket, when the segment completes the handshake
    out: list[Segment]


def sk_acceptq_is_full(ack_backlog: int, max_ack_backlog: int) -> bool:
    """include/net/sock.h: full only beyond the backlog, so the accept queue holds one more
    connection than listen() asked for."""
    return ack_backlog > max_ack_backlog


def inet_csk_reqsk_queue_is_full(qlen: int, max_ack_backlog: int) -> bool:
    """include/net/inet_connection_sock.h: the request socks are bounded by the backlog."""
    return qlen >= max_ack_backlog


def tcp_check_req(req: ReqSock, seg: Segment, rcvbuf: int, acceptq_full: bool) -> CheckReq:
    """tcp_check_req: a retransmitted SYN gets the SYN-ACK again; an ACK of the wrong
    sequence number a RST; a segment out of the request's window an ACK; a RST or a new SYN
    ends the request; the handshake's ACK creates the child socket in SYN_RECV
    (tcp_v4_syn_recv_sock, tcp_create_openreq_child), which then processes the segment
    itself, unless the accept queue is full: then the ACK is dropped and the request stays
    (listen_overflow, tcp_abort_on_overflow off), for the SYN-ACK's retransmission to try
    again."""
    flags = seg.flags & (TCPHDR_RST | TCPHDR_SYN | TCPHDR_ACK)
    if seg.seq == req.rcv_isn and flags == TCPHDR_SYN:
        return CheckReq(req._replace(retransmits=req.retransmits + 1), None, [synack(req)])
    if flags & TCPHDR_ACK and seg.ack_seq != u32(req.snt_isn + 1):
        reset = output.tcp_send_reset_for(seg)
        return CheckReq(req, None, [reset] if reset else [])
    rcv_nxt = u32(req.rcv_isn + 1)
    if not tcp_in_window(seg.seq, seg.end_seq, rcv_nxt, u32(rcv_nxt + req.rcv_wnd)):
        if flags & TCPHDR_RST:
            return CheckReq(req, None, [])
        ack = Segment(u32(req.snt_isn + 1), rcv_nxt, TCPHDR_ACK, min(req.rcv_wnd, MAX_TCP_WINDOW))
        return CheckReq(req, None, [ack])
    if flags & (TCPHDR_RST | TCPHDR_SYN):
        reset = None if flags & TCPHDR_RST else output.tcp_send_reset_for(seg)
        return CheckReq(None, None, [reset] if reset else [])  # embryonic_reset
    if not flags & TCPHDR_ACK or acceptq_full:
        return CheckReq(req, None, [])
    snd_una = u32(req.snt_isn + 1)
    child = TcpSock(
        state=TCP_SYN_RECV, iss=req.snt_isn, irs=req.rcv_isn, write_seq=snd_una, snd_una=snd_una, snd_nxt=snd_una, snd_wnd=seg.window,
        snd_wl1=req.rcv_isn, max_window=seg.window, rcv_nxt=rcv_nxt, rcv_wup=rcv_nxt, rcv_wnd=req.rcv_wnd,
        copied_seq=rcv_nxt, rcvbuf=rcvbuf,
    )  # fmt: skip
    return CheckReq(None, child, [])


def tcp_timewait_state_process(tp: TcpSock, seg: Segment) -> Sent:
    """A segment for a connection in TIME_WAIT: a RST at rcv_nxt ends it (RFC 1337 is off by
    default), a bare ACK at rcv_nxt changes nothing, anything else (a retransmitted FIN) is
    acknowledged again."""
    if seg.seq == tp.rcv_nxt and (seg.seq == seg.end_seq or seg.flags & TCPHDR_RST):
        if seg.flags & TCPHDR_RST:
            return tcp_done(tp), []
        return tp, []
    if seg.flags & TCPHDR_RST:
        return tp, []
    return tp, [
        Segment(tp.snd_nxt, tp.rcv_nxt, TCPHDR_ACK, tcp_receive_window(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt))
    ]


def tcp_recvmsg(tp: TcpSock) -> tuple[TcpSock, tuple[int, ...]]:
    """tcp_recvmsg: copy every in-order byte from copied_seq (each skb from its offset
    copied_seq - seq), then the FIN if it is next (++copied_seq: end-of-file); the skbs
    read to their end leave the queue."""
    got: list[int] = []
    seq = tp.copied_seq
    for skb in tp.receive_queue:
        if before(seq, skb.seq):
            break  # "TCP recvmsg seq # bug": a hole before this skb
        offset = u32(seq - skb.seq)
        if offset < len(skb.data):
            got += skb.data[offset:]
            seq = u32(seq + len(skb.data) - offset)
        if skb.flags & TCPHDR_FIN and seq == u32(skb.end_seq - 1):
            seq = skb.end_seq  # found_fin_ok: end-of-file, and nothing after it
            break
    queue = tuple(skb for skb in tp.receive_queue if after(skb.end_seq, seq))
    return tp._replace(copied_seq=seq, receive_queue=queue, read=(*tp.read, *got)), tuple(got)


def tcp_cleanup_rbuf(tp: TcpSock, copied: int, mss: int) -> Sent:
    """After a read: a delayed ACK goes now if more than a full segment waits for it, or if
    the read emptied the buffer of small (pushed) segments; else a window update if the
    window the peer knows at least doubles."""
    if tp.state in (TCP_CLOSE, TCP_TIME_WAIT):
        return tp, []
    pending = tp.ack_pending
    pushed = pending & ICSK_ACK_PUSHED2 or (pending & ICSK_ACK_PUSHED and not tp.ack_pingpong)
    emptied = copied > 0 and bool(pushed) and not tp.receive_queue and not tp.ofo_queue
    time_to_ack = bool(pending & ICSK_ACK_SCHED) and (u32(tp.rcv_nxt - tp.rcv_wup) > mss or emptied)
    if copied and not time_to_ack and not tp.shutdown & RCV_SHUTDOWN:
        now = tcp_receive_window(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt)
        new = output.select_window_size(tp, mss)
        time_to_ack = 2 * now <= tp.rcvbuf and new > 0 and new >= 2 * now
    return tcp_send_ack(tp, mss) if time_to_ack else (tp, [])
