/* Memory for the sync twins. Needs NT (threads) and L (locations) defined first.
 * With -DTSO each thread's plain stores wait in a FIFO store buffer of up to B
 * entries, and a flusher process per thread writes the oldest one to mem[] at any
 * time; a load reads the thread's newest buffered store to that location, else
 * mem[]. Barriers and atomic read-modify-writes wait for the buffer to drain.
 * Without -DTSO stores go straight to mem[] (SC). */
#ifndef B
#define B 2
#endif

int mem[L];

#ifdef TSO
byte baddr[NT * B];
int bval[NT * B];
byte blen[NT];
byte pending;  /* stores buffered, all threads: a function of blen[], adds no states */

inline store(t, a, v) {
	atomic {
		blen[t] < B ->
		baddr[t * B + blen[t]] = a;
		bval[t * B + blen[t]] = v;
		blen[t]++;
		pending++
	}
}

inline load(t, a, r) {
	atomic {
		k = blen[t];
		r = mem[a];
		do
		:: k > 0 && baddr[t * B + k - 1] != a -> k--
		:: k > 0 && baddr[t * B + k - 1] == a -> r = bval[t * B + k - 1]; break
		:: k == 0 -> break
		od;
		k = 0
	}
}

#define mb(t) (blen[t] == 0)

proctype flusher(byte t) {
	byte j;
end:
	do
	:: atomic {
		blen[t] > 0 ->
		mem[baddr[t * B]] = bval[t * B];
		j = 1;
		do
		:: j < blen[t] -> baddr[t * B + j - 1] = baddr[t * B + j]; bval[t * B + j - 1] = bval[t * B + j]; j++
		:: else -> break
		od;
		blen[t]--;
		baddr[t * B + blen[t]] = 0;
		bval[t * B + blen[t]] = 0;
		pending--;
		j = 0
	}
	od
}

#define start_flushers() k = 0; do :: k < NT -> run flusher(k); k++ :: else -> break od; k = 0
#else
#define pending 0
inline store(t, a, v) { mem[a] = v }
inline load(t, a, r) { r = mem[a] }
#define mb(t) true
#define start_flushers() skip
#endif
