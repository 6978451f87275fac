"""The link manager's link sources (qkms/linkd.py): validated and built under their
``links[i].source`` path, never started."""

from __future__ import annotations

import threading

import pytest

from kms.config import parse_config
from kms.errors import ConfigError
from qkms.linkd import build_link_ends, validate_link_sources


def node_config(links: list[dict], kme_id: str = "A"):
    nodes = sorted({n for link in links for n in link["nodes"]} | {kme_id, "B"})
    return parse_config({
        "kme_id": kme_id, "tls": {"cert": "c", "key": "k", "ca": "ca"}, "kek": {"env": "X"},
        "peers": [{"kme_id": n, "url": f"https://127.0.0.1:{9000 + i}"} for i, n in enumerate(nodes) if n != kme_id],
        "links": links,
    })


# --- link source settings ------------------------------------------------------------------

def test_a_bad_own_link_setting_is_named_by_its_full_path():
    config = node_config([{"id": "B-C", "nodes": ["B", "C"]},
                          {"id": "A-B", "nodes": ["A", "B"], "source": {"kind": "simulated", "length_km": -1}}])
    threads = threading.active_count()
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.length_km: "):
        validate_link_sources(config)
    with pytest.raises(ConfigError, match=r"^links\[1\]\.source\.length_km: "):
        build_link_ends(config)
    assert threading.active_count() == threads


def test_links_between_other_nodes_need_only_a_known_kind():
    remote_with_odd_settings = {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "simulated", "length_km": -1}}
    validate_link_sources(node_config([remote_with_odd_settings]))
    unknown = {"id": "B-C", "nodes": ["B", "C"], "source": {"kind": "teleporter"}}
    with pytest.raises(ConfigError, match=r"^links\[0\]\.source\.kind: unknown key source 'teleporter'"):
        validate_link_sources(node_config([unknown]))


def test_valid_sources_are_built_but_not_started():
    config = node_config([{"id": "A-B", "nodes": ["A", "B"], "source": {"kind": "simulated"}}])
    threads = threading.active_count()
    validate_link_sources(config)
    ends = build_link_ends(config)
    assert [end.peer for end in ends] == ["B"]
    assert threading.active_count() == threads
