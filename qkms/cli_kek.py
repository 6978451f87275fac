"""``qkms kek rotate``: a new key-encryption key for a node, every sealed value
re-sealed under it while the node runs, the old KEK retired (kms.rotation), whether the
KEKs sit in ``kek.file`` or in an HSM (``kek.pkcs11``, kms.hsm); ``qkms kek init-hsm``:
a node's first KEK, generated in its HSM."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import click

from kms.config import KekConfig, load_config
from kms.errors import QkmsError
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
