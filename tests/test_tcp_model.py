"""The TCP model against the kernel's behaviour: the handshake across the 2^32 wrap, data in
and out of order, windows, the zero-window probe, closes (one side, both at once), resets
and challenge ACKs, the listener, and segments no correct peer sends."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import invariants
from checkers.explore import explore
from model.contract import Step
from model.tcp import input as tcp_in
from model.tcp import output as tcp_out
from model.tcp.model import CLIENT, SERVER, TcpConfig, TcpModel, TcpState, stream
from model.tcp.seq import u32
from model.tcp.sock import (
    ICSK_ACK_TIMER,
    TCP_CLOSE,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
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
)

TO_CLIENT, TO_SERVER = CLIENT, SERVER  # a direction is the side a segment goes to


def run(model: TcpModel, *steps: tuple[str, tuple]) -> TcpState:  # type: ignore[type-arg]
    state = model.init_state()
    for name, args in steps:
        state, _ = model.step(state, model.action_by_name[name], args)
    return state


def deliver(model: TcpModel, state: TcpState, direction: int, index: int = 0) -> TcpState:
    return model.step(state, model.action_by_name["deliver"], (direction, index))[0]


def established(config: TcpConfig | None = None) -> tuple[TcpModel, TcpState]:
    """connect, SYN, SYN-ACK, ACK: both sides ESTABLISHED, the server's user has it."""
    model = TcpModel(config or TcpConfig(losses=0, duplicates=0))
    state = run(model, ("connect", ()))
    state = deliver(model, state, TO_SERVER)
    state = deliver(model, state, TO_CLIENT)
    state = deliver(model, state, TO_SERVER)
    state, _ = model.step(state, model.action_by_name["accept"], ())
    return model, state


def test_the_handshake_crosses_the_wrap() -> None:
    model = TcpModel(TcpConfig(losses=0, duplicates=0))
    state = run(model, ("connect", ()))
    (syn,) = state.net[TO_SERVER]
    assert (syn.flags, syn.seq, syn.window) == (TCPHDR_SYN, 0xFFFFFFFE, 2)
    assert state.socks[CLIENT].state == TCP_SYN_SENT
    state = deliver(model, state, TO_SERVER)
    (synack,) = state.net[TO_CLIENT]
    assert (synack.flags, synack.seq, synack.ack_seq) == (TCPHDR_SYN | TCPHDR_ACK, 0xFFFFFFFF, 0xFFFFFFFF)
    assert [port for port, _ in state.syn_queue] == [0]  # a request sock only
    assert state.socks[SERVER].state == TCP_CLOSE
    state = deliver(model, state, TO_CLIENT)
    client = state.socks[CLIENT]
    assert (client.state, client.snd_una, client.snd_nxt, client.rcv_nxt) == (
        TCP_ESTABLISHED,
        0xFFFFFFFF,
        0xFFFFFFFF,
        0,
    )
    (ack,) = state.net[TO_SERVER]
    assert (ack.flags, ack.seq, ack.ack_seq) == (TCPHDR_ACK, 0xFFFFFFFF, 0)  # the SYN-ACK's seq wrapped
    state = deliver(model, state, TO_SERVER)
    server = state.socks[SERVER]
    assert (server.state, server.snd_una, server.rcv_nxt, server.iss, server.irs) == (
        TCP_ESTABLISHED, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFE,
    )  # fmt: skip
    assert state.accept_queue == (0,) and state.syn_queue == ()


def test_in_order_data_is_read_and_the_window_reopens() -> None:
    model, state = established()
    state = run_from(model, state, ("write", (CLIENT,)), ("write", (CLIENT,)))
    first, second = in_order(state, TO_SERVER)
    assert [(s.seq, s.data) for s in (first, second)] == [(0xFFFFFFFF, stream(1)), (0, (stream(2)[1],))]
    assert state.socks[CLIENT].snd_nxt == 1  # the window (2) is full: the third byte waits
    state = deliver(model, state, TO_SERVER, state.net[TO_SERVER].index(first))
    state = deliver(model, state, TO_SERVER, state.net[TO_SERVER].index(second))
    server = state.socks[SERVER]
    assert server.rcv_nxt == 1 and tcp_out.held(server) == 2
    # The ACKs advertise what is left of the buffer; the right edge never moves back.
    assert [s.window for s in state.net[TO_CLIENT]] == [1, 0]
    state, got = model.step(state, model.action_by_name["recv"], (SERVER,))
    assert got == stream(2)
    window_update = state.net[TO_CLIENT][-1]
    assert (window_update.ack_seq, window_update.window) == (1, 2)  # tcp_cleanup_rbuf: it doubled


def in_order(state: TcpState, direction: int) -> list[Segment]:
    """The data segments in flight, in sequence order (across the wrap: these start near 2^32)."""
    return sorted((s for s in state.net[direction] if s.data), key=lambda s: u32(s.seq + 2))


def run_from(model: TcpModel, state: TcpState, *steps: tuple[str, tuple]) -> TcpState:  # type: ignore[type-arg]
    for name, args in steps:
        state, _ = model.step(state, model.action_by_name[name], args)
    return state


def test_out_of_order_then_a_collapsed_retransmission() -> None:
    model, state = established()
    state = run_from(model, state, ("write", (CLIENT,)), ("write", (CLIENT,)))
    first, second = in_order(state, TO_SERVER)
    state = run_from(model, state, ("drop", (TO_SERVER, state.net[TO_SERVER].index(first))))
    state = deliver(model, state, TO_SERVER, state.net[TO_SERVER].index(second))
    server = state.socks[SERVER]
    assert [(s.seq, s.end_seq) for s in server.ofo_queue] == [(0, 1)] and server.rcv_nxt == 0xFFFFFFFF
    dupack = state.net[TO_CLIENT][-1]
    assert dupack.ack_seq == 0xFFFFFFFF  # asks for the hole
    while state.net[TO_CLIENT]:
        state = deliver(model, state, TO_CLIENT)
    while state.net[TO_SERVER]:
        state = deliver(model, state, TO_SERVER)
    state = run_from(model, state, ("rto", (CLIENT,)))
    (retrans,) = state.net[TO_SERVER]
    assert (retrans.seq, retrans.end_seq, retrans.data) == (0xFFFFFFFF, 1, stream(2))  # both bytes in one
    state = deliver(model, state, TO_SERVER)
    server = state.socks[SERVER]
    assert server.rcv_nxt == 1 and server.ofo_queue == ()  # the out-of-order copy was passed and dropped


def test_delayed_acks() -> None:
    tp = TcpSock(state=TCP_ESTABLISHED, snd_una=100, snd_nxt=100, write_seq=100, snd_wnd=4, rcv_nxt=10,
                 rcv_wup=10, rcv_wnd=4, copied_seq=10, rcvbuf=4, iss=99, irs=9)  # fmt: skip
    byte = Segment(10, 100, TCPHDR_ACK, 4, (1,))
    # The first data of a connection starts quick ACKs, for half the window in full
    # segments (4 // (2 * 2) = 1), at least two: so it is acknowledged at once.
    fresh, (ack,) = tcp_in.tcp_rcv_state_process(tp, byte, 2)
    assert ack.ack_seq == 11 and fresh.ack_quick == 0 and fresh.ack_pending == 0
    fresh, _ = tcp_in.tcp_rcv_state_process(tp._replace(rcv_wnd=2), byte, 2)
    assert fresh.ack_quick == 1
    # With no quick ACK left, the ACK waits for the timer: rcv_wup lags rcv_nxt meanwhile.
    later, out = tcp_in.tcp_rcv_state_process(tp._replace(ack_ato=True), byte, 2)
    assert out == [] and later.ack_pending & ICSK_ACK_TIMER and (later.rcv_wup, later.rcv_nxt) == (10, 11)
    _, (ack,) = tcp_out.tcp_delack_timer(later, 2)
    assert ack.ack_seq == 11
    # An old segment inside [rcv_wup, rcv_nxt) passes tcp_sequence and is dropped by
    # tcp_data_queue; the sender missed our ACK, so it goes at once, in quickack mode.
    old, (ack,) = tcp_in.tcp_rcv_state_process(later, Segment(9, 100, TCPHDR_ACK, 4, (0, 1)), 2)
    assert ack.ack_seq == 11 and old.rcv_nxt == 11
    # Data waiting to be sent carries the ACK: no bare ACK.
    queued = later._replace(write_seq=101, write_queue=(Skb(100, 101, TCPHDR_ACK, (5,)),))
    _, (seg,) = tcp_in.tcp_rcv_state_process(queued._replace(ack_pending=0), byte, 2)
    assert seg.data == (5,) and seg.ack_seq == 11
    # The peer's FIN in ESTABLISHED: CLOSE_WAIT, and its ACK waits to ride on our FIN.
    fin, out = tcp_in.tcp_rcv_state_process(tp, Segment(10, 100, TCPHDR_ACK | TCPHDR_FIN, 4), 2)
    assert out == [] and fin.ack_pingpong and fin.ack_pending & ICSK_ACK_TIMER
    _, (our_fin,) = tcp_out.tcp_shutdown(fin, 2)
    assert our_fin.flags & TCPHDR_FIN and our_fin.ack_seq == 11


def test_select_window_never_shrinks_the_offer() -> None:
    tp = TcpSock(state=TCP_ESTABLISHED, rcv_nxt=10, rcv_wup=10, rcv_wnd=2, copied_seq=9, rcvbuf=2,
                 receive_queue=(Skb(9, 10, TCPHDR_ACK, (5,)),))  # fmt: skip
    assert tcp_out.select_window_size(tp, 1) == 1  # one byte of two is held
    tp, window = tcp_out.tcp_select_window(tp, 1)
    assert window == 2 and (tp.rcv_wup, tp.rcv_wnd) == (10, 2)  # the offer stands
    tp = tp._replace(rcv_nxt=11)
    tp, window = tcp_out.tcp_select_window(tp, 1)
    assert window == 1 and u32(tp.rcv_wup + tp.rcv_wnd) == 12  # the same right edge


def test_zero_window_probe() -> None:
    tp = TcpSock(state=TCP_ESTABLISHED, snd_una=5, snd_nxt=5, write_seq=6, snd_wnd=0, rcv_nxt=7, rcv_wup=7,
                 rcv_wnd=2, rcvbuf=2, write_queue=(Skb(5, 6, TCPHDR_ACK, (1,)),))  # fmt: skip
    tp2, out = tcp_out.tcp_write_xmit(tp, 1)
    assert out == [] and tp2 == tp
    tp2, (probe,) = tcp_out.tcp_write_wakeup(tp, 1)
    assert (probe.seq, probe.data, probe.flags) == (4, (), TCPHDR_ACK)  # tcp_xmit_probe_skb: snd_una - 1
    # The window opens to one byte, the skb holds two and a FIN: the probe splits one off.
    tp = tp._replace(snd_wnd=1, write_seq=8, write_queue=(Skb(5, 8, TCPHDR_ACK | TCPHDR_FIN, (1, 2)),))
    tp2, (seg,) = tcp_out.tcp_write_wakeup(tp, 2)
    assert (seg.seq, seg.data, seg.flags & TCPHDR_FIN) == (5, (1,), 0)
    assert tp2.snd_nxt == 6 and tp2.write_queue == (Skb(6, 8, TCPHDR_ACK | TCPHDR_FIN, (2,)),)


def test_simultaneous_close_goes_through_closing() -> None:
    model, state = established(TcpConfig(client_writes=(1,), losses=0, duplicates=0))
    state = run_from(model, state, ("write", (CLIENT,)))
    state = deliver(model, state, TO_SERVER)
    state = deliver(model, state, TO_CLIENT)
    state = run_from(model, state, ("shutdown", (CLIENT,)), ("shutdown", (SERVER,)))
    assert [tp.state for tp in state.socks] == [TCP_FIN_WAIT1, TCP_FIN_WAIT1]
    state = deliver(model, state, TO_SERVER)  # the client's FIN
    state = deliver(
        model, state, TO_CLIENT, [s.flags & TCPHDR_FIN > 0 for s in state.net[TO_CLIENT]].index(True)
    )
    assert [tp.state for tp in state.socks] == [TCP_CLOSING, TCP_CLOSING]
    while not state.quiet():
        state = deliver(model, state, TO_SERVER if state.net[TO_SERVER] else TO_CLIENT)
    assert [tp.state for tp in state.socks] == [TCP_TIME_WAIT, TCP_TIME_WAIT]


def test_simultaneous_open_completes_through_challenge_acks() -> None:
    """Crossed SYNs: each side goes to SYN_RECV with a SYN-ACK; each SYN-ACK then meets a
    socket past SYN_SENT, whose tcp_validate_incoming answers a SYN with a challenge ACK
    (4.x-5.x), and that ACK completes the other side's handshake."""
    a, (syn_a,) = tcp_out.tcp_connect(TcpSock(), 100, 2, 2)
    b, (syn_b,) = tcp_out.tcp_connect(TcpSock(), 0xFFFFFFFF, 2, 2)
    a, (synack_a,) = tcp_in.tcp_rcv_state_process(a, syn_b, 2)
    b, (synack_b,) = tcp_in.tcp_rcv_state_process(b, syn_a, 2)
    assert [a.state, b.state] == [TCP_SYN_RECV, TCP_SYN_RECV]
    assert synack_b.flags == TCPHDR_SYN | TCPHDR_ACK and synack_b.ack_seq == 101
    a, (challenge_a,) = tcp_in.tcp_rcv_state_process(a, synack_b, 2)
    b, (challenge_b,) = tcp_in.tcp_rcv_state_process(b, synack_a, 2)
    assert (challenge_a.flags, challenge_a.seq, challenge_a.ack_seq) == (TCPHDR_ACK, 101, 0)
    a, _ = tcp_in.tcp_rcv_state_process(a, challenge_b, 2)
    b, _ = tcp_in.tcp_rcv_state_process(b, challenge_a, 2)
    assert [a.state, b.state] == [TCP_ESTABLISHED, TCP_ESTABLISHED]
    assert (a.snd_una, a.rcv_nxt, b.snd_una, b.rcv_nxt) == (101, 0, 0, 101)
    assert a.rtx_queue == b.rtx_queue == ()


def test_resets_and_challenge_acks() -> None:
    tp = TcpSock(state=TCP_ESTABLISHED, snd_una=100, snd_nxt=100, write_seq=100, snd_wnd=4, rcv_nxt=50,
                 rcv_wup=50, rcv_wnd=4, copied_seq=50, rcvbuf=4, iss=99, irs=49)  # fmt: skip
    reset, out = tcp_in.tcp_rcv_state_process(tp, Segment(50, 0, TCPHDR_RST, 0), 1)
    assert reset.state == TCP_CLOSE and reset.err == tcp_in.ECONNRESET and out == []
    same, (challenge,) = tcp_in.tcp_rcv_state_process(tp, Segment(52, 0, TCPHDR_RST, 0), 1)
    assert same.state == TCP_ESTABLISHED and (challenge.flags, challenge.ack_seq, challenge.seq) == (
        TCPHDR_ACK,
        50,
        100,
    )
    same, out = tcp_in.tcp_rcv_state_process(tp, Segment(80, 0, TCPHDR_RST, 0), 1)
    assert same == tp and out == []  # out of the window: dropped silently
    same, (challenge,) = tcp_in.tcp_rcv_state_process(tp, Segment(50, 100, TCPHDR_SYN | TCPHDR_ACK, 4), 1)
    assert same.state == TCP_ESTABLISHED and challenge.ack_seq == 50  # RFC 5961 4.2
    same, out = tcp_in.tcp_rcv_state_process(tp, Segment(50, 101, TCPHDR_ACK, 4, (7,)), 1)
    assert (
        same == tp and out == [] and same.receive_queue == ()
    )  # ACK beyond snd_nxt: discarded, data and all


def test_the_listener_and_ports_without_sockets() -> None:
    model = TcpModel(TcpConfig(losses=0, duplicates=0, injections=1))
    state = model.init_state()
    stray = Segment(5, 77, TCPHDR_ACK, 2)
    assert model.listen_rcv(state, stray) == [Segment(77, 0, TCPHDR_RST, 0)]  # no request: RST at ack_seq
    assert model.listen_rcv(state, Segment(5, 0, TCPHDR_SYN | TCPHDR_FIN, 2)) == []  # SYN with FIN: dropped
    assert state.syn_queue == ()
    assert tcp_out.tcp_send_reset_for(Segment(5, 0, TCPHDR_FIN, 0, (1, 2))) == Segment(
        0, 8, TCPHDR_RST | TCPHDR_ACK, 0
    )


def test_a_flooded_listener_drops_what_its_backlog_cannot_hold() -> None:
    model = TcpModel(TcpConfig(losses=0, duplicates=0, backlog=2, syn_flood=3))
    state = run(model, ("flood_syn", ()), ("flood_ack", (1,)), ("flood_syn", ()), ("flood_ack", (2,)))
    state = run_from(model, state, ("connect", ()))
    state = deliver(model, state, TO_SERVER)  # the client's SYN: a request sock beside the two connections
    state = run_from(model, state, ("flood_syn", ()), ("flood_ack", (3,)))
    assert state.accept_queue == (1, 2, 3)  # sk_acceptq_is_full is "> backlog": one more than 2
    state = deliver(model, state, TO_CLIENT)  # SYN-ACK: the client is ESTABLISHED ...
    state = deliver(model, state, TO_SERVER)  # ... but its ACK overflows the accept queue: dropped
    assert [port for port, _ in state.syn_queue] == [0] and state.socks[SERVER].state == TCP_CLOSE
    state = run_from(model, state, ("accept", ()), ("synack_timer", (0,)))  # room, and the SYN-ACK again
    state = deliver(model, state, TO_CLIENT)
    (challenge,) = state.net[TO_SERVER]  # RFC 5961: a SYN in ESTABLISHED gets a challenge ACK
    state = deliver(model, state, TO_SERVER)  # which completes the handshake
    assert state.accept_queue == (2, 3, 0) and state.socks[SERVER].state == TCP_ESTABLISHED
    state = run_from(model, state, ("accept", ()), ("accept", ()), ("accept", ()))
    assert state.accepted and state.accept_queue == ()


def test_small_runs_end_with_everything_closed() -> None:
    # One byte, no loss: every interleaving ends in the final state (no deadlock), and every
    # invariant holds on the way.
    model = TcpModel(TcpConfig(client_writes=(1,), losses=0, duplicates=0))
    result = explore(model, invariants.for_model("tcp"), max_states=200_000)
    assert result.status == "pass" and result.strength.startswith("exhaustive: all")


segments = st.builds(
    Segment,
    seq=st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 2**32 - 1, 2**32 - 2]),
    ack_seq=st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 2**32 - 1]),
    flags=st.integers(0, 0x1F),
    window=st.integers(0, 65535),
    data=st.lists(st.integers(0, 255), max_size=3).map(tuple),
)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.lists(st.integers(0, 99), max_size=30),
    forged=st.lists(st.tuples(st.sampled_from([CLIENT, SERVER]), segments), max_size=4),
)
def test_any_segment_is_handled_without_breaking_an_invariant(
    prefix: list[int], forged: list[tuple[int, Segment]]
) -> None:
    """Segments with any header (SYN with FIN, RST with data, any numbers) arrive at either
    side in any reachable state: the model answers as the kernel does and never raises, and
    every invariant but the end-to-end content check still holds."""
    model = TcpModel(TcpConfig(losses=1, duplicates=1))
    state = model.init_state()
    for pick in prefix:
        enabled = list(model.enabled(state))
        if not enabled:
            break
        act, args = enabled[pick % len(enabled)]
        state, _ = model.step(state, act, args)
    honest_peer = {"tcp.stream_prefix"}  # forged bytes at rcv_nxt are taken as data: TCP cannot tell
    checks = [inv for inv in invariants.for_model("tcp") if inv.name not in honest_peer]
    for side, seg in forged:
        before = state
        state = before.clone()
        model.receive(state, side, seg)
        step = Step("inject", (side, "any"))
        for inv in checks:
            found = inv.check(before, step, state) if inv.transition else inv.check(state)
            assert not found, (inv.name, found)


@pytest.mark.parametrize(
    "bad", [dict(mss=0), dict(rcvbuf=1, mss=2), dict(client_writes=(0,)), dict(client_isn=2**32)]
)
def test_bad_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TcpConfig(**bad)  # type: ignore[arg-type]


