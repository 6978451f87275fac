"""qkms.supervisor with real child processes: a child killed -9 is started again, with its
exit recorded; children that keep failing are restarted ever more slowly; stop() ends
the child and the thread, and nothing is restarted after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from kms.link_manager_state import SupervisorRecord
from qkms.supervisor import Backoff, Supervisor, exit_reason
from tests.support.conditions import wait_until

WAIT_S = 20.0
QUICK = Backoff(initial_s=0.05, maximum_s=0.2, stable_after_s=60.0)


class Children:
    """Spawns ``python -c CODE`` children and remembers every one."""

    def __init__(self, code: str):
        self.code = code
        self.started: list[subprocess.Popen] = []

    def __call__(self) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", self.code])
        self.started.append(child)
        return child

    def reap_all(self) -> None:
        for child in self.started:
            if child.poll() is None:
                child.kill()
            child.wait()


class Records:
    def __init__(self):
        self.items: list[SupervisorRecord] = []
        self.changed = threading.Condition()

    def __call__(self, record: SupervisorRecord) -> None:
        with self.changed:
            self.items.append(record)
            self.changed.notify_all()

    def wait_for(self, predicate, what: str) -> SupervisorRecord:
        with self.changed:
            found = self.changed.wait_for(lambda: next((r for r in self.items if predicate(r)), None), WAIT_S)
        assert found, f"no record {what}; got {self.items}"
        return found


@pytest.fixture
def supervise():
    made: list[tuple[Supervisor, Children]] = []

    def factory(code: str, backoff: Backoff = QUICK, publish=None) -> tuple[Supervisor, Children, Records]:
        children, records = Children(code), Records()
        supervisor = Supervisor("test child", children, publish or records, backoff)
        made.append((supervisor, children))
        supervisor.start()
        return supervisor, children, records

    yield factory
    for supervisor, children in made:
        supervisor.stop(timeout_s=5)
        children.reap_all()


SLEEPER = "import time; time.sleep(120)"


def test_a_child_killed_9_is_restarted_and_its_exit_recorded(supervise):
    supervisor, children, records = supervise(SLEEPER)
    first = records.wait_for(lambda r: r.state == "running", "running")
    os.kill(first.pid, signal.SIGKILL)
    restarting = records.wait_for(lambda r: r.state == "restarting", "restarting")
    assert (restarting.pid, restarting.restarts, restarting.last_exit_code) == (first.pid, 1, -9)
    assert restarting.backoff_s == QUICK.initial_s
    second = records.wait_for(lambda r: r.state == "running" and r.pid != first.pid, "of a new child")
    assert (second.restarts, second.last_exit_code) == (1, -9)
    assert children.started[-1].poll() is None


def test_failing_children_are_restarted_with_growing_backoff(supervise):
    supervisor, children, records = supervise("raise SystemExit(3)")
    records.wait_for(lambda r: r.state == "restarting" and r.restarts == 4, "after four exits")
    supervisor.stop()
    delays = [r.backoff_s for r in records.items if r.state == "restarting"][:4]
    assert delays == [0.05, 0.1, 0.2, 0.2]
    assert {r.last_exit_code for r in records.items if r.state == "restarting"} == {3}


def test_backoff_doubles_to_its_maximum_and_resets_after_a_stable_run():
    backoff = Backoff(initial_s=0.5, maximum_s=30.0, stable_after_s=60.0)
    delays, delay = [], None
    for _ in range(9):
        delay = backoff.after(delay, ran_s=1.0)
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.after(30.0, ran_s=61.0) == 0.5


def test_stop_ends_the_child_and_restarts_nothing(supervise):
    supervisor, children, records = supervise(SLEEPER)
    running = records.wait_for(lambda r: r.state == "running", "running")
    supervisor.stop()
    assert children.started[0].poll() is not None
    assert len(children.started) == 1
    assert records.items[-1].state == "stopped" and records.items[-1].restarts == 0
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)


def test_a_failing_publisher_does_not_end_supervision(supervise):
    attempts = []

    def publish(record):
        attempts.append(record)
        raise ConnectionError("redis is down")

    supervisor, children, _ = supervise(SLEEPER, publish=publish)
    wait_until(lambda: children.started, "the child to start", WAIT_S, poll_s=0.01)
    os.kill(children.started[0].pid, signal.SIGKILL)
    # The restarted child is counted when it is spawned, its "running" published after.
    wait_until(lambda: len(attempts) >= 3, "the restart to be published", WAIT_S, poll_s=0.01)
    assert [r.state for r in attempts[:3]] == ["running", "restarting", "running"]


@pytest.mark.parametrize("code, text", [(-9, "killed by SIGKILL"), (1, "exit code 1"), (None, "unknown"),
                                        (-99, "killed by signal 99")])
def test_exit_reason(code, text):
    assert exit_reason(code) == text


def test_a_fork_waits_while_the_supervisor_starts_a_child() -> None:
    """A worker forked while subprocess waits for the child's exec would inherit that
    wait's pipe and block supervision for the worker's life (seen: a link manager killed
    -9 was never restarted). Forks wait until the child has started."""
    spawning, release = threading.Event(), threading.Event()
    children = Children("import time; time.sleep(60)")

    def slow_spawn() -> subprocess.Popen:
        spawning.set()
        assert release.wait(WAIT_S)
        return children()

    supervisor = Supervisor("sleeper", slow_spawn, Records(), QUICK)
    forked: list[int] = []

    def fork_like_gunicorn() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forked.append(pid)
        os.waitpid(pid, 0)

    try:
        supervisor.start()
        assert spawning.wait(WAIT_S)
        forker = threading.Thread(target=fork_like_gunicorn)
        forker.start()
        forker.join(0.5)
        assert forker.is_alive() and forked == [], "a fork ran while a child was being started"
        release.set()
        forker.join(WAIT_S)
        assert not forker.is_alive() and len(forked) == 1
    finally:
        release.set()
        supervisor.stop(5)
        children.reap_all()
