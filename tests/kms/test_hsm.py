"""KEKs in an HSM (kms/hsm.py) on a SoftHSM2 token of each test's own: sealing through
the token, tampering and other keys refused, the key not extractable, the library
reopened after fork, the HSM keyring file and its rotation states, and the errors of
``kek.pkcs11`` settings (one line naming the setting, never the PIN)."""

from __future__ import annotations

import os
import ssl
import sys
import threading
from pathlib import Path

import pytest

from kms.config import parse_config
from kms.errors import ConfigError, MissingExtra, StoreError
from kms.hsm import HsmKeyringFile, KeyLabels, Pkcs11Kek, Pkcs11Token, parse_key_labels
from kms.keyring import Keyring, KeyringFile
from kms.pki import CertificateAuthority
from kms.sealing import Sealer, kek_id_of, keyring_source
from tests.kms.test_config import config_error, with_change
from tests.support.softhsm import SoftHsm

KEY_ID = "6f1c0b4e-8d1f-4a55-9d3e-0d4b2c1a9e77"


def token_of(hsm: SoftHsm) -> Pkcs11Token:
    return Pkcs11Token(hsm.module, hsm.token_label, hsm.pin_env)


def initialised(hsm: SoftHsm, tmp_path: Path, label: str = "kek-a") -> HsmKeyringFile:
    keyring = HsmKeyringFile(tmp_path / "hsm-keyring", token_of(hsm))
    assert keyring.initialise(label) == label
    return keyring


def test_seal_and_unseal_through_the_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    initialised(softhsm, tmp_path)
    settings = parse_config(with_change("kek", softhsm.settings(tmp_path / "hsm-keyring"))).kek.pkcs11
    sealer = Sealer(keyring_source(pkcs11=settings), "KME-1")
    sealed = sealer.seal(b"key material", KEY_ID)
    kek = sealer._source.keyring().current
    assert isinstance(kek, Pkcs11Kek) and kek_id_of(sealed) == kek.kek_id and len(kek.kek_id) == 8
    assert b"key material" not in sealed
    assert sealer.unseal(sealed, KEY_ID) == b"key material"
    assert Sealer(keyring_source(pkcs11=settings), "KME-1").unseal(sealed, KEY_ID) == b"key material"


def test_a_bad_tag_another_identity_or_another_key_is_refused(softhsm: SoftHsm, tmp_path: Path) -> None:
    token = token_of(softhsm)
    token.generate_key("kek-a")
    token.generate_key("kek-b")
    a, b = Pkcs11Kek(token, "kek-a"), Pkcs11Kek(token, "kek-b")
    assert a.kek_id != b.kek_id
    sealed = Sealer(Keyring(a), "KME-1").seal(b"key material", KEY_ID)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(StoreError, match="failed authentication"):
        Sealer(Keyring(a), "KME-1").unseal(tampered, KEY_ID)
    with pytest.raises(StoreError, match="failed authentication"):
        Sealer(Keyring(a), "KME-1").unseal(sealed, "another-key-id")
    with pytest.raises(StoreError, match="failed authentication"):
        Sealer(Keyring(b), "KME-1").unseal(sealed, KEY_ID)
    relabelled = sealed[:3] + b.kek_id + sealed[11:]  # b's name on a's ciphertext
    with pytest.raises(StoreError, match="failed authentication"):
        Sealer(Keyring(a, (b,)), "KME-1").unseal(relabelled, KEY_ID)
    assert Sealer(Keyring(b, (a,)), "KME-1").unseal(sealed, KEY_ID) == b"key material"


def test_the_key_is_sensitive_and_never_extractable(softhsm: SoftHsm, tmp_path: Path) -> None:
    import pkcs11

    initialised(softhsm, tmp_path)
    token = token_of(softhsm)
    opened = token.opened()
    key = token.key(opened, "kek-a")
    assert key[pkcs11.Attribute.SENSITIVE] and not key[pkcs11.Attribute.EXTRACTABLE]
    assert key[pkcs11.Attribute.NEVER_EXTRACTABLE] and key[pkcs11.Attribute.VALUE_LEN] == 32
    assert not key[pkcs11.Attribute.WRAP] and key[pkcs11.Attribute.TOKEN]
    with pytest.raises(pkcs11.AttributeSensitive):
        key[pkcs11.Attribute.VALUE]
    wrapping = opened.session.generate_key(pkcs11.KeyType.AES, 256, label="wrapper",
                                           capabilities=pkcs11.MechanismFlag.WRAP)
    with pytest.raises(pkcs11.PKCS11Error):
        wrapping.wrap_key(key)


def test_a_forked_child_seals_and_the_parent_unseals(softhsm: SoftHsm, tmp_path: Path) -> None:
    """The parent has a session open before the fork; the child must not use it."""
    keyring = initialised(softhsm, tmp_path)
    sealer = Sealer(keyring.source(), "KME-1")
    before = sealer.seal(b"sealed before the fork", KEY_ID)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe and the exit status only
        status = 1
        try:
            assert sealer.unseal(before, KEY_ID) == b"sealed before the fork"
            os.write(write_end, sealer.seal(b"sealed in the child", KEY_ID))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        from_child = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert sealer.unseal(from_child, KEY_ID) == b"sealed in the child"
    assert sealer.unseal(sealer.seal(b"after", KEY_ID), KEY_ID) == b"after"


def test_threads_share_the_session(softhsm: SoftHsm, tmp_path: Path) -> None:
    sealer = Sealer(initialised(softhsm, tmp_path).source(), "KME-1")
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                material = f"{n}-{i}".encode()
                assert sealer.unseal(sealer.seal(material, KEY_ID), KEY_ID) == material
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_the_keyring_file_names_labels_and_is_reread_when_it_changes(softhsm: SoftHsm, tmp_path: Path) -> None:
    keyring = initialised(softhsm, tmp_path)
    assert keyring.labels() == KeyLabels("kek-a")
    assert keyring.path.stat().st_mode & 0o777 == 0o600
    source = keyring.source()
    assert isinstance(source, KeyringFile)
    old_sealed = Sealer(source, "KME-1").seal(b"old", KEY_ID)
    assert keyring.start() is False  # state 2: a new key in the token, the old one behind it
    labels = keyring.labels()
    assert labels.previous == ("kek-a",) and labels.current.startswith("qkms-kek-")
    assert keyring.start() is True  # a rerun resumes instead of making another key
    assert source.keyring().current.label == labels.current
    new_sealed = Sealer(source, "KME-1").seal(b"new", KEY_ID)
    assert Sealer(source, "KME-1").unseal(old_sealed, KEY_ID) == b"old"
    assert keyring.retire() == 1 and keyring.labels() == KeyLabels(labels.current)
    assert Sealer(keyring.current_alone(), "KME-1").unseal(new_sealed, KEY_ID) == b"new"
    with pytest.raises(StoreError):
        Sealer(source, "KME-1").unseal(old_sealed, KEY_ID)
    with pytest.raises(ConfigError, match="exists already"):
        keyring.initialise()


@pytest.mark.parametrize(("text", "message"), [
    (b"current kek-a\n", "kek.pkcs11.keyring: not an HSM keyring (first line must be qkms-hsm-keyring-v1)"),
    (b"qkms-hsm-keyring-v1\nprevious kek-a\n", "kek.pkcs11.keyring: names no current key"),
    (b"qkms-hsm-keyring-v1\ncurrent a\ncurrent b\n", "kek.pkcs11.keyring: names more than one current key"),
    (b"qkms-hsm-keyring-v1\ncurrent bad/label\n",
     "kek.pkcs11.keyring: line 2: expected 'current LABEL' or 'previous LABEL'"),
])
def test_malformed_hsm_keyrings_are_refused(text: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_key_labels(text)
    assert raised.value.message == message


def test_settings_errors_name_the_setting_and_never_the_pin(softhsm: SoftHsm, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from kms.hsm import reopen_all

    initialised(softhsm, tmp_path)
    cases = [
        (Pkcs11Token(softhsm.module, "no-such-token", softhsm.pin_env),
         "kek.pkcs11.token_label: no token with this label"),
        (Pkcs11Token(tmp_path / "missing.so", softhsm.token_label, softhsm.pin_env),
         f"kek.pkcs11.module: cannot load the PKCS#11 module {tmp_path / 'missing.so'}"),
        (Pkcs11Token(softhsm.module, softhsm.token_label, "QKMS_TEST_UNSET_PIN"),
         "kek.pkcs11.pin_env: environment variable QKMS_TEST_UNSET_PIN is not set"),
    ]
    messages = []
    for token, message in cases:
        reopen_all()  # logged out again: the session of the first key is not reused
        with pytest.raises(ConfigError) as raised:
            token.opened()
        messages.append(raised.value.message)
        assert raised.value.message == message
    with pytest.raises(ConfigError) as raised:
        Pkcs11Kek(token_of(softhsm), "no-such-key")
    assert raised.value.message == "kek.pkcs11.keyring: no AES key labelled 'no-such-key' in the token"
    reopen_all()  # logged out: a wrong PIN is then refused at login
    monkeypatch.setenv(softhsm.pin_env, "0" * 8)
    with pytest.raises(ConfigError) as raised:
        token_of(softhsm).opened()
    assert raised.value.message == f"kek.pkcs11.pin_env: the token refused the PIN in {softhsm.pin_env}"
    assert not any(softhsm.pin in text or "0" * 8 in text for text in [*messages, raised.value.message])
    assert softhsm.pin not in repr(token_of(softhsm)) and softhsm.pin not in repr(softhsm)


@pytest.mark.parametrize(("pkcs11", "message"), [
    ({"module": "/m.so", "token_label": "t", "pin_env": "PIN"}, "kek.pkcs11.keyring: Field required"),
    ({"module": "/m.so", "token_label": "t", "pin_env": "PIN", "keyring": "k", "pin": "1234"},
     "kek.pkcs11.pin: Extra inputs are not permitted"),
    ({"module": "/m.so", "token_label": "", "pin_env": "PIN", "keyring": "k"},
     "kek.pkcs11.token_label: String should have at least 1 character"),
])
def test_pkcs11_settings_are_validated_with_the_config(pkcs11: dict, message: str) -> None:
    assert config_error(with_change("kek", {"pkcs11": pkcs11})) == message


def test_pkcs11_is_exclusive_with_file_and_env() -> None:
    pkcs11 = {"module": "/m.so", "token_label": "t", "pin_env": "PIN", "keyring": "k"}
    assert config_error(with_change("kek", {"file": "kek.hex", "pkcs11": pkcs11})) \
        == "kek: give exactly one of file, env or pkcs11"


def test_the_keyring_path_is_resolved_against_the_config_directory(tmp_path: Path) -> None:
    pkcs11 = {"module": "/usr/lib/softhsm/libsofthsm2.so", "token_label": "t", "pin_env": "PIN", "keyring": "k"}
    parsed = parse_config(with_change("kek", {"pkcs11": pkcs11}), tmp_path).kek.pkcs11
    assert parsed.keyring == tmp_path.resolve() / "k" and parsed.module == Path(pkcs11["module"])


def test_without_the_hsm_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)
    with pytest.raises(MissingExtra) as raised:
        Pkcs11Token("/m.so", "t", "PIN").opened()
    assert raised.value.message == "a KEK in an HSM (kek.pkcs11) needs pkcs11: pip install 'qkms[hsm]'"


def test_a_lost_session_fails_one_operation_and_the_next_opens_a_new_one(softhsm: SoftHsm, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    sealer = Sealer(initialised(softhsm, tmp_path).source(), "KME-1")
    sealed = sealer.seal(b"material", KEY_ID)
    token = token_of(softhsm)
    token.opened().session.close()  # as if the HSM dropped it (and logged the process out)
    with pytest.raises(StoreError, match="HSM session failed"):
        sealer.seal(b"material", KEY_ID)
    assert sealer.unseal(sealed, KEY_ID) == b"material"
    assert "HSM session failed (SessionHandleInvalid)" in caplog.text and softhsm.pin not in caplog.text


def test_a_session_forgotten_while_logged_in_is_reopened_without_a_second_login(softhsm: SoftHsm,
                                                                                tmp_path: Path) -> None:
    sealer = Sealer(initialised(softhsm, tmp_path).source(), "KME-1")
    sealed = sealer.seal(b"material", KEY_ID)
    token = token_of(softhsm)
    first = token.opened()
    token.forget(first)  # the process is still logged in: a new login would be refused
    assert token.opened() is not first and sealer.unseal(sealed, KEY_ID) == b"material"


def _tls_pair_waiting_for_data(tmp_path: Path) -> ssl.SSLObject:
    """The client end of a TLS connection (memory BIOs, this thread) whose handshake is
    done and that has no data to read: a read must only say "want read"."""
    issued = CertificateAuthority.create("test CA").issue_node_certificate("A")
    issued.save(tmp_path / "tls.crt", tmp_path / "tls.key")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
    wires = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]  # (incoming, outgoing) per end
    server = server_context.wrap_bio(*wires[0], server_side=True)
    client = client_context.wrap_bio(*wires[1])
    finished = {id(server): False, id(client): False}
    while not all(finished.values()):
        for end, (incoming, outgoing), (peer_in, _) in ((server, wires[0], wires[1]), (client, wires[1], wires[0])):
            try:
                end.do_handshake()
                finished[id(end)] = True
            except ssl.SSLWantReadError:
                pass
            peer_in.write(outgoing.read())
    return client


def test_opening_the_token_leaves_no_openssl_error_for_the_next_tls_read(softhsm: SoftHsm,
                                                                          tmp_path: Path) -> None:
    """SoftHSM2 leaves ENGINE NO_SUCH_ENGINE on the thread's OpenSSL error queue when it
    starts; a gevent worker's next TLS read that only waits for data (any client's, all
    greenlets share the thread) would raise it and drop that client's connection."""
    client = _tls_pair_waiting_for_data(tmp_path)
    with pytest.raises(ssl.SSLWantReadError):
        client.read(16)
    token_of(softhsm).opened()
    with pytest.raises(ssl.SSLWantReadError):
        client.read(16)
