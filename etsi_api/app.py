"""Flask application factory for one qkms node."""

from __future__ import annotations

from flask import Flask

from etsi_api import admission as admission_api
from etsi_api import errors, keys_api, km_api, meta_api, qkd004_api, skip_api
from kms.admission import Admission
from kms.config import NodeConfig
from kms.link_exchange import LinkResponders
from kms.network import KeyNetwork
from kms.service import KeyService
from kms.store import KeyStore


def create_app(config: NodeConfig, service: KeyService, store: KeyStore, network: KeyNetwork | None = None,
               responders: LinkResponders | None = None, admission: Admission | None = None) -> Flask:
    """A Flask app serving ETSI GS QKD 014 with ``service`` (and the KM channel with
    ``network``) for the node configured by ``config``; ``store`` answers health checks,
    ``responders`` the peers of this node's links' key sources; ``admission`` enforces
    the per-SAE request limits."""
    app = Flask("qkms")
    app.config.update(
        MAX_CONTENT_LENGTH=config.server.max_request_bytes,
        QKMS_SAE_ID_FIELD=config.tls.sae_id_field,
        QKMS_DEFAULT_KEY_SIZE_BITS=config.limits.key_size_bits,
        QKMS_NODE_CONFIG=config,
        JSON_SORT_KEYS=False,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False
    app.extensions["qkms.service"] = service
    app.extensions["qkms.store"] = store
    if network is not None:
        app.extensions["qkms.network"] = network
    if responders is not None:
        app.extensions["qkms.responders"] = responders
    errors.init_app(app)
    admission_api.init_app(app, admission)
    # No implicit HEAD (it would run GET handlers: a dec_keys that deletes keys nobody
    # receives) and no OPTIONS: both are refused before any handler or authorization.
    app.before_request(errors.refuse_implicit_methods)
    app.register_blueprint(keys_api.bp)
    app.register_blueprint(meta_api.bp)
    app.register_blueprint(km_api.bp)
    app.register_blueprint(skip_api.bp)
    app.register_blueprint(qkd004_api.bp)
    return app
