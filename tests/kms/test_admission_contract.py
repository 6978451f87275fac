"""The AdmissionCounters contract (kms/admission.py), run against every backend: the
in-memory twin, Redis on both kinds of server, Sentinel and Cluster; and the Admission
policy on top of it (the errors a refused SAE gets)."""

from __future__ import annotations

import threading
import time

import pytest

from kms.admission import Admission, AdmissionCounters, AdmissionLimits
from kms.errors import RateLimited, TooManyRequestsInProgress, Unavailable
from tests.support.backends import Backend
from tests.support.conditions import wait_until

NO_RATE = {"rate_per_s": None, "burst": 1}
LEASE_S = 60.0
#: Redis TIME and this process's clock are read at different instants.
CLOCK_SLACK_S = 0.05


@pytest.fixture
def counters(backend: Backend) -> AdmissionCounters:
    return backend.open("KME-A").admission


def admit(counters: AdmissionCounters, ticket: str, account: str = "sae:a", rate_per_s=None, burst: int = 1,
          max_in_progress=None, lease_s: float = LEASE_S) -> str:
    return counters.admit(account, ticket, rate_per_s, burst, max_in_progress, lease_s).outcome


def test_a_burst_is_admitted_then_the_rate_refuses(counters) -> None:
    outcomes = [admit(counters, f"t{i}", rate_per_s=0.01, burst=5) for i in range(7)]
    assert outcomes == ["ok"] * 5 + ["rate"] * 2
    verdict = counters.admit("sae:a", "t8", 0.01, 5, None, LEASE_S)
    assert verdict.outcome == "rate" and 90 <= verdict.retry_after_s <= 100  # one token per 100 s


def test_tokens_come_back_at_the_rate(counters) -> None:
    # One token a second and a bucket of one: the refusal needs the second call within a
    # second of the first (not 50 ms, which a loaded machine can stall), and however late
    # the token is taken back, the bucket is empty after it.
    started = time.monotonic()
    assert [admit(counters, f"t{i}", rate_per_s=1, burst=1) for i in range(2)] == ["ok", "rate"]
    wait_until(lambda: admit(counters, "later", rate_per_s=1, burst=1) == "ok",
               "a token to come back (1 per second)", 10, poll_s=0.05)
    assert time.monotonic() - started >= 1 - CLOCK_SLACK_S  # not before the rate gives it
    assert admit(counters, "at-once", rate_per_s=0.001, burst=1) == "rate"


def test_requests_in_progress_are_bounded_until_one_is_released(counters) -> None:
    assert [admit(counters, t, max_in_progress=2) for t in ("a", "b", "c")] == ["ok", "ok", "busy"]
    counters.release("sae:a", "a")
    assert admit(counters, "c", max_in_progress=2) == "ok"
    assert admit(counters, "d", max_in_progress=2) == "busy"
    counters.release("sae:a", "never-held")  # ignored
    assert admit(counters, "d", max_in_progress=2) == "busy"


def test_a_refusal_for_concurrency_takes_no_token(counters) -> None:
    assert admit(counters, "a", rate_per_s=0.001, burst=2, max_in_progress=1) == "ok"
    assert [admit(counters, f"x{i}", rate_per_s=0.001, burst=2, max_in_progress=1) for i in range(5)] == ["busy"] * 5
    counters.release("sae:a", "a")
    assert admit(counters, "b", rate_per_s=0.001, burst=2, max_in_progress=1) == "ok"
    counters.release("sae:a", "b")
    assert admit(counters, "c", rate_per_s=0.001, burst=2, max_in_progress=1) == "rate"


def test_a_forgotten_ticket_stops_counting_after_its_lease(counters) -> None:
    assert admit(counters, "crashed", max_in_progress=1, lease_s=1) == "ok"
    assert admit(counters, "next", max_in_progress=1, lease_s=1) == "busy"
    wait_until(lambda: admit(counters, "next", max_in_progress=1, lease_s=1) == "ok",
               "the forgotten ticket's 1 s lease to end", 30, poll_s=0.05)


def test_accounts_and_nodes_are_counted_apart(backend: Backend, counters) -> None:
    assert admit(counters, "a", account="sae:a", rate_per_s=0.001, burst=1, max_in_progress=1) == "ok"
    assert admit(counters, "b", account="sae:b", rate_per_s=0.001, burst=1, max_in_progress=1) == "ok"
    other_node = backend.open("KME-B").admission
    assert admit(other_node, "c", account="sae:a", rate_per_s=0.001, burst=1, max_in_progress=1) == "ok"
    assert admit(counters, "d", account="sae:a", rate_per_s=0.001, burst=1) == "rate"


def test_without_limits_everything_is_admitted_and_nothing_stored(backend: Backend, counters) -> None:
    assert all(admit(counters, f"t{i}") == "ok" for i in range(50))
    assert backend.records() == 0


def test_racing_requests_never_exceed_the_limit(backend: Backend) -> None:
    """Twenty clients (each its own connection) race for five places."""
    stores = [backend.open("KME-A").admission for _ in range(20)]
    barrier, outcomes = threading.Barrier(len(stores)), []

    def run(index: int) -> None:
        barrier.wait()
        outcomes.append(admit(stores[index], f"t{index}", rate_per_s=0.001, burst=12, max_in_progress=5))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["busy"] * 15 + ["ok"] * 5


def test_redis_counters_live_in_the_nodes_namespace_and_expire(redis_backend) -> None:
    counters = redis_backend.open("KME-A").admission
    assert admit(counters, "t", rate_per_s=1, burst=20, max_in_progress=3, lease_s=50) == "ok"
    names = {name.decode() for name in redis_backend.raw.keys("*")}
    assert names == {"qkms:{KME-A}:adm:sae:a:bucket", "qkms:{KME-A}:adm:sae:a:busy"}
    assert 0 < redis_backend.raw.pttl("qkms:{KME-A}:adm:sae:a:bucket") <= 21_000  # full again after 20 s
    assert 0 < redis_backend.raw.pttl("qkms:{KME-A}:adm:sae:a:busy") <= 51_000


# --- the policy ------------------------------------------------------------------------------


def test_admission_refuses_with_503_errors_that_name_the_limit(counters) -> None:
    admission = Admission(counters, AdmissionLimits(rate_per_s=0.001, burst=2, max_in_progress=1))
    first = admission.enter("sae-1")
    with pytest.raises(TooManyRequestsInProgress) as busy:
        admission.enter("sae-1")
    assert isinstance(busy.value, Unavailable) and "concurrent_requests_per_sae" in busy.value.message
    admission.leave(first)
    admission.leave(admission.enter("sae-1"))
    with pytest.raises(RateLimited) as limited:
        admission.enter("sae-1")
    assert isinstance(limited.value, Unavailable) and "requests_per_s_per_sae" in limited.value.message
    assert limited.value.retry_after_s > 900
    assert admission.enter("sae-2") is not None


def test_an_unlimited_admission_touches_no_counter(backend: Backend, counters) -> None:
    admission = Admission(counters, AdmissionLimits())
    assert admission.enter("sae-1") is None
    admission.leave(None)
    assert backend.records() == 0
