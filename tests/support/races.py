"""Racing worker processes against one store: each worker gets (seed, barrier, results)."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable


def race(target: Callable, args: tuple, workers: int, timeout_s: float = 180) -> list:
    """Start ``workers`` spawned processes running ``target(*args, seed, barrier, results)``
    (they wait on the barrier, then race), and return everything they put on ``results``.
    Fails if any worker did not exit cleanly."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=target, args=(*args, seed, barrier, results)) for seed in range(workers)]
    for process in processes:
        process.start()
    try:
        got = _collect(processes, results, timeout_s)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    assert [process.exitcode for process in processes] == [0] * workers
    return got


def _collect(processes: list, results, timeout_s: float) -> list:
    """Every worker's report; gives up early if a worker died without reporting."""
    got, reports, deadline = [], 0, time.monotonic() + timeout_s
    while reports < len(processes) and time.monotonic() < deadline:
        try:
            got += results.get(timeout=0.2)
            reports += 1
        except queue.Empty:
            if any(process.exitcode not in (None, 0) for process in processes):
                break
    return got
