"""A full disk under a node's data directory (where its embedded Redis keeps its AOF).

A size-limited tmpfs needs no privilege inside a user and mount namespace
(``unshare -rm``): the node runs there with an 8 MiB tmpfs over its data directory,
and the test fills and empties that filesystem through ``/proc/<pid>/root``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from adapters.etsi014_client import Etsi014Error
from qkms.layout import NodePlan, free_port, write_layout
from qkms.runner import open_log, sae_client, stop_process, wait_for_port
from tests.support.conditions import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MOUNT_AND_RUN = 'mount -t tmpfs -o size=8m tmpfs "$0" && exec "$@"'


def require_private_tmpfs() -> None:
    """Skip, saying why, unless a tmpfs can be mounted in a user+mount namespace here."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no user+mount namespace with a tmpfs here: {probe.stderr[:200]!r}")


def _fill(directory) -> None:
    """Write one file until the filesystem has no byte left."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError:
                pass
    finally:
        os.close(fd)


def _dec_keys_or_none(slave, key_ids):
    try:
        return slave.dec_keys("sae-m", key_ids)
    except Etsi014Error as exc:
        assert exc.status == 503, f"dec_keys answered {exc.status} while the node recovered"
        return None


def test_a_full_disk_answers_503_delivers_nothing_twice_and_recovers(tmp_path):
    """While the disk is full: 503, and a pending key is not handed out while its
    deletion cannot be persisted. The embedded Redis exits on the AOF write error; its
    supervisor starts it again, so once space returns the pending key is delivered, once,
    and new keys are made, without an operator."""
    require_private_tmpfs()
    port = free_port()
    manifest = write_layout(tmp_path, [NodePlan("A", ("sae-m", "sae-s"), port)]).to_dict()
    config = manifest["nodes"]["A"]["config"]
    data = tmp_path / "nodes" / "A" / "data"
    data.mkdir(exist_ok=True)
    with open_log(tmp_path / "node.log") as log:
        node = subprocess.Popen(["unshare", "-rm", "sh", "-c", MOUNT_AND_RUN, str(data),
                                 sys.executable, "-m", "qkms", "serve", "--config", config],
                                stdout=log, stderr=subprocess.STDOUT)
    master, slave = sae_client(manifest, "sae-m"), sae_client(manifest, "sae-s")
    try:
        wait_for_port("127.0.0.1", port, 60, node)
        before = master.enc_keys("sae-s", number=2)
        inside = tmp_path.joinpath(f"/proc/{node.pid}/root", *data.parts[1:])
        _fill(inside)
        statuses = []
        for _ in range(4):
            try:
                statuses.append(len(master.enc_keys("sae-s", number=2)) and 200)
            except Etsi014Error as exc:
                statuses.append(exc.status)
        assert statuses[-1] == 503 and set(statuses) <= {200, 503}, statuses
        issued = [k.key_id for k in before]
        with pytest.raises(Etsi014Error) as refused:
            slave.dec_keys("sae-m", issued)
        assert refused.value.status == 503, "a key was handed out while its deletion could not be persisted"
        (inside / "filler").unlink()
        freed = time.monotonic()
        delivered = wait_until(lambda: _dec_keys_or_none(slave, issued), "the pending keys once space returned", 90)
        recovered_s = time.monotonic() - freed
        assert [k.material for k in delivered] == [k.material for k in before]
        with pytest.raises(Etsi014Error) as again:
            slave.dec_keys("sae-m", issued)
        assert again.value.status == 400, "a key was delivered twice"
        assert len(master.enc_keys("sae-s", number=2)) == 2
        print(f"disk full: enc_keys answered {statuses}; dec_keys 503; "
              f"pending keys delivered {recovered_s:.1f} s after space returned")
    finally:
        master.close()
        slave.close()
        stop_process(node)

