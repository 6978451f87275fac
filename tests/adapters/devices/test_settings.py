"""A device-fed link's section: profile defaults, overrides, both ends in one section,
and every error naming its setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.devices.settings import Etsi004Settings, Etsi014Settings, check_files, parse_settings, resolve_role
from kms.errors import ConfigError
from kms.sources import SourceContext

A, B = SourceContext("KME-A", "KME-B", "A-B", "/etc/qkms"), SourceContext("KME-B", "KME-A", "A-B", "/etc/qkms")
BASE = {"url": "https://10.0.0.5:8443", "sae_id": "CONSA", "peer_sae_id": "CONSB", "cert": "dev/node.crt",
        "key": "dev/node.key", "ca": "dev/ca.crt"}


def parse014(section: dict, context: SourceContext = A) -> Etsi014Settings:
    return parse_settings(section, context, "etsi014", "qkd-device", "etsi014-generic")


def test_the_profile_gives_defaults_and_the_section_overrides_them() -> None:
    idq = parse014({**BASE, "profile": "idq-cerberis-xgr"})
    assert (idq.key_size_bits, idq.keys_per_request, idq.enc_keys_method) == (256, 1, "GET")
    assert parse014({**BASE, "profile": "idq-cerberis-xgr", "keys_per_request": 4}).keys_per_request == 4


def test_relative_tls_paths_resolve_against_the_node_directory() -> None:
    settings = parse014(BASE)
    assert settings.cert == Path("/etc/qkms/dev/node.crt") and settings.ca == Path("/etc/qkms/dev/ca.crt")


def test_the_expected_certificate_name_defaults_to_the_url_host() -> None:
    assert parse014(BASE).expected_name == "10.0.0.5"
    assert parse014({**BASE, "server_name": "qkd-a.example"}).expected_name == "qkd-a.example"


def test_one_section_can_describe_both_ends() -> None:
    b_end = {**BASE, "sae_id": "CONSB", "peer_sae_id": "CONSA", "url": "https://10.0.0.6:8443"}
    section = {"profile": "toshiba", "ends": {"KME-A": BASE, "KME-B": b_end}}
    a, b = parse014(section, A), parse014(section, B)
    assert (a.sae_id, b.sae_id, b.url) == ("CONSA", "CONSB", "https://10.0.0.6:8443")


@pytest.mark.parametrize("section, message", [
    ({**BASE, "url": "http://10.0.0.5"}, "url: String should match pattern"),
    ({**BASE, "timeout_s": 0}, "timeout_s: Input should be greater than 0"),
    ({**BASE, "colour": "blue"}, "colour: unknown setting for the qkd-device source"),
    ({**BASE, "profile": "acme"}, "profile: unknown profile 'acme'"),
    ({**BASE, "profile": "etsi004-push"},
     "profile: 'etsi004-push' speaks etsi004; the qkd-device source speaks etsi014"),
    ({k: v for k, v in BASE.items() if k != "sae_id"}, "sae_id: Field required"),
    ({**BASE, "key_size_bits": 100}, "key_size_bits: Input should be a multiple of 8"),
    ({**BASE, "keys_per_block": 1, "key_size_bits": 8}, "must exceed the equality check's tag"),
    ({**BASE, "dec_keys_method": "GET"}, "dec_keys_method GET fetches one key per request"),
    ({**BASE, "ends": {"KME-A": {"url": "ftp://x"}}}, "ends.KME-A.url: String should match pattern"),
    ({**BASE, "ends": ["KME-A"]}, "ends: must map KME_IDs to settings"),
])
def test_errors_name_the_setting(section: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse014(section)
    assert message in caught.value.message


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    settings = parse014({**BASE, "cert": str(tmp_path / "nope.crt")})
    with pytest.raises(ConfigError, match="cert: file not found"):
        check_files(settings)


def test_roles_follow_the_kme_ids_unless_set() -> None:
    settings = parse014(BASE)
    assert (resolve_role(settings, A), resolve_role(settings, B)) == ("master", "slave")
    assert resolve_role(parse014({**BASE, "role": "slave"}), A) == "slave"
    with pytest.raises(ConfigError, match="serves a link"):
        resolve_role(settings, SourceContext("KME-A"))


def test_the_push_profile_gives_its_chunk_size() -> None:
    push = parse_settings({k: v for k, v in BASE.items() if "sae" not in k}, A, "etsi004", "qkd-device-004",
                          "etsi004-push")
    assert isinstance(push, Etsi004Settings) and (push.key_chunk_size_bytes, push.ttl_s) == (32, 600)
