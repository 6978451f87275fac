"""``qkms mock-device``: one mock QKD device (adapters/devices/mock, docs/devices.md)."""

from __future__ import annotations

from pathlib import Path

import click

from kms.errors import QkmsError


@click.command("mock-device")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The device's YAML file (written by `qkms init --link-source mock-device`).")
@click.option("--fault", "faults", multiple=True,
              help="Misbehave from the start: NAME[:PARAM=VALUE,...] (repeatable), e.g. slow:delay_s=3.")
def mock_device(config_path: Path, faults: tuple[str, ...]) -> None:
    """Run one mock QKD device (ETSI 014 KME and ETSI 004 push mode over mutual TLS) until
    SIGTERM; its control port sets faults at run time (POST /mock/v1/faults)."""
    from adapters.devices.mock.config import load_mock_config
    from adapters.devices.mock.faults import parse_fault
    from adapters.devices.mock.server import run_mock_device
    from qkms.cli import _configure_logging

    _configure_logging()
    try:
        config = load_mock_config(config_path)
        for spec in faults:
            parse_fault(spec)
    except QkmsError as exc:
        raise click.ClickException(exc.message) from None
    run_mock_device(config, faults)
