"""Link-state gossip (kms/link_gossip.py) on simulated networks: every node learns a
change within as many rounds as it is hops away, and a node sends one message per
neighbour per round at most, so the messages grow with the links, not with the square
of the nodes."""

from __future__ import annotations

import pytest

from kms.link_board import LinkHalf
from kms.link_gossip import Gossip, significant
from tests.support.gossip_sim import GossipNetwork, grid


def test_a_change_reaches_every_node_of_a_grid_within_its_diameter():
    net = GossipNetwork(grid(5))
    for _ in range(3):
        net.round()
    # r0c0 -> r4c4 is 8 hops; the owner's push is round 1, each hop one more round
    assert net.rounds_until_known_everywhere("r0c0-r0c1", "r0c0", "down") <= 9


def test_a_node_sends_at_most_one_message_per_neighbour_a_round():
    links = grid(4)
    net = GossipNetwork(links)
    for _ in range(20):
        assert net.round().messages <= 2 * len(links)


def test_an_unchanged_network_is_refreshed_every_refresh_interval_not_every_round():
    net = GossipNetwork([("A", "B")])
    for _ in range(10):
        net.round()
    sent = [net.round().halves for _ in range(12)]  # 6 s of 0.5 s rounds; refresh every 3 s
    assert sent.count(0) >= 8 and sum(sent) == 4  # each end's half, twice


def test_a_half_is_not_sent_to_the_same_neighbour_twice_per_version():
    gossip = Gossip("A", clock=lambda: 0.0)
    half = LinkHalf("A-B", "A", 100, observed_at=1.0)
    gossip.advertise([half])
    board = {("B-C", "B"): LinkHalf("B-C", "B", 5, observed_at=1.0),
             ("C-D", "C"): LinkHalf("C-D", "C", 5, observed_at=1.0)}
    first = gossip.outbox("B", board, {"A-B": "B"}.get)
    assert {(h.link_id, h.owner) for h in first} == {("A-B", "A"), ("C-D", "C")}  # never B's own back to B
    gossip.delivered("B", first)
    assert gossip.outbox("B", board, {"A-B": "B"}.get) == []


@pytest.mark.parametrize("old, new, tell", [
    (LinkHalf("L", "A", 1000, observed_at=0.0), LinkHalf("L", "A", 1050, observed_at=1.0), False),
    (LinkHalf("L", "A", 1000, observed_at=0.0), LinkHalf("L", "A", 1200, observed_at=1.0), True),
    (LinkHalf("L", "A", 1000, observed_at=0.0), LinkHalf("L", "A", 1000, "down", observed_at=1.0), True),
    (LinkHalf("L", "A", 1000, observed_at=0.0), LinkHalf("L", "A", 1000, observed_at=3.0), True),
    (LinkHalf("L", "A", 0, observed_at=0.0), LinkHalf("L", "A", 1, observed_at=1.0), True),
])
def test_only_noticeable_changes_are_told_before_the_refresh(old, new, tell):
    assert significant(new, old) is tell
