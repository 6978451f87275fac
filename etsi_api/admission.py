"""Per-SAE limits on every SAE request (ETSI 014, SKIP, health, documents): admitted
as soon as the caller is known (``etsi_api.auth.calling_sae``), before any key is
touched, and released when the request ends. The limits and their counters are the
domain's (:mod:`kms.admission`); a refusal is a 503 made by ``etsi_api.errors``."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g

from kms.admission import Admission
from kms.errors import QkmsError

log = logging.getLogger("qkms.api")

EXTENSION = "qkms.admission"


def admit(sae_id: str) -> None:
    """Count this request against ``sae_id``'s limits (once per request)."""
    admission: Admission | None = current_app.extensions.get(EXTENSION)
    if admission is None or "qkms_ticket" in g:
        return
    g.qkms_ticket = admission.enter(sae_id)


def _leave(error: BaseException | None) -> None:
    ticket = g.pop("qkms_ticket", None)
    if ticket is None:
        return
    try:
        current_app.extensions[EXTENSION].leave(ticket)
    except QkmsError as exc:  # the ticket's lease frees it later
        log.warning("could not release an admission ticket: %s", exc.message)


def init_app(app: Flask, admission: Admission | None) -> None:
    """Enforce ``admission`` on ``app``'s SAE requests (None: no per-SAE limits)."""
    if admission is None:
        return
    app.extensions[EXTENSION] = admission
    app.teardown_request(_leave)
