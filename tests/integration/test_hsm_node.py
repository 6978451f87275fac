"""Nodes whose KEKs live in an HSM (SoftHSM2, a token of each test's own): `qkms kek
init-hsm` makes the first key, a real `qkms serve` (gunicorn workers forked from the
master) seals and unseals through the token, and `qkms kek rotate` generates a new key
in the token and re-seals everything, the node serving throughout; killed mid-way, the
rotation loses nothing and a rerun finishes. A node that ran under `kek.file` moves into
the token with `qkms kek import-hsm` and still serves the keys reserved before. Two nodes with a QKD link between them
fill their pools through their link managers under their own HSM keys. The PIN appears
in no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kms.config import load_config
from kms.hsm import HsmKeyringFile
from kms.keyring import read_keyring_keys, software_kek_id
from kms.node import node_sealer
from kms.sealing import kek_id_of
from kms.storage import open_sealed_items, open_storage
from kms.storage.embedded_redis import embedded_url
from tests.integration.test_kek_rotation import Rotation
from tests.support.network import FAST_LINK, LocalNetwork
from tests.support.rotation_traffic import rotate_while_serving
from tests.support.sealed_fill import digest, fill, stored_digests
from tests.support.softhsm import SoftHsm

pytestmark = pytest.mark.integration


def use_hsm(config_path: Path, hsm: SoftHsm, label: str = "kek-first") -> None:
    """The node's kek section switched to the token, its first key made by `qkms kek init-hsm`."""
    data = yaml.safe_load(config_path.read_text())
    data["kek"] = hsm.settings(Path("hsm-keyring"))
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    (config_path.parent / "kek.hex").unlink()
    made = qkms("kek", "init-hsm", "--config", str(config_path), "--label", label)
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"KEK {label} generated in token qkms-test" in made.stdout and hsm.pin not in made.stdout


def qkms(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qkms", *args], capture_output=True, text=True, timeout=300)


def kek_ids_in_store(config_path: Path) -> set[bytes]:
    """The kek_ids of every value in the store of a node on its embedded Redis."""
    config = load_config(config_path)
    redis = config.redis.reached_at(embedded_url(config.redis.data_dir))
    items = open_sealed_items(redis, config.kme_id)
    return {kek_id_of(item.sealed) for batch in items.batches(50) for item in batch}


def round_trip(master, slave) -> bool:
    (key,) = master.enc_keys("sae-2")
    (fetched,) = slave.dec_keys("sae-1", [key.key_id])
    return digest(fetched.material) == digest(key.material)


def test_a_node_with_its_kek_in_an_hsm_serves_and_is_rotated_without_loss(make_node, softhsm: SoftHsm) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 2}}, start=False)
    use_hsm(node.config_path, softhsm)
    node.process.start()
    keyring = HsmKeyringFile.from_config(load_config(node.config_path).kek.pkcs11)
    rotation = rotate_while_serving(node)
    labels = keyring.labels()
    assert labels.previous == () and labels.current.startswith("qkms-kek-")
    assert kek_ids_in_store(node.config_path) <= {keyring.current_alone().current.kek_id}
    assert softhsm.pin not in rotation.stdout + rotation.stderr + node.process.log_text()


def test_a_node_under_a_kek_file_moves_into_the_hsm_without_losing_a_key(make_node, softhsm: SoftHsm) -> None:
    node = make_node(saes=("sae-1", "sae-2"))
    master, slave = node.client("sae-1"), node.client("sae-2")
    waiting = {key.key_id: digest(key.material) for key in master.enc_keys("sae-2", number=10)}
    old_file = node.config_path.parent / "kek.hex"
    old_kek_id = software_kek_id(read_keyring_keys(old_file).current)
    assert kek_ids_in_store(node.config_path) == {old_kek_id}
    node.process.stop()

    data = yaml.safe_load(node.config_path.read_text())
    data["kek"] = softhsm.settings(Path("hsm-keyring"))
    new_config = node.config_path.with_name("config-hsm.yaml")
    new_config.write_text(yaml.safe_dump(data, sort_keys=False))
    imported = qkms("kek", "import-hsm", "--config", str(new_config), "--from-file", str(old_file))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "1 KEK(s) imported into token qkms-test" in imported.stdout and "qkms kek rotate" in imported.stdout
    os.replace(new_config, node.config_path)
    node.process.start()
    fetched = slave.dec_keys("sae-1", list(waiting))
    assert {key.key_id: digest(key.material) for key in fetched} == waiting
    assert round_trip(master, slave)
    waiting = {key.key_id: digest(key.material) for key in master.enc_keys("sae-2", number=5)}
    assert kek_ids_in_store(node.config_path) == {old_kek_id}  # sealed by the imported key

    rotation = qkms("kek", "rotate", "--config", str(node.config_path), "--grace-s", "1")
    assert rotation.returncode == 0, rotation.stdout + rotation.stderr
    assert "5 values re-sealed" in rotation.stdout and "1 old KEK(s) retired" in rotation.stdout
    resealed_by = kek_ids_in_store(node.config_path)
    assert len(resealed_by) == 1 and old_kek_id not in resealed_by
    fetched = slave.dec_keys("sae-1", list(waiting))
    assert {key.key_id: digest(key.material) for key in fetched} == waiting
    assert all(round_trip(master, slave) for _ in range(3))

    old_secret = old_file.read_text().strip()
    old_file.unlink()
    waiting = {key.key_id: digest(key.material) for key in master.enc_keys("sae-2", number=5)}
    node.process.stop()
    node.process.start()
    fetched = slave.dec_keys("sae-1", list(waiting))
    assert {key.key_id: digest(key.material) for key in fetched} == waiting
    assert round_trip(master, slave)
    keyring = HsmKeyringFile.from_config(load_config(node.config_path).kek.pkcs11)
    assert resealed_by == {keyring.current_alone().current.kek_id}
    outputs = imported.stdout + imported.stderr + rotation.stdout + rotation.stderr + node.process.log_text()
    assert softhsm.pin not in outputs and old_secret not in outputs


@pytest.fixture
def hsm_node_config(tmp_path: Path, external_redis, softhsm: SoftHsm) -> Path:
    """A node's config on an external Redis, its KEK in the token (no node process)."""
    from qkms.layout import NodePlan, free_port, write_layout

    manifest = write_layout(tmp_path / "net", [NodePlan("KME-1", ("sae-1", "sae-2"), free_port())]).to_dict()
    path = Path(manifest["nodes"]["KME-1"]["config"])
    data = yaml.safe_load(path.read_text())
    data["redis"] = {"url": external_redis.url}
    path.write_text(yaml.safe_dump(data))
    use_hsm(path, softhsm)
    return path


@pytest.mark.parametrize("checkpoint", ["keyring", "resealed:7"])
def test_an_hsm_rotation_killed_mid_way_loses_nothing_and_a_rerun_finishes(hsm_node_config: Path,
                                                                           checkpoint: str) -> None:
    config = load_config(hsm_node_config)
    keyring = HsmKeyringFile.from_config(config.kek.pkcs11)
    expected = fill(open_storage(config.redis, config.kme_id, node_sealer(config)))

    Rotation(hsm_node_config, checkpoint).kill9_when_paused()
    items = open_sealed_items(config.redis, config.kme_id)
    assert len(keyring.labels().previous) == 1
    assert stored_digests(items, node_sealer(config)) == expected

    rerun = Rotation(hsm_node_config)
    assert rerun.finish() == 0, rerun.lines
    assert "(resumed)" in rerun.lines[-1]
    labels = keyring.labels()
    assert labels.previous == () and labels.current != "kek-first"
    assert stored_digests(items, node_sealer(config)) == expected
    assert {kek_id_of(item.sealed) for batch in items.batches(50) for item in batch} \
        == {keyring.current_alone().current.kek_id}


def test_bad_hsm_settings_stop_serve_and_init_hsm_with_one_line(make_node, softhsm: SoftHsm,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    node = make_node(saes=("sae-1", "sae-2"), start=False)
    use_hsm(node.config_path, softhsm)
    monkeypatch.setenv(softhsm.pin_env, "0" * 8)
    served = qkms("serve", "--config", str(node.config_path))
    assert served.returncode == 1
    assert served.stderr == f"Error: kek.pkcs11.pin_env: the token refused the PIN in {softhsm.pin_env}\n"
    data = yaml.safe_load(node.config_path.read_text())
    data["kek"]["pkcs11"]["token_label"] = "no-such-token"
    node.config_path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv(softhsm.pin_env, softhsm.pin)
    (node.config_path.parent / "hsm-keyring").unlink()
    made = qkms("kek", "init-hsm", "--config", str(node.config_path))
    assert (made.returncode, made.stderr) == (1, "Error: kek.pkcs11.token_label: no token with this label\n")
    assert softhsm.pin not in served.stdout + served.stderr + made.stdout + made.stderr


def test_two_nodes_fill_their_link_pools_under_their_own_hsm_keys(tmp_path: Path, softhsm: SoftHsm) -> None:
    net = LocalNetwork(tmp_path / "net", {"A": ("sae-a",), "B": ("sae-b",)}, [("A", "B")], FAST_LINK)
    configs = {kme_id: Path(entry["config"]) for kme_id, entry in net.manifest["nodes"].items()}
    for kme_id, config_path in configs.items():
        use_hsm(config_path, softhsm, f"kek-{kme_id}")
    try:
        net.start()
        master, slave = net.client("sae-a"), net.client("sae-b")
        net.wait_for_keys(master, "sae-b", 1, 180)
        (key,) = master.enc_keys("sae-b")
        assert [k.material for k in slave.dec_keys("sae-a", [key.key_id])] == [key.material]
        for config_path in configs.values():
            keyring = HsmKeyringFile.from_config(load_config(config_path).kek.pkcs11)
            assert kek_ids_in_store(config_path) == {keyring.current_alone().current.kek_id}
        logs = "".join(path.read_text() for path in (net.root / "logs").iterdir() if path.is_file())
        assert softhsm.pin not in logs
    finally:
        net.close()
