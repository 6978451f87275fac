"""Node configuration: YAML validated once, at start-up, into immutable objects.

Every validation error names the path of the offending setting, e.g.
``saes[2].cert_identity: ...``. Relative file paths are resolved against the
directory of the configuration file.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from kms.errors import ConfigError
from kms.ids import ENTITY_ID_PATTERN

SaeIdField = Literal["subject_cn", "san_uri", "san_dns", "serial"]
#: Which sources serve a link (docs/pqc.md, "Link policies").
LinkPolicy = Literal["qkd-only", "qkd-then-pqc", "hybrid", "pqc-only"]
#: A link's pools: one per source role, the QKD pool under the link's id.
PoolRole = Literal["qkd", "pqc"]
ROLES_BY_POLICY: dict[str, tuple[PoolRole, ...]] = {
    "qkd-only": ("qkd",), "qkd-then-pqc": ("qkd", "pqc"), "hybrid": ("qkd", "pqc"), "pqc-only": ("pqc",)}
#: The longest key a hybrid link can carry: CatKDF with HKDF-SHA-256 (kms/catkdf.py).
MAX_HYBRID_KEY_BITS = 255 * 32 * 8
#: ``active``: its sources feed its pools and routes use it; ``draining``: no feeding,
#: routes use what is left; ``paused``: neither (docs/operations.md).
LinkState = Literal["active", "draining", "paused"]


def pool_id(link_id: str, role: PoolRole) -> str:
    """The pool of ``link_id``'s source ``role``: the link id for QKD, ``<link>#pqc`` for PQC
    (``#`` is no ID character, so no link id looks like a PQC pool)."""
    return link_id if role == "qkd" else f"{link_id}#pqc"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ListenConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(8443, ge=1, le=65535)


class TlsConfig(_Frozen):
    cert: Path
    key: Path
    ca: Path
    sae_id_field: SaeIdField = "subject_cn"
    #: The CA's certificate revocation list (``qkms pki revoke`` writes it); client
    #: certificates it revokes are refused, and a changed file is taken without a restart.
    crl: Path | None = None


class SaeConfig(_Frozen):
    id: str = Field(pattern=ENTITY_ID_PATTERN)
    cert_identity: str | None = Field(None, min_length=1, max_length=256)

    @property
    def identity(self) -> str:
        """The certificate field value that maps to this SAE (defaults to its id)."""
        return self.cert_identity or self.id


class LimitsConfig(_Frozen):
    key_size_bits: int = Field(256, gt=0)
    min_key_size_bits: int = Field(64, gt=0)
    max_key_size_bits: int = Field(8192, gt=0, le=65536)
    max_keys_per_request: int = Field(128, ge=1, le=10000)
    max_key_count: int = Field(100000, ge=1)
    max_sae_id_count: int = Field(4, ge=0, le=64)
    #: Per master SAE: keys it may hold waiting for slaves at this node, and link material
    #: its requests may use per minute at this node (so one SAE cannot starve the others).
    max_pending_keys_per_sae: int = Field(10_000, ge=1)
    max_link_bits_per_sae_per_minute: int = Field(64 * 1024 * 1024, ge=8)
    #: Per SAE, across every worker and replica of the node (null: no limit): requests
    #: per second (a token bucket of ``request_burst_per_sae`` tokens) and requests in
    #: progress at once. Beyond either: 503 (ETSI 014 has no 429; docs/security.md).
    requests_per_s_per_sae: float | None = Field(500.0, gt=0)
    request_burst_per_sae: int = Field(1000, ge=1)
    concurrent_requests_per_sae: int | None = Field(32, ge=1)

    @field_validator("key_size_bits", "min_key_size_bits", "max_key_size_bits")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError("must be a multiple of 8")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "LimitsConfig":
        if not self.min_key_size_bits <= self.key_size_bits <= self.max_key_size_bits:
            raise ValueError("need min_key_size_bits <= key_size_bits <= max_key_size_bits")
        if self.max_pending_keys_per_sae < self.max_keys_per_request:
            raise ValueError("max_pending_keys_per_sae must allow max_keys_per_request keys")
        largest_bits = self.max_keys_per_request * self.max_key_size_bits * (1 + self.max_sae_id_count)
        if self.max_link_bits_per_sae_per_minute < largest_bits:
            raise ValueError("max_link_bits_per_sae_per_minute must allow the largest request "
                             f"(max_keys_per_request * max_key_size_bits * (1 + max_sae_id_count) = {largest_bits})")
        return self


HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$")]


class SentinelConfig(_Frozen):
    """Redis Sentinel: the sentinels to ask and the name of the master they watch."""

    master_name: str = Field(min_length=1)
    nodes: tuple[HostPort, ...] = Field(min_length=1)
    db: int = Field(0, ge=0)
    password_env: str | None = None


class ClusterConfig(_Frozen):
    """Redis Cluster: some of its nodes (the client learns the rest)."""

    nodes: tuple[HostPort, ...] = Field(min_length=1)
    password_env: str | None = None


class RedisConfig(_Frozen):
    """Where the node's state lives: an external Redis (``url``), Redis Sentinel or Redis
    Cluster; none of them: the embedded server in ``data_dir``."""

    url: str | None = Field(None, pattern=r"^(redis|rediss|unix)://")
    sentinel: SentinelConfig | None = None
    cluster: ClusterConfig | None = None
    data_dir: Path = Path("data")
    appendfsync: Literal["always", "everysec"] = "always"
    #: After each write that decides a key's fate, wait until this many replicas hold it
    #: (Redis WAIT), else fail the request: what asynchronous replication could lose at
    #: a failover is then never a key delivered or a pad used.
    min_replicas_acked: int = Field(0, ge=0, le=16)
    replica_ack_timeout_ms: int = Field(200, ge=1, le=60_000)

    @model_validator(mode="after")
    def _one_backend(self) -> "RedisConfig":
        if sum(x is not None for x in (self.url, self.sentinel, self.cluster)) > 1:
            raise ValueError("give at most one of url, sentinel and cluster")
        return self

    @property
    def embedded(self) -> bool:
        """True when the node runs its own Redis server (no external one configured)."""
        return self.url is None and self.sentinel is None and self.cluster is None

    def reached_at(self, embedded_url: str | None) -> "RedisConfig":
        """These settings, pointing at the node's embedded server when it runs one."""
        return self.model_copy(update={"url": embedded_url}) if embedded_url else self


class Pkcs11KekConfig(_Frozen):
    """KEKs in an HSM (kms.hsm): the PKCS#11 ``module`` (passed to the loader as given),
    the token, the environment variable holding the user PIN (never the PIN itself) and
    the ``keyring`` file naming the labels of the current and previous keys."""

    module: Path
    token_label: str = Field(min_length=1, max_length=32)
    pin_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    keyring: Path


class KekConfig(_Frozen):
    file: Path | None = None
    env: str | None = None
    pkcs11: Pkcs11KekConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "KekConfig":
        if sum(x is not None for x in (self.file, self.env, self.pkcs11)) != 1:
            raise ValueError("give exactly one of file, env or pkcs11")
        return self


class ServerConfig(_Frozen):
    """The HTTPS server: gunicorn workers of ``worker_class`` over mutual TLS."""

    worker_class: Literal["gevent", "gthread"] = "gevent"
    workers: int = Field(3, ge=1, le=64)
    worker_connections: int = Field(1000, ge=1, le=100_000)
    threads: int = Field(8, ge=1, le=256)
    keepalive_s: int = Field(75, ge=1, le=3600)
    max_request_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    handshake_timeout_s: float = Field(5.0, gt=0, le=300)
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    max_pending_connections_per_ip: int = Field(64, ge=1, le=100_000)
    request_timeout_s: float = Field(30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _request_deadline_after_headers(self) -> "ServerConfig":
        if self.request_timeout_s <= self.header_timeout_s:
            raise ValueError("request_timeout_s must be above header_timeout_s")
        return self

    @model_validator(mode="after")
    def _pending_limit_below_pool(self) -> "ServerConfig":
        if self.worker_class == "gevent" and self.max_pending_connections_per_ip >= self.worker_connections:
            raise ValueError("max_pending_connections_per_ip must be below worker_connections "
                             "(else one address can fill a worker with unfinished handshakes)")
        return self


#: A peer's base URL, as ``PeerConfig._usable_url`` reads it.
PEER_URL = re.compile(r"https://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
                      r"(?::(?P<port>[0-9]{1,5}))?(?:/[A-Za-z0-9._~/-]*)?")


class PeerConfig(_Frozen):
    """Another node of the network: where its KM channel answers and which SAEs it serves."""

    kme_id: str = Field(pattern=ENTITY_ID_PATTERN)
    url: str = Field(pattern=r"^https://")
    saes: tuple[Annotated[str, Field(pattern=ENTITY_ID_PATTERN)], ...] = ()

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        # Once stored (an admin change), a URL the KM channel's client cannot parse would
        # fail every request of the node, so it is refused here like any bad setting.
        match = PEER_URL.fullmatch(url)
        if match is None:
            raise ValueError("must be https://HOST[:PORT][/PATH], HOST a DNS name, an IPv4 address or "
                             "[an IPv6 address], PATH of letters, digits and ._~/-")
        host, port = match["host"], match["port"]
        try:
            if host.startswith("["):
                ipaddress.IPv6Address(host[1:-1])
            elif re.fullmatch(r"[0-9.]+", host):
                ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host} is not an IP address") from None
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is not between 1 and 65535")
        return url


class LinkConfig(_Frozen):
    """A key-producing link between two nodes. ``source`` (the QKD source) and ``pqc``
    (the post-quantum source) are validated by their own kinds; ``policy`` says which
    serve, and ``fallback_below_bits`` when ``qkd-then-pqc`` falls back to PQC."""

    id: str = Field(pattern=ENTITY_ID_PATTERN)
    nodes: tuple[str, str]
    policy: LinkPolicy = "qkd-only"
    source: dict[str, Any] = Field(default_factory=lambda: {"kind": "simulated"})
    pqc: dict[str, Any] | None = Field(None, validate_default=True)
    fallback_below_bits: int = Field(0, ge=0)
    state: LinkState = "active"

    @property
    def feeds(self) -> bool:
        """Whether the link's sources run and fill its pools."""
        return self.state == "active"

    @property
    def routable(self) -> bool:
        """Whether routes may use the link's pools."""
        return self.state != "paused"

    @property
    def roles(self) -> tuple[PoolRole, ...]:
        """The source roles (and so the pools) the link's policy uses."""
        return ROLES_BY_POLICY[self.policy]

    def section(self, role: PoolRole) -> dict[str, Any]:
        """The source section of ``role``: ``source`` for QKD, ``pqc`` for PQC."""
        return self.source if role == "qkd" else self.pqc

    def pool_id(self, role: PoolRole) -> str:
        return pool_id(self.id, role)

    @field_validator("nodes")
    @classmethod
    def _two_ends(cls, nodes: tuple[str, str]) -> tuple[str, str]:
        if nodes[0] == nodes[1]:
            raise ValueError("a link joins two different nodes")
        return nodes

    @field_validator("source")
    @classmethod
    def _has_kind(cls, source: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("policy") == "pqc-only":
            raise ValueError("a pqc-only link has no QKD source")
        if not isinstance(source.get("kind"), str):
            raise ValueError("source.kind must name a key source")
        return source

    @field_validator("pqc")
    @classmethod
    def _pqc_fits_policy(cls, pqc: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        policy = info.data.get("policy", "qkd-only")
        if pqc is None and "pqc" in ROLES_BY_POLICY[policy]:
            raise ValueError(f"a {policy} link needs a pqc section (e.g. kind: ml-kem)")
        if pqc is not None and "pqc" not in ROLES_BY_POLICY[policy]:
            raise ValueError("only a link whose policy uses PQC takes a pqc section")
        if pqc is not None and not isinstance(pqc.get("kind"), str):
            raise ValueError("pqc.kind must name a key source")
        return pqc

    @field_validator("fallback_below_bits")
    @classmethod
    def _fallback_needs_its_policy(cls, bits: int, info: ValidationInfo) -> int:
        if info.data.get("policy") != "qkd-then-pqc":
            raise ValueError("only a qkd-then-pqc link falls back")
        return bits


class AuditConfig(_Frozen):
    """The node's audit trail: JSON lines in one file (null: ``audit.jsonl`` in
    ``redis.data_dir``), rotated at ``max_bytes`` keeping ``backups`` older files."""

    file: Path | None = None
    max_bytes: int = Field(16 * 1024 * 1024, ge=4096)
    backups: int = Field(10, ge=0, le=1000)


class NodeConfig(_Frozen):
    kme_id: str = Field(pattern=ENTITY_ID_PATTERN)
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig
    saes: tuple[SaeConfig, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    redis: RedisConfig = RedisConfig()
    kek: KekConfig
    reservation_ttl_s: int = Field(3600, ge=1, le=30 * 24 * 3600)
    server: ServerConfig = ServerConfig()
    peers: tuple[PeerConfig, ...] = ()
    links: tuple[LinkConfig, ...] = ()
    km_timeout_s: float = Field(5.0, gt=0, le=120)
    #: Names of the administrators (admin certificates ``urn:qkms:admin:<name>`` from the
    #: network's CA) this node accepts on its admin API; empty: no admin access.
    admins: tuple[Annotated[str, Field(pattern=ENTITY_ID_PATTERN)], ...] = ()
    audit: AuditConfig = AuditConfig()
    #: Names of admin certificates (``urn:qkms:admin:<name>``) that may read this node's
    #: Prometheus metrics (GET /metrics) and nothing else; every name in ``admins`` may too.
    metrics_scrapers: tuple[Annotated[str, Field(pattern=ENTITY_ID_PATTERN)], ...] = ()
    _config_dir: Path = PrivateAttr(default=Path("."))

    @property
    def config_dir(self) -> Path:
        """The directory relative paths (also in source sections) resolve against."""
        return self._config_dir

    @field_validator("saes")
    @classmethod
    def _unique_saes(cls, saes: tuple[SaeConfig, ...]) -> tuple[SaeConfig, ...]:
        for attr in ("id", "identity"):
            seen = [getattr(sae, attr) for sae in saes]
            duplicates = sorted({v for v in seen if seen.count(v) > 1})
            if duplicates:
                raise ValueError(f"duplicate SAE {attr}: {', '.join(duplicates)}")
        return saes

    @model_validator(mode="after")
    def _consistent_network(self) -> "NodeConfig":
        nodes = [self.kme_id, *(peer.kme_id for peer in self.peers)]
        if len(set(nodes)) != len(nodes):
            raise ValueError("peers: KME_IDs must be unique and differ from kme_id")
        saes = [sae.id for sae in self.saes] + [s for peer in self.peers for s in peer.saes]
        if len(set(saes)) != len(saes):
            raise ValueError("an SAE_ID may be attached to one node only")
        link_ids = [link.id for link in self.links]
        if len(set(link_ids)) != len(link_ids):
            raise ValueError("links: ids must be unique")
        for index, link in enumerate(self.links):
            unknown = [n for n in link.nodes if n not in nodes]
            if unknown:
                raise ValueError(f"links[{index}].nodes: unknown node {unknown[0]}")
            if link.policy == "hybrid" and self.limits.max_key_size_bits > MAX_HYBRID_KEY_BITS:
                raise ValueError(f"links[{index}].policy: a hybrid link carries keys of at most "
                                 f"{MAX_HYBRID_KEY_BITS} bits; lower limits.max_key_size_bits")
        return self

    def sae(self, sae_id: str) -> SaeConfig | None:
        """The SAE with this id attached to this node, if any."""
        return next((sae for sae in self.saes if sae.id == sae_id), None)

    def node_of_sae(self, sae_id: str) -> str | None:
        """The KME_ID of the node an SAE is attached to, if it is known."""
        if self.sae(sae_id) is not None:
            return self.kme_id
        return next((peer.kme_id for peer in self.peers if sae_id in peer.saes), None)

    def peer(self, kme_id: str) -> PeerConfig | None:
        return next((peer for peer in self.peers if peer.kme_id == kme_id), None)

    def local_links(self) -> tuple[LinkConfig, ...]:
        """The links this node is an end of."""
        return tuple(link for link in self.links if self.kme_id in link.nodes)


def format_location(loc: tuple[Any, ...]) -> str:
    """('saes', 2, 'cert_identity') -> 'saes[2].cert_identity'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def describe_validation_error(error: ValidationError, unknown_setting: str = "Extra inputs are not permitted") -> str:
    """One ``path: message`` per problem, joined by ``; `` (shared by every config section)."""
    lines = []
    for item in error.errors():
        message = unknown_setting if item["type"] == "extra_forbidden" else re.sub(r"^Value error, ", "", item["msg"])
        lines.append(f"{format_location(item['loc'])}: {message}")
    return "; ".join(lines)


def _resolve_paths(config: NodeConfig, base: Path) -> NodeConfig:
    def resolve(path: Path | None) -> Path | None:
        return None if path is None else (path if path.is_absolute() else base / path)

    tls = config.tls.model_copy(update={k: resolve(getattr(config.tls, k)) for k in ("cert", "key", "ca", "crl")})
    redis = config.redis.model_copy(update={"data_dir": resolve(config.redis.data_dir)})
    pkcs11 = config.kek.pkcs11 and config.kek.pkcs11.model_copy(update={"keyring": resolve(config.kek.pkcs11.keyring)})
    kek = config.kek.model_copy(update={"file": resolve(config.kek.file), "pkcs11": pkcs11})
    audit = config.audit.model_copy(update={"file": resolve(config.audit.file) or redis.data_dir / "audit.jsonl"})
    resolved = config.model_copy(update={"tls": tls, "redis": redis, "kek": kek, "audit": audit})
    resolved._config_dir = base
    return resolved


def parse_config(data: Any, base_dir: Path = Path(".")) -> NodeConfig:
    """Validate a parsed YAML document; raises ConfigError naming the bad setting."""
    if not isinstance(data, dict):
        raise ConfigError("(root): must be a mapping")
    try:
        config = NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    return _resolve_paths(config, base_dir.resolve())


def check_files(config: NodeConfig) -> None:
    """Fail early, naming the setting, when a file the node must read is missing."""
    for name in ("cert", "key", "ca"):
        path = getattr(config.tls, name)
        if not path.is_file():
            raise ConfigError(f"tls.{name}: file not found: {path}")
    if config.tls.crl is not None:
        _check_crl(config.tls)
    if config.kek.file is not None and not config.kek.file.is_file():
        raise ConfigError(f"kek.file: file not found: {config.kek.file}")
    if config.kek.pkcs11 is not None and not config.kek.pkcs11.keyring.is_file():
        raise ConfigError(f"kek.pkcs11.keyring: file not found: {config.kek.pkcs11.keyring} "
                          "(qkms kek init-hsm makes the first key and writes it)")


def _check_crl(tls: TlsConfig) -> None:
    from kms.pki import PkiError
    from kms.pki.tls import check_crl

    if not tls.crl.is_file():
        raise ConfigError(f"tls.crl: file not found: {tls.crl}")
    try:
        check_crl(tls.crl, tls.ca)
    except PkiError as exc:
        raise ConfigError(f"tls.crl: {exc.message}") from None


def load_config(path: Path | str) -> NodeConfig:
    """Read and validate a node's YAML configuration file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_config(data, path.parent)
