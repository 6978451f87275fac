"""`qkms kek rotate` as a real process: killed with SIGKILL at every checkpoint it
leaves every stored key, pool block and inbox block readable, and a rerun finishes;
on a running node it re-seals everything without downtime and without losing a key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from kms.config import load_config
from kms.keyring import read_keyring_keys, software_kek_id
from kms.node import node_sealer
from kms.sealing import kek_id_of
from kms.storage import open_sealed_items, open_storage
from qkms.cli_kek import PAUSE_ENV
from qkms.layout import NodePlan, free_port, write_layout
from tests.support.conditions import wait_until
from tests.support.rotation_traffic import rotate_while_serving
from tests.support.sealed_fill import fill, stored_digests

pytestmark = pytest.mark.integration


@pytest.fixture
def node_config(tmp_path: Path, external_redis) -> Path:
    """A node's config on an external Redis (no node process: the stores are filled directly)."""
    manifest = write_layout(tmp_path / "net", [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    path = Path(manifest["nodes"]["KME-1"]["config"])
    data = yaml.safe_load(path.read_text())
    data["redis"] = {"url": external_redis.url}
    path.write_text(yaml.safe_dump(data))
    return path


class Rotation:
    """`qkms kek rotate` in a subprocess, its output collected line by line."""

    def __init__(self, config: Path, pause: str | None = None, *extra: str):
        self.pause = pause
        env = {**os.environ, **({PAUSE_ENV: pause} if pause else {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qkms", "kek", "rotate", "--config", str(config), "--batch-size", "1",
             "--grace-s", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def kill9_when_paused(self) -> None:
        """SIGKILL once the rotation reports it paused at its checkpoint (``pause``)."""
        wait_until(lambda: f"paused at {self.pause}" in self.lines or self.process.poll() is not None,
                   f"the rotation to reach {self.pause}", 60)
        assert f"paused at {self.pause}" in self.lines, self.lines
        self.kill9()

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(10)

    def finish(self) -> int:
        code = self.process.wait(120)
        self._reader.join(10)
        return code


def state(config_path: Path) -> tuple[dict[str, str], set[bytes], int]:
    """Digests of every value as the node would unseal them now, the KEKs that sealed
    them, and how many KEKs the keyring holds."""
    config = load_config(config_path)
    items = open_sealed_items(config.redis, config.kme_id)
    kek_ids = {kek_id_of(item.sealed) for batch in items.batches(50) for item in batch}
    keys = read_keyring_keys(config.kek.file)
    return stored_digests(items, node_sealer(config)), kek_ids, 1 + len(keys.previous)


@pytest.mark.parametrize("checkpoint", ["keyring", "resealed:1", "resealed:13", "verified"])
def test_a_rotation_killed_at_any_checkpoint_loses_nothing_and_a_rerun_finishes(node_config, checkpoint) -> None:
    config = load_config(node_config)
    original_kek = read_keyring_keys(config.kek.file).current
    expected = fill(open_storage(config.redis, config.kme_id, node_sealer(config)))

    Rotation(node_config, checkpoint).kill9_when_paused()

    digests, _, keks = state(node_config)
    assert digests == expected  # every value readable with the keyring the kill left
    assert keks == 2

    rerun = Rotation(node_config)
    assert rerun.finish() == 0, rerun.lines
    assert "(resumed)" in rerun.lines[-1]
    digests, sealed_by, keks = state(node_config)
    new_kek = read_keyring_keys(config.kek.file).current
    assert digests == expected and keks == 1 and new_kek != original_kek
    assert sealed_by == {software_kek_id(new_kek)}


def test_values_of_the_v1_format_are_resealed_too(node_config) -> None:
    """A store written before keyrings: its values have no KEK id; the rotation moves them."""
    from kms.keyring import SoftwareKek
    from kms import sealing

    config = load_config(node_config)
    storage = open_storage(config.redis, config.kme_id, node_sealer(config))
    expected = fill(storage, reservations=3, pool_blocks=0, inbox_blocks=0)
    items = open_sealed_items(config.redis, config.kme_id)
    old = SoftwareKek(read_keyring_keys(config.kek.file).current)
    for item in [item for batch in items.batches(10) for item in batch]:
        material = node_sealer(config).unseal(item.sealed, item.identity)
        nonce = os.urandom(12)
        v1 = nonce + old.encrypt(nonce, material, sealing._aad(sealing._V1, b"KME-1", item.identity.encode()))
        assert items.replace(item, v1)
    assert state(node_config)[1] == {None}
    assert Rotation(node_config).finish() == 0
    digests, sealed_by, keks = state(node_config)
    assert digests == expected and keks == 1 and None not in sealed_by


def test_a_running_node_is_rotated_without_downtime_or_loss(make_node) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 2}})
    rotate_while_serving(node)
    assert read_keyring_keys(load_config(node.config_path).kek.file).previous == ()
