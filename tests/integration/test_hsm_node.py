"""Nodes whose KEKs live in an HSM (SoftHSM2, a token of each test's own): `qkms kek
init-hsm` makes the first key, a real `qkms serve` (gunicorn workers forked from the
master) seals and unseals through the token, and `qkms kek rotate` generates a new key
in the token and re-seals everything, the node serving throughout; killed mid-way, the
rotation loses nothing and a rerun finishes. Two nodes with a QKD link between them
fill their pools through their link managers under their own HSM keys. The PIN appears
in no output."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from kms.config import load_config
from kms.hsm import HsmKeyringFile, reopen_all
from kms.node import node_sealer
from kms.sealing import kek_id_of
from kms.storage import open_sealed_items, open_storage
from tests.integration.test_kek_rotation import Rotation
from tests.support.conditions import wait_until
from tests.support.network import FAST_LINK, LocalNetwork
from tests.support.sealed_fill import digest, fill, stored_digests
from tests.support.softhsm import SoftHsm, make_softhsm, point_this_process_at

pytestmark = pytest.mark.integration


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """A token of this test's own; this process and the ones it starts are pointed at it."""
    yield point_this_process_at(make_softhsm(tmp_path), monkeypatch)
    reopen_all()


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


def test_a_node_with_its_kek_in_an_hsm_serves_and_is_rotated_without_loss(make_node, softhsm: SoftHsm) -> None:
    node = make_node(saes=("sae-1", "sae-2"), config_overrides={"server": {"workers": 2}}, start=False)
    use_hsm(node.config_path, softhsm)
    node.process.start()
    master, slave = node.client("sae-1"), node.client("sae-2")
    waiting = {key.key_id: digest(key.material) for key in master.enc_keys("sae-2", number=20)}
    keyring = HsmKeyringFile.from_config(load_config(node.config_path).kek.pkcs11)
    errors, served, stop = [], [], threading.Event()

    def traffic() -> None:
        try:
            while not stop.is_set():
                (key,) = master.enc_keys("sae-2")
                (fetched,) = slave.dec_keys("sae-1", [key.key_id])
                served.append(digest(fetched.material) == digest(key.material))
        except Exception as exc:  # reported by the assertion below
            errors.append(repr(exc))

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_until(lambda: len(served) >= 5 or errors, "round trips before the rotation", 60)
        rotation = qkms("kek", "rotate", "--config", str(node.config_path), "--grace-s", "1")
        count = len(served)
        wait_until(lambda: len(served) >= count + 5 or errors, "round trips after the rotation", 60)
    finally:
        stop.set()
        worker.join(60)
    assert rotation.returncode == 0, rotation.stdout + rotation.stderr
    assert "1 old KEK(s) retired" in rotation.stdout
    assert errors == [] and all(served)
    fetched = slave.dec_keys("sae-1", list(waiting))
    assert {key.key_id: digest(key.material) for key in fetched} == waiting
    labels = keyring.labels()
    assert labels.previous == () and labels.current.startswith("qkms-kek-")
    redis = load_config(node.config_path).redis
    items = open_sealed_items(redis.reached_at(f"unix://{redis.data_dir / 'redis.sock'}"), "KME-1")
    current = keyring.current_alone().current.kek_id
    assert {kek_id_of(item.sealed) for batch in items.batches(50) for item in batch} <= {current}
    assert softhsm.pin not in rotation.stdout + rotation.stderr + node.process.log_text()


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

    rotation = Rotation(hsm_node_config, checkpoint)
    wait_until(lambda: f"paused at {checkpoint}" in rotation.lines or rotation.process.poll() is not None,
               f"the rotation to reach {checkpoint}", 60)
    assert f"paused at {checkpoint}" in rotation.lines, rotation.lines
    rotation.kill9()
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
        for kme_id, config_path in configs.items():
            config = load_config(config_path)
            redis = config.redis.reached_at(f"unix://{config.redis.data_dir / 'redis.sock'}")
            items = open_sealed_items(redis, kme_id)
            sealed_by = {kek_id_of(item.sealed) for batch in items.batches(50) for item in batch}
            assert sealed_by == {HsmKeyringFile.from_config(config.kek.pkcs11).current_alone().current.kek_id}
        logs = "".join(path.read_text() for path in (net.root / "logs").iterdir() if path.is_file())
        assert softhsm.pin not in logs
    finally:
        net.close()
