"""TCP's sequence arithmetic (model/tcp/seq.py) and its z3 proofs (invariants/tcp_proofs.py):
the helpers on plain ints at the wrap and at the window's edges, with the kernel's semantics;
each proof proved with its cross-check agreeing; each prove mutant refuted by a z3
counterexample that plain Python confirms; and the bounds the proofs state are tight."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import z3

import invariants
from checkers.mutants import REGISTRY, Mutant, tcp_prove
from checkers.prove import prove
from invariants import tcp_proofs
from model.tcp import seq
from model.tcp.seq import (
    after,
    before,
    between,
    rfc9293_acceptable,
    tcp_may_update_window,
    tcp_receive_window,
)

CLAIMS: dict[str, Callable[..., Any]] = {
    "tcp.seq_order": tcp_proofs.seq_order,
    "tcp.sequence_matches_rfc9293": tcp_proofs.sequence_matches_rfc9293,
    "tcp.window_update_never_older": tcp_proofs.window_update_never_older,
}
TOP = 0xFFFF_FFFF


def tcp_sequence(rcv_wup: int, rcv_nxt: int, rcv_wnd: int, seq_: int, seg_len: int) -> bool:
    return bool(seq.tcp_sequence(rcv_wup, rcv_nxt, rcv_wnd, seq_, (seq_ + seg_len) & TOP))


# The helpers on ints.


def test_before_and_after_across_the_wrap() -> None:
    assert before(TOP, 0) and after(0, TOP)
    assert not before(0, TOP) and not after(TOP, 0)
    assert before(1, 2) and not before(2, 1) and not before(5, 5) and not after(5, 5)
    assert before(0xFFFF_FFF0, 0x10) and after(0x10, 0xFFFF_FFF0)
    # 2^31 - 1 apart: still ordered; 2^31 apart: each is before the other
    assert before(0, (1 << 31) - 1) and not before((1 << 31) - 1, 0)
    assert before(0, 1 << 31) and before(1 << 31, 0)
    assert seq.s32(TOP) == -1 and seq.s32(1 << 31) == -(1 << 31) and seq.s32((1 << 31) - 1) == (1 << 31) - 1
    assert seq.u32(-1) == TOP and seq.u32(1 << 32) == 0


def test_between_is_inclusive_and_wraps() -> None:
    assert between(5, 5, 10) and between(10, 5, 10) and not between(11, 5, 10) and not between(4, 5, 10)
    assert between(0, TOP - 1, 3) and between(TOP, TOP - 1, 3) and not between(4, TOP - 1, 3)


def test_tcp_receive_window_clamps_at_0() -> None:
    assert tcp_receive_window(1000, 500, 1200) == 300
    assert tcp_receive_window(1000, 500, 1500) == 0
    assert tcp_receive_window(1000, 500, 1600) == 0  # the peer overran the window: 0, not 2^32 - 100
    assert tcp_receive_window(TOP - 99, 500, 100) == 300  # across the wrap


def test_tcp_sequence_at_the_edges() -> None:
    wup, nxt, wnd = TOP - 9, 10, 100  # 20 bytes received since the window update, across the wrap
    right = nxt + tcp_receive_window(wup, wnd, nxt)  # 90: the window is 80 bytes now
    assert right == 90
    assert tcp_sequence(wup, nxt, wnd, nxt, 10)  # in order
    assert tcp_sequence(wup, nxt, wnd, right, 0)  # empty at the right edge: accepted
    assert tcp_sequence(wup, nxt, wnd, right, 10)  # data starting at the right edge too
    assert not tcp_sequence(wup, nxt, wnd, right + 1, 0)
    assert tcp_sequence(wup, nxt, wnd, wup - 5, 5)  # ends exactly at rcv_wup
    assert not tcp_sequence(wup, nxt, wnd, (wup - 6) & TOP, 5)  # ends just before it
    assert tcp_sequence(wup, nxt, wnd, (wup - 50) & TOP, 500)  # spans the window
    # a closed window still takes a pure ACK at rcv_nxt, and a segment ending there
    assert tcp_receive_window(100, 0, 100) == 0
    assert tcp_sequence(100, 100, 0, 100, 0) and tcp_sequence(100, 100, 0, 100, 1000)
    assert tcp_sequence(100, 100, 0, 50, 50) and not tcp_sequence(100, 100, 0, 101, 0)


def test_rfc9293_acceptable_four_cases() -> None:
    assert rfc9293_acceptable(TOP, 0, TOP, 0) and not rfc9293_acceptable(TOP, 0, 0, 0)
    assert rfc9293_acceptable(TOP, 10, 8, 0) and not rfc9293_acceptable(TOP, 10, 9, 0)
    assert not rfc9293_acceptable(TOP, 0, TOP, 1)
    assert rfc9293_acceptable(TOP, 10, TOP - 5, 6)  # its last byte is rcv_nxt
    assert not rfc9293_acceptable(TOP, 10, TOP - 5, 5)  # it ends at rcv_nxt: all received already
    assert rfc9293_acceptable(TOP, 10, TOP - 5, 15)  # its last byte is the window's last, 8
    assert not rfc9293_acceptable(TOP, 10, TOP - 5, 16)  # spans it: neither end inside


def test_tcp_may_update_window() -> None:
    una, wl1, wnd = TOP, TOP - 1, 1000
    assert tcp_may_update_window(una, wl1, wnd, 0, wl1, 10)  # acks new data across the wrap
    assert tcp_may_update_window(una, wl1, wnd, una, TOP, 10)  # a later sequence number
    assert tcp_may_update_window(una, wl1, wnd, una, wl1, 1001)  # the same one, a larger window
    assert not tcp_may_update_window(una, wl1, wnd, una, wl1, 1000)
    assert not tcp_may_update_window(una, wl1, wnd, una, wl1 - 1, 5000)  # an older one
    assert tcp_may_update_window(una, wl1, wnd, 0, wl1 - 1, 5)  # a retransmission with a newer ack


def test_the_helpers_take_z3_bit_vectors() -> None:
    a, b = z3.BitVecs("a b", 32)
    s = z3.Solver()
    s.add(seq.before(a, b), a == TOP)
    assert s.check() == z3.sat and s.model()[b].as_long() < 1 << 31


# The proofs.


def test_the_proofs_are_registered() -> None:
    assert sorted(n for n, p in invariants.PROOFS.items() if p.subsystem == "tcp") == sorted(CLAIMS)


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_every_tcp_proof_is_proved(name: str) -> None:
    r = prove(invariants.PROOFS[name], samples=300, seed=1)
    assert r.status == "pass", (r.strength, r.error, r.refutation)
    assert r.stats["z3_result"] == "unsat" and r.stats["crosscheck_mismatches"] == 0
    assert r.strength == f"proved for all inputs: {invariants.PROOFS[name].bounds}"


def test_every_proof_has_a_prove_mutant() -> None:
    assert {m.breaks for m in tcp_prove.PROOF_MUTANTS} == set(CLAIMS)
    for m in tcp_prove.PROOF_MUTANTS:
        assert m.name.startswith("tcp.prove_") and m.model == "tcp" and m.engine == "prove"
        assert m.description and m.description != m.name and REGISTRY[m.name] is m


def _holds(claim: Callable[..., Any], inputs: dict[str, int]) -> tuple[Any, Any]:
    assume, holds, _ = claim(**inputs)
    return assume, holds


@pytest.mark.parametrize("m", tcp_prove.PROOF_MUTANTS, ids=lambda m: m.name)
def test_every_prove_mutant_is_refuted_by_a_real_counterexample(m: Mutant) -> None:
    claim = CLAIMS[m.breaks]
    names = [p.name for p in inspect.signature(claim).parameters.values()]
    with m.applied():
        r = prove(invariants.PROOFS[m.breaks], samples=50, seed=0, mutant=m.name)
        inputs = {k: r.stats["z3_model"][k] for k in names}
        # z3's counterexample, run through the mutated Python code on plain ints, violates the claim.
        assume, holds = _holds(claim, inputs)
    assert r.status == "fail" and r.stats["z3_result"] == "sat", (r.strength, r.error)
    assert assume is True and holds is False, inputs
    # ... and the same input satisfies it without the mutant
    assert _holds(claim, inputs) == (True, True)


def test_the_order_fails_at_a_distance_of_2_31() -> None:
    assert _holds(tcp_proofs.seq_order, {"a": TOP, "x": 0, "y": (1 << 31) - 1}) == (True, True)
    # 2^31 apart: before() holds both ways, so it is no order there (outside the bounds)
    assume, holds = _holds(tcp_proofs.seq_order, {"a": TOP, "x": 0, "y": 1 << 31})
    assert assume is False and holds is False


def test_the_segment_bound_is_tight(monkeypatch: pytest.MonkeyPatch) -> None:
    # A segment of 2^30 + 1 bytes at a closed window's right edge, 2^30 - 1 bytes after rcv_wup:
    # end_seq - rcv_wup is 2^31, which before() reads as negative, so the kernel drops it.
    inputs = {"rcv_wup": 7, "u": (1 << 30) - 1, "rcv_wnd": 0, "seq_off": 0, "seg_len": (1 << 30) + 1}
    assume, holds = _holds(tcp_proofs.sequence_matches_rfc9293, inputs)
    assert assume is False and holds is False
    monkeypatch.setattr(tcp_proofs, "WINDOW_BOUND", (1 << 30) + 2)
    r = prove(invariants.PROOFS["tcp.sequence_matches_rfc9293"], samples=10)
    assert r.status == "fail" and r.refutation is not None


def test_the_extra_segments_are_the_kernels_own() -> None:
    """The three kinds the kernel accepts beyond RFC 9293, each at the kernel's numbers."""

    def terms(**inputs: int) -> dict[str, Any]:
        assume, holds, named = tcp_proofs.sequence_matches_rfc9293(**inputs)
        assert assume is True and holds is True
        return named

    # a pure ACK at rcv_nxt while the window is closed: the right edge, which the RFC takes too
    t = terms(rcv_wup=1000, u=0, rcv_wnd=0, seq_off=0, seg_len=0)
    assert t["tcp_sequence"] and t["rfc9293_acceptable"] and not t["right edge"]
    # a zero-window probe (one byte at rcv_nxt, window 0): the kernel's, not the RFC's
    t = terms(rcv_wup=1000, u=0, rcv_wnd=0, seq_off=0, seg_len=1)
    assert t["tcp_sequence"] and not t["rfc9293_acceptable"] and t["right edge"]
    # a retransmission of the last 100 bytes received since the window update
    t = terms(rcv_wup=1000, u=300, rcv_wnd=65535, seq_off=TOP - 99, seg_len=100)
    assert t["tcp_sequence"] and not t["rfc9293_acceptable"] and t["left edge"]
    # a 64 KB segment from before rcv_nxt to past a 1000-byte window
    t = terms(rcv_wup=1000, u=0, rcv_wnd=1000, seq_off=TOP, seg_len=65536)
    assert t["tcp_sequence"] and not t["rfc9293_acceptable"] and t["spanning"]
    # in the window: both
    t = terms(rcv_wup=TOP, u=0, rcv_wnd=1000, seq_off=999, seg_len=1448)
    assert t["tcp_sequence"] and t["rfc9293_acceptable"]
