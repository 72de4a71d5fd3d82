/*
 * Two-phase commit: the Promela twin of model/calibration/two_phase_commit.py
 * (TwoPhase.tla). The number of RMs is a preprocessor constant, 1 to 10:
 *
 *     spin -a -DN=8 two_phase_commit.pml
 *
 * Built so that Spin's "states, stored" equals the explorer's state count: a single
 * process loops over one d_step per action, so every stored state is a state of the
 * model and nothing else (the counters below are functions of the arrays and add none).
 */

#ifndef N
#define N 3
#endif

/* rmState values */
#define WORKING   0
#define PREPARED  1
#define COMMITTED 2
#define ABORTED   3
/* tmState values */
#define TM_INIT      0
#define TM_COMMITTED 1
#define TM_ABORTED   2

byte rm_state[N];
byte tm_state;
bool tm_prepared[N];
bool msg_prepared[N];  /* msgs, as one flag per message */
bool msg_commit;
bool msg_abort;

/* Derived counts, so guards and the invariant need no loops. */
byte n_tm_prepared;
byte n_committed;
byte n_aborted;

/* rmState[r] := v, keeping the counts, then check TCConsistent. */
#define SET_RM(r, v) \
    if \
    :: rm_state[r] == COMMITTED -> n_committed-- \
    :: rm_state[r] == ABORTED -> n_aborted-- \
    :: else -> skip \
    fi; \
    rm_state[r] = v; \
    if \
    :: v == COMMITTED -> n_committed++ \
    :: v == ABORTED -> n_aborted++ \
    :: else -> skip \
    fi; \
    assert(n_committed == 0 || n_aborted == 0)

#define RM_ACTIONS(r) \
    /* TMRcvPrepared(r) */ \
    :: d_step { tm_state == TM_INIT && msg_prepared[r] -> \
                if :: !tm_prepared[r] -> tm_prepared[r] = 1; n_tm_prepared++ :: else -> skip fi } \
    /* RMPrepare(r) */ \
    :: d_step { rm_state[r] == WORKING -> SET_RM(r, PREPARED); msg_prepared[r] = 1 } \
    /* RMChooseToAbort(r) */ \
    :: d_step { rm_state[r] == WORKING -> SET_RM(r, ABORTED) } \
    /* RMRcvCommitMsg(r) */ \
    :: d_step { msg_commit -> SET_RM(r, COMMITTED) } \
    /* RMRcvAbortMsg(r) */ \
    :: d_step { msg_abort -> SET_RM(r, ABORTED) }

active proctype two_phase_commit()
{
    do
    /* TMCommit */
    :: d_step { tm_state == TM_INIT && n_tm_prepared == N -> tm_state = TM_COMMITTED; msg_commit = 1 }
    /* TMAbort */
    :: d_step { tm_state == TM_INIT -> tm_state = TM_ABORTED; msg_abort = 1 }
    RM_ACTIONS(0)
#if N > 1
    RM_ACTIONS(1)
#endif
#if N > 2
    RM_ACTIONS(2)
#endif
#if N > 3
    RM_ACTIONS(3)
#endif
#if N > 4
    RM_ACTIONS(4)
#endif
#if N > 5
    RM_ACTIONS(5)
#endif
#if N > 6
    RM_ACTIONS(6)
#endif
#if N > 7
    RM_ACTIONS(7)
#endif
#if N > 8
    RM_ACTIONS(8)
#endif
#if N > 9
    RM_ACTIONS(9)
#endif
    od
}
