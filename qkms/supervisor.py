"""Keeping a child process running: ``qkms serve`` restarts its link manager when it exits.

The supervisor is a daemon thread of the serving master process, started before
gunicorn forks its workers: a fork copies only the forking thread, so no worker runs a
supervisor (and workers never touch the object they inherit). No fork of the process
may happen while the thread starts a child: ``subprocess`` waits for the child's exec
on a pipe, and a worker forked in that moment would inherit the pipe's write end and
keep that wait (and with it supervision) blocked for the worker's whole life. So the
thread holds a lock while it starts a child, and every ``os.fork`` of the process
(gunicorn forking a worker) takes that lock first. The thread starts the
child, waits for it and, when it exits without having been asked to, starts it again
after a backoff (:class:`Backoff`). Each change is published as a SupervisorRecord so
that every process of the node can report it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kms.link_manager_state import SupervisorRecord
from qkms.failure_log import FailureLog
from qkms.runner import stop_process

log = logging.getLogger("qkms.supervisor")

STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts: ``initial_s``, doubling up to ``maximum_s`` while children
    keep failing quickly; back to ``initial_s`` after one ran ``stable_after_s``."""

    initial_s: float = 0.5
    maximum_s: float = 30.0
    stable_after_s: float = 60.0

    def after(self, previous_s: float | None, ran_s: float) -> float:
        """The delay before restarting a child that ran ``ran_s`` seconds and had itself
        been started after ``previous_s`` (None: it was the first)."""
        if previous_s is None or ran_s >= self.stable_after_s:
            return self.initial_s
        return min(previous_s * 2, self.maximum_s)


def exit_reason(code: int | None) -> str:
    """``exit code 1``, ``killed by SIGKILL``, or ``unknown`` for an exit status never seen."""
    if code is None:
        return "unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def wait_for_exit(process: subprocess.Popen) -> int | None:
    """Block until ``process`` exits; its exit code (negative: the signal that ended it),
    or None if its status was taken by another waiter. gunicorn's arbiter reaps every
    child of the master (waitpid(-1)), and Popen then reports 0; so the status is read
    first without reaping it (WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        info = None
    process.wait()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


class Supervisor:
    """Runs ``spawn()``'s child until :meth:`stop`, restarting it whenever it exits.

    ``publish(record)`` is called on every change; if it fails (Redis down), the
    failure is logged and supervision goes on."""

    def __init__(self, name: str, spawn: Callable[[], subprocess.Popen],
                 publish: Callable[[SupervisorRecord], None], backoff: Backoff = Backoff()):
        self._name = name
        self._spawn = spawn
        self._publish_to = publish
        self._publish_failures = FailureLog(log, f"publishing the state of the {name}")
        self._backoff = backoff
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # orders a start of the child against stop()
        # Held while a child starts; forks wait for it. Reentrant: a child started with a
        # preexec_fn (the embedded Redis) forks through the interpreter's fork hooks,
        # which take this lock again in the very thread that holds it.
        self._spawning = threading.RLock()
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._restarts = 0
        self._last_exit_code: int | None = None

    def start(self) -> None:
        """Start the child and the thread that watches it."""
        os.register_at_fork(before=self._spawning.acquire, after_in_parent=self._spawning.release,
                            after_in_child=self._spawning.release)
        self._thread = threading.Thread(target=self._run, name=f"supervisor of the {self._name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the child (SIGTERM, SIGKILL after ``timeout_s``) and the watching thread."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None:
            stop_process(process, timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        delay_s: float | None = None
        while not self._stopping.is_set():
            started = time.monotonic()
            pid, code = self._run_child()
            if self._stopping.is_set():
                break
            delay_s = self._backoff.after(delay_s, time.monotonic() - started)
            self._restarts += 1
            self._last_exit_code = code
            log.warning("%s (pid %s) exited unexpectedly (%s); restart %d in %.1f s",
                        self._name, pid, exit_reason(code), self._restarts, delay_s)
            self._publish("restarting", pid, backoff_s=delay_s)
            self._stopping.wait(delay_s)
        self._publish("stopped", None)

    def _run_child(self) -> tuple[int | None, int | None]:
        """Start the child and wait until it exits: (its pid, its exit code); (None, None)
        when it could not be started or the supervisor is stopping."""
        with self._lock:
            if self._stopping.is_set():
                return None, None
            try:
                with self._spawning:
                    process = self._process = self._spawn()
            except Exception as exc:  # whatever the cause, the next attempt follows the backoff
                log.error("%s could not be started: %s", self._name, exc)
                return None, None
        self._publish("running", process.pid)
        return process.pid, wait_for_exit(process)

    def _publish(self, state: str, pid: int | None, backoff_s: float | None = None) -> None:
        record = SupervisorRecord(state, pid, self._restarts, time.time(), self._last_exit_code, backoff_s)
        try:
            self._publish_to(record)
        except Exception as exc:  # a record lost must not end supervision
            self._publish_failures.failed(exc)
        else:
            self._publish_failures.succeeded()

