/* Twin of model/sync/protocols/sleep-wake.litmus (-DMB=1) and sleep-wake+no-mb.litmus
 * (-DMB=0), under SC or, with -DTSO, TSO store buffers (tso.pml).
 * P0 sleeps until cond is set; P1 sets cond and wakes P0. A lost wakeup leaves P0
 * blocked in schedule(): pan reports an invalid end state. */
#define NT 2
#define L 2
#define COND 0
#define STATE 1  /* P0's task state: 0 TASK_RUNNING, 1 TASK_UNINTERRUPTIBLE */

#include "tso.pml"

byte r0;

/* set_current_state() is the store then smp_mb(); __set_current_state() the store. */
inline set_state(v) {
	store(0, STATE, v);
	if
	:: MB -> mb(0)
	:: else
	fi
}

proctype P0() {
	byte k;
	int c;
	set_state(1);
	do
	:: load(0, COND, c);
	   if
	   :: c != 0 -> break
	   :: else
	   fi;
	   /* schedule(): the runqueue lock drains the buffer; sleep until woken */
	   mb(0);
	   mem[STATE] == 0;
	   set_state(1)
	od;
	store(0, STATE, 0);
	r0 = 1
}

proctype P1() {
	store(1, COND, 1);
	/* wake_up_process(): smp_mb(), then TASK_RUNNING if P0 is not */
	atomic {
		mb(1) ->
		if
		:: mem[STATE] != 0 -> mem[STATE] = 0
		:: else
		fi
	}
}

init {
	byte k;
	atomic {
		run P0();
		run P1();
		start_flushers()
	}
}
