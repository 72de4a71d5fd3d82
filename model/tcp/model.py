"""TCP as a model: a client and a server (a listener and the connection it accepts) over a
network that drops, duplicates, reorders and delays segments within budgets.

The users run fixed scripts, each step an action whenever it may run: the client connects,
writes its chunks, shuts down its sending side, reads to end-of-file and closes; the server
accepts, closes its listener, writes its chunks, may shut down its sending side at any time
after (so both sides may close at once), reads to end-of-file and closes. The network holds
the segments in flight per direction as a multiset: any of them may arrive next.

Timers are abstract, with one rule that makes them honest: the retransmission, zero-window
probe and SYN-ACK timers fire only when nothing is in flight and no delayed ACK waits, as an
RTO above the round trip and above the delayed-ACK timeout (TCP_RTO_MIN is TCP_DELACK_MAX)
does; TIME_WAIT ends only then too, as 2MSL outlasts every segment. The delayed-ACK timer
may fire at any time. The budgets (losses, duplicates, injected segments, flooding
handshakes) bound the network's malice, so that every run ends: in the final state both
sockets are closed and both users done.

Injected segments (the ``large`` profile) are what a blind attacker or a broken peer sends:
a RST at the receiver's rcv_nxt or inside its window, an ACK beyond what was sent, a segment
with SYN and FIN. The kernel's answers to them (a reset, a challenge ACK, nothing) are the
model's. Flooding peers (also ``large``) each make a handshake with the listener, filling
its request and accept queues against listen()'s backlog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from model.contract import Model, Step, action
from model.tcp import input as tcp_in
from model.tcp import output as tcp_out
from model.tcp.seq import u32
from model.tcp.sock import (
    ICSK_ACK_TIMER,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    STATE_NAMES,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_SYN_RECV,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    ReqSock,
    Segment,
    TcpSock,
    stream_byte,
)

CLIENT, SERVER = 0, 1
CLIENT_PORT = 0  # the client's port; flooding peers' are 1, 2, ...


class Budget(NamedTuple):
    """What the network and other peers may still do: bounds that make every run end."""

    losses: int
    duplicates: int
    injections: int  # forged segments
    floods: int  # handshakes by other peers

    def spend(self, what: str) -> Budget:
        return self._replace(**{what: getattr(self, what) - 1})


SIDES = ("client", "server")
ETIMEDOUT = tcp_in.ETIMEDOUT


@dataclass(frozen=True)
class TcpConfig:
    client_writes: tuple[int, ...] = (1, 1, 1)  # bytes per write(), in order
    server_writes: tuple[int, ...] = ()
    mss: int = 2
    rcvbuf: int = 2  # each side's receive buffer, in bytes: the window never exceeds it
    client_isn: int = 0xFFFFFFFE  # both ISNs just below 2^32: every run crosses the wrap
    server_isn: int = 0xFFFFFFFF
    losses: int = 1
    duplicates: int = 1
    injections: int = 0
    retries: int = 3  # RTO expiries without progress before ETIMEDOUT (tcp_retries2)
    synack_retries: int = 2  # tcp_synack_retries
    backlog: int = 1  # listen(fd, backlog): sk_max_ack_backlog
    syn_flood: int = 0  # handshakes other peers make with the listener

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_writes", tuple(self.client_writes))
        object.__setattr__(self, "server_writes", tuple(self.server_writes))
        if self.mss < 1 or self.rcvbuf < self.mss:
            raise ValueError(f"mss {self.mss} and rcvbuf {self.rcvbuf}: need 1 <= mss <= rcvbuf")
        if self.backlog < 1:
            raise ValueError(
                f"backlog {self.backlog}: the listener needs room for one request (no SYN cookies)"
            )
        if any(n < 1 for n in (*self.client_writes, *self.server_writes)):
            raise ValueError("every write is of at least one byte")
        for name in ("client_isn", "server_isn"):
            if not 0 <= getattr(self, name) < 1 << 32:
                raise ValueError(f"{name} {getattr(self, name)} is not a u32")


SMALL = TcpConfig(client_writes=(1, 1, 1))
LARGE = TcpConfig(client_writes=(1, 1, 1), server_writes=(1,), mss=3, rcvbuf=3, injections=1, syn_flood=2)


@dataclass(slots=True, eq=False)
class TcpState:
    socks: tuple[TcpSock, TcpSock]  # the client's socket, and the server's connection (CLOSE until a SYN)
    listening: bool  # the server's listener is open
    # The listener's queues, by peer port (the client's is 0, a flooding peer's 1, 2, ...):
    # request socks between a SYN and the handshake's ACK, and the connections made, in the
    # order accept() takes them.
    syn_queue: tuple[tuple[int, ReqSock], ...]
    accept_queue: tuple[int, ...]
    max_ack_backlog: int  # sk_max_ack_backlog, from listen()
    accepted: bool  # the server's user has the client's connection
    phase: tuple[int, int]  # per user: how far its script has gone (see _PHASES)
    net: tuple[tuple[Segment, ...], tuple[Segment, ...]]  # in flight to the client, to the server
    budget: Budget

    def clone(self) -> TcpState:
        return TcpState(*self.fingerprint())  # every field is an immutable value

    def fingerprint(self) -> tuple[Any, ...]:
        return (
            self.socks,
            self.listening,
            self.syn_queue,
            self.accept_queue,
            self.max_ack_backlog,
            self.accepted,
            self.phase,
            self.net,
            self.budget,
        )

    def set_sock(self, side: int, tp: TcpSock) -> None:
        self.socks = (tp, self.socks[1]) if side == CLIENT else (self.socks[0], tp)

    def send(self, side: int, segs: Iterable[Segment]) -> None:
        """Put side's segments on the wire, towards the other side."""
        toward = 1 - side
        flying = list(self.net[toward]) + list(segs)
        net = list(self.net)
        net[toward] = tuple(sorted(flying))
        self.net = (net[0], net[1])

    def req(self, port: int) -> ReqSock | None:
        return dict(self.syn_queue).get(port)

    def set_req(self, port: int, req: ReqSock | None) -> None:
        reqs = dict(self.syn_queue)
        reqs.pop(port, None)
        if req is not None:
            reqs[port] = req
        self.syn_queue = tuple(sorted(reqs.items()))

    def connected(self) -> bool:
        """The client's connection is made: queued for accept(), or accepted."""
        return self.accepted or CLIENT_PORT in self.accept_queue

    def quiet(self) -> bool:
        return not self.net[0] and not self.net[1]

    def settled(self) -> bool:
        """Nothing in flight and no delayed ACK waiting: the slow timers may fire."""
        return self.quiet() and not any(tp.ack_pending & ICSK_ACK_TIMER for tp in self.socks)


# A user's script, one phase after another: CONNECT (the client), WRITING through its writes
# (reading as data comes), READING after shutdown(SHUT_WR) until end-of-file, DONE after
# close(). The server's user starts writing once it has accepted the connection.
CONNECT, WRITING, READING, DONE = 0, 1, 2, 3


def _ready(tp: TcpSock) -> bool:
    return tp.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT)


def _readable(tp: TcpSock) -> bool:
    return tp.copied_seq != tp.rcv_nxt and tp.state != TCP_SYN_RECV


def _user_has(s: TcpState, side: int) -> bool:
    return side == CLIENT or s.accepted


def _connect_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[()]]:
    return [()] if s.phase[CLIENT] == CONNECT else []


def _write_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [
        (side,)
        for side in (CLIENT, SERVER)
        if _user_has(s, side)
        and s.phase[side] == WRITING
        and m.writes_left(s, side)
        and _ready(s.socks[side])
    ]


def _shutdown_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    out = []
    for side in (CLIENT, SERVER):
        tp = s.socks[side]
        if (
            _user_has(s, side)
            and s.phase[side] in (WRITING, READING)
            and not m.writes_left(s, side)
            and _ready(tp)
            and not tp.shutdown & SEND_SHUTDOWN
        ):
            out.append((side,))
    return out


def _recv_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [
        (side,)
        for side in (CLIENT, SERVER)
        if _user_has(s, side) and s.phase[side] in (WRITING, READING) and _readable(s.socks[side])
    ]


def _close_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    out = []
    for side in (CLIENT, SERVER):
        tp = s.socks[side]
        if not _user_has(s, side) or s.phase[side] == DONE or s.phase[side] == CONNECT:
            continue
        eof = tp.done and tp.copied_seq == tp.rcv_nxt  # read to end-of-file
        sent_all = not m.writes_left(s, side) and (side == SERVER or tp.shutdown & SEND_SHUTDOWN)
        if (eof and sent_all) or tp.err:
            out.append((side,))
    return out


def _accept_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[()]]:
    return [()] if s.accept_queue and not s.accepted else []


def _close_listener_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[()]]:
    return [()] if s.listening and s.accepted else []


def _segments(s: TcpState) -> Iterable[tuple[int, int]]:
    """(direction, index) of each distinct segment in flight: the direction is the side it
    goes to."""
    for d in (0, 1):
        for i, seg in enumerate(s.net[d]):
            if i == 0 or s.net[d][i - 1] != seg:
                yield d, i


def _deliver_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int, int]]:
    return list(_segments(s))


def _drop_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int, int]]:
    return list(_segments(s)) if s.budget.losses else []


def _duplicate_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int, int]]:
    return list(_segments(s)) if s.budget.duplicates else []


def _inject_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int, str]]:
    if not s.budget.injections:
        return []
    return [
        (side, kind)
        for side in (CLIENT, SERVER)
        if s.socks[side].state != TCP_CLOSE
        for kind in INJECTIONS
        if kind != "data_after_fin" or s.socks[side].shutdown & RCV_SHUTDOWN
    ]


def _delack_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [(side,) for side in (CLIENT, SERVER) if s.socks[side].ack_pending & ICSK_ACK_TIMER]


def _rto_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    if not s.settled():
        return []
    return [
        (side,)
        for side in (CLIENT, SERVER)
        if s.socks[side].rtx_queue and s.socks[side].state not in (TCP_CLOSE, TCP_TIME_WAIT)
    ]


def _probe_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    if not s.settled():
        return []
    return [
        (side,)
        for side in (CLIENT, SERVER)
        if s.socks[side].write_queue and not s.socks[side].rtx_queue and tcp_out.can_send_data(s.socks[side])
    ]


def _synack_timer_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [(port,) for port, _ in s.syn_queue] if s.settled() else []


def _flood_syn_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[()]]:
    return [()] if s.listening and s.budget.floods else []


def _flood_ack_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [(port,) for port, _ in s.syn_queue if port != CLIENT_PORT]


def _time_wait_domain(m: TcpModel, s: TcpState) -> Iterable[tuple[int]]:
    return [(side,) for side in (CLIENT, SERVER) if s.socks[side].state == TCP_TIME_WAIT and s.settled()]


# What an attacker may inject at a side, computed from that side's socket.
INJECTIONS = (
    "rst_at_rcv_nxt",
    "rst_in_window",
    "ack_beyond_snd_nxt",
    "syn_fin",
    "data_at_right_edge",
    "data_after_fin",
)


def injected(tp: TcpSock, kind: str) -> Segment:
    if kind == "rst_at_rcv_nxt":
        return Segment(tp.rcv_nxt, 0, TCPHDR_RST, 0)
    if kind == "rst_in_window":
        return Segment(u32(tp.rcv_nxt + 1), 0, TCPHDR_RST, 0)
    if kind == "ack_beyond_snd_nxt":
        return Segment(tp.rcv_nxt, u32(tp.snd_nxt + 1), TCPHDR_ACK, 1)
    if kind == "data_after_fin":  # a byte at rcv_nxt, after the peer's FIN, acknowledging nothing new
        return Segment(tp.rcv_nxt, tp.snd_una, TCPHDR_ACK, 1, (0,))
    if kind == "data_at_right_edge":  # the byte just past the window, acknowledging all sent
        edge = u32(tp.rcv_nxt + tcp_in.tcp_receive_window(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt))
        return Segment(edge, tp.snd_nxt, TCPHDR_ACK, 1, (0,))
    return Segment(tp.rcv_nxt, tp.snd_una, TCPHDR_SYN | TCPHDR_FIN | TCPHDR_ACK, 1)


class TcpModel(Model[TcpState, TcpConfig]):
    name = "tcp"
    Config = TcpConfig
    profiles: ClassVar[dict[str, Any]] = {"small": SMALL, "large": LARGE}
    # Random runs deliver more often than anything else, so that they get far into a session.
    weights: ClassVar[dict[str, int]] = {"deliver": 3}

    def writes(self, side: int) -> tuple[int, ...]:
        return self.config.client_writes if side == CLIENT else self.config.server_writes

    def writes_left(self, s: TcpState, side: int) -> bool:
        return s.socks[side].written < sum(self.writes(side))

    def init_state(self) -> TcpState:
        c = self.config
        return TcpState(
            socks=(TcpSock(rcvbuf=c.rcvbuf), TcpSock(rcvbuf=c.rcvbuf)),
            listening=True,
            syn_queue=(),
            accept_queue=(),
            max_ack_backlog=c.backlog,
            accepted=False,
            phase=(CONNECT, WRITING),
            net=((), ()),
            budget=Budget(c.losses, c.duplicates, c.injections, c.syn_flood),
        )

    def is_final(self, state: TcpState) -> bool:
        """Both users done, both sockets closed, nothing in flight. After an attack (an
        injected segment, or a flood) that ended a connection in an error, a run may end
        anywhere: a forged RST that kills one side leaves the other waiting for good (in
        accept(), or in a FIN_WAIT2 that is not orphaned and so has no timeout), as a blind
        attack that guessed rcv_nxt does; a client whose handshake a full listener kept
        dropping times out while the server's user waits in accept()."""
        if not state.quiet():
            return False
        closed = all(tp.state == TCP_CLOSE for tp in state.socks)
        if state.phase == (DONE, DONE) and not state.listening and closed:
            return True
        c = self.config
        attacked = state.budget.injections < c.injections or state.budget.floods < c.syn_flood
        return attacked and any(tp.err for tp in state.socks)

    def diagram(self, steps: Sequence[Step]) -> list[str] | None:
        return _trace_diagram(self, steps)

    # The users.

    def _set_phase(self, s: TcpState, side: int, phase: int) -> None:
        s.phase = (phase, s.phase[1]) if side == CLIENT else (s.phase[0], phase)

    @action(domain=_connect_domain)
    def connect(self, s: TcpState) -> None:
        """connect(): the client sends its SYN."""
        c = self.config
        tp, out = tcp_out.tcp_connect(s.socks[CLIENT], c.client_isn, c.rcvbuf, c.mss)
        s.set_sock(CLIENT, tp)
        s.send(CLIENT, out)
        self._set_phase(s, CLIENT, WRITING)

    @action("side", domain=_write_domain)
    def write(self, s: TcpState, side: int) -> int:
        """write(): the user's next chunk into the send buffer, sent as the window allows."""
        tp = s.socks[side]
        done, size = 0, 0
        for chunk in self.writes(side):
            if done >= tp.written:
                size = chunk
                break
            done += chunk
        tp, out = tcp_out.tcp_sendmsg(tp, size, self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)
        return size

    @action("side", domain=_shutdown_domain)
    def shutdown(self, s: TcpState, side: int) -> None:
        """shutdown(SHUT_WR): a FIN after the data."""
        tp, out = tcp_out.tcp_shutdown(s.socks[side], self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)
        self._set_phase(s, side, READING)

    @action("side", domain=_recv_domain)
    def recv(self, s: TcpState, side: int) -> tuple[int, ...]:
        """read(): all the in-order data there is (and end-of-file after it); then
        tcp_cleanup_rbuf announces the larger window if it at least doubled."""
        tp, got = tcp_in.tcp_recvmsg(s.socks[side])
        tp, out = tcp_in.tcp_cleanup_rbuf(tp, len(got), self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)
        return got

    @action("side", domain=_close_domain)
    def close(self, s: TcpState, side: int) -> None:
        """close(): after end-of-file (or an error); a FIN if the sending side is still open."""
        tp = s.socks[side]
        out: list[Segment] = []
        if not tp.err and tp.state not in (TCP_CLOSE, TCP_TIME_WAIT):
            tp, out = tcp_out.tcp_shutdown(tp, self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)
        self._set_phase(s, side, DONE)

    @action(domain=_accept_domain)
    def accept(self, s: TcpState) -> None:
        """accept(): the head of the accept queue to the server's user, who keeps the client's
        connection and closes a flooding peer's at once (what follows on that one is not
        modelled)."""
        port, s.accept_queue = s.accept_queue[0], s.accept_queue[1:]
        s.accepted = port == CLIENT_PORT

    @action(domain=_close_listener_domain)
    def close_listener(self, s: TcpState) -> None:
        """close() of the listening socket (inet_csk_listen_stop): the request socks and the
        connections not accepted go with it."""
        s.listening = False
        s.syn_queue, s.accept_queue = (), ()

    # The network.

    @action("direction", "index", domain=_deliver_domain)
    def deliver(self, s: TcpState, direction: int, index: int) -> str:
        """The segment arrives at its side, which answers it."""
        seg = s.net[direction][index]
        self._take(s, direction, index)
        self.receive(s, direction, seg)
        return str(seg)

    @action("direction", "index", domain=_drop_domain)
    def drop(self, s: TcpState, direction: int, index: int) -> str:
        """The segment is lost."""
        seg = s.net[direction][index]
        self._take(s, direction, index)
        s.budget = s.budget.spend("losses")
        return str(seg)

    @action("direction", "index", domain=_duplicate_domain)
    def duplicate(self, s: TcpState, direction: int, index: int) -> str:
        """The network delivers the segment twice."""
        seg = s.net[direction][index]
        s.send(1 - direction, [seg])
        s.budget = s.budget.spend("duplicates")
        return str(seg)

    @action("side", "kind", domain=_inject_domain)
    def inject(self, s: TcpState, side: int, kind: str) -> str:
        """A forged segment arrives at side."""
        seg = injected(s.socks[side], kind)
        s.budget = s.budget.spend("injections")
        self.receive(s, side, seg)
        return str(seg)

    @staticmethod
    def _take(s: TcpState, direction: int, index: int) -> None:
        flying = s.net[direction]
        rest = flying[:index] + flying[index + 1 :]
        s.net = (rest, s.net[1]) if direction == 0 else (s.net[0], rest)

    def receive(self, s: TcpState, side: int, seg: Segment) -> None:
        """tcp_v4_rcv: the segment to the socket its ports name; the server's listener takes
        it while there is no connection (tcp_conn_request, tcp_check_req); with no socket
        at all, the port answers with a RST."""
        mss, tp = self.config.mss, s.socks[side]
        if side == SERVER and tp.state == TCP_CLOSE and s.listening:
            s.send(side, self.listen_rcv(s, seg))
            return
        if tp.state == TCP_CLOSE:
            reset = tcp_out.tcp_send_reset_for(seg)
            out = [reset] if reset else []
        elif tp.state == TCP_TIME_WAIT:
            tp, out = tcp_in.tcp_timewait_state_process(tp, seg)
        else:
            tp, out = tcp_in.tcp_rcv_state_process(tp, seg, mss)
        s.set_sock(side, tp)
        s.send(side, out)

    def listen_rcv(self, s: TcpState, seg: Segment, port: int = CLIENT_PORT) -> list[Segment]:
        """The listener: a SYN makes a request sock (tcp_conn_request, which drops it when
        either queue is full: SYN cookies are off); the request sock's segments go through
        tcp_check_req, whose handshake ACK creates the connection in the accept queue."""
        c = self.config
        req = s.req(port)
        if req is None:
            if seg.flags & TCPHDR_RST:
                return []
            if seg.flags & TCPHDR_ACK:
                reset = tcp_out.tcp_send_reset_for(seg)
                return [reset] if reset else []
            if not seg.flags & TCPHDR_SYN or seg.flags & TCPHDR_FIN or port == CLIENT_PORT and s.connected():
                return []
            if tcp_in.inet_csk_reqsk_queue_is_full(
                len(s.syn_queue), s.max_ack_backlog
            ) or tcp_in.sk_acceptq_is_full(len(s.accept_queue), s.max_ack_backlog):
                return []  # LINUX_MIB_LISTENOVERFLOWS / LISTENDROPS
            req, synack = tcp_in.tcp_conn_request(seg, c.server_isn, c.rcvbuf - c.rcvbuf % c.mss)
            s.set_req(port, req)
            return [synack]
        full = tcp_in.sk_acceptq_is_full(len(s.accept_queue), s.max_ack_backlog)
        checked = tcp_in.tcp_check_req(req, seg, c.rcvbuf, full)
        s.set_req(port, checked.req)
        out = list(checked.out)
        if checked.child is not None:
            s.accept_queue += (port,)  # inet_csk_reqsk_queue_add
            if port == CLIENT_PORT:
                child, more = tcp_in.tcp_rcv_state_process(checked.child, seg, c.mss)
                s.set_sock(SERVER, child)
                out += more
        return out

    # Other peers flooding the listener: each makes one handshake, its segments straight to
    # the listener, its SYN-ACKs seen by it alone.

    @action(domain=_flood_syn_domain)
    def flood_syn(self, s: TcpState) -> int:
        """Another peer's SYN arrives at the listener."""
        port = self.config.syn_flood - s.budget.floods + 1
        s.budget = s.budget.spend("floods")
        self.listen_rcv(s, Segment(u32(port << 24), 0, TCPHDR_SYN, self.config.rcvbuf), port)
        return port

    @action("port", domain=_flood_ack_domain)
    def flood_ack(self, s: TcpState, port: int) -> None:
        """The peer answers its SYN-ACK with the handshake's ACK."""
        req = s.req(port)
        assert req is not None
        ack = Segment(u32(req.rcv_isn + 1), u32(req.snt_isn + 1), TCPHDR_ACK, self.config.rcvbuf)
        self.listen_rcv(s, ack, port)

    # Timers.

    @action("side", domain=_delack_domain)
    def delack(self, s: TcpState, side: int) -> None:
        """The delayed-ACK timer (40-200 ms): the ACK that waited goes out."""
        tp, out = tcp_out.tcp_delack_timer(s.socks[side], self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)

    @action("side", domain=_rto_domain)
    def rto(self, s: TcpState, side: int) -> None:
        """The retransmission timer: the oldest unacknowledged segment again, or after
        ``retries`` expiries without progress, ETIMEDOUT (tcp_write_err)."""
        tp = s.socks[side]
        if tp.retransmits >= self.config.retries:
            s.set_sock(side, tcp_in.tcp_done(tp._replace(err=ETIMEDOUT)))
            return
        tp, out = tcp_out.tcp_retransmit_skb(tp, self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)

    @action("side", domain=_probe_domain)
    def probe(self, s: TcpState, side: int) -> None:
        """The zero-window probe timer (tcp_write_wakeup)."""
        tp, out = tcp_out.tcp_write_wakeup(s.socks[side], self.config.mss)
        s.set_sock(side, tp)
        s.send(side, out)

    @action("port", domain=_synack_timer_domain)
    def synack_timer(self, s: TcpState, port: int) -> None:
        """reqsk_timer_handler: the SYN-ACK again, or the request dropped after synack_retries."""
        req = s.req(port)
        assert req is not None
        if req.retransmits >= self.config.synack_retries:
            s.set_req(port, None)
            return
        s.set_req(port, req._replace(retransmits=req.retransmits + 1))
        if port == CLIENT_PORT:
            s.send(SERVER, [tcp_in.synack(req)])

    @action("side", domain=_time_wait_domain)
    def time_wait_expire(self, s: TcpState, side: int) -> None:
        """TIME_WAIT's 2MSL are over: the connection is gone (inet_twsk_kill)."""
        s.set_sock(side, s.socks[side]._replace(state=TCP_CLOSE))


def _trace_diagram(model: TcpModel, steps: Sequence[Step]) -> list[str]:
    """The trace as segments between the two sides: each step on a line, a segment as
    seq / ack / flags / window / len with an arrow for its direction, each side's state
    after the step, and the segments a delivery was answered with."""
    state = model.init_state()
    width = 54
    lines = [f"     {'client':<16}{'':<{width}}server", "     " + "=" * (16 + width + 16)]
    for n, step in enumerate(steps, 1):
        before = state
        state, _ = model.step(state, model.action_by_name[step.action], step.args)
        event = _event(model, before, step)
        sent = [(side, seg) for side in (CLIENT, SERVER) for seg in _new_segments(before, state, step, side)]
        states = f"{_state_name(state.socks[CLIENT]):<16}", f"{_state_name(state.socks[SERVER])}"
        lines.append(f"{n:>3}  {states[0]}{event:<{width}}{states[1]}")
        lines += [f"     {'':<16}{_arrow(side, seg):<{width}}" for side, seg in sent]
        if (before.syn_queue, before.accept_queue) != (state.syn_queue, state.accept_queue):
            requests = [_peer(port) for port, _ in state.syn_queue]
            accept = [_peer(port) for port in state.accept_queue]
            lines.append(
                f"     {'':<16}listener: requests {requests}, accept queue {accept}".replace("'", "")
            )
    return lines


def _peer(port: int) -> str:
    return "client" if port == CLIENT_PORT else f"peer {port}"


def _state_name(tp: TcpSock) -> str:
    return STATE_NAMES[tp.state] + (f" err {tp.err}" if tp.err else "")


def _arrow(side: int, seg: Segment) -> str:
    return f"--{seg}-->" if side == CLIENT else f"<--{seg}--"


def _event(model: TcpModel, s: TcpState, step: Step) -> str:
    if step.action in ("deliver", "drop", "duplicate"):
        direction, index = step.args
        seg = s.net[direction][index]
        verb = {"deliver": "", "drop": "lost: ", "duplicate": "twice: "}[step.action]
        return verb + _arrow(1 - direction, seg)
    if step.action == "inject":
        side, kind = step.args
        return f"forged {kind} to {SIDES[side]}"
    if step.action == "flood_syn":
        return f"peer {model.config.syn_flood - s.budget.floods + 1}: [SYN] to the listener"
    if step.action == "flood_ack":
        return f"peer {step.args[0]}: [ACK] to the listener"
    if step.action == "synack_timer":
        return f"server: synack_timer({_peer(step.args[0])})"
    who = (
        SIDES[step.args[0]]
        if step.args and isinstance(step.args[0], int)
        else ("client" if step.action == "connect" else "server")
    )
    return f"{who}: {step.action}()"


def _new_segments(before: TcpState, after: TcpState, step: Step, side: int) -> list[Segment]:
    """The segments side put on the wire in this step (a duplicate is the network's)."""
    if step.action == "duplicate":
        return []
    toward = 1 - side
    return list((Counter(after.net[toward]) - Counter(before.net[toward])).elements())


def stream(n: int) -> tuple[int, ...]:
    """The first n bytes any user writes."""
    return tuple(stream_byte(k) for k in range(n))
