"""``qkms kek rotate``: a new key-encryption key for a node, every sealed value
re-sealed under it while the node runs, the old KEK retired (kms.rotation), whether the
KEKs sit in ``kek.file`` or in an HSM (``kek.pkcs11``, kms.hsm); ``qkms kek init-hsm``:
a node's first KEK, generated in its HSM; ``qkms kek import-hsm``: a node's KEKs moved
from ``kek.file`` into its HSM (kms.hsm_import)."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import click

from kms.config import KekConfig, load_config
from kms.errors import QkmsError
from kms.keyring import read_keyring_keys
from kms.rotation import RotatableKeyring, RotationReport, SoftwareKeyringFile, rotate
from kms.storage import open_sealed_items
from kms.storage.embedded_redis import EmbeddedRedis

#: Tests only: stop (and wait to be killed) at a checkpoint: "keyring", "resealed:N" or "verified".
PAUSE_ENV = "QKMS_TEST_KEK_ROTATE_PAUSE"


@click.group()
def kek() -> None:
    """Manage a node's key-encryption key (KEK)."""


@contextmanager
def _node_redis(config):
    """The node's Redis settings; for an embedded Redis, the running node's server (or,
    with the node stopped, one started for the rotation)."""
    if not config.redis.embedded:
        yield config.redis
        return
    server = EmbeddedRedis(config.redis.data_dir, config.redis.appendfsync)
    if server.running():
        yield config.redis.reached_at(server.url)
        return
    with server:
        yield config.redis.reached_at(server.url)


def _rotatable_keyring(kek: KekConfig) -> RotatableKeyring:
    if kek.pkcs11 is not None:
        from kms.hsm import HsmKeyringFile

        return HsmKeyringFile.from_config(kek.pkcs11)
    if kek.file is None:
        raise click.ClickException("kek: rotation needs kek.file or kek.pkcs11 (a KEK in kek.env cannot be rewritten)")
    return SoftwareKeyringFile(kek.file)


def _checkpoint(checkpoint: str, report: RotationReport) -> None:
    if not checkpoint.startswith("resealed:") or report.resealed % 1000 == 0:
        click.echo(f"{checkpoint} ({report.resealed} re-sealed)")
    if os.environ.get(PAUSE_ENV) == checkpoint:
        click.echo(f"paused at {checkpoint}")
        sys.stdout.flush()
        threading.Event().wait()


@kek.command("rotate")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="Values read from Redis per round trip.")
@click.option("--grace-s", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="Seconds after the switch before the old KEK may be retired (values sealed just "
                   "before the switch may reach Redis a moment later).")
def rotate_command(config_path: Path, batch_size: int, grace_s: float) -> None:
    """Make a new KEK current, re-seal every stored key and pool block under it, retire the old one.

    The node keeps serving: it re-reads kek.file (or kek.pkcs11.keyring, whose new key is
    generated in the HSM) when it changes. A crash at any point
    leaves every value readable (the file then holds both KEKs); run it again to finish."""
    try:
        config = load_config(config_path)
        keyring = _rotatable_keyring(config.kek)
        with _node_redis(config) as settings:
            items = open_sealed_items(settings, config.kme_id)
            report = rotate(keyring, items, config.kme_id, batch_size, grace_s, _checkpoint)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"KEK rotated{' (resumed)' if report.resumed else ''}: {report.resealed} values re-sealed, "
               f"{report.already_current} already under the new KEK, {report.changed_meanwhile} changed meanwhile, "
               f"{report.passes} passes; {report.retired} old KEK(s) retired")


@kek.command("init-hsm")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label", help="The new key's label (default: qkms-kek-<UTC time>-<4 hex>).")
def init_hsm_command(config_path: Path, label: str | None) -> None:
    """Generate the node's first KEK in the HSM of kek.pkcs11 and write kek.pkcs11.keyring naming it.

    The key is AES-256, sensitive and non-extractable; the user PIN is read from the
    environment variable kek.pkcs11.pin_env."""
    from kms.hsm import LABEL_PATTERN, HsmKeyringFile

    if label is not None and not LABEL_PATTERN.match(label):
        raise click.ClickException("--label: 1 to 64 of A-Z a-z 0-9 . _ -")
    try:
        config = load_config(config_path)
        if config.kek.pkcs11 is None:
            raise click.ClickException("kek.pkcs11: not set in this config (init-hsm makes a key in an HSM)")
        made = HsmKeyringFile.from_config(config.kek.pkcs11).initialise(label)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"KEK {made} generated in token {config.kek.pkcs11.token_label}; {config.kek.pkcs11.keyring} names it")


@kek.command("import-hsm")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The node's new config, with kek.pkcs11.")
@click.option("--from-file", "from_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The node's old kek.file (one KEK or a qkms-keyring-v1 keyring); it is only read.")
@click.option("--label-prefix", help="Labels are PREFIX-<kek_id hex> (default: qkms-kek-imported).")
def import_hsm_command(config_path: Path, from_file: Path, label_prefix: str | None) -> None:
    """Move a node's KEKs from kek.file into the HSM of kek.pkcs11, keeping every sealed value readable.

    Each KEK of the old file becomes a sensitive, non-extractable AES-256 key object in
    the token whose CKA_ID is the KEK's kek_id, and kek.pkcs11.keyring is written naming
    them; the user PIN is read from the environment variable kek.pkcs11.pin_env."""
    from kms.hsm import HsmKeyringFile
    from kms.hsm_import import IMPORTED_PREFIX, import_keyring

    try:
        config = load_config(config_path)
        if config.kek.pkcs11 is None:
            raise click.ClickException("kek.pkcs11: not set in this config (import-hsm imports into an HSM)")
        old_keys = read_keyring_keys(from_file, f"--from-file {from_file}")
        imported = import_keyring(HsmKeyringFile.from_config(config.kek.pkcs11), old_keys, label_prefix or IMPORTED_PREFIX)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    count = 1 + len(imported.previous)
    click.echo(f"{count} KEK(s) imported into token {config.kek.pkcs11.token_label} (current {imported.current}); "
               f"{config.kek.pkcs11.keyring} names them. {from_file} is unchanged.")
    click.echo("Next: 1. with the node stopped, use this config (kek.pkcs11) in place of the old one and start it; "
               f"2. qkms kek rotate --config {config_path} (re-seals everything under a key generated in the HSM); "
               f"3. destroy {from_file} and its backups; 4. once no backup holds values sealed under them, "
               "delete the imported key objects from the token with the vendor's tools.")

