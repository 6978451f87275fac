"""Faults on a PQC link's own KM messages: the ML-KEM offers of a pqc-only link A-B
(POST /km/v1/links/A-B%23pqc/exchange, A initiates) lost, their answers lost, duplicated,
duplicated late, delayed and reordered by a proxy on the KM channel
(tests/support/km_proxy.py), between two real node processes.

A lost or refused answer leaves a block at B that A never derived (docs/pqc.md). After
the faults: clean exchanges resume, deliveries A -> B and B -> A that use the blocks
made around the faults go on (503 only while the pools refill), every key is fetched
exactly once with the master's bytes, and every block both ends hold is the same at
both."""

from __future__ import annotations

from collections import Counter

import pytest

from adapters.etsi014_client import Etsi014Error
from tests.support.conditions import wait_until
from tests.support.invariants import Ledger, assert_pools_identical
from tests.support.km_proxy import ACTIONS, route_through_proxies
from tests.support.network import FAST_LINK, LocalNetwork

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXCHANGE = "/km/v1/links/A-B%23pqc/exchange"  # the PQC pool A-B#pqc, URL-quoted
FAULTS = tuple(action for action in ACTIONS if action != "pass")


def test_pqc_offers_lost_duplicated_delayed_and_reordered(tmp_path):
    net = LocalNetwork(tmp_path, {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK,
                       policies={("A", "B"): "pqc-only"})
    proxy = route_through_proxies(net.root, net.manifest, "A", ["B"])["B"]
    # Every fault in turn, each followed by a clean exchange (a block both ends derive).
    proxy.plan = lambda method, path, count: (
        ("pass",) + FAULTS)[count % (len(FAULTS) + 1)] if path == EXCHANGE else "pass"
    try:
        net.start()
        wait_until(lambda: all(proxy.applied[(EXCHANGE, action)] >= 2 for action in FAULTS),
                   "every fault applied twice to ML-KEM offers", 240)
        proxy.plan = lambda *_: "pass"
        clean_before = proxy.applied[(EXCHANGE, "pass")]
        wait_until(lambda: proxy.applied[(EXCHANGE, "pass")] >= clean_before + 8,
                   "eight clean ML-KEM exchanges once the faults stop", 60)
        # Keys of 8 x 4096 bits take a whole 4 KiB block each: twelve each way use the
        # blocks made around the faults, not just the newest.
        ledger, refusals = Ledger(), Counter()
        for master, slave in (("sae-a", "sae-b"), ("sae-b", "sae-a")):
            for _ in range(12):
                wait_until(lambda: _deliver(net, ledger, refusals, master, slave), f"a delivery {master} -> {slave}", 60)
        ledger.check()
        assert len(ledger.material) == 2 * 12 * 8
        assert set(refusals) <= {503}, dict(refusals)  # only "not enough key material yet"
        assert_pools_identical(net)
        print(f"PQC exchange faults applied: {dict(Counter({a: proxy.applied[(EXCHANGE, a)] for a in FAULTS}))}; "
              f"503s while the pools refilled: {refusals[503]}")
    finally:
        net.close()
        proxy.stop()


def _deliver(net: LocalNetwork, ledger: Ledger, refusals: Counter, master: str, slave: str) -> bool:
    try:
        keys = net.client(master).enc_keys(slave, number=8, size_bits=4096)
    except Etsi014Error as exc:
        refusals[exc.status] += 1
        return False
    ledger.issued(keys)
    ledger.fetched(slave, net.client(slave).dec_keys(master, [key.key_id for key in keys]))
    return True
