"""The KEM-backend contract (adapters/pqc/kem.py), run against every backend available
here, interoperability between every two of them, and the liboqs probe, which must say
"unavailable" quickly, without importing ``oqs``, where the native library is missing.
Shared secrets are compared, never printed."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from adapters.pqc.kem import BACKENDS, KemUnavailable, available_backends, kem_backend
from adapters.pqc.kem_liboqs import probe
from kms.errors import ConfigError

AVAILABLE = {backend.name: backend for backend in available_backends()}
ML_KEMS = ("ML-KEM-768", "ML-KEM-1024")
#: Encapsulation key and ciphertext sizes of FIPS 203.
SIZES = {"ML-KEM-768": (1184, 1088), "ML-KEM-1024": (1568, 1568)}
#: Every ML-KEM of every backend, and the smallest of each other family (Classic McEliece
#: key generation takes a second or more: the larger sets are left to their library).
CASES = [(name, algorithm) for name in sorted(AVAILABLE) for algorithm in AVAILABLE[name].algorithms()
         if algorithm.startswith("ML-KEM") or algorithm in ("HQC-128", "Classic-McEliece-348864")]


def test_the_dev_install_has_two_backends_to_compare() -> None:
    # cryptography always; pqcrypto is a dev dependency (the `pqc` extra), so the
    # interoperability test below is never empty.
    assert {"cryptography", "pqcrypto"} <= AVAILABLE.keys()


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_a_backend_offers_ml_kem_768_and_1024(name: str) -> None:
    assert set(ML_KEMS) <= set(AVAILABLE[name].algorithms())
    assert AVAILABLE[name].available()[1]


@pytest.mark.parametrize("name, algorithm", CASES)
def test_encapsulation_round_trip(name: str, algorithm: str) -> None:
    backend = AVAILABLE[name]
    pair = backend.keygen(algorithm)
    first, second = backend.encapsulate(algorithm, pair.encapsulation_key), \
        backend.encapsulate(algorithm, pair.encapsulation_key)
    assert backend.decapsulate(algorithm, pair, first.ciphertext) == first.shared_secret
    assert backend.decapsulate(algorithm, pair, second.ciphertext) == second.shared_secret
    assert first.shared_secret != second.shared_secret and first.ciphertext != second.ciphertext
    assert backend.keygen(algorithm).encapsulation_key != pair.encapsulation_key
    if algorithm in SIZES:
        assert (len(pair.encapsulation_key), len(first.ciphertext)) == SIZES[algorithm]
        assert len(first.shared_secret) == 32


@pytest.mark.parametrize("name, algorithm", [(n, a) for n, a in CASES if a in ML_KEMS])
def test_a_tampered_ciphertext_yields_another_secret(name: str, algorithm: str) -> None:
    # ML-KEM's implicit rejection: no error, but a secret the sender does not hold.
    backend = AVAILABLE[name]
    pair = backend.keygen(algorithm)
    sealed = backend.encapsulate(algorithm, pair.encapsulation_key)
    tampered = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    assert backend.decapsulate(algorithm, pair, tampered) != sealed.shared_secret


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_malformed_keys_and_ciphertexts_are_value_errors(name: str) -> None:
    backend = AVAILABLE[name]
    pair = backend.keygen("ML-KEM-768")
    with pytest.raises(ValueError):
        backend.encapsulate("ML-KEM-768", pair.encapsulation_key[:-1])
    with pytest.raises(ValueError):
        backend.decapsulate("ML-KEM-768", pair, b"\0" * 100)


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_repr_shows_no_secret(name: str) -> None:
    backend = AVAILABLE[name]
    pair = backend.keygen("ML-KEM-768")
    sealed = backend.encapsulate("ML-KEM-768", pair.encapsulation_key)
    assert sealed.shared_secret.hex() not in repr(sealed) and "bytes" in repr(pair)


INTEROP = [(a, b, algorithm) for a, b in itertools.permutations(sorted(AVAILABLE), 2)
           for algorithm in ML_KEMS if algorithm in AVAILABLE[a].algorithms() and algorithm in AVAILABLE[b].algorithms()]


@pytest.mark.parametrize("keys_from, encapsulator, algorithm", INTEROP)
def test_backends_interoperate(keys_from: str, encapsulator: str, algorithm: str) -> None:
    """A key pair of one backend, encapsulated to by the other, decapsulated by the first."""
    owner, sender = AVAILABLE[keys_from], AVAILABLE[encapsulator]
    pair = owner.keygen(algorithm)
    sealed = sender.encapsulate(algorithm, pair.encapsulation_key)
    assert owner.decapsulate(algorithm, pair, sealed.ciphertext) == sealed.shared_secret


def test_interop_covers_both_directions_of_both_ml_kems() -> None:
    assert {(a, b, k) for a, b, k in INTEROP} >= {("cryptography", "pqcrypto", k) for k in ML_KEMS} | \
        {("pqcrypto", "cryptography", k) for k in ML_KEMS}


def test_pqcrypto_adds_code_based_kems() -> None:
    backend = AVAILABLE["pqcrypto"]
    assert {"HQC-128", "Classic-McEliece-348864"} <= set(backend.algorithms())
    pair = backend.keygen("HQC-128")
    sealed = backend.encapsulate("HQC-128", pair.encapsulation_key)
    assert backend.decapsulate("HQC-128", pair, sealed.ciphertext) == sealed.shared_secret


def test_backends_are_chosen_by_name() -> None:
    assert set(BACKENDS) == {"cryptography", "liboqs", "pqcrypto"}
    assert kem_backend("cryptography").name == "cryptography"
    with pytest.raises(ConfigError, match="backend: unknown KEM backend 'openssl'"):
        kem_backend("openssl")


def test_require_names_what_is_missing() -> None:
    with pytest.raises(KemUnavailable, match="kem: ML-KEM-512 is not offered by the cryptography backend"):
        kem_backend("cryptography").require("ML-KEM-512")
    kem_backend("cryptography").require("ML-KEM-768")


# --- liboqs on a machine without the native library ------------------------------------------------


@pytest.mark.timeout(60)  # liboqs-python left to itself would try to fetch and build liboqs for minutes
def test_the_liboqs_probe_answers_unavailable_without_trying_to_install_it() -> None:
    found = probe()
    backend = kem_backend("liboqs")
    ok, reason = backend.available()
    assert not found.available and not ok and "liboqs" in reason
    assert backend.algorithms() == ()
    with pytest.raises(KemUnavailable, match="backend: liboqs is unavailable"):
        backend.require("ML-KEM-768")


def test_probing_liboqs_never_imports_oqs() -> None:
    """In a fresh interpreter (so nothing else imported it): the probe, the backend's
    availability and the source's validation leave ``oqs`` unimported."""
    code = ("import sys\n"
            "from adapters.pqc.kem import kem_backend, available_backends\n"
            "b = kem_backend('liboqs'); b.available(); b.algorithms(); available_backends()\n"
            "assert 'oqs' not in sys.modules, 'oqs was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
