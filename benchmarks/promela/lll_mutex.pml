/* Twin of model/sync/protocols/lll-mutex.litmus with NT threads (-DNT=2 or 3), under
 * SC or, with -DTSO, TSO store buffers (tso.pml). f: 0 unlocked, 1 locked, 2 locked
 * with waiters. BUG_ON(owner) is an assertion; the final clause (cnt=NT, f=0) is
 * asserted once every thread is done and every buffer drained. A thread left in
 * futex_wait() is an invalid end state. -DWAKE_ON=1 is lll-mutex+wake-on-1.litmus: unlock
 * wakes only when f was 1, and a waiter can sleep forever. */
#ifndef NT
#define NT 2
#endif
#ifndef WAKE_ON
#define WAKE_ON 2
#endif
#define L 3
#define F 0
#define CNT 1
#define OWNER 2

#include "tso.pml"

bool waiting[NT];
byte done;

/* Atomic read-modify-writes drain the store buffer and act on memory. */
inline cmpxchg(t, a, old, new, r) {
	atomic { mb(t) -> r = mem[a]; if :: r == old -> mem[a] = new :: else fi }
}

inline xchg(t, a, v, r) {
	atomic { mb(t) -> r = mem[a]; mem[a] = v }
}

/* futex_wait(f, 2): under the hash-bucket lock, queue unless f changed; sleep until woken. */
inline futex_wait(t) {
	atomic { mb(t) -> if :: mem[F] == 2 -> waiting[t] = 1 :: else fi };
	!waiting[t]
}

/* futex_wake(f, 1): wake one waiter (the lowest-numbered: the kernel takes the oldest). */
inline futex_wake(t) {
	atomic {
		mb(t) ->
		k = 0;
		do
		:: k < NT && waiting[k] -> waiting[k] = 0; break
		:: k < NT && !waiting[k] -> k++
		:: k == NT -> break
		od;
		k = 0
	}
}

proctype T(byte t) {
	byte k;
	int c;
	int r;
	cmpxchg(t, F, 0, 1, c);
	if
	:: c != 0 ->
	   if
	   :: c != 2 -> xchg(t, F, 2, c)
	   :: else
	   fi;
	   do
	   :: c != 0 -> futex_wait(t); xchg(t, F, 2, c)
	   :: else -> break
	   od
	:: else
	fi;
	load(t, OWNER, r);
	assert(r == 0);  /* BUG_ON(READ_ONCE(*owner)) */
	store(t, OWNER, 1);
	load(t, CNT, r);
	store(t, CNT, r + 1);
	r = 0;
	store(t, OWNER, 0);
	xchg(t, F, 0, c);
	if
	:: c == WAKE_ON -> futex_wake(t)
	:: else
	fi;
	c = 0;
	done++
}

init {
	byte k;
	atomic {
		k = 0;
		do
		:: k < NT -> run T(k); k++
		:: else -> break
		od;
		k = 0;
		start_flushers()
	}
	done == NT && pending == 0;
	assert(mem[CNT] == NT && mem[F] == 0)
}
