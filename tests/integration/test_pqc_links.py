"""Post-quantum and hybrid links between real node processes on loopback (docs/pqc.md):

* qkd-then-pqc: the link's QKD source dies during traffic (an eavesdropper on every
  pulse, switched on through the simulated source's eve file, so every frame aborts on
  its QBER); deliveries go on with ML-KEM material and return to QKD when it recovers;
* a hybrid link and a pqc-only link: hybrid keys identical at both ends, a relay over
  the mixed route reporting each hop's material, SAEs demanding QKD or PQC;
* the KM channel refuses replayed, tampered and reordered ML-KEM offers, and offers
  signed by a key the peer has not pinned; a link whose peer does not pin our key stays
  down and fills nothing.

Keys are compared between SAEs, never printed."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import httpx
import pytest

from adapters.etsi014_client import Etsi014Client, Etsi014Error
from adapters.pqc.exchange import SequenceClock, make_offer
from adapters.pqc.settings import parse_link
from etsi_api.km_client import HttpPeerTransport
from kms.config import load_config
from kms.errors import Unavailable
from kms.sources import SourceContext
from qkms.link_status import fetch_link_state
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork
from tests.support.pqc import key_pair

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def half(net: LocalNetwork, node: str, pool: str, owner: str):
    state = fetch_link_state(net.manifest, node)
    return next((h for h in state.halves if h.link_id == pool and h.owner == owner), None)


class Traffic:
    """One master SAE asking for a key and its slave fetching it, five times a second,
    until stopped; records what each delivery's single hop was made of."""

    def __init__(self, master: Etsi014Client, slave: Etsi014Client, slave_id: str, master_id: str):
        self._master, self._slave, self._ids = master, slave, (slave_id, master_id)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.outcomes: list[str] = []  # "qkd" / "pqc" / "failed"
        self.mismatches = 0

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                keys = self._master.enc_keys(self._ids[0], number=1, size_bits=256)
                got = self._slave.dec_keys(self._ids[1], [keys[0].key_id])
            except (Etsi014Error, httpx.HTTPError):
                self.outcomes.append("failed")
                continue
            self.mismatches += got[0].material != keys[0].material
            self.outcomes.append(keys[0].extension["qkms_provenance"]["hops"][0]["material"])

    def last(self) -> str | None:
        done = [o for o in self.outcomes if o != "failed"]
        return done[-1] if done else None

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(30)


def test_qkd_then_pqc_falls_back_while_the_qkd_source_is_down_and_returns(tmp_path: Path) -> None:
    eve = tmp_path / "eve.json"
    net = LocalNetwork(tmp_path / "net", {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")],
                       {**FAST_LINK, "eve_file": str(eve)}, policies={("A", "B"): "qkd-then-pqc"})
    try:
        net.start()
        master, slave = net.client("sae-a"), net.client("sae-b")
        net.wait_for_keys(master, "sae-b", 4)
        with Traffic(master, slave, "sae-b", "sae-a") as traffic:
            wait_until(lambda: traffic.last() == "qkd", "a key made of QKD material", 120)
            eve.write_text(json.dumps({"kind": "intercept-resend", "fraction": 1.0}))
            wait_until(lambda: traffic.last() == "pqc", "deliveries to fall back to ML-KEM", 120)
            qkd_half = half(net, "A", "A-B", "A")
            eve.unlink()
            wait_until(lambda: traffic.last() == "qkd", "deliveries to return to QKD", 120)
        pqc_key = master.enc_keys("sae-b", extension_mandatory=[{"qkms_require_pqc": True}])
    finally:
        net.close()
    assert qkd_half.state == "down" and "QBER" in qkd_half.reason
    served = [o for o in traffic.outcomes if o != "failed"]
    first = served.index("qkd")
    runs = [material for material, _ in itertools.groupby(served[first:])]
    assert runs[:3] == ["qkd", "pqc", "qkd"], runs
    failed_after_start = traffic.outcomes[traffic.outcomes.index("qkd"):].count("failed")
    assert failed_after_start <= 2, f"{failed_after_start} deliveries failed during the switches"
    assert traffic.mismatches == 0
    assert pqc_key[0].extension["qkms_provenance"]["hops"][0]["sources"] == ["ml-kem"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A -hybrid- B -pqc-only- C."""
    net = LocalNetwork(tmp_path_factory.mktemp("mixed"), {"A": ("sae-a",), "B": ("sae-b",), "C": ("sae-c",)},
                       [("A", "B"), ("B", "C")], FAST_LINK, policies={("A", "B"): "hybrid", ("B", "C"): "pqc-only"})
    try:
        net.start()
        net.wait_for_keys(net.client("sae-a"), "sae-c", 8, timeout_s=180)
        yield net
    finally:
        net.close()


def test_hybrid_keys_are_identical_at_both_ends(mixed: LocalNetwork) -> None:
    keys = mixed.client("sae-a").enc_keys("sae-b", number=4, size_bits=512)
    got = mixed.client("sae-b").dec_keys("sae-a", [k.key_id for k in keys])
    assert [k.material for k in got] == [k.material for k in keys]
    assert len({k.material for k in keys}) == 4
    for key in (keys[0], got[0]):
        (hop,) = key.extension["qkms_provenance"]["hops"]
        assert hop["material"] == "hybrid" and set(hop["sources"]) == {"qkd-sim", "ml-kem"}
        assert {"catkdf-sha256", "ml-kem-768", "decoy-bb84"} <= set(hop["algorithms"])


def test_a_relay_over_a_mixed_route_reports_each_hops_provenance(mixed: LocalNetwork) -> None:
    keys = mixed.client("sae-a").enc_keys("sae-c", number=2)
    got = mixed.client("sae-c").dec_keys("sae-a", [k.key_id for k in keys])
    assert [k.material for k in got] == [k.material for k in keys]
    for key in (keys[0], got[0]):
        provenance = key.extension["qkms_provenance"]
        assert provenance["route"] == ["A", "B", "C"]
        assert [(h["link"], h["material"], h["sources"]) for h in provenance["hops"]] == [
            ("A-B", "hybrid", ["qkd-sim", "ml-kem"]), ("B-C", "pqc", ["ml-kem"])]
        assert {"trusted-node-relay", "one-time-pad"} <= set(provenance["algorithms"])


def test_an_sae_demands_qkd_or_pqc_and_a_refusal_consumes_nothing(mixed: LocalNetwork) -> None:
    master = mixed.client("sae-a")
    mixed.wait_for_keys(master, "sae-c", 2)  # a route to C: else the refusal is a 503, not the 400 tested
    carved = {pool: mixed.pools("A").usage_bits(pool, "A")["carved_bits"] for pool in ("A-B", "A-B#pqc")}
    with pytest.raises(Etsi014Error) as refused:
        master.enc_keys("sae-c", extension_mandatory=[{"qkms_require_qkd": True}])
    assert refused.value.status == 400
    assert refused.value.body["message"] == "not all extension_mandatory request options could be met"
    assert {pool: mixed.pools("A").usage_bits(pool, "A")["carved_bits"] for pool in carved} == carved
    with pytest.raises(Etsi014Error) as unknown:
        master.enc_keys("sae-c", extension_mandatory=[{"qkms_require_teleportation": True}])
    assert unknown.value.body["message"] == "not all extension_mandatory parameters are supported"
    both = master.enc_keys("sae-b", extension_mandatory=[{"qkms_require_qkd": True}, {"qkms_require_pqc": True}])
    assert both[0].extension["qkms_provenance"]["hops"][0]["material"] == "hybrid"
    pqc = master.enc_keys("sae-c", extension_mandatory=[{"qkms_require_pqc": True}])
    assert [h["material"] for h in pqc[0].extension["qkms_provenance"]["hops"]] == ["hybrid", "pqc"]


#: How far ahead of the wall clock (so of node A's offers) the test's own offers are:
#: more than the test's first exchange can take on a loaded machine (a fresh mutual-TLS
#: connection to a busy B), and even, so that the parity (the half they fill) is the
#: clock's. B then refuses A's own offers for that long: the test using it comes last
#: of those on the ``mixed`` network.
OFFER_LEAD_US = 10_000_000


def offer_sender(net: LocalNetwork, signer: str | None = None):
    """A's ML-KEM link end towards B (optionally signing with another key) and A's KM channel."""
    config = load_config(net.manifest["nodes"]["A"]["config"])
    link = next(link for link in config.links if link.id == "A-B")
    section = {k: v for k, v in link.pqc.items() if k != "kind"}
    if signer is not None:
        impostor = Path(config.config_dir) / "pqc" / "impostor.key"
        impostor.write_bytes(key_pair(signer)[0])
        impostor.chmod(0o600)
        section["signing_key"] = str(impostor)
    end = parse_link(section, SourceContext("A", "B", "A-B#pqc", str(config.config_dir)))
    return end, HttpPeerTransport(config)


def test_the_km_channel_refuses_replayed_tampered_reordered_and_unpinned_offers(mixed: LocalNetwork) -> None:
    end, transport = offer_sender(mixed)
    impostor, impostor_transport = offer_sender(mixed, signer="not-A")
    try:
        # Ahead of node A's own offers (its link keeps offering while this test runs): a
        # sequence of "now" can be overtaken by one A sends before this offer reaches B.
        sequence = SequenceClock().next() + OFFER_LEAD_US
        offer = make_offer(end, sequence).message
        assert transport.exchange("B", "A-B#pqc", dict(offer))["type"] == "ml-kem-answer"
        refusals = {}
        tampered = {**make_offer(end, sequence + 3).message, "block_bytes": 4096}
        tampered["exchange_id"] = tampered["exchange_id"][:-1] + ("0" if tampered["exchange_id"][-1] != "0" else "1")
        for name, message in {"replayed": offer, "tampered": tampered,
                              "reordered": make_offer(end, sequence - 2).message,
                              "unpinned": make_offer(impostor, sequence + 5).message}.items():
            with pytest.raises(Unavailable) as caught:
                (impostor_transport if name == "unpinned" else transport).exchange("B", "A-B#pqc", message)
            refusals[name] = caught.value.message
    finally:
        transport.close()
        impostor_transport.close()
    assert "409" in refusals["replayed"] and "replayed or reordered" in refusals["replayed"]
    assert "409" in refusals["reordered"] and "replayed or reordered" in refusals["reordered"]
    assert "409" in refusals["tampered"] and "signature does not verify" in refusals["tampered"]
    assert "401" in refusals["unpinned"] and "not pinned" in refusals["unpinned"]


def test_a_peer_whose_key_is_not_pinned_is_refused(tmp_path: Path) -> None:
    net = LocalNetwork(tmp_path, {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK,
                       policies={("A", "B"): "pqc-only"})
    # B pins some other key than A's: every offer A signs is refused.
    (tmp_path / "nodes" / "B" / "pqc" / "peers" / "A.ml-dsa-65.pub").write_bytes(key_pair("not-A")[1])
    try:
        net.start()
        down = wait_until(lambda: (h := half(net, "A", "A-B#pqc", "A")) and "not pinned" in h.reason and h,
                          "A to report its PQC link refused", 60)
        status = net.client("sae-a").status("sae-b")
        bits = net.pools("A").available_bits("A-B#pqc", "A") + net.pools("B").available_bits("A-B#pqc", "B")
    finally:
        net.close()
    assert down.state == "down" and "401" in down.reason
    assert status["stored_key_count"] == 0 and bits == 0
