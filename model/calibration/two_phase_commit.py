"""Two-phase commit, as in Lamport's TwoPhase.tla (tlaplus/Examples) and Stateright's
examples/2pc.rs: one transaction manager, ``rms`` resource managers, and a message set
that only grows.

It is not a kernel model. Its reachable state counts are published (3 RMs: 288; 5: 8,832;
7: 296,448; 8: 1,745,408), so the explorer and the benchmarks calibrate against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from model.contract import Args, Model, action

# rmState[r] and tmState values, spelled as in TwoPhase.tla.
WORKING, PREPARED, COMMITTED, ABORTED = "working", "prepared", "committed", "aborted"
INIT = "init"

# Messages, as strings: [type |-> "Prepared", rm |-> r] is "Prepared(r)".
COMMIT = "Commit"
ABORT = "Abort"


def prepared_msg(rm: int) -> str:
    return f"Prepared({rm})"


@dataclass(frozen=True)
class TwoPhaseConfig:
    rms: int = 3  # resource managers, numbered 0..rms-1


_new = object.__new__


@dataclass(slots=True)
class TwoPhaseState:
    rm_state: list[str]  # per RM: working, prepared, committed or aborted
    tm_state: str  # init, committed or aborted
    tm_prepared: frozenset[int]  # RMs the TM has received Prepared from
    msgs: frozenset[str]  # every message ever sent; none is consumed

    def fingerprint(self) -> tuple[Any, ...]:
        return (tuple(self.rm_state), self.tm_state, self.tm_prepared, self.msgs)

    def clone(self) -> TwoPhaseState:
        # The sets are immutable and replaced on change, so only the list is copied. Filling
        # the slots directly skips __init__: clone runs once per explored transition.
        new = _new(TwoPhaseState)
        new.rm_state = self.rm_state.copy()
        new.tm_state = self.tm_state
        new.tm_prepared = self.tm_prepared
        new.msgs = self.msgs
        return new


# Argument domains. Each returns the argument tuples for which the action is enabled.


def _prepared_rms(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
    if s.tm_state != INIT:
        return ()
    msgs = s.msgs
    return [a for a, msg in zip(m.rm_args, m.prepared_msgs, strict=True) if msg in msgs]


def _tm_can_commit(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
    return m.no_args if s.tm_state == INIT and s.tm_prepared == m.all_rms else ()


def _tm_init(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
    return m.no_args if s.tm_state == INIT else ()


def _working_rms(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
    rm_state = s.rm_state
    return [a for a in m.rm_args if rm_state[a[0]] == WORKING]


def _all_rms_if(msg: str) -> Callable[[TwoPhaseModel, TwoPhaseState], Iterable[Args]]:
    def domain(m: TwoPhaseModel, s: TwoPhaseState) -> Iterable[Args]:
        return m.rm_args if msg in s.msgs else ()

    return domain


class TwoPhaseModel(Model[TwoPhaseState, TwoPhaseConfig]):
    name = "two_phase_commit"
    Config = TwoPhaseConfig
    profiles = {"small": TwoPhaseConfig(rms=3), "large": TwoPhaseConfig(rms=8)}

    def __init__(self, config: TwoPhaseConfig | None = None) -> None:
        super().__init__(config)
        n = self.config.rms
        self.rm_args: tuple[Args, ...] = tuple((rm,) for rm in range(n))
        self.no_args: tuple[Args, ...] = ((),)
        self.all_rms = frozenset(range(n))
        self.prepared_msgs = tuple(prepared_msg(rm) for rm in range(n))
        # One-element sets to union with, built once rather than on every transition.
        self.just_rm = tuple(frozenset({rm}) for rm in range(n))
        self.just_prepared = tuple(frozenset({msg}) for msg in self.prepared_msgs)

    def init_state(self) -> TwoPhaseState:
        """TPInit: every RM working, the TM in init, nothing prepared, no message sent."""
        return TwoPhaseState([WORKING] * self.config.rms, INIT, frozenset(), frozenset())

    @action("rm", domain=_prepared_rms)
    def tm_rcv_prepared(self, s: TwoPhaseState, rm: int) -> None:
        """TMRcvPrepared(r): the TM records a Prepared message from r."""
        s.tm_prepared = s.tm_prepared | self.just_rm[rm]

    @action(domain=_tm_can_commit)
    def tm_commit(self, s: TwoPhaseState) -> None:
        """TMCommit: every RM has prepared, so the TM commits and tells them."""
        s.tm_state = COMMITTED
        s.msgs = s.msgs | {COMMIT}

    @action(domain=_tm_init)
    def tm_abort(self, s: TwoPhaseState) -> None:
        """TMAbort: the TM may abort spontaneously while still in init."""
        s.tm_state = ABORTED
        s.msgs = s.msgs | {ABORT}

    @action("rm", domain=_working_rms)
    def rm_prepare(self, s: TwoPhaseState, rm: int) -> None:
        """RMPrepare(r): a working RM prepares and sends Prepared."""
        s.rm_state[rm] = PREPARED
        s.msgs = s.msgs | self.just_prepared[rm]

    @action("rm", domain=_working_rms)
    def rm_choose_to_abort(self, s: TwoPhaseState, rm: int) -> None:
        """RMChooseToAbort(r): a working RM may abort on its own."""
        s.rm_state[rm] = ABORTED

    @action("rm", domain=_all_rms_if(COMMIT))
    def rm_rcv_commit_msg(self, s: TwoPhaseState, rm: int) -> None:
        """RMRcvCommitMsg(r): an RM receives the Commit message (enabled again once received)."""
        s.rm_state[rm] = COMMITTED

    @action("rm", domain=_all_rms_if(ABORT))
    def rm_rcv_abort_msg(self, s: TwoPhaseState, rm: int) -> None:
        """RMRcvAbortMsg(r): an RM receives the Abort message (enabled again once received)."""
        s.rm_state[rm] = ABORTED
