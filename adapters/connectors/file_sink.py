"""Keys as files, for anything without a dedicated connector, and for TLS 1.3 PSKs.

The key is written atomically (readers see the old or the new file, never a part) to a
0600 file in a 0700 directory, then an optional hook command runs with
``QKMS_KEY_FILE``, ``QKMS_KEY_ID`` and ``QKMS_KEY_STATE`` (``keyed`` or
``fail-closed``) in its environment, never the key. A failing hook fails the rotation
(the agent then fails closed, and runs the hook once more for that).
"""

from __future__ import annotations

import base64
import shlex
import uuid
from collections.abc import Callable
from pathlib import Path

from adapters.connectors.errors import ConnectorError
from adapters.connectors.installer import KeyInstaller, run_command, write_private

FORMATS: dict[str, Callable[[bytes, str], bytes]] = {
    "raw": lambda key, key_id: key,
    "hex": lambda key, key_id: key.hex().encode() + b"\n",
    "base64": lambda key, key_id: base64.b64encode(key) + b"\n",
    # stunnel's PSKsecrets format, also read by adapters.connectors.tls_psk_helper
    "identity-hex": lambda key, key_id: f"{key_id}:{key.hex()}\n".encode(),
}


class FileSinkInstaller(KeyInstaller):
    """The key in one file, rotated, with a hook after every change."""

    application = "file"

    def __init__(self, path: Path, key_bytes: int = 32, key_format: str = "raw", hook: str | None = None):
        if key_format not in FORMATS:
            raise ConnectorError(f"format must be one of {', '.join(FORMATS)}")
        if not 16 <= key_bytes <= 1024:
            raise ConnectorError("key_bytes must be between 16 and 1024")
        self.path = Path(path).absolute()
        self.key_bytes = key_bytes
        self.key_format = key_format
        self.hook = shlex.split(hook) if hook else None

    def install(self, key: bytes, key_id: str) -> None:
        self.check_key(key)
        self._write(key, key_id, "keyed")

    def fail_closed(self) -> None:
        # A fresh random identity too, so a peer matching by identity finds nothing.
        self._write(self.random_key(), f"qkms-fail-closed-{uuid.uuid4()}", "fail-closed")

    def _write(self, key: bytes, key_id: str, state: str) -> None:
        write_private(self.path, FORMATS[self.key_format](key, key_id))
        if self.hook:
            run_command(self.hook, env={"QKMS_KEY_FILE": str(self.path), "QKMS_KEY_ID": key_id,
                                        "QKMS_KEY_STATE": state})


class TlsPskInstaller(FileSinkInstaller):
    """A TLS 1.3 external PSK: identity = key_ID, 32 bytes (for TLS_AES_128_GCM_SHA256),
    written as ``<identity>:<hex key>`` for OpenSSL recipes, stunnel and the Python
    helper; the hook restarts or signals the TLS software."""

    application = "tls-psk"

    def __init__(self, path: Path, hook: str | None = None):
        super().__init__(path, 32, "identity-hex", hook)

