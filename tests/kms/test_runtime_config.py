"""A node's runtime configuration (kms/runtime_config.py): the file's configuration with
the admin changes applied in the log's total order, validated by the config models;
changes that do not fit are skipped and named; ``effective_at`` is honoured; the view
is re-read only when the log moves or an activation comes due."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms.changes import Change
from kms.config import parse_config
from kms.runtime_config import Eavesdropper, InvalidChange, RuntimeConfig, apply_changes, check_change
from kms.storage import open_memory_storage

FILE = {
    "kme_id": "A", "tls": {"cert": "n.crt", "key": "n.key", "ca": "ca.crt"}, "kek": {"env": "K"},
    "saes": [{"id": "sae-a"}],
    "peers": [{"kme_id": "B", "url": "https://127.0.0.1:1", "saes": ["sae-b"]}],
    "links": [{"id": "A-B", "nodes": ["A", "B"], "policy": "qkd-then-pqc",
               "source": {"kind": "simulated", "seed_file": "links/A-B.seed"},
               "pqc": {"kind": "ml-kem", "signing_key": "pqc/k"}}],
}
BASE = parse_config(FILE, Path("/etc/qkms/A"))


def change(version: int, op: str, origin: str = "A", effective_at: float = 0.0, **args) -> Change:
    return Change(f"c-{version}-{origin}-{op}", version, origin, "ops", 1000.0 + version, op, args, effective_at)


def test_no_change_is_the_file_configuration():
    view = apply_changes(BASE, [])
    assert view.config == BASE and view.config.config_dir == BASE.config_dir
    assert view.skipped == () and view.eavesdroppers == {} and view.destroys == {}


def test_saes_are_added_here_and_at_peers_and_removed():
    view = apply_changes(BASE, [change(1, "put-sae", id="sae-a2", node="A"),
                                change(2, "put-sae", id="sae-b2", node="B"),
                                change(3, "remove-sae", id="sae-b", node="B")])
    assert [s.id for s in view.config.saes] == ["sae-a", "sae-a2"]
    assert view.config.peer("B").saes == ("sae-b2",)
    assert view.config.node_of_sae("sae-b") is None and view.removed_saes == {"sae-b": 1003.0}


def test_a_policy_switch_drops_and_restores_source_sections():
    qkd_only = apply_changes(BASE, [change(1, "set-policy", link="A-B", policy="qkd-only")]).config.links[0]
    assert qkd_only.policy == "qkd-only" and qkd_only.pqc is None and qkd_only.roles == ("qkd",)
    back = apply_changes(BASE, [change(1, "set-policy", link="A-B", policy="qkd-only"),
                                change(2, "set-policy", link="A-B", policy="hybrid")]).config.links[0]
    assert back.pqc == {"kind": "ml-kem", "signing_key": "pqc/k"} and back.policy == "hybrid"
    fallback = apply_changes(BASE, [change(1, "set-policy", link="A-B", policy="qkd-then-pqc",
                                           fallback_below_bits=4096)]).config.links[0]
    assert fallback.fallback_below_bits == 4096


def test_a_policy_needing_a_section_the_link_never_had_is_refused_naming_it():
    pqc_only = {**FILE["links"][0], "policy": "pqc-only"}
    del pqc_only["source"]
    base = parse_config({**FILE, "links": [pqc_only]}, Path("/etc/qkms/A"))
    with pytest.raises(InvalidChange, match=r"^links\[0\]\.source: a hybrid link needs a source section"):
        check_change(base, [], change(1, "set-policy", link="A-B", policy="hybrid"))
    # the section it was configured with comes back after a round trip
    round_trip = apply_changes(BASE, [change(1, "set-policy", link="A-B", policy="pqc-only"),
                                      change(2, "set-policy", link="A-B", policy="hybrid")])
    assert round_trip.config.links[0].source == FILE["links"][0]["source"]


def test_changes_apply_in_version_then_origin_order_whatever_their_arrival():
    late, early = change(2, "set-link-state", link="A-B", state="paused"), \
        change(1, "set-link-state", link="A-B", state="draining")
    tie = change(2, "set-link-state", origin="B", link="A-B", state="active")
    assert apply_changes(BASE, [late, early]).config.links[0].state == "paused"
    assert apply_changes(BASE, [tie, late, early]).config.links[0].state == "active"  # (2, "B") after (2, "A")


def test_a_change_that_does_not_fit_is_skipped_with_its_reason():
    bad = change(2, "put-sae", id="sae-x", node="Q")
    view = apply_changes(BASE, [change(1, "put-sae", id="sae-a2", node="A"), bad,
                                change(3, "set-link-state", link="A-B", state="paused")])
    assert [(c.change_id, why) for c, why in view.skipped] == [(bad.change_id, "node: unknown node Q")]
    assert [s.id for s in view.config.saes] == ["sae-a", "sae-a2"] and view.config.links[0].state == "paused"


def test_a_change_applies_from_its_effective_at():
    switch = change(1, "set-policy", link="A-B", policy="hybrid", effective_at=2000.0)
    before, after = apply_changes(BASE, [switch], now=1999.0), apply_changes(BASE, [switch], now=2000.0)
    assert before.config.links[0].policy == "qkd-then-pqc" and before.next_activation == 2000.0
    assert after.config.links[0].policy == "hybrid" and after.next_activation is None


def test_this_node_itself_is_never_replaced_by_a_peer_entry():
    view = apply_changes(BASE, [change(1, "put-peer", kme_id="A", url="https://evil:1", saes=[]),
                                change(2, "put-peer", kme_id="C", url="https://127.0.0.1:3", saes=["sae-c"])])
    assert [p.kme_id for p in view.config.peers] == ["B", "C"] and view.config.kme_id == "A"


def test_a_put_link_gives_each_end_its_own_sections():
    link = {"id": "A-C", "nodes": ["A", "C"], "source": {"kind": "simulated"}}
    at = {"A": {"source": {"kind": "simulated", "seed_file": "links/A-C.seed"}}}
    view = apply_changes(BASE, [change(1, "put-peer", kme_id="C", url="https://127.0.0.1:3", saes=[]),
                                change(2, "put-link", link=link, at=at)])
    assert view.config.links[1].source == {"kind": "simulated", "seed_file": "links/A-C.seed"}
    assert [l.id for l in view.config.local_links()] == ["A-B", "A-C"]


def test_destroying_pools_pauses_the_link_and_records_the_change():
    destroy = change(2, "destroy-pools", link="A-B")
    view = apply_changes(BASE, [change(1, "set-link-state", link="A-B", state="draining"), destroy])
    assert view.config.links[0].state == "paused" and view.destroys == {"A-B": (destroy.change_id,)}


def test_eavesdroppers_switch_on_and_off():
    on = apply_changes(BASE, [change(1, "set-eavesdropper", link="A-B", attack="intercept-resend", fraction=0.5)])
    assert on.eavesdroppers == {"A-B": Eavesdropper("intercept-resend", 0.5)}
    off = apply_changes(BASE, [*on.changes, change(2, "set-eavesdropper", link="A-B", attack=None)])
    assert off.eavesdroppers == {}


def test_the_view_is_reread_only_when_the_log_moves_or_an_activation_is_due():
    storage = open_memory_storage("A")
    now = [1000.0]
    runtime = RuntimeConfig(BASE, storage.changes, clock=lambda: now[0])
    first = runtime.view()
    assert runtime.view() is first
    storage.changes.add([change(1, "set-policy", link="A-B", policy="hybrid", effective_at=1002.0)])
    pending = runtime.view()
    assert pending is not first and pending.config.links[0].policy == "qkd-then-pqc"
    assert runtime.view() is pending
    now[0] = 1002.5
    assert runtime.view().config.links[0].policy == "hybrid"
