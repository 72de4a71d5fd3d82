"""Stopping a run early, the same way in every engine: Ctrl-C or SIGTERM, the wall-clock cap
and the memory cap (DESIGN.md, "Verdicts").

Budgets that decide a verdict count work and belong to the engines; what is here only ends a
run as *incomplete*, never as a pass. Each process has one ``CONTROL``: the engines read
``CONTROL.reason`` (one attribute load, cheap enough for every transition) and stop when it
is set. A solver call does not come back to Python until it is done, so z3 is stopped
through ``on_stop`` callbacks, called from the watchdog thread or the signal handler.

The watchdog is a daemon thread that looks ten times a second at the clock, the resident
set and the cancel file (the one a ``kinv check`` controller touches so that its pytest-xdist
workers stop with it, even when only the controller got the signal). The first SIGINT or
SIGTERM stops the run; a second exits at once with 130.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

POLL_SECONDS = 0.1
INTERRUPTED = "interrupted"
TIME = "time"
MEMORY = "memory"
RLIMIT = "rlimit"  # not the control's: z3 used its whole resource budget without an answer
# What each reason means in a strength sentence.
WHY = {
    INTERRUPTED: "interrupted",
    TIME: "stopped at the wall-clock cap",
    MEMORY: "stopped at the memory cap",
    RLIMIT: "z3 used its whole resource budget",
}


class Control:
    """Why this process's run must stop (``reason``), and who to tell when it does."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._watchdog: threading.Thread | None = None
        self.deadline: float | None = None
        self.max_memory: int | None = None
        self.cancel_file: Path | None = None

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb()

    @contextmanager
    def on_stop(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` (from another thread) if the run is stopped inside the block."""
        with self._lock:
            self._callbacks.append(callback)
            stopped = self.reason is not None
        if stopped:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)

    def configure(
        self, *, max_seconds: float | None = None, max_memory: int | None = None, cancel_file: Path | None = None
    ) -> None:
        """Set the caps of this process's run and start the watchdog that enforces them."""
        self.deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        self.max_memory = max_memory
        self.cancel_file = cancel_file
        if self._watchdog is None and (max_seconds is not None or max_memory is not None or cancel_file):
            self._watchdog = threading.Thread(target=self._watch, name="kinv-watchdog", daemon=True)
            self._watchdog.start()

    def reset(self) -> None:
        """Clear the caps and the reason: for tests and for one process running several runs."""
        self.reason = None
        self.deadline = self.max_memory = self.cancel_file = None

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            if self.reason is not None:
                continue
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self.stop(TIME)
            elif self.max_memory is not None and rss_bytes() >= self.max_memory:
                self.stop(MEMORY)
            elif self.cancel_file is not None and self.cancel_file.exists():
                self.stop(INTERRUPTED)


CONTROL = Control()
# Where the signal handler writes: the terminal's stderr, saved before pytest captures fd 2.
_stderr = 2


def keep_stderr() -> None:
    """Save the process's stderr for the signal handler's messages, before a run captures it."""
    global _stderr
    if _stderr == 2:
        _stderr = os.dup(2)


def rss_bytes() -> int:
    """The process's resident set now (Linux ``/proc/self/statm``), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def default_max_memory(workers: int = 1) -> int:
    """Half the machine's memory, shared between ``workers`` processes."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        total = 8 << 30
    return total // 2 // max(workers, 1)


def install_signal_handlers(
    control: Control = CONTROL, *, on_first: Callable[[], None] | None = None
) -> Callable[[], None]:
    """SIGINT and SIGTERM stop the run (the engines end it as incomplete and the report is
    written); a second one exits at once. Returns the function that puts the previous
    handlers back. Only the main thread may install handlers: elsewhere this does nothing."""

    signals = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            os.write(_stderr, b"kinv: interrupted again; exiting now\n")
            os._exit(130)
        os.write(_stderr, b"kinv: interrupted; stopping (interrupt again to quit at once)\n")
        if on_first is not None:
            on_first()
        control.stop(INTERRUPTED)

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def stopped_sentence(reason: str) -> str:
    return WHY.get(reason, reason)



def z3_check(solver: Any, control: Control = CONTROL) -> Any:
    """``solver.check()``, stoppable: the call runs in a thread of its own while this one
    waits, so that a signal handler or the watchdog can interrupt z3's context; an
    interrupted check answers ``unknown`` and ``control.reason`` says why."""
    answer: list[Any] = []

    def check() -> None:
        try:
            answer.append(solver.check())
        except BaseException as e:  # re-raised in the caller's thread
            answer.append(e)

    worker = threading.Thread(target=check, name="kinv-z3", daemon=True)
    with control.on_stop(solver.ctx.interrupt):
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            if control.reason is not None:  # again: an interrupt before z3 began is forgotten
                solver.ctx.interrupt()
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]
