"""CPUs and time: what the scheduler reads from the hardware.

Each CPU has a preempt_count (preemption and softirq/hardirq nesting, x86's per-CPU
__preempt_count), an interrupts-enabled flag (EFLAGS.IF), and a sched_clock that a periodic
clock event (the local APIC timer in periodic mode) advances by TICK_NSEC and interrupts at,
driving scheduler_tick. TIF_NEED_RESCHED lives in the running task's thread_info.

Time passes only at ticks: every other event happens at an instant of the CPU's clock. A tick
that falls while interrupts are disabled is taken when they are enabled again.
"""

from __future__ import annotations

from typing import NamedTuple

NSEC_PER_SEC = 1_000_000_000
HZ = 250  # CONFIG_HZ_250, the x86-64 defconfig
TICK_NSEC = NSEC_PER_SEC // HZ  # 4 ms


class Cpu(NamedTuple):
    """One CPU's scheduling-relevant state."""

    preempt_count: int  # preempt_disable() depth of the code running (0: preemptible)
    irqs_enabled: bool  # EFLAGS.IF
    clock: int  # sched_clock(), in ns since boot
    ticks_off: int  # ticks taken since preemption was last enabled (bounds a critical section)
