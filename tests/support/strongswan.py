"""Two strongSwan charon daemons in one private network namespace, IKEv2 on loopback.

Each charon gets its own strongswan.conf (ports, VICI socket and log in the test's
directory) and its own /run (a tmpfs: charon's pid file is fixed at
/var/run/charon.pid). Kernel IPsec is not available here, so the connections carry no
CHILD_SA: the IKE_SA, marked PPK, is the proof.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from adapters.connectors.strongswan import vici_session
from qkms.runner import stop_process
from tests.support.conditions import wait_until
from tests.support.netns import Namespace

CHARON = "/usr/lib/ipsec/charon"
IKE = {"version": "2", "proposals": ["aes128-sha256-modp2048"], "rekey_time": "0", "dpd_delay": "0",
       "local_addrs": ["127.0.0.1"]}
CONF = """charon {{
  port = {port}
  port_nat_t = {nat_port}
  install_routes = no
  install_virtual_ip = no
  load_modular = no
  load = random nonce aes sha1 sha2 hmac gmp kdf vici socket-default kernel-netlink
  plugins {{
    vici {{
      socket = unix://{vici}
    }}
  }}
  filelog {{
    log {{
      path = {log}
      default = 1
      cfg = 2
    }}
  }}
}}
"""


class Charon:
    def __init__(self, directory: Path, name: str, port: int, namespace: Namespace):
        self.name = name
        self.port = port
        self.vici = directory / f"{name}.vici"
        self.log = directory / f"{name}.charon.log"
        self.conf = directory / f"{name}.strongswan.conf"
        self.conf.write_text(CONF.format(port=port, nat_port=port + 1, vici=self.vici, log=self.log))
        self.namespace = namespace
        self.process: subprocess.Popen | None = None

    def start(self) -> "Charon":
        self.process = subprocess.Popen(
            self.namespace.argv("sh", "-c", f"mount -t tmpfs tmpfs /run && exec {CHARON}"),
            env={"STRONGSWAN_CONF": str(self.conf), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.vici.exists() or self.process.poll() is not None, f"charon {self.name}'s VICI", 20)
        if self.process.poll() is not None:
            raise RuntimeError(f"charon {self.name} exited with {self.process.returncode}")
        return self

    def session(self):
        return vici_session(str(self.vici))

    def ike_sas(self, conn: str) -> list[dict]:
        session = self.session()
        try:
            return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in sa[name].items()}
                    for sa in session.list_sas({"ike": conn}) for name in sa]
        finally:
            session.transport.socket.close()

    def ppk_ids_used(self) -> list[str]:
        """PPK_IDs charon used for IKE_SAs, in order (from its log)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"using PPK for PPK_ID '([^']+)'", text)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=10)


class CharonPair:
    """Initiator charon (conn ``qkms-a``) and responder charon (conn ``qkms-c``), IKE
    authenticated with a pre-shared IKE secret; each IKE_SA requires a PPK."""

    def __init__(self, directory: Path):
        self.namespace = Namespace()
        self.initiator = Charon(directory, "ike-a", 15000, self.namespace)
        self.responder = Charon(directory, "ike-c", 15002, self.namespace)
        # what the initiating agent loads (--conn): it adds ppk_id and ppk_required
        self.initiator_conn = {"qkms-a": {**IKE, "remote_addrs": ["127.0.0.1"], "local_port": "15000",
                                          "remote_port": "15002", "local": {"auth": "psk", "id": "ike-a"},
                                          "remote": {"auth": "psk", "id": "ike-c"}}}

    def start(self, ike_secret: bytes) -> "CharonPair":
        self.initiator.start()
        self.responder.start()
        for charon in (self.initiator, self.responder):
            session = charon.session()
            try:
                session.load_shared({"id": "ike-auth", "type": "IKE", "data": ike_secret,
                                     "owners": ["ike-a", "ike-c"]})
                if charon is self.responder:
                    session.load_conn({"qkms-c": {**IKE, "local_port": "15002", "ppk_required": "yes",
                                                  "local": {"auth": "psk", "id": "ike-c"},
                                                  "remote": {"auth": "psk", "id": "ike-a"}}})
            finally:
                session.transport.socket.close()
        return self

    def stop(self) -> None:
        self.initiator.stop()
        self.responder.stop()
        self.namespace.delete()
