"""Private key generation, chosen by key type name."""

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kms.pki.errors import PkiError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

DEFAULT_KEY_TYPE = "ec-p256"

_KEY_FACTORIES: dict[str, Callable[[], PrivateKey]] = {
    "ec-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "rsa-3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
}

KEY_TYPES: tuple[str, ...] = tuple(_KEY_FACTORIES)
"""The accepted ``key_type`` names; ECDSA P-256 is the default (cheap handshakes)."""


def generate_private_key(key_type: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    """Generate a fresh private key of ``key_type`` (one of KEY_TYPES)."""
    try:
        factory = _KEY_FACTORIES[key_type]
    except KeyError:
        raise PkiError(
            f"key type {key_type!r} is not supported; use one of {', '.join(KEY_TYPES)}"
        ) from None
    return factory()
