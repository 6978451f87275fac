"""The contract every KeyInstaller keeps (adapters/connectors/installer.py), run against
every installer: the file sink, the TLS PSK file, strongSwan (a recording VICI session;
tests/integration/connectors runs real charon daemons) and WireGuard (a real
wireguard-go device in a private network namespace)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.connectors.errors import ConnectorError
from adapters.connectors.file_sink import FileSinkInstaller, TlsPskInstaller
from adapters.connectors.installer import KeyInstaller
from adapters.connectors.strongswan import StrongSwanInstaller
from adapters.connectors.tls_psk_helper import read_psk
from adapters.connectors.wireguard import WireGuardInstaller
from tests.support.netns import WireGuardDevice, require_namespaces
from tests.support.vici import RecordingVici


@dataclass
class Subject:
    """An installer, a way to read back the key its application would use, and a twin
    pointed at an application that is not there."""

    installer: KeyInstaller
    read_back: Callable[[], bytes | None]
    broken: KeyInstaller

    def probe(self) -> str | None:
        """A digest of the application's key (assertions never print keys)."""
        return digest(self.read_back())


def digest(key: bytes | None) -> str | None:
    return hashlib.sha256(key).hexdigest() if key is not None else None


def file_subject(tmp_path: Path) -> Subject:
    path = tmp_path / "keys" / "app.key"
    return Subject(FileSinkInstaller(path), lambda: path.read_bytes() if path.exists() else None,
                   FileSinkInstaller(tmp_path / "not-a-dir" / "app.key"))


def tls_subject(tmp_path: Path) -> Subject:
    path = tmp_path / "keys" / "web.psk"
    return Subject(TlsPskInstaller(path), lambda: read_psk(path)[1] if path.exists() else None,
                   TlsPskInstaller(tmp_path / "not-a-dir" / "web.psk"))


def strongswan_subject(tmp_path: Path, role: str) -> Subject:
    vici = RecordingVici()
    conn = {"tunnel": {"remote_addrs": ["127.0.0.1"]}} if role == "initiator" else None
    installer = StrongSwanInstaller(role, "/fake/charon.vici", conn, "tunnel", session_factory=vici.session)
    broken = StrongSwanInstaller(role, str(tmp_path / "no-charon.vici"), conn, "tunnel")
    return Subject(installer, lambda: vici.current_ppk(installer), broken)


def wireguard_subject(tmp_path: Path, request) -> Subject:
    require_namespaces()
    device = WireGuardDevice(tmp_path).start()
    request.addfinalizer(device.stop)
    peer = device.add_peer()
    return Subject(WireGuardInstaller(device.name, peer), lambda: device.preshared_key(peer),
                   WireGuardInstaller("qkms-no-such-dev", peer))


KINDS = ["file", "tls-psk", "strongswan-initiator", "strongswan-responder",
         pytest.param("wireguard", marks=pytest.mark.integration)]


@pytest.fixture(params=KINDS)
def subject(request, tmp_path) -> Subject:
    kind = request.param
    if kind == "file":
        return file_subject(tmp_path)
    if kind == "tls-psk":
        return tls_subject(tmp_path)
    if kind.startswith("strongswan"):
        return strongswan_subject(tmp_path, kind.split("-")[1])
    return wireguard_subject(tmp_path, request)


@pytest.fixture(autouse=True)
def _file_in_the_way(tmp_path):
    (tmp_path / "not-a-dir").write_text("")


def new_key(subject: Subject) -> bytes:
    return os.urandom(subject.installer.key_bytes)


def test_install_makes_the_key_the_applications(subject):
    key = new_key(subject)
    subject.installer.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    assert subject.probe() == digest(key)


def test_a_rotation_replaces_the_key(subject):
    first, second = new_key(subject), new_key(subject)
    subject.installer.install(first, "11111111-1111-4111-8111-111111111111")
    subject.installer.install(second, "22222222-2222-4222-8222-222222222222")
    assert subject.probe() == digest(second)


def test_failing_closed_installs_fresh_random_keys(subject):
    key = new_key(subject)
    subject.installer.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    subject.installer.fail_closed()
    first = subject.read_back()
    subject.installer.fail_closed()
    second = subject.read_back()
    assert len(first) == len(second) == subject.installer.key_bytes
    assert len({digest(key), digest(first), digest(second)}) == 3


def test_a_key_of_the_wrong_length_is_refused_and_changes_nothing(subject):
    key = new_key(subject)
    subject.installer.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    with pytest.raises(ConnectorError):
        subject.installer.install(key[:-1], "22222222-2222-4222-8222-222222222222")
    assert subject.probe() == digest(key)


def test_an_absent_application_is_a_connector_error(subject):
    with pytest.raises(ConnectorError):
        subject.broken.install(new_key(subject), "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    with pytest.raises(ConnectorError):
        subject.broken.fail_closed()


def test_key_material_never_reaches_logs_or_errors(subject, caplog):
    caplog.set_level(logging.DEBUG)
    key = new_key(subject)
    subject.installer.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    with pytest.raises(ConnectorError) as failure:
        subject.broken.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    shown = caplog.text + str(failure.value) + repr(failure.value.details)
    leaked = [name for name, form in (("hex", key.hex()), ("base64", base64.b64encode(key).decode()),
                                      ("HEX", key.hex().upper())) if form in shown]
    assert leaked == []


# --- what only the file-based installers do -------------------------------------------


def test_key_files_are_0600_in_a_0700_directory(tmp_path):
    subject = file_subject(tmp_path)
    subject.installer.install(new_key(subject), "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "app.key").stat().st_mode) == 0o600


def test_a_directory_others_may_enter_is_refused(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    with pytest.raises(ConnectorError, match="0700"):
        FileSinkInstaller(tmp_path / "open" / "k").install(os.urandom(32), "k")


def test_the_hook_runs_after_each_change_with_the_key_id_not_the_key(tmp_path):
    log = tmp_path / "hook.log"
    hook = f"sh -c 'echo \"$QKMS_KEY_STATE $QKMS_KEY_ID $QKMS_KEY_FILE\" >> {log}'"
    installer = FileSinkInstaller(tmp_path / "keys" / "k", key_format="hex", hook=hook)
    installer.install(os.urandom(32), "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    installer.fail_closed()
    first, second = log.read_text().splitlines()
    assert first == f"keyed 0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b {tmp_path / 'keys' / 'k'}"
    assert second.startswith("fail-closed qkms-fail-closed-")


def test_a_failing_hook_fails_the_rotation(tmp_path):
    installer = FileSinkInstaller(tmp_path / "keys" / "k", hook="false")
    with pytest.raises(ConnectorError, match="exited with 1"):
        installer.install(os.urandom(32), "k")


def test_the_tls_psk_file_names_the_key_id_as_identity(tmp_path):
    subject = tls_subject(tmp_path)
    key = new_key(subject)
    subject.installer.install(key, "0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b")
    identity, written = read_psk(tmp_path / "keys" / "web.psk")
    assert (identity, digest(written)) == ("0b8f3c4e-2d1a-4e5f-8a9b-7c6d5e4f3a2b", digest(key))
