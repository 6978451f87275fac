"""``qkms pki``: create a demo PKI (a CA, node and SAE certificates), inspect certificates,
revoke them (the CA's CRL)."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from kms.pki import (
    DEFAULT_KEY_TYPE,
    DEFAULT_NODE_HOSTS,
    IDENTITY_FIELDS,
    KEY_TYPES,
    CertificateAuthority,
    IssuedCertificate,
    PkiError,
    check_entity_id,
    format_serial,
    read_certificate,
    sae_identity,
)
from kms.pki.revocation import DEFAULT_CRL_VALID_DAYS, issue_crl, serial_to_revoke

CA_STEM = "ca"
CRL_NAME = "ca.crl"

_DIRECTORY = click.Path(file_okay=False, path_type=Path)
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}
_SAN_PREFIXES = {
    x509.DNSName: "DNS",
    x509.IPAddress: "IP",
    x509.UniformResourceIdentifier: "URI",
    x509.RFC822Name: "email",
}


@click.group()
def pki() -> None:
    """Create and inspect the certificates of a qkms network."""


@contextlib.contextmanager
def _pki_errors() -> Iterator[None]:
    """Report PkiError as a clean command-line error."""
    try:
        yield
    except PkiError as exc:
        raise click.ClickException(str(exc)) from None


def _pair_paths(directory: Path, stem: str) -> tuple[Path, Path]:
    return directory / f"{stem}.crt", directory / f"{stem}.key"


def _write(certified: CertificateAuthority | IssuedCertificate, out: Path, stem: str, force: bool) -> None:
    """Save a certificate and key as <out>/<stem>.crt and .key, refusing to replace without force."""
    cert_path, key_path = _pair_paths(out, stem)
    existing = [str(path) for path in (cert_path, key_path) if path.exists()]
    if existing and not force:
        raise click.ClickException(f"refusing to overwrite {', '.join(existing)}; use --force to replace")
    with _pki_errors():
        certified.save(cert_path, key_path)
    click.echo(f"wrote {cert_path} and {key_path} (key file mode 0600)")


def _load_ca(ca_dir: Path) -> CertificateAuthority:
    cert_path, key_path = _pair_paths(ca_dir, CA_STEM)
    missing = [str(path) for path in (cert_path, key_path) if not path.is_file()]
    if missing:
        raise click.ClickException(
            f"no CA in {ca_dir}: {', '.join(missing)} missing; create one with 'qkms pki ca --out {ca_dir}'"
        )
    with _pki_errors():
        return CertificateAuthority.load(cert_path, key_path)


def _issue_into(
    ca_dir: Path, out: Path, entity_id: str, force: bool,
    issue: Callable[[CertificateAuthority], IssuedCertificate],
) -> None:
    """Load the CA in ca_dir, issue with it and write <out>/<entity_id>.crt and .key."""
    if _pair_paths(out, entity_id)[0].resolve() == _pair_paths(ca_dir, CA_STEM)[0].resolve():
        raise click.ClickException(f"{entity_id}: writing it to {out} would replace the CA")
    authority = _load_ca(ca_dir)
    with _pki_errors():
        issued = issue(authority)
    _write(issued, out, entity_id, force)


def _entity_id(kind: str) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback that accepts only IDs usable in certificates and file names."""

    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        try:
            return check_entity_id(value, kind)
        except PkiError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def _key_pair_options(default_valid_days: int) -> Callable[[Callable], Callable]:
    """Options shared by the commands that create a key pair."""
    options = (
        click.option("--valid-days", type=click.IntRange(min=1), default=default_valid_days, show_default=True,
                     help="Lifetime in days (never beyond the CA's)."),
        click.option("--key-type", type=click.Choice(KEY_TYPES), default=DEFAULT_KEY_TYPE, show_default=True,
                     help="Key algorithm of the new key pair."),
        click.option("--force", is_flag=True, help="Replace existing files."),
    )

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@pki.command("ca")
@click.option("--out", type=_DIRECTORY, required=True, help="Directory for ca.crt and ca.key.")
@click.option("--cn", default="qkms demo CA", show_default=True, help="CA common name.")
@_key_pair_options(default_valid_days=3650)
def create_ca(out: Path, cn: str, valid_days: int, key_type: str, force: bool) -> None:
    """Create a CA (ca.crt, ca.key) in OUT."""
    with _pki_errors():
        authority = CertificateAuthority.create(cn, valid_days, key_type)
    _write(authority, out, CA_STEM, force)


@pki.command("node")
@click.argument("kme_id", callback=_entity_id("KME_ID"))
@click.option("--ca-dir", type=_DIRECTORY, required=True, help="Directory holding ca.crt and ca.key.")
@click.option("--out", type=_DIRECTORY, required=True, help="Directory for <KME_ID>.crt and .key.")
@click.option("--host", "hosts", multiple=True, default=DEFAULT_NODE_HOSTS, show_default=True,
              help="DNS name or IP address the node serves on; repeatable.")
@_key_pair_options(default_valid_days=825)
def create_node(
    kme_id: str,
    ca_dir: Path,
    out: Path,
    hosts: tuple[str, ...],
    valid_days: int,
    key_type: str,
    force: bool,
) -> None:
    """Issue a node (KME) certificate, for TLS server and client use."""
    _issue_into(
        ca_dir, out, kme_id, force,
        lambda authority: authority.issue_node_certificate(kme_id, hosts, valid_days, key_type),
    )


@pki.command("sae")
@click.argument("sae_id", callback=_entity_id("SAE_ID"))
@click.option("--ca-dir", type=_DIRECTORY, required=True, help="Directory holding ca.crt and ca.key.")
@click.option("--out", type=_DIRECTORY, required=True, help="Directory for <SAE_ID>.crt and .key.")
@_key_pair_options(default_valid_days=825)
def create_sae(sae_id: str, ca_dir: Path, out: Path, valid_days: int, key_type: str, force: bool) -> None:
    """Issue an SAE certificate, for TLS client use."""
    _issue_into(
        ca_dir, out, sae_id, force,
        lambda authority: authority.issue_sae_certificate(sae_id, valid_days, key_type),
    )


@pki.command("admin")
@click.argument("name", callback=_entity_id("admin name"))
@click.option("--ca-dir", type=_DIRECTORY, required=True, help="Directory holding ca.crt and ca.key.")
@click.option("--out", type=_DIRECTORY, required=True, help="Directory for <NAME>.crt and .key.")
@_key_pair_options(default_valid_days=825)
def create_admin(name: str, ca_dir: Path, out: Path, valid_days: int, key_type: str, force: bool) -> None:
    """Issue an administrator certificate (the admin API's role; list NAME in a node's `admins`)."""
    _issue_into(
        ca_dir, out, name, force,
        lambda authority: authority.issue_admin_certificate(name, valid_days, key_type),
    )


@pki.command("show")
@click.argument("cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(cert: Path) -> None:
    """Print a certificate's subject, SANs, serial, validity and fingerprint."""
    with _pki_errors():
        certificate = read_certificate(cert)
    lines = _describe(certificate)
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {value}")


def _describe(certificate: x509.Certificate) -> list[tuple[str, str]]:
    """Label/value lines for ``show``; the SAE identity lines show what each config field yields."""
    return [
        ("subject", certificate.subject.rfc4514_string()),
        ("issuer", certificate.issuer.rfc4514_string()),
        ("serial", format_serial(certificate.serial_number)),
        ("not before", f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("not after", f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"),
        ("subject alt names", ", ".join(_alt_names(certificate)) or "-"),
        ("extended key usage", ", ".join(_extended_usages(certificate)) or "-"),
        ("sha256 fingerprint", certificate.fingerprint(hashes.SHA256()).hex(":").upper()),
        *((f"SAE identity {field}", sae_identity(certificate, field) or "-") for field in IDENTITY_FIELDS),
    ]


def _extension_value(certificate: x509.Certificate, extension_type: type) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(extension_type).value
    except x509.ExtensionNotFound:
        return None


def _alt_names(certificate: x509.Certificate) -> list[str]:
    names = _extension_value(certificate, x509.SubjectAlternativeName) or []
    return [f"{_SAN_PREFIXES.get(type(name), type(name).__name__)}:{name.value}" for name in names]


def _extended_usages(certificate: x509.Certificate) -> list[str]:
    usages = _extension_value(certificate, x509.ExtendedKeyUsage) or []
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in usages]


def _crl_options(command: Callable) -> Callable:
    """Options shared by the commands that write the CA's CRL."""
    command = click.option("--valid-days", type=click.IntRange(min=1), default=DEFAULT_CRL_VALID_DAYS,
                           show_default=True, help="Days until the CRL's next_update: nodes refuse every "
                                                   "client once it has passed; re-issue before (qkms pki crl).")(command)
    command = click.option("--crl", "crl_path", type=click.Path(dir_okay=False, path_type=Path),
                           help=f"The CRL file [default: CA_DIR/{CRL_NAME}].")(command)
    return click.option("--ca-dir", type=_DIRECTORY, required=True, help="Directory holding ca.crt and ca.key.")(
        command)


def _write_crl(ca_dir: Path, crl_path: Path | None, serials: list[int], valid_days: int) -> None:
    authority = _load_ca(ca_dir)
    path = crl_path or ca_dir / CRL_NAME
    with _pki_errors():
        crl = issue_crl(authority, path, serials, valid_days)
    click.echo(f"wrote {path}: {len(crl)} revoked, valid until {crl.next_update_utc:%Y-%m-%d %H:%M:%S} UTC")


@pki.command("revoke")
@click.argument("certs_or_serials", nargs=-1, required=True, metavar="CERT_OR_SERIAL...")
@_crl_options
def revoke(certs_or_serials: tuple[str, ...], ca_dir: Path, crl_path: Path | None, valid_days: int) -> None:
    """Revoke certificates (files, or serial numbers in hex) in the CA's CRL.

    Nodes whose tls.crl names the file refuse these certificates from their next
    connection on, without a restart."""
    authority = _load_ca(ca_dir)
    with _pki_errors():
        serials = [serial_to_revoke(authority, item) for item in certs_or_serials]
    _write_crl(ca_dir, crl_path, serials, valid_days)
    for serial in serials:
        click.echo(f"revoked serial {format_serial(serial)}")


@pki.command("crl")
@_crl_options
def reissue_crl(ca_dir: Path, crl_path: Path | None, valid_days: int) -> None:
    """Write the CA's CRL anew (creating an empty one, or moving next_update on)."""
    _write_crl(ca_dir, crl_path, [], valid_days)
