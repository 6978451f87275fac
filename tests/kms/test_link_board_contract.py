"""The LinkBoard contract (kms/link_board.py), run against every backend: the in-memory
twin and RedisLinkBoard on both kinds of Redis."""

from __future__ import annotations

import pytest

from kms.link_board import LinkBoard, LinkHalf
from tests.support.backends import Backend

HALF = LinkHalf("A--B", "KME-A", 4096, "degraded", "QBER 9.0%", {"qber": 0.09}, 1_767_225_600.5,
                ("qkd-sim",), ("decoy-bb84",), (1, 3))


@pytest.fixture
def board(backend: Backend) -> LinkBoard:
    return backend.open("KME-A").board


def test_a_new_board_is_empty(board: LinkBoard) -> None:
    assert board.read() == {}


def test_published_halves_read_back_equal(board: LinkBoard) -> None:
    other = LinkHalf("A--B", "KME-B", 0, "down", "no data")
    board.publish([HALF, other])
    assert board.read() == {("A--B", "KME-A"): HALF, ("A--B", "KME-B"): other}


def test_a_newer_observation_replaces_the_older_one(board: LinkBoard) -> None:
    board.publish([HALF])
    newer = LinkHalf("A--B", "KME-A", 0, "down", "QBER 25.7% above abort threshold", {}, HALF.observed_at + 1)
    board.publish([newer])
    assert board.read() == {("A--B", "KME-A"): newer}


def test_publishing_nothing_changes_nothing(board: LinkBoard) -> None:
    board.publish([HALF])
    board.publish([])
    assert board.read() == {("A--B", "KME-A"): HALF}


def test_each_node_has_its_own_board(backend: Backend, board: LinkBoard) -> None:
    board.publish([HALF])
    assert backend.open("KME-B").board.read() == {}
    assert backend.open("KME-A").board.read() == {("A--B", "KME-A"): HALF}
