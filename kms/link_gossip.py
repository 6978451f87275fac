"""Link-state gossip: what one node tells each of its neighbours about link halves.

Nodes no longer poll every peer. Each node's link manager *pushes* to its neighbours
(the other ends of its links) the link halves they have not heard of yet: its own,
whenever one changed noticeably (state, reason, sources, confirmed blocks, or pool
level by more than ``SIGNIFICANT_CHANGE``) and at least every ``REFRESH_S`` so they
stay fresh; and other nodes' halves it has learnt and not yet passed on (flooding,
as OSPF floods link-state advertisements: a half travels each edge at most once per
version, its owner's ``observed_at`` on its own clock: ``LinkHalf.version``). A push is
one message per neighbour per round, whatever it carries, so the messages a network
sends grow with its links, not with the square of its nodes (docs/operations.md, "How
far link-state gossip scales").

``held_peer_sequences`` (which of the other end's blocks this owner holds) only
matter to the link's other end: an owner sends them there and nowhere else, and a
node drops them from any half it did not get from the half's owner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from kms.link_board import LinkHalf

#: Most seconds between two advertisements of an unchanged own half (below the
#: board's STALE_AFTER_S, so a half never looks stale while its owner lives).
REFRESH_S = 3.0
#: A pool level that moved by more than this fraction is worth telling.
SIGNIFICANT_CHANGE = 0.10

Key = tuple[str, str]


def _key(half: LinkHalf) -> Key:
    return half.link_id, half.owner


def significant(new: LinkHalf, old: LinkHalf | None, refresh_s: float = REFRESH_S) -> bool:
    """Whether ``new`` says enough more than ``old`` (the last one advertised) to tell."""
    if old is None or new.observed_at - old.observed_at >= refresh_s:
        return True
    if (new.state, new.reason, new.sources, new.algorithms) != (old.state, old.reason, old.sources, old.algorithms):
        return True
    if new.held_peer_sequences != old.held_peer_sequences:
        return True
    before, after = old.available_bits, new.available_bits
    return (before == 0) != (after == 0) or abs(after - before) > SIGNIFICANT_CHANGE * max(before, 1)


class Gossip:
    """One node's gossip state: its own halves as last advertised, and which version of
    every half each neighbour was sent."""

    def __init__(self, kme_id: str, refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.time):
        self.kme_id = kme_id
        self._refresh_s = refresh_s
        self._clock = clock
        self._advertised: dict[Key, LinkHalf] = {}
        self._sent: dict[str, dict[Key, float]] = {}
        self._last_push: dict[str, float] = {}

    def advertise(self, own: Iterable[LinkHalf]) -> int:
        """Take this node's current halves; those worth telling replace the advertised
        ones. Returns how many did."""
        changed = 0
        for half in own:
            if significant(half, self._advertised.get(_key(half)), self._refresh_s):
                self._advertised[_key(half)] = half
                changed += 1
        return changed

    def forget_own(self, keep: Iterable[Key]) -> None:
        """Stop advertising own halves not in ``keep`` (a link removed or a pool dropped)."""
        keep = set(keep)
        self._advertised = {key: half for key, half in self._advertised.items() if key in keep}

    def outbox(self, neighbour: str, board: Mapping[Key, LinkHalf], other_end: Callable[[str], str | None]) -> list[LinkHalf]:
        """What ``neighbour`` has not been sent yet: this node's advertised halves (with
        their confirmed blocks if ``neighbour`` is the link's other end, as
        ``other_end(link_id)`` says) and other nodes' halves from ``board``, never the
        neighbour's own."""
        sent = self._sent.get(neighbour, {})
        out = [half if other_end(half.link_id) == neighbour else replace(half, held_peer_sequences=())
               for key, half in self._advertised.items() if sent.get(key, -1.0) < half.version]
        out += [replace(half, held_peer_sequences=()) for key, half in board.items()
                if half.owner not in (self.kme_id, neighbour) and sent.get(key, -1.0) < half.version]
        return out

    def delivered(self, neighbour: str, halves: Iterable[LinkHalf]) -> None:
        """Record that ``neighbour`` accepted ``halves`` (a failed push records nothing:
        the same halves, or newer ones, go next round)."""
        self._last_push[neighbour] = self._clock()
        sent = self._sent.setdefault(neighbour, {})
        for half in halves:
            sent[_key(half)] = max(sent.get(_key(half), -1.0), half.version)

    def refresh_due(self, neighbour: str) -> bool:
        """Whether ``neighbour`` should hear from this node now even with nothing new
        (every push also compares the two nodes' change logs)."""
        last = self._last_push.get(neighbour)
        return last is None or self._clock() - last >= self._refresh_s
