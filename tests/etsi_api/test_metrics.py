"""GET /metrics on one node's app in process (in-memory storage twins): who may scrape,
that the text parses with prometheus-client's own parser, that values move as keys
are delivered, that pool levels and link state come from storage, and that no key
material appears in any form. Across gunicorn workers and the link manager:
tests/integration/test_metrics_node.py."""

from __future__ import annotations

import base64
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kms.keys import KeyBlock
from kms.link_board import LinkHalf
from tests.support.monitored_app import MonitoredNode, monitored_node


@pytest.fixture
def node() -> MonitoredNode:
    return monitored_node()


def scrape(node: MonitoredNode, caller: str = "prometheus") -> dict[tuple[str, tuple], float]:
    response = node.get("/metrics", caller)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("caller, status", [("ops", 200), ("prometheus", 200), ("intruder", 401),
                                            ("sae-a", 401), ("A", 401), (None, 401)])
def test_administrators_and_listed_scrapers_may_scrape(node: MonitoredNode, caller, status) -> None:
    response = node.get("/metrics", caller)
    assert response.status_code == status
    if status == 401:
        assert "metrics scraper" in response.get_json()["message"]


def test_a_scraper_may_not_open_the_dashboard(node: MonitoredNode) -> None:
    assert node.get("/dashboard/api/state", "prometheus").status_code == 401
    assert node.get("/dashboard/api/state", "ops").status_code == 200


def test_values_move_as_keys_are_delivered(node: MonitoredNode) -> None:
    before = scrape(node)
    keys = node.get("/api/v1/keys/sae-a2/enc_keys", "sae-a", "POST", json={"number": 3, "size": 256}).get_json()
    ids = [{"key_ID": k["key_ID"]} for k in keys["keys"]]
    assert node.get("/api/v1/keys/sae-a/dec_keys", "sae-a2", "POST", json={"key_IDs": ids}).status_code == 200
    assert node.get("/api/v1/keys/sae-a/dec_keys", "sae-a2", "POST", json={"key_IDs": ids}).status_code == 400
    after = scrape(node)
    assert value(after, "qkms_keys_delivered_total", endpoint="enc_keys") == 3
    assert value(after, "qkms_keys_delivered_total", endpoint="dec_keys") == 3
    assert value(after, "qkms_key_bits_delivered_total", endpoint="dec_keys") == 768
    for status, count in (("200", 1), ("400", 1)):
        assert value(after, "qkms_http_responses_total", endpoint="etsi014.dec_keys", method="POST",
                     status=status) == count
    assert value(after, "qkms_http_request_duration_seconds_count", endpoint="etsi014.enc_keys") == 1
    assert value(after, "qkms_delivery_route_hops_bucket", le="0.0") == 1  # both SAEs on this node
    assert value(after, "qkms_http_responses_total", endpoint="metrics.scrape", method="GET", status="200") == \
        value(before, "qkms_http_responses_total", endpoint="metrics.scrape", method="GET", status="200") + 1


def test_unknown_routes_and_refusals_are_counted_too(node: MonitoredNode) -> None:
    node.get("/no/such/route", "sae-a")
    node.get("/api/v1/keys/sae-a2/status", None)
    samples = scrape(node)
    assert value(samples, "qkms_http_responses_total", endpoint="unmatched", method="GET", status="400") == 1
    assert value(samples, "qkms_http_responses_total", endpoint="etsi014.status", method="GET", status="401") == 1


def test_pool_levels_totals_and_link_state_come_from_storage(node: MonitoredNode) -> None:
    pools, board = node.storage.pools, node.storage.board
    pools.add_blocks("A-B", "A", [KeyBlock("A-B:1", os.urandom(1024), 1)])
    pools.carve("A-B", "A", [32])
    board.publish([LinkHalf("A-B", "A", 7936, "degraded", "QBER 25.7% above abort threshold 11.0%: possible "
                            "eavesdropper", {"qber": 0.257, "secret_rate_bps": 0.0, "frames_aborted": 4},
                            observed_at=__import__("time").time()),
                   LinkHalf("B-C", "B", 0, "up", "", {"qber": 0.02}, observed_at=1.0)])
    scrape(node)  # a scrape times a PING; the next one reports it
    samples = scrape(node)
    assert value(samples, "qkms_link_pool_bits", link="A-B", owner="A") == 8192 - 256
    assert value(samples, "qkms_link_generated_bits_total", link="A-B", owner="A") == 8192
    assert value(samples, "qkms_link_consumed_bits_total", link="A-B", owner="A", how="carved") == 256
    assert value(samples, "qkms_link_qber", link="A-B", owner="A") == pytest.approx(0.257)
    assert value(samples, "qkms_link_frames_aborted_total", link="A-B", owner="A") == 4
    assert value(samples, "qkms_link_source_health", link="A-B", owner="A", state="degraded") == 1
    assert value(samples, "qkms_link_source_health", link="B-C", owner="B", state="down") == 0  # stale report
    assert value(samples, "qkms_store_up") == 1
    assert value(samples, "qkms_redis_ping_seconds_count", process="web") >= 1


def key_forms(material: bytes) -> set[str]:
    """Every spelling of a key (and of its first 12 bytes) a leak could take."""
    forms = set()
    for part in (material, material[:12]):
        forms |= {part.hex(), part.hex().upper(), base64.b64encode(part).decode().rstrip("="),
                  base64.urlsafe_b64encode(part).decode().rstrip("="), str(int.from_bytes(part, "big"))}
    return forms


def test_no_key_material_in_any_form(node: MonitoredNode) -> None:
    delivered = node.get("/api/v1/keys/sae-a2/enc_keys", "sae-a", "POST", json={"number": 4, "size": 512}).get_json()
    node.storage.pools.add_blocks("A-B", "A", [KeyBlock("A-B:1", block := os.urandom(512), 1)])
    text = node.get("/metrics", "ops").get_data(as_text=True)
    materials = [base64.b64decode(k["key"]) for k in delivered["keys"]] + [block]
    leaks = [form for material in materials for form in key_forms(material) if form in text]
    assert leaks == []
    assert not any(k["key_ID"] in text for k in delivered["keys"])
    assert "sae-a" not in text
