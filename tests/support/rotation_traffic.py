"""``qkms kek rotate`` on a serving node while an SAE pair keeps exchanging keys: the
rotation must neither interrupt them nor lose the keys reserved before it."""

from __future__ import annotations

import subprocess
import sys
import threading

from tests.support.conditions import wait_until
from tests.support.sealed_fill import digest


def rotate_while_serving(node) -> subprocess.CompletedProcess:
    """Reserve 20 keys for sae-2, run sae-1 -> sae-2 round trips, rotate the node's KEK
    in their midst; checks that every round trip before, during and after gave the slave
    the master's bytes and that the 20 keys are still served. Returns the rotation run."""
    master, slave = node.client("sae-1"), node.client("sae-2")
    waiting = {key.key_id: digest(key.material) for key in master.enc_keys("sae-2", number=20)}
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
        rotation = subprocess.run([sys.executable, "-m", "qkms", "kek", "rotate", "--config", str(node.config_path),
                                   "--grace-s", "1"], capture_output=True, text=True, timeout=300)
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
    return rotation
