"""kms.config: one validation at start-up into frozen objects; errors name the exact path
of the bad setting (DESIGN.md section 7, STYLE.md rule 4)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from kms.config import NodeConfig, load_config, parse_config
from kms.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


def minimal() -> dict[str, Any]:
    """The smallest valid node configuration."""
    return {
        "kme_id": "KME-1",
        "tls": {"cert": "node.crt", "key": "node.key", "ca": "ca.crt"},
        "saes": [{"id": "sae-1"}, {"id": "sae-2"}],
        "kek": {"env": "QKMS_KEK"},
    }


def config_error(data: Any, base_dir: Path = Path(".")) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, base_dir)
    return caught.value.message


def with_change(path: str, value: Any) -> dict[str, Any]:
    """minimal() with the setting at a dotted path (list indexes as numbers) set."""
    data = copy.deepcopy(minimal())
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = data
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[last] = value
    return data


# --- a valid configuration --------------------------------------------------------------


def test_minimal_config_parses_with_defaults(tmp_path: Path) -> None:
    config = parse_config(minimal(), tmp_path)
    assert config.kme_id == "KME-1"
    assert [sae.id for sae in config.saes] == ["sae-1", "sae-2"]
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8443)
    assert config.tls.sae_id_field == "subject_cn"
    limits = config.limits
    assert (limits.key_size_bits, limits.min_key_size_bits, limits.max_key_size_bits) == (256, 64, 8192)
    assert (limits.max_keys_per_request, limits.max_key_count, limits.max_sae_id_count) == (128, 100000, 4)
    assert config.redis.url is None and config.redis.appendfsync == "always"
    assert config.redis.data_dir == tmp_path.resolve() / "data"
    assert config.kek.env == "QKMS_KEK" and config.kek.file is None
    assert config.reservation_ttl_s == 3600
    assert (config.server.worker_class, config.server.workers, config.server.threads) == ("gevent", 3, 8)
    assert (config.server.keepalive_s, config.server.max_request_bytes) == (75, 65536)
    server = config.server
    assert (server.handshake_timeout_s, server.header_timeout_s, server.max_pending_connections_per_ip) == (5, 10, 64)


def test_pending_limit_may_exceed_the_gevent_pool_under_gthread() -> None:
    data = with_change("server", {"worker_class": "gthread", "worker_connections": 16})
    assert parse_config(data).server.max_pending_connections_per_ip == 64


def test_sae_identity_defaults_to_its_id() -> None:
    config = parse_config(with_change("saes.1.cert_identity", "gw.example.org"))
    assert config.saes[0].identity == "sae-1"
    assert config.saes[1].identity == "gw.example.org"
    assert config.sae("sae-2") is config.saes[1]
    assert config.sae("sae-9") is None


@pytest.mark.parametrize(("path", "value"), [
    ("listen.port", 8443),
    ("kme_id", "sae"),
    ("saes.0.foo", 1),
    ("limits.key_size_bits", 100),
])
def test_parse_config_does_not_modify_its_input(path: str, value: Any) -> None:
    data = with_change(path, value)
    before = copy.deepcopy(data)
    try:
        parse_config(data)
    except ConfigError:
        pass
    assert data == before


@pytest.mark.parametrize("mutate", [
    lambda c: setattr(c, "kme_id", "KME-2"),
    lambda c: setattr(c.listen, "port", 1),
    lambda c: setattr(c.limits, "key_size_bits", 512),
    lambda c: setattr(c.saes[0], "id", "other"),
    lambda c: setattr(c.kek, "env", "OTHER"),
    lambda c: setattr(c.redis, "url", "redis://x"),
], ids=["kme_id", "listen.port", "limits", "saes[0].id", "kek.env", "redis.url"])
def test_config_is_frozen(mutate) -> None:
    config = parse_config(minimal())
    with pytest.raises(pydantic.ValidationError):
        mutate(config)
    assert config == parse_config(minimal())


def test_saes_are_an_immutable_tuple() -> None:
    config = parse_config(minimal())
    assert isinstance(config.saes, tuple)


# --- errors name the exact path -------------------------------------------------------------


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("saes.1.cert_identity", "", r"saes\[1\]\.cert_identity: "),
    ("saes.1.cert_identity", "x" * 257, r"saes\[1\]\.cert_identity: "),
    ("saes.1.cert_identity", 5, r"saes\[1\]\.cert_identity: "),
    ("saes.0.id", "bad id", r"saes\[0\]\.id: "),
    ("saes.1.id", "a/b", r"saes\[1\]\.id: "),
    ("kme_id", "-KME", r"kme_id: "),
    ("kme_id", "x" * 129, r"kme_id: "),
    ("limits.key_size_bits", 100, r"limits\.key_size_bits: must be a multiple of 8"),
    ("limits.min_key_size_bits", 60, r"limits\.min_key_size_bits: must be a multiple of 8"),
    ("limits.max_key_size_bits", 8191, r"limits\.max_key_size_bits: must be a multiple of 8"),
    ("limits.max_key_size_bits", 65544, r"limits\.max_key_size_bits: "),
    ("limits.key_size_bits", 0, r"limits\.key_size_bits: "),
    ("limits.max_keys_per_request", 0, r"limits\.max_keys_per_request: "),
    ("limits.max_keys_per_request", 10001, r"limits\.max_keys_per_request: "),
    ("limits.max_sae_id_count", -1, r"limits\.max_sae_id_count: "),
    ("limits.max_sae_id_count", 65, r"limits\.max_sae_id_count: "),
    ("limits.max_key_count", 0, r"limits\.max_key_count: "),
    ("listen.port", 65536, r"listen\.port: "),
    ("listen.port", -1, r"listen\.port: "),
    ("listen.port", "https", r"listen\.port: "),
    ("listen.port", 0, r"listen\.port: "),
    ("tls.sae_id_field", "subject_o", r"tls\.sae_id_field: "),
    ("redis.appendfsync", "no", r"redis\.appendfsync: "),
    ("reservation_ttl_s", 0, r"reservation_ttl_s: "),
    ("reservation_ttl_s", 30 * 24 * 3600 + 1, r"reservation_ttl_s: "),
    ("server.workers", 0, r"server\.workers: "),
    ("server.threads", 257, r"server\.threads: "),
    ("server.worker_class", "sync", r"server\.worker_class: "),
    ("server.worker_connections", 0, r"server\.worker_connections: "),
    ("server.keepalive_s", 0, r"server\.keepalive_s: "),
    ("server.max_request_bytes", 1023, r"server\.max_request_bytes: "),
    ("server.handshake_timeout_s", 0, r"server\.handshake_timeout_s: "),
    ("server.handshake_timeout_s", 301, r"server\.handshake_timeout_s: "),
    ("server.header_timeout_s", 0, r"server\.header_timeout_s: "),
    ("server.header_timeout_s", 301, r"server\.header_timeout_s: "),
    ("server.max_pending_connections_per_ip", 0, r"server\.max_pending_connections_per_ip: "),
    ("server.max_pending_connections_per_ip", 1000,
     r"server: max_pending_connections_per_ip must be below worker_connections"),
])
def test_error_names_the_exact_path(path: str, value: Any, expected: str) -> None:
    message = config_error(with_change(path, value))
    assert re.fullmatch(expected + r"[^;]*", message), message


@pytest.mark.parametrize(("data", "expected"), [
    (with_change("listen.hots", "0.0.0.0"), "listen.hots: "),
    (with_change("saes.1.cert_identiy", "x"), "saes[1].cert_identiy: "),
    (with_change("limits.key_size", 256), "limits.key_size: "),
    (with_change("kek.value", "00" * 32), "kek.value: "),
    (with_change("no_such_section", {}), "no_such_section: "),
])
def test_unknown_fields_are_rejected_with_their_path(data: dict, expected: str) -> None:
    message = config_error(data)
    assert message.startswith(expected), message
    assert "00" * 32 not in message


@pytest.mark.parametrize("missing", ["kme_id", "tls", "kek"])
def test_required_settings_are_named(missing: str) -> None:
    data = minimal()
    del data[missing]
    assert config_error(data).startswith(f"{missing}: ")


def test_required_tls_file_is_named() -> None:
    data = minimal()
    del data["tls"]["ca"]
    assert config_error(data).startswith("tls.ca: ")


def test_a_relay_only_node_needs_no_sae() -> None:
    assert parse_config(with_change("saes", [])).saes == ()


def test_duplicate_sae_ids_are_named() -> None:
    data = with_change("saes", [{"id": "sae-1"}, {"id": "sae-2"}, {"id": "sae-1"}])
    assert config_error(data) == "saes: duplicate SAE id: sae-1"


def test_duplicate_sae_identities_are_named() -> None:
    data = with_change("saes", [{"id": "sae-1"}, {"id": "sae-2", "cert_identity": "sae-1"}])
    assert config_error(data) == "saes: duplicate SAE identity: sae-1"


@pytest.mark.parametrize("kek", [{}, {"file": "kek.hex", "env": "QKMS_KEK"}, {"file": None, "env": None}])
def test_kek_needs_exactly_one_of_file_or_env(kek: dict) -> None:
    assert config_error(with_change("kek", kek)) == "kek: give exactly one of file, env or pkcs11"


@pytest.mark.parametrize("kek", [{"file": "kek.hex"}, {"env": "QKMS_KEK"}])
def test_kek_with_one_source_parses(kek: dict) -> None:
    parsed = parse_config(with_change("kek", kek)).kek
    assert (parsed.file is None, parsed.env) == ("file" not in kek, kek.get("env"))


@pytest.mark.parametrize(("minimum", "default", "maximum"), [(64, 56, 8192), (64, 8200, 8192), (512, 256, 8192),
                                                                (64, 256, 128)])
def test_key_sizes_must_be_ordered(minimum: int, default: int, maximum: int) -> None:
    data = with_change("limits", {"min_key_size_bits": minimum, "key_size_bits": default,
                                  "max_key_size_bits": maximum})
    assert config_error(data) == "limits: need min_key_size_bits <= key_size_bits <= max_key_size_bits"


@pytest.mark.parametrize("sizes", [(64, 64, 64), (8, 256, 65536), (64, 8192, 8192)])
def test_ordered_key_sizes_parse(sizes: tuple[int, int, int]) -> None:
    minimum, default, maximum = sizes
    limits = parse_config(with_change("limits", {"min_key_size_bits": minimum, "key_size_bits": default,
                                                 "max_key_size_bits": maximum})).limits
    assert (limits.min_key_size_bits, limits.key_size_bits, limits.max_key_size_bits) == sizes


def test_every_error_is_reported_at_once() -> None:
    data = with_change("listen.port", 70000)
    data["limits"] = {"key_size_bits": 100}
    parts = config_error(data).split("; ")
    assert {part.split(":")[0] for part in parts} == {"listen.port", "limits.key_size_bits"}


@pytest.mark.parametrize("data", [None, [], "kme_id: KME-1", 42])
def test_a_document_that_is_not_a_mapping_is_rejected(data: Any) -> None:
    assert config_error(data) == "(root): must be a mapping"


# --- load_config --------------------------------------------------------------------------


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_config_resolves_relative_paths_against_the_file(tmp_path: Path, monkeypatch) -> None:
    data = with_change("kek", {"file": "secrets/kek.hex"})
    data["tls"]["ca"] = "/etc/qkms/ca.crt"
    data["redis"] = {"data_dir": "../state"}
    path = write_yaml(tmp_path / "conf" / "node.yaml", data)
    monkeypatch.chdir(tmp_path.parent)
    config = load_config(str(path.relative_to(tmp_path.parent)))
    base = (tmp_path / "conf").resolve()
    assert config.tls.cert == base / "node.crt"
    assert config.tls.key == base / "node.key"
    assert config.tls.ca == Path("/etc/qkms/ca.crt")
    assert config.kek.file == base / "secrets" / "kek.hex"
    assert config.redis.data_dir == base / ".." / "state"
    assert config.redis.data_dir.resolve() == tmp_path.resolve() / "state"


def test_load_config_default_data_dir_is_next_to_the_file(tmp_path: Path) -> None:
    config = load_config(write_yaml(tmp_path / "node.yaml", minimal()))
    assert config.redis.data_dir == tmp_path.resolve() / "data"


def test_load_config_reports_validation_errors_by_path(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "node.yaml", with_change("saes.1.cert_identity", ""))
    with pytest.raises(ConfigError, match=r"^saes\[1\]\.cert_identity: "):
        load_config(path)


def test_load_config_rejects_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("kme_id: KME-1\nsaes: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}: not valid YAML")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_load_config_rejects_a_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"must be a mapping"):
        load_config(path)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read"):
        load_config(tmp_path / "absent.yaml")


# --- the example configuration --------------------------------------------------------------


def _setting_names(model: type[pydantic.BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            names |= _setting_names(annotation)
    return names


@pytest.fixture
def example_path() -> Path:
    assert EXAMPLE.is_file(), f"{EXAMPLE} is committed and must be there"
    return EXAMPLE


def test_example_config_is_valid(example_path: Path) -> None:
    config = load_config(example_path)
    assert config.tls.cert.is_absolute()
    assert config.kek.file is None or config.kek.file.is_absolute()


def test_example_config_shows_every_setting(example_path: Path) -> None:
    text = example_path.read_text()
    names = _setting_names(NodeConfig) | {"cert_identity", "id"}
    missing = sorted(name for name in names if not re.search(rf"^\s*(- )?#?\s*{name}:", text, re.M))
    assert not missing, f"settings not shown in {example_path.name}: {missing}"


def test_example_config_holds_no_inline_secret(example_path: Path) -> None:
    text = example_path.read_text()
    assert not re.search(r"\b[0-9a-fA-F]{64}\b", text)
    assert "PRIVATE KEY" not in text
